"""Looks at once when the DCS says something happened, instead of at the next poll.

A page polled every 0.5 s draws a failover up to half a second after the DCS knows it (measured: the page
0.49 s behind the DCS, bench/dashboard_latency.py). The DCS watch (the agents' own, dcs/base.py) reports
every write; the agents' wake-up filter (agent/wakeups.py) tells news (a writer change, a member's state)
from heartbeats and renewals, so only news wakes the poller. The watch runs only while a page is open:
with nobody looking, the SQLite watch's ten small queries a second would be the dashboard's main cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from galera_pilot.agent.wakeups import WakeFilter
from galera_pilot.dcs.base import DCS, Change

log = logging.getLogger(__name__)
RETRY = 2.0


class DcsNudge:
    def __init__(self, open_dcs: Callable[[], DCS], nudge: Callable[[], None]) -> None:
        self._open = open_dcs
        self._nudge = nudge
        self._lock = threading.Lock()
        self._session: threading.Event | None = None  # set: the running watch must end
        self._closed = False

    def watched(self, yes: bool) -> None:
        """A first page opened (start watching) or the last one closed (stop)."""
        with self._lock:
            if yes and self._session is None and not self._closed:
                self._session = threading.Event()
                threading.Thread(target=self._run, args=(self._session,), name="dashboard-dcs-watch",
                                 daemon=True).start()
            elif not yes and self._session is not None:
                self._session.set()
                self._session = None

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        self.watched(False)

    def _run(self, ended: threading.Event) -> None:
        wake_filter = WakeFilter("")  # no member of its own: every member's news counts

        def on_change(changes: list[Change]) -> None:
            wake = wake_filter.judge(changes)
            if wake.cycle or wake.writer:
                self._nudge()

        while not ended.is_set():
            try:
                store = self._open()
                try:
                    store.watch(on_change, ended)
                finally:
                    store.close()
            except Exception as error:  # an unreachable store: the poller goes on, the watch tries again
                log.debug("dashboard: DCS watch ended (%s); again in %.0f s", error, RETRY)
                ended.wait(RETRY)
