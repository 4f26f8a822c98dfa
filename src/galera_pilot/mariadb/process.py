"""The mariadbd process: start, find (also one started by an earlier agent), stop, recover position.

mariadbd is started in its own session so that it outlives the agent: an agent that dies or is
upgraded must not take the database down with it, and a new agent adopts the running server through
its pid file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from galera_pilot.cluster import Position
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import PilotError

RECOVERED_RE = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")


def tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# What mariadbd logs when it gives up reaching every peer of its gcomm address (after ~30 s).
GCOMM_UNREACHABLE = ("failed to reach primary view", "failed to open gcomm backend connection")


def gave_up_reaching_peers(error_log_tail: str) -> bool:
    """Did mariadbd exit because no peer answered? That is a network problem (a partition, a peer that
    just died), not a crash, and must not add up to a crash-loop halt that outlives the problem."""
    return any(marker in error_log_tail for marker in GCOMM_UNREACHABLE)


def chown_tree(path: Path, user: str | None) -> None:
    if user is None or os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            shutil.chown(os.path.join(root, name), user, user)
    shutil.chown(path, user, user)


class MariadbProcess:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._child: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        return [self.config.binaries.mariadbd, f"--defaults-file={self.config.mycnf}", *extra]

    def pid(self) -> int | None:
        """The pid of *our* mariadbd, or None; a stale pid file or a recycled pid does not count.

        A server this agent started is known by its process handle (its pid file appears only later,
        and after a kill -9 the old file is still there); an adopted one by its pid file.
        """
        if self._child is not None:
            if self._child.poll() is None:
                return self._child.pid
            self._child = None  # reaped: no zombie left behind
        try:
            pid = int(self.config.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if f"--defaults-file={self.config.mycnf}" not in proc.cmdline():
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, bootstrap: bool) -> int:
        extra = ("--wsrep-new-cluster",) if bootstrap else ()
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.log_dir / "mariadbd.out", "ab") as out:
            self._child = subprocess.Popen(
                self.command(*extra), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        return self._child.pid

    def exited_child_status(self) -> int | None:
        """Exit code of the mariadbd this agent started, once it has exited."""
        return None if self._child is None else self._child.poll()

    def stop(self, timeout: float = 120.0) -> bool:
        """Graceful shutdown (SIGTERM: InnoDB flushes, grastate.dat gets the real seqno)."""
        pid = self.pid()
        if pid is None:
            return True
        try:
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            return False
        if self._child is not None:
            self._child.poll()
            self._child = None
        return True

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def wsrep_recover(self) -> Position:
        """Ask InnoDB for the last committed position (grastate.dat says -1 after a crash)."""
        with tempfile.TemporaryDirectory(prefix="wsrep-recover-") as tmp:
            log = Path(tmp) / "recover.log"
            user = self.config.effective_mariadbd_user
            if user:
                shutil.chown(tmp, user, user)
            result = subprocess.run(
                self.command("--wsrep-recover", f"--log-error={log}", "--skip-networking"),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False,
            )
            text = log.read_text(errors="replace") if log.exists() else ""
        matches = RECOVERED_RE.findall(text)
        if not matches:
            detail = (text or result.stderr.decode(errors="replace")).strip().splitlines()[-3:]
            raise PilotError("mariadbd --wsrep-recover found no position: " + " | ".join(detail))
        uuid, seqno = matches[-1]
        return Position(uuid, int(seqno), False, "wsrep-recover")

    def install_db(self) -> None:
        """mariadb-install-db with socket authentication for root (no password to leak)."""
        cmd = [
            self.config.binaries.install_db, f"--defaults-file={self.config.mycnf}", "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ]
        if self.config.effective_mariadbd_user:
            cmd.append(f"--user={self.config.effective_mariadbd_user}")
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip().splitlines()[-5:]
            raise PilotError("mariadb-install-db failed: " + " | ".join(output))

    def create_local_sst_account(self, credentials: Credentials) -> None:
        """Create the SST account in a stopped, never-replicated datadir (bootstrap mode, SQL on stdin)."""
        statements = (
            "FLUSH PRIVILEGES;\n"
            f"CREATE USER IF NOT EXISTS '{credentials.sst_user}'@'%' IDENTIFIED BY '{credentials.sst_password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{credentials.sst_user}'@'%';\n"
            f"CREATE USER IF NOT EXISTS '{credentials.sst_user}'@'localhost' "
            f"IDENTIFIED BY '{credentials.sst_password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{credentials.sst_user}'@'localhost';\n"
        )
        result = subprocess.run(
            self.command("--bootstrap", "--wsrep-on=OFF", "--skip-networking"),
            input=statements.encode(), capture_output=True, timeout=300, check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip().splitlines()[-5:]
            raise PilotError("creating the SST account failed: " + " | ".join(output))

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.05)
        return False
