"""Automatic updates: the writer's agent rolls an installed minor update by itself (lifecycle/updates.py
decides when). The roll is the one `galera-pilot upgrade` drives (lifecycle/driver.py), run in a thread of
this agent, so the cycle goes on meanwhile and carries out this node's own restart when its turn comes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime

from galera_pilot.agent.memory import History
from galera_pilot.cluster import Cluster
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.lifecycle.driver import RollDriver, RollOptions
from galera_pilot.lifecycle.updates import UpdateVerdict, update_verdict

HISTORY_RECHECK = 60.0  # seconds an answer that needed the history is reused for the same target
log = logging.getLogger(__name__)


class AutoUpdates:
    def __init__(self, name: str, dcs: DCS, history: History) -> None:
        self.name = name
        self.dcs = dcs
        self.history = history
        self._thread: threading.Thread | None = None
        self._last_reason = ""
        self._history_verdict: tuple[str, float, UpdateVerdict] | None = None  # (target, when, verdict)

    @property
    def driving(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def consider(self, cluster: Cluster) -> None:
        """Once a cycle (not while paused): start or resume an automatic update when the rules say so."""
        if self.driving:
            return
        verdict = update_verdict(cluster, self.name, datetime.now())
        if verdict.needs_history:  # the cycle's snapshot leaves the history out; this question needs it
            cached = self._history_verdict
            if cached is not None and cached[0] == verdict.target and time.monotonic() - cached[1] < HISTORY_RECHECK:
                verdict = cached[2]  # an aborted target stays aborted: not the whole history every second
            else:
                target = verdict.target
                verdict = update_verdict(self.dcs.snapshot(), self.name, datetime.now())
                self._history_verdict = None if verdict.start else (target, time.monotonic(), verdict)
        if verdict.reason != self._last_reason:
            self._last_reason = verdict.reason
            if verdict.start or verdict.resume or cluster.writer == self.name:
                log.info("automatic updates: %s", verdict.reason)
        if verdict.start or verdict.resume:
            self._thread = threading.Thread(target=self._drive, args=(verdict,), name="auto-update", daemon=True)
            self._thread.start()

    def _drive(self, verdict: UpdateVerdict) -> None:
        driver = RollDriver(self.dcs, lambda line: log.info("automatic update: %s", line),
                            RollOptions(upgrade=True, automatic=True))
        driver.me = f"{self.name}'s agent ({socket.gethostname()}:{os.getpid()})"
        try:
            if verdict.resume:
                roll = driver.resume()
            else:
                roll = driver.start(driver.plan(self.dcs.snapshot()))
                self.history("auto-update", verdict.reason, {"target": verdict.target, "roll": roll.id})
            log.info("automatic update: %s", driver.run(roll))
        except PilotError as error:  # halted (recorded in the DCS, shown by list) or refused at the start
            log.warning("automatic update stopped: %s", error)
        except Exception:  # a bug: said, and the roll stays recorded for a person to look at
            log.exception("automatic update failed")
