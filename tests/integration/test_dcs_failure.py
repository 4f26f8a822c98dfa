"""The DCS goes away under load (etcd paused with SIGSTOP, then killed): Galera needs no DCS to replicate,
so the cluster keeps serving and passing health checks, while every agent says "DCS unavailable, taking no
decision" and decides nothing (not even restarting a crashed mariadbd) until etcd is back. The writer
keeps its role meanwhile as long as every other member of its Primary Component agrees (failsafe.py).

This module always runs on etcd (its own single-member etcd, which it pauses, kills and restarts on the
same ports and data), whatever DCS the rest of the suite uses.
"""

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
from galera_pilot.tls.http import api
from tests.unit.dcs_backends import EtcdProcess, etcd_process
from tests.waiting import wait_for

from .conftest import cli, destroy, http_json, http_status, mariadbd_pid, members, new_cluster_path, query
from .routing_helpers import WriterPoller

BASE = "127.0.0.70"
NODES = ("node1", "node2", "node3")


class Writer(threading.Thread):
    """One row at a time into app.load on one node, reconnecting after errors; remembers acknowledged ids."""

    def __init__(self, directory: Path, node: str) -> None:
        super().__init__(name=f"writer-{node}", daemon=True)
        config = EmbeddedCluster(directory).node(node).config
        self.address, self.port = config.address, config.ports.client
        self.credentials = load_credentials(directory / "credentials.yaml")
        self.acked: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        connection = None
        next_id = 1
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = sql.connect_tcp(self.address, self.port, self.credentials, timeout=2.0)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO app.load VALUES (%s)", (next_id,))
                self.acked.append(next_id)
            except Exception as error:  # a stall or a view change: note it and reconnect
                self.errors.append(repr(error))
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.2)
            next_id += 1
            time.sleep(0.02)
        if connection is not None:
            connection.close()

    def wait_for_more(self, count: int, timeout: float, what: str) -> None:
        target = len(self.acked) + count
        wait_for(lambda: len(self.acked) >= target, timeout, f"{count} more acknowledged writes {what}")


def status(directory: Path, node: str) -> dict:
    """The agent's /status, straight from its REST API (the CLI needs the DCS, this does not)."""
    return http_json(EmbeddedCluster(directory).node(node).config.api_url + "/status")


def post(url: str, body: bytes) -> tuple[int, dict]:
    """POST body; the status and the JSON answer, for errors too."""
    code, answer = api().request("POST", url, body=body, timeout=2.0, authorized=True)
    return code, json.loads(answer or b"{}")


def health(directory: Path, node: str) -> int:
    """/health; urllib's 2 s timeout raising here would mean the API stalled behind the hung DCS."""
    return http_status(EmbeddedCluster(directory).node(node).config.api_url + "/health")


def agent_log(directory: Path, node: str) -> str:
    return (directory / node / "log" / "agent.log").read_text(errors="replace")


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    with etcd_process(os.environ.get("GP_TEST_ETCD_HOST", "127.0.0.1")) as process:
        yield process


@pytest.fixture
def cluster(etcd: EtcdProcess) -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", BASE, "--dcs", etcd.server.url,
            "--cluster-name", f"dcsfail{os.getpid()}")
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.load (id INT PRIMARY KEY)", "node1")
        yield directory
    finally:
        destroy(directory)  # before the etcd fixture's teardown: the agents record their stop if they can


