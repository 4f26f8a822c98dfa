"""A backup repository in a local or mounted directory: one folder per set, its manifest and its objects.

    REPO/<cluster>/<set id>/manifest.json   written atomically, first as `running`, last as `complete`
    REPO/<cluster>/<set id>/<object>        streamed in, hashed while written (never read back to hash)

A set whose writer died stays `running` in its manifest: `abandoned()` names those older than the lock
that guarded them, for whoever holds the lock next to mark failed.

Archived binary logs (point-in-time recovery) live beside the sets, in a folder no set may be named:

    REPO/<cluster>/binlogs/<node>/<file>.zst    the compressed (and maybe sealed) binlog, hashed while written
    REPO/<cluster>/binlogs/<node>/<file>.json   its ArchivedBinlog record, written last and atomically
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

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.manifest import Manifest, Problem, StoredObject, Verification
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

SET_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
OBJECT_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")
BINLOG_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")  # a node's name, a binlog file's name
BINLOGS = "binlogs"  # the archived binlogs' folder, beside the sets': never a set id
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

    # Archived binlogs: each object, then its record; a listed record always has its whole object.
    def store_binlog(self, record: ArchivedBinlog, stream: BinaryIO | Iterable[bytes]) -> ArchivedBinlog: ...
    def binlogs(self) -> list[ArchivedBinlog]: ...
    def open_binlog(self, record: ArchivedBinlog) -> BinaryIO: ...
    def delete_binlog(self, record: ArchivedBinlog) -> None: ...
    def verify_binlog(self, record: ArchivedBinlog) -> list[Problem]: ...


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
        check_set_id(manifest.id)
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
        try:
            with open(path, "xb") as out:
                digest, size = copy_hashing(stream, out)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            raise RepositoryError(f"cannot write {path}: {error.strerror}") from None
        updated = manifest.with_object(StoredObject(name, size, digest))
        self._save(updated)
        return updated

    def manifests(self) -> list[Manifest]:
        """Every set's manifest, oldest first; a folder without a readable manifest is skipped (a set
        whose first write failed), never an error for the others."""
        found = []
        try:
            folders = sorted(p for p in self.dir.iterdir() if p.is_dir() and p.name != BINLOGS)
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

    # ---- archived binlogs ------------------------------------------------------------------------------
    def store_binlog(self, record: ArchivedBinlog, stream: BinaryIO | Iterable[bytes]) -> ArchivedBinlog:
        """Write the object beside its final name and rename it into place once whole, then the record:
        a writer that dies leaves at most a `.part` file, which the next store of the file overwrites."""
        object_name, record_name = binlog_names(record)
        target = self.dir / object_name
        partial = target.with_name(target.name + ".part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                digest, size = copy_hashing(stream, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except OSError as error:
            raise RepositoryError(f"cannot write {target}: {error.strerror or error}") from None
        finally:
            partial.unlink(missing_ok=True)
        filled = replace(record, object=object_name, size=size, sha256=digest)
        try:
            write_private(self.dir / record_name, binlog_record_text(filled), 0o600)
        except OSError as error:
            raise RepositoryError(f"cannot write {self.dir / record_name}: {error.strerror}") from None
        return filled

    def binlogs(self) -> list[ArchivedBinlog]:
        """Every archived binlog's record, by node and file; an unreadable record is skipped."""
        root = self.dir / BINLOGS
        try:
            records = sorted(root.glob("*/*.json"))
        except OSError as error:
            raise RepositoryError(f"cannot list {root}: {error.strerror}") from None
        found = []
        for path in records:
            try:
                body = path.read_bytes()
            except OSError:
                continue
            if (record := parse_binlog_record(body, path.relative_to(self.dir).as_posix())) is not None:
                found.append(record)
        return sorted(found, key=lambda r: (r.node, r.file))

    def open_binlog(self, record: ArchivedBinlog) -> BinaryIO:
        path = self.dir / binlog_names(record)[0]
        try:
            return open(path, "rb")
        except OSError as error:
            raise RepositoryError(f"cannot read archived binlog {path}: {error.strerror}") from None

    def delete_binlog(self, record: ArchivedBinlog) -> None:
        """The record, then the object; what is already gone is no error (a delete that died is redone)."""
        for name in reversed(binlog_names(record)):
            try:
                (self.dir / name).unlink(missing_ok=True)
            except OSError as error:
                raise RepositoryError(f"cannot delete {self.dir / name}: {error.strerror}") from None

    def verify_binlog(self, record: ArchivedBinlog) -> list[Problem]:
        try:
            data: BinaryIO | None = self.open_binlog(record)
        except RepositoryError:
            if (self.dir / binlog_names(record)[0]).exists():
                raise  # there, but unreadable: not "missing"
            data = None
        return verify_binlog_object(record, data)


