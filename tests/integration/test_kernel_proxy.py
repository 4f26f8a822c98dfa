"""The kernel endpoints (`up --proxy-mode kernel`, proxy/kernel.py): nftables DNAT rules that the proxy
manager points at the members. Real nftables and conntrack on this host; nodes on 127.0.0.56-58, the
endpoints on 127.0.0.55:3306 (writer) and :3307 (reader). One cluster for the module; each test leaves
it with three Synced nodes and a writer."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.mariadb import sql
from tests.integration.conftest import cli, destroy, members, new_cluster_path
from tests.waiting import wait_for

ENDPOINT = "127.0.0.55"
WRITER_PORT, READER_PORT = 3306, 3307
BINDS = ("--writer-bind", f"{ENDPOINT}:{WRITER_PORT}", "--reader-bind", f"{ENDPOINT}:{READER_PORT}")


def tables() -> list[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.startswith("table ip ")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", "127.0.0.56", "--proxy-mode", "kernel", *BINDS)
        yield directory
    finally:
        destroy(directory)


def connect(directory: Path, port: int) -> pymysql.connections.Connection:
    credentials = load_credentials(directory / "credentials.yaml")
    return sql.connect_tcp(ENDPOINT, port, credentials, timeout=3.0)


def node_behind(directory: Path, port: int) -> str:
    connection = connect(directory, port)
    try:
        return sql.node_name(connection)
    finally:
        connection.close()


def writer(directory: Path) -> str | None:
    return next((n for n, row in members(directory).items() if row["role"] == "writer"), None)


def settled(directory: Path) -> str:
    """Three Synced members and a writer the writer endpoint leads to; the writer's name."""
    def ready() -> str | None:
        rows = members(directory)
        name = writer(directory)
        if name and all(r["state"] == "Synced" for r in rows.values()) and node_behind(directory, WRITER_PORT) == name:
            return name
        return None
    return str(wait_for(ready, 120, "three Synced members and the writer endpoint on the writer"))


def readers_reached(directory: Path, tries: int = 30) -> set[str]:
    return {node_behind(directory, READER_PORT) for _ in range(tries)}


def test_endpoints_lead_to_the_writer_and_spread_reads(cluster: Path) -> None:
    name = settled(cluster)
    assert node_behind(cluster, WRITER_PORT) == name
    assert len(readers_reached(cluster)) >= 2, "the reader endpoint spreads new connections over the readers"
    assert f"galera_pilot_{EmbeddedCluster(cluster).cluster_name.replace('-', '_')}_{WRITER_PORT}" in tables()
    assert "started in kernel mode" in (cluster / "proxy" / "proxy.log").read_text()
    assert not (cluster / "proxy" / "haproxy.cfg").exists(), "no HAProxy in kernel mode"


def test_a_switchover_cuts_sessions_on_the_old_writer(cluster: Path) -> None:
    old = settled(cluster)
    session = connect(cluster, WRITER_PORT)
    assert sql.node_name(session) == old
    target = next(n for n in ("node1", "node2", "node3") if n != old)
    cli("switchover", "--dir", str(cluster), "--to", target)

    def cut() -> bool:
        try:
            sql.node_name(session)
        except pymysql.MySQLError:
            return True
        return False
    wait_for(cut, 30, f"the session on {old} to be cut", interval=0.1)
    session.close()
    # The cut may come in the round that saw no writer yet (the old one gave the role up, the new one had
    # not claimed it): new connections are refused until the next round points the endpoint at the target.
    wait_for(lambda: node_behind(cluster, WRITER_PORT) == target, 30, f"the writer endpoint to lead to {target}")
    wait_for(lambda: "writer connection" in (cluster / "proxy" / "proxy.log").read_text(), 10,
             "the manager to log the cut")


def test_maintenance_takes_a_node_out_of_the_reader_endpoint(cluster: Path) -> None:
    name = settled(cluster)
    drained = next(n for n in ("node1", "node2", "node3") if n != name)
    cli("maintenance", "--dir", str(cluster), "on", drained)
    try:
        wait_for(lambda: drained not in readers_reached(cluster, 20), 30, f"{drained} out of the reader endpoint")
        assert drained not in readers_reached(cluster, 30)
    finally:
        cli("maintenance", "--dir", str(cluster), "off", drained)
    wait_for(lambda: drained in readers_reached(cluster, 30), 60, f"{drained} back in the reader endpoint")


def test_the_writer_endpoint_follows_a_failover(cluster: Path) -> None:
    old = settled(cluster)
    pid = int((cluster / old / "run" / "mariadbd.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (w := writer(cluster)) not in (None, old) and node_behind(cluster, WRITER_PORT) == w, 60,
             "the writer endpoint to lead to the new writer")
    settled(cluster)  # the killed node rejoins


def test_a_killed_manager_leaves_the_rules_and_down_removes_them(cluster: Path) -> None:
    name = settled(cluster)
    embedded = EmbeddedCluster(cluster)
    pid = embedded.proxy.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: embedded.proxy.pid() is None, 10, "the proxy manager to be gone")
    table = f"galera_pilot_{embedded.cluster_name.replace('-', '_')}_{WRITER_PORT}"
    assert table in tables(), "the rules outlive a killed manager"
    assert node_behind(cluster, WRITER_PORT) == name, "and keep leading clients to the writer"
    cli("up", "--dir", str(cluster), *BINDS)  # a new manager takes the table over (proxy.yaml keeps the mode)
    assert embedded.proxy.pid() is not None and node_behind(cluster, WRITER_PORT) == name
    cli("down", "--dir", str(cluster))
    assert table not in tables(), "down removes the endpoints' table"
    cli("up", "--dir", str(cluster), *BINDS)
    settled(cluster)
    pid = embedded.proxy.pid()
    assert pid is not None and table in tables()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: embedded.proxy.pid() is None, 10, "the proxy manager to be gone")
    cli("down", "--dir", str(cluster))  # no manager left to remove its table: down does
    assert table not in tables(), "down removes the table a killed manager left"
    cli("up", "--dir", str(cluster), *BINDS)  # the module fixture's teardown expects a folder it can stop
