"""The dashboard's pure parts (series, frame) and its HTTP side against a fake cluster observation: the
page and its script are served, /api/state and the event stream carry frames and samples, a stream is
woken by each look, and a token, when one is required, is checked (bearer or basic, nothing else)."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import ssl
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.cluster import Cluster, HistoryEvent, Member
from galera_pilot.control.target import ClusterTarget
from galera_pilot.dashboard.frame import Identity, Observation, build_frame, changed, role_of, timeline, writer_since
from galera_pilot.dashboard.hub import Hub
from galera_pilot.dashboard.run import exposure, serve
from galera_pilot.dashboard.series import Reading, Series, derive
from galera_pilot.dashboard.server import DashboardServer, authorized
from galera_pilot.dashboard.watch import DcsNudge
from galera_pilot.dcs import get_dcs
from galera_pilot.dcs.history import NOTIFICATION
from galera_pilot.errors import PilotError
from galera_pilot.tls.authority import init_authority

IDENTITY = Identity("galera", "the folder /x", "sqlite:///x/dcs.sqlite", {"writer": "127.0.0.1:3306"})


def row(name: str, state: str = "Synced", role: str = "") -> dict:
    return {"name": name, "address": "127.0.0.2", "role": role, "state": state, "cluster_status": "Primary",
            "cluster_size": 3, "cluster_uuid": "u-1", "seqno": 10, "version": "10.11.19", "activity": "ok"}


def status(seqno: int = 10, read: bool = True, writer: bool = False, paused_ns: int = 0) -> dict:
    return {"running": True, "seqno": seqno,
            "routing": {"healthy": True, "health": "Primary and Synced", "read": read, "read_reason": "r",
                        "writer": writer, "writer_reason": "w", "recv_queue": 2},
            "wsrep": {"send_queue": 1, "flow_control_paused_ns": paused_ns}}


# ---- series ---------------------------------------------------------------------------------------
def test_rates_come_from_consecutive_readings() -> None:
    sample = derive(Reading(100.0, 10, 0, 0), Reading(102.0, 30, 4, 500_000_000))
    assert sample.commits_per_second == 10.0
    assert sample.recv_queue == 4
    assert sample.flow_control == 0.25


def test_a_restart_or_a_silent_member_is_a_gap_not_a_spike() -> None:
    assert derive(Reading(100.0, 5000, 0, 9), Reading(101.0, 3, 0, 1)).commits_per_second is None  # restarted
    assert derive(Reading(100.0, 5000, 0, 9), Reading(101.0, 3, 0, 1)).flow_control is None
    assert derive(None, Reading(101.0, 3, 0, 1)).commits_per_second is None
    series = Series()
    series.add("node1", Reading(100.0, 10, 0, 0))
    series.add("node1", Reading(101.0, None, None, None))  # did not answer
    assert series.add("node1", Reading(102.0, 20, 0, 0)).commits_per_second is None  # no rate across the gap
    assert series.add("node1", Reading(103.0, 25, 0, 0)).commits_per_second == 5.0


@given(st.lists(st.tuples(st.floats(0.01, 30.0), st.integers(0, 10_000), st.integers(0, 10**9)), max_size=80))
def test_the_window_is_kept_and_flow_control_is_a_share(steps: list[tuple[float, int, int]]) -> None:
    series = Series(window=60.0)
    at, seqno, paused = 1000.0, 0, 0
    for gap, commits, paused_more in steps:
        at, seqno, paused = at + gap, seqno + commits, paused + paused_more
        sample = series.add("n", Reading(at, seqno, 0, paused))
        assert sample.flow_control is None or 0.0 <= sample.flow_control <= 1.0
        assert sample.commits_per_second is None or sample.commits_per_second >= 0
    kept = series.since(0.0).get("n", [])
    assert all(s[0] >= at - 60.0 - 0.001 for s in kept)  # the page gets times to the millisecond
    assert len(series.since(at)["n"] if steps else []) == 0


def test_forget_drops_removed_members() -> None:
    series = Series()
    series.add("node1", Reading(1.0, 1, 0, 0))
    series.add("node4", Reading(1.0, 1, 0, 0))
    series.forget({"node1"})
    assert list(series.since()) == ["node1"]


# ---- frame ----------------------------------------------------------------------------------------
def test_cards_carry_the_checks_queues_and_roles() -> None:
    snapshot = Cluster(members={"node1": Member("node1", "127.0.0.2")}, writer="node1")
    observation = Observation(at=5.0, rows=[row("node1", role="writer"), row("node2"), row("node3", "stopped")],
                              snapshot=snapshot,
                              statuses={"node1": status(writer=True), "node2": status()},
                              status_errors={"node3": "https://127.0.0.4:8008 does not answer (refused)"})
    frame = build_frame(IDENTITY, observation, {"node1": 0.5})
    cards = {c["name"]: c for c in frame["members"]}
    assert cards["node1"]["role"] == "writer" and cards["node1"]["checks"]["writer"]["ok"]
    assert cards["node1"]["flow_control"] == 0.5 and cards["node1"]["send_queue"] == 1
    assert cards["node2"]["role"] == "reader" and cards["node2"]["recv_queue"] == 2
    assert cards["node3"]["checks"] is None and "does not answer" in cards["node3"]["api"]
    assert frame["cluster"]["writer"] == "node1" and frame["cluster"]["synced"] == 2
    assert frame["cluster"]["dcs_ok"] and frame["cluster"]["uuid"] == "u-1"


def test_a_member_whose_read_check_fails_is_no_reader() -> None:
    assert role_of(row("node2"), {"read": {"ok": False, "reason": ""}}) == ""
    assert role_of(row("node2", role="maintenance"), {"read": {"ok": True, "reason": ""}}) == "maintenance"
    assert role_of(row("node2"), None) == ""


def test_during_an_outage_the_writer_is_the_agents_agreed_view() -> None:
    rows = [row("node1", role="writer"), row("node2")]
    frame = build_frame(IDENTITY, Observation(at=1.0, rows=rows, dcs_error="the DCS is unreachable"))
    assert frame["cluster"]["writer"] == "node1" and not frame["cluster"]["dcs_ok"]
    assert frame["history"] == []
    two = [row("node1", role="writer"), row("node2", role="writer")]
    assert build_frame(IDENTITY, Observation(at=1.0, rows=two, dcs_error="x"))["cluster"]["writer"] is None


def test_timeline_is_newest_first_without_notifications_and_knows_the_writers_start() -> None:
    events = [HistoryEvent(1.0, "node1", "writer", "took it"), HistoryEvent(2.0, "node2", NOTIFICATION, "x"),
              HistoryEvent(3.0, "node2", "writer", "took it"), HistoryEvent(4.0, "node1", "restart", "r")]
    assert [e["at"] for e in timeline(events)] == [4.0, 3.0, 1.0]
    assert writer_since(events, "node2") == 3.0
    assert writer_since(events, "node3") is None


def test_only_the_frames_time_changing_is_no_change() -> None:
    frame = build_frame(IDENTITY, Observation(at=1.0, rows=[row("node1")]))
    assert not changed(frame, {**frame, "at": 2.0})
    assert changed(None, frame)
    assert changed(frame, build_frame(IDENTITY, Observation(at=1.0, rows=[row("node1", "Joined")])))


# ---- exposure and authentication ------------------------------------------------------------------
def test_basic_or_bearer_token_only() -> None:
    basic = base64.b64encode(b"anyone:s3cret").decode()
    assert authorized("", None)
    assert authorized("Bearer s3cret", "s3cret") and authorized(f"Basic {basic}", "s3cret")
    assert not authorized("Bearer nope", "s3cret") and not authorized("", "s3cret")
    assert not authorized("Basic !!!", "s3cret") and not authorized("Token s3cret", "s3cret")


def test_a_non_loopback_bind_needs_the_token_and_a_certificate(tmp_path: Path) -> None:
    target = ClusterTarget("sqlite:///x", "galera", "the folder /x")
    assert exposure("127.0.0.9:8080", target, None, None).tls is None
    with pytest.raises(PilotError, match="token"):
        exposure("0.0.0.0:8080", target, None, None)
    token = tmp_path / "api-token"
    token.write_text("s3cret\n")
    target.token_file = token
    with pytest.raises(PilotError, match="--cert and --key"):
        exposure("10.0.0.1:8080", target, None, None)
    with pytest.raises(PilotError, match="both --cert and --key"):
        exposure("10.0.0.1:8080", target, tmp_path / "c.pem", None)
    with pytest.raises(PilotError, match="cannot use"):
        exposure("10.0.0.1:8080", target, tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(PilotError, match="ADDRESS:PORT"):
        exposure("nonsense", target, None, None)


# ---- the HTTP side against a fake observation -----------------------------------------------------
class FakeCluster:
    def __init__(self) -> None:
        self.seqno = 10
        self.state = "Synced"

    def observe(self) -> Observation:
        self.seqno += 5
        return Observation(at=1000.0 + self.seqno, rows=[row("node1", self.state, "writer")],
                           snapshot=Cluster(writer="node1"), statuses={"node1": status(self.seqno, writer=True)})


@pytest.fixture
def served() -> tuple[DashboardServer, Hub, FakeCluster]:
    fake = FakeCluster()
    hub = Hub(IDENTITY, fake.observe, interval=0.05, idle_interval=0.05)
    hub.look()
    server = DashboardServer(("127.0.0.1", 0), hub, token=None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, hub, fake
    hub.stop()
    server.shutdown()
    server.server_close()


def get(server: DashboardServer, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    connection.request("GET", path, headers=headers or {})
    return connection.getresponse()


def test_the_page_its_script_and_its_state_are_served(served: tuple[DashboardServer, Hub, FakeCluster]) -> None:
    server, _, _ = served
    page = get(server, "/")
    assert page.status == 200 and b"/static/app.js" in page.read()
    assert get(server, "/static/app.js").status == 200
    assert get(server, "/static/style.css").getheader("Content-Type").startswith("text/css")
    assert get(server, "/nothing").status == 404
    state = json.loads(get(server, "/api/state").read())
    assert state["frame"]["cluster"]["writer"] == "node1" and "node1" in state["series"]


def test_the_event_stream_starts_with_the_state_and_is_woken_by_each_look(
        served: tuple[DashboardServer, Hub, FakeCluster]) -> None:
    server, hub, fake = served
    hub.start()
    stream = get(server, "/events")
    assert stream.getheader("Content-Type") == "text/event-stream"
    events = []
    while len(events) < 4:
        kind = stream.fp.readline().decode().strip()
        if not kind.startswith("event:"):
            continue
        data = json.loads(stream.fp.readline().decode().partition(":")[2])
        events.append((kind.partition(": ")[2], data))
        if len(events) == 2:
            fake.state = "Joined"
    assert events[0][0] == "state" and events[0][1]["frame"]["members"][0]["state"] == "Synced"
    assert all(kind == "update" for kind, _ in events[1:])
    assert any(data.get("frame", {}).get("members", [{}])[0].get("state") == "Joined" for _, data in events[2:])
    assert all(data["series"].get("node1") for _, data in events[1:])  # each look adds a sample
    stream.close()


def test_a_required_token_is_asked_for(served: tuple[DashboardServer, Hub, FakeCluster]) -> None:
    server, _, _ = served
    server.token = "s3cret"
    refused = get(server, "/api/state")
    assert refused.status == 401 and refused.getheader("WWW-Authenticate").startswith("Basic")
    basic = base64.b64encode(b"x:s3cret").decode()
    assert get(server, "/api/state", {"Authorization": f"Basic {basic}"}).status == 200
    assert get(server, "/events", {"Authorization": "Bearer wrong"}).status == 401


def test_https_with_the_bundles_certificate_and_the_token(tmp_path: Path) -> None:
    """What a non-loopback bind serves (exposure()'s choice), here on loopback: the handshake in the
    connection's thread, then the token; a plaintext client gets nothing."""
    authority = init_authority(tmp_path / "pki", "t")
    bundle = authority.issue_bundle("proxy", ["127.0.0.1"])
    target = ClusterTarget("sqlite:///x", "galera", "p.yaml", ca_file=bundle / "ca.pem",
                           token_file=bundle / "api-token")
    exposed = exposure("10.1.2.3:8443", target, None, None)  # the bundle's node.pem and node.key
    assert exposed.tls is not None and exposed.token == authority.api_token()
    assert exposed.url == "https://10.1.2.3:8443/"
    hub = Hub(IDENTITY, FakeCluster().observe)
    hub.look()
    server = DashboardServer(("127.0.0.1", 0), hub, exposed.tls, exposed.token)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        context = ssl.create_default_context(cafile=str(bundle / "ca.pem"))
        host, port = server.server_address[:2]

        def ask(headers: dict[str, str]) -> int:
            connection = http.client.HTTPSConnection(host, port, context=context, timeout=5)
            connection.request("GET", "/api/state", headers=headers)
            return connection.getresponse().status

        assert ask({}) == 401
        assert ask({"Authorization": f"Bearer {authority.api_token()}"}) == 200
        with pytest.raises((http.client.HTTPException, OSError)):
            plain = http.client.HTTPConnection(host, port, timeout=5)
            plain.request("GET", "/api/state")
            plain.getresponse()
    finally:
        server.shutdown()
        server.server_close()


def test_news_in_the_dcs_brings_a_look_forward_while_a_page_is_open(tmp_path: Path) -> None:
    """The watch runs only while a page is open, and wakes the poller for news, not for heartbeats."""
    url = f"sqlite://{tmp_path}/dcs.sqlite"
    store = get_dcs(url, "galera")
    nudges = threading.Semaphore(0)
    watch = DcsNudge(lambda: get_dcs(url, "galera"), nudges.release)
    try:
        watch.watched(True)
        time.sleep(0.5)  # the watch's first listing
        store.acquire_writer("node1", 30.0, "test")
        assert nudges.acquire(timeout=5), "a new writer must wake the poller"
        member = Member("node2", "127.0.0.3", state="Synced", seqno=1)
        store.publish_member(member, 30.0)
        assert nudges.acquire(timeout=5)
        store.publish_member(dataclasses.replace(member, seqno=2, updated_at=5.0), 30.0)  # a heartbeat
        assert not nudges.acquire(timeout=1.0), "a heartbeat is no news"
        watch.watched(False)
        time.sleep(0.5)  # the watch sees its end within a poll
        store.release_writer("node1")
        assert not nudges.acquire(timeout=1.0), "no page open: no watch"
    finally:
        watch.stop()
        store.close()


def test_during_an_outage_the_writer_keeps_its_start() -> None:
    history = [HistoryEvent(7.0, "node1", "writer", "took it")]
    observations = iter([
        Observation(at=10.0, rows=[row("node1", role="writer")], snapshot=Cluster(writer="node1", history=history)),
        Observation(at=11.0, rows=[row("node1", role="writer")], dcs_error="the DCS is unreachable"),
        Observation(at=12.0, rows=[row("node2", role="writer")], dcs_error="the DCS is unreachable"),
    ])
    hub = Hub(IDENTITY, lambda: next(observations))
    since = []
    for _ in range(3):
        hub.look()
        frame, _, _ = hub.state()
        assert frame is not None
        since.append(frame["cluster"]["writer_since"])
    assert since == [7.0, 7.0, None]


def test_a_cluster_the_store_does_not_hold_is_refused_at_start(tmp_path: Path) -> None:
    """A typo in --cluster must not look like an empty cluster on a page: refused before it listens."""
    target = ClusterTarget(f"sqlite://{tmp_path}/dcs.sqlite", "galerra", "--dcs")
    with pytest.raises(PilotError, match="holds no cluster named 'galerra'"):
        serve(target, "127.0.0.1:8099")  # refused before it binds
