"""Replaying archived binary logs into a running server: the roll-forward of a point-in-time recovery.

Each step's object is fetched (decrypted by the repository when sealed) and unpacked into a scratch
file, then `mariadb-binlog --start-position=D-S-after --stop-position=D-S-through FILE | mariadb` runs on
the server's socket: GTID positions, so the start is exclusive and the stop inclusive, each transaction
read once (steps from files of different nodes overlap). On a node with `wsrep_gtid_mode` the stream's
`SET @@session.server_id=` lines fail the first event ("Variable 'server_id' can't be set", measured on
10.11): they are dropped on the way; the GTIDs themselves are kept (gtid_domain_id, gtid_seq_no).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO

from galera_pilot.backup import tools
from galera_pilot.backup.binlog_index import ReplayStep
from galera_pilot.backup.materialize import RestoreFailed
from galera_pilot.backup.repository import CHUNK, Repository
from galera_pilot.backup.settings import BackupTools

DROPPED = b"set @@session.server_id="  # compared in lower case: the stream ends with SET @@SESSION.SERVER_ID=...


def replay(repository: Repository, steps: Sequence[ReplayStep], backup_tools: BackupTools, socket: Path,
           scratch: Path) -> int:
    """Every step in order; the number of files replayed. RestoreFailed naming the step that failed."""
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = scratch / "replay.log"
    for step in steps:
        local = scratch / f"{step.binlog.node}-{step.binlog.file}"
        fetch_binlog(repository, step, backup_tools, local, log)
        try:
            _apply(step, local, backup_tools, socket, log)
        finally:
            local.unlink(missing_ok=True)
    return len(steps)


def fetch_binlog(repository: Repository, step: ReplayStep, backup_tools: BackupTools, into: Path, log: Path) -> None:
    """The stored object, unpacked (zstd -d) into `into`."""
    what = f"archived binlog {step.binlog.node}/{step.binlog.file}"
    with open(log, "ab") as errors, open(into, "wb") as out, repository.open_binlog(step.binlog) as data:
        unzip = subprocess.Popen(tools.decompress(backup_tools), stdin=subprocess.PIPE, stdout=out, stderr=errors)
        assert unzip.stdin is not None
        try:
            _copy(data, unzip.stdin)
        except (OSError, ValueError) as error:
            unzip.kill()
            unzip.wait()
            raise RestoreFailed(f"{what} could not be read: {error}") from None
        finally:
            with contextlib.suppress(OSError):
                unzip.stdin.close()
        if unzip.wait() != 0:
            raise RestoreFailed(f"{what} could not be unpacked (zstd exited {unzip.returncode}): "
                                f"{tools.tail_of(log)}")


def _copy(data: BinaryIO, sink: IO[bytes]) -> None:
    while chunk := data.read(CHUNK):
        sink.write(chunk)


def _apply(step: ReplayStep, local: Path, backup_tools: BackupTools, socket: Path, log: Path) -> None:
    what = f"the replay of {step.binlog.node}/{step.binlog.file} ({step.after + 1}..{step.through})"
    reader_command = [backup_tools.binlog, f"--start-position={step.start_position()}",
                      f"--stop-position={step.stop_position()}", str(local)]
    client_command = [backup_tools.client, "--no-defaults", f"--socket={socket}", "--user=root", "--binary-mode"]
    with open(log, "ab") as errors:
        try:
            reader = subprocess.Popen(reader_command, stdout=subprocess.PIPE, stderr=errors)
        except OSError as error:
            raise RestoreFailed(f"cannot run {backup_tools.binlog}: {error.strerror}") from None
        try:
            client = subprocess.Popen(client_command, stdin=subprocess.PIPE, stderr=errors)
        except OSError as error:
            reader.kill()
            reader.wait()
            raise RestoreFailed(f"cannot run {backup_tools.client}: {error.strerror}") from None
        assert reader.stdout is not None and client.stdin is not None
        pump = threading.Thread(target=_filter, args=(reader.stdout, client.stdin), name="binlog-replay", daemon=True)
        pump.start()
        pump.join()
        reader_code, client_code = reader.wait(), client.wait()
    if reader_code != 0:
        raise RestoreFailed(f"{what}: mariadb-binlog exited {reader_code}: {tools.tail_of(log)}")
    if client_code != 0:
        raise RestoreFailed(f"{what}: the server refused a statement (mariadb exited {client_code}): "
                            f"{tools.tail_of(log)}")


def _filter(source: IO[bytes], sink: IO[bytes]) -> None:
    """The binlog's text into the client, without the server_id lines a wsrep_gtid_mode node refuses."""
    try:
        for line in source:
            if DROPPED not in line.lower():
                sink.write(line)
    except OSError:
        pass  # the client stopped: its exit code says why
    finally:
        with contextlib.suppress(OSError):
            sink.close()
