"""A backup asked of one agent, under the DCS key `backup_request` (one at a time, no TTL).

`galera-pilot backup create` (or the schedule) writes it naming the node; that node's agent takes the
backup lock, moves it to RUNNING with its progress, then DONE or FAILED with why. A request whose node
died stays RUNNING with no lock holder: whoever writes the next one marks its set failed (abandoned).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from galera_pilot.backup.catalog import Kind

BACKUP_REQUEST = "backup_request"  # its DCS key
REQUESTED, RUNNING, DONE, FAILED = "requested", "running", "done", "failed"
FINISHED = (DONE, FAILED)


@dataclass(frozen=True)
class BackupRequest:
    id: str  # the backup set's id in the repository
    kind: Kind
    node: str  # whose agent takes it
    by: str  # "galera-pilot backup create", "schedule (node2)", ...
    at: float = 0.0  # when it was asked (the asker's clock)
    parent: str | None = None  # an incremental's parent set
    from_lsn: int | None = None  # the parent's to_lsn: where the incremental starts
    phase: str = REQUESTED
    detail: str = ""  # done: a summary; failed: why
    bytes_done: int = 0  # stored so far (compressed)
    rate: float = 0.0  # bytes/s over the last progress interval
    started_at: float = 0.0  # the taking agent's clock
    updated_at: float = 0.0
    note: str = ""  # how the node was chosen (e.g. "the writer: no other node is Synced")

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def moved(self, phase: str, **changes: Any) -> BackupRequest:
        return replace(self, phase=phase, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupRequest:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
