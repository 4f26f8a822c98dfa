"""A node's `backup` section: where its backups go, when the agents take them, how long they are kept.

The same section on every node (the embedded cluster writes it into each node's file): any agent may be
the one the schedule picks, so each must reach the repository and run the same tools.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from galera_pilot.backup.retention import DAY, Retention
from galera_pilot.backup.schedule import HOUR, Schedule


class BackupTools(BaseModel):
    """The programs a backup runs; Debian's paths by default (packages mariadb-backup, mariadb-client, zstd)."""

    model_config = ConfigDict(extra="forbid")

    mariabackup: str = "/usr/bin/mariadb-backup"
    mbstream: str = "/usr/bin/mbstream"
    dump: str = "/usr/bin/mariadb-dump"
    client: str = "/usr/bin/mariadb"
    zstd: str = "/usr/bin/zstd"


class BackupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: Path | None = Field(None, description="a local or mounted directory that holds the backups "
                                    "(the embedded cluster's is DIR/backups); none: this node takes no backup")
    full_every_hours: float = Field(0.0, ge=0, le=24 * 366, description="hours between scheduled full "
                                    "backups; 0: no schedule (backups only by `galera-pilot backup create`)")
    incremental_every_hours: float = Field(0.0, ge=0, le=24 * 366, description="hours between incrementals "
                                           "of the current chain; 0: full backups only")
    keep_full: int = Field(2, ge=1, le=1000, description="full chains kept (the newest always is)")
    window_days: float = Field(7.0, ge=0, le=3660, description="every backup needed to restore any point of "
                               "this many days back is kept")
    compress_level: int = Field(3, ge=1, le=19, description="zstd's level (3: fast; higher: smaller, slower)")
    table_checksums: bool = Field(True, description="record CHECKSUM TABLE of every table at the backup's "
                                  "point, for `backup verify --restore-test` to compare against (reads "
                                  "every table once more while the backup's node is paused)")
    tools: BackupTools = Field(default_factory=BackupTools)

    @field_validator("repository")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @property
    def schedule(self) -> Schedule:
        return Schedule(full_every=self.full_every_hours * HOUR, incremental_every=self.incremental_every_hours * HOUR)

    @property
    def retention(self) -> Retention:
        return Retention(keep_full=self.keep_full, window=self.window_days * DAY)
