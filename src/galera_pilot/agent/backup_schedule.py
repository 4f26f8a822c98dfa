"""The agent's side of the backup schedule: look (at most every SCHEDULE_EVERY), and when the pure rule
says it is this node's turn (backup/scheduler.py), write the request for itself; after a backup this
node took, delete what the retention lets go (backup/retention.py).

Looking costs one listing of the repository, so it is not done every cycle, and never on the cycle's
thread; the note it leaves (why no
backup is asked now) is what /status shows under `backup.schedule`, and the newest complete set of each
kind it saw is what /metrics reports (listed every CATALOG_EVERY without a schedule).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from galera_pilot.agent.memory import CYCLE_LOGGER, History
from galera_pilot.backup.chains import new_backup_id
from galera_pilot.backup.lineage import read_lineage
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.repository import Repository
from galera_pilot.backup.request import BackupRequest
from galera_pilot.backup.retention import expired
from galera_pilot.backup.scheduler import SCHEDULED_BY, STALE_REQUEST, Look, scheduled_turn
from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.backup import ask_backup
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.membership.backup_node import choose_backup_node

log = logging.getLogger(CYCLE_LOGGER)

SCHEDULE_EVERY = 10.0  # s between two looks at the schedule (a listing of the repository each)
CATALOG_EVERY = 60.0  # s between two listings without a schedule: only the metrics need them then
KINDS = ("full", "incremental", "logical")


@dataclass(frozen=True)
class Newest:
    """The newest complete set of each kind, as the last listing saw it: what /metrics reports."""

    finished_at: dict[str, float] = field(default_factory=dict)  # kind -> when (unix time); absent: none
    size_bytes: dict[str, int] = field(default_factory=dict)
    error: str = ""  # the last listing failed: why


def newest_of(manifests: list[Manifest]) -> Newest:
    finished: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for manifest in manifests:
        at = manifest.finished_at
        if manifest.status == "complete" and at is not None and at >= finished.get(manifest.kind, -1.0):
            finished[manifest.kind], sizes[manifest.kind] = at, manifest.size_bytes
    return Newest(finished, sizes)


class BackupSchedule:
    def __init__(self, config: NodeConfig, dcs: DCS, history: History, lock_ttl: float,
                 wake: Callable[[], object] = lambda: None) -> None:
        self.config = config
        self.wake = wake
        self.dcs = dcs
        self.history = history
        self.lock_ttl = lock_ttl
        self.note = ""  # why the last look asked nothing (or what it asked)
        self.newest: Newest | None = None  # None: no repository configured, or not listed yet
        self._next_look = 0.0
        self._worker: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        settings = self.config.backup
        return settings.configured and settings.full_every_hours > 0

    @property
    def interval(self) -> float:
        """s: the schedule's shortest interval (0: no schedule)."""
        if not self.enabled:
            return 0.0
        every = self.config.backup.schedule
        return min(x for x in (every.full_every, every.incremental_every) if x > 0)

    def look(self, cluster: Cluster) -> None:
        """From the agent's cycle: at most every SCHEDULE_EVERY (CATALOG_EVERY without a schedule), look in
        a thread of its own (`look_now`). The repository may be slow or unreachable (an S3 endpoint that
        never answers takes a timeout): the cycle, which runs the failover, never waits for it."""
        if not self.config.backup.configured:
            self.note, self.newest = "", None
            return
        if time.monotonic() < self._next_look or (self._worker is not None and self._worker.is_alive()):
            return
        self._next_look = time.monotonic() + (SCHEDULE_EVERY if self.enabled else CATALOG_EVERY)
        self._worker = threading.Thread(target=self._look_and_wake, args=(cluster,), name="backup-schedule",
                                        daemon=True)
        self._worker.start()

    def _look_and_wake(self, cluster: Cluster) -> None:
        try:
            asked = self.look_now(cluster)
        except Exception:
            log.exception("the backup schedule's look failed")
            return
        if asked is not None:
            log.info("%s", asked[1])
            self.wake()  # the cycle takes the request at once

    def look_now(self, cluster: Cluster) -> tuple[BackupRequest, str] | None:
        """The request this node just wrote for itself and the sentence saying why; None when none.
        Without a schedule it only lists the repository, for the metrics. `cluster` is the snapshot the
        look started from: the request is asked only if the DCS's request is still the one it shows, so a
        listing made before another backup finished never makes a second one."""
        if not self.config.backup.configured:
            return None
        try:
            repository = open_repository(self.config.backup, self.config.cluster_name)
            manifests = repository.manifests()
        except PilotError as error:
            self.note = f"the schedule cannot read the repository: {error}"
            self.newest = replace(self.newest or Newest(), error=str(error))
            return None
        self.newest = newest_of(manifests)
        if not self.enabled:
            self.note = ""
            return None
        placement = choose_backup_node(cluster)
        now = time.time()
        turn = scheduled_turn(self.config.backup.schedule, Look(
            self.config.name, tuple(m.as_set() for m in manifests), cluster.backup_request,
            cluster.backup_holder, placement.node, placement.reason, cluster.pause is not None, now, self.lock_ttl))
        self.note = turn.reason
        for stale in turn.stale:
            repository.fail_if_running(stale, "abandoned: its node stopped writing it (its lock expired)", now)
        if turn.due is None:
            return None
        kind, parent, from_lsn, why = turn.due.kind, None, None, turn.reason
        if kind == "incremental":
            found = next((m for m in manifests if m.id == turn.due.parent), None)
            refusal = "it is gone" if found is None else self._cannot_continue(found)
            if found is not None and not refusal:
                parent, from_lsn = found.id, found.to_lsn
            else:
                kind = "full"
                why = (f"a scheduled incremental on {turn.due.parent} cannot be taken ({refusal}): a full backup "
                       f"starts a new chain on {self.config.name}")
        request = BackupRequest(id=new_backup_id(kind, now, {m.id for m in manifests}), kind=kind,
                                node=self.config.name, by=f"{SCHEDULED_BY} ({self.config.name})", at=now,
                                parent=parent, from_lsn=from_lsn, note=placement.reason)
        try:
            if not ask_backup(self.dcs, request, stale_after=STALE_REQUEST, expect=cluster.backup_request):
                self.note = "another agent asked for a backup at the same moment"
                return None
        except DCSError as error:
            self.note = f"the scheduled backup could not be asked: {error}"
            return None
        self.history("backup-scheduled", why, {"id": request.id, "kind": kind})
        return request, why

    def _cannot_continue(self, parent: Manifest) -> str:
        """Why an incremental on `parent` cannot be taken here ("" when it can): it must record its end LSN
        and its datadir lineage, and that lineage must still be this datadir's (backup/lineage.py)."""
        if parent.to_lsn is None:
            return "it records no end LSN"
        if not parent.lineage:
            return "it records no datadir lineage"
        if parent.node != self.config.name:
            return f"its chain was taken on {parent.node}"
        if read_lineage(self.config.data_dir, self.config.name) != parent.lineage:
            return "a state transfer or a restore replaced this node's datadir since"
        return ""

    def after_backup(self, repository: Repository) -> None:
        """After a backup this node completed, with the lock still held: delete the sets the retention
        lets go (only with a schedule: a person's backups alone are never deleted behind their back), and
        show the new set in the metrics now rather than at the next listing."""
        self.expire(repository)
        with contextlib.suppress(PilotError, OSError):
            self.newest = newest_of(repository.manifests())

    def expire(self, repository: Repository) -> None:
        if not self.enabled:
            return
        try:
            sets = [m.as_set() for m in repository.manifests()]
            # Newest first: an incremental goes before the set it applies to, so a listing made meanwhile
            # never shows a set whose parent is gone.
            for set_id in reversed(expired(self.config.backup.retention, sets, time.time())):
                repository.delete(set_id)
                sentence = f"retention: backup {set_id} deleted (keep {self.config.backup.keep_full} full " \
                           f"chains and {self.config.backup.window_days:g} days)"
                log.info("%s", sentence)
                self.history("backup-expired", sentence, {"id": set_id})
        except (PilotError, OSError) as error:
            log.warning("retention could not delete expired backups: %s", error)
