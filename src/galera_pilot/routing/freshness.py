"""Freshness and clock skew across hosts, without comparing two hosts' wall clocks (pure).

Clocks drift apart when NTP breaks, and a wall-clock time written on one host means little to another:
a member record stamped 30 s "in the future" looked fresh for 33 s after its agent died, and one
stamped 30 s "in the past" never looked fresh at all. So liveness is judged here by what the DCS
itself orders: a record's version (etcd's mod_revision, SQLite's revision counter) changes with every
write, and this agent notes, with its *own* monotonic clock, when it last saw a record's version
change. A member whose record changed within `fresh_within` seconds of this agent's clock is fresh.
Server-side TTLs (etcd leases, SQLite rows expiring on the host's monotonic clock) make records of dead
agents disappear; wall-clock times stay in the records for display and the history only.

A record seen for the first time counts as changed at that moment: this agent cannot know more, and
it bounds the wait for a member that was already dead to `fresh_within`.

Clock skew: when a new version of a peer's record appears between two looks, the peer wrote it
(stamping `updated_at` with its wall clock) shortly before this agent read it (a record seen for the
first time may be old, so it gives no sample). `updated_at - our wall clock at that read` is
the peer's clock offset from ours minus the publication delay (never negative), so the largest such
sample over the last few records is the best estimate of the peer's offset. This host's skew against
the cluster is minus the median offset over every member, this one counting as 0: a single skewed
bystander does not make everybody look skewed, and a skewed host sees itself alone against the rest.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

SAMPLES = 10  # per peer: offset samples kept (one per record version seen)
SKEW_WARNING = 2.0  # seconds: above this, /status, /metrics, list and the log report the skew


@dataclass
class _Seen:
    version: int
    changed_at: float  # our monotonic clock
    offsets: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))


class ChangeClock:
    """When (by this agent's monotonic clock) each member's record last changed, and each member's clock
    offset from ours. Feed it every look at the DCS with `observe`."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def observe(self, versions: Mapping[str, int], stamps: Mapping[str, float], mono_now: float,
                wall_now: float) -> None:
        """`versions`: each member's record version; `stamps`: the wall time each record says it was
        written (`updated_at`, the writer's clock); `mono_now`, `wall_now`: our clocks at the look."""
        for name, version in versions.items():
            seen = self._seen.get(name)
            if seen is None:  # written at some unknown moment before: no offset sample from it
                self._seen[name] = _Seen(version, mono_now)
                continue
            if seen.version == version:
                continue
            seen.version, seen.changed_at = version, mono_now
            stamp = stamps.get(name)
            if stamp:  # 0.0: a record without a time (never written by an agent)
                seen.offsets.append(stamp - wall_now)
        for name in self._seen.keys() - versions.keys():
            del self._seen[name]  # gone (expired or deleted): a new record starts afresh

    def age(self, name: str, mono_now: float) -> float | None:
        """Seconds since the member's record last changed, by our clock; None if we have not seen it."""
        seen = self._seen.get(name)
        return None if seen is None else mono_now - seen.changed_at

    def fresh(self, name: str, mono_now: float, fresh_within: float) -> bool:
        age = self.age(name, mono_now)
        return age is not None and age <= fresh_within

    def offsets(self, me: str) -> dict[str, float]:
        """Each other member's clock minus ours (seconds), where samples exist."""
        return {name: max(seen.offsets) for name, seen in sorted(self._seen.items())
                if name != me and seen.offsets}

    def skew(self, me: str) -> float | None:
        """Our clock minus the cluster's (the median member's), or None with no peer samples yet."""
        return own_skew(self.offsets(me))


def own_skew(offsets: Mapping[str, float]) -> float | None:
    """This host's skew from the peers' offsets (their clock minus ours), this host counting as 0."""
    if not offsets:
        return None
    return -statistics.median([0.0, *offsets.values()])


def skew_warning(skew: float | None, threshold: float = SKEW_WARNING) -> str:
    """A sentence when |skew| exceeds the threshold, else ""."""
    if skew is None or abs(skew) <= threshold:
        return ""
    direction = "ahead of" if skew > 0 else "behind"
    return (f"this host's clock is {abs(skew):.1f} s {direction} the other members' (NTP?); "
            f"galera-pilot does not depend on it, but logs and history times are off")
