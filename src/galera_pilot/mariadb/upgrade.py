"""Running `mariadb-upgrade` on the local server after a rolling upgrade restarted it on new binaries.

It is not replicated (`--skip-write-binlog`), so every node runs it on itself. The admin credentials go
through a private option file that exists only while it runs: never in argv, never in the log.
"""

from __future__ import annotations

import subprocess

from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

UPGRADE_TIMEOUT = 1800.0  # s: it checks every table of the mysql schema (and more after a major step)


def run_mariadb_upgrade(config: NodeConfig, credentials: Credentials) -> str:
    """Run it over the node's socket; its last lines on success, PilotError (with them) on failure."""
    options = config.run_dir / "mariadb-upgrade.cnf"
    write_private(options, f"[client]\nuser={credentials.admin_user}\npassword=\"{credentials.admin_password}\"\n"
                           f"socket={config.socket}\n", 0o600)
    try:
        result = subprocess.run([config.binaries.upgrade, f"--defaults-extra-file={options}", "--skip-write-binlog"],
                                capture_output=True, text=True, timeout=UPGRADE_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise PilotError(f"{config.binaries.upgrade} could not run: {error}") from None
    finally:
        options.unlink(missing_ok=True)
    lines = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
    if result.returncode != 0:
        raise PilotError(f"{config.binaries.upgrade} exited {result.returncode}:\n{lines}")
    return lines
