"""Real HAProxy in front of small Python stand-ins for the nodes, on 127.0.0.90-99 and high ports.

Each stand-in node has a TCP server on its client port that greets with the node's name and then echoes
lines (so a client knows which node it reached and that its session still works), and an HTTP server
on its API port that answers /writer and /read with codes the test sets. The thing under test is
HAProxy with the configuration we render and our process adapter; MariaDB is not involved.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from galera_pilot.cluster import Member, RosterEntry
from galera_pilot.dcs import get_dcs
from galera_pilot.errors import PilotError
from galera_pilot.proxy.haproxy_config import ProxyBackend, ProxySettings, render_haproxy_config
from galera_pilot.proxy.haproxy_process import HaproxyProcess
from galera_pilot.proxy.manager import ProxyManager
from tests.waiting import wait_for

from .conftest import test_address, test_dcs

pytestmark = pytest.mark.integration

PROXY_ADDRESS = test_address("127.0.0.90")
NODE3, NODE4 = test_address("127.0.0.93"), test_address("127.0.0.94")
WRITER_PORT = 47306
READER_PORT = 47307
CLIENT_PORT = 47406
API_PORT = 47408
SETTINGS = ProxySettings(writer_bind=f"{PROXY_ADDRESS}:{WRITER_PORT}", reader_bind=f"{PROXY_ADDRESS}:{READER_PORT}")
WRITER = (PROXY_ADDRESS, WRITER_PORT)
READER = (PROXY_ADDRESS, READER_PORT)


class _EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        node: StandInNode = self.server.node  # type: ignore[attr-defined]
        node.sessions.append(self.connection)
        self.wfile.write(f"{node.name}\n".encode())
        for line in self.rfile:
            self.wfile.write(line)


class _ApiHandler(http.server.BaseHTTPRequestHandler):
    def _answer(self, body: bool) -> None:
        node: StandInNode = self.server.node  # type: ignore[attr-defined]
        node.checks += 1
        code = node.codes.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def do_OPTIONS(self) -> None:
        self._answer(False)

    def log_message(self, *args: object) -> None:
        pass


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A session the proxy cuts (shutdown-sessions) ends in a reset: expected here, not an error."""


class _HTTPServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class StandInNode:
    """A node as HAProxy sees it: a client port that names itself, an agent API with settable answers."""

    def __init__(self, name: str, address: str, writer: bool = False, read: bool = True,
                 silent_agent: bool = False) -> None:
        self.name, self.address = name, address
        self.codes = {"/writer": 200 if writer else 503, "/read": 200 if read else 503}
        self.sessions: list[socket.socket] = []
        self.checks = 0
        self._client = _TCPServer((address, CLIENT_PORT), _EchoHandler)
        self._client.node = self  # type: ignore[attr-defined]
        self._servers: list[socketserver.BaseServer] = [self._client]
        self._silent: socket.socket | None = None
        if silent_agent:
            # An agent that takes the connection and never answers (a hung process): every check times out.
            self._silent = socket.create_server((address, API_PORT), reuse_port=False, backlog=128)
        else:
            self._api = _HTTPServer((address, API_PORT), _ApiHandler)
            self._api.node = self  # type: ignore[attr-defined]
            self._servers.append(self._api)
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def backend(self) -> ProxyBackend:
        return ProxyBackend(self.name, self.address, CLIENT_PORT, API_PORT)

    def set_writer(self, writer: bool) -> None:
        self.codes["/writer"] = 200 if writer else 503

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()  # type: ignore[attr-defined]
        if self._silent is not None:
            self._silent.close()
        for session in self.sessions:
            with contextlib.suppress(OSError):
                session.shutdown(socket.SHUT_RDWR)
            session.close()


