"""Full outages and agent restarts: the cluster comes back from the most advanced node, losing no
acknowledged write, and an agent that dies leaves its mariadbd running for its successor to adopt."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.mariadb import sql
from tests.waiting import wait_for

from .conftest import cli, destroy, mariadbd_pid, members, new_cluster_path, query

NODES = ("node1", "node2", "node3")


@pytest.fixture
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", "127.0.0.24")
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.acked (id INT PRIMARY KEY, node VARCHAR(10))", "node1")
        yield directory
    finally:
        destroy(directory)


def kill_agents(directory: Path) -> None:
    for node in NODES:
        pid = int((directory / node / "run" / "agent.pid").read_text())
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(psutil.pid_exists(int((directory / n / "run" / "agent.pid").read_text()))
                             for n in NODES), 10, "agents to die")


def kill_mariadbd(directory: Path, node: str) -> None:
    pid = mariadbd_pid(directory, node)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 10, f"{node}'s mariadbd to die")


@pytest.mark.parametrize("order", [("node3", "node2", "node1"), ("node1", "node3", "node2")])
def test_power_loss_in_any_order_recovers_from_the_most_advanced(cluster: Path, order: tuple[str, ...]) -> None:
    """Agents and servers die (power loss); the survivors keep writing between kills, so seqnos differ."""
    kill_agents(cluster)
    acked: list[int] = []
    next_id = 1
    for victim in order:
        for node in NODES:
            if mariadbd_pid(cluster, node) is None:
                continue
            result = cli("query", "--dir", str(cluster), "--member", node,
                         f"INSERT INTO app.acked VALUES ({next_id}, '{node}')", check=False)
            if result.returncode == 0:
                acked.append(next_id)
            next_id += 1
        kill_mariadbd(cluster, victim)
    assert acked, "no write was acknowledged before the outage"
    restarted_at = time.time()
    cli("up", "--dir", str(cluster), "--timeout", "300")
    rows = members(cluster)
    assert all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in rows.values())
    events = json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
    bootstraps = [e for e in events if e["action"] == "bootstrap"]
    last = bootstraps[-1]
    assert last["at"] >= restarted_at, "the cluster did not record a bootstrap for this recovery"
    positions = last["inputs"]["positions"]
    assert set(positions) == set(NODES), f"the bootstrap did not wait for every member: {positions}"
    best = max(p["seqno"] for p in positions.values())
    assert positions[last["member"]]["seqno"] == best, f"bootstrapped from a node behind another: {last}"
    for node in NODES:
        got = [int(r[0]) for r in query(cluster, "SELECT id FROM app.acked ORDER BY id", node)]
        assert set(acked) <= set(got), f"{node} lost acknowledged writes: acked {acked}, has {got}"


def test_all_killed_at_once_re_form_by_pc_recovery_without_bootstrap(cluster: Path) -> None:
    """Every server dies at the same moment, so every gvwstate.dat names the same component: the agents
    let Galera's pc.recovery re-form it, record why, and nobody bootstraps."""
    query(cluster, "INSERT INTO app.acked VALUES (1, 'node1'), (2, 'node1')", "node1")
    kill_agents(cluster)
    pids = [mariadbd_pid(cluster, node) for node in NODES]
    for pid in pids:
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids if pid), 10, "every mariadbd to die")
    restarted_at = time.time()
    cli("up", "--dir", str(cluster), "--timeout", "300")
    assert all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster).values())
    events = [e for e in json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
              if e["at"] >= restarted_at]
    assert sorted(e["member"] for e in events if e["action"] == "pc-recovery") == list(NODES), events
    assert not [e for e in events if e["action"] == "bootstrap"], f"no bootstrap with pc.recovery: {events}"
    for node in NODES:
        assert query(cluster, "SELECT COUNT(*) FROM app.acked", node) == [["2"]]


