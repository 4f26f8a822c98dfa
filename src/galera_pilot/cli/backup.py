"""`backup create|list|show|delete|verify` (control/backup.py does the work; this parses and prints)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from pathlib import Path

import click

from galera_pilot.backup.catalog import Kind
from galera_pilot.backup.encryption import generate_key_file
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.request import FAILED, BackupRequest
from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.control import backup as operations
from galera_pilot.control.target import ClusterTarget
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError

repo_option = click.option("--repo", "repo", type=click.Path(path_type=Path, file_okay=False), default=None,
                           help="the backup repository (default: the addressed configuration's, DIR/backups for "
                                "a folder made by `up`)")


def _target(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
            cluster: str | None) -> ClusterTarget:
    return target_of(ctx, directory, config, dcs, cluster)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _when(at: float | None) -> str:
    if not at:
        return "-"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def backup() -> None:
    """Physical (mariadb-backup) and logical (mariadb-dump) backups, taken by an agent, kept in a repository."""


@backup.command("create")
@addressing_options(with_env=False)
@repo_option
@click.option("--incremental", is_flag=True, help="only what changed since the newest backup of the current chain")
@click.option("--logical", is_flag=True, help="mariadb-dump --single-transaction instead of mariadb-backup")
@click.option("--node", default="auto", show_default=True,
              help="the member that takes it; auto: a Synced member that is not the writer")
@click.pass_context
def create(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           repo: Path | None, incremental: bool, logical: bool, node: str) -> None:
    """Take a backup now: the chosen node's agent copies its data, compressed, into the repository."""
    if incremental and logical:
        raise PilotError("--incremental and --logical exclude each other: a logical backup is always whole")
    if repo is not None:
        raise PilotError("backup create stores the set where the nodes' backup section says (the agent writes "
                         "it); --repo only names where list, show, verify and delete look")
    kind: Kind = "logical" if logical else "incremental" if incremental else "full"
    target = _target(ctx, directory, config, dcs, cluster)
    repository = operations.repository_of(target, repo)
    terminal = sys.stdout.isatty()

    def carry_out(store: DCS) -> BackupRequest:
        creator = operations.BackupCreator(target, store, repository, f"{socket.gethostname()}:{os.getpid()}")
        started = creator.start(kind, None if node == "auto" else node)
        click.echo(f"backup {started.request.id} ({kind}) asked of {started.placement}")

        def report(request: BackupRequest) -> None:
            if terminal and request.phase == "running":
                line = (f"  {request.id}: {_size(request.bytes_done)} stored, {_size(int(request.rate))}/s read, "
                        f"{request.detail}")
                click.echo("\r" + line.ljust(100)[:140], nl=False)

        try:
            return creator.wait(started.request, report)
        finally:
            if terminal:
                click.echo("")

    final = changing(target, "backup create", carry_out)
    if final.phase == FAILED:
        raise PilotError(f"backup {final.id} failed: {final.detail}")
    click.echo(final.detail)


@backup.command("list")
@addressing_options(with_env=False)
@repo_option
@click.option("--format", "form", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True)
@click.pass_context
def list_backups(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                 cluster: str | None, repo: Path | None, form: str) -> None:
    """Every backup set of the repository, oldest first, with whether it can be restored."""
    target = _target(ctx, directory, config, dcs, cluster)
    rows = operations.listing(operations.repository_of(target, repo))
    if form == "json":
        click.echo(json.dumps([{**_summary(m), "restorable": ok} for m, ok in rows], indent=1))
        return
    if not rows:
        click.echo("no backups yet")
        return
    header = (f"{'ID':<20} {'KIND':<11} {'STATUS':<9} {'RESTORABLE':<10} {'NODE':<10} {'SIZE':>10}  "
              "STARTED (UTC)        PARENT")
    click.echo(header)
    for manifest, ok in rows:
        click.echo(f"{manifest.id:<20} {manifest.kind:<11} {manifest.status:<9} {'yes' if ok else 'no':<10} "
                   f"{manifest.node:<10} {_size(manifest.size_bytes):>10}  {_when(manifest.started_at):<20} "
                   f"{manifest.parent or '-'}")


def _summary(manifest: Manifest) -> dict[str, object]:
    data = manifest.to_dict()
    data["size_bytes"] = manifest.size_bytes
    data.pop("checksums", None)
    data["tables_checksummed"] = len(manifest.checksums)
    return data


