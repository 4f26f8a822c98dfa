"""A repository whose objects are encrypted at rest (backup/encryption.py), in front of any other.

The key stays on the hosts that hold its file: objects are sealed before they leave the node, so neither
the storage nor anyone who can read it learns the data. The manifest stays readable (listing, the
schedule and the retention need no key) and records the key's id, so a set encrypted with another key
is refused by name instead of failing with a bad tag. Checksums are of the stored (sealed) bytes:
`verify` needs no key either; a restore, which opens the objects, does. Archived binlogs are sealed the
same way, their records (readable) naming the key as a manifest does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.encryption import BackupKey, EncryptionError, decrypt, encrypt
from galera_pilot.backup.manifest import Manifest, Problem, Verification
from galera_pilot.backup.repository import Repository, chunks

__all__ = ["EncryptedRepository", "EncryptionError"]


class EncryptedRepository:
    def __init__(self, inner: Repository, key: BackupKey | None) -> None:
        self.inner = inner
        self.key = key  # None: new sets are stored in the clear; encrypted ones cannot be opened
        self.cluster = inner.cluster

    @property
    def where(self) -> str:
        return self.inner.where

    def begin(self, manifest: Manifest) -> Manifest:
        return self.inner.begin(replace(manifest, key_id=self.key.key_id if self.key else ""))

    def store(self, manifest: Manifest, name: str, stream: BinaryIO | Iterable[bytes]) -> Manifest:
        if not manifest.key_id:
            return self.inner.store(manifest, name, stream)
        return self.inner.store(manifest, name, encrypt(self._key_for(manifest), chunks(stream)))

    def open(self, manifest: Manifest, name: str) -> BinaryIO:
        if not manifest.key_id:
            return self.inner.open(manifest, name)
        key = self._key_for(manifest)
        return _DecryptingReader(self.inner.open(manifest, name), key)  # type: ignore[return-value]

    def store_binlog(self, record: ArchivedBinlog, stream: BinaryIO | Iterable[bytes]) -> ArchivedBinlog:
        """Sealed with this host's key, which the record names; in the clear when there is none."""
        if self.key is None:
            return self.inner.store_binlog(replace(record, key_id=""), stream)
        return self.inner.store_binlog(replace(record, key_id=self.key.key_id), encrypt(self.key, chunks(stream)))

    def open_binlog(self, record: ArchivedBinlog) -> BinaryIO:
        if not record.key_id:
            return self.inner.open_binlog(record)
        key = self._key_named(record.key_id, f"archived binlog {record.node}/{record.file}")
        return _DecryptingReader(self.inner.open_binlog(record), key)  # type: ignore[return-value]

    def _key_for(self, manifest: Manifest) -> BackupKey:
        return self._key_named(manifest.key_id, f"backup {manifest.id}")

    def _key_named(self, key_id: str, what: str) -> BackupKey:
        """This host's key if it is the one `what` was sealed with; an EncryptionError naming both if not."""
        if self.key is None:
            raise EncryptionError(f"{what} is encrypted (key {key_id}): this host has no key "
                                  "(backup.encryption_key_file)")
        if self.key.key_id != key_id:
            raise EncryptionError(f"{what} is encrypted with key {key_id}; the key configured here is "
                                  f"{self.key.key_id}")
        return self.key

    # ---- the rest needs no key ----------------------------------------------------------------------
    def save(self, manifest: Manifest) -> None:
        self.inner.save(manifest)

    def finish(self, manifest: Manifest, status: str, finished_at: float, error: str = "") -> Manifest:
        return self.inner.finish(manifest, status, finished_at, error)

    def fail_if_running(self, set_id: str, why: str, at: float) -> None:
        self.inner.fail_if_running(set_id, why, at)

    def manifests(self) -> list[Manifest]:
        return self.inner.manifests()

    def manifest(self, set_id: str) -> Manifest:
        return self.inner.manifest(set_id)

    def delete(self, set_id: str) -> None:
        self.inner.delete(set_id)

    def verify(self, set_id: str) -> Verification:
        return self.inner.verify(set_id)

    def binlogs(self) -> list[ArchivedBinlog]:
        return self.inner.binlogs()

    def delete_binlog(self, record: ArchivedBinlog) -> None:
        self.inner.delete_binlog(record)

    def verify_binlog(self, record: ArchivedBinlog) -> list[Problem]:
        return self.inner.verify_binlog(record)  # of the sealed bytes: no key needed


class _DecryptingReader:
    """A read-only binary file over a sealed object: what the restore pipes into zstd. A failed tag, a
    cut or a wrong key raises EncryptionError from read(); the reader must discard what it got."""

    def __init__(self, raw: BinaryIO, key: BackupKey) -> None:
        self._raw = raw
        self._plain = decrypt(key, chunks(raw))
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._plain, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _DecryptingReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
