"""A repository whose objects are encrypted at rest (backup/encryption.py), in front of any other.

The key stays on the hosts that hold its file: objects are sealed before they leave the node, so neither
the storage nor anyone who can read it learns the data. The manifest stays readable (listing, the
schedule and the retention need no key) and records the key's id, so a set encrypted with another key
is refused by name instead of failing with a bad tag. Checksums are of the stored (sealed) bytes:
`verify` needs no key either; a restore, which opens the objects, does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from galera_pilot.backup.encryption import BackupKey, EncryptionError, decrypt, encrypt
from galera_pilot.backup.manifest import Manifest, Verification
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

    def _key_for(self, manifest: Manifest) -> BackupKey:
        if self.key is None:
            raise EncryptionError(f"backup {manifest.id} is encrypted (key {manifest.key_id}): this host has no "
                                  "key (backup.encryption_key_file)")
        if self.key.key_id != manifest.key_id:
            raise EncryptionError(f"backup {manifest.id} is encrypted with key {manifest.key_id}; the key "
                                  f"configured here is {self.key.key_id}")
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
