"""Drive a rolling restart, one node at a time, the writer last: for `galera-pilot restart` and `upgrade`,
and for the writer's agent rolling an automatic update (agent/auto_updates.py).

For each node (lifecycle/roll.py says which and when): wait until the cluster is whole and calm for
SETTLE seconds, check that IST can cover the node's downtime, move the writer role away if it holds it,
drain the node (maintenance), ask its agent to restart mariadbd (agent/restarts.py), wait until the
agent reports a new mariadbd Synced, take the node out of maintenance and wait until it serves again.

Every step is recorded in the DCS before it is taken (`roll`), and the driver holds a lease while it
runs (`roll_driver`, renewed by a thread of its own). A driver that dies (killed, its host lost) stops
the roll where it was: the node being restarted finishes its restart and stays drained, `list` shows
the roll as interrupted, and `restart --resume` goes on from the recorded step, never restarting a node
twice. A node that does not come back halts the roll with its agent's report and the error log's last
lines.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from galera_pilot.cluster import DONE, FAILED, Cluster, HistoryEvent, RestartRequest, Roll
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.lifecycle import (
    create_roll,
    delete_roll,
    driver_of,
    hold_driver,
    release_driver,
    request_restart,
    save_roll,
)
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.lifecycle.roll import (
    SETTLE,
    PlanError,
    blocker,
    expected_downtime,
    ist_shortfall,
    next_member,
    plan,
    switchover_target,
)
from galera_pilot.lifecycle.updates import ABORTED
from galera_pilot.lifecycle.upgrade import same_version, upgrade_refusal
from galera_pilot.membership.rules import choose_donor
from galera_pilot.routing.handover import endpoint_code, run_switchover, wait_drained

DRIVER_TTL = 10.0  # s: a driver that stops renewing leaves the roll interrupted after this long
DRIVER_RENEW = 2.0
POLL = 0.2


@dataclass(frozen=True)
class RollOptions:
    members: tuple[str, ...] = ()  # restart only these (default: every member)
    allow_sst: bool = False  # restart a node even when its rejoin would need a full SST
    ready_timeout: float = 120.0  # s to wait for the cluster to be calm before the next node
    restart_timeout: float = 900.0  # s one node may take to be Synced again
    serve_timeout: float = 60.0  # s a Synced node may take to answer /read again once out of maintenance
    upgrade: bool = False  # a rolling upgrade onto the installed binaries (lifecycle/upgrade.py)
    automatic: bool = False  # started by an agent under the `updates` policy (lifecycle/updates.py)
    rebuild_from: str = ""  # `galera-pilot reinit`: the one member is rebuilt by a full SST from this donor


class RollHalted(PilotError):
    """The roll stopped before its end; the message says why and how to go on."""


class RollDriver:
    """Drives one roll through a DCS; `say` prints each step."""

    def __init__(self, dcs: DCS, say: Callable[[str], None], options: RollOptions | None = None) -> None:
        self.dcs = dcs
        self.say = say
        self.options = options or RollOptions()
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self._started = time.monotonic()
        self._lost = threading.Event()  # the driver lease went to somebody else
        self._stop_renewing = threading.Event()

    # ---- starting, resuming, aborting ----------------------------------------------------------------
    @property
    def verb(self) -> str:
        return "upgrade" if self.options.upgrade else "reinit" if self.options.rebuild_from else "restart"

    def plan(self, snapshot: Cluster) -> tuple[str, ...]:
        known = set(snapshot.roster) | set(snapshot.members)
        try:
            return plan(known, self.options.members, snapshot.writer)
        except PlanError as error:
            raise PilotError(str(error)) from None

    def start(self, order: tuple[str, ...]) -> Roll:
        snapshot = self.dcs.snapshot(with_history=False)
        if snapshot.roll is not None:
            raise PilotError(f"a rolling restart ({snapshot.roll.id}) is already recorded: galera-pilot restart "
                             "--resume continues it, --abort ends it")
        if snapshot.pause is not None:
            raise PilotError(f"{self.verb} refused: {blocker(snapshot)}")
        target = ""
        if self.options.upgrade:
            why, target = upgrade_refusal(snapshot)
            if why:
                raise PilotError(f"upgrade refused: {why}")
        roll_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"  # never an aborted roll's id again
        rebuild = bool(self.options.rebuild_from)
        roll = Roll(id=roll_id, order=order, started_at=time.time(), by=self.me,
                    allow_sst=(self.options.allow_sst or rebuild) and not self.options.upgrade,
                    kind="upgrade" if self.options.upgrade else "reinit" if rebuild else "restart", target=target,
                    automatic=self.options.automatic, donor=self.options.rebuild_from)
        if not hold_driver(self.dcs, self.me, DRIVER_TTL):
            raise PilotError(f"another galera-pilot restart or upgrade ({snapshot.roll_driver or 'another process'}) "
                             "is starting a roll")
        if not create_roll(self.dcs, roll):
            release_driver(self.dcs, self.me)
            raise PilotError("another rolling restart was recorded at the same moment; see galera-pilot list")
        return roll

    def resume(self) -> Roll:
        snapshot = self.dcs.snapshot(with_history=False)
        if snapshot.roll is None:
            raise PilotError("no rolling restart is recorded: nothing to resume")
        if not hold_driver(self.dcs, self.me, DRIVER_TTL):
            raise PilotError(f"{snapshot.roll_driver} is still driving rolling restart {snapshot.roll.id} (a driver "
                             f"that died lets go within {DRIVER_TTL:.0f} s)")
        allow_sst = (snapshot.roll.allow_sst or self.options.allow_sst) and snapshot.roll.kind != "upgrade"
        roll = replace(snapshot.roll, halted="", by=self.me, allow_sst=allow_sst)
        save_roll(self.dcs, roll)
        self.say(f"resuming rolling restart {roll.id}: {len(roll.done)} of {len(roll.order)} restarted"
                 + (f", {roll.current} was being restarted" if roll.current else ""))
        return roll

    def abort(self) -> str:
        snapshot = self.dcs.snapshot(with_history=False)
        roll = snapshot.roll
        if roll is None:
            raise PilotError("no rolling restart is recorded: nothing to abort")
        deadline = time.monotonic() + DRIVER_TTL + 2 * DRIVER_RENEW
        # A person's driver is a process they can stop; an agent's (an automatic update) stops by itself once
        # the roll is gone (it checks before every step), so that one is aborted at once.
        while not roll.automatic and (driver := driver_of(self.dcs)) is not None:
            if time.monotonic() >= deadline:  # a killed driver's lease lapses within DRIVER_TTL
                raise PilotError(f"{driver} is driving rolling restart {roll.id}: stop that process first (Ctrl-C "
                                 "leaves the roll where it is), then abort")
            time.sleep(POLL)
        roll = self.dcs.snapshot(with_history=False).roll or roll
        # Recorded first: an agent that sees the roll gone must also see that a person ended it.
        self._record(f"rolling restart {roll.id} aborted after {len(roll.done)} of {len(roll.order)} members", roll,
                     aborted=True)
        delete_roll(self.dcs, roll.id)
        for name in roll.drained:
            self.dcs.set_maintenance(name, False)
        undrained = f"; {', '.join(roll.drained)} out of maintenance again" if roll.drained else ""
        return (f"rolling restart {roll.id} aborted: {len(roll.done)} of {len(roll.order)} were restarted"
                f"{undrained}. A node whose restart had begun still rejoins by itself.")

    # ---- running -----------------------------------------------------------------------------------------
    def run(self, roll: Roll) -> str:
        """Drive `roll` to its end; the closing sentence, or RollHalted (recorded in the DCS)."""
        renewer = threading.Thread(target=self._renew, name="roll-driver", daemon=True)
        renewer.start()
        try:
            roll = self._run(roll)
        except RollHalted as halt:
            self._halt(roll, str(halt))
            raise
        except DCSError as error:
            raise RollHalted(f"the DCS does not answer ({error}); the roll stops where it was (galera-pilot "
                             "restart --resume continues it)") from None
        finally:
            self._stop_renewing.set()
            renewer.join(timeout=5)
            with contextlib.suppress(DCSError):  # else the lease expires by itself
                release_driver(self.dcs, self.me)
        took = time.monotonic() - self._started
        sentence = f"rolling restart {roll.id} done: {', '.join(roll.done)} restarted in {took:.1f} s"
        if roll.kind == "upgrade":
            sentence = f"rolling upgrade {roll.id} done: {', '.join(roll.done)} run {roll.target} ({took:.1f} s)"
        if roll.kind == "reinit":
            sentence = (f"reinit {roll.id} done: {', '.join(roll.done)} rebuilt by a full SST from {roll.donor} "
                        f"in {took:.1f} s")
        delete_roll(self.dcs, roll.id)
        self._record(sentence, roll)
        return sentence

    def _run(self, roll: Roll) -> Roll:
        while True:
            snapshot = self._snapshot(roll)
            member = next_member(roll, snapshot.writer)
            if member is None:
                return roll
            request = snapshot.restarts.get(member)
            if member != roll.current or request is None or request.roll != roll.id:
                roll = self._begin(roll, member)
            downtime = self._wait_restarted(roll, member)
            roll = self._serve_again(roll, member, downtime)

    def _begin(self, roll: Roll, member: str) -> Roll:
        """Everything before the agent's stop: calm cluster, IST check, writer moved, node drained."""
        snapshot = self._wait_calm(roll, member)
        if member not in snapshot.members:
            raise RollHalted(f"{member} does not report: its agent or host is down")
        if roll.kind == "upgrade" and not same_version(snapshot.members[member].installed_version, roll.target):
            installed = snapshot.members[member].installed_version or "nothing"
            raise RollHalted(f"{member}'s installed binary runs {installed}, not {roll.target}: install the same "
                             "packages there first")
        if (not roll.allow_sst or roll.kind == "upgrade") and member not in roll.drained:
            why = ist_shortfall(snapshot, member, expected_downtime(roll))
            if why and roll.kind == "upgrade":
                raise RollHalted(f"{why}; an upgrade must rejoin by IST (a cross-version SST does not work, "
                                 "MDEV-33263): raise mariadb.gcache_size, or upgrade at a quieter time")
            if why:
                raise RollHalted(f"{why}; the roll stops before it (galera-pilot restart --resume --allow-sst restarts "
                                 "it anyway, or raise mariadb.gcache_size)")
        if snapshot.writer == member:
            target = switchover_target(snapshot, roll, member)
            self._step(f"{member} holds the writer role: switching over to {target or 'the best other member'}")
            try:
                self._step(run_switchover(self.dcs, target, 30.0))
            except PilotError as error:
                raise RollHalted(f"the writer role could not be moved off {member}: {error}") from None
        roll = replace(roll, current=member, drained=tuple(dict.fromkeys((*roll.drained, member))))
        self._save(roll)
        self.dcs.set_maintenance(member, True)
        api_url = snapshot.members[member].api_url
        try:
            took = wait_drained(api_url, 30.0)
        except PilotError:
            raise RollHalted(f"{member} still serves 30 s after it was put in maintenance") from None
        self._step(f"{member}: drained in {took:.2f} s; asking its agent to restart mariadbd")
        self._snapshot(roll)  # still ours (not aborted, not taken over) right before the request
        donor = self._donor(roll, member) if roll.kind == "reinit" else ""
        request_restart(self.dcs, RestartRequest(member, roll.id, time.time(), upgrade=roll.kind == "upgrade",
                                                 rebuild_from=donor))
        return roll

    def _wait_calm(self, roll: Roll, member: str) -> Cluster:
        """The snapshot once every member has been Synced, Primary and calm for SETTLE seconds."""
        deadline = time.monotonic() + self.options.ready_timeout
        calm_since: float | None = None
        said = ""
        while True:
            snapshot = self._snapshot(roll)
            why = blocker(snapshot, roll)
            now = time.monotonic()
            if not why:
                calm_since = calm_since if calm_since is not None else now
                if now - calm_since >= SETTLE:
                    return snapshot
            else:
                calm_since = None
                if why != said:
                    self._step(f"waiting before {member}: {why}")
                    said = why
                if now >= deadline:
                    raise RollHalted(f"the cluster did not become calm within {self.options.ready_timeout:.0f} s "
                                     f"before restarting {member}: {why}")
            time.sleep(POLL)

    def _wait_restarted(self, roll: Roll, member: str) -> float:
        """Seconds from the request until the agent reports a new mariadbd Synced; RollHalted if it fails."""
        started = time.monotonic()
        said = ""
        while True:
            snapshot = self._snapshot(roll)
            request = snapshot.restarts.get(member)
            if request is None or request.roll != roll.id:
                raise RollHalted(f"the restart request for {member} is gone (was the roll aborted?)")
            if request.phase == DONE:
                took = time.monotonic() - started
                self._step(f"{member}: {request.detail}")
                if roll.kind == "upgrade":
                    self._check_version(roll, member)
                return took
            if request.phase == FAILED:
                raise RollHalted(f"{member} did not come back: {request.detail}")
            record = snapshot.members.get(member)
            activity = record.activity if record is not None else "its agent does not report"
            if activity != said:
                self._step(f"{member}: {activity}")
                said = activity
            if time.monotonic() - started >= self.options.restart_timeout:
                raise RollHalted(f"{member} was not Synced again within {self.options.restart_timeout:.0f} s; "
                                 f"its agent says: {activity}")
            time.sleep(POLL)

    def _serve_again(self, roll: Roll, member: str, downtime: float) -> Roll:
        self._snapshot(roll)
        self.dcs.set_maintenance(member, False)
        snapshot = self._snapshot(roll)
        record = snapshot.members.get(member)
        deadline = time.monotonic() + self.options.serve_timeout
        while record is not None and endpoint_code(record.api_url, "/read") != 200:
            if time.monotonic() >= deadline:
                raise RollHalted(f"{member} is Synced but its /read does not answer 200 within "
                                 f"{self.options.serve_timeout:.0f} s of leaving maintenance")
            time.sleep(POLL)
        roll = replace(roll, done=(*roll.done, member), current=None,
                       drained=tuple(n for n in roll.drained if n != member),
                       downtimes={**roll.downtimes, member: round(downtime, 1)})
        self._save(roll)
        self._step(f"{member}: serving again ({len(roll.done)} of {len(roll.order)} restarted)")
        return roll

    def _check_version(self, roll: Roll, member: str) -> None:
        """After an upgrade restart the node must run the target (its record says so within a few seconds)."""
        deadline = time.monotonic() + 10.0
        while True:
            record = self._snapshot(roll).members.get(member)
            running = record.version if record is not None else ""
            if same_version(running, roll.target):
                self._record(f"{member} runs {roll.target} now (rolling upgrade {roll.id})", roll)
                return
            if time.monotonic() >= deadline:
                raise RollHalted(f"{member} runs {running or 'nothing known'} after its restart, not {roll.target}")
            time.sleep(POLL)

    def _donor(self, roll: Roll, member: str) -> str:
        """The donor chosen at the start if it can still donate (Synced, not the writer), else another."""
        snapshot = self._snapshot(roll)
        donor = choose_donor(snapshot, member, roll.donor) or choose_donor(snapshot, member)
        if donor is None:
            raise RollHalted(f"no Synced member other than the writer can donate {member}'s full SST now")
        if donor != roll.donor:
            self._step(f"{roll.donor} cannot donate now; {donor} will")
        return donor

    # ---- helpers ---------------------------------------------------------------------------------------
    def _snapshot(self, roll: Roll) -> Cluster:
        if self._lost.is_set():
            raise PilotError(f"another process took over driving rolling restart {roll.id}; this one stops")
        snapshot = self.dcs.snapshot(with_history=False)
        if snapshot.roll is None or snapshot.roll.id != roll.id:
            raise PilotError(f"rolling restart {roll.id} is no longer recorded (aborted); this one stops")
        return snapshot

    def _save(self, roll: Roll) -> None:
        if self._lost.is_set():
            raise PilotError(f"another process took over driving rolling restart {roll.id}; this one stops")
        save_roll(self.dcs, roll)

    def _halt(self, roll: Roll, why: str) -> None:
        try:
            current = self.dcs.snapshot(with_history=False).roll
            if current is not None and current.id == roll.id and not self._lost.is_set():
                save_roll(self.dcs, replace(current, halted=why))
                self._record(f"rolling restart {roll.id} halted: {why}", roll)
        except PilotError:
            pass  # the roll stays as last recorded (or is gone); `list` shows it interrupted once the lease lapses

    def _renew(self) -> None:
        while not self._stop_renewing.wait(DRIVER_RENEW):
            try:
                if not hold_driver(self.dcs, self.me, DRIVER_TTL):
                    self._lost.set()
                    return
            except DCSError:
                continue  # the main loop meets the same DCS and says so

    def _step(self, sentence: str) -> None:
        self.say(f"[{time.monotonic() - self._started:6.1f} s] {sentence}")

    def _record(self, sentence: str, roll: Roll, aborted: bool = False) -> None:
        inputs = {"by": self.me, "roll": roll.id, "kind": roll.kind, "target": roll.target, "automatic": roll.automatic}
        if aborted:
            inputs[ABORTED] = True
        self.dcs.record_history(HistoryEvent(time.time(), "galera-pilot", "roll", sentence, inputs))

