"""The repository a `backup` section names, opened: a directory or an S3 bucket, behind encryption when
a key is configured. One place, so the agents, the schedule and the verbs open the same thing the same
way, and a credentials or key problem reads the same everywhere."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from galera_pilot.backup.encrypted import EncryptedRepository
from galera_pilot.backup.encryption import load_key
from galera_pilot.backup.repository import LocalRepository, Repository, RepositoryError
from galera_pilot.backup.s3_credentials import load_s3_credentials
from galera_pilot.backup.settings import BackupSettings


def open_repository(settings: BackupSettings, cluster: str, directory: Path | None = None,
                    environ: Mapping[str, str] = os.environ) -> Repository:
    """`directory` (`--repo DIR`) wins over the section's repository; RepositoryError or EncryptionError
    (both PilotError, one line) when it cannot be opened as configured."""
    inner: Repository
    if directory is not None:
        inner = LocalRepository(directory, cluster)
    elif settings.s3 is not None:
        from galera_pilot.backup.s3 import S3Location, S3Repository  # minio: only when used

        s3 = settings.s3
        access_key, secret_key = load_s3_credentials(s3.credentials_file, environ)
        inner = S3Repository(S3Location(endpoint=s3.endpoint, bucket=s3.bucket, access_key=access_key,
                                        secret_key=secret_key, region=s3.region, prefix=s3.prefix,
                                        ca_file=s3.ca_file), cluster)
    elif settings.repository is not None:
        inner = LocalRepository(settings.repository, cluster)
    else:
        raise RepositoryError("no backup repository is configured (backup.repository or backup.s3)")
    key = load_key(settings.encryption_key_file) if settings.encryption_key_file is not None else None
    return EncryptedRepository(inner, key)
