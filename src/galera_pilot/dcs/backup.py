"""The backup lock (issue 12): one backup at a time per cluster, whoever takes it (an agent running the
schedule, a person's `backup create`). A lease, so a holder that dies frees it by its TTL; renewed by its
holder while the backup runs. The snapshot carries its holder (`Cluster.backup_holder`), so other
decisions can wait for it: an automatic update never starts during a backup."""

from __future__ import annotations

import json

from galera_pilot.backup.request import BACKUP_REQUEST, REQUESTED, BackupRequest
from galera_pilot.backup.restore_order import RESTORE
from galera_pilot.dcs.base import DCS

BACKUP_LOCK = "backup"


def hold_backup_lock(dcs: DCS, holder: str, backup_id: str, ttl: float) -> bool:
    """Take or renew the lock for `backup_id`; False while another holder has it."""
    return dcs.acquire_lease(BACKUP_LOCK, holder, ttl, f"backup {backup_id}")


def release_backup_lock(dcs: DCS, holder: str) -> None:
    dcs.release_lease(BACKUP_LOCK, holder)


def current_request(dcs: DCS) -> BackupRequest | None:
    kv = dcs.get(BACKUP_REQUEST)
    return BackupRequest.from_dict(json.loads(kv.value)) if kv is not None else None


_ANY = object()


def ask_backup(dcs: DCS, request: BackupRequest, stale_after: float | None = None,
               expect: BackupRequest | object | None = _ANY) -> bool:
    """Write a new request; False while one is in flight (requested, or running under a held lock). A
    finished one, or a running one whose holder is gone (its lock expired), is replaced: the caller
    marks that one's set failed. With `stale_after`, so is one requested longer ago than that (by the
    new request's clock): its node never took it. The write is a compare-and-set: of two askers at
    once, one wins. With `expect` (the request a snapshot showed, or None for none), only if the DCS
    still holds that one (same id and phase): any backup begun or finished since changes it."""
    kv = dcs.get(BACKUP_REQUEST)
    if expect is not _ANY:
        now = (None if kv is None else BackupRequest.from_dict(json.loads(kv.value)))
        if _identity(now) != _identity(expect):  # type: ignore[arg-type]
            return False
    if kv is None:
        return dcs.create(BACKUP_REQUEST, json.dumps(request.to_dict()))
    old = BackupRequest.from_dict(json.loads(kv.value))
    never_taken = old.phase == REQUESTED and stale_after is not None and request.at - old.at > stale_after
    if not old.finished and not never_taken and (old.phase == REQUESTED or dcs.get(BACKUP_LOCK) is not None):
        return False
    return dcs.compare_and_set(BACKUP_REQUEST, json.dumps(request.to_dict()), kv.version)


def _identity(request: BackupRequest | None) -> tuple[str, str] | None:
    return None if request is None else (request.id, request.phase)


def update_request(dcs: DCS, request: BackupRequest) -> bool:
    """The taking agent's progress; False when the request was replaced (a late update never revives one)."""
    kv = dcs.get(BACKUP_REQUEST)
    if kv is None or json.loads(kv.value).get("id") != request.id:
        return False
    return dcs.compare_and_set(BACKUP_REQUEST, json.dumps(request.to_dict()), kv.version)


def withdraw_request(dcs: DCS, backup_id: str) -> bool:
    """Remove a request not yet taken (the asker gave up waiting); False once an agent runs it."""
    kv = dcs.get(BACKUP_REQUEST)
    if kv is None:
        return True
    data = json.loads(kv.value)
    if data.get("id") != backup_id or data.get("phase") != REQUESTED:
        return False
    return dcs.delete(BACKUP_REQUEST, kv.version)


def fail_restore(dcs: DCS, backup_id: str, why: str) -> bool:
    """The restoring agent's attempt failed: say why in the order (it is not retried until a person runs
    `galera-pilot restore` again). False when the order is gone or is another one."""
    kv = dcs.get(RESTORE)
    if kv is None:
        return False
    data = json.loads(kv.value)
    if data.get("backup") != backup_id:
        return False
    data["failed"] = why
    return dcs.compare_and_set(RESTORE, json.dumps(data), kv.version)
