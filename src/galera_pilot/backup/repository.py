"""A backup repository in a local or mounted directory: one folder per set, its manifest and its objects.

    REPO/<cluster>/<set id>/manifest.json   written atomically, first as `running`, last as `complete`
    REPO/<cluster>/<set id>/<object>        streamed in, hashed while written (never read back to hash)

A set whose writer died stays `running` in its manifest: `abandoned()` names those older than the lock
that guarded them, for whoever holds the lock next to mark failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Protocol

from galera_pilot.backup.manifest import Manifest, Problem, StoredObject, Verification
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

SET_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
OBJECT_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
CHUNK = 1 << 20


class RepositoryError(PilotError):
    """The repository cannot be read or written as asked (named, never a traceback)."""


class Repository(Protocol):
    """What the backup, the schedule, the verbs and the restores need of a repository: a directory
    (LocalRepository), S3-compatible object storage (s3.py), either behind encryption (encrypted.py)."""

    cluster: str

    @property
    def where(self) -> str: ...  # for messages: a path, or s3://bucket/prefix/cluster

    def begin(self, manifest: Manifest) -> Manifest: ...
    def store(self, manifest: Manifest, name: str, stream: BinaryIO | Iterable[bytes]) -> Manifest: ...
    def save(self, manifest: Manifest) -> None: ...
    def finish(self, manifest: Manifest, status: str, finished_at: float, error: str = "") -> Manifest: ...
    def fail_if_running(self, set_id: str, why: str, at: float) -> None: ...
    def manifests(self) -> list[Manifest]: ...
    def manifest(self, set_id: str) -> Manifest: ...
    def delete(self, set_id: str) -> None: ...
    def open(self, manifest: Manifest, name: str) -> BinaryIO: ...
    def verify(self, set_id: str) -> Verification: ...


class SetRecords:
    """What every repository does the same way once it can read and write a set's manifest: a set's end,
    and marking one whose writer is gone."""

    def manifest(self, set_id: str) -> Manifest:
        raise NotImplementedError

    def _save(self, manifest: Manifest) -> None:
        raise NotImplementedError

    def finish(self, manifest: Manifest, status: str, finished_at: float, error: str = "") -> Manifest:
        done = replace(manifest, status=status, finished_at=finished_at, error=error)  # type: ignore[arg-type]
        self._save(done)
        return done

    def fail_if_running(self, set_id: str, why: str, at: float) -> None:
        """Mark a set whose writer is gone failed; nothing when it finished or was never begun."""
        try:
            manifest = self.manifest(set_id)
        except RepositoryError:
            return
        if manifest.status == "running":
            self.finish(manifest, "failed", at, why)


class LocalRepository(SetRecords):
    def __init__(self, root: Path, cluster: str) -> None:
        self.root = root
        self.dir = root / cluster
        self.cluster = cluster

    @property
    def where(self) -> str:
        return str(self.dir)

    # ---- sets ------------------------------------------------------------------------------------------
    def begin(self, manifest: Manifest) -> Manifest:
        if not SET_ID.match(manifest.id):
            raise RepositoryError(f"backup id {manifest.id!r} is not a valid name")
        folder = self.dir / manifest.id
        try:
            folder.mkdir(parents=True, exist_ok=False, mode=0o700)
        except FileExistsError:
            raise RepositoryError(f"backup {manifest.id} already exists in {self.dir}") from None
        except OSError as error:
            raise RepositoryError(f"cannot create {folder}: {error.strerror}") from None
        self._save(manifest)
        return manifest

    def store(self, manifest: Manifest, name: str, stream: BinaryIO | Iterable[bytes]) -> Manifest:
        """Copy `stream` into the set as `name`, hashing it on the way; the manifest gains the object."""
        if not OBJECT_NAME.match(name) or name == "manifest.json":
            raise RepositoryError(f"object name {name!r} is not valid")
        path = self.dir / manifest.id / name
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "xb") as out:
                for chunk in chunks(stream):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            raise RepositoryError(f"cannot write {path}: {error.strerror}") from None
        updated = manifest.with_object(StoredObject(name, size, digest.hexdigest()))
        self._save(updated)
        return updated

    def manifests(self) -> list[Manifest]:
        """Every set's manifest, oldest first; a folder without a readable manifest is skipped (a set
        whose first write failed), never an error for the others."""
        found = []
        try:
            folders = sorted(p for p in self.dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise RepositoryError(f"cannot list {self.dir}: {error.strerror}") from None
        for folder in folders:
            try:
                found.append(Manifest.from_dict(json.loads((folder / "manifest.json").read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda m: m.started_at)

    def manifest(self, set_id: str) -> Manifest:
        for manifest in self.manifests():
            if manifest.id == set_id:
                return manifest
        raise RepositoryError(f"no backup {set_id!r} in {self.dir}")

    def delete(self, set_id: str) -> None:
        self.manifest(set_id)  # refuses an unknown id
        shutil.rmtree(self.dir / set_id)

    def open(self, manifest: Manifest, name: str) -> BinaryIO:
        return open(self.dir / manifest.id / name, "rb")

    def verify(self, set_id: str) -> Verification:
        """Every object of the set against its stored size and checksum; nothing is trusted from disk
        but the manifest itself."""
        folder = self.dir / set_id

        def open_object(name: str) -> BinaryIO | None:
            try:
                return open(folder / name, "rb")
            except FileNotFoundError:
                return None

        return verify_objects(self.manifest(set_id), open_object)

    def save(self, manifest: Manifest) -> None:
        """Rewrite the set's manifest (its position and checksums known, before the objects come)."""
        self._save(manifest)

    def _save(self, manifest: Manifest) -> None:
        write_private(self.dir / manifest.id / "manifest.json", json.dumps(manifest.to_dict(), indent=1) + "\n",
                      0o600)


def chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    """A stream to store, as chunks: a file is read CHUNK at a time, an iterable taken as it comes."""
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from stream  # type: ignore[misc]


def verify_objects(manifest: Manifest, open_object: Callable[[str], BinaryIO | None]) -> Verification:
    """Every object of the set read back (`open_object`: None when it is missing) and hashed against the
    manifest, whatever holds it: nothing is trusted from the storage but the manifest itself."""
    problems: list[Problem] = []
    checked = 0
    for stored in manifest.objects:
        data = open_object(stored.name)
        if data is None:
            problems.append(Problem(stored.name, "missing"))
            continue
        digest, size = hashlib.sha256(), 0
        with data:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        checked += 1
        if size != stored.size:
            problems.append(Problem(stored.name, f"{size} bytes, the manifest says {stored.size}"))
        elif digest.hexdigest() != stored.sha256:
            problems.append(Problem(stored.name, "checksum differs from the manifest's"))
    if manifest.status != "complete":
        problems.append(Problem("manifest.json", f"the set is {manifest.status}, not complete"))
    return Verification(manifest.id, checked, tuple(problems))
