"""Taking one backup on this node: the adapter that runs mariadb-backup or mariadb-dump, compresses the
stream with zstd and stores it in the repository, hashed on the way.

On a node that is not the writer the backup is frozen at one point: a session holds FLUSH TABLES WITH
READ LOCK for the whole copy, which on a Galera node desyncs it and pauses its applier (the writer and
the other nodes go on committing; this node catches up after). That point is exact: the wsrep position
read under the lock is the backup's, and the CHECKSUM TABLE figures taken under it are what a restore
must reproduce. On the writer the lock would stop every client's writes, so nothing is frozen there:
mariadb-backup's own backup locks keep the copy consistent, and the set records no checksums.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, BinaryIO

from galera_pilot.backup import tools
from galera_pilot.backup.lineage import LINEAGE_FILE, ensure_lineage, read_lineage
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repository import Repository
from galera_pilot.backup.settings import BackupSettings
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

CHUNK = 1 << 20


class BackupFailed(PilotError):
    """The backup could not be taken; the message says which step and the tool's last words."""


@dataclass(frozen=True)
class Source:
    socket: Path
    datadir: Path
    work_dir: Path  # scratch space of this node (removed afterwards)
    user: str
    password: str
    freeze: bool  # hold the node at one point for the copy (never on the writer)


# progress(raw bytes read from the tool, compressed bytes stored, raw bytes expected or 0)
Progress = Callable[[int, int, int], None]


class Cancel:
    """Set by whoever watches the backup (its lock lost, no progress for too long): the tools are killed."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def take(source: Source, settings: BackupSettings, repository: Repository, manifest: Manifest,
         connect: Callable[[], Any], progress: Progress, cancel: Cancel | None = None) -> Manifest:
    """Store the backup's objects into the set `manifest` (already begun); the manifest returned has
    the position, the checksums and the objects. Raises BackupFailed; the caller marks the set."""
    if manifest.kind != "logical":
        manifest = replace(manifest, lineage=_lineage(source, repository, manifest))
    source.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    defaults = source.work_dir / "client.cnf"
    write_private(defaults, tools.client_defaults(source.user, source.password, source.socket, source.datadir))
    connection = None
    try:
        try:
            connection = connect()
            manifest, expected = _position(connection, manifest, source.freeze, settings.table_checksums)
        except Exception as error:  # pymysql's errors: the server is not answering as it must
            raise BackupFailed(f"cannot read the node's position: {error}") from None
        repository.save(manifest)
        if manifest.kind == "logical":
            command = tools.logical_backup(settings.tools, defaults)
            name = tools.LOGICAL_OBJECT
        else:
            # Frozen, our read lock already holds everything still: mariadb-backup's own backup locks
            # would wait for it for ever on a Galera node (BACKUP STAGE BLOCK_DDL, measured), so it takes none.
            command = tools.physical_backup(settings.tools, defaults, source.work_dir / "tmp",
                                            source.work_dir / "lsn", manifest.from_lsn, no_lock=source.freeze)
            (source.work_dir / "tmp").mkdir(exist_ok=True)
            name = tools.PHYSICAL_OBJECT
        manifest = _stream(command, settings, repository, manifest, name, source.work_dir / "tool.log",
                           lambda raw, stored: progress(raw, stored, expected), cancel or Cancel())
        if manifest.kind != "logical":
            manifest = _store_lsn_files(repository, manifest, source.work_dir / "lsn")
            if not manifest.gtid:  # not frozen by us: the tool's own lock chose the point, its files say where
                gtid = (tools.last_gtid(source.work_dir / "lsn" / tools.INFO_OBJECT)
                        or tools.last_gtid(source.work_dir / "tool.log"))
                manifest = replace(manifest, gtid=gtid)
        return manifest
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()  # releases the read lock: the node resumes applying
        shutil.rmtree(source.work_dir, ignore_errors=True)


def _lineage(source: Source, repository: Repository, manifest: Manifest) -> str:
    """A full backup's datadir lineage (written when the datadir has none of its own); an incremental's,
    which must be its parent's: checked before anything is paused or read."""
    if manifest.kind == "full":
        try:
            return ensure_lineage(source.datadir, manifest.node)
        except OSError as error:
            raise BackupFailed(f"cannot record the datadir's lineage in {source.datadir / LINEAGE_FILE}: "
                               f"{error.strerror or error}") from None
    parent = repository.manifest(manifest.parent or "")
    if parent.node != manifest.node:
        raise BackupFailed(f"the chain of backup {parent.id} was taken on {parent.node}: an incremental of it "
                           f"can only be taken there (InnoDB's LSNs are each node's own); take a full backup "
                           f"on {manifest.node}")
    if not parent.lineage:
        raise BackupFailed(f"backup {parent.id} records no datadir lineage (an older galera-pilot took it): an "
                           "incremental cannot be checked against it; take a full backup")
    if read_lineage(source.datadir, manifest.node) != parent.lineage:
        raise BackupFailed(f"{manifest.node}'s datadir is not the one backup {parent.id} was copied from (a state "
                           "transfer or a restore replaced it since): an incremental would not apply onto it; "
                           "take a full backup")
    return parent.lineage


