"""`galera-pilot bootstrap`: a person orders one member to bootstrap after a full outage (or, with
--empty, to start a new cluster from nothing), after being shown what that discards.

The agents never do this alone with less than the recovery policy requires, nor below the cluster's
high-water mark; a person may. Everything shown and checked comes from one DCS snapshot; the order is a
TTL lease the member's agent acts on (dcs.order_bootstrap / order_empty_start).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from galera_pilot.agent.high_water import empty_start_refusal, held_most, shortfall
from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError

ORDER_TTL = 120.0  # s: an order no agent acted on expires instead of surprising someone later

Say = Callable[[str], None]


def order_bootstrap(dcs: DCS, member: str, force: bool, say: Say) -> str:
    """Show what bootstrapping `member` discards; with `force`, order it. The closing sentence, or PilotError."""
    snapshot = dcs.snapshot()
    primary = [m.name for m in snapshot.primary_members]
    if primary:
        raise PilotError(f"a Primary Component exists ({', '.join(sorted(primary))}); nothing to bootstrap")
    target = snapshot.members.get(member)
    if target is None or target.position is None:
        raise PilotError(f"{member} has not reported a position (is its agent running?)")
    if target.position.unusable:
        raise PilotError(f"{member}'s datadir cannot be a bootstrap source: {target.position.unusable}")
    ahead = [f"{n} (seqno {m.position.seqno})" for n, m in sorted(snapshot.members.items())
             if m.position is not None and m.position.seqno > target.position.seqno]
    missing = sorted(set(snapshot.roster) - {n for n, m in snapshot.members.items() if m.position})
    say(f"{member} is at seqno {target.position.seqno} of cluster {target.position.uuid}.")
    lost = shortfall(snapshot, target.position)
    if lost:
        say(f"WARNING: the cluster had reached {held_most(snapshot)}: bootstrapping {member} discards "
            f"{lost} committed transactions.")
    if ahead:
        say(f"WARNING: ahead of it: {', '.join(ahead)}; their extra transactions will be discarded.")
    if missing:
        say(f"WARNING: no position from {', '.join(missing)}; they may hold transactions that will be "
            "discarded when they rejoin.")
    if not force:
        raise PilotError("not ordered; run again with --force to bootstrap from " + member)
    if not dcs.order_bootstrap(member, ttl=ORDER_TTL):
        raise PilotError("a bootstrap order is already pending")
    dcs.record_history(HistoryEvent(time.time(), member, "force",
                                    f"a person ordered {member} to bootstrap (galera-pilot bootstrap --force)",
                                    {"ahead": ahead, "missing": missing, "discards": lost}))
    return f"ordered: {member}'s agent bootstraps the cluster within seconds; the others then join it."


def order_empty_start(dcs: DCS, member: str, force: bool, say: Say) -> str:
    """`bootstrap --empty`: what starting from nothing discards, then (with `force`) the order."""
    snapshot: Cluster = dcs.snapshot()
    refusal = empty_start_refusal(snapshot, member)
    if refusal:
        raise PilotError(refusal)
    old = snapshot.initialize.cluster_uuid if snapshot.initialize else None
    reached = held_most(snapshot) or "an unknown seqno (no high-water mark)"
    say(f"{member}'s datadir is empty. Starting from nothing creates a new cluster UUID; cluster {old} had "
        f"reached {reached}, and all of it is discarded.")
    kept = [n for n, m in sorted(snapshot.members.items()) if m.position is not None and not m.position.empty]
    if kept:
        say(f"Datadirs still holding data ({', '.join(kept)}) are moved aside, not deleted, when they join.")
    if not force:
        raise PilotError(f"not ordered; run again with --force --empty to start a new cluster on {member}")
    if not dcs.order_empty_start(member, ttl=ORDER_TTL):
        raise PilotError("the initialize record changed meanwhile; look again with `galera-pilot list`")
    dcs.record_history(HistoryEvent(time.time(), member, "force",
                                    f"a person ordered {member} to start a new cluster from nothing, replacing "
                                    f"{old} (galera-pilot bootstrap --force --empty)",
                                    {"empty": True, "replaces": old, "high_water": reached}))
    return f"ordered: {member}'s agent initializes a new cluster within seconds; the others then join it."
