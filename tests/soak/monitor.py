"""Samples every node directly (not through an endpoint) a few times a second: is it in a Primary
Component, who is in its view (wsrep_incoming_addresses, mapped back to node names), its state. The
checker (checker.split_brain) reads two disjoint Primary views out of these samples; the run reads
"every node Synced" out of them to time each fault's recovery."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping

import pymysql

from galera_pilot.credentials import Credentials
from tests.soak.checker import ViewSample
from tests.soak.workloads import connect

log = logging.getLogger("soak")
INTERVAL = 0.25
VARIABLES = ("wsrep_cluster_status", "wsrep_incoming_addresses", "wsrep_local_state_comment")


class Monitor:
    def __init__(self, nodes: Mapping[str, tuple[str, int]], credentials: Credentials) -> None:
        self.nodes = dict(nodes)
        self.credentials = credentials
        self.by_address = {f"{host}:{port}": name for name, (host, port) in nodes.items()}
        self.samples: list[ViewSample] = []
        self.latest: dict[str, ViewSample] = {}
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._watch, args=(name,), name=f"monitor-{name}", daemon=True)
                         for name in self.nodes]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def all_synced(self, after: float = 0.0, fresh: float = 1.0) -> bool:
        """Every node Synced in a Primary view of all of them, by samples taken after `after` (a sample
        taken just before a kill would still say Synced) and at most `fresh` seconds old."""
        now = time.time()
        with self._lock:
            return len(self.latest) == len(self.nodes) and all(
                s.primary and s.state == "Synced" and s.at > after and now - s.at <= fresh
                and len(s.view) == len(self.nodes) for s in self.latest.values())

    def _note(self, name: str, seen: str) -> None:
        """One log line per change of what a node shows: the soak's log is its timeline."""
        if self._seen.get(name) != seen:
            self._seen[name] = seen
            log.info("monitor: %s %s", name, seen)

    def describe(self) -> str:
        """Each node's latest sample, for a violation's detail: state, Primary or not, view, age."""
        now = time.time()
        with self._lock:
            parts = []
            for name in sorted(self.nodes):
                s = self.latest.get(name)
                parts.append(f"{name}: no answer" if s is None else
                             f"{name}: {s.state} {'Primary' if s.primary else 'non-Primary'} view {sorted(s.view)} "
                             f"{now - s.at:.1f} s ago")
            return "; ".join(parts)

    def snapshot(self) -> list[ViewSample]:
        with self._lock:
            return list(self.samples)

    def _watch(self, name: str) -> None:
        host, port = self.nodes[name]
        connection: pymysql.connections.Connection | None = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = connect(host, port, self.credentials)
                with connection.cursor() as cursor:
                    cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s, %s, %s)", VARIABLES)
                    status = {str(k).lower(): str(v) for k, v in cursor.fetchall()}
                view = frozenset(self.by_address.get(a.strip(), a.strip())
                                 for a in status.get("wsrep_incoming_addresses", "").split(",") if a.strip())
                sample = ViewSample(time.time(), name, status.get("wsrep_cluster_status") == "Primary", view,
                                    status.get("wsrep_local_state_comment", ""))
                with self._lock:
                    self.samples.append(sample)
                    self.latest[name] = sample
                self._note(name, f"{sample.state} {'Primary' if sample.primary else 'non-Primary'} "
                                 f"view {','.join(sorted(view))}")
            except Exception as error:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
                connection = None
                with self._lock:
                    self.latest.pop(name, None)
                self._note(name, f"no answer ({type(error).__name__}: {str(error)[:80]})")
            self._stop.wait(INTERVAL)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
