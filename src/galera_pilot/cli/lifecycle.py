"""The lifecycle verbs: `restart` (a rolling restart), `pause` and `resume`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import click

from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.control.pause import pause_cluster, resume_cluster
from galera_pilot.control.settings import pending_members
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.lifecycle.driver import RollDriver, RollOptions


def scheduled_moment(text: str, now: datetime) -> datetime:
    """`--scheduled`: an ISO date and time, or HH:MM (today, or tomorrow when that has passed)."""
    try:
        if len(text) <= 5 and ":" in text:
            hours, minutes = (int(part) for part in text.split(":"))
            moment = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
            return moment if moment > now else moment + timedelta(days=1)
        return datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither HH:MM nor an ISO date and time (2026-12-24T03:00)",
                                 param_hint="--scheduled") from None


def roll_options(function: Callable[..., None]) -> Callable[..., None]:
    """The options `restart` and `upgrade` share."""
    for option in reversed((
        click.argument("members", nargs=-1),
        click.option("--resume", is_flag=True, help="continue the interrupted or halted roll"),
        click.option("--abort", is_flag=True, help="end the recorded roll where it is"),
        click.option("--scheduled", default=None, metavar="TIME",
                     help="start at TIME (HH:MM, or an ISO date and time)"),
        click.option("--ready-timeout", default=120.0, show_default=True,
                     help="seconds to wait for the cluster to be calm before each node"),
        click.option("--restart-timeout", default=900.0, show_default=True,
                     help="seconds one node may take to be Synced again"),
        click.option("--yes", is_flag=True, help="do not ask for confirmation"),
    )):
        function = option(function)
    return addressing_options(with_env=False)(function)


def run_roll(ctx: click.Context, target_args: tuple, members: tuple[str, ...], resume: bool, abort: bool,
             scheduled: str | None, yes: bool, options: RollOptions, pending: bool = False) -> None:
    verb = "upgrade" if options.upgrade else "restart"
    if resume and abort:
        raise click.UsageError("--resume and --abort exclude each other")
    if (resume or abort) and (members or pending):
        raise click.UsageError("--resume and --abort take no MEMBERS: they work on the recorded roll")
    if pending and members:
        raise click.UsageError("--pending chooses the members itself; give either MEMBERS or --pending")
    target = target_of(ctx, *target_args)

    def roll(store: DCS) -> str:
        driver = RollDriver(store, click.echo, options)
        if abort:
            return driver.abort()
        if resume:
            return driver.run(driver.resume())
        snapshot = store.snapshot()
        if pending:
            driver.options = replace(options, members=pending_members(snapshot))
            if not driver.options.members:
                return "no member has settings pending a restart; nothing to do"
        order = driver.plan(snapshot)
        click.echo(f"rolling {verb} of {', '.join(order)} (in this order; the writer goes last, whoever it is then)")
        if not yes and not click.confirm("go on?"):
            raise PilotError(f"nothing was {verb}ed")
        if scheduled is not None:
            moment = scheduled_moment(scheduled, datetime.now())
            click.echo(f"waiting until {moment:%Y-%m-%d %H:%M:%S} to start")
            time.sleep(max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds()))
        return driver.run(driver.start(order))

    click.echo(changing(target, verb, roll))


@click.command()
@roll_options
@click.option("--allow-sst", is_flag=True, help="restart a node even if its rejoin needs a full state transfer")
@click.option("--pending", is_flag=True, help="restart only the members whose settings wait for a restart")
@click.pass_context
def restart(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
            members: tuple[str, ...], resume: bool, abort: bool, allow_sst: bool, pending: bool,
            scheduled: str | None, ready_timeout: float, restart_timeout: float, yes: bool) -> None:
    """Restart MEMBERS' mariadbd (default: every member) one at a time, the writer last after a switchover
    to a node already restarted; each node is drained first and serves again once Synced."""
    run_roll(ctx, (directory, config, dcs, cluster), members, resume, abort, scheduled, yes,
             RollOptions(members=members, allow_sst=allow_sst, ready_timeout=ready_timeout,
                         restart_timeout=restart_timeout), pending)


@click.command()
@roll_options
@click.pass_context
def upgrade(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
            members: tuple[str, ...], resume: bool, abort: bool, scheduled: str | None, ready_timeout: float,
            restart_timeout: float, yes: bool) -> None:
    """After new MariaDB packages are installed on every host: a rolling restart onto them, one major step
    at a time, every node rejoining by IST, then mariadb-upgrade on each node (it is not replicated)."""
    run_roll(ctx, (directory, config, dcs, cluster), members, resume, abort, scheduled, yes,
             RollOptions(members=members, ready_timeout=ready_timeout, restart_timeout=restart_timeout, upgrade=True))


@click.command()
@addressing_options(with_env=False)
@click.option("--timeout", default=10.0, show_default=True, help="seconds to wait for every agent to confirm")
@click.pass_context
def pause(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
          timeout: float) -> None:
    """Stop every agent from acting (no start, stop, bootstrap, join or writer change) while a person works
    by hand; they keep reporting and their REST checks keep answering."""
    target = target_of(ctx, directory, config, dcs, cluster)
    click.echo(changing(target, "pause", lambda store: pause_cluster(store, timeout, click.echo)))


@click.command()
@addressing_options(with_env=False)
@click.option("--wait", is_flag=True, help="wait until every agent has seen the resume")
@click.option("--timeout", default=10.0, show_default=True, help="seconds --wait waits")
@click.pass_context
def resume(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           wait: bool, timeout: float) -> None:
    """End a pause: the agents act again."""
    target = target_of(ctx, directory, config, dcs, cluster)
    click.echo(changing(target, "resume", lambda store: resume_cluster(store, wait, timeout)))


COMMANDS = (restart, upgrade, pause, resume)
