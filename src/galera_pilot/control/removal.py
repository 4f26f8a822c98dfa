"""`galera-pilot remove MEMBER`: take a node out of the cluster for good (the rules: membership/rules.py).

A member whose agent reports is asked through the DCS (`removed/<name>`): its agent stops mariadbd
cleanly, so the others' quorum base shrinks at once, marks its folder and exits (agent/removal.py); this
command waits for that. A member whose host is gone has no agent to ask: the record is marked done here,
and a survivor is told to evict the instance the DCS last knew, should the view still hold it. Either way
the roster entry goes (a full recovery no longer waits for it, the proxies drop it) and the record stays,
so the member never comes back by itself. An embedded folder also moves it out of its node list, so `up`
neither starts it again nor reuses its name or address.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from galera_pilot.cluster import REMOVED, Cluster, Removal
from galera_pilot.control.query import run_statement
from galera_pilot.control.target import ClusterTarget
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.membership import forget_removal, forget_roster_entry, record_removal, update_removal
from galera_pilot.errors import PilotError
from galera_pilot.membership.rules import RemovalPlan, removal_plan, removal_refusal

POLL = 0.2
GCOMM_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Remover:
    def __init__(self, target: ClusterTarget, dcs: DCS, by: str, say: Callable[[str], None]) -> None:
        self.target = target
        self.dcs = dcs
        self.by = by
        self.say = say

    def check(self, member: str, force: bool) -> RemovalPlan:
        """The plan, or the refusal as a PilotError (a forceable one names --force)."""
        snapshot = self.dcs.snapshot(with_history=False)
        if member in snapshot.removed and snapshot.removed[member].phase == REMOVED:
            raise PilotError(f"{member} is already removed ({snapshot.removed[member].detail})")
        refusal = removal_refusal(snapshot, member)
        if refusal is not None and not (force and refusal.forceable):
            raise PilotError(f"remove refused: {refusal.reason}")
        if refusal is not None:
            self.say(f"--force: {refusal.reason}")
        return removal_plan(snapshot, member)

    def remove(self, plan: RemovalPlan, timeout: float) -> str:
        record = Removal(plan.member, self.by, time.time(), how=plan.how)
        if not record_removal(self.dcs, record):
            self.say(f"{plan.member}'s removal was already recorded; carrying it on")
            record = self.dcs.snapshot(with_history=False).removed.get(plan.member, record)
        detail = self._wait_left(plan.member, timeout) if plan.how == "stop" else self._evict_gone(plan, record)
        forget_roster_entry(self.dcs, plan.member)
        if self.target.embedded is not None:
            self.target.embedded.retire_node(plan.member)
        remaining = ", ".join(plan.remaining)
        return f"{plan.member} removed: {detail}; the cluster is now {remaining}"

    def _wait_left(self, member: str, timeout: float) -> str:
        self.say(f"asked {member}'s agent to stop mariadbd cleanly and leave")
        deadline = time.monotonic() + timeout
        instance = ""
        while time.monotonic() < deadline:
            snapshot = self.dcs.snapshot(with_history=False)
            if member in snapshot.members:
                instance = snapshot.members[member].gcomm_uuid or instance
            if member in snapshot.arbitrators:
                instance = snapshot.arbitrators[member].gcomm_uuid or instance
            record = snapshot.removed.get(member)
            if record is None:
                raise PilotError(f"{member}'s removal record disappeared (galera-pilot remove --undo?)")
            if record.phase == REMOVED:
                return record.detail
            if member not in snapshot.members and member not in snapshot.arbitrators:
                # Its agent stopped reporting before it confirmed (host lost, agent killed): evict what the view
                # may still hold; the record keeps the agent from starting mariadbd when it comes back.
                gone = RemovalPlan(member, "evict", instance, ())
                return self._evict_gone(gone, record, "its agent stopped reporting before it confirmed the stop")
            time.sleep(POLL)
        raise PilotError(f"{member}'s agent did not confirm the stop within {timeout:.0f} s (galera-pilot list shows "
                         "what it does); run galera-pilot remove again to keep waiting")

    def _evict_gone(self, plan: RemovalPlan, record: Removal,
                    why: str = "its agent does not report (host gone)") -> str:
        detail = f"{why}; no instance of it known to evict"
        if plan.instance and GCOMM_UUID.fullmatch(plan.instance):
            run_statement(self.target, None, f"SET GLOBAL wsrep_provider_options = 'evs.evict={plan.instance}'")
            detail = f"{why}; instance {plan.instance} evicted from the view"
        update_removal(self.dcs, record.moved(REMOVED, detail=detail))
        return detail


def undo_removal(dcs: DCS, snapshot: Cluster, member: str) -> str:
    if member not in snapshot.removed:
        raise PilotError(f"{member} is not removed (removed: {', '.join(sorted(snapshot.removed)) or 'none'})")
    forget_removal(dcs, member)
    return (f"{member}'s removal is undone in the DCS; delete the removed.json mark in its node folder, then start "
            "its agent: it joins with IST or a full SST")