@backup.command("binlogs")
@addressing_options(with_env=False)
@repo_option
@click.option("--format", "form", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True)
@click.pass_context
def binlogs(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
            repo: Path | None, form: str) -> None:
    """The archived binary logs (backup.binlogs.archive): what they cover of the cluster's GTID domain from
    the oldest backup on, the newest archived transaction, and every gap."""
    target = _target(ctx, directory, config, dcs, cluster)
    domain = target.backup.binlogs.domain_id if target.backup is not None else 1
    archived, summary = operations.binlog_archive(operations.repository_of(target, repo), domain)
    if form == "json":
        click.echo(json.dumps({"domain": summary.domain, "base": summary.base,
                               "covered_through": summary.covered_through, "newest_seqno": summary.newest_seqno,
                               "newest_time": summary.newest_time,
                               "gaps": [{"first": g.first, "last": g.last} for g in summary.gaps],
                               "files": [b.to_dict() for b in archived]}, indent=1))
        return
    if not archived:
        click.echo("no binlog archived yet (backup.binlogs.archive turns archiving on)")
        return
    click.echo(f"{'NODE':<10} {'FILE':<22} {'SEQNOS':<17} {'FIRST (UTC)':<20} {'LAST (UTC)':<20} {'SIZE':>10}")
    for record in archived:
        span = f"{record.first_seqno}-{record.last_seqno}" if record.holds_transactions() else "-"
        click.echo(f"{record.node:<10} {record.file:<22} {span:<17} {_when(record.first_time):<20} "
                   f"{_when(record.last_time):<20} {_size(record.size):>10}")
    click.echo(f"domain {summary.domain}: every transaction after seqno {summary.base} is archived through "
               f"{summary.covered_through}; newest archived {summary.newest_seqno} at {_when(summary.newest_time)}")
    for gap in summary.gaps:
        click.echo(f"gap: {gap}", err=True)


@backup.command("show")
@addressing_options(with_env=False)
@repo_option
@click.argument("backup_id")
@click.pass_context
def show(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
         repo: Path | None, backup_id: str) -> None:
    """One set's manifest (JSON): position, LSNs, parent, objects with their sha256, table checksums."""
    target = _target(ctx, directory, config, dcs, cluster)
    manifest = operations.repository_of(target, repo).manifest(backup_id)
    click.echo(json.dumps({**manifest.to_dict(), "size_bytes": manifest.size_bytes}, indent=1))


@backup.command("delete")
@addressing_options(with_env=False)
@repo_option
@click.argument("backup_id")
@click.option("--yes", is_flag=True, help="delete without asking (a terminal asks otherwise)")
@click.pass_context
def delete(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           repo: Path | None, backup_id: str, yes: bool) -> None:
    """Delete a set. Refused while it runs or while incrementals depend on it."""
    target = _target(ctx, directory, config, dcs, cluster)
    repository = operations.repository_of(target, repo)
    refusal = operations.delete_refusal(repository, backup_id)
    if refusal:
        raise PilotError(f"backup delete refused: {refusal}")
    if not yes:
        if not sys.stdin.isatty():
            raise PilotError(f"deleting backup {backup_id} cannot be undone: give --yes to confirm it without a "
                             "terminal")
        click.confirm(f"Delete backup {backup_id} for good?", abort=True)
    repository.delete(backup_id)
    click.echo(f"backup {backup_id} deleted")


@backup.command("verify")
@addressing_options(with_env=False)
@repo_option
@click.argument("backup_id")
@click.option("--restore-test", is_flag=True,
              help="also restore it into a scratch mariadbd (no network, no wsrep) and compare CHECKSUM TABLE "
                   "with the figures recorded at backup time")
@click.option("--scratch", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="where the restore test unpacks (default: the system's temporary folder)")
@click.pass_context
def verify(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           repo: Path | None, backup_id: str, restore_test: bool, scratch: Path | None) -> None:
    """Check every stored object of the set (and of its chain) against its manifest's size and sha256."""
    target = _target(ctx, directory, config, dcs, cluster)
    repository = operations.repository_of(target, repo)
    result = operations.verify(repository, backup_id)
    for problem in result.problems:
        click.echo(f"  {problem.object}: {problem.what}")
    if not result.ok:
        raise PilotError(f"backup {backup_id} is damaged: {len(result.problems)} problem(s) in {result.checked} "
                         "object(s) checked")
    click.echo(f"backup {backup_id}: {result.checked} object(s), every checksum matches its manifest")
    if restore_test:
        tools = target.backup.tools if target.backup else None
        tested = operations.restore_test(repository, backup_id, scratch, tools)
        for mismatch in tested.mismatches:
            click.echo(f"  {mismatch}")
        if not tested.ok:
            raise PilotError(f"backup {backup_id}: the restored copy differs from the backup's figures "
                             f"({len(tested.mismatches)} table(s))")
        compared = (f"{tested.compared} of {tested.tables} table(s) match the checksums recorded at backup time"
                    if tested.compared else f"{tested.tables} table(s) restored; the set recorded no checksums "
                    "to compare with (taken on the writer)")
        click.echo(f"backup {backup_id} restores: {compared} ({tested.seconds:.1f} s)")


@backup.command("key")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def key(path: Path) -> None:
    """Make a new encryption key file PATH (mode 0600, never overwritten). Name it in every node's
    backup.encryption_key_file: new backups are then encrypted with it; keep a copy apart from the
    backups (without it they cannot be restored)."""
    made = generate_key_file(path)
    click.echo(f"key {made.key_id} written to {path} (mode 0600); set backup.encryption_key_file: {path} on "
               "every node, and keep a copy where the backups are not")


COMMANDS = [backup]
