"""`snapshot save` and `snapshot restore`: a whole cluster in one sealed file, and a working cluster made
from it in a new folder (the archive's format: backup/snapshot_archive.py).

Save takes a full physical backup now (frozen on a member that is not the writer, as `backup create`
does) or uses a complete full one named by the person, and seals it with the cluster-wide settings, the
layout and the credentials.

Restore never touches an existing cluster: it lays out a new folder with the snapshot's name, size, SST
method and credentials (the restored datadir's accounts have those passwords), starts it, puts the set
in the folder's repository, and runs the ordinary whole-cluster restore on it (control/restore.py: a new
cluster UUID, the other members by full SST) and a new base backup. What is new there: the addresses
(--base-address), the certificates (a new CA: clients trust the new one), the DCS (the folder's own).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from galera_pilot.backup.catalog import by_id, restorable
from galera_pilot.backup.encryption import BackupKey
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repository import Repository
from galera_pilot.backup.request import FAILED
from galera_pilot.backup.snapshot_archive import (
    CREDENTIALS,
    FORMAT,
    HEADER,
    SET_PREFIX,
    Member,
    SnapshotError,
    read_snapshot,
    write_snapshot,
)
from galera_pilot.cluster import ClusterSettings
from galera_pilot.control.backup import BackupCreator, repository_of
from galera_pilot.control.restore import Restorer, plan
from galera_pilot.control.target import ClusterTarget, from_directory
from galera_pilot.credentials import load_credentials, save_credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.settings import read_settings, store_settings
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

Say = Callable[[str], None]


@dataclass(frozen=True)
class Saved:
    path: Path
    size: int
    backup: Manifest
    members: tuple[str, ...]


def save(target: ClusterTarget, store: DCS, repository: Repository, path: Path, key: BackupKey,
         backup_id: str | None, asker: str, say: Say) -> Saved:
    """Seal the cluster into `path` (refused when it exists: a snapshot is never overwritten)."""
    if path.exists():
        raise PilotError(f"{path} exists: choose a new file (a snapshot is never written over)")
    credentials_file = target.credentials_file
    if credentials_file is None:
        raise PilotError(f"no credentials known for {target.source}: a snapshot carries them (give --dir DIR, or "
                         "-c FILE with credentials_file)")
    load_credentials(credentials_file)  # a file it cannot use is named now, before the backup
    manifest = _chosen(repository, backup_id) if backup_id else _fresh_full(target, store, repository, asker, say)
    snapshot = store.snapshot(with_history=False)
    members = tuple(sorted(n for n in snapshot.members if n not in snapshot.removed))
    settings, _version = read_settings(store)
    embedded = target.embedded
    header: dict[str, Any] = {
        "galera_pilot_snapshot": FORMAT, "created_at": time.time(), "cluster_name": target.cluster_name,
        "source": target.source, "members": list(members),
        "sst_method": embedded.nodes()[0].config.sst_method if embedded and embedded.nodes() else "mariabackup",
        "tls": embedded.tls if embedded else True,
        "settings": settings.to_dict() if settings is not None else None,
        "manifest": replace(manifest, objects=(), key_id="").to_dict(),
        "objects": [o.name for o in manifest.objects],
    }

    def parts() -> Iterator[Member]:
        yield Member(HEADER, json.dumps(header, indent=1).encode())
        yield Member(CREDENTIALS, credentials_file.read_bytes())
        for stored in manifest.objects:
            with contextlib.closing(repository.open(manifest, stored.name)) as stream:  # decrypted, if sealed
                yield Member(SET_PREFIX + stored.name, stream)

    say(f"sealing backup {manifest.id} ({manifest.size_bytes} bytes stored), the settings and the credentials "
        f"of {len(members)} member(s) into {path}")
    size = write_snapshot(path, key, parts())
    return Saved(path, size, manifest, members)


def _chosen(repository: Repository, backup_id: str) -> Manifest:
    manifests = repository.manifests()
    found = next((m for m in manifests if m.id == backup_id), None)
    if found is None:
        raise PilotError(f"backup {backup_id} is not in {repository.where} (see `galera-pilot backup list`)")
    if found.kind != "full" or not restorable(found.as_set(), by_id(m.as_set() for m in manifests)):
        raise PilotError(f"backup {backup_id} is a {found.status} {found.kind} set: a snapshot carries one complete "
                         "full backup")
    return found


def _fresh_full(target: ClusterTarget, store: DCS, repository: Repository, asker: str, say: Say) -> Manifest:
    creator = BackupCreator(target, store, repository, asker)
    started = creator.start("full", None)
    say(f"full backup {started.request.id} asked of {started.placement}")
    final = creator.wait(started.request, lambda _request: None)
    if final.phase == FAILED:
        raise PilotError(f"the snapshot's backup {final.id} failed: {final.detail}")
    say(final.detail)
    return repository.manifest(final.id)


def restore_into(directory: Path, path: Path, key: BackupKey, nodes: int | None, base_address: str | None,
                 timeout: float, asker: str, say: Say) -> str:
    """Make a working cluster in the new folder `directory` from the snapshot `path`."""
    directory = directory.resolve()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise PilotError(f"{directory} is not a new, empty folder: a snapshot is restored into a new cluster "
                         "(nothing is ever restored over one)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.snapshot-", dir=directory.parent))  # mode 0700
    try:
        unpacked = read_snapshot(path, key, staging)
        header = unpacked.header
        missing = sorted(set(header.get("objects") or []) - set(unpacked.objects))
        if missing:
            raise SnapshotError(f"{path} lacks the set's object(s) {', '.join(missing)}: not a whole snapshot")
        write_private(staging / CREDENTIALS, unpacked.credentials)
        credentials = load_credentials(staging / CREDENTIALS)
        manifest = Manifest.from_dict(header["manifest"])
        count = nodes or len(header.get("members") or []) or 3
        say(f"snapshot of {header['cluster_name']!r} from {header.get('source', '?')}, taken "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(header['created_at']))}: backup {manifest.id}")
        cluster = EmbeddedCluster.layout(directory, count, base_address, header.get("sst_method", "mariabackup"),
                                         cluster_name=header["cluster_name"], tls=bool(header.get("tls", True)))
        save_credentials(cluster.credentials_file, credentials)  # before its first start: the same accounts
        target = from_directory(cluster.dir)
        _place(repository_of(target, None), manifest, header["objects"], unpacked.objects)
        cluster.ensure_tls([])
        target.use_tls()
        say(f"{directory}: {count} node(s) laid out; starting them")
        cluster.start_agents()
        cluster.wait_synced(timeout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _restore(target, manifest, header.get("settings"), asker, say)


def _place(repository: Repository, manifest: Manifest, names: list[str], files: dict[str, Path]) -> None:
    """The set into the new folder's repository, each object hashed anew as it is stored."""
    placed = repository.begin(replace(manifest, objects=(), key_id="", status="running", finished_at=None))
    for name in names:
        with open(files[name], "rb") as stream:
            placed = repository.store(placed, name, stream)
    repository.finish(placed, "complete", manifest.finished_at or time.time())


def _restore(target: ClusterTarget, manifest: Manifest, settings: dict[str, Any] | None, asker: str,
             say: Say) -> str:
    store = target.open_dcs()
    try:
        if settings:
            store_settings(store, ClusterSettings.from_dict(settings), None)
            say("the cluster-wide settings are stored; the agents follow them")
        repository = repository_of(target, None)
        chosen = plan(store, repository, manifest.id, None)
        for line in chosen.lines():
            say(line)
        say(Restorer(store, repository, asker, say).run(chosen))
        creator = BackupCreator(target, store, repository, asker)
        started = creator.start("full", None)
        final = creator.wait(started.request, lambda _request: None)
        if final.phase == FAILED:
            raise PilotError(f"the cluster is restored, but its new base backup {final.id} failed: {final.detail}")
        return f"restored from the snapshot; new base backup: {final.detail}"
    finally:
        store.close()
