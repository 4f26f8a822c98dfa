"""Backups from the operator's side: ask an agent for one and follow it; list, show, delete and verify
the sets of the repository this host can read (backup/repository.py).

`create` chooses the node (membership/backup_node.py), picks an incremental's parent from the
repository, writes the request (dcs/backup.py) and waits for the agent's result, reporting progress. The
agent does the work: the copy is read where the data is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.backup import chains
from galera_pilot.backup.binlog_index import (
    ArchivedBinlog,
    ArchiveSummary,
    newest_history,
    summarize,
)
from galera_pilot.backup.catalog import Kind, by_id, restorable
from galera_pilot.backup.chains import incremental_parent, new_backup_id
from galera_pilot.backup.manifest import Manifest, Problem, Verification
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.repository import Repository, RepositoryError
from galera_pilot.backup.request import DONE, FAILED, REQUESTED, RUNNING, BackupRequest
from galera_pilot.backup.settings import BackupSettings, BackupTools
from galera_pilot.backup.trial_restore import RestoreTest, Servers
from galera_pilot.backup.trial_restore import restore_test as run_restore_test
from galera_pilot.cluster import Cluster
from galera_pilot.control.target import ClusterTarget
from galera_pilot.dcs.backup import ask_backup, current_request, update_request, withdraw_request
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.membership.backup_node import Placement, choose_backup_node

TAKE_TIMEOUT = 30.0  # s for the chosen agent to take the request (it looks every cycle)
LOST_AFTER = 45.0  # s without progress and without a lock holder: the node died under the backup


def repository_of(target: ClusterTarget, override: Path | None) -> Repository:
    """The repository the cluster's backup section names (`--repo DIR` instead, when given)."""
    settings = target.backup or BackupSettings()
    if override is None and not settings.configured:
        raise PilotError(f"no backup repository known for {target.source}: give --repo DIR, or set "
                         "backup.repository or backup.s3 (node configuration) / backup_repository or backup "
                         "(control configuration)")
    return open_repository(settings, target.cluster_name, override)


@dataclass(frozen=True)
class Started:
    request: BackupRequest
    placement: str


class BackupCreator:
    def __init__(self, target: ClusterTarget, store: DCS, repository: Repository, asker: str) -> None:
        self.target = target
        self.store = store
        self.repository = repository
        self.asker = asker

    def start(self, kind: Kind, node: str | None) -> Started:
        cluster = self.store.snapshot(with_history=False)
        self._clear_stale(cluster)
        manifests = self.repository.manifests()
        parent = incremental_parent(manifests) if kind == "incremental" else None
        if parent is not None:  # an incremental continues its chain's datadir (backup/lineage.py): there only
            if node is not None and node != parent.node:
                raise PilotError(f"an incremental continues the chain of backup {parent.id}, taken on "
                                 f"{parent.node}: it can only be taken there (InnoDB's LSNs are each node's "
                                 f"own); leave --node out, or take a full backup on {node}")
            node = parent.node
        placement = choose_backup_node(cluster, node)
        if placement.node is None:
            raise PilotError(f"no node can take the backup: {placement.reason}")
        if parent is not None:
            paused = " (it is the writer: clients see its pause)" if parent.node == cluster.writer else ""
            placement = Placement(parent.node, f"{parent.node}, which holds the chain of {parent.id}{paused}")
        now = time.time()
        request = BackupRequest(id=new_backup_id(kind, now, {m.id for m in manifests}), kind=kind,
                                node=placement.node or "", by=f"galera-pilot backup create ({self.asker})", at=now,
                                parent=parent.id if parent else None, from_lsn=parent.to_lsn if parent else None,
                                note=placement.reason)
        if not ask_backup(self.store, request):
            running = current_request(self.store)
            what = f"backup {running.id} on {running.node} is {running.phase}" if running else "another backup runs"
            raise PilotError(f"{what}: one backup at a time (wait for it, or see `backup list`)")
        return Started(request, placement.reason)

    def _clear_stale(self, cluster: Cluster) -> None:
        """A running request whose node stopped holding the lock: its set is marked failed here."""
        old = cluster.backup_request
        if old is None or old.phase != RUNNING or cluster.backup_holder is not None:
            return
        self.repository.fail_if_running(old.id, f"its node {old.node} stopped while the backup ran", time.time())
        update_request(self.store, old.moved(FAILED, detail=f"{old.node} stopped while the backup ran",
                                              updated_at=time.time()))

    def wait(self, request: BackupRequest, report: Callable[[BackupRequest], None],
             poll: float = 0.5) -> BackupRequest:
        """Until the agent finishes; `report` sees every change of progress. PilotError when nobody
        takes it or its node is lost (the set is then marked failed)."""
        asked = time.monotonic()
        last_change, last_seen = time.monotonic(), request
        while True:
            time.sleep(poll)
            try:
                snapshot = self.store.snapshot(with_history=False)  # the request and the lock, in one read
            except DCSError:
                continue  # a short DCS outage: the agent goes on; so do we
            now_request, holder = snapshot.backup_request, snapshot.backup_holder
            if now_request is None or now_request.id != request.id:
                raise PilotError(f"the request for backup {request.id} was replaced or withdrawn")
            if now_request != last_seen:
                last_seen, last_change = now_request, time.monotonic()
                report(now_request)
            if now_request.phase in (DONE, FAILED):
                return now_request
            if (now_request.phase == REQUESTED and time.monotonic() - asked > TAKE_TIMEOUT
                    and withdraw_request(self.store, request.id)):
                raise PilotError(f"the agent of {request.node} did not take the backup in {TAKE_TIMEOUT:.0f} s "
                                 "(is it running? `galera-pilot list`); the request is withdrawn")
            if now_request.phase == RUNNING and holder is None and time.monotonic() - last_change > LOST_AFTER:
                why = f"{request.node} stopped reporting while the backup ran"
                self.repository.fail_if_running(request.id, why, time.time())
                update_request(self.store, now_request.moved(FAILED, detail=why, updated_at=time.time()))
                raise PilotError(f"backup {request.id} failed: {why}; its set is marked failed")


