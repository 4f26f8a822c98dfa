"""DCS backends as the tests see them, and a real etcd to run them against (used by conftest.py).

A module of its own rather than conftest.py, so test modules can import these names plainly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.dcs import DCS, Change, get_dcs

ETCD_BINARY = "/usr/bin/etcd"


@dataclass(frozen=True)
class TTLs:
    """A TTL short enough to wait out in a test, and how long to wait to be sure it is gone.

    SQLite honours any TTL to the millisecond. etcd grants at least 2 s (whole seconds; its minimum with
    default timings) and its leader looks for expired leases every 500 ms: a 2 s lease is gone 2.0-2.5 s
    after the grant, measured. 3.5 s leaves a margin for a busy machine.
    """

    short: float
    past_short: float


SQLITE_TTLS = TTLs(0.2, 0.35)
ETCD_TTLS = TTLs(2.0, 3.5)


@dataclass(frozen=True)
class EtcdServer:
    client_url: str  # http://127.0.0.1:<port>
    url: str  # the DCS URL: etcd://127.0.0.1:<port>
    port: int
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Backend:
    """One DCS backend as a test sees it: a URL to hand to get_dcs (or to worker processes)."""

    name: str
    url: str
    tag: str  # prefixed to every cluster name of this test: tests sharing one etcd stay independent
    ttls: TTLs

    def cluster(self, name: str = "galera") -> str:
        return f"{self.tag}{name}"

    def open(self, cluster: str = "galera") -> DCS:
        return get_dcs(self.url, self.cluster(cluster))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def etcd_request(client_url: str, path: str, body: dict, timeout: float = 2.0,
                 context: ssl.SSLContext | None = None) -> dict:
    """A raw gateway call, independent of the code under test (stdlib urllib, not urllib3)."""
    request = urllib.request.Request(f"{client_url}/v3{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read())


def etcd_answers(client_url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        return "header" in etcd_request(client_url, "/kv/range", {"key": "AA=="}, timeout=1.0, context=context)
    except OSError:
        return False


class EtcdProcess:
    """One single-member etcd that a test can pause (SIGSTOP), resume, kill and start again on the same
    ports and data: what the DCS-failure tests need, and what running_etcd() wraps for everyone else.

    The data directory goes to /dev/shm when it exists: etcd fsyncs every write, and the race tests (and
    agents publishing several times a second) make thousands of them.
    """

    def __init__(self, host: str = "127.0.0.1", tls: Path | None = None) -> None:
        """`tls`: a bundle folder (ca.pem, node.pem, node.key): serve https and ask every client for a
        certificate that CA signed (--client-cert-auth), as a production etcd of the cluster's PKI."""
        assert os.access(ETCD_BINARY, os.X_OK), f"{ETCD_BINARY} is missing: apt-get install etcd-server"
        shm = Path("/dev/shm")
        self.data_root = Path(tempfile.mkdtemp(prefix="galera-pilot-etcd-", dir=shm if shm.is_dir() else None))
        self.host = host
        self.client_port, self.peer_port = free_port(host), free_port(host)
        self.tls = tls
        self.client_url = f"{'https' if tls else 'http'}://{host}:{self.client_port}"
        self.peer_url = f"http://{host}:{self.peer_port}"
        self.log_path = self.data_root / "etcd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> EtcdServer:
        assert self.process is not None
        scheme = "etcds" if self.tls else "etcd"
        return EtcdServer(self.client_url, f"{scheme}://{self.host}:{self.client_port}", self.client_port, self.process)

    def start(self, timeout: float = 30.0) -> EtcdServer:
        """Start (or start again, on the same data) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "etcd is already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [ETCD_BINARY, "--name", "t", "--data-dir", str(self.data_root / "data"),
                 "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
                 "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                 "--initial-cluster", f"t={self.peer_url}", *self._tls_flags()],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls / "ca.pem"))
            context.load_cert_chain(str(self.tls / "node.pem"), str(self.tls / "node.key"))
        while not etcd_answers(self.client_url, context):
            log_tail = self.log_path.read_text(errors="replace")[-2000:]
            assert self.process.poll() is None, f"etcd exited with {self.process.returncode}:\n{log_tail}"
            assert time.monotonic() < deadline, f"etcd did not answer within {timeout:.0f} s:\n{log_tail}"
            time.sleep(0.1)
        return self.server

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        return ["--cert-file", str(self.tls / "node.pem"), "--key-file", str(self.tls / "node.key"),
                "--trusted-ca-file", str(self.tls / "ca.pem"), "--client-cert-auth"]

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (a crash: no clean shutdown), after a SIGCONT so a paused etcd dies too."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Terminate (then kill), whatever state it is in; the data directory is removed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_root, ignore_errors=True)


@contextmanager
def running_etcd(host: str = "127.0.0.1") -> Iterator[EtcdServer]:
    """A single-member etcd on free ports of `host`; terminated (then killed) on exit, whatever happened."""
    with etcd_process(host) as etcd:
        yield etcd.server


@contextmanager
def etcd_process(host: str = "127.0.0.1") -> Iterator[EtcdProcess]:
    """The same, yielding the process itself, for tests that pause, kill and restart it."""
    etcd = EtcdProcess(host)
    try:
        etcd.start()
        yield etcd
    finally:
        etcd.stop()


class Recorder:
    """Runs a store's watch in a thread and keeps every change it reports."""

    def __init__(self, store: DCS) -> None:
        self.store = store
        self.changes: list[Change] = []
        self.batches = 0
        self.stop = threading.Event()
        self._cond = threading.Condition()
        threading.Thread(target=store.watch, args=(self._on_change, self.stop), daemon=True).start()

    def _on_change(self, changes: list[Change]) -> None:
        with self._cond:
            self.changes.extend(changes)
            self.batches += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Change]], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.changes), timeout):
                raise AssertionError(f"no {what} within {timeout} s; changes seen: {self.changes}")

    def ready(self, writer: DCS) -> None:
        """Write a sentinel until the watch reports it: from then on it sees every change."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            writer.put("sentinel", str(time.monotonic()))
            with self._cond:
                if self._cond.wait_for(lambda: any(c.key == "sentinel" for c in self.changes), 0.3):
                    self.changes.clear()
                    return
        raise AssertionError("the watch never reported the sentinel")
