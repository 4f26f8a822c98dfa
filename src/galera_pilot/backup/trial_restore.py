"""`backup verify --restore-test`: restore a set into a scratch mariadbd and compare its tables with the
CHECKSUM TABLE figures recorded at the backup's point.

The scratch server runs with no network (`--skip-networking`, a socket in the scratch folder), no wsrep,
no binary log and no grant tables: it can reach no cluster and nothing can reach it. A physical set is
unpacked link by link (its full backup, then each incremental) and prepared; a logical one is loaded
into a freshly initialised datadir. The scratch folder is removed afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from galera_pilot.backup import tools
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.materialize import RestoreTestFailed, decompress_into, prepare_chain, run_step
from galera_pilot.backup.repository import Repository
from galera_pilot.backup.settings import BackupTools

START_TIMEOUT = 300.0  # s for the scratch server to open its socket (crash recovery of a large set)




@dataclass(frozen=True)
class Servers:
    mariadbd: str = "/usr/sbin/mariadbd"
    install_db: str = "/usr/bin/mariadb-install-db"


@dataclass(frozen=True)
class RestoreTest:
    set_id: str
    seconds: float
    tables: int  # tables found in the restored copy
    compared: int  # of them, compared with a recorded figure
    mismatches: tuple[str, ...] = field(default=())  # one sentence per table that differs, is missing or extra

    @property
    def ok(self) -> bool:
        return not self.mismatches


def restore_test(repository: Repository, chain: list[Manifest], backup_tools: BackupTools,
                 servers: Servers, scratch_parent: Path | None = None) -> RestoreTest:
    """`chain`: the set's full backup first and the set last (one set for a full or logical backup)."""
    started = time.monotonic()
    target = chain[-1]
    scratch = Path(tempfile.mkdtemp(prefix="gp-restore-", dir=scratch_parent))
    server: subprocess.Popen | None = None
    try:
        os.chmod(scratch, 0o700)
        if target.kind == "logical":
            datadir = scratch / "data"
            run_step([servers.install_db, "--no-defaults", f"--datadir={datadir}",
                  "--auth-root-authentication-method=normal", *(["--user=root"] if os.geteuid() == 0 else [])],
                 scratch / "install.log", "mariadb-install-db")
        else:
            datadir = prepare_chain(repository, chain, backup_tools, scratch)
        socket = scratch / "mariadbd.sock"
        server = _start(servers, datadir, socket, scratch)
        if target.kind == "logical":
            _load(repository, target, backup_tools, socket, scratch / "load.log")
        found = _checksums(socket)
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(scratch, ignore_errors=True)
    expected = target.checksums
    mismatches = []
    for table, value in sorted(found.items()):
        if table not in expected:
            if expected:
                mismatches.append(f"{table}: in the restored copy, not in the backup's figures")
        elif expected[table] != value:
            mismatches.append(f"{table}: checksum {value}, the backup recorded {expected[table]}")
    mismatches.extend(f"{table}: missing from the restored copy" for table in sorted(set(expected) - set(found)))
    compared = len(set(expected) & set(found))
    return RestoreTest(target.id, time.monotonic() - started, len(found), compared, tuple(mismatches))


def _load(repository: Repository, target: Manifest, backup_tools: BackupTools, socket: Path, log: Path) -> None:
    load = [backup_tools.client, "--no-defaults", f"--socket={socket}", "--user=root", "--binary-mode"]
    decompress_into(repository, target, tools.LOGICAL_OBJECT, backup_tools, load, log, "load", "mariadb")


def _start(servers: Servers, datadir: Path, socket: Path, scratch: Path) -> subprocess.Popen:
    log = scratch / "mariadbd.err"
    command = [servers.mariadbd, "--no-defaults", f"--datadir={datadir}", "--skip-networking", f"--socket={socket}",
               f"--pid-file={scratch / 'mariadbd.pid'}", f"--log-error={log}", "--wsrep-on=OFF", "--skip-log-bin",
               "--skip-grant-tables", "--skip-slave-start", "--innodb-buffer-pool-size=64M",
               "--loose-innodb-use-native-aio=0", *(["--user=root"] if os.geteuid() == 0 else [])]
    try:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        raise RestoreTestFailed(f"cannot run {servers.mariadbd}: {error.strerror}") from None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RestoreTestFailed(f"the scratch mariadbd exited ({server.returncode}) on the restored copy: "
                                    f"{tools.tail_of(log)}")
        with contextlib.suppress(pymysql.err.OperationalError):
            _connect(socket).close()
            return server
        time.sleep(0.2)
    _stop(server)
    raise RestoreTestFailed(f"the scratch mariadbd did not open its socket in {START_TIMEOUT:.0f} s: "
                            f"{tools.tail_of(log)}")


def _connect(socket: Path):  # type: ignore[no-untyped-def]
    return pymysql.connect(unix_socket=str(socket), user="root", password="", connect_timeout=5,
                           read_timeout=3600, autocommit=True, ssl_disabled=True)


def _checksums(socket: Path) -> dict[str, int | None]:
    connection = _connect(socket)
    try:
        with connection.cursor() as cursor:
            return tools.table_checksums(cursor)
    finally:
        connection.close()


def _stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