def listing(repository: Repository) -> list[tuple[Manifest, bool]]:
    """Every set, oldest first, with whether it can be restored (complete, its chain complete)."""
    manifests = repository.manifests()
    sets = by_id(m.as_set() for m in manifests)
    return [(m, restorable(m.as_set(), sets)) for m in manifests]


def delete_refusal(repository: Repository, set_id: str) -> str:
    """Why `backup delete` must not delete this set ("" when it may)."""
    manifests = repository.manifests()
    target = next((m for m in manifests if m.id == set_id), None)
    if target is None:
        return f"no backup {set_id!r} in {repository.where}"
    if target.status == "running":
        return f"backup {set_id} is running"
    children = [m.id for m in manifests if m.parent == set_id]
    if children:
        return f"incremental backups depend on {set_id}: {', '.join(children)} (delete them first)"
    return ""


def verify(repository: Repository, set_id: str) -> Verification:
    """Every object of the set and of the sets its chain needs, against their manifests."""
    manifests = {m.id: m for m in repository.manifests()}
    if set_id not in manifests:
        raise RepositoryError(f"no backup {set_id!r} in {repository.where}")
    result = repository.verify(set_id)
    current = manifests[set_id]
    checked, problems = result.checked, list(result.problems)
    while current.kind == "incremental" and current.parent:
        parent = manifests.get(current.parent)
        if parent is None:
            problems.append(Problem(current.parent, "the parent set is missing"))
            break
        found = repository.verify(parent.id)
        checked += found.checked
        problems.extend(Problem(f"{parent.id}/{p.object}", p.what) for p in found.problems)
        current = parent
    return Verification(set_id, checked, tuple(problems))


def chain_of(repository: Repository, set_id: str) -> list[Manifest]:
    """The set's full backup first, the set last; PilotError when it is not restorable."""
    return chains.chain_of(repository.manifests(), set_id, repository.where)


def restore_test(repository: Repository, set_id: str, scratch: Path | None,
                 tools: BackupTools | None = None) -> RestoreTest:
    """Restore the set into a scratch server and compare its tables (backup/trial_restore.py), with the
    programs the cluster's backup section names."""
    return run_restore_test(repository, chain_of(repository, set_id), tools or BackupTools(), Servers(), scratch)


def binlog_archive(repository: Repository, domain: int) -> tuple[list[ArchivedBinlog], ArchiveSummary]:
    """Every archived binlog, and what the files of the current history (the newest file's) cover of the
    domain from that history's oldest backup on."""
    archived = repository.binlogs()
    return archived, summarize(archived, repository.manifests(), domain, newest_history(archived) or "")
