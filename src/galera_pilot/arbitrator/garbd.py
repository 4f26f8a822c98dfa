"""Running garbd: its command line (pure) and the process, which outlives an agent killed without a
goodbye and is adopted by the next one (the pid file, checked against the process table).

garbd runs in the foreground as the agent's child, in a session of its own (a signal to the agent's
process group does not reach it), writing its log to `log/garbd.log`. Its work dir `garbd/` holds
gvwstate.dat: started with it, garbd keeps its gcomm identity and takes part in pc.recovery; without
it (a new host, a deleted folder) it joins as a new member, which is harmless: it holds no data.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from galera_pilot.config import NodeConfig
from galera_pilot.tls.bundle import bundle_files

STOP_TIMEOUT = 15.0  # s: garbd leaves the group in well under a second when it can reach it


def garbd_options(config: NodeConfig) -> str:
    """Provider options: bind its own address, vote with its weight, speak what the data nodes speak."""
    options = {
        "gmcast.listen_addr": f"tcp://{config.address}:{config.ports.galera}",
        "pc.recovery": "TRUE",
        "pc.weight": str(config.arbitrator.weight),
    }
    if config.tls.enabled:
        ca, cert, key = bundle_files(config.tls_bundle)
        options |= {"socket.ssl_cert": str(cert), "socket.ssl_key": str(key), "socket.ssl_ca": str(ca)}
        if config.tls.migrating:
            options["socket.dynamic"] = "true"
    return ";".join(f"{k}={v}" for k, v in options.items())


def work_dir(config: NodeConfig) -> Path:
    return config.base_dir / "garbd"


def log_file(config: NodeConfig) -> Path:
    return config.log_dir / "garbd.log"


def garbd_command(config: NodeConfig, peers: Sequence[str]) -> list[str]:
    """`peers` are host:port gcomm addresses of running members (garbd can only join, never start a group)."""
    if not peers:
        raise ValueError("garbd needs at least one running member to join")
    return [config.arbitrator.garbd, "--address", "gcomm://" + ",".join(peers), "--group", config.cluster_name,
            "--name", config.name, "--workdir", str(work_dir(config)), "--log", str(log_file(config)),
            "--options", garbd_options(config)]


class GarbdProcess:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.pid_file = config.run_dir / "garbd.pid"
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        if self._child is not None:
            if self._child.poll() is None:
                return self._child.pid
            self._child = None  # reaped: never a zombie taken for a live garbd
            self.pid_file.unlink(missing_ok=True)
            return None
        try:
            pid = int(self.pid_file.read_text().strip())
            process = psutil.Process(pid)
            cmdline = process.cmdline()
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except (FileNotFoundError, ValueError, psutil.Error):
            return None
        # The pid may have been reused since: only our garbd, by its work dir.
        return pid if str(work_dir(self.config)) in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, peers: Sequence[str]) -> int:
        command = garbd_command(self.config, peers)
        work = work_dir(self.config)
        work.mkdir(parents=True, exist_ok=True)
        os.chmod(work, 0o700)
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        with open(log_file(self.config), "ab") as out:  # what garbd prints before its log is open
            self._child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True, close_fds=True, cwd=work)
        self.pid_file.write_text(f"{self._child.pid}\n")
        return self._child.pid

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM (garbd leaves the group gracefully: the quorum base shrinks), SIGKILL after `timeout`.
        True when it stopped within the timeout."""
        pid = self.pid()
        if pid is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(5.0)
                self.pid_file.unlink(missing_ok=True)
                return False
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
