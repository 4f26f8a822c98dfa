"""Which node takes a backup: pure, over the DCS snapshot.

A Synced member that is not the writer, so the copy's reads and the pause that makes it consistent never
touch the node clients write to; the writer only when no other member is Synced, and then the choice
says so. A member in maintenance is left alone unless named (a person drained it for a reason); a
member named by the person must be Synced.
"""

from __future__ import annotations

from dataclasses import dataclass

from galera_pilot.cluster import Cluster, Member


@dataclass(frozen=True)
class Placement:
    node: str | None  # None: no member can take it; `reason` says why
    reason: str


def _synced(member: Member) -> bool:
    return member.running and member.is_primary and member.state == "Synced"


def choose_backup_node(cluster: Cluster, requested: str | None = None) -> Placement:
    members = {name: m for name, m in cluster.members.items() if name not in cluster.removed}
    if requested is not None:
        member = members.get(requested)
        if member is None:
            known = ", ".join(sorted(members)) or "none"
            return Placement(None, f"{requested} is not a live member (live members: {known})")
        if not _synced(member):
            return Placement(None, f"{requested} is {member.state}, not Synced in a Primary Component")
        if requested == cluster.writer:
            return Placement(requested, f"{requested} as asked (it is the writer: clients see its pause)")
        return Placement(requested, f"{requested} as asked")
    synced = sorted(name for name, m in members.items() if _synced(m))
    if not synced:
        return Placement(None, "no member is Synced in a Primary Component")
    others = [n for n in synced if n != cluster.writer]
    idle = [n for n in others if n not in cluster.maintenance]
    if idle:
        return Placement(idle[0], f"{idle[0]}: Synced and not the writer")
    if others:
        return Placement(others[0], f"{others[0]}: Synced, not the writer (in maintenance: the only other choice)")
    return Placement(synced[0], f"{synced[0]}, the writer: no other member is Synced (clients see its pause)")
