"""The status observer behind the routing endpoints (a thin adapter; the judgement is in routing/health.py).

It asks the local mariadbd for its wsrep status every OBSERVE_INTERVAL with a QUERY_TIMEOUT,
independently of the agent cycle (which may be busy joining, evicting or waiting on a slow server for
seconds), so `/health`, `/read` and `/writer` follow the server within a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from galera_pilot.routing.health import OBSERVE_INTERVAL, LiveStatus


class StatusObserver:
    """Keeps `latest()`: the last answer of mariadbd (or the last failure to answer) with its time."""

    def __init__(self, query: Callable[[], Mapping[str, str] | None], interval: float = OBSERVE_INTERVAL) -> None:
        self._query = query
        self._interval = interval
        self._latest = LiveStatus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> LiveStatus:
        return self._latest

    def observe_once(self) -> LiveStatus:
        try:
            status = self._query() or {}
        except Exception:  # the observer must survive whatever the server does
            status = {}
        # Stamped when the answer arrived: a query that hung for its whole timeout is old news.
        self._latest = LiveStatus(time.monotonic(), dict(status))
        return self._latest

    def mark_stopped(self) -> None:
        """mariadbd exited (the exit watcher saw it): unhealthy now, not at the next look."""
        self._latest = LiveStatus(time.monotonic(), {})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="status-observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.observe_once()
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
