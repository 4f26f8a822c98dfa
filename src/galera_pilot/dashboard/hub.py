"""The dashboard's state between looks: the latest frame, the charts' series, and who waits for the next.

One poller thread looks at the cluster (collector.py) every `interval` while a page is connected, and
every `idle_interval` otherwise: the charts keep their 15 minutes either way, and an unwatched dashboard
asks each agent's /status only every few seconds (a REST call costs the agent a TLS handshake).
Pages wait on the hub's condition and are woken by each new look (server-sent events, server.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from galera_pilot.dashboard.collector import reading
from galera_pilot.dashboard.frame import Identity, Observation, build_frame, changed
from galera_pilot.dashboard.series import Series

log = logging.getLogger(__name__)


def carry_writer_since(previous: dict[str, Any] | None, frame: dict[str, Any]) -> None:
    """While the DCS is unreachable there is no history to date the writer from: the same writer keeps the
    start the last frame knew."""
    cluster, before = frame["cluster"], (previous or {}).get("cluster") or {}
    if cluster["writer_since"] is None and cluster["writer"] and before.get("writer") == cluster["writer"]:
        cluster["writer_since"] = before.get("writer_since")


class Hub:
    def __init__(self, identity: Identity, observe: Callable[[], Observation], interval: float = 0.5,
                 idle_interval: float = 2.0, series: Series | None = None) -> None:
        self.identity = identity
        self._observe = observe
        self.interval = interval
        self.idle_interval = max(interval, idle_interval)
        self.series = series or Series()
        self._condition = threading.Condition()
        self._frame: dict[str, Any] | None = None
        self.frame_version = 0  # bumped when the frame changed
        self.look_version = 0  # bumped at every look
        self.last_sample_at = 0.0
        self.watchers = 0
        self._stop = threading.Event()
        self._woken = threading.Event()
        self.on_watched: Callable[[bool], None] | None = None

    # ---- the poller -----------------------------------------------------------------------------------
    def look(self) -> None:
        """One look: new samples for every member, a new frame if anything changed, waiters woken."""
        observation = self._observe()
        flow_control: dict[str, float | None] = {}
        with self._condition:
            for row in observation.rows:
                name = str(row["name"])
                if row.get("role") == "arbitrator":
                    continue  # no data, no queues: nothing to chart
                sample = self.series.add(name, reading(observation.at, observation.statuses.get(name)))
                flow_control[name] = sample.flow_control
            if observation.rows:  # a look that found no cluster at all must not wipe the charts
                self.series.forget({str(row["name"]) for row in observation.rows})
            self.last_sample_at = observation.at
            frame = build_frame(self.identity, observation, flow_control)
            carry_writer_since(self._frame, frame)
            if changed(self._frame, frame):
                self.frame_version += 1
            self._frame = frame
            self.look_version += 1
            self._condition.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._woken.clear()  # before the look: news that arrives during it brings the next one forward
            try:
                self.look()
            except Exception:  # a bug in one look must not freeze the page: logged, tried again
                log.exception("dashboard: one look at the cluster failed")
            self._woken.wait(self.interval if self.watchers else self.idle_interval)

    def start(self) -> None:
        threading.Thread(target=self._run, name="dashboard-poller", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        with self._condition:
            self._condition.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ---- what the pages read ------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any] | None, int, int]:
        with self._condition:
            return self._frame, self.frame_version, self.look_version

    def samples_since(self, after: float) -> tuple[dict[str, list[list[float | int | None]]], float]:
        with self._condition:
            return self.series.since(after), self.last_sample_at

    def wait_look(self, seen: int, timeout: float) -> int:
        """Block until a look newer than `seen` (or the timeout, or stop); the newest look's version."""
        with self._condition:
            self._condition.wait_for(lambda: self.look_version > seen or self._stop.is_set(), timeout)
            return self.look_version

    def nudge(self) -> None:
        """Look now (the DCS reported news: dashboard/watch.py)."""
        self._woken.set()

    def watching(self, delta: int) -> None:
        """A page connected (+1) or left (-1): a first watcher gets a look at once, at the fast interval;
        `on_watched` hears when the first page opens and when the last one closes."""
        with self._condition:  # the callback too, so a leaving and a joining page cannot swap their calls
            before = self.watchers
            self.watchers += delta
            if self.on_watched is not None and (before == 0) != (self.watchers == 0):
                self.on_watched(self.watchers > 0)
        if delta > 0:
            self._woken.set()
