"""Running `mariadb-upgrade` on the local server after a rolling upgrade restarted it on new binaries.

It is not replicated (`--skip-write-binlog`), so every node runs it on itself. The admin credentials go
through a private option file that exists only while it runs: never in argv, never in the log.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable

from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

UPGRADE_TIMEOUT = 600.0  # s: it checks the tables of the system schemas (seconds here; more on big ones)
HEARTBEAT = 1.0  # s between the caller's heartbeats while it runs (the member record must not expire)


def run_mariadb_upgrade(config: NodeConfig, credentials: Credentials, heartbeat: Callable[[], None]) -> str:
    """Run it over the node's socket, calling `heartbeat` every HEARTBEAT s; its last lines on success,
    PilotError (with them) on failure or after UPGRADE_TIMEOUT."""
    options = config.run_dir / "mariadb-upgrade.cnf"
    write_private(options, f"[client]\nuser={credentials.admin_user}\npassword=\"{credentials.admin_password}\"\n"
                           f"socket={config.socket}\n", 0o600)
    command = [config.binaries.upgrade, f"--defaults-extra-file={options}", "--skip-write-binlog"]
    with tempfile.TemporaryFile(mode="w+") as output:
        try:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
        except OSError as error:
            options.unlink(missing_ok=True)
            raise PilotError(f"{config.binaries.upgrade} could not run: {error}") from None
        deadline = time.monotonic() + UPGRADE_TIMEOUT
        try:
            while True:
                try:
                    code = process.wait(HEARTBEAT)
                    break
                except subprocess.TimeoutExpired:
                    heartbeat()
                    if time.monotonic() >= deadline:
                        process.kill()
                        process.wait()
                        raise PilotError(f"{config.binaries.upgrade} did not finish within {UPGRADE_TIMEOUT:.0f} s") \
                            from None
        finally:
            options.unlink(missing_ok=True)
        output.seek(0)
        lines = "\n".join(output.read().strip().splitlines()[-8:])
    if code != 0:
        raise PilotError(f"{config.binaries.upgrade} exited {code}:\n{lines}")
    return lines
