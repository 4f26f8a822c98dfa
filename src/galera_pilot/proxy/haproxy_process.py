"""A thin adapter around the `haproxy` binary: validate, start, reload, stop, and adopt a running one.

HAProxy runs in master-worker mode in the foreground (`haproxy -W -db`), in its own session: the master
re-executes itself on SIGUSR2, reads the configuration again, forks a new worker that takes over the
listening sockets, and leaves the old worker to finish the connections it already has. That is what
lets a membership change reach HAProxy without dropping a single established database session.

HAProxy outlives the process that started it (own session, pid file in the run dir): a restarted proxy
manager adopts the running master through its pid file instead of starting a new one, so restarting
galera-pilot never cuts client connections. Only `stop()` does.

Every configuration is checked with `haproxy -c` before it replaces the running one: a configuration
HAProxy refuses never reaches the running master, which keeps serving with the previous one.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from galera_pilot.errors import PilotError
from galera_pilot.files import write_private
from galera_pilot.proxy.haproxy_config import PID_FILE, SERVER_STATE_FILE, parse_bind
from galera_pilot.proxy.server_state import render_server_state

MASTER_SOCKET = "master.sock"
LOG_FILE = "haproxy.log"
START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
BIND_RE = re.compile(r"^\s*bind\s+(\S+)", re.MULTILINE)
MASTER_RE = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.MULTILINE)
WORKER_RE = re.compile(r"^(\d+)\s+worker\b")
SESSION_RE = re.compile(r"^(0x[0-9a-f]+): proto=\S+ src=\S+ fe=\S+ be=(\S+) srv=(\S+)")


class ConfigRefused(PilotError):
    """HAProxy itself refused a configuration (haproxy -c, or the reloaded master): trying the same text
    again gives the same answer. Other reload failures (a timeout, a master that does not answer) pass."""


@dataclass(frozen=True)
class ProcState:
    """The master CLI's `show proc`: reload attempts, failed reloads, current and old workers.

    Old workers are the ones a reload replaced that still serve connections opened before it.
    """

    reloads: int
    failed: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...] = ()


def _alerts(output: str) -> str:
    """HAProxy's own error lines; all of the output when it printed none (a crash, a missing library)."""
    lines = [line.strip() for line in output.splitlines() if "[ALERT]" in line]
    return "\n".join(lines) if lines else output.strip()[-2000:]


def _listen_addresses(text: str) -> list[tuple[str, int]]:
    """The (host, port) of every `bind` line: what must be listening once HAProxy runs this text."""
    found = []
    for value in BIND_RE.findall(text):
        with contextlib.suppress(ValueError):  # a unix socket or other bind we do not probe
            found.append(parse_bind(value))
    return found


def _describe_binds(binds: list[tuple[str, int]]) -> str:
    return ", ".join(f"{host or '*'}:{port}" for host, port in binds)


def _resolve(host: str) -> str | None:
    if not host:
        return None
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


