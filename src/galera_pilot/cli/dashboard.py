"""`dashboard`: the web view of a cluster (dashboard/), in the foreground."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from galera_pilot.cli.addressing import addressing_options, target_of

LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])


@click.command()
@addressing_options(with_env=False)
@click.option("--bind", default="127.0.0.1:8080", show_default=True, metavar="ADDRESS:PORT",
              help="where the page is served; not a loopback address: HTTPS and the REST API token")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(0.1, 60.0),
              help="seconds between looks at the cluster while a page is open (2 s otherwise)")
@click.option("--cert", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="HTTPS certificate for a non-loopback --bind (default: the configuration's TLS bundle)")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="its private key")
@click.option("--log-level", default="INFO", show_default=True, type=LEVELS)
@click.pass_context
def dashboard(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
              cluster: str | None, bind: str, interval: float, cert: Path | None, key: Path | None,
              log_level: str) -> None:
    """Serve a live, read-only web page of the cluster: a card per member, the writer, charts of the last
    15 minutes, the history. `up` starts one for its folder (--no-dashboard to not)."""
    from galera_pilot.dashboard.run import serve

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    serve(target_of(ctx, directory, config, dcs, cluster), bind, interval, cert, key)


COMMANDS = (dashboard,)
