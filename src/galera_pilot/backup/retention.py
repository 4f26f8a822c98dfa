"""Which backup sets may be deleted: pure, and conservative.

Kept: the newest `keep_full` restorable full chains (a full and every incremental on it); everything a
point in time inside the recovery window needs (the newest restorable full finished at or before the
window's start, and every set after it); the newest restorable full backup and the newest complete
logical one, whatever the policy says; running sets. Deleted: the rest, and never a set a kept
incremental depends on (its whole chain stays).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from galera_pilot.backup.catalog import BackupSet, by_id, chain_root, restorable

DAY = 86400.0


@dataclass(frozen=True)
class Retention:
    keep_full: int = 2  # full chains to keep (at least 1: the newest is always kept)
    window: float = 7 * DAY  # s: every point in time this far back stays restorable
    keep_failed: float = DAY  # s a failed set is kept for a person to look at


def expired(retention: Retention, sets: Iterable[BackupSet], now: float) -> list[str]:
    """The ids that may be deleted, oldest first."""
    sets = list(sets)
    known = by_id(sets)
    fulls = sorted((s for s in sets if s.kind == "full" and restorable(s, known)),
                   key=lambda s: s.finished_at or 0.0, reverse=True)
    keep_roots = {s.id for s in fulls[:max(1, retention.keep_full)]}
    window_start = now - retention.window
    anchor = next((s for s in fulls if (s.finished_at or 0.0) <= window_start), None)
    keep_after = anchor.started_at if anchor is not None else float("-inf")
    if anchor is not None:
        keep_roots.add(anchor.id)
    logical = [s for s in sets if s.kind == "logical" and s.complete]
    kept: set[str] = {max(logical, key=lambda s: s.finished_at or 0.0).id} if logical else set()
    for backup in sets:
        root = chain_root(backup, known) if backup.physical else None
        if backup.status == "running":
            kept.add(backup.id)
        elif backup.status == "failed":
            if (backup.finished_at or backup.started_at) > now - retention.keep_failed:
                kept.add(backup.id)
        else:
            in_kept_chain = root is not None and root.id in keep_roots
            in_window = backup.started_at >= keep_after and (backup.kind == "logical" or root is not None)
            if in_kept_chain or in_window:
                kept.add(backup.id)
    # A kept incremental keeps its whole chain (its parents may be older than the window's anchor).
    for backup_id in list(kept):
        current, seen = known[backup_id], {backup_id}
        while current.kind == "incremental" and current.parent in known and current.parent not in seen:
            current = known[current.parent]
            seen.add(current.id)
            kept.add(current.id)
    return [s.id for s in sorted(sets, key=lambda s: s.started_at) if s.id not in kept]
