"""`galera-pilot snapshot save|restore`: parse, call control/snapshot.py, print."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from galera_pilot.backup.encryption import load_key
from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.control import backup as backups
from galera_pilot.control import snapshot as operations
from galera_pilot.dcs.base import DCS

KEY_HELP = ("a key file made by `galera-pilot backup key FILE`: the snapshot is sealed with it (it holds the "
            "cluster's passwords); keep it apart from the snapshot")


@click.group()
def snapshot() -> None:
    """One sealed file that carries a whole cluster (data, settings, credentials) to a new folder."""


@snapshot.command("save")
@addressing_options(with_env=False)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path, dir_okay=False), help=KEY_HELP)
@click.option("--backup", "backup_id", default=None,
              help="a complete full backup to carry (default: one is taken now, as `backup create` would)")
@click.pass_context
def save(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
         file: Path, key_file: Path, backup_id: str | None) -> None:
    """Seal the cluster into FILE (mode 0600, never written over): a full physical backup, the cluster-wide
    settings, its layout and its credentials. `snapshot restore` makes a working cluster of it."""
    key = load_key(key_file)
    target = target_of(ctx, directory, config, dcs, cluster)
    repository = backups.repository_of(target, None)
    asker = f"{socket.gethostname()}:{os.getpid()}"

    def carry_out(store: DCS) -> operations.Saved:
        return operations.save(target, store, repository, file, key, backup_id, asker, click.echo)

    saved = changing(target, "snapshot save", carry_out)
    click.echo(f"snapshot {saved.path}: {saved.size} bytes, sealed with key {key.key_id}; backup {saved.backup.id} "
               f"at seqno {saved.backup.seqno}, {len(saved.members)} member(s)")


@snapshot.command("restore")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="the new cluster's folder (new or empty)")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key", "key_file", required=True, type=click.Path(path_type=Path, dir_okay=False), help=KEY_HELP)
@click.option("--nodes", type=int, default=None, help="members of the new cluster (default: as many as the snapshot's)")
@click.option("--base-address", default=None, help="the first node's address (as `up --base-address`)")
@click.option("--timeout", default=900.0, show_default=True, help="seconds for the new cluster to come up")
def restore(directory: Path, file: Path, key_file: Path, nodes: int | None, base_address: str | None,
            timeout: float) -> None:
    """Make a working cluster in DIR from FILE: the snapshot's name, size, credentials and settings, its
    data restored under a new cluster UUID, and a new base backup. New addresses, certificates and DCS:
    run `galera-pilot up --dir DIR` afterwards for its endpoints and dashboard."""
    key = load_key(key_file)
    asker = f"{socket.gethostname()}:{os.getpid()}"
    click.echo(operations.restore_into(directory, file, key, nodes, base_address, timeout, asker, click.echo))


COMMANDS = [snapshot]