def test_two_of_three_hosts_lost_the_survivor_steps_back_and_the_cluster_recovers(cluster: Path) -> None:
    """Two hosts die (agents and servers, so nobody evicts the dead instances): the survivor loses its
    quorum and runs non-Primary, publishing no position, so the recovery, waiting for every member's
    position, would wait for it forever once the hosts are back. Its agent stops it cleanly once the
    others are known to be stopped, and the cluster recovers by itself with every acknowledged write."""
    query(cluster, "INSERT INTO app.acked VALUES (11, 'node1'), (12, 'node1')", "node1")
    killed_at = time.time()
    for node in ("node2", "node3"):
        agent = EmbeddedCluster(cluster).node(node).agent_pid()
        assert agent is not None
        os.kill(agent, signal.SIGKILL)
        kill_mariadbd(cluster, node)
    wait_for(lambda: members(cluster)["node1"]["cluster_status"] == "non-Primary", 30, "node1 to lose its quorum")
    cli("up", "--dir", str(cluster), "--timeout", "300")  # the hosts are back: their agents start
    assert all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster).values())
    events = [e for e in json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
              if e["at"] >= killed_at]
    assert any(e["action"] == "restart" and e["member"] == "node1" and "every other member is stopped"
               in e["reason"] for e in events), events
    for node in NODES:
        assert query(cluster, "SELECT id FROM app.acked WHERE id > 10 ORDER BY id", node) == [["11"], ["12"]]


def test_agent_killed_and_restarted_under_load_keeps_mariadbd_and_every_write(cluster: Path) -> None:
    """A client writes through node2 all along while node2's agent is killed -9 and started again: the
    server is adopted, not restarted, the client sees no error, and every acknowledged write is there."""
    embedded = EmbeddedCluster(cluster)
    config = embedded.node("node2").config
    credentials = load_credentials(cluster / "credentials.yaml")
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        connection = sql.connect_tcp(config.address, config.ports.client, credentials, timeout=10)
        try:
            next_id = 1
            while not stop.is_set():
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("INSERT INTO app.acked VALUES (%s, 'node2')", (next_id,))
                    acked.append(next_id)
                except Exception as error:
                    errors.append(repr(error))
                next_id += 1
        finally:
            connection.close()

    server = mariadbd_pid(cluster, "node2")
    agent = int((cluster / "node2" / "run" / "agent.pid").read_text())
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(acked) > 50, 30, "the client to be writing")
        killed_at = time.time()
        os.kill(agent, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(agent), 10, "the agent to die")
        before_restart = len(acked)
        wait_for(lambda: len(acked) > before_restart + 50, 30, "writes to go on without the agent")
        assert "agents started: node2" in cli("up", "--dir", str(cluster)).stdout
        after_restart = len(acked)
        wait_for(lambda: len(acked) > after_restart + 50, 30, "writes to go on under the new agent")
    finally:
        stop.set()
        thread.join(30)
    assert not errors, f"the client saw errors while the agent was replaced: {errors[:5]}"
    assert mariadbd_pid(cluster, "node2") == server, "the new agent restarted mariadbd instead of adopting it"
    assert members(cluster)["node2"]["state"] == "Synced"
    events = json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
    decided = [e for e in events if e["member"] == "node2" and e["at"] >= killed_at]
    assert not decided, f"the new agent should only adopt the running server, yet it decided: {decided}"
    for node in NODES:
        got = {int(r[0]) for r in query(cluster, "SELECT id FROM app.acked", node)}
        assert set(acked) <= got, f"{node} lost {len(set(acked) - got)} acknowledged writes"


@pytest.mark.parametrize("seed", [1, 2])
def test_graceful_stop_then_starts_in_random_order_with_random_delays(seed: int) -> None:
    import random

    rng = random.Random(seed)
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", "127.0.0.84")
        query(directory, "CREATE DATABASE app", "node2")
        query(directory, "CREATE TABLE app.t (id INT PRIMARY KEY)", "node2")
        query(directory, "INSERT INTO app.t VALUES (1), (2), (3)", "node3")
        cli("down", "--dir", str(directory))
        embedded = EmbeddedCluster(directory)
        order = list(NODES)
        rng.shuffle(order)
        procs = []
        restarted_at = time.time()
        for node in order:
            time.sleep(rng.uniform(0.0, 3.0))
            procs.append(embedded.spawn_agent(embedded.node(node)))
        wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(directory).values()),
                 180, f"the cluster to come back after starts in the order {order}")
        events = json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)
        boots = [e for e in events if e["action"] == "bootstrap" and e["at"] >= restarted_at]
        assert len(boots) == 1, f"exactly one bootstrap after the restart: {boots}"
        # node1 stopped last (down stops one node at a time), so it holds safe_to_bootstrap: 1
        assert boots[-1]["member"] == "node1", boots[-1]
        for node in NODES:
            assert query(directory, "SELECT COUNT(*) FROM app.t", node) == [["3"]]
        cli("down", "--dir", str(directory))
        for proc in procs:
            proc.wait(30)
    finally:
        destroy(directory)
