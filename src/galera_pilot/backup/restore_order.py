"""A person's restore of the whole cluster from a backup set, under the DCS key `restore` (no TTL: a
restore cut short is resumed or aborted by a person, never forgotten by a timer).

    stopping   every data member's agent stops mariadbd cleanly and keeps it stopped
    restoring  the initialize record names `member` with `restore_from`: its agent builds a new datadir
               from the set and bootstraps a new cluster (a new UUID); the others join it, their old
               datadirs moved aside, by a full state transfer (or a copy of the seed on its host)

`galera-pilot restore` writes it, waits for each phase, and deletes it once every member is Synced in
the new cluster (control/restore.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

RESTORE = "restore"  # its DCS key
STOPPING, RESTORING = "stopping", "restoring"


@dataclass(frozen=True)
class RestoreOrder:
    backup: str  # the set restored (its chain comes with it)
    member: str  # whose agent restores it and bootstraps the new cluster
    by: str
    at: float
    phase: str = STOPPING
    replaces: str | None = None  # the cluster UUID before the restore
    # Point-in-time recovery (`--to-time`, `--to-gtid`): the restoring agent replays the archived binlogs
    # from the set's position through this seqno of the domain before the cluster serves.
    to_seqno: int | None = None
    domain: int | None = None
    asked: str = ""  # the point in the person's words
    # Why the restoring agent's attempt failed (a damaged set, a replay the server refused): it does not
    # try again, each try costing a full unpack and a datadir moved aside, until a person runs
    # `galera-pilot restore` again, which clears it.
    failed: str = ""

    def moved(self, phase: str) -> RestoreOrder:
        return replace(self, phase=phase)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestoreOrder:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
