"""The two small threads behind the routing endpoints (thin adapters; the judgement is in routing.py
and writer.py).

- `StatusObserver` asks the local mariadbd for its wsrep status every OBSERVE_INTERVAL with a
  QUERY_TIMEOUT, independently of the agent cycle (which may be busy joining, evicting or waiting on a
  slow server for seconds), so `/health`, `/read` and `/writer` follow the server within a second.
- `WriterKeeper` takes, renews and releases the writer lease every WRITER_TICK, or at once when woken. It
  runs apart from the agent cycle for the same reason: a writer change must not wait for a cycle that is
  blocked elsewhere.
- `DcsWatch` runs the DCS watch and wakes the agent cycle and the writer keeper when a change concerns
  them (wakeups.py decides which).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from galera_pilot.cluster import Cluster
from galera_pilot.dcs.base import DCS, Change
from galera_pilot.errors import PilotError
from galera_pilot.routing import OBSERVE_INTERVAL, LiveStatus, health, may_keep_writer
from galera_pilot.wakeups import WakeFilter
from galera_pilot.writer import WRITER_TICK, Step, candidates_from, choose_writer, claim_until, writer_step

log = logging.getLogger(__name__)


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


class WriterKeeper:
    """Holds this member's part in the writer election: acquire, renew, release the `writer` lease."""

    def __init__(self, name: str, dcs: DCS, live: Callable[[], LiveStatus], priority: int, ttl: float,
                 fresh_within: float, on_change: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.dcs = dcs
        self._live = live
        self.priority = priority
        self.ttl = ttl
        self.fresh_within = fresh_within
        self._on_change = on_change
        self._claim_until = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.maintenance = False
        self.holder: str | None = None  # the writer as of our last look at the DCS
        self.last_error: str | None = None

    def claim_until(self) -> float:
        return self._claim_until

    def tick(self) -> Step:
        with self._lock:
            sent_at = time.monotonic()
            try:
                view = self.dcs.routing_view()
            except PilotError as error:
                self.last_error = str(error)
                return Step.NONE  # our claim runs out by itself if the DCS stays away
            return self._apply(view, sent_at)

    def _apply(self, view: Cluster, sent_at: float) -> Step:
        self.maintenance = self.name in view.maintenance
        self.holder = view.writer
        live, now = self._live(), time.monotonic()
        # Taking the role needs Synced; keeping it tolerates a moment as a donor (routing.may_keep_writer).
        healthy = bool(may_keep_writer(live, now) if view.writer == self.name else health(live, now))
        candidates = candidates_from(view, self.name, healthy, self.priority, time.time(), self.fresh_within)
        switchover = view.switchover
        choice = choose_writer(candidates, view.writer, switchover.from_member if switchover else None,
                               switchover.to_member if switchover else None)
        step = writer_step(self.name, view.writer, choice)
        try:
            if step in (Step.ACQUIRE, Step.RENEW):
                if self.dcs.acquire_writer(self.name, self.ttl, "Synced; elected writer"):
                    self._claim_until = claim_until(sent_at, self.ttl)
                    self.holder = self.name
                    if step == Step.ACQUIRE:
                        self._changed(f"took the writer role (lease {self.ttl:g} s)")
                else:
                    self._claim_until = 0.0
            elif step == Step.RELEASE:
                self._claim_until = 0.0  # stop claiming first, then give the key up
                self.dcs.release_writer(self.name)
                self.holder = None
                self._changed("gave the writer role up" + (" (switchover)" if switchover else ""))
            if switchover is not None and view.writer != switchover.from_member and self.holder == self.name:
                self.dcs.clear_switchover()  # done: we took over from the member it moved away from
        except PilotError as error:
            self.last_error = str(error)
        return step

    def drop(self, why: str) -> None:
        """Give the role up at once (mariadbd died, the agent stops): stop claiming, delete the key."""
        self._claim_until = 0.0
        with self._lock:  # not in the middle of a tick that could renew what we give up
            self._claim_until = 0.0
            if self.holder != self.name:
                return
            try:
                self.dcs.release_writer(self.name)
                self._changed(f"gave the writer role up: {why}")
            except PilotError as error:
                log.warning("could not release the writer lease (it expires in %g s): %s", self.ttl, error)
            self.holder = None

    def _changed(self, sentence: str) -> None:
        log.info("%s", sentence)
        if self._on_change is not None:
            self._on_change(sentence)

    def start(self) -> None:
        threading.Thread(target=self._run, name="writer-keeper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Tick now rather than at the next WRITER_TICK (the writer key or a member changed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # a bug must not kill the thread: the claim then simply runs out
                log.exception("writer keeper tick failed")
            self._wake.wait(max(0.0, WRITER_TICK - (time.monotonic() - started)))


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