class Session:
    """A client connection through HAProxy: which node it reached, and whether it still echoes."""

    def __init__(self, endpoint: tuple[str, int], timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(endpoint, timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.node = self.reader.readline().decode().strip() or None  # "" when HAProxy had no server

    def echo(self, text: str) -> str:
        self.sock.sendall(f"{text}\n".encode())
        return self.reader.readline().decode().strip()

    def closed_by_peer(self) -> bool:
        """True once the proxy has closed this session (EOF or reset)."""
        try:
            self.sock.settimeout(0.05)
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def node_behind(endpoint: tuple[str, int]) -> str | None:
    """The node a new connection to endpoint reaches; None when HAProxy has no server to offer."""
    try:
        session = Session(endpoint)
    except OSError:
        return None
    try:
        return session.node
    finally:
        session.close()


def wait_served() -> None:
    """Every server starts DOWN (the server-state file): wait for the first checks on both endpoints."""
    wait_for(lambda: node_behind(WRITER) == "node1", 30, "the writer endpoint to reach node1", interval=0.05)
    wait_for(lambda: node_behind(READER) is not None, 30, "the reader endpoint to reach a node", interval=0.05)


def reached_for(endpoint: tuple[str, int], seconds: float) -> list[str | None]:
    """The node behind each new connection, connecting again and again for `seconds`."""
    reached = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reached.append(node_behind(endpoint))
    return reached


def haproxy_pids(run_dir: Path) -> list[int]:
    """Every haproxy process (alive, not a zombie) whose command line names a file in run_dir."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if "haproxy" in (proc.info["name"] or "") and str(run_dir) in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


@pytest.fixture(scope="module", autouse=True)
def _haproxy_installed() -> None:
    assert shutil.which("haproxy"), "haproxy missing: run scripts/setup.sh (installs Debian's haproxy)"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A short folder (unix socket paths are limited to 107 bytes); every haproxy using it dies after."""
    path = Path(tempfile.mkdtemp(prefix="gp-proxy-"))
    try:
        yield path
    finally:
        for pid in haproxy_pids(path):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        psutil.wait_procs([p for p in map(_process, haproxy_pids(path)) if p], timeout=5)
        shutil.rmtree(path, ignore_errors=True)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


@pytest.fixture
def haproxy(run_dir: Path) -> Iterator[HaproxyProcess]:
    process = HaproxyProcess(run_dir / "haproxy.cfg", run_dir)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def nodes() -> Iterator[dict[str, StandInNode]]:
    """node1 (the writer), node2, node3 on 127.0.0.91-93, all readable."""
    started: dict[str, StandInNode] = {}
    try:
        for i in (1, 2, 3):
            started[f"node{i}"] = StandInNode(f"node{i}", test_address(f"127.0.0.{90 + i}"), writer=i == 1)
        yield started
    finally:
        for node in started.values():
            node.close()


def render(run_dir: Path, members: list[StandInNode]) -> str:
    return render_haproxy_config(SETTINGS, [m.backend for m in members], run_dir)


def test_writer_endpoint_reaches_only_the_writer_and_reader_spreads(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    assert {node_behind(WRITER) for _ in range(20)} == {"node1"}
    # leastconn: sessions held open spread over every readable node.
    wait_for(lambda: all(n.checks >= 4 for n in nodes.values()), 30, "two rounds of checks of every node")
    held = [Session(READER) for _ in range(6)]
    try:
        assert sorted(s.node or "" for s in held) == ["node1", "node1", "node2", "node2", "node3", "node3"]
    finally:
        for session in held:
            session.close()


def test_a_node_whose_agent_never_answers_is_never_offered_after_a_start_or_a_reload(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    """HAProxy takes an unchecked server for UP; with a silent agent, two timed-out checks (fall 2) pass
    before it is DOWN. Without the server-state file the writer endpoint offered node4 here for ~0.6 s."""
    hung = StandInNode("node4", NODE4, writer=False, silent_agent=True)
    try:
        members = [*nodes.values(), hung]
        haproxy.start(render(run_dir, members))
        assert "node4" not in reached_for(WRITER, 1.5)
        wait_served()
        haproxy.reload(render(run_dir, [m for m in members if m.name != "node2"]))
        # The writer stays UP through the reload (no gap), and no other node is offered.
        assert set(reached_for(WRITER, 1.5)) == {"node1"}
        assert "node4" not in reached_for(READER, 0.5)
    finally:
        hung.close()


def test_writer_flip_moves_new_connections_and_cuts_sessions_to_the_old_writer(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    arrived, cut = [], []
    old, new = nodes["node1"], nodes["node2"]
    for flip in range(6):
        session = Session(WRITER)
        assert session.node == old.name and session.echo("before") == "before"
        time.sleep(0.05 * flip)  # vary the flip's phase against HAProxy's check timers
        flipped = time.monotonic()
        old.set_writer(False)
        new.set_writer(True)
        wait_for(lambda n=new: node_behind(WRITER) == n.name, 3, f"new connections to reach {new.name}",
                 interval=0.01)
        arrived.append(time.monotonic() - flipped)
        wait_for(session.closed_by_peer, 3, f"the session to {old.name} to be shut down", interval=0.01)
        cut.append(time.monotonic() - flipped)
        session.close()
        assert {node_behind(WRITER) for _ in range(10)} == {new.name}
        old, new = new, old
    print(f"\nwriter flip -> first new connection at the new writer: median {statistics.median(arrived) * 1000:.0f} "
          f"ms, max {max(arrived) * 1000:.0f} ms; -> old writer's session shut down: median "
          f"{statistics.median(cut) * 1000:.0f} ms, max {max(cut) * 1000:.0f} ms ({len(cut)} flips)")


def test_reload_with_an_added_member_keeps_established_sessions(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    master = haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    writer_session, reader_session = Session(WRITER), Session(READER)
    assert writer_session.echo("one") == "one" and reader_session.echo("one") == "one"
    before = wait_for(haproxy.show_proc, 30, "the master CLI to answer")
    node4 = StandInNode("node4", NODE4)
    try:
        haproxy.reload(render(run_dir, [*nodes.values(), node4]))
        # The master CLI may be slow to answer on a loaded machine: ask until it lists the new worker.
        wait_for(lambda: (state := haproxy.show_proc()) is not None
                         and set(state.workers).isdisjoint(before.workers) and state, 30,
                         "the master to list the new worker instead of the old one")
        assert haproxy.pid == master
        assert f"server node4 {NODE4}" in haproxy.config_path.read_text()
        # The sessions opened before the reload live on in the old worker and still work.
        assert writer_session.echo("two") == "two" and reader_session.echo("two") == "two"
        # The new worker knows node4: sessions held open spread onto it too.
        held: list[Session] = []
        try:
            def node4_reached() -> bool:
                held.append(Session(READER))
                return held[-1].node == "node4"

            wait_for(node4_reached, 30, "a reader session on node4", interval=0.05)
        finally:
            for session in held:
                session.close()
        assert writer_session.echo("three") == "three"
    finally:
        writer_session.close()
        reader_session.close()
        node4.close()


def test_sessions_kept_by_an_old_worker_are_cut_when_their_server_goes_down(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    """An old worker runs no health checks, so cut_stale_sessions applies the new worker's DOWN to it."""
    haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    writer_session, reader_session = Session(WRITER), Session(READER)
    haproxy.reload(render(run_dir, list(nodes.values())))
    state = wait_for(haproxy.show_proc, 30, "the master CLI to answer")
    assert state is not None and len(state.old_workers) == 1
    assert haproxy.cut_stale_sessions() == []  # node1 is still the writer: nothing to cut
    nodes["node1"].set_writer(False)
    nodes["node2"].set_writer(True)
    wait_for(lambda: node_behind(WRITER) == "node2", 30, "new connections to reach node2", interval=0.02)
    time.sleep(0.5)
    assert not writer_session.closed_by_peer(), "the old worker cut it by itself: then this machinery is moot"
    closed = wait_for(haproxy.cut_stale_sessions, 30, "the old worker's writer session to be cut")
    assert closed == ["writer/node1"]
    wait_for(writer_session.closed_by_peer, 30, "the client to see its session closed", interval=0.02)
    assert reader_session.echo("still readable") == "still readable"  # reader/<node> is still UP
    writer_session.close()
    reader_session.close()


def test_invalid_config_is_refused_and_the_old_one_keeps_serving(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    good = render(run_dir, list(nodes.values()))
    haproxy.start(good)
    wait_served()
    before = wait_for(haproxy.show_proc, 30, "the master CLI to answer")
    bad = good.replace("    mode tcp\n", "    mode tcp\n    frobnicate yes\n")
    with pytest.raises(PilotError, match="unknown keyword 'frobnicate'"):
        haproxy.reload(bad)
    assert haproxy.config_path.read_text() == good
    assert wait_for(haproxy.show_proc, 30, "the master CLI to answer") == before
    assert {node_behind(WRITER) for _ in range(5)} == {"node1"}
    assert not list(run_dir.glob(".candidate-*")), "the candidate file was left behind"


def test_a_reload_haproxy_cannot_load_keeps_the_old_worker_and_file(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    """Valid for `haproxy -c`, yet the re-executed master cannot bind: the running worker must stay."""
    good = render(run_dir, list(nodes.values()))
    haproxy.start(good)
    wait_served()
    session = Session(WRITER)
    before = wait_for(haproxy.show_proc, 30, "the master CLI to answer")
    extra = f"\nfrontend extra\n    bind {PROXY_ADDRESS}:47309\n    default_backend reader\n"
    try:
        with socket.socket() as squatter:
            squatter.bind((PROXY_ADDRESS, 47309))  # bound, not listening: only the real bind notices
            with pytest.raises(PilotError) as raised:
                haproxy.reload(good + extra)
        message = str(raised.value)
        assert "could not load the new configuration and keeps serving with the old one" in message, message
        assert f"cannot bind socket (Address already in use) for [{PROXY_ADDRESS}:47309]" in message, message
        assert haproxy.config_path.read_text() == good
        after = wait_for(lambda: (state := haproxy.show_proc()) is not None
                         and state.failed == before.failed + 1 and state, 30, "the master to count the failed reload")
        assert after.workers == before.workers
        # The old worker still serves: a new session works. (The session held since before may have been
        # cut on purpose if a stand-in's health check timed out on a loaded machine: shutdown-sessions.)
        fresh = Session(WRITER)
        try:
            assert fresh.echo("still here") == "still here"
        finally:
            fresh.close()
        assert {node_behind(WRITER) for _ in range(5)} == {"node1"}
    finally:
        session.close()


def test_port_in_use_gives_a_clear_error(haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path) -> None:
    with socket.socket() as squatter:
        # SO_REUSEADDR: earlier tests' connections may linger in TIME_WAIT on this address (not a listener).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(READER)
        squatter.listen()
        with pytest.raises(PilotError) as raised:
            haproxy.start(render(run_dir, list(nodes.values())))
    message = str(raised.value)
    assert f"{PROXY_ADDRESS}:{READER_PORT} is already in use by pid {os.getpid()}" in message, message
    assert not haproxy.is_running() and haproxy_pids(run_dir) == []


def test_a_failed_bind_reports_haproxys_own_error(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    # Bound but not listening: invisible to the pre-start check, so HAProxy itself hits EADDRINUSE. A port
    # no other test connects to: a TIME_WAIT left there by a client would make the squatter's bind fail.
    unused = 47311
    settings = ProxySettings(writer_bind=f"{PROXY_ADDRESS}:{WRITER_PORT}", reader_bind=f"{PROXY_ADDRESS}:{unused}")
    with socket.socket() as squatter:
        squatter.bind((PROXY_ADDRESS, unused))
        with pytest.raises(PilotError) as raised:
            haproxy.start(render_haproxy_config(settings, [n.backend for n in nodes.values()], run_dir))
    message = str(raised.value)
    assert "haproxy exited with code 1 while starting" in message, message
    assert "cannot bind socket (Address already in use)" in message and f"{PROXY_ADDRESS}:{unused}" in message
    assert not haproxy.is_running() and haproxy_pids(run_dir) == []


def test_a_second_haproxy_on_the_same_endpoints_is_refused(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    """HAProxy's SO_REUSEPORT would let both listen and split the clients; the pre-start check does not."""
    first = haproxy.start(render(run_dir, list(nodes.values())))
    other_dir = Path(tempfile.mkdtemp(prefix="gp-proxy-"))
    other = HaproxyProcess(other_dir / "haproxy.cfg", other_dir)
    try:
        with pytest.raises(PilotError) as raised:
            other.start(render(other_dir, list(nodes.values())))
        assert f"{PROXY_ADDRESS}:{WRITER_PORT} is already in use by pid" in str(raised.value)
        assert f"haproxy -W -db -f {run_dir}/haproxy.cfg" in str(raised.value)
        assert haproxy.pid == first
        assert haproxy_pids(other_dir) == []
    finally:
        other.stop()
        shutil.rmtree(other_dir, ignore_errors=True)


def test_stop_leaves_no_haproxy_process(haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path) -> None:
    haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    session = Session(WRITER)  # keeps the old worker alive after the reload
    try:
        haproxy.reload(render(run_dir, list(nodes.values())[:2]))
        wait_for(lambda: len(haproxy_pids(run_dir)) == 3, 30,
                 "master, new worker and the old one serving the session")
        haproxy.stop()
        wait_for(lambda: haproxy_pids(run_dir) == [], 30, "every haproxy process of this run dir to be gone")
        assert not haproxy.is_running()
        assert session.closed_by_peer() or session.closed_by_peer()
    finally:
        session.close()
    assert node_behind(WRITER) is None


def test_a_new_adapter_adopts_the_running_haproxy(
    haproxy: HaproxyProcess, nodes: dict[str, StandInNode], run_dir: Path
) -> None:
    master = haproxy.start(render(run_dir, list(nodes.values())))
    wait_served()
    session = Session(WRITER)
    adopted = HaproxyProcess(run_dir / "haproxy.cfg", run_dir)
    try:
        assert adopted.pid == master
        with pytest.raises(PilotError, match="already running"):
            adopted.start(render(run_dir, list(nodes.values())))
        adopted.reload(render(run_dir, list(nodes.values())[:2]))
        assert session.echo("still here") == "still here"
        adopted.stop()
        assert haproxy_pids(run_dir) == [] and not haproxy.is_running()
    finally:
        session.close()


def test_a_stale_pid_file_is_not_adopted(run_dir: Path) -> None:
    (run_dir / "haproxy.pid").write_text(f"{os.getpid()}\n")  # alive, but not haproxy with our config
    process = HaproxyProcess(run_dir / "haproxy.cfg", run_dir)
    assert process.pid is None and not process.is_running()


def test_manager_follows_the_dcs_membership(nodes: dict[str, StandInNode], run_dir: Path) -> None:
    dcs = get_dcs(*test_dcs(run_dir))
    manager = ProxyManager(dcs, SETTINGS, run_dir / "proxy")
    node4 = StandInNode("node4", NODE4)
    try:
        for node in list(nodes.values())[:2]:
            dcs.publish_member(Member(node.name, node.address, api_url=f"http://{node.address}:{API_PORT}",
                                      client_port=CLIENT_PORT), ttl=60)
        # node3 is down: only its roster entry remains, and it must stay a server.
        dcs.update_roster(RosterEntry("node3", NODE3, f"http://{NODE3}:{API_PORT}", CLIENT_PORT))
        assert manager.run_cycle().startswith("haproxy started (pid ")
        assert manager.run_cycle() == "haproxy config unchanged: members node1,node2,node3"
        wait_served()
        session = Session(WRITER)
        dcs.publish_member(Member("node4", NODE4, api_url=f"http://{NODE4}:{API_PORT}",
                                  client_port=CLIENT_PORT), ttl=60)
        assert manager.run_cycle() == "haproxy reloaded: members node1,node2,node3,node4"
        assert manager.run_cycle() == "haproxy config unchanged: members node1,node2,node3,node4"
        assert session.echo("ok") == "ok"
        # That session lives in the worker the reload replaced; a writer change still reaches it.
        nodes["node1"].set_writer(False)
        nodes["node2"].set_writer(True)
        sentence = wait_for(lambda: "closed sessions" in (s := manager.run_cycle()) and s, 5,
                            "the manager to close the old worker's session to node1")
        assert sentence == ("haproxy config unchanged: members node1,node2,node3,node4; closed sessions that old "
                            "workers held to servers now DOWN: writer/node1 (1)")
        wait_for(session.closed_by_peer, 30, "the client to see its session closed", interval=0.02)
        session.close()
        # A new manager (a restarted proxy) adopts the running haproxy: nothing to reload.
        again = ProxyManager(dcs, SETTINGS, run_dir / "proxy")
        assert again.run_cycle() == "haproxy config unchanged: members node1,node2,node3,node4"
        again.stop()
        assert haproxy_pids(run_dir) == []
    finally:
        manager.stop()
        node4.close()
        dcs.close()


def test_run_proxy_serves_until_sigterm_then_stops_haproxy(nodes: dict[str, StandInNode], run_dir: Path) -> None:
    dcs_url, cluster_name = test_dcs(run_dir)
    dcs = get_dcs(dcs_url, cluster_name)
    for node in nodes.values():
        dcs.publish_member(Member(node.name, node.address, api_url=f"http://{node.address}:{API_PORT}",
                                  client_port=CLIENT_PORT), ttl=120)
    dcs.close()
    config = run_dir / "proxy.yaml"
    config.write_text(yaml.safe_dump({
        "cluster_name": cluster_name, "dcs": dcs_url, "writer_bind": f"{PROXY_ADDRESS}:{WRITER_PORT}",
        "reader_bind": f"{PROXY_ADDRESS}:{READER_PORT}", "run_dir": str(run_dir / "proxy"), "check_interval_ms": 200,
        "tls": {"enabled": False},  # the stand-in agents answer plain HTTP
    }))
    code = f"from galera_pilot.proxy.manager import run_proxy; run_proxy({str(config)!r})"
    proxy = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_served()
        proxy.send_signal(signal.SIGTERM)
        output = proxy.communicate(timeout=20)[0].decode()
        assert proxy.returncode == 0, output
        assert haproxy_pids(run_dir) == []
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
