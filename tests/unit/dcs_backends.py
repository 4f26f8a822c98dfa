"""DCS backends as the tests see them, and a real etcd to run them against (used by conftest.py).

A module of its own rather than conftest.py, so test modules can import these names plainly.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.dcs import DCS, get_dcs

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def etcd_request(client_url: str, path: str, body: dict, timeout: float = 2.0) -> dict:
    """A raw gateway call, independent of the code under test (stdlib urllib, not urllib3)."""
    request = urllib.request.Request(f"{client_url}/v3{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def etcd_answers(client_url: str) -> bool:
    try:
        return "header" in etcd_request(client_url, "/kv/range", {"key": "AA=="}, timeout=1.0)
    except OSError:
        return False


@contextmanager
def running_etcd() -> Iterator[EtcdServer]:
    """A single-member etcd on free local ports; terminated (then killed) on exit, whatever happened.

    The data directory goes to /dev/shm when it exists: etcd fsyncs every write, and the race tests make
    a few thousand of them.
    """
    assert os.access(ETCD_BINARY, os.X_OK), f"{ETCD_BINARY} is missing: apt-get install etcd-server"
    shm = Path("/dev/shm")
    data_root = Path(tempfile.mkdtemp(prefix="galera-pilot-etcd-", dir=shm if shm.is_dir() else None))
    client_port, peer_port = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    log_path = data_root / "etcd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [ETCD_BINARY, "--name", "t", "--data-dir", str(data_root / "data"),
             "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"t={peer_url}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not etcd_answers(client_url):
            log_tail = log_path.read_text(errors="replace")[-2000:]
            assert process.poll() is None, f"etcd exited with {process.returncode}:\n{log_tail}"
            assert time.monotonic() < deadline, f"etcd did not answer within 30 s:\n{log_tail}"
            time.sleep(0.1)
        yield EtcdServer(client_url, f"etcd://127.0.0.1:{client_port}", client_port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_root, ignore_errors=True)
