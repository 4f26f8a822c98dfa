"""Package updates as far as every check can tell (Debian's binaries wrapped to report another version), and
an agent replaced while its mariadbd keeps running: what the upgrade and automatic-update tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for


def respawn_agent(directory: Path, node: str) -> None:
    """SIGKILL the node's agent (mariadbd keeps running) and start a new one, which adopts it."""
    handle = EmbeddedCluster(directory).node(node)
    pid = handle.agent_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 10, f"{node}'s agent to die")
    with open(handle.config.agent_log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "galera_pilot", "agent", str(handle.config_path)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    handle.agent_pid_file.write_text(f"{proc.pid}\n")


REAL_VERSION = subprocess.run(["/usr/sbin/mariadbd", "--no-defaults", "--version"], capture_output=True,
                              text=True, check=True).stdout.split("Ver ")[1].split()[0]
NEW_VERSION = "10.11.99-MariaDB-test"


def wrap_binaries(directory: Path, node: str, version: str) -> None:
    """The node's mariadbd becomes Debian's, wrapped to report `version` (MariaDB's `version` option sets
    what the server and `mariadbd --version` say): a package update, as far as every check can tell. The
    wrapper is rewritten each time, as a package replaces its binary. mariadb-upgrade is wrapped to accept
    a server whose version is not its own, and to run although its own version is the one it recorded
    last (`--force`; a real update brings a new mariadb-upgrade, which runs because its version is new)."""
    folder = directory / "wrapped" / node
    folder.mkdir(parents=True, exist_ok=True)
    server, upgrade = folder / "mariadbd", folder / "mariadb-upgrade"
    server.write_text(f'#!/bin/bash\nexec /usr/sbin/mariadbd "$1" --version={version} "${{@:2}}"\n')
    upgrade.write_text('#!/bin/bash\nexec /usr/bin/mariadb-upgrade "$1" --skip-version-check --force "${@:2}"\n')
    for path in (server, upgrade):
        path.chmod(0o755)
    path = EmbeddedCluster(directory).node(node).config_path
    config = yaml.safe_load(path.read_text())
    binaries = config.setdefault("binaries", {})
    if binaries.get("mariadbd") != str(server):
        binaries.update(mariadbd=str(server), upgrade=str(upgrade))
        path.write_text(yaml.safe_dump(config))
        respawn_agent(directory, node)  # it adopts the running server, and knows the wrapped binaries now
