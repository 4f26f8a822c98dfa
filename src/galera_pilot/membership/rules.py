"""Pure rules for `galera-pilot remove` and `galera-pilot reinit`, over a DCS snapshot.

Removing a node changes what every later quorum is counted against, so the refusals here are about the
cluster that remains: it must still hold a majority of its remaining voters in the Primary Component,
and an even number of voters without an arbitrator is a split brain's favourite shape (either half of a
partition loses quorum). Those two a person may override with `--force`, knowing what it risks; the
writer, a donor, a paused cluster or a roll in progress are never overridden: each has a safe way first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from galera_pilot.cluster import Cluster


@dataclass(frozen=True)
class Refusal:
    reason: str
    forceable: bool = False  # `--force` may take the risk the reason names


@dataclass(frozen=True)
class RemovalPlan:
    """How the node leaves: its agent stops mariadbd cleanly (`stop`: a graceful leave shrinks the quorum
    base at once), or, its host gone, the survivors evict its instance from the view (`evict`)."""

    member: str
    how: Literal["stop", "evict"]
    instance: str = ""  # the gcomm UUID to evict, when the DCS still knows it
    remaining: tuple[str, ...] = ()


def known_members(cluster: Cluster) -> set[str]:
    """The data members: those that ever joined (the roster) and those reporting now."""
    return set(cluster.roster) | set(cluster.members)


def _unchangeable(cluster: Cluster, name: str, arbitrator_too: bool = False) -> Refusal | None:
    """What refuses both verbs: an unknown name, a paused cluster, a roll in progress."""
    known = known_members(cluster) | (set(cluster.arbitrators) if arbitrator_too else set())
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        return Refusal(f"no member named {name!r} in this cluster (members: {listed})")
    if cluster.pause is not None:
        return Refusal(f"the cluster is paused (by {cluster.pause.by}): galera-pilot resume first")
    if cluster.roll is not None:
        return Refusal(f"a rolling restart ({cluster.roll.id}) is recorded: let it finish or abort it first")
    return None


def removal_refusal(cluster: Cluster, name: str, arbitrators: int = 0) -> Refusal | None:
    """Why `name` may not be removed now, or None. The arbitrators that report (garbd, weight above 0)
    are voters; `arbitrators` adds votes outside the snapshot, taken as serving."""
    refusal = _unchangeable(cluster, name, arbitrator_too=True)
    if refusal is not None:
        return refusal
    voting = [a for n, a in cluster.arbitrators.items() if a.weight > 0 and n != name]
    extra_votes = arbitrators + len(voting)
    extra_serving = arbitrators + sum(1 for a in voting if a.primary)
    if name in cluster.arbitrators:
        return _arbitrator_refusal(cluster, name, extra_votes, extra_serving)
    member = cluster.members.get(name)
    if cluster.writer == name:
        return Refusal(f"{name} is the writer: move the role first (galera-pilot switchover --to ANOTHER)")
    if member is not None and member.running and member.state.startswith("Donor"):
        return Refusal(f"{name} is a donor ({member.state}): wait until its state transfer has finished")
    remaining = known_members(cluster) - {name}
    if not remaining:
        return Refusal(f"{name} is the last member: removing it would leave no cluster (galera-pilot down stops it)")
    return _remaining_refusal(cluster, remaining, extra_votes, extra_serving)


def _arbitrator_refusal(cluster: Cluster, name: str, extra_votes: int, extra_serving: int) -> Refusal | None:
    """An arbitrator holds no role and no data: only what its vote leaves behind counts."""
    remaining = known_members(cluster)
    if not remaining:
        return Refusal(f"{name} is an arbitrator of a cluster without data members")
    return _remaining_refusal(cluster, remaining, extra_votes, extra_serving)


def _remaining_refusal(cluster: Cluster, remaining: set[str], extra_votes: int,
                       extra_serving: int) -> Refusal | None:
    """What remains must hold a majority of its votes in the Primary Component, and not an even number
    of them without an arbitrator (forceable both)."""
    serving = {n for n in remaining if cluster.members.get(n) is not None and cluster.members[n].is_primary}
    voters = len(remaining) + extra_votes
    if 2 * (len(serving) + extra_serving) <= voters:
        return Refusal(f"only {len(serving)} of the {len(remaining)} remaining members would be in the Primary "
                       f"Component ({', '.join(sorted(serving)) or 'none'}): no majority of what remains; "
                       "--force removes it anyway, and the next failure may leave no Primary Component",
                       forceable=True)
    if voters % 2 == 0:
        arbiters = (f" and {extra_votes} arbitrator{'s' if extra_votes != 1 else ''}" if extra_votes
                    else " and no arbitrator")
        return Refusal(f"{len(remaining)} members{arbiters} would remain, an even number of votes: a partition "
                       "into halves leaves no Primary Component anywhere (an arbitrator makes it odd); --force "
                       "removes it anyway", forceable=True)
    return None


def removal_plan(cluster: Cluster, name: str) -> RemovalPlan:
    """Stop it through its agent when that agent reports, else evict what the view may still hold."""
    member = cluster.members.get(name)
    remaining = tuple(sorted(known_members(cluster) - {name}))
    arbitrator = cluster.arbitrators.get(name)
    if arbitrator is not None:
        return RemovalPlan(name, "stop", arbitrator.gcomm_uuid, remaining)
    if member is not None:
        return RemovalPlan(name, "stop", member.gcomm_uuid if member.running else "", remaining)
    return RemovalPlan(name, "evict", "", remaining)


def reinit_refusal(cluster: Cluster, name: str) -> Refusal | None:
    """Why `name` may not be rebuilt by a full SST now, or None. Two other Synced nodes are needed: one
    donates (and is desynced while it does), the other keeps the cluster writable and Primary."""
    refusal = _unchangeable(cluster, name)
    if refusal is not None:
        return refusal
    synced = sorted(n for n, m in cluster.members.items() if n != name and m.is_synced)
    if len(synced) < 2:
        return Refusal(f"a rebuild needs two other Synced nodes (one donates, one serves); Synced now: "
                       f"{', '.join(synced) or 'none'}")
    if choose_donor(cluster, name) is None:
        return Refusal("no Synced node other than the writer can donate")
    return None


def choose_donor(cluster: Cluster, name: str, wanted: str | None = None) -> str | None:
    """The donor for `name`'s full SST: `wanted` if it is a Synced non-writer, else the Synced non-writer
    that is drained (it serves no clients), then the one with the smallest receive queue, then by name."""
    candidates = [m for n, m in cluster.members.items()
                  if n != name and n != cluster.writer and m.is_synced]
    if wanted is not None:
        return wanted if any(m.name == wanted for m in candidates) else None
    if not candidates:
        return None
    best = min(candidates, key=lambda m: (m.name not in cluster.maintenance, m.recv_queue, m.name))
    return best.name
