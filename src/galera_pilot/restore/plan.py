"""What `galera-pilot restore` will do, or why it must not: pure, over one DCS snapshot and the set's
chain, so `--dry-run` prints exactly what a real run then does.

The restored member is the one named, else the first live member by name. Its agent must be alive (it
builds the datadir); the others need not be (a member that comes back later finds the old cluster's
datadir foreign and takes a full state transfer). Refused: a logical set (a cluster restores from a
physical chain), a paused cluster, a rolling restart or a backup in progress, another restore.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from galera_pilot.backup.manifest import Manifest
from galera_pilot.cluster import Cluster
from galera_pilot.restore.point_in_time import PointInTime


@dataclass(frozen=True)
class RestorePlan:
    backup: str
    chain: tuple[Manifest, ...]
    member: str
    others: tuple[str, ...]  # the other members: stopped, then rejoined with a full state transfer
    serving: tuple[str, ...]  # members in a Primary Component now (clients lose them)
    replaces: str | None  # the cluster UUID that ends
    point: PointInTime | None = None  # --to-time / --to-gtid: the roll-forward after the set

    def with_point(self, point: PointInTime) -> RestorePlan:
        return replace(self, point=point)

    def lines(self) -> list[str]:
        links = " + ".join(f"{m.id} ({m.kind}, seqno {m.seqno})" for m in self.chain)
        target = self.chain[-1]
        lines = [f"restore backup {self.backup}: {links}",
                 f"  taken on {target.node or '?'} at seqno {target.seqno} of cluster {target.cluster_uuid or '?'}",
                 f"  1. every member stops mariadbd ({', '.join(sorted((self.member, *self.others)))})"
                 + (f"; serving now: {', '.join(self.serving)}, their clients are cut off" if self.serving else ""),
                 f"  2. {self.member} restores the set (its datadir moved aside, kept) and starts a new cluster "
                 f"(a new UUID, replacing {self.replaces or 'none'})"]
        if self.point is not None:
            lines += self.point.lines()
        if self.others:
            lines.append(f"  3. {', '.join(self.others)} rejoin it by a full state transfer (their datadirs "
                         "moved aside, kept)")
        lines.append(f"  {4 if self.others else 3}. a new full backup is taken")
        return lines


def plan_restore(cluster: Cluster, chain: list[Manifest], member: str | None) -> RestorePlan:
    """The plan; ValueError with the reason when a restore must not start now."""
    target = chain[-1]
    if target.kind == "logical":
        raise ValueError(f"backup {target.id} is logical: a cluster is restored from a physical backup (full, or "
                         "an incremental with its chain); load a logical one with the mariadb client")
    if cluster.pause is not None:
        raise ValueError(f"the cluster is paused (by {cluster.pause.by}): `galera-pilot resume` first; the agents "
                         "carry the restore out")
    if cluster.roll is not None:
        raise ValueError("a rolling restart is in progress: let it finish or abort it first")
    if cluster.backup_holder is not None:
        raise ValueError(f"a backup is running (held by {cluster.backup_holder}): wait for it")
    order = cluster.restore
    if order is not None and (order.backup != target.id or (member is not None and member != order.member)):
        raise ValueError(f"another restore is in progress (backup {order.backup} onto {order.member}, "
                         f"{order.phase}): run it again to finish it, or `restore --abort` while it is stopping")
    live = {name for name in cluster.members if name not in cluster.removed}
    everyone = sorted((live | set(cluster.roster)) - set(cluster.removed))
    if order is not None:
        chosen = order.member
    elif member is not None:
        chosen = member
    elif live:
        chosen = sorted(live)[0]
    else:
        raise ValueError("no member's agent is running: start the agents first (they carry the restore out)")
    if chosen not in live and (order is None or order.phase != "restoring"):
        known = ", ".join(sorted(live)) or "none"
        raise ValueError(f"{chosen}'s agent is not running (live members: {known}): it restores the backup")
    serving = tuple(sorted(m.name for m in cluster.primary_members))
    replaces = order.replaces if order is not None else (cluster.initialize.cluster_uuid if cluster.initialize
                                                         else None)
    return RestorePlan(target.id, tuple(chain), chosen, tuple(n for n in everyone if n != chosen), serving, replaces)
