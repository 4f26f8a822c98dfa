"""The verbs that look: `list` (and its live view, `list --watch` or `top`), `history`, `query`, `dsn`.
`list`, `query --member` and `dsn` still work while the DCS is unreachable, from what this host knows
(control/members.py)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

import click

from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.output import FORMAT, print_high_water, print_lifecycle, print_rows, print_table
from galera_pilot.control.members import ask_members, outage_heading, rows_from_snapshot
from galera_pilot.control.query import endpoint_urls, run_statement
from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.dcs.history import NOTIFICATION

HISTORY_LINES = 8  # as dashboard/terminal.py's default, without importing the live view for a plain `list`
MIN_INTERVAL = 0.2  # faster is not read by anyone, and every frame is a DCS read (or a REST call per member)


def interval_option(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value < MIN_INTERVAL:
        raise click.BadParameter(f"{value:g}: give at least {MIN_INTERVAL:g} seconds", ctx, param)
    return value


def live_view(target: ClusterTarget, interval: float, history_lines: int) -> None:
    """The live view until Ctrl-C, which is its normal end (exit status 0)."""
    from galera_pilot.dashboard.terminal import watch  # not at import: plain `list` never needs it

    with contextlib.suppress(KeyboardInterrupt):
        watch(target, interval, history_lines)


@click.command(name="list")
@addressing_options(with_env=False)
@FORMAT
@click.option("--watch", "watch", type=float, is_flag=False, flag_value=1.0, default=None, metavar="[SECONDS]",
              callback=interval_option,
              help="redraw the table every SECONDS (default 1), with the latest history, until Ctrl-C (as `top`)")
@click.pass_context
def list_members(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                 cluster: str | None, fmt: str, watch: float | None) -> None:
    """One row per member: state, cluster status and size, UUID, seqno, and what its agent is doing.

    While the DCS is unreachable: what each member's REST API says, at its last known address."""
    if watch is not None and fmt != "table":
        raise click.UsageError(f"--watch draws a table; it does not go with --format {fmt}")
    target = target_of(ctx, directory, config, dcs, cluster)
    if watch is not None:
        live_view(target, watch, HISTORY_LINES)
        return
    try:
        snapshot = target.snapshot()
    except DCSUnreachable as error:
        view = ask_members(target.known)
        heading = outage_heading(target, str(error), view)
        if fmt == "json":
            click.echo(json.dumps({"dcs_unreachable": heading, "members": view.rows}, indent=2))
        else:
            click.echo(heading)
            print_rows(view.rows, fmt)
        if not view.statuses:
            ctx.exit(1)
        return
    print_rows(rows_from_snapshot(target, snapshot), fmt)
    if fmt == "table":
        print_high_water(snapshot)
        print_lifecycle(snapshot)


@click.command()
@addressing_options(with_env=False)
@click.option("--interval", "interval", type=float, default=1.0, show_default=True, metavar="SECONDS",
              callback=interval_option, help="seconds between two frames")
@click.option("--history", "history_lines", type=click.IntRange(min=0), default=HISTORY_LINES, show_default=True,
              metavar="N", help="history lines under the table (Galera's own notifications left out)")
@click.pass_context
def top(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
        interval: float | None, history_lines: int) -> None:
    """`list` redrawn in place until Ctrl-C: the writer starred, changed cells highlighted for a few seconds,
    the latest history underneath. Off a terminal (a pipe, ssh without -t) each frame follows the last.

    While the DCS is unreachable: what the members' REST APIs say, as `list` shows it."""
    assert interval is not None  # it has a default
    live_view(target_of(ctx, directory, config, dcs, cluster), interval, history_lines)


@click.command()
@addressing_options(with_env=False)
@FORMAT
@click.option("--galera", "with_galera", is_flag=True,
              help="also what Galera itself notified (state and view changes, several per restart)")
@click.pass_context
def history(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
            cluster: str | None, fmt: str, with_galera: bool) -> None:
    """Every recorded initialize / bootstrap / join / evict / halt decision, oldest first, with its reason."""
    snapshot = target_of(ctx, directory, config, dcs, cluster).snapshot()
    events = [e for e in snapshot.history if with_galera or e.action != NOTIFICATION]
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in events], indent=2))
        return
    print_table(("time", "member", "action", "reason"),
                [[datetime.fromtimestamp(e.at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], e.member, e.action, e.reason]
                 for e in events])
    print_high_water(snapshot)


@click.command()
@addressing_options(with_env=False)
@click.option("--member", default=None, help="member to run on (default: the first Synced member)")
@click.argument("statement")
@click.pass_context
def query(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
          member: str | None, statement: str) -> None:
    """Run SQL as the cluster's admin user; rows are printed as tab-separated values."""
    for line in run_statement(target_of(ctx, directory, config, dcs, cluster), member, statement):
        click.echo(line)


@click.command()
@addressing_options(with_env=False)
@click.option("--role", type=click.Choice(["writer", "reader"]), default=None,
              help="print only this endpoint's URL (default: both, labelled)")
@click.option("--show-password", is_flag=True, help="put the password into the URL (it is printed on stdout)")
@click.pass_context
def dsn(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
        role: str | None, show_password: bool) -> None:
    """Connection URLs of the writer and reader endpoints (the managed proxy); needs no DCS."""
    target = target_of(ctx, directory, config, dcs, cluster)
    urls = endpoint_urls(target, show_password)
    if role is not None:
        if role not in urls:
            raise click.UsageError(f"no {role} endpoint is known for {target.source}")
        click.echo(urls[role])
        return
    for name, url in urls.items():
        click.echo(f"{name}: {url}")
    if not show_password and target.credentials_file is not None:
        click.echo(f"(password: in {target.credentials_file}; --show-password puts it into the URLs)")
    elif target.credentials_file is None:
        click.echo("(USER: the cluster's admin user or an application account; no credentials file is known here)")


COMMANDS = (list_members, top, history, query, dsn)
