"""Who is the cluster's one writer? Pure election over a DCS view, and the lease arithmetic.

Galera accepts writes on every node, but with several writers it is not snapshot isolation (Jepsen
found lost updates), so clients write through one node: the holder of the leased `writer` DCS key.

- The holder keeps the role while it is healthy (no flapping back when a preferred node returns).
- Otherwise the Synced member (fresh DCS record, not in maintenance) with the highest `priority`
  takes it, ties broken by the smallest name, so every agent computes the same choice.
- A switchover request excludes the current holder and, with a target, allows only the target.

The lease invariant, "never two writers for longer than one lease": a holder that renewed at monotonic
time t0 (taken *before* it sent the renewal) knows the key cannot expire in the DCS before t0 + ttl,
and another member can take it only after that. The holder claims the role (answers `/writer` 200)
only until t0 + ttl - CLAIM_MARGIN, so on one host the two claims never overlap; CLAIM_MARGIN covers
HAProxy's detection delay (inter + fastinter) and clock differences between hosts. The holder renews
every WRITER_TICK, so a claim lasts as long as the DCS answers within ttl - CLAIM_MARGIN - WRITER_TICK.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from galera_pilot.cluster import Cluster

WRITER_TICK = 0.2
CLAIM_MARGIN = 0.6
# A writer that gave the role up for a switchover takes it back when nobody took it within this long
# (by its own clock): a target that cannot act must not leave the cluster without a writer.
HANDBACK_AFTER = 1.0


@dataclass(frozen=True)
class Candidate:
    name: str
    synced: bool
    priority: int = 0
    maintenance: bool = False

    @property
    def eligible(self) -> bool:
        return self.synced and not self.maintenance


class Step(Enum):
    NONE = "none"
    ACQUIRE = "acquire"
    RENEW = "renew"
    RELEASE = "release"


def choose_writer(candidates: Iterable[Candidate], holder: str | None, switchover_from: str | None = None,
                  switchover_to: str | None = None) -> str | None:
    """The member that should hold the writer role now, or None when nobody may."""
    eligible = {c.name: c for c in candidates if c.eligible and c.name != switchover_from}
    if switchover_from is not None and switchover_to is not None:
        return switchover_to if switchover_to in eligible else None
    if holder is not None and holder in eligible:
        return holder
    if not eligible:
        return None
    return min(eligible.values(), key=lambda c: (-c.priority, c.name)).name


def candidates_from(view: Cluster, me: str, me_healthy: bool, my_priority: int,
                    fresh: Collection[str]) -> list[Candidate]:
    """Candidates from the DCS view; our own health comes from our live observation (fresher than our
    published record), the others' from their records, counted only for the members in `fresh`: those
    whose record changed recently by this agent's own clock (freshness.ChangeClock, never another host's
    wall clock). A member whose agent stopped reporting cannot take the lease, so it must not be waited for."""
    result = [Candidate(me, me_healthy, my_priority, me in view.maintenance)]
    for name, member in view.members.items():
        if name == me:
            continue
        result.append(Candidate(name, member.is_synced and name in fresh, member.priority, name in view.maintenance))
    return result


def writer_step(me: str, holder: str | None, choice: str | None) -> Step:
    """What this agent does with the lease this tick."""
    if holder == me:
        return Step.RENEW if choice == me else Step.RELEASE
    if holder is None and choice == me:
        return Step.ACQUIRE
    return Step.NONE


def handback_due(released_at: float, now: float, after: float = HANDBACK_AFTER) -> bool:
    """Whether a switchover we released the role for (at `released_at`, our clock) has failed."""
    return now - released_at >= after


def claim_until(sent_at: float, ttl: float, margin: float = CLAIM_MARGIN) -> float:
    """Until when (same clock as sent_at) a holder whose write was sent at sent_at may claim the role."""
    return sent_at + ttl - margin
