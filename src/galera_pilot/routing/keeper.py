"""The writer keeper: takes, renews and releases the writer lease every WRITER_TICK, or at once when woken
(a thin adapter; the rules are in writer.py, failsafe.py and health.py).

It runs apart from the agent cycle: a writer change must not wait for a cycle that is blocked elsewhere
(joining, evicting, waiting on a slow server).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from galera_pilot.cluster import Cluster, Switchover
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.routing.failsafe import (
    MAX_PROMISE,
    Peer,
    Promise,
    component_peers,
    grant,
    promise_length,
    should_ask,
)
from galera_pilot.routing.freshness import SKEW_WARNING, ChangeClock, skew_warning
from galera_pilot.routing.health import LiveStatus, Verdict, health, may_keep_writer
from galera_pilot.routing.peers import ask_peers_over_http
from galera_pilot.routing.writer import (
    CLAIM_MARGIN,
    HANDBACK_AFTER,
    WRITER_TICK,
    Step,
    candidates_from,
    choose_writer,
    claim_until,
    handback_due,
    writer_step,
)

log = logging.getLogger(__name__)


class WriterKeeper:
    """Holds this member's part in the writer election: acquire, renew, release the `writer` lease."""

    def __init__(self, name: str, dcs: DCS, live: Callable[[], LiveStatus], priority: int, ttl: float,
                 fresh_within: float, on_change: Callable[[str], None] | None = None,
                 failsafe: bool = True, ask_peers: Callable[[list[Peer], dict[str, object]], list[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self._clock = clock  # monotonic seconds; a test's own clock in the unit tests
        self._wall = wall  # only to estimate the skew against the other members' record times
        self.changes = ChangeClock()  # when each member record last changed, by our clock (freshness.py)
        self.clock_skew: float | None = None  # our clock minus the cluster's, from the members' records
        self.skew_warning = ""
        self._skew_logged: float | None = None  # the skew the last warning in the log gave
        self.last_tick_at = 0.0  # when the last look at the DCS succeeded (our clock)
        # After giving the role up for a switchover: the request and when we released (our clock).
        self._handover: tuple[Switchover, float] | None = None
        self._asked_until = 0.0  # until when peers may still hold failsafe promises to us (our clock)
        self.dcs = dcs
        self._live = live
        self.priority = priority
        self.ttl = ttl
        self.fresh_within = fresh_within
        self._on_change = on_change
        self._claim_until = 0.0
        self._lock = threading.Lock()  # one tick at a time; held across DCS calls, which may hang
        # Guards the claim and the failsafe promise, which exclude each other (failsafe.py); never held
        # across a DCS or network call, so a grant is answered at once even while a tick hangs.
        self._claim_lock = threading.Lock()
        self._promise: Promise | None = None
        self._renewed_at = 0.0  # when the last acquisition or renewal that succeeded was sent
        self._last_view: Cluster | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.maintenance = False
        # `galera-pilot pause` (set by the HA cycle from its snapshot): while True the holder keeps the role
        # and nobody takes it, whatever happens; None (not known yet: a restarted agent before its first
        # cycle, which asks the DCS first thing) counts as paused.
        self.paused: bool | None = False
        self.holder: str | None = None  # the writer as of our last look at the DCS
        self.last_error: str | None = None
        self.failsafe = failsafe
        self._ask_peers = ask_peers or ask_peers_over_http
        self.failsafe_state = ""  # what the last failsafe round found ("" when none was needed), for /status

    def claim_until(self) -> float:
        return self._claim_until

    @property
    def last_view(self) -> Cluster | None:
        """The members, writer and maintenance marks as last read from the DCS (kept through an outage)."""
        return self._last_view

    def tick(self) -> Step:
        with self._lock:
            sent_at = self._clock()
            try:
                view = self.dcs.routing_view()
            except PilotError as error:
                self.last_error = str(error)
                return Step.NONE  # our claim runs out by itself, unless the failsafe round extends it
            return self._apply(view, sent_at)

    def _active_promise(self, now: float) -> Promise | None:
        return self._promise if self._promise is not None and self._promise.active(now) else None

    def _observe_clocks(self, view: Cluster, now: float) -> None:
        self.changes.observe(view.member_versions, {n: m.updated_at for n, m in view.members.items()},
                             now, self._wall())
        self.last_tick_at = now
        skew = self.changes.skew(self.name)
        self.clock_skew = None if skew is None else round(skew, 3)
        warning = skew_warning(self.clock_skew)
        if warning and self.clock_skew is not None and (
                self._skew_logged is None or abs(self.clock_skew - self._skew_logged) > SKEW_WARNING):
            log.warning("%s", warning)  # on the first sight, and again when the estimate moves much
            self._skew_logged = self.clock_skew
        elif not warning and self.skew_warning:
            log.info("this host's clock agrees with the other members' again")
            self._skew_logged = None
        self.skew_warning = warning

    def _fresh_members(self, view: Cluster, now: float) -> set[str]:
        return {name for name in view.members
                if name not in view.member_versions or self.changes.fresh(name, now, self.fresh_within)}

    def _apply(self, view: Cluster, sent_at: float) -> Step:
        self.maintenance = self.name in view.maintenance
        self._last_view = view
        live, now = self._live(), self._clock()
        self._observe_clocks(view, now)
        if not live.observed:
            # A restarted agent ticks before its observer's first look at mariadbd. Judging the node
            # unhealthy now would make the holder of a still-valid lease give it up (a failover and every
            # client session cut, although mariadbd never stopped) and a candidate take the role blind:
            # neither acts until the first look, which comes within QUERY_TIMEOUT, well inside the lease.
            with self._claim_lock:
                self.holder = view.writer
            return Step.NONE
        with self._claim_lock:
            self.holder = view.writer
            promise = self._active_promise(now)
            holder = view.writer
            if holder is not None and holder != self.name:
                self._claim_until = 0.0  # someone else holds the key: whatever we claimed is over
            elif holder is None and promise is not None:
                holder = promise.writer  # we promised: the requester keeps the role until it runs out
            elif holder is None and now < self._claim_until:
                holder = self.name  # our key lapsed while we kept the role (failsafe): take it back
        # Taking the role needs Synced; keeping it tolerates a moment as a donor (routing.may_keep_writer).
        healthy = bool(may_keep_writer(live, now) if holder == self.name else health(live, now))
        candidates = candidates_from(view, self.name, healthy, self.priority, self._fresh_members(view, now))
        switchover = view.switchover if view.switchover is not None and not view.switchover.failed else None
        if self._handover is not None and (holder is not None or self._handover[0] != switchover):
            self._handover = None  # somebody took the role, or the request is gone: the handover is over
        choice = choose_writer(candidates, holder, switchover.from_member if switchover else None,
                               switchover.to_member if switchover else None)
        step = writer_step(self.name, holder, choice)
        paused = self.paused
        if paused is not False and step == Step.ACQUIRE:
            return Step.NONE  # paused (or not known yet): no writer change, so nobody takes the role
        if paused is not False and step == Step.RELEASE:
            step = Step.RENEW  # paused: the holder keeps the role (its /writer still says whether it is healthy)
        if self._handover is not None and handback_due(self._handover[1], now) and healthy and paused is False:
            return self._take_back(self._handover[0], sent_at)
        if step == Step.RELEASE and healthy and not self.maintenance and switchover is not None and choice is None:
            # Nobody we could hand over to (the target is stale, not Synced or drained in our view): keep
            # the role and say why, rather than give it up for nobody.
            target = switchover.to_member or "no other member"
            why = (f"{target} cannot take the writer role in {self.name}'s view "
                   "(no fresh Synced member out of maintenance)")
            try:
                self.dcs.fail_switchover(switchover, why)
                log.warning("switchover refused: %s", why)
            except PilotError as error:
                self.last_error = str(error)
            step = Step.RENEW
        if step == Step.RELEASE and healthy and switchover is not None and now < self._asked_until:
            step = Step.RENEW  # hand over once our peers' failsafe promises to us have run out (see above)
        try:
            if step in (Step.ACQUIRE, Step.RENEW):
                if self.dcs.acquire_writer(self.name, self.ttl, "Synced; elected writer"):
                    self._claim(sent_at)
                    if step == Step.ACQUIRE:
                        self._changed(f"took the writer role (lease {self.ttl:g} s)")
                else:
                    self._claim_until = 0.0
            elif step == Step.RELEASE:
                self._claim_until = 0.0  # stop claiming first, then give the key up
                self.dcs.release_writer(self.name)
                self.holder = None
                if switchover is not None and switchover.from_member == self.name:
                    self._handover = (switchover, self._clock())
                self._changed("gave the writer role up" + (" (switchover)" if switchover else ""))
            if switchover is not None and view.writer != switchover.from_member and self.holder == self.name:
                self.dcs.clear_switchover()  # done: we took over from the member it moved away from
        except PilotError as error:
            self.last_error = str(error)
        return step

    def _take_back(self, request: Switchover, sent_at: float) -> Step:
        """We gave the role up for `request` HANDBACK_AFTER ago and nobody took it (the target's agent is
        hung, cannot reach the DCS, or judges otherwise): take it back rather than leave the cluster
        without a writer until the request expires, and mark the request failed so the CLI says why."""
        self._handover = None
        target = request.to_member or "another member"
        why = f"{target} did not take the writer role within {HANDBACK_AFTER:g} s of {self.name} giving it up"
        try:
            if not self.dcs.acquire_writer(self.name, self.ttl, "took the role back: switchover failed"):
                return Step.NONE  # somebody took it meanwhile: the switchover went through after all
            self._claim(sent_at)
            self._changed(f"took the writer role back (switchover failed: {why})")
            self.dcs.fail_switchover(request, why)
        except PilotError as error:
            self.last_error = str(error)
        return Step.ACQUIRE

    def _claim(self, sent_at: float) -> None:
        """We hold the key (acquired or renewed at sent_at): claim the role, unless we promised a peer
        not to (a grant may have come while the DCS call was on its way)."""
        with self._claim_lock:
            self.holder = self.name
            if self._active_promise(self._clock()) is None:
                self._claim_until = claim_until(sent_at, self.ttl)
                self._renewed_at = sent_at
                if self.failsafe_state:
                    log.info("the DCS answers again: the writer lease is renewed as usual")
                self.failsafe_state = ""

    def drop(self, why: str) -> None:
        """Give the role up at once (mariadbd died, the agent stops): stop claiming, delete the key."""
        with self._claim_lock:
            self._claim_until = 0.0
            held = self.holder == self.name
            self.holder = None  # also ends any failsafe round in flight (it claims only for the holder)
        with self._lock:  # not in the middle of a tick that could renew what we give up
            self._claim_until = 0.0
            if not held:
                return
            try:
                self.dcs.release_writer(self.name)
                self._changed(f"gave the writer role up: {why}")
            except PilotError as error:
                log.warning("could not release the writer lease (it expires in %g s): %s", self.ttl, error)
            self.holder = None

    # ---- failsafe: the writer role without the DCS (failsafe.py) -----------------------------------
    def grant_failsafe(self, requester: object, requested_ttl: object) -> Verdict:
        """A peer that was the writer asks us, while it cannot renew its lease, not to take the role."""
        if not isinstance(requester, str) or not requester:
            return Verdict(False, "the request names no writer")
        length = promise_length(requested_ttl, self.ttl)
        if length is None:
            return Verdict(False, f"ttl must be a number of seconds, at most {MAX_PROMISE:g}")
        with self._claim_lock:
            now = self._clock()
            promise = self._active_promise(now)
            last_writer = self.holder or (promise.writer if promise else None)
            verdict = grant(self.name, requester, now < self._claim_until, last_writer)
            if verdict:
                self._promise = Promise(requester, now + length)
        return verdict

    def failsafe_round(self) -> str:
        """If renewals stalled while we are the writer, ask every peer of our component; extend the claim
        when all granted. Returns what happened ("" when no round was needed)."""
        now = self._clock()
        live = self._live()
        if not self.failsafe or not should_ask(self.holder, self.name, bool(may_keep_writer(live, now)),
                                               self.maintenance, now < self._claim_until, now - self._renewed_at):
            return ""
        view = self._last_view
        peers, why = component_peers(self.name, live.status, view.members if view is not None else {})
        if why:
            return f"cannot keep the writer role without the DCS: {why}"
        sent_at = self._clock()
        # Any peer may grant, and then takes no role until its promise ends: a switchover must not hand
        # the role to one of them before (it could not take it, and we would take it back).
        self._asked_until = max(self._asked_until, sent_at + self.ttl + CLAIM_MARGIN)
        refusals = self._ask_peers(peers, {"writer": self.name, "ttl": self.ttl})
        if refusals:
            return f"cannot keep the writer role without the DCS: {'; '.join(refusals)}"
        with self._claim_lock:
            if self.holder != self.name or self._active_promise(self._clock()) is not None:
                return ""  # dropped, or we promised someone else meanwhile
            self._claim_until = max(self._claim_until, claim_until(sent_at, self.ttl))
        names = ", ".join(p.name for p in peers) or "none"
        return f"keeps the writer role without the DCS: every other member of the Primary Component agreed ({names})"

    def _failsafe_run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                state = self.failsafe_round()
            except Exception:  # a bug must not kill the thread: the claim then simply runs out
                log.exception("writer failsafe round failed")
                state = "failsafe round failed (see the log)"
            if state != self.failsafe_state and state:
                log.warning("%s", state)
            if state or self.holder != self.name:
                self.failsafe_state = state
            self._stop.wait(max(0.0, WRITER_TICK - (time.monotonic() - started)))

    def _changed(self, sentence: str) -> None:
        log.info("%s", sentence)
        if self._on_change is not None:
            self._on_change(sentence)

    def start(self) -> None:
        threading.Thread(target=self._run, name="writer-keeper", daemon=True).start()
        threading.Thread(target=self._failsafe_run, name="writer-failsafe", daemon=True).start()

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