def _position(connection: Any, manifest: Manifest, freeze: bool, checksums: bool) -> tuple[Manifest, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), COALESCE(SUM(data_length + index_length), 0) FROM "
                       "information_schema.tables WHERE table_type = 'BASE TABLE'")
        version, size = cursor.fetchone()
        if freeze:
            cursor.execute("FLUSH TABLES WITH READ LOCK")
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_state_uuid', "
                       "'wsrep_last_committed')")
        status = {str(k).lower(): str(v) for k, v in cursor.fetchall()}
        cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        gtid = str(cursor.fetchone()[0] or "")
        figures: dict[str, int | None] = {}
        if freeze and checksums:
            figures = tools.table_checksums(cursor)
    seqno = int(status.get("wsrep_last_committed", "-1")) if freeze else -1
    note = manifest.note if freeze else (manifest.note + "; " if manifest.note else "") + (
        "taken on the writer: not frozen at one point, no table checksums")
    return replace(manifest, mariadb_version=str(version), cluster_uuid=status.get("wsrep_cluster_state_uuid", ""),
                   seqno=seqno, checksums=figures, note=note, gtid=gtid if freeze else ""), int(size or 0)


def _stream(command: list[str], settings: BackupSettings, repository: Repository, manifest: Manifest,
            name: str, log_path: Path, progress: Callable[[int, int], None], cancel: Cancel) -> Manifest:
    """tool | (this process, counting) | zstd | repository."""
    with open(log_path, "wb") as log:
        try:
            tool = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                    start_new_session=True)
        except OSError as error:
            raise BackupFailed(f"cannot run {command[0]}: {error.strerror}") from None
        try:
            packer = subprocess.Popen(tools.compress(settings.tools, settings.compress_level),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                      start_new_session=True)
        except OSError as error:
            _kill(tool)
            raise BackupFailed(f"cannot run {settings.tools.zstd}: {error.strerror}") from None
        raw = [0]
        pump = threading.Thread(target=_pump, args=(tool.stdout, packer.stdin, raw), daemon=True)
        pump.start()
        finished = threading.Event()

        def watch() -> None:
            while not finished.is_set():
                if cancel.wait(0.5):
                    _kill(tool)
                    _kill(packer)
                    return

        threading.Thread(target=watch, name="backup-watch", daemon=True).start()
        stored = [0]

        def counted(stream: IO[bytes]) -> Iterator[bytes]:
            while chunk := stream.read(CHUNK):
                stored[0] += len(chunk)
                progress(raw[0], stored[0])
                yield chunk

        try:
            assert packer.stdout is not None
            manifest = repository.store(manifest, name, counted(packer.stdout))
        except BaseException:
            _kill(tool)
            _kill(packer)
            raise
        finally:
            pump.join(timeout=60)
        tool_rc, packer_rc = tool.wait(), packer.wait()
        finished.set()
    if cancel.is_set():
        raise BackupFailed(f"stopped: {cancel.reason}")
    if tool_rc != 0:
        raise BackupFailed(f"{Path(command[0]).name} exited with {tool_rc}: {tools.tail_of(log_path)}")
    if packer_rc != 0:
        raise BackupFailed(f"zstd exited with {packer_rc}: {tools.tail_of(log_path)}")
    progress(raw[0], stored[0])
    return manifest


def _pump(source: BinaryIO | None, sink: BinaryIO | None, counter: list[int]) -> None:
    assert source is not None and sink is not None
    try:
        while chunk := source.read(CHUNK):
            sink.write(chunk)
            counter[0] += len(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass  # zstd or the store stopped: its own error is the one reported
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def _store_lsn_files(repository: Repository, manifest: Manifest, lsn_dir: Path) -> Manifest:
    checkpoints = lsn_dir / tools.CHECKPOINTS_OBJECT
    try:
        text = checkpoints.read_text()
    except OSError as error:
        raise BackupFailed(f"mariadb-backup wrote no {checkpoints.name}: {error.strerror}") from None
    from_lsn, to_lsn = tools.lsn_range(text)
    for item in (checkpoints, lsn_dir / tools.INFO_OBJECT):
        if item.exists():
            with open(item, "rb") as data:
                manifest = repository.store(manifest, item.name, data)
    return replace(manifest, from_lsn=from_lsn, to_lsn=to_lsn)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, 9)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
