"""This node's part in backups: taking the one the DCS asks of it (backup/request.py), in a thread of its
own so the agent's cycle and its checks go on while the copy runs; asking for the scheduled one when it
is this node's turn (agent/backup_schedule.py), and applying the retention after a backup it took.

Each cycle looks at `backup_request`. Asked of this node and not yet taken: hold the backup lock, mark
it running, start the copy (backup/take.py). While it runs, the lock is renewed and the request shows
its progress about once a second. A request marked running for this node with no copy running here
(the agent restarted in the middle) is marked failed, and so is its set, unless the set completed (the
agent stopped between the repository and the DCS): then the request is marked done, so neither the asker
nor the schedule takes a finished backup for a failed one.

The ticker (progress, lock renewal) and the copy's thread both write the request; the ticker checks,
under `_publishing`, that the copy has not finished, so its last progress can never land on top of the
final result (which would leave a finished backup `running`, then failed as abandoned).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from galera_pilot.agent.backup_schedule import BackupSchedule
from galera_pilot.agent.binlog_archiver import BinlogArchiver
from galera_pilot.agent.memory import CYCLE_LOGGER, History
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.repository import Repository
from galera_pilot.backup.request import DONE, FAILED, REQUESTED, RUNNING, BackupRequest
from galera_pilot.backup.take import Cancel, Source, take
from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.backup import current_request, hold_backup_lock, release_backup_lock, update_request
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.mariadb import sql

log = logging.getLogger(CYCLE_LOGGER)

LOCK_TTL = 30.0  # s: a holder that died frees the lock this long after its last renewal
PROGRESS_EVERY = 1.0  # s between two progress updates in the DCS (and lock renewals)
STALL_TIMEOUT = 600.0  # s without a byte read from the tool: it hangs (a lock it waits for); it is killed
BACKUP_QUERY_TIMEOUT = 3600.0  # s: CHECKSUM TABLE of a large table, under the read lock


class BackupKeeper:
    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials, history: History,
                 wake: Callable[[], object] = lambda: None) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.history = history
        self._thread: threading.Thread | None = None
        self._publishing = threading.Lock()  # the ticker's writes against the final one
        self._settling: set[str] = set()  # abandoned requests a thread is settling now
        self.current: BackupRequest | None = None  # the one this agent runs (its latest progress)
        self.schedule = BackupSchedule(config, dcs, history, LOCK_TTL, wake)
        self.archiver = BinlogArchiver(config, dcs, credentials, history)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def report(self) -> dict[str, Any]:
        """/status: what this agent's backup does now."""
        request = self.current
        archive = {"binlogs": self.archiver.note} if self.archiver.note else {}
        if request is None:
            return {"running": False, "schedule": self.schedule.note, **archive}
        return {"running": self.running, "id": request.id, "kind": request.kind, "phase": request.phase,
                "bytes": request.bytes_done, "rate": round(request.rate, 1), "detail": request.detail,
                "schedule": self.schedule.note, **archive}

    def cycle(self, cluster: Cluster, synced: bool) -> str | None:
        """Take a request asked of this node, or ask for the scheduled backup when it is this node's turn;
        a sentence when something was decided, else None. The binlog archiver looks every cycle (it
        limits itself), a backup running or not."""
        self.archiver.look(cluster)
        if self.running:
            return None
        request = cluster.backup_request
        if request is not None and request.node == self.config.name:
            if request.phase == RUNNING:  # ours, and no copy runs here: the agent restarted under it
                return self._abandoned(request, "the agent was restarted while the backup ran")
            if request.phase == REQUESTED:
                return self._take(request, cluster, synced)
        self.schedule.look(cluster)  # in a thread: a request it asks is taken at the next cycle
        return None

    def _take(self, request: BackupRequest, cluster: Cluster, synced: bool) -> str:
        if not synced:
            return self._refuse(request, f"{self.config.name} is not Synced now")
        if not self.config.backup.configured:
            return self._refuse(request, f"{self.config.name} has no backup repository (backup.repository or "
                                         "backup.s3 in its configuration)")
        try:
            store = open_repository(self.config.backup, self.config.cluster_name)
        except PilotError as error:  # a key or credentials file it cannot use
            return self._refuse(request, f"{self.config.name} cannot open its backup repository: {error}")
        if not hold_backup_lock(self.dcs, self.config.name, request.id, LOCK_TTL):
            return self._refuse(request, f"another backup runs (the backup lock is held by "
                                         f"{cluster.backup_holder or 'another holder'})")
        started = request.moved(RUNNING, started_at=time.time(), updated_at=time.time())
        if not update_request(self.dcs, started):
            release_backup_lock(self.dcs, self.config.name)
            return f"backup {request.id} was withdrawn before it started"
        self.current = started
        freeze = cluster.writer != self.config.name
        self._thread = threading.Thread(target=self._run, args=(started, store, freeze), name="backup", daemon=True)
        self._thread.start()
        how = "frozen at one point (the node's applier paused)" if freeze else "on the writer, not frozen"
        sentence = f"backup {request.id} ({request.kind}) starts on this node, {how}, asked by {request.by}"
        self.history("backup-start", sentence, {"id": request.id, "kind": request.kind})
        return sentence

    def _refuse(self, request: BackupRequest, why: str) -> str:
        update_request(self.dcs, request.moved(FAILED, detail=why, updated_at=time.time()))
        return f"backup {request.id} refused: {why}"

    def _abandoned(self, request: BackupRequest, why: str) -> str | None:
        """Settled in a thread (the repository may be slow: never on the cycle's thread), once."""
        if request.id in self._settling:
            return None
        self._settling.add(request.id)
        release_backup_lock(self.dcs, self.config.name)
        threading.Thread(target=self._settle, args=(request, why), name="backup-abandoned", daemon=True).start()
        return f"backup {request.id} runs here no more ({why}): its set is looked at"

    def _settle(self, request: BackupRequest, why: str) -> None:
        """Done when its set completed (only the DCS missed the end), else failed, the set with it."""
        try:
            completed: Manifest | None = None
            with contextlib.suppress(PilotError, OSError):  # unreadable: the request says failed all the same
                store = open_repository(self.config.backup, self.config.cluster_name)
                found = store.manifest(request.id)
                if found.status == "complete":
                    completed = found
                else:
                    store.fail_if_running(request.id, why, time.time())
            if completed is not None:
                detail = f"{completed.kind} backup {completed.id} completed; the agent restarted before saying so"
                update_request(self.dcs, request.moved(DONE, detail=detail, bytes_done=completed.size_bytes,
                                                       updated_at=time.time()))
                log.info("%s", detail)
                return
            update_request(self.dcs, request.moved(FAILED, detail=why, updated_at=time.time()))
            log.warning("backup %s marked failed: %s", request.id, why)
            self.history("backup-failed", f"backup {request.id} failed: {why}", {"id": request.id})
        except DCSError as error:
            log.warning("backup %s: its end could not be written (%s); looked at again", request.id, error)
        finally:
            self._settling.discard(request.id)

    def _run(self, request: BackupRequest, store: Repository, freeze: bool) -> None:
        began = time.time()
        manifest = Manifest(id=request.id, kind=request.kind, cluster=self.config.cluster_name, cluster_uuid="",
                            started_at=began, node=self.config.name, parent=request.parent,
                            from_lsn=request.from_lsn, note=request.note, by=request.by)
        cancel = Cancel()
        seen = {"raw": 0, "stored": 0, "expected": 0}

        def progress(raw: int, stored: int, expected: int) -> None:
            seen.update(raw=raw, stored=stored, expected=expected)

        ticker = threading.Thread(target=self._tick, args=(request, seen, cancel), name="backup-tick", daemon=True)
        ticker.start()
        try:
            manifest = store.begin(manifest)
            source = Source(self.config.socket, self.config.data_dir, self.config.run_dir / "backup",
                            self.credentials.admin_user, self.credentials.admin_password, freeze)
            manifest = take(source, self.config.backup, store, manifest,
                            lambda: sql.connect_socket(self.config, self.credentials, timeout=BACKUP_QUERY_TIMEOUT),
                            progress, cancel)
            manifest = store.finish(manifest, "complete", time.time())
            seconds = max(0.001, (manifest.finished_at or time.time()) - began)
            summary = (f"{manifest.kind} backup {manifest.id} of {self.config.name}: {manifest.size_bytes} bytes "
                       f"in {seconds:.1f} s" + (f", at seqno {manifest.seqno}" if manifest.seqno >= 0 else "")
                       + (f", {len(manifest.checksums)} table checksums" if manifest.checksums else ""))
            final = (self.current or request).moved(DONE, detail=summary, bytes_done=manifest.size_bytes,
                                                     updated_at=time.time())
            log.info("%s", summary)
            self.history("backup-done", summary, {"id": manifest.id, "bytes": manifest.size_bytes})
            self.schedule.after_backup(store)  # under the lock still: no other backup starts meanwhile
        except Exception as error:  # every failure ends the request: the asker and the lock wait on it
            if isinstance(error, PilotError | OSError):
                why = str(error) if isinstance(error, PilotError) else f"{error.strerror or error}"
            else:
                log.exception("backup %s: unexpected error", request.id)
                why = f"unexpected error ({type(error).__name__}: {error}); see the agent's log"
            with contextlib.suppress(PilotError, OSError):  # a full or lost repository may refuse this too
                store.fail_if_running(manifest.id, why, time.time())
            final = (self.current or request).moved(FAILED, detail=why, updated_at=time.time())
            log.warning("backup %s failed: %s", request.id, why)
            self.history("backup-failed", f"backup {request.id} failed: {why}", {"id": request.id})
        cancel.set("finished")  # stops the ticker; past this lock it writes nothing more
        with self._publishing:
            self.current = final
        ticker.join(timeout=5)
        for _ in range(30):  # the result must reach the DCS: the asker waits for it
            try:
                if not update_request(self.dcs, final) and _still_ours(self.dcs, final):
                    time.sleep(0.2)  # a write raced ours: write the result again on the new version
                    continue
                release_backup_lock(self.dcs, self.config.name)
                return
            except DCSError:
                time.sleep(1.0)

    def _tick(self, request: BackupRequest, seen: dict[str, int], cancel: Cancel) -> None:
        """Every PROGRESS_EVERY: renew the lock and publish the progress, apart from the copy's own
        thread (a tool that hangs must not let the lock lapse unseen). Cancels the copy when the lock
        is held by someone else, or when nothing was read for STALL_TIMEOUT."""
        last_at, last_raw, moved_at = time.monotonic(), 0, time.monotonic()
        while not cancel.wait(PROGRESS_EVERY):
            now = time.monotonic()
            raw = seen["raw"]
            if raw != last_raw:
                moved_at = now
            elif now - moved_at > STALL_TIMEOUT:
                cancel.set(f"nothing was read for {STALL_TIMEOUT:.0f} s (see the tool's log lines above)")
            rate = (raw - last_raw) / max(1e-6, now - last_at)
            last_at, last_raw = now, raw
            with self._publishing:
                if cancel.is_set():
                    return  # the copy ended meanwhile: its result is the request's last word
                current = replace(self.current or request, bytes_done=seen["stored"], rate=rate,
                                  detail=_eta(raw, seen["expected"], rate), updated_at=time.time())
                self.current = current
                try:
                    if not hold_backup_lock(self.dcs, self.config.name, request.id, LOCK_TTL):
                        cancel.set("the backup lock is held by another holder (this agent could not renew it in "
                                   "time)")
                        return
                    update_request(self.dcs, current)
                except DCSError:
                    pass  # the DCS is down: the copy goes on; the lock's TTL is longer than a short outage


def _still_ours(dcs: DCS, request: BackupRequest) -> bool:
    now = current_request(dcs)
    return now is not None and now.id == request.id and now.phase != request.phase


def _eta(raw: int, expected: int, rate: float) -> str:
    if expected <= 0 or rate <= 0:
        return f"{raw} bytes read"
    left = max(0, expected - raw)
    return f"{raw} of ~{expected} bytes read, ~{left / rate:.0f} s left"
