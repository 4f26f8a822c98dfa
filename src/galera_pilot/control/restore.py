"""`galera-pilot restore`: the whole cluster back to a backup set, through the DCS (backup/restore_order.py).

1. the plan (restore/plan.py) and the chain's checksums, before anything is touched;
2. the order in phase `stopping`: every agent stops its mariadbd cleanly and keeps it stopped; this waits
   until no member reports a running server;
3. the initialize record swapped for one naming the restoring member with `restore_from` (the same swap
   as `bootstrap --force --empty`: the old seed, high-water mark and roster go, the history stays), the
   order moved to `restoring`; that member's agent builds the datadir from the set and starts a new
   cluster, the others join it by a full state transfer (their datadirs moved aside);
4. once every member that reports is Synced in the new cluster, the order is deleted and a new full
   backup is taken (the old sets belong to a history that has ended).

Every step can be run again: a restore cut short (this command killed, an agent restarted) is resumed
by running the same command; one still `stopping` can be aborted (`--abort`), the old cluster then
starts again as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

from galera_pilot.backup.repository import Repository
from galera_pilot.backup.restore_order import RESTORE, RESTORING, STOPPING, RestoreOrder
from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.control.backup import chain_of
from galera_pilot.control.bootstrap import ORDER_TTL
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.restore.plan import RestorePlan, plan_restore
from galera_pilot.restore.point_in_time import PointInTime, plan_point_in_time, seqno_of_gtid

STOP_TIMEOUT = 600.0  # s for every member to stop mariadbd (a clean shutdown flushes the buffer pool)
START_TIMEOUT = 3600.0  # s for the restored member to be Synced (unpacking and preparing a large set)
JOIN_TIMEOUT = 1800.0  # s for the others to join by a full state transfer
POLL = 0.5

Say = Callable[[str], None]


def plan(dcs: DCS, repository: Repository, backup_id: str | None, member: str | None,
         point: PointInTime | None = None) -> RestorePlan:
    """The plan of a restore of `backup_id`, or of the point in time `point` (its backup, rolled forward)."""
    chosen_id = point.backup if point is not None else backup_id
    assert chosen_id is not None
    chain = chain_of(repository, chosen_id)
    try:
        planned = plan_restore(dcs.snapshot(with_history=False), chain, member)
    except ValueError as refusal:
        raise PilotError(f"restore refused: {refusal}") from None
    return planned.with_point(point) if point is not None else planned


def point_in_time(repository: Repository, domain: int, to_gtid: str | None, to_time: float | None,
                  backup_id: str | None, asked: str) -> PointInTime:
    """Which set and which archived binlogs reach the point asked; PilotError saying why not."""
    try:
        seqno = seqno_of_gtid(to_gtid, domain) if to_gtid is not None else None
        return plan_point_in_time(repository.manifests(), repository.binlogs(), domain, seqno, to_time, backup_id,
                                  asked)
    except ValueError as refusal:
        raise PilotError(f"restore refused: {refusal}") from None


class Restorer:
    def __init__(self, dcs: DCS, repository: Repository, asker: str, say: Say) -> None:
        self.dcs = dcs
        self.repository = repository
        self.asker = asker
        self.say = say

    def run(self, chosen: RestorePlan) -> str:
        """Carry the plan out; the closing sentence (the new cluster's UUID), or PilotError."""
        for link in chosen.chain:
            found = self.repository.verify(link.id)
            if not found.ok:
                named = "; ".join(f"{p.object}: {p.what}" for p in found.problems)
                raise PilotError(f"backup {link.id} is damaged ({named}): nothing was touched")
        order = self._order(chosen)
        if order.phase == STOPPING:
            self._wait_stopped(order)
            order = self._start(order)
        new_uuid = self._wait_restored(order)
        missing = self._wait_joined(order, new_uuid)
        self.dcs.delete(RESTORE)
        self.dcs.record_history(HistoryEvent(time.time(), order.member, "restore",
                                             f"the cluster was restored from backup {order.backup} on {order.member}: "
                                             f"new cluster {new_uuid} replaces {order.replaces}",
                                             {"backup": order.backup, "replaces": order.replaces, "uuid": new_uuid}))
        tail = f"; {', '.join(missing)} did not report Synced yet" if missing else ""
        return f"restored backup {order.backup} on {order.member}: new cluster {new_uuid}{tail}"

    def _order(self, chosen: RestorePlan) -> RestoreOrder:
        snapshot = self.dcs.snapshot(with_history=False)
        if snapshot.restore is not None:
            order = snapshot.restore
            self.say(f"resuming the restore of backup {order.backup} ({order.phase})")
            if order.failed:
                self.say(f"  its last attempt failed ({order.failed}): {order.member} tries again")
                order = replace(order, failed="")
                kv = self.dcs.get(RESTORE)
                if kv is None or not self.dcs.compare_and_set(RESTORE, json.dumps(order.to_dict()), kv.version):
                    raise PilotError("the restore order changed meanwhile; run `galera-pilot restore` again")
            return order
        point = chosen.point
        order = RestoreOrder(chosen.backup, chosen.member, f"galera-pilot restore ({self.asker})", time.time(),
                             STOPPING, chosen.replaces, to_seqno=point.target if point else None,
                             domain=point.domain if point else None, asked=point.asked if point else "")
        if not self.dcs.create(RESTORE, json.dumps(order.to_dict())):
            raise PilotError("another restore was ordered meanwhile; look with `galera-pilot list`")
        self.dcs.record_history(HistoryEvent(time.time(), chosen.member, "restore",
                                             f"a person ordered the cluster restored from backup {chosen.backup} "
                                             f"on {chosen.member} (galera-pilot restore): every member stops",
                                             {"backup": chosen.backup, "replaces": chosen.replaces}))
        self.say(f"every member stops mariadbd for the restore of backup {chosen.backup}")
        return order

    def _wait_stopped(self, order: RestoreOrder) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            snapshot = self._snapshot()
            running = sorted(n for n, m in snapshot.members.items() if m.running and n not in snapshot.removed)
            if snapshot.members and not running:
                return
            if time.monotonic() > deadline:
                raise PilotError(f"{', '.join(running) or 'no member'} did not stop within {STOP_TIMEOUT:.0f} s; "
                                 "run `galera-pilot restore` again to go on waiting, or `--abort`")
            time.sleep(POLL)

    def _start(self, order: RestoreOrder) -> RestoreOrder:
        if not self.dcs.order_empty_start(order.member, ttl=ORDER_TTL, restore_from=order.backup):
            raise PilotError("the initialize record changed meanwhile; run `galera-pilot restore` again")
        restoring = order.moved(RESTORING)
        kv = self.dcs.get(RESTORE)
        if kv is None or not self.dcs.compare_and_set(RESTORE, json.dumps(restoring.to_dict()), kv.version):
            raise PilotError("the restore order changed meanwhile; run `galera-pilot restore` again")
        self.say(f"{order.member} restores backup {order.backup} and starts a new cluster")
        return restoring

    def _wait_restored(self, order: RestoreOrder) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while True:
            snapshot = self._snapshot()
            init = snapshot.initialize
            if init is None:  # the agent's lease lapsed (it stopped): ordered again, it resumes
                if not self.dcs.order_empty_start(order.member, ttl=ORDER_TTL, restore_from=order.backup):
                    raise PilotError("the initialize record changed meanwhile; run `galera-pilot restore` again")
                continue
            if snapshot.restore is not None and snapshot.restore.failed:
                raise PilotError(f"{order.member} could not restore backup {order.backup}: {snapshot.restore.failed}. "
                                 "Fix the cause, then run `galera-pilot restore` again (the old datadirs are kept "
                                 "aside as data.refused-*)")
            member = snapshot.members.get(order.member)
            new_uuid = init.cluster_uuid
            if new_uuid and member is not None and member.state == "Synced" and member.cluster_uuid == new_uuid:
                return new_uuid
            activity = member.activity if member is not None else "its agent does not report"
            if activity and activity != last:
                self.say(f"  {order.member}: {activity}")
                last = activity
            if time.monotonic() > deadline:
                raise PilotError(f"{order.member} was not Synced in the restored cluster within {START_TIMEOUT:.0f} s "
                                 f"({activity}); see its log, then run `galera-pilot restore` again")
            time.sleep(POLL)

    def _wait_joined(self, order: RestoreOrder, new_uuid: str) -> list[str]:
        """Until every other member that reports is Synced in the new cluster; those still missing."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        while True:
            snapshot = self._snapshot()
            missing = sorted(n for n, m in snapshot.members.items() if n != order.member and n not in snapshot.removed
                             and not (m.state == "Synced" and m.cluster_uuid == new_uuid))
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(POLL)

    def _snapshot(self) -> Cluster:
        while True:
            try:
                return self.dcs.snapshot(with_history=False)
            except DCSError:
                time.sleep(POLL)  # a short DCS outage: the agents go on, so do we


def abort(dcs: DCS) -> str:
    """Withdraw a restore still stopping the members: the old cluster starts again as it was."""
    kv = dcs.get(RESTORE)
    if kv is None:
        return "no restore is in progress"
    order = RestoreOrder.from_dict(json.loads(kv.value))
    if order.phase != STOPPING:
        raise PilotError(f"the restore of backup {order.backup} has started on {order.member} (the old cluster's "
                         "record is replaced): it cannot be aborted; run `galera-pilot restore` again to finish it")
    if not dcs.delete(RESTORE, kv.version):
        raise PilotError("the restore order changed meanwhile; look again")
    dcs.record_history(HistoryEvent(time.time(), order.member, "restore",
                                    f"the restore of backup {order.backup} was aborted before it started: the "
                                    "members start again as they were", {"backup": order.backup}))
    return f"the restore of backup {order.backup} is aborted: the members start their old datadirs again"
