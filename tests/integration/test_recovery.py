"""Full outages and agent restarts: the cluster comes back from the most advanced node, losing no
acknowledged write, and an agent that dies leaves its mariadbd running for its successor to adopt."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.embedded import EmbeddedCluster

from .conftest import cli, destroy, mariadbd_pid, members, new_cluster_path, query, wait_for

NODES = ("node1", "node2", "node3")


@pytest.fixture
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    cli("up", "--dir", str(directory), "--base-address", "127.0.0.24")
    query(directory, "CREATE DATABASE app", "node1")
    query(directory, "CREATE TABLE app.acked (id INT PRIMARY KEY, node VARCHAR(10))", "node1")
    yield directory
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


def test_killed_agent_leaves_mariadbd_running_and_is_adopted(cluster: Path) -> None:
    server = mariadbd_pid(cluster, "node2")
    agent = int((cluster / "node2" / "run" / "agent.pid").read_text())
    os.kill(agent, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(agent), 10, "the agent to die")
    for i in range(20):  # writes keep working through the node whose agent is gone
        query(cluster, f"INSERT INTO app.acked VALUES ({i}, 'node2')", "node2")
    assert mariadbd_pid(cluster, "node2") == server
    assert "agents started: node2" in cli("up", "--dir", str(cluster)).stdout
    assert mariadbd_pid(cluster, "node2") == server, "the new agent restarted mariadbd instead of adopting it"
    assert members(cluster)["node2"]["state"] == "Synced"
    for node in NODES:
        assert query(cluster, "SELECT COUNT(*) FROM app.acked", node) == [["20"]]


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
        for node in order:
            time.sleep(rng.uniform(0.0, 3.0))
            procs.append(embedded.spawn_agent(embedded.node(node)))
        wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(directory).values()),
                 180, f"the cluster to come back after starts in the order {order}")
        events = json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)
        boots = [e for e in events if e["action"] == "bootstrap"]
        assert len(boots) == 2, f"one bootstrap at creation and exactly one after the restart: {boots}"
        # node1 stopped last (down stops one node at a time), so it holds safe_to_bootstrap: 1
        assert boots[-1]["member"] == "node1", boots[-1]
        for node in NODES:
            assert query(directory, "SELECT COUNT(*) FROM app.t", node) == [["3"]]
        cli("down", "--dir", str(directory))
        for proc in procs:
            proc.wait(30)
    finally:
        destroy(directory)
