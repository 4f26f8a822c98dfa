"""A real 3-node cluster: up, write/read, health, security, crash restart, a fourth node, down/up."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from galera_pilot.tls.http import api
from tests.waiting import wait_for

from .conftest import (
    agent_url,
    cli,
    destroy,
    http_json,
    http_status,
    mariadbd_pid,
    members,
    new_cluster_path,
    query,
    test_address,
)

NODE2 = test_address("127.0.0.3")

LIST_KEYS = {"name", "address", "role", "state", "cluster_status", "cluster_size", "cluster_uuid", "seqno", "disk",
             "version", "server_version", "installed_version", "paused", "pending_restart",
             "cert", "activity", "tls_not_after"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory))
        assert "3 nodes Synced" in result.stdout
        yield directory
    finally:
        destroy(directory)


def all_synced(directory: Path, size: int) -> bool:
    rows = members(directory)
    return len(rows) == size and all(
        r["state"] == "Synced" and r["cluster_status"] == "Primary" and r["cluster_size"] == size for r in rows.values()
    )


def test_up_brings_three_synced_members_of_one_cluster(cluster: Path) -> None:
    rows = members(cluster)
    assert sorted(rows) == ["node1", "node2", "node3"]
    assert {r["address"] for r in rows.values()} == {test_address(f"127.0.0.{n}") for n in (2, 3, 4)}
    for row in rows.values():
        assert set(row) == LIST_KEYS
        assert (row["state"], row["cluster_status"], row["cluster_size"]) == ("Synced", "Primary", 3)
        assert row["cert"].endswith(" d") and row["tls_not_after"], row  # days left of the node certificate
    assert len({r["cluster_uuid"] for r in rows.values()}) == 1
    table = cli("list", "--dir", str(cluster)).stdout
    assert "node3" in table and "Synced" in table


def test_write_on_one_node_is_read_on_the_others(cluster: Path) -> None:
    query(cluster, "CREATE DATABASE IF NOT EXISTS app", "node1")
    query(cluster, "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, v VARCHAR(20))", "node1")
    query(cluster, "REPLACE INTO app.t VALUES (1, 'from node1')", "node1")
    query(cluster, "REPLACE INTO app.t VALUES (2, 'from node2')", "node2")
    for node in ("node1", "node2", "node3"):
        assert query(cluster, "SELECT id, v FROM app.t ORDER BY id", node) == [["1", "from node1"], ["2", "from node2"]]


def test_rest_api_health_and_status(cluster: Path) -> None:
    assert http_status(agent_url(NODE2, "/health")) == 200
    status = http_json(agent_url(NODE2, "/status"))
    assert status["name"] == "node2" and status["state"] == "Synced" and status["cluster_size"] == 3
    assert http_status(agent_url(NODE2, "/nope")) == 404
    assert api().request("HEAD", agent_url(NODE2, "/health")) == (200, b"")


def test_secrets_stay_private(cluster: Path) -> None:
    credentials = yaml.safe_load((cluster / "credentials.yaml").read_text())
    assert stat.S_IMODE((cluster / "credentials.yaml").stat().st_mode) == 0o600
    for node in ("node1", "node2", "node3"):
        mode = stat.S_IMODE((cluster / node / "my.cnf").stat().st_mode)
        assert mode & 0o007 == 0, f"{node}/my.cnf is world-accessible ({oct(mode)})"
    secrets = [credentials["admin_password"], credentials["sst_password"]]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        assert not any(s in cmdline for s in secrets), f"a password is on the command line of pid {proc.pid}"
    for log in cluster.glob("node*/log/*"):
        text = log.read_text(errors="replace")
        assert not any(s in text for s in secrets), f"a password is in {log}"


def test_mariadbd_runs_unprivileged_and_has_no_anonymous_users(cluster: Path) -> None:
    for node in ("node1", "node2", "node3"):
        pid = mariadbd_pid(cluster, node)
        assert pid is not None
        assert psutil.Process(pid).username() == "mysql"
        assert query(cluster, "SELECT COUNT(*) FROM mysql.user WHERE user = ''", node) == [["0"]]


def test_up_again_starts_nothing_new(cluster: Path) -> None:
    result = cli("up", "--dir", str(cluster))
    assert "agents started: none" in result.stdout


def test_killed_mariadbd_is_restarted_and_rejoins(cluster: Path) -> None:
    old = mariadbd_pid(cluster, "node3")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    query(cluster, "REPLACE INTO app.t VALUES (3, 'while node3 was down')", "node1")

    def back() -> bool:
        pid = mariadbd_pid(cluster, "node3")
        return pid not in (None, old) and all_synced(cluster, 3)

    wait_for(back, 120, "node3 to be restarted by its agent and Synced again")
    assert query(cluster, "SELECT v FROM app.t WHERE id = 3", "node3") == [["while node3 was down"]]
    events = json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
    node3 = [e["action"] for e in events if e["member"] == "node3"]
    assert "evict" in node3, f"fast eviction was not recorded: {events}"
    evict = next(e for e in events if e["member"] == "node3" and e["action"] == "evict")
    assert sorted(evict["inputs"]["evicted_by"]) == ["node1", "node2"], "every survivor should evict at once"
    for node in ("node1", "node2", "node3"):
        rows = query(cluster, "SHOW STATUS LIKE 'wsrep_evs_evict_list'", node)
        assert rows in ([], [["wsrep_evs_evict_list", ""]]), f"{node} still has an evict list: {rows}"
    assert node3[-1] == "join", f"node3's last decision should be its rejoin: {events}"
    log = (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace")
    assert "IST received" in log.rsplit("Starting MariaDB", 1)[-1], "the restart should rejoin by IST, not SST"


def is_dead(pid: int) -> bool:
    """Gone, or a zombie its paused parent (the agent) cannot reap yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_crash_with_a_transaction_in_flight_still_rejoins_by_ist(cluster: Path) -> None:
    """Galera blanks grastate.dat's cluster UUID while a transaction is in flight, so a server killed under
    load leaves `uuid: 00000000-…`. The agent must ask InnoDB (--wsrep-recover), put the UUID back (Galera
    ignores a start position whose UUID differs from the file's) and rejoin by IST, keeping its datadir.
    The agent is paused while the file is blanked by hand: the crash of a loaded server, made deterministic."""
    agent = int((cluster / "node3" / "run" / "agent.pid").read_text())
    old = mariadbd_pid(cluster, "node3")
    assert old is not None
    grastate = cluster / "node3" / "data" / "grastate.dat"
    os.kill(agent, signal.SIGSTOP)
    try:
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: is_dead(old), 10, "node3's mariadbd to die")
        text = grastate.read_text()
        uuid = next(line.split()[1] for line in text.splitlines() if line.startswith("uuid:"))
        grastate.write_text(text.replace(uuid, "00000000-0000-0000-0000-000000000000"))
        query(cluster, "CREATE TABLE IF NOT EXISTS app.inflight (id INT PRIMARY KEY, v VARCHAR(20))", "node1")
        query(cluster, "REPLACE INTO app.inflight VALUES (1, 'while blanked')", "node1")
    finally:
        os.kill(agent, signal.SIGCONT)

    def back() -> bool:
        pid = mariadbd_pid(cluster, "node3")
        return pid not in (None, old) and all_synced(cluster, 3)

    wait_for(back, 120, "node3 to be restarted and Synced again")
    assert query(cluster, "SELECT v FROM app.inflight WHERE id = 1", "node3") == [["while blanked"]]
    assert not list((cluster / "node3").glob("data.refused-*")), "the datadir was moved aside"
    log = (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace").rsplit("Starting MariaDB", 1)[-1]
    # A joiner that asks for an IST names its own position; one that needs a full SST names the zero UUID.
    assert f"IST uuid:{uuid} f:" in log and "IST received" in log, "the restart took a full SST"
    agent_log = (cluster / "node3" / "log" / "agent.log").read_text(errors="replace")
    assert f"restored {uuid} from InnoDB" in agent_log


def test_fourth_node_joins_running_cluster(cluster: Path) -> None:
    result = cli("up", "--dir", str(cluster), "--nodes", "4")
    assert "agents started: node4" in result.stdout
    rows = members(cluster)
    assert rows["node4"]["address"] == test_address("127.0.0.5")
    assert all_synced(cluster, 4)
    assert query(cluster, "SELECT COUNT(*) FROM app.t", "node4") == [["3"]]


def test_down_then_up_keeps_the_data(cluster: Path) -> None:
    query(cluster, "REPLACE INTO app.t VALUES (4, 'before down')", "node2")
    result = cli("down", "--dir", str(cluster))
    assert "stopped" in result.stdout
    for node in ("node1", "node2", "node3", "node4"):
        assert mariadbd_pid(cluster, node) is None
    assert all(r["state"] == "stopped" for r in members(cluster).values())
    grastate = (cluster / "node1" / "data" / "grastate.dat").read_text()
    assert "seqno:   -1" not in grastate, "a graceful stop must record the real seqno"
    started = time.monotonic()
    cli("up", "--dir", str(cluster))
    assert time.monotonic() - started < 300
    assert all_synced(cluster, 4)
    for node in ("node1", "node2", "node3", "node4"):
        assert query(cluster, "SELECT v FROM app.t WHERE id = 4", node) == [["before down"]]
