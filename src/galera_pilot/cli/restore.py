"""`restore`: the whole cluster back to a backup set, or to a point in time (control/restore.py does the
work; this parses, confirms and prints)."""

from __future__ import annotations

import datetime
import os
import socket
import sys
from pathlib import Path

import click

from galera_pilot.backup.request import FAILED
from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.control import backup as backups
from galera_pilot.control import restore as operations
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError


@click.command()
@addressing_options(with_env=False)
@click.option("--backup", "backup_id", help="the set to restore (`backup list`): a full backup, or an "
              "incremental with its chain")
@click.option("--to-time", "to_time", default=None, help="point-in-time recovery: every transaction committed at "
              "or before this time (ISO 8601, e.g. '2026-12-03 15:30:00'; UTC unless it names a zone), from the "
              "archived binlogs (backup.binlogs.archive)")
@click.option("--to-gtid", "to_gtid", default=None, help="point-in-time recovery: every transaction up to and "
              "including this GTID of the cluster's domain (e.g. 1-1-420)")
@click.option("--member", default=None, help="the member that restores it and starts the new cluster (default: "
              "the first live member by name)")
@click.option("--dry-run", is_flag=True, help="print the plan and change nothing")
@click.option("--yes", is_flag=True, help="restore even though the cluster serves clients now (they are cut off)")
@click.option("--abort", "abort_it", is_flag=True, help="withdraw a restore that is still stopping the members")
@click.option("--no-base-backup", is_flag=True, help="do not take a new full backup once the cluster is restored")
@click.pass_context
def restore(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
            backup_id: str | None, to_time: str | None, to_gtid: str | None, member: str | None, dry_run: bool,
            yes: bool, abort_it: bool, no_base_backup: bool) -> None:
    """Restore the whole cluster from a backup: every member stops, MEMBER restores the set and starts a
    new cluster (a new UUID), the others rejoin it by a full state transfer, and a new full backup is
    taken. Every replaced datadir is moved aside, not deleted. Run it again to resume one cut short.
    With --to-time or --to-gtid the set is rolled forward through the archived binary logs to that point."""
    target = target_of(ctx, directory, config, dcs, cluster)
    if abort_it:
        click.echo(changing(target, "restore --abort", operations.abort))
        return
    if to_time is not None and to_gtid is not None:
        raise click.UsageError("give --to-time or --to-gtid, not both")
    if not backup_id and to_time is None and to_gtid is None:
        raise PilotError("restore needs --backup ID (see `galera-pilot backup list`), --to-time T or --to-gtid G, "
                         "or --abort")
    repository = backups.repository_of(target, None)  # the agent restores from its own section's
    point = None
    if to_time is not None or to_gtid is not None:
        domain = target.backup.binlogs.domain_id if target.backup is not None else 1
        when = _parse_time(to_time) if to_time is not None else None
        asked = f"GTID {to_gtid}" if to_gtid is not None else f"{to_time} ({_utc(when)})"
        point = operations.point_in_time(repository, domain, to_gtid, when, backup_id, asked)

    def carry_out(store: DCS) -> str:
        chosen = operations.plan(store, repository, backup_id, member, point)
        for line in chosen.lines():
            click.echo(line)
        if dry_run:
            return "dry run: nothing was changed"
        if chosen.serving and not yes:
            if not sys.stdin.isatty():
                raise PilotError(f"the cluster serves clients now ({', '.join(chosen.serving)}): give --yes to "
                                 "restore anyway (everything written after the backup is discarded)")
            click.confirm("Everything written after the backup is discarded. Restore now?", abort=True)
        asker = f"{socket.gethostname()}:{os.getpid()}"
        done = operations.Restorer(store, repository, asker, click.echo).run(chosen)
        click.echo(done)
        if no_base_backup:
            return "no new base backup taken (--no-base-backup): take one soon, the old sets are another history"
        creator = backups.BackupCreator(target, store, repository, asker)
        started = creator.start("full", None)
        click.echo(f"new base backup {started.request.id} asked of {started.placement}")
        final = creator.wait(started.request, lambda _request: None)
        if final.phase == FAILED:
            raise PilotError(f"the cluster is restored, but its new base backup {final.id} failed: {final.detail}")
        return final.detail

    click.echo(changing(target, "restore", carry_out))


def _parse_time(text: str) -> float:
    """ISO 8601; a time without a zone is UTC (the binlogs' and `backup binlogs`' times are shown in UTC)."""
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-03 15:30:00)",
                                 param_hint="--to-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _utc(when: float | None) -> str:
    if when is None:
        return "-"
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


COMMANDS = [restore]
