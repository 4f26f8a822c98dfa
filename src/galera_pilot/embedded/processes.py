"""Processes of the one-machine layout: is the process behind a pid file ours, who holds a port, and the
checks `up` makes before it starts anything (binaries, state transfer tools, free ports)."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import psutil

from galera_pilot.config import NodeConfig
from galera_pilot.errors import PilotError

SST_TOOLS: dict[str, tuple[str, ...]] = {
    "mariabackup": ("mariabackup", "socat"),
    "rsync": ("rsync",),
    "mysqldump": ("mysqldump", "mysql"),
}

# A process that has just exec'd shows an empty /proc/PID/cmdline for a moment: the parent's Popen returns
# when exec closes the close-on-exec pipe, before the kernel has set the new argument pages up (measured:
# 5 of 200 fresh children here). An empty command line is asked again for this long before it counts.
CMDLINE_SETTLE = 0.2


def running_pid(pid_file: Path, argument: str) -> int | None:
    """The pid in pid_file if that process runs with `argument` on its command line (pids are reused)."""
    try:
        pid = int(pid_file.read_text().strip())
        proc = psutil.Process(pid)
        deadline = time.monotonic() + CMDLINE_SETTLE
        while True:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = proc.cmdline()
            if cmdline or time.monotonic() > deadline:
                return pid if argument in cmdline else None
            time.sleep(0.005)
    except (OSError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return None



def check_binaries(config: NodeConfig) -> None:
    required = {
        "binaries.mariadbd": config.binaries.mariadbd,
        "binaries.install_db": config.binaries.install_db,
        "binaries.galera_provider": config.binaries.galera_provider,
    }
    for field, path in required.items():
        if not Path(path).exists():
            raise PilotError(f"{config.name}: {path} ({field}) not found; install Debian's mariadb-server and "
                             f"galera-4 (apt-get install mariadb-server galera-4) or set {field}")
    for tool in SST_TOOLS[config.sst_method]:
        if shutil.which(tool) is None:
            raise PilotError(f"{config.name}: sst_method {config.sst_method} needs {tool!r}, which is not "
                             "installed (apt-get install mariadb-backup socat rsync mariadb-client)")


def check_ports(config: NodeConfig, labels: tuple[str, ...] = ("client", "galera", "ist", "sst", "api")) -> None:
    """Every port in `labels` is free on the node's address (an arbitrator's garbd binds only galera)."""
    for label in labels:
        port = int(getattr(config.ports, label))
        refused = bind_refusal(config.address, port)
        if refused is not None:
            raise PilotError(f"{config.name}: {config.address}:{port} ({label} port) cannot be used: {refused}")


def bind_refusal(address: str, port: int) -> str | None:
    """Why `address:port` cannot be bound now ("" = every address), with its holder when we can see it;
    None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            return f"{error.strerror}{port_owner(address or '0.0.0.0', port)}"
    return None


def port_owner(address: str, port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.laddr and conn.laddr.port == port and conn.laddr.ip in (address, "0.0.0.0", "::")
                    and conn.status == psutil.CONN_LISTEN and conn.pid):
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


