"""How far has the cluster ever got? Pure judgement over the high-water mark (cluster.HighWater).

A full-outage recovery looks at the datadirs that are left. Without a memory of what the cluster had
committed, "the most advanced datadir left" can be far behind it: every datadir lost and a seed copy
taken for the cluster's state, or the most advanced node's grastate.dat unreadable. The mark is that
memory, kept in the DCS: a bootstrap below it would discard committed transactions, which only a
person may decide (`galera-pilot bootstrap --force`).

Nothing here touches a process, a socket, a file or the clock.
"""

from __future__ import annotations

from galera_pilot.cluster import Cluster, Member, Position

DATA_GONE = "the data is gone from every node"
# What an agent says when only a person can go on: `up` stops waiting when every agent says one of these.
BEHIND_THE_MARK = "committed transactions; waiting for a member that holds them"
NEEDS_A_PERSON = (DATA_GONE, BEHIND_THE_MARK)


def vouched_seqno(running: bool, cluster_status: str, live_uuid: str, live_seqno: int,
                  position: Position | None, cluster_uuid: str | None) -> int | None:
    """The seqno of the cluster this member can vouch for now, or None: its live `wsrep_last_committed`
    while in the Primary Component of the cluster's UUID, else its stopped datadir's usable position."""
    if cluster_uuid is None:
        return None
    if running:
        if cluster_status == "Primary" and live_uuid == cluster_uuid and live_seqno >= 0:
            return live_seqno
        return None
    if position is not None and position.usable and position.uuid == cluster_uuid:
        return position.seqno
    return None


def should_raise(cluster: Cluster, cluster_uuid: str, seqno: int) -> bool:
    """True when (cluster_uuid, seqno) lies beyond the mark the snapshot holds (or there is none)."""
    mark = cluster.high_water
    return mark is None or (mark.uuid == cluster_uuid and seqno > mark.seqno)


def shortfall(cluster: Cluster, position: Position) -> int:
    """How many committed transactions a bootstrap from `position` would discard, by the mark."""
    mark = cluster.high_water
    return mark.above(position.uuid, position.seqno) if mark is not None else 0


def never_served(cluster: Cluster) -> bool:
    """Nothing was ever committed beyond the seed: the brand-new cluster's state is the seed itself, so a
    seed copy may stand for it (its first component forms from copies). Without a mark (a store written
    before there was one), only a cluster whose members never joined counts as new."""
    seed, init = cluster.seed, cluster.initialize
    if seed is None or init is None or seed.uuid != init.cluster_uuid:
        return False
    mark = cluster.high_water
    if mark is None:
        return not cluster.roster
    return mark.uuid == seed.uuid and mark.seqno <= seed.seqno


def held_most(cluster: Cluster) -> str:
    """'seqno N of cluster U (last reported by M)', for sentences; '' without a mark."""
    mark = cluster.high_water
    if mark is None:
        return ""
    by = f", last reported by {mark.member}" if mark.member else ""
    return f"seqno {mark.seqno} of cluster {mark.uuid}{by}"


def data_gone(cluster: Cluster, positions: dict[str, Position]) -> str | None:
    """The sentence for a cluster whose data is gone from every member, or None.

    That is: every roster member reported (through its agent) a datadir that is empty or holds only
    a copy of the seed, and the cluster had committed beyond the seed. No agent may start a cluster
    then; what is left is a person's choice."""
    mark, seed = cluster.high_water, cluster.seed
    if mark is None or not cluster.roster:
        return None
    if seed is not None and mark.uuid == seed.uuid and mark.seqno <= seed.seqno:
        return None  # nothing beyond the seed was ever committed: the seed copies are the whole cluster
    for name in cluster.roster:
        position = positions.get(name)
        if position is None:
            return None  # not reported (yet): it may still hold the data
        seed_copy = (seed is not None and position.usable and position.uuid == seed.uuid
                     and position.seqno <= seed.seqno)
        if not (position.empty or seed_copy):
            return None
    return (f"{DATA_GONE}: all {len(cluster.roster)} members have empty datadirs (or only "
            f"the seed copy), yet the cluster had reached {held_most(cluster)}; not starting a cluster. Restore "
            "a backup, or start deliberately from nothing with `galera-pilot bootstrap --member NAME --force "
            "--empty` (a new cluster UUID)")


def empty_start_refusal(cluster: Cluster, member: str) -> str | None:
    """Why a person may not start a new cluster from nothing on `member` now (None: it may).

    It discards the cluster's history, so only a member whose agent reports an empty datadir may, and
    never beside a Primary Component."""
    primary = sorted(m.name for m in cluster.primary_members)
    if primary:
        return f"a Primary Component exists ({', '.join(primary)}); nothing to start"
    target = cluster.members.get(member)
    if target is None or target.position is None:
        return f"{member} has not reported its datadir (is its agent running?)"
    if not target.position.empty:
        return (f"{member}'s datadir is not empty (seqno {target.position.seqno} of {target.position.uuid}); "
                "--empty starts only on an empty datadir: bootstrap from it without --empty, or move it aside")
    return None


def needs_a_person(members: list[Member | None]) -> str | None:
    """What every one of these members' agents says when each says only a person can go on (one of
    NEEDS_A_PERSON), else None: `up` then stops waiting. None stands for a member without a fresh report."""
    said = [m for m in members if m is not None and any(k in m.activity for k in NEEDS_A_PERSON)]
    return said[0].activity if members and len(said) == len(members) else None
