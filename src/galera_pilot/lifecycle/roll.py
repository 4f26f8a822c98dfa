"""Pure rules of a rolling restart: the order, when the next node may go, whether IST can cover it,
and where the writer moves. The driver (lifecycle/driver.py) carries them out; nothing here does I/O.

The rules, each from a way a roll goes wrong:
* one node at a time, the writer last (whoever holds the role *then*: a failover during the roll moves
  who "last" is), so clients see at most one switchover, to a node already restarted;
* the next node goes only when every member is Synced and Primary, none is a donor, receive queues are
  short, and that has held for SETTLE seconds (a node just back may still be catching up);
* nobody is in maintenance except by this roll: restarting one node while a person drained another
  would leave fewer nodes serving than anyone planned for;
* a node rejoins by IST only if the donors' gcache still holds every write-set it misses: the expected
  downtime (the longest this roll measured, else DEFAULT_DOWNTIME) times the write rate, with a margin,
  must fit the smallest gcache among the others; otherwise it would take a full SST, which the roll
  refuses unless allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from galera_pilot.cluster import Cluster, Roll

SETTLE = 3.0  # s every member must have been Synced before the next node goes
MAX_RECV_QUEUE = 16  # write-sets waiting to be applied on a member: more means it is still catching up
IST_MARGIN = 2.0  # the gcache must hold twice what the downtime is expected to write
DEFAULT_DOWNTIME = 60.0  # s a restart is expected to take before this roll measured one


class PlanError(ValueError):
    """The members asked for cannot be rolled (unknown names); the message says which."""


def plan(known: Iterable[str], requested: Sequence[str], writer: str | None) -> tuple[str, ...]:
    """The order: the requested members (every known one by default) by name, the writer last."""
    names = set(known)
    chosen = list(dict.fromkeys(requested)) if requested else sorted(names)
    unknown = [name for name in chosen if name not in names]
    if unknown:
        raise PlanError(f"no member named {', '.join(unknown)} (members: {', '.join(sorted(names)) or 'none'})")
    return tuple(sorted(n for n in chosen if n != writer)) + ((writer,) if writer in chosen else ())


def next_member(roll: Roll, writer: str | None) -> str | None:
    """Who goes next: the member being restarted if any, else the first remaining one that does not
    hold the writer role, the writer only when nobody else is left; None when the roll is complete."""
    if roll.current is not None and roll.current not in roll.done:
        return roll.current
    remaining = roll.remaining
    others = [name for name in remaining if name != writer]
    if others:
        return others[0]
    return remaining[0] if remaining else None


def blocker(cluster: Cluster, roll: Roll | None = None) -> str:
    """Why no node may be restarted now ("" when one may): the cluster must be whole and calm."""
    if cluster.pause is not None:
        return f"the cluster is paused (by {cluster.pause.by}); galera-pilot resume first"
    missing = sorted(set(cluster.roster) - set(cluster.members))
    if missing:
        return f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not report (agent or host down)"
    if not cluster.has_primary:
        return "there is no Primary Component"
    for name, member in sorted(cluster.members.items()):
        if member.state.startswith("Donor"):
            return f"{name} is a donor (a state transfer is running)"
        if not member.is_synced:
            return f"{name} is not Synced ({member.state}, {member.cluster_status or 'not connected'})"
        if member.recv_queue > MAX_RECV_QUEUE:
            return f"{name} is catching up ({member.recv_queue} write-sets in its receive queue)"
    ours = set(roll.drained) if roll is not None else set()
    drained = sorted(cluster.maintenance - ours)
    if drained:
        return (f"{', '.join(drained)} {'is' if len(drained) == 1 else 'are'} in maintenance: restarting another "
                "node now would leave fewer serving (galera-pilot maintenance off first)")
    return ""


def expected_downtime(roll: Roll) -> float:
    return max(roll.downtimes.values(), default=DEFAULT_DOWNTIME)


def ist_shortfall(cluster: Cluster, member: str, downtime: float) -> str:
    """Why `member` would not rejoin by IST after `downtime` seconds ("" when the gcache covers it, or
    when no member reports its gcache: agents that predate the report)."""
    donors = [m for name, m in cluster.members.items() if name != member and m.is_synced and m.gcache_bytes > 0]
    if not donors:
        return ""
    rate = max((m.write_rate for m in cluster.members.values()), default=0.0)
    needed = rate * downtime * IST_MARGIN
    smallest = min(donors, key=lambda m: m.gcache_bytes)
    if needed <= smallest.gcache_bytes:
        return ""
    mib = 1024 * 1024
    holds = smallest.gcache_bytes / mib
    return (f"{member} would miss about {needed / mib:.0f} MiB of write-sets while it is down ({rate / mib:.1f} MiB/s "
            f"for {downtime:.0f} s, doubled), more than {smallest.name}'s gcache holds ({holds:.0f} MiB): it would "
            "take a full state transfer (SST) instead of IST")


def switchover_target(cluster: Cluster, roll: Roll, writer: str) -> str | None:
    """Where the writer role goes before its holder is restarted: a Synced member this roll already
    restarted (highest priority, then name), else None (any Synced member: the election picks)."""
    done = [cluster.members[n] for n in roll.done if n in cluster.members and cluster.members[n].is_synced
            and n != writer and n not in cluster.maintenance]
    if not done:
        return None
    return min(done, key=lambda m: (-m.priority, m.name)).name


def describe(roll: Roll, driven: bool) -> str:
    """One line for `list`: where the roll stands and what continues it."""
    verb = "upgrade" if roll.kind == "upgrade" else "restart"
    what = f"rolling upgrade to {roll.target}" if roll.kind == "upgrade" else "rolling restart"
    if roll.automatic:
        what = f"automatic update to {roll.target}"
    done = f"{len(roll.done)} of {len(roll.order)} restarted" + (f" ({', '.join(roll.done)})" if roll.done else "")
    now = f"; {roll.current} is being restarted" if roll.current and roll.current not in roll.done else ""
    if roll.halted:
        state = f"; HALTED: {roll.halted.splitlines()[0]}"
    elif not driven:
        state = ("; INTERRUPTED: its driver is gone (the writer's agent resumes it)" if roll.automatic
                 else f"; INTERRUPTED: no galera-pilot {verb} drives it")
    else:
        state = ""
    hint = f" (galera-pilot {verb} --resume continues it, --abort ends it)" if roll.halted or not driven else ""
    return f"{what} {roll.id}: {done}{now}{state}{hint}"
