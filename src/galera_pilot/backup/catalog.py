"""A repository's backup sets as the rules see them: kind, chain, when, and whether they completed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Kind = Literal["full", "incremental", "logical"]
Status = Literal["running", "complete", "failed"]


@dataclass(frozen=True)
class BackupSet:
    """One backup. `parent` names the set an incremental applies to (a full, or an incremental of the same
    chain); a full or logical backup has none. Times are the wall clock of the node that took it."""

    id: str
    kind: Kind
    started_at: float
    finished_at: float | None = None
    status: Status = "running"
    parent: str | None = None
    node: str = ""
    size_bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.status == "complete" and self.finished_at is not None

    @property
    def physical(self) -> bool:
        return self.kind != "logical"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupSet:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def by_id(sets: Iterable[BackupSet]) -> dict[str, BackupSet]:
    return {s.id: s for s in sets}


def chain_root(backup: BackupSet, sets: dict[str, BackupSet]) -> BackupSet | None:
    """The full backup an incremental's chain starts from (itself for a full), or None when a link is
    missing: such a set cannot be restored."""
    seen: set[str] = set()
    current: BackupSet | None = backup
    while current is not None and current.kind == "incremental":
        if current.id in seen or current.parent is None:
            return None  # a loop or an orphan: never restorable
        seen.add(current.id)
        current = sets.get(current.parent)
    return current if current is not None and current.kind == "full" else None


def restorable(backup: BackupSet, sets: dict[str, BackupSet]) -> bool:
    """Complete, and so is every set of its chain down to a complete full backup."""
    if not backup.complete:
        return False
    if backup.kind == "logical" or backup.kind == "full":
        return True
    current = backup
    while current.kind == "incremental":
        parent = sets.get(current.parent or "")
        if parent is None or not parent.complete or chain_root(current, sets) is None:
            return False
        current = parent
    return True
