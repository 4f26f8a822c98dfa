"""The `galera-pilot` group. User errors print one clear message and exit 1, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from galera_pilot.cli import daemons, folder, inspect, steer
from galera_pilot.cli.addressing import addressing_options, group_addressing
from galera_pilot.errors import PilotError


class PilotGroup(click.Group):
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


for module in (folder, inspect, steer, daemons):
    for command in module.COMMANDS:
        main.add_command(command)
