"""Helpers for the routing tests and benchmarks: a client that writes through an endpoint and keeps every
acknowledged id, a poller that samples every agent's `/writer`, iptables isolation of one node.

Every address used here is in 127.0.0.100-139 (other engineers run clusters on other loopback addresses).
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pymysql

from galera_pilot.mariadb import sql
from tests.integration.agents import agent_url, http_status

PROXY_HOST = "127.0.0.100"
WRITER_PORT = 3306
READER_PORT = 3307
BASE_ADDRESS = "127.0.0.101"
IPTABLES_COMMENT = "galera-pilot-routing-test"


def endpoint_code(address: str, path: str, method: str = "OPTIONS", port: int = 8008) -> int:
    """The status an agent answers (0 when it does not answer at all)."""
    return http_status(agent_url(address, path, port), method)


@dataclass
class AckWriter:
    """Inserts ids 1, 2, 3... through host:port in a loop, reconnecting on any error, and records the
    ids (and times) the server acknowledged. A failed attempt's id is skipped, never retried, so every
    id in `acked` must be in the table afterwards, whatever happened in between."""

    host: str
    port: int
    user: str
    password: str
    table: str = "app.acks"
    first_id: int = 1  # above every id already in the table (a duplicate key is never acknowledged)
    acked: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)  # wsrep_node_name per connection
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> AckWriter:
        self._thread = threading.Thread(target=self._run, name="ack-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _connect(self) -> pymysql.connections.Connection:
        connection = pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                     connect_timeout=1, read_timeout=2, write_timeout=2, autocommit=True)
        self.reached.append(sql.node_name(connection))
        return connection

    def _run(self) -> None:
        connection = None
        next_id = self.first_id - 1
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = self._connect()
                next_id += 1
                with connection.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (next_id,))
                self.acked.append(next_id)
                self.ack_times.append(time.monotonic())
            except Exception:
                self.error_times.append(time.monotonic())
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
                connection = None
                time.sleep(0.01)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def first_ack_after(self, moment: float) -> float | None:
        return next((t for t in self.ack_times if t > moment), None)

    def back_after(self, moment: float) -> float | None:
        """The first acknowledgement after the first error after `moment`: when writes worked again after
        an outage that began then. (An ack a moment after a kill may still be the dead server's last one.)"""
        error = next((t for t in self.error_times if t > moment), None)
        return None if error is None else self.first_ack_after(error)

    def longest_gap_after(self, moment: float) -> float:
        """Longest time between two acknowledgements after `moment` (the outage a client saw)."""
        times = [moment, *[t for t in self.ack_times if t > moment]]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass
class WriterPoller:
    """Samples `/writer` of every address every `interval` s; records (time, set of 200 answerers)."""

    addresses: list[str]
    interval: float = 0.05
    samples: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WriterPoller:
        self._thread = threading.Thread(target=self._run, name="writer-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            writers = frozenset(a for a in self.addresses if endpoint_code(a, "/writer") == 200)
            self.samples.append((time.monotonic(), writers))
            self._stop.wait(self.interval)

    def longest_double_writer(self) -> float:
        """Longest stretch during which two or more agents answered `/writer` 200."""
        longest, since = 0.0, None
        for at, writers in self.samples:
            if len(writers) > 1:
                since = at if since is None else since
                longest = max(longest, at - since)
            else:
                since = None
        return longest


def _iptables(*args: str) -> None:
    subprocess.run(["iptables", "-w", *args], check=True, capture_output=True, text=True)


def isolation_rules(address: str, galera_port: int = 4567) -> list[list[str]]:
    """INPUT rules that cut `address`'s group communication (both directions, any source address)."""
    comment = ["-m", "comment", "--comment", IPTABLES_COMMENT]
    return [
        ["INPUT", "-p", "tcp", "-d", address, "--dport", str(galera_port), *comment, "-j", "DROP"],
        ["INPUT", "-p", "tcp", "-s", address, "--sport", str(galera_port), *comment, "-j", "DROP"],
        ["INPUT", "-p", "tcp", "-s", address, "--dport", str(galera_port), *comment, "-j", "DROP"],
        ["INPUT", "-p", "tcp", "-d", address, "--sport", str(galera_port), *comment, "-j", "DROP"],
    ]


def isolate(address: str) -> None:
    for rule in isolation_rules(address):
        _iptables("-I", *rule)


def remove_isolation(address: str) -> None:
    """Delete our rules for address (each as often as it was inserted); never touches other rules."""
    for rule in isolation_rules(address):
        while subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True).returncode == 0:
            pass


def our_iptables_rules() -> list[str]:
    out = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if IPTABLES_COMMENT in line]
