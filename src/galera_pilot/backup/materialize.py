"""Turning stored sets back into files: a physical chain unpacked and prepared into a datadir, an object
decompressed into a program. Shared by the restore test (a scratch server) and a cluster's restore (the
agent that restores builds its new datadir with it)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

from galera_pilot.backup import tools
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repository import CHUNK, Repository
from galera_pilot.backup.settings import BackupTools
from galera_pilot.errors import PilotError


class RestoreFailed(PilotError):
    """A step of a restore failed: the set cannot be restored as it is (the message says where)."""


RestoreTestFailed = RestoreFailed  # the restore test's name for it


def prepare_chain(repository: Repository, chain: list[Manifest], backup_tools: BackupTools, scratch: Path) -> Path:
    """Unpack every link of a physical chain (the full backup first) into `scratch`/N and prepare the
    full one with each incremental in turn: the datadir returned is `scratch`/0, ready to start."""
    datadir = scratch / "0"
    for index, link in enumerate(chain):
        folder = scratch / str(index)
        folder.mkdir()
        unpack_link(repository, link, backup_tools, folder, scratch / "unpack.log")
    run_step(tools.prepare(backup_tools, datadir), scratch / "prepare.log", "mariadb-backup --prepare")
    for index in range(1, len(chain)):
        run_step(tools.prepare(backup_tools, datadir, scratch / str(index)), scratch / "prepare.log",
                 f"mariadb-backup --prepare of the incremental {chain[index].id}")
    return datadir


def unpack_link(repository: Repository, link: Manifest, backup_tools: BackupTools, into: Path, log: Path) -> None:
    decompress_into(repository, link, tools.PHYSICAL_OBJECT, backup_tools, tools.unpack(backup_tools, into), log,
                     "unpack", "mbstream")


def decompress_into(repository: Repository, link: Manifest, name: str, backup_tools: BackupTools,
                     command: list[str], log: Path, verb: str, label: str) -> None:
    """zstd -d < the stored object | command. A plain local file is zstd's stdin itself; anything else
    (an S3 stream, a sealed object being decrypted) is pumped in by a thread, whose failure (a bad tag,
    a lost connection) names the object and fails the restore whatever zstd made of the cut stream."""
    failure: list[str] = []
    with open(log, "ab") as errors, repository.open(link, name) as data:
        direct = _has_fd(data)
        unzip = subprocess.Popen(tools.decompress(backup_tools), stdin=data if direct else subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=errors)
        consumer = subprocess.Popen(command, stdin=unzip.stdout, stderr=errors)
        assert unzip.stdout is not None
        unzip.stdout.close()
        pump = None if direct else threading.Thread(target=_pump, args=(data, unzip, failure), daemon=True)
        if pump is not None:
            pump.start()
        consumer_rc, unzip_rc = consumer.wait(), unzip.wait()
        if pump is not None:
            pump.join()
    if failure:
        raise RestoreFailed(f"cannot read {link.id}/{name}: {failure[0]}")
    if unzip_rc or consumer_rc:
        raise RestoreFailed(f"cannot {verb} {link.id}/{name} (zstd {unzip_rc}, {label} {consumer_rc}): "
                                f"{tools.tail_of(log)}")


def _has_fd(data: BinaryIO) -> bool:
    """A real file (a local repository's object in the clear) can be a child's stdin as it is."""
    try:
        data.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


def _pump(data: BinaryIO, into: subprocess.Popen, failure: list[str]) -> None:
    assert into.stdin is not None
    try:
        while chunk := data.read(CHUNK):
            into.stdin.write(chunk)
    except PilotError as error:
        failure.append(str(error))
        into.kill()  # a cut stream must not be taken for a whole one
    except BrokenPipeError:
        pass  # zstd stopped reading: its exit code says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            into.stdin.close()


def run_step(command: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        try:
            rc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False).returncode
        except OSError as error:
            raise RestoreFailed(f"cannot run {command[0]}: {error.strerror}") from None
    if rc != 0:
        raise RestoreFailed(f"{what} failed ({rc}): {tools.tail_of(log)}")