class HaproxyProcess:
    """One HAProxy master (and its workers) running `config_path`, with its sockets in `run_dir`.

    The pid file and the admin socket are named by the rendered configuration (`haproxy_config`); the
    master CLI socket (`-S`) and HAProxy's stderr log (`haproxy.log`) are added here.
    """

    def __init__(self, config_path: Path, run_dir: Path, binary: str = "haproxy") -> None:
        self.config_path = Path(config_path).absolute()
        self.run_dir = Path(run_dir).absolute()
        self.binary = binary
        self.pid_file = self.run_dir / PID_FILE
        self.server_state_file = self.run_dir / SERVER_STATE_FILE
        self.master_socket = self.run_dir / MASTER_SOCKET
        self.log_file = self.run_dir / LOG_FILE
        self._child: subprocess.Popen[bytes] | None = None

    # ---- the binary ----------------------------------------------------------------------------------
    def executable(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise PilotError(f"{self.binary} not found: install Debian's haproxy package (scripts/setup.sh does)")
        return found

    def command(self) -> list[str]:
        """The master's command line; the pid file comes from the configuration's `pidfile`."""
        return [self.executable(), "-W", "-db", "-f", str(self.config_path), "-S", f"{self.master_socket},mode,600"]

    # ---- validation and files ------------------------------------------------------------------------
    def validate(self, text: str) -> None:
        """Run `haproxy -c` on text; raise PilotError with HAProxy's own error lines if it refuses it."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".candidate-", suffix=".cfg", dir=self.config_path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            try:
                result = subprocess.run([self.executable(), "-c", "-f", name], capture_output=True, text=True,
                                        timeout=60, check=False)
            except subprocess.TimeoutExpired:
                raise PilotError("haproxy -c did not finish within 60 s") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(name, "<candidate config>")
            raise ConfigRefused(f"haproxy refused the configuration:\n{_alerts(output)}")

    def _write_config(self, text: str) -> None:
        """Replace the configuration file atomically (0644): HAProxy re-reads it on every reload, and a
        half-written file must never be what a reload or a restart finds."""
        write_private(self.config_path, text, 0o644)

    def _write_server_state(self, text: str, live_dump: str | None) -> None:
        """The state the next worker starts its servers in (see proxy/server_state.py)."""
        write_private(self.server_state_file, render_server_state(text, live_dump), 0o644)

    def _live_server_state(self, workers: tuple[int, ...]) -> str | None:
        """The current worker's `show servers state`; None when it does not answer (all start DOWN)."""
        if not workers:
            return None
        try:
            return self.cli("show servers state", process=workers[-1])
        except PilotError:
            return None

    def _log_offset(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read(256 * 1024).decode(errors="replace")
        except OSError:
            return ""

    # ---- the running master --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The master's pid: our own child, or the haproxy named by the pid file that runs our config.

        A stale pid file (HAProxy does not remove it) or a recycled pid does not count: the process
        must be alive, not a zombie, and have `-f <config_path>` on its command line.
        """
        if self._child is not None:
            if self._child.poll() is None:
                return self._child.pid
            self._child = None  # reaped: no zombie left behind
        try:
            pid = int(self.pid_file.read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = proc.cmdline()
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        if not cmdline or "haproxy" not in os.path.basename(cmdline[0]):
            return None
        if str(self.config_path) not in cmdline or "-W" not in cmdline:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def _alive(self, pid: int) -> bool:
        """Is this known master still there? Unlike `pid`, it does not go through the pid file, which
        a re-executing master may be rewriting at that very moment."""
        if self._child is not None and self._child.pid == pid:
            return self._child.poll() is None
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def cli(self, command: str, process: int | None = None, timeout: float = 2.0) -> str:
        """One command on the master CLI, or on one of its processes (`@!<pid>`, old workers too)."""
        line = f"@!{process} {command}" if process is not None else command
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.master_socket))
                sock.sendall(line.encode() + b"\n")
                sock.shutdown(socket.SHUT_WR)  # the CLI answers, then closes once our side is done
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            raise PilotError(f"haproxy's master CLI {self.master_socket} did not answer {line!r}: {error}") from None
        return b"".join(chunks).decode(errors="replace")

    def show_proc(self, timeout: float = 2.0) -> ProcState | None:
        """Ask the master CLI; None while it does not answer (for instance during a re-exec)."""
        try:
            text = self.cli("show proc", timeout=timeout)
        except PilotError:
            return None
        master = MASTER_RE.search(text)
        if master is None:
            return None
        sections: dict[str, list[int]] = {"workers": [], "old workers": []}
        section = ""
        for line in text.splitlines():
            if line.startswith("#"):
                section = line.strip("# ").lower()
                continue
            match = WORKER_RE.match(line)
            if match and section in sections:
                sections[section].append(int(match.group(1)))
        return ProcState(int(master.group(2)), int(master.group(3)), tuple(sections["workers"]),
                         tuple(sections["old workers"]))

    def down_servers(self, worker: int) -> set[tuple[str, str]]:
        """(backend, server) pairs the worker's health checks currently hold DOWN."""
        text = self.cli("show stat -1 4 -1", process=worker)
        lines = text.splitlines()
        if not lines or not lines[0].startswith("# "):
            raise PilotError(f"unexpected answer to show stat from haproxy worker {worker}: {text[:200]!r}")
        header = lines[0][2:].split(",")
        column = header.index("status")
        down = set()
        for row in csv.reader(lines[1:]):
            if len(row) > column and row[column].startswith("DOWN"):
                down.add((row[0], row[1]))
        return down

    def sessions(self, worker: int) -> list[tuple[str, str, str]]:
        """The client sessions one worker serves, as (session id, backend, server)."""
        found = []
        for line in self.cli("show sess", process=worker).splitlines():
            match = SESSION_RE.match(line)
            if match:
                found.append((match.group(1), match.group(2), match.group(3)))
        return found

    def cut_stale_sessions(self) -> list[str]:
        """Close sessions that old workers hold to servers the current worker sees DOWN.

        A worker replaced by a reload keeps serving the sessions it has, but it no longer runs health
        checks, so `on-marked-down shutdown-sessions` never fires in it: without this, a client that
        connected to the writer before a reload would stay on that node after the writer moved. The
        current worker's health is the truth; its DOWN servers are applied to the old workers'
        sessions the way `shutdown-sessions` would have (`shutdown session` per session, since
        `shutdown sessions server` is refused on a stopping proxy). Returns "backend/server" for every
        session closed.
        """
        state = self.show_proc()
        if state is None or not state.old_workers or not state.workers:
            return []
        down: set[tuple[str, str]] = set()
        for worker in state.workers:
            down |= self.down_servers(worker)
        closed = []
        for old in state.old_workers:
            for session, backend, server in self.sessions(old):
                if (backend, server) in down:
                    self.cli(f"shutdown session {session}", process=old)
                    closed.append(f"{backend}/{server}")
        return closed

    def _listening(self, pids: list[int], binds: list[tuple[str, int]]) -> bool:
        """True when every bind has a LISTEN socket owned by one of pids (the workers serve them)."""
        found: set[tuple[str, int]] = set()
        for pid in pids:
            try:
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr:
                        found.add((conn.laddr.ip, conn.laddr.port))
            except psutil.Error:
                continue
        for host, port in binds:
            wanted = {"0.0.0.0", "::"} if not host else {host, _resolve(host)}
            if not any(ip in wanted and p == port for ip, p in found):
                return False
        return True

    @staticmethod
    def _taken(binds: list[tuple[str, int]]) -> list[str]:
        """Binds some process already listens on, with that process when we can see it.

        HAProxy binds with SO_REUSEPORT, so a second HAProxy (a stray one from an earlier run, say) on
        the same address does not make it fail: both would accept, and clients would be spread over
        two different configurations. So a start checks for a listener first, whoever it is.
        """
        taken = []
        try:
            listeners = [(c.laddr, c.pid) for c in psutil.net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN and isinstance(c.laddr, tuple) and len(c.laddr) == 2]
        except psutil.Error:
            return []
        for host, port in binds:
            wanted = {"0.0.0.0", "::", host, _resolve(host)} if host else None
            for (ip, listening_port), pid in listeners:
                if listening_port == port and (wanted is None or ip in wanted):
                    owner = ""
                    if pid:
                        with contextlib.suppress(psutil.Error):
                            owner = f" by pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:200]})"
                    taken.append(f"{ip}:{port} is already in use{owner}")
                    break
        return taken

    # ---- start, reload, stop -------------------------------------------------------------------------
    def start(self, text: str, timeout: float = START_TIMEOUT) -> int:
        """Validate text, write it, start the master and return once its worker listens on every bind.

        A bind that fails (the port is taken, the address is not local) makes HAProxy exit; the error
        raised then carries HAProxy's own lines, e.g. "cannot bind socket (Address already in use)".
        """
        running = self.pid
        if running is not None:
            raise PilotError(f"haproxy is already running (pid {running}) with {self.config_path}; reload it")
        self.validate(text)
        binds = _listen_addresses(text)
        taken = self._taken(binds)
        if taken:
            raise PilotError(f"cannot start haproxy: {'; '.join(taken)}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(text)
        self._write_server_state(text, None)
        offset = self._log_offset()
        with self.log_file.open("ab") as out:
            child = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True)
        self._child = child
        deadline = time.monotonic() + timeout
        while True:
            code = child.poll()
            if code is not None:
                self._child = None
                raise PilotError(f"haproxy exited with code {code} while starting (log {self.log_file}):\n"
                                 f"{_alerts(self._log_since(offset))}")
            state = self.show_proc()
            if state is not None and state.workers and self._listening(list(state.workers), binds):
                return child.pid
            if time.monotonic() > deadline:
                self.stop()
                raise PilotError(f"haproxy did not listen on {_describe_binds(binds)} within"
                                 f" {timeout:.0f} s (log {self.log_file}):\n{_alerts(self._log_since(offset))}")
            time.sleep(0.05)

    def reload(self, text: str, timeout: float = RELOAD_TIMEOUT) -> None:
        """Validate text; if HAProxy accepts it, write it and reload the master (SIGUSR2).

        The master re-executes itself with the new file and forks a new worker that inherits the
        listening sockets; the old worker stops accepting but serves its established connections until
        they end. An invalid text raises before anything changes. A reload that fails anyway (a new
        bind that cannot be opened) leaves the old worker serving; the previous file is put back so
        that the file on disk is always what runs.
        """
        self.validate(text)
        pid = self.pid
        if pid is None:
            raise PilotError(f"haproxy is not running with {self.config_path}; start it first")
        before = self._wait_for_state(min(timeout, 5.0))
        if before is None:
            raise PilotError(f"haproxy's master CLI {self.master_socket} does not answer; not reloading")
        try:
            previous: str | None = self.config_path.read_text()
        except OSError:
            previous = None
        binds = _listen_addresses(text)
        offset = self._log_offset()
        self._write_config(text)
        self._write_server_state(text, self._live_server_state(before.workers))
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if not self._alive(pid):
                raise PilotError(f"haproxy exited during the reload (log {self.log_file}):\n"
                                 f"{_alerts(self._log_since(offset))}")
            state = self.show_proc()
            if state is None:
                continue  # the master is re-executing
            if state.failed > before.failed:
                if previous is not None:
                    self._write_config(previous)
                raise ConfigRefused("haproxy could not load the new configuration and keeps serving with the old "
                                 f"one:\n{_alerts(self._log_since(offset))}")
            new_workers = [w for w in state.workers if w not in before.workers]
            if new_workers and self._listening(new_workers, binds):
                return
        raise PilotError(f"haproxy did not finish reloading within {timeout:.0f} s (log {self.log_file}):\n"
                         f"{_alerts(self._log_since(offset))}")

    def _wait_for_state(self, timeout: float) -> ProcState | None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.show_proc()
            if state is not None or time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the master and every worker, old ones included (SIGTERM, then SIGKILL after timeout).

        This is a hard stop: open client connections are closed. It is meant for shutting the proxy
        down, not for configuration changes (those reload).
        """
        pid = self.pid
        if pid is not None:
            try:
                master = psutil.Process(pid)
                procs = [master, *master.children(recursive=True)]
                master.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                procs = []
            _gone, alive = psutil.wait_procs(procs, timeout=timeout)
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(alive, timeout=5)
            with contextlib.suppress(OSError, ValueError):
                if int(self.pid_file.read_text().split()[0]) == pid:
                    self.pid_file.unlink()
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=1)
            self._child = None
