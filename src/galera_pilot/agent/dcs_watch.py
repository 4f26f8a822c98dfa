"""The DCS watch thread: wakes the agent cycle and the writer keeper when a change concerns them
(wakeups.py decides which). A watch only shortens waits; every caller still polls."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from galera_pilot.agent.wakeups import WakeFilter
from galera_pilot.dcs.base import DCS, Change

log = logging.getLogger(__name__)


class DcsWatch:
    """Runs `dcs.watch` in a thread and turns what it reports into wake-ups (see wakeups.py)."""

    def __init__(self, dcs: DCS, me: str, wake_cycle: Callable[[], None], wake_writer: Callable[[], None]) -> None:
        self.dcs = dcs
        self._filter = WakeFilter(me)
        self._wake_cycle = wake_cycle
        self._wake_writer = wake_writer
        self._stop = threading.Event()
        self.changes_seen = 0  # for /status: proof the watch delivers

    def on_change(self, changes: list[Change]) -> None:
        self.changes_seen += len(changes)
        wake = self._filter.judge(changes)
        if wake.writer:
            self._wake_writer()
        if wake.cycle:
            self._wake_cycle()

    def start(self) -> None:
        threading.Thread(target=self._run, name="dcs-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.dcs.watch(self.on_change, self._stop)
            except Exception:  # a bug must not end the watch for good: the agent's polls go on regardless
                log.exception("DCS watch failed; restarting it")
                self._stop.wait(1.0)
