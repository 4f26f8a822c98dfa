"""A node's `backup` section: where its backups go, when the agents take them, how long they are kept.

The same section on every node (the embedded cluster writes it into each node's file): any agent may be
the one the schedule picks, so each must reach the repository and run the same tools.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    binlog: str = "/usr/bin/mariadb-binlog"


class S3Settings(BaseModel):
    """An S3-compatible bucket (AWS, SeaweedFS, MinIO, Ceph RGW, ...). The keys come from a file of mode
    0600 or from the environment, never from this file itself: it is copied around and shown."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="http(s)://HOST:PORT of the S3 API")
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    region: str = "us-east-1"
    prefix: str = Field("", pattern=r"^[0-9A-Za-z._/-]*$", description="a folder of the bucket")
    credentials_file: Path | None = Field(None, description="YAML with access_key and secret_key, mode 0600; "
                                          "none: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    ca_file: Path | None = Field(None, description="for an https endpoint signed by a private CA")

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "@" in value:
            raise ValueError(f"must be an http:// or https:// URL without credentials, got {value!r}")
        return value.rstrip("/")


class BinlogSettings(BaseModel):
    """Binary logs for point-in-time recovery: written by every node, archived by one agent at a time.

    Turning this on changes my.cnf (`log_bin`, the GTID settings below): the binary log starts at the next
    restart of each mariadbd (`galera-pilot restart --pending` rolls them)."""

    model_config = ConfigDict(extra="forbid")

    archive: bool = Field(False, description="write binary logs and archive them into the repository")
    interval_seconds: float = Field(60.0, ge=5, le=86400, description="a transaction is archived within about "
                                    "this long: the binlog that holds it is closed (FLUSH BINARY LOGS) once "
                                    "its first transaction is this old, then uploaded")
    domain_id: int = Field(1, ge=0, le=2**32 - 1, description="wsrep_gtid_domain_id: the GTID domain of the "
                           "cluster's transactions, the same on every node")
    keep_local_hours: float = Field(24.0, ge=1, le=24 * 366, description="binlogs kept on each node "
                                    "(binlog_expire_logs_seconds); archived ones are in the repository")


class BackupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: Path | None = Field(None, description="a local or mounted directory that holds the backups "
                                    "(the embedded cluster's is DIR/backups); none: this node takes no backup")
    s3: S3Settings | None = Field(None, description="S3-compatible object storage instead of a directory")
    encryption_key_file: Path | None = Field(None, description="a key made by `galera-pilot backup key "
                                             "FILE` (mode 0600): new backups are encrypted with it; every "
                                             "host that restores needs the same file")
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
    binlogs: BinlogSettings = Field(default_factory=BinlogSettings)
    tools: BackupTools = Field(default_factory=BackupTools)

    @field_validator("repository", "encryption_key_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _one_repository(self) -> BackupSettings:
        if self.repository is not None and self.s3 is not None:
            raise ValueError("give either repository (a directory) or s3, not both")
        return self

    @property
    def configured(self) -> bool:
        """A repository is named: this node can take backups."""
        return self.repository is not None or self.s3 is not None

    @property
    def schedule(self) -> Schedule:
        return Schedule(full_every=self.full_every_hours * HOUR, incremental_every=self.incremental_every_hours * HOUR)

    @property
    def retention(self) -> Retention:
        return Retention(keep_full=self.keep_full, window=self.window_days * DAY)
