"""The long-running processes: `agent` (one node's supervisor) and `proxy` (the managed HAProxy)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--log-level", default="INFO", show_default=True, type=LEVELS)
def agent(config: Path, log_level: str) -> None:
    """Run one node's agent in the foreground (what `up` spawns and systemd runs)."""
    from galera_pilot.agent.removal import EXIT_REMOVED, MemberRemoved
    from galera_pilot.agent.run import run_agent

    _logging(log_level)
    try:
        run_agent(config)
    except MemberRemoved as removed:  # not a failure: systemd's RestartPreventExitStatus keeps it stopped
        click.echo(f"galera-pilot: {removed}", err=True)
        sys.exit(EXIT_REMOVED)


@click.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="the proxy configuration (docs/proxy.md)")
@click.option("--log-level", default="INFO", show_default=True, type=LEVELS)
def proxy(config_path: Path, log_level: str) -> None:
    """Run the managed HAProxy in the foreground: writer and reader endpoints, membership from the DCS."""
    from galera_pilot.proxy.manager import run_proxy

    _logging(log_level)
    run_proxy(config_path)


COMMANDS = (agent, proxy)