def test_etcd_paused_then_killed_galera_serves_and_agents_take_no_decision(etcd: EtcdProcess,
                                                                           cluster: Path) -> None:
    writer = Writer(cluster, "node1")
    writer.start()
    try:
        writer.wait_for_more(20, 60, "before the DCS outage")
        outage_started = time.time()

        # 1. etcd hangs (SIGSTOP): requests connect, then time out.
        etcd.pause()
        wait_for(lambda: all("DCS unavailable, taking no decision" in status(cluster, n)["activity"] for n in NODES),
                 60, "every agent to report the DCS as unavailable")
        writer.wait_for_more(20, 60, "while etcd is paused")
        for node in NODES:
            assert health(cluster, node) == 200, f"{node} failed its health check while etcd was paused"
        # `list` says the DCS is unreachable and shows what the members' REST APIs say instead (issue 9).
        listed = cli("list", "--dir", str(cluster)).stdout.splitlines()
        assert "is unreachable" in listed[0] and "no etcd endpoint answered" in listed[0], listed
        assert "showing what the members' REST APIs say" in listed[0], listed
        rows = {line.split()[0]: line for line in listed[2:] if line.startswith("node")}
        assert sorted(rows) == sorted(NODES) and all("Synced" in row for row in rows.values()), listed
        etcd.resume()
        first_outage = (outage_started, time.time())
        wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster).values()),
                 60, "every member to be back in the DCS after SIGCONT")

        # 2. etcd dies (SIGKILL) and, while it is gone, node3's mariadbd crashes: no restart without the DCS.
        killed_at = time.time()
        etcd.kill()
        victim = mariadbd_pid(cluster, "node3")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(victim), 10, "node3's mariadbd to die")
        wait_for(lambda: "DCS unavailable, taking no decision" in status(cluster, "node3")["activity"], 60,
                 "node3's agent to find the DCS unavailable")
        writer.wait_for_more(20, 120, "from the survivors while etcd is down")
        time.sleep(3)  # several more agent cycles without the DCS
        assert mariadbd_pid(cluster, "node3") is None, "node3's agent restarted mariadbd without the DCS"
        assert health(cluster, "node1") == 200 and health(cluster, "node2") == 200
        assert health(cluster, "node3") == 503
        for node in NODES:
            assert "DCS unavailable, taking no decision" in agent_log(cluster, node), node
        dcs_back_at = time.time()
        etcd.start()
        wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster).values()),
                 180, "node3 to rejoin once etcd is back")
        writer.wait_for_more(10, 60, "after etcd came back")
    finally:
        writer.stop.set()
        writer.join(60)

    events = json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
    # Between the two outages the DCS works and the agents may decide (e.g. retake the writer lease that
    # expired while etcd was paused); within them, nothing may be recorded.
    during = [e for e in events if any(start <= e["at"] < end for start, end in (first_outage,
                                                                                 (killed_at, dcs_back_at)))]
    assert not during, f"decisions were recorded while the DCS was unavailable: {during}"
    after = [e for e in events if e["at"] >= dcs_back_at]
    assert not any(e["action"] == "bootstrap" for e in after), after
    assert any(e["action"] == "join" and e["member"] == "node3" for e in after), after
    for node in NODES:
        got = {int(r[0]) for r in query(cluster, "SELECT id FROM app.load", node)}
        missing = sorted(set(writer.acked) - got)
        assert not missing, f"{node} lacks acknowledged writes {missing[:10]}"


def test_the_writer_keeps_its_role_without_the_dcs_while_every_peer_agrees(etcd: EtcdProcess,
                                                                           cluster: Path) -> None:
    embedded = EmbeddedCluster(cluster)
    address_of = {node: embedded.node(node).config.address for node in NODES}
    wait_for(lambda: embedded.snapshot().writer is not None, 60, "a writer to be elected")
    writer = embedded.snapshot().writer
    assert writer is not None
    peer = next(n for n in NODES if n != writer)
    poller = WriterPoller(list(address_of.values())).start()
    try:
        wait_for(lambda: poller.samples and poller.samples[-1][1] == {address_of[writer]}, 30,
                 f"{writer} alone to answer /writer 200")
        # A request from a member that is not the writer, or one that is not JSON, is refused.
        peer_api = embedded.node(peer).config.api_url + "/failsafe"
        code, answer = post(peer_api, json.dumps({"writer": "node9", "ttl": 3}).encode())
        assert code == 409 and answer["granted"] is False and f"last saw is {writer}" in answer["reason"], answer
        assert post(peer_api, b"not json")[0] == 400
        assert post(peer_api, json.dumps({"writer": writer, "ttl": "forever"}).encode())[0] == 409
        paused_at = time.monotonic()
        etcd.pause()
        wait_for(lambda: "keeps the writer role without the DCS" in status(cluster, writer)["routing"][
            "writer_failsafe"], 30, f"{writer} to keep its role through its peers")
        time.sleep(8)  # more than twice the 3 s lease: without failsafe the role would have lapsed twice
        during = [writers for at, writers in poller.samples if at > paused_at]
        assert during and all(writers == {address_of[writer]} for writers in during), \
            f"/writer answers while etcd was paused: {sorted(set(during), key=len)}"

        # One peer's agent hangs: it cannot agree, so the writer gives the role up (one lease at most).
        agent = embedded.node(peer).agent_pid()
        assert agent is not None
        os.kill(agent, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            wait_for(lambda: poller.samples[-1][0] > stopped_at and not poller.samples[-1][1], 30,
                     "the writer to give its role up once a peer does not answer")
            assert "did not answer" in status(cluster, writer)["routing"]["writer_failsafe"]
        finally:
            os.kill(agent, signal.SIGCONT)
        etcd.resume()
        wait_for(lambda: poller.samples[-1][1] and len(poller.samples[-1][1]) == 1, 60,
                 "one writer again once etcd is back")
    finally:
        poller.stop()
    assert poller.longest_double_writer() == 0.0
