"""The web dashboard of a cluster folder: its process (`galera-pilot dashboard --dir DIR`), the bind it
was given (DIR/dashboard/bind, so a later `up` keeps it), and its stop at `down`.

`up` starts it after the cluster serves; a bind already taken is a warning, never a failed `up`: the
cluster is what the user asked for, the page is a convenience (and two folders on one machine would
otherwise fight over 127.0.0.1:8080).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from galera_pilot.embedded.processes import bind_refusal, running_pid
from galera_pilot.errors import PilotError
from galera_pilot.mariadb.process import tail
from galera_pilot.proxy.haproxy_config import is_loopback, parse_bind

DASHBOARD_DIR = "dashboard"
DEFAULT_BIND = "127.0.0.1:8080"


class EmbeddedDashboard:
    def __init__(self, cluster_dir: Path) -> None:
        self.cluster_dir = cluster_dir

    @property
    def run_dir(self) -> Path:
        return self.cluster_dir / DASHBOARD_DIR

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "dashboard.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dashboard.log"

    def bind(self, given: str | None = None) -> str:
        """The given bind, else the one remembered, else 127.0.0.1:8080."""
        if given:
            return given
        with contextlib.suppress(OSError):
            remembered = (self.run_dir / "bind").read_text().strip()
            if remembered:
                return remembered
        return DEFAULT_BIND

    def pid(self) -> int | None:
        return running_pid(self.pid_file, str(self.cluster_dir))

    def url(self, bind: str) -> str:
        host, port = parse_bind(bind)
        return f"http://{host}:{port}/" if is_loopback(host) else f"https://{host or 'HOST'}:{port}/"

    def start(self, bind: str, timeout: float = 15.0) -> str:
        """Start it on `bind` (remembered) and wait until the page answers; its URL. A PilotError says why
        it could not (the bind is taken, or the process died: the last lines of its log)."""
        try:
            host, port = parse_bind(bind, "--dashboard-bind")
        except ValueError as error:
            raise PilotError(str(error)) from None
        refused = bind_refusal(host, port)
        if refused is not None:
            raise PilotError(f"{host or '*'}:{port} cannot be used: {refused}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "bind").write_text(f"{bind}\n")
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "galera_pilot", "dashboard", "--dir", str(self.cluster_dir), "--bind", bind],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        url = self.url(bind)
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PilotError(f"it exited; last lines of {self.log_file}:\n{tail(self.log_file, 6)}")
            if not is_loopback(host):  # HTTPS with the API token: it refuses to start without them
                if time.monotonic() > started + 2.0:
                    return url
                time.sleep(0.1)
                continue
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "api/state", timeout=1.0) as answer:
                if answer.status == 200:
                    return url
            time.sleep(0.1)
        return url  # it runs; a slow first answer is not a failure

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM it and wait; whether it was running."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
                break
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True
