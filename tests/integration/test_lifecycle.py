"""Living with a cluster (issue 13): pause/resume and the rolling restart, on one real 3-node cluster with
its managed HAProxy (nodes on 127.0.0.171-173, the proxy on 127.0.0.170:3306/3307).

The tests share the cluster and run in file order; each leaves it with three Synced nodes, none drained,
no roll recorded and the cluster not paused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.cluster import DONE, STOPPING
from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for

from .binaries import NEW_VERSION, REAL_VERSION, respawn_agent, wrap_binaries
from .conftest import (
    CLI,
    agent_url,
    cli,
    dcs_view,
    destroy,
    http_json,
    mariadbd_pid,
    members,
    new_cluster_path,
    query,
    up_behind_proxy,
)
from .routing_helpers import AckWriter, endpoint_code

PROXY_HOST = "127.0.0.170"
WRITER_PORT = 3306
ADDRESSES = {"node1": "127.0.0.171", "node2": "127.0.0.172", "node3": "127.0.0.173"}
NODES = tuple(ADDRESSES)
LEASE_TTL = 3.0  # timing.writer_lease_ttl's default
BOGUS = "galera_pilot_test_bogus_option"  # an option mariadbd does not know: it refuses to start


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        up_behind_proxy(directory, ADDRESSES["node1"], PROXY_HOST, WRITER_PORT)
        query(directory, "CREATE DATABASE IF NOT EXISTS app")
        query(directory, "CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY)")
        yield directory
    finally:
        destroy(directory)


# ---- helpers ---------------------------------------------------------------------------------------------------
def settled(directory: Path) -> bool:
    view = dcs_view(directory)
    return (all(view.members.get(n) is not None and view.members[n].is_synced for n in NODES)
            and view.writer is not None and not view.maintenance and view.roll is None and view.pause is None
            and all(endpoint_code(ADDRESSES[n], "/read") == 200 for n in NODES))


@pytest.fixture(autouse=True)
def _whole_cluster(cluster: Path) -> Iterator[None]:
    wait_for(lambda: settled(cluster), 180, "three Synced nodes, a writer, nothing drained, paused or rolling")
    yield


def credentials(directory: Path) -> tuple[str, str]:
    data = yaml.safe_load((directory / "credentials.yaml").read_text())
    return data["admin_user"], data["admin_password"]


def pids(directory: Path) -> dict[str, int | None]:
    return {node: mariadbd_pid(directory, node) for node in NODES}


def roll_restarts_since(directory: Path, since: float) -> list[str]:
    """The members whose agents stopped mariadbd for a rolling restart since `since`, in order."""
    return [e.member for e in sorted(dcs_view(directory).history, key=lambda e: e.at)
            if e.action == "roll-restart" and e.at >= since]


def set_extra_option(directory: Path, node: str, extra: dict[str, str]) -> None:
    path = EmbeddedCluster(directory).node(node).config_path
    config = yaml.safe_load(path.read_text())
    config.setdefault("mariadb", {})["extra"] = extra
    path.write_text(yaml.safe_dump(config))


def status(node: str) -> dict:
    return http_json(agent_url(ADDRESSES[node], "/status"))


# ---- pause ------------------------------------------------------------------------------------------------------
def test_paused_agents_take_no_action_and_resume_catches_up(cluster: Path) -> None:
    view = dcs_view(cluster)
    writer = view.writer
    assert writer is not None
    other = next(n for n in NODES if n != writer)
    result = cli("pause", "--dir", str(cluster))
    assert "paused: the agents of node1, node2, node3 take no action" in result.stdout, result.stdout
    assert all(status(n)["paused"] for n in NODES)
    assert "PAUSED by" in cli("list", "--dir", str(cluster)).stdout
    assert all(row["paused"] for row in members(cluster).values())
    assert "already paused" in cli("pause", "--dir", str(cluster)).stdout

    # A server that dies while paused stays down, and the writer role does not move off the dead writer,
    # not even when its agent is restarted (the new agent adopts the situation and does nothing).
    pid = mariadbd_pid(cluster, writer)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: endpoint_code(ADDRESSES[writer], "/writer") == 503, 10, "the dead writer's /writer 503")
    time.sleep(2 * LEASE_TTL)  # a lease its agent did not renew would have expired by now
    assert dcs_view(cluster).writer == writer, "the writer role moved while paused"
    respawn_agent(cluster, writer)  # its lease may lapse while no agent runs, but nobody else takes it
    time.sleep(2 * LEASE_TTL)
    view = dcs_view(cluster)
    assert mariadbd_pid(cluster, writer) is None, "a paused agent started mariadbd"
    assert view.writer in (writer, None), "the writer role moved while paused"
    assert all(endpoint_code(ADDRESSES[n], "/writer") == 503 for n in NODES)
    assert "paused" in view.members[writer].activity and view.members[writer].paused
    assert view.members[other].is_synced
    # A paused agent that is stopped (SIGTERM, as systemd does) leaves its mariadbd running, as Patroni does.
    agent, server = EmbeddedCluster(cluster).node(other).agent_pid(), mariadbd_pid(cluster, other)
    assert agent is not None and server is not None
    os.kill(agent, signal.SIGTERM)
    wait_for(lambda: EmbeddedCluster(cluster).node(other).agent_pid() is None, 30, f"{other}'s agent to stop")
    assert mariadbd_pid(cluster, other) == server, "a paused agent's stop took its mariadbd down"
    respawn_agent(cluster, other)
    wait_for(lambda: status(other)["routing"]["healthy"], 60, f"{other}'s new agent to adopt mariadbd")
    assert "restart refused: the cluster is paused" in cli("restart", "--dir", str(cluster), "--yes",
                                                           check=False).stderr

    result = cli("resume", "--dir", str(cluster), "--wait")
    assert "resumed: every agent acts again" in result.stdout, result.stdout
    wait_for(lambda: settled(cluster), 180, "the killed node restarted and Synced after the resume")
    assert dcs_view(cluster).writer != writer, "the writer role stayed with a node that was down"
    assert not any(e.action == "halt" for e in dcs_view(cluster).history), "a paused stop counted as a crash"
    assert "the cluster was not paused" in cli("resume", "--dir", str(cluster)).stdout


# ---- rolling restart ---------------------------------------------------------------------------------------------
def test_rolling_restart_restarts_each_node_once_the_writer_last_losing_no_write(cluster: Path) -> None:
    cli("switchover", "--dir", str(cluster), "--to", "node2", check=False)  # the writer in the middle by name
    wait_for(lambda: dcs_view(cluster).writer == "node2", 30, "node2 to be the writer")
    before, started = pids(cluster), time.time()
    user, password = credentials(cluster)
    first_id = int(query(cluster, "SELECT COALESCE(MAX(id), 0) + 1 FROM app.acks")[0][0])
    client = AckWriter(PROXY_HOST, WRITER_PORT, user, password, first_id=first_id).start()
    try:
        wait_for(lambda: len(client.acked) > 50, 30, "the client to write")
        rolled_at = time.monotonic()
        result = cli("restart", "--dir", str(cluster), "node3", "node2", "node1", "--yes", timeout=900)
        print(result.stdout)
    finally:
        client.stop()
    assert "rolling restart of node1, node3, node2" in result.stdout, result.stdout
    assert "done: node1, node3, node2 restarted" in result.stdout, result.stdout
    assert "node2 holds the writer role: switching over to node1" in result.stdout, result.stdout
    assert result.stdout.count("Synced") >= 3 and result.stdout.count(" by IST") == 3, result.stdout
    after = pids(cluster)
    assert all(after[n] is not None and after[n] != before[n] for n in NODES), (before, after)
    assert roll_restarts_since(cluster, started) == ["node1", "node3", "node2"]
    view = dcs_view(cluster)
    assert view.writer == "node1" and view.roll is None and not view.restarts
    # One switchover for the clients: the writer endpoint reached node2, then node1, nothing else.
    reached = [n for i, n in enumerate(client.reached) if i == 0 or client.reached[i - 1] != n]
    assert reached == ["node2", "node1"], client.reached
    print(f"rolling restart under writes: longest gap between acknowledged writes "
          f"{client.longest_gap_after(rolled_at):.2f} s, {len(client.acked)} writes acknowledged")
    acked = {int(row[0]) for row in query(cluster, f"SELECT id FROM app.acks WHERE id >= {first_id}")}
    assert set(client.acked) <= acked, "acknowledged writes were lost"
    assert all(row["version"].startswith("10.") for row in members(cluster).values())


def test_a_killed_cli_interrupts_the_roll_and_resume_finishes_it(cluster: Path) -> None:
    started = time.time()
    driver = subprocess.Popen([*CLI, "restart", "--dir", str(cluster), "--yes"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        def stopping() -> str | None:
            view = dcs_view(cluster)
            return next((n for n, r in view.restarts.items() if r.phase == STOPPING), None)

        first = str(wait_for(stopping, 120, "the first node's agent to stop mariadbd"))
        driver.kill()
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    # The node being restarted finishes its restart and stays drained; nothing else happens.
    wait_for(lambda: dcs_view(cluster).restarts[first].phase == DONE, 180, f"{first}'s restart to finish")
    listing = str(wait_for(lambda: (lambda out: out if "INTERRUPTED" in out else None)(
        cli("list", "--dir", str(cluster)).stdout), 30, "list to show the roll interrupted"))
    assert f"{first} is being restarted" in listing and "--resume" in listing, listing
    view = dcs_view(cluster)
    assert view.maintenance == {first} and view.members[first].is_synced
    assert roll_restarts_since(cluster, started) == [first]
    refused = cli("restart", "--dir", str(cluster), "--yes", check=False)
    assert refused.returncode == 1 and "is already recorded" in refused.stderr, refused.stderr

    result = cli("restart", "--dir", str(cluster), "--resume", timeout=900)
    assert "resuming rolling restart" in result.stdout and "done:" in result.stdout, result.stdout
    restarted = roll_restarts_since(cluster, started)
    assert sorted(restarted) == sorted(NODES) and restarted[0] == first, restarted  # each once, none twice


def test_a_node_that_does_not_come_back_halts_the_roll_with_its_log_lines(cluster: Path) -> None:
    writer = dcs_view(cluster).writer
    victim = min(n for n in NODES if n != writer)  # the first of the order
    set_extra_option(cluster, victim, {BOGUS: "1"})
    respawn_agent(cluster, victim)  # the new agent adopts the running server; its next start fails
    wait_for(lambda: status(victim)["routing"]["healthy"], 60, f"{victim}'s new agent to adopt mariadbd")
    result = cli("restart", "--dir", str(cluster), "--yes", check=False, timeout=900)
    assert result.returncode == 1, result.stdout
    assert f"{victim} did not come back" in result.stderr and BOGUS in result.stderr, result.stderr
    assert "HALTED" in cli("list", "--dir", str(cluster)).stdout
    view = dcs_view(cluster)
    assert view.roll is not None and view.roll.halted and view.maintenance == {victim}
    assert all(view.members[n].is_synced for n in NODES if n != victim)

    set_extra_option(cluster, victim, {})
    respawn_agent(cluster, victim)  # a person fixed the node: it rejoins, and its request turns done
    wait_for(lambda: dcs_view(cluster).restarts[victim].phase == DONE, 180, f"{victim} to rejoin")
    result = cli("restart", "--dir", str(cluster), "--resume", "--yes", timeout=900)
    assert "done:" in result.stdout, result.stdout


def test_abort_ends_a_recorded_roll_and_undrains(cluster: Path) -> None:
    driver = subprocess.Popen([*CLI, "restart", "--dir", str(cluster), "--yes"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: dcs_view(cluster).maintenance, 120, "the first node to be drained")
        driver.kill()
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    result = cli("restart", "--dir", str(cluster), "--abort")
    assert "aborted" in result.stdout, result.stdout
    view = dcs_view(cluster)
    assert view.roll is None and not view.maintenance and view.roll_driver is None  # the next roll may start
    assert "no rolling restart is recorded" in cli("restart", "--dir", str(cluster), "--resume", check=False).stderr
    # A node whose restart had begun when the roll was aborted rejoins by itself, and serves again.
    wait_for(lambda: settled(cluster) and not dcs_view(cluster).restarts, 180, "the cluster whole again")


# ---- rolling upgrade (last: it leaves the nodes on wrapped binaries) ------------------------------------------
def test_rolling_upgrade_onto_installed_binaries_runs_mariadb_upgrade_everywhere(cluster: Path) -> None:
    for node in NODES:
        wrap_binaries(cluster, node, REAL_VERSION)
    wait_for(lambda: settled(cluster), 60, "the agents back")
    refused = cli("upgrade", "--dir", str(cluster), "--yes", check=False)
    assert refused.returncode == 1 and "nothing to upgrade" in refused.stderr, refused.stderr

    wrap_binaries(cluster, "node1", NEW_VERSION)  # packages installed on one host only
    wait_for(lambda: "pending upgrade to 10.11.99" in members(cluster)["node1"]["version"], 30, "node1 pending")
    refused = cli("upgrade", "--dir", str(cluster), "--yes", check=False)
    assert "install the same packages on every host first" in refused.stderr, refused.stderr

    for node in NODES:
        wrap_binaries(cluster, node, "11.8.2-MariaDB-test")
    wait_for(lambda: all("pending upgrade to 11.8.2" in r["version"] for r in members(cluster).values()), 30,
             "every node pending 11.8.2")
    refused = cli("upgrade", "--dir", str(cluster), "--yes", check=False)
    assert "more than one major step" in refused.stderr, refused.stderr

    started = time.time()
    for node in NODES:
        wrap_binaries(cluster, node, NEW_VERSION)
    wait_for(lambda: all("pending upgrade to 10.11.99" in r["version"] for r in members(cluster).values()), 30,
             "every node pending 10.11.99")
    result = cli("upgrade", "--dir", str(cluster), "--yes", timeout=1200)
    assert "rolling upgrade" in result.stdout and f"run {NEW_VERSION}" in result.stdout, result.stdout
    assert result.stdout.count("mariadb-upgrade done") == 3 and result.stdout.count(" by IST") == 3, result.stdout
    rows = members(cluster)
    assert all(row["server_version"] == NEW_VERSION and row["version"] == "10.11.99" for row in rows.values()), rows
    events = [e for e in dcs_view(cluster).history if e.at >= started]
    assert sorted(e.member for e in events if e.action == "upgrade") == list(NODES), events
    for node in NODES:
        assert query(cluster, "SELECT VERSION()", node) == [[NEW_VERSION]]
        info = EmbeddedCluster(cluster).node(node).config.data_dir / "mysql_upgrade_info"  # it writes this last
        assert info.stat().st_mtime >= started, f"mariadb-upgrade did not run on {node}: {events}"