def check_set_id(set_id: str) -> None:
    if not SET_ID.match(set_id) or set_id == BINLOGS:
        raise RepositoryError(f"backup id {set_id!r} is not a valid name")


def chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    """A stream to store, as chunks: a file is read CHUNK at a time, an iterable taken as it comes."""
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from stream  # type: ignore[misc]


def copy_hashing(stream: BinaryIO | Iterable[bytes], out: BinaryIO) -> tuple[str, int]:
    """Copy `stream` into `out`; the sha256 and size of what was written, taken on the way."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks(stream):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def measure(data: BinaryIO) -> tuple[str, int]:
    """The sha256 and size of what `data` holds, read to its end and closed."""
    digest, size = hashlib.sha256(), 0
    with data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


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
        sha256, size = measure(data)
        checked += 1
        if size != stored.size:
            problems.append(Problem(stored.name, f"{size} bytes, the manifest says {stored.size}"))
        elif sha256 != stored.sha256:
            problems.append(Problem(stored.name, "checksum differs from the manifest's"))
    if manifest.status != "complete":
        problems.append(Problem("manifest.json", f"the set is {manifest.status}, not complete"))
    return Verification(manifest.id, checked, tuple(problems))


# ---- archived binlogs, whatever holds them ---------------------------------------------------------------
def binlog_names(record: ArchivedBinlog) -> tuple[str, str]:
    """The object's and the record's names, relative to the cluster's folder, made from the record's node
    and file only once both are known to be plain names (never from its `object`: no path from a record
    is trusted). Their endings differ, so no file's object is another file's record."""
    for what, name in (("node", record.node), ("binlog file", record.file)):
        if not isinstance(name, str) or not BINLOG_NAME.match(name):
            raise RepositoryError(f"{what} name {name!r} is not valid for an archived binlog")
    stem = f"{BINLOGS}/{record.node}/{record.file}"
    return f"{stem}.zst", f"{stem}.json"


def binlog_record_text(record: ArchivedBinlog) -> str:
    return json.dumps(record.to_dict(), indent=1) + "\n"


def parse_binlog_record(body: bytes, found_as: str) -> ArchivedBinlog | None:
    """The record stored as `found_as`; None when it is unreadable, or names another place than where it
    was found (a record copied or edited by hand describes no object it can be trusted with)."""
    try:
        record = ArchivedBinlog.from_dict(json.loads(body))
        object_name, record_name = binlog_names(record)
    except (ValueError, TypeError, AttributeError, RepositoryError):
        return None
    return record if (record_name, object_name) == (found_as, record.object) else None


def verify_binlog_object(record: ArchivedBinlog, data: BinaryIO | None) -> list[Problem]:
    """The stored object (None: missing) hashed against its record; nothing else is trusted."""
    name = binlog_names(record)[0]
    if data is None:
        return [Problem(name, "missing")]
    sha256, size = measure(data)
    if size != record.size:
        return [Problem(name, f"{size} bytes, the record says {record.size}")]
    if sha256 != record.sha256:
        return [Problem(name, "checksum differs from the record's")]
    return []
