"""Which backup is due, from the repository's sets and the schedule: pure, so every agent computes the
same answer and the DCS lock only decides who takes it.

A missed run is caught up, never doubled: what is due is computed from the last *completed* backup, so
an agent that was down for three intervals takes one backup when it is back, not three. A failed backup
is retried after `retry_after`, not at once in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from galera_pilot.backup.catalog import BackupSet, Kind, by_id, restorable

HOUR = 3600.0


@dataclass(frozen=True)
class Schedule:
    full_every: float = 24 * HOUR  # s between full backups; 0: no scheduled backups at all
    incremental_every: float = 0.0  # s between incrementals of the current chain; 0: fulls only
    retry_after: float = 15 * 60.0  # s after a failed attempt before the next


@dataclass(frozen=True)
class Due:
    kind: Kind
    at: float  # when it is (or was) due; in the past means now
    reason: str
    parent: str | None = None  # an incremental's parent: the newest restorable set of the current chain


def next_backup(schedule: Schedule, sets: Iterable[BackupSet], now: float) -> Due | None:
    """The next scheduled backup, or None when none is scheduled or one is running."""
    sets = list(sets)
    if schedule.full_every <= 0:
        return None
    if any(s.status == "running" for s in sets):
        return None  # one at a time; a crashed run is marked failed by whoever finds its lock expired
    known = by_id(sets)
    usable = [s for s in sets if s.physical and restorable(s, known)]
    fulls = [s for s in usable if s.kind == "full"]
    failed = [s for s in sets if s.status == "failed"]
    last_failure = max((s.finished_at or s.started_at for s in failed), default=None)

    def not_before(at: float) -> float:
        if last_failure is not None and last_failure >= at:
            return last_failure + schedule.retry_after  # the attempt at `at` failed: back off
        return at

    if not fulls:  # due since ever: any failure backs it off
        at = now if last_failure is None else last_failure + schedule.retry_after  # in the past: now
        return Due("full", at, "no restorable full backup exists")
    last_full = max(fulls, key=lambda s: s.finished_at or 0.0)
    full_due = (last_full.finished_at or 0.0) + schedule.full_every
    if schedule.incremental_every <= 0 or full_due <= now:
        return Due("full", not_before(full_due), f"the last full backup {last_full.id} finished "
                   f"{(now - (last_full.finished_at or 0.0)) / HOUR:.1f} h ago (full every "
                   f"{schedule.full_every / HOUR:g} h)")
    chain = [s for s in usable if s.id == last_full.id or _in_chain(s, last_full.id, known)]
    newest = max(chain, key=lambda s: s.finished_at or 0.0)
    incremental_due = (newest.finished_at or 0.0) + schedule.incremental_every
    if incremental_due >= full_due:
        return Due("full", not_before(full_due), f"the next full backup comes before another incremental "
                   f"of {last_full.id}")
    return Due("incremental", not_before(incremental_due), f"an incremental on {newest.id} (every "
               f"{schedule.incremental_every / HOUR:g} h)", parent=newest.id)


def _in_chain(backup: BackupSet, root: str, sets: dict[str, BackupSet]) -> bool:
    current = backup
    seen: set[str] = set()
    while current.kind == "incremental" and current.parent and current.id not in seen:
        seen.add(current.id)
        if current.parent == root:
            return True
        parent = sets.get(current.parent)
        if parent is None:
            return False
        current = parent
    return False
