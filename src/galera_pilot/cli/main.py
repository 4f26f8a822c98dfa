"""The `galera-pilot` group. User errors print one clear message and exit 1, never a traceback."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from galera_pilot.cli.addressing import addressing_options, group_addressing
from galera_pilot.errors import PilotError

# Each verb's module is imported only when that verb runs: the agent and the proxy, long-running, carry
# none of the operator verbs' imports (rich, the control plane, the embedded layout) in their memory.
VERBS = {
    "up": "folder", "down": "folder",
    "list": "inspect", "top": "inspect", "history": "inspect", "query": "inspect", "dsn": "inspect",
    "bootstrap": "steer", "switchover": "steer", "maintenance": "steer",
    "agent": "daemons", "proxy": "daemons", "pki": "pki", "tls": "pki",
    "restart": "lifecycle", "upgrade": "lifecycle", "pause": "lifecycle", "resume": "lifecycle",
    "show-config": "settings", "edit-config": "settings", "reload": "settings",
    "remove": "membership", "reinit": "membership",
    "backup": "backup", "restore": "restore", "snapshot": "snapshot",
    "dashboard": "dashboard",
}


class PilotGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = VERBS.get(cmd_name)
        if module is None:
            return None
        commands = importlib.import_module(f"galera_pilot.cli.{module}").COMMANDS
        return next(command for command in commands if command.name == cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PilotError as error:
            click.echo(f"galera-pilot: {error}", err=True)
            sys.exit(1)


@click.group(cls=PilotGroup)
@click.version_option(package_name="galera-pilot")
@addressing_options(with_env=True)
@click.pass_context
def main(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
         cluster: str | None) -> None:
    """Supervise MariaDB Galera clusters: agents per node, a coordination store, one CLI.

    Operator verbs address a cluster by --dir DIR (the folder `up` made), -c FILE (a control, node or
    proxy configuration; or GALERA_PILOT_CONFIG), or --dcs URL --cluster NAME, given before or after
    the verb.
    """
    ctx.obj = group_addressing(ctx, directory, config, dcs, cluster)
