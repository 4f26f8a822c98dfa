"""A backup set's manifest: what was taken, from where, and the checksum of every stored object, so that a
set can be verified without restoring it and a restore knows its chain and position (pgBackRest keeps
the same facts in backup.manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from galera_pilot.backup.catalog import BackupSet, Kind, Status

FORMAT = 1


@dataclass(frozen=True)
class StoredObject:
    name: str  # relative to the set, e.g. "data.mbstream.zst"
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    id: str
    kind: Kind
    cluster: str  # the cluster's name
    cluster_uuid: str  # Galera's: a restore into another history is refused
    started_at: float
    node: str = ""
    status: Status = "running"
    finished_at: float | None = None
    parent: str | None = None
    seqno: int = -1  # wsrep position the backup is consistent at (xtrabackup_galera_info)
    gtid: str = ""  # the binlog GTID position, where point-in-time recovery starts replaying
    mariadb_version: str = ""
    from_lsn: int | None = None  # an incremental's range
    to_lsn: int | None = None
    objects: tuple[StoredObject, ...] = ()
    error: str = ""  # why a failed set failed
    # CHECKSUM TABLE of every table ("db.table" -> value; None: the engine has none) at the backup's point,
    # taken while the node was paused: what `backup verify --restore-test` compares a restored copy with.
    checksums: dict[str, int | None] = field(default_factory=dict)
    note: str = ""  # how its node was chosen, what was skipped (no checksums on the writer)
    key_id: str = ""  # the encryption key's id (backup/encryption.py); "": stored in the clear
    by: str = ""  # who asked: "galera-pilot backup create (user)", "schedule (node2)"
    lineage: str = ""  # a physical set's datadir (backup/lineage.py); "": not recorded (an older set)
    format: int = FORMAT

    @property
    def size_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    def as_set(self) -> BackupSet:
        return BackupSet(self.id, self.kind, self.started_at, self.finished_at, self.status, self.parent, self.node,
                         self.size_bytes)

    def with_object(self, stored: StoredObject) -> Manifest:
        return replace(self, objects=(*[o for o in self.objects if o.name != stored.name], stored))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["objects"] = tuple(StoredObject(**o) for o in data.get("objects", ()))
        return cls(**values)


@dataclass(frozen=True)
class Problem:
    """One thing `verify` found wrong with a set."""

    object: str
    what: str


@dataclass(frozen=True)
class Verification:
    id: str
    checked: int = 0  # objects whose checksum was compared
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems
