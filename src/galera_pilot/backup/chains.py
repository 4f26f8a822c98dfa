"""Naming a new set and finding where an incremental starts: pure, shared by `backup create` (a person)
and the agents' schedule, so both name and chain sets the same way."""

from __future__ import annotations

import datetime

from galera_pilot.backup.catalog import Kind, by_id, chain_root, restorable
from galera_pilot.backup.manifest import Manifest
from galera_pilot.errors import PilotError

SUFFIX = {"full": "F", "incremental": "I", "logical": "L"}


def new_backup_id(kind: Kind, now: float, taken: set[str]) -> str:
    """pgBackRest's style: 20261202-184500F (F full, I incremental, L logical), unique in the repository."""
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%d-%H%M%S")
    candidate, n = f"{stamp}{SUFFIX[kind]}", 1
    while candidate in taken:
        n += 1
        candidate = f"{stamp}{SUFFIX[kind]}{n}"
    return candidate


def incremental_parent(manifests: list[Manifest]) -> Manifest:
    """The newest restorable physical set of the newest full backup's chain; PilotError when none."""
    sets = by_id(m.as_set() for m in manifests)
    fulls = [m for m in manifests if m.kind == "full" and restorable(m.as_set(), sets)]
    if not fulls:
        raise PilotError("an incremental backup needs a complete full backup to start from: take a full one "
                         "first (backup create without --incremental)")
    newest_full = max(fulls, key=lambda m: m.finished_at or 0.0)
    chain = [m for m in manifests if m.kind != "logical" and restorable(m.as_set(), sets)
             and (root := chain_root(m.as_set(), sets)) is not None and root.id == newest_full.id]
    parent = max(chain, key=lambda m: m.finished_at or 0.0)
    if parent.to_lsn is None:
        raise PilotError(f"backup {parent.id} records no LSN (xtrabackup_checkpoints): an incremental cannot "
                         "start from it; take a full backup")
    return parent


def chain_of(manifests: list[Manifest], set_id: str, where: str) -> list[Manifest]:
    """The set's full backup first, the set last; PilotError when it is unknown or not restorable."""
    known = {m.id: m for m in manifests}
    if set_id not in known:
        raise PilotError(f"no backup {set_id!r} in {where}")
    sets = by_id(m.as_set() for m in known.values())
    if not restorable(sets[set_id], sets):
        raise PilotError(f"backup {set_id} is not restorable: it, or a set of its chain, is not complete "
                         "(see `backup list`)")
    chain = [known[set_id]]
    while chain[0].kind == "incremental" and chain[0].parent:
        chain.insert(0, known[chain[0].parent])
    return chain
