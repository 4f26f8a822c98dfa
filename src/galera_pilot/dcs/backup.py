"""The backup lock (issue 12): one backup at a time per cluster, whoever takes it (an agent running the
schedule, a person's `backup create`). A lease, so a holder that dies frees it by its TTL; renewed by its
holder while the backup runs. The snapshot carries its holder (`Cluster.backup_holder`), so other
decisions can wait for it: an automatic update never starts during a backup."""

from __future__ import annotations

from galera_pilot.dcs.base import DCS

BACKUP_LOCK = "backup"


def hold_backup_lock(dcs: DCS, holder: str, backup_id: str, ttl: float) -> bool:
    """Take or renew the lock for `backup_id`; False while another holder has it."""
    return dcs.acquire_lease(BACKUP_LOCK, holder, ttl, f"backup {backup_id}")


def release_backup_lock(dcs: DCS, holder: str) -> None:
    dcs.release_lease(BACKUP_LOCK, holder)
