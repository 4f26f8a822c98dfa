"""Whether this agent asks for the scheduled backup now: pure, over the repository's sets, the DCS's
request and backup lock, and the member the placement rule chose (membership/backup_node.py).

Every agent with a schedule looks; only the chosen member asks, for itself, and the request is written
by a compare-and-set (dcs/backup.py `ask_backup`), so two agents due at the same moment, even with
snapshots that disagree on who is chosen, ask once: the loser finds the key changed. The backup lock
then guards the copy itself. A missed run is caught up once (schedule.py computes what is due from the
last completed set); a scheduled request that failed (refused, or its copy failed) is retried after the
schedule's `retry_after`, not every cycle.

An incremental continues its chain on the member that took the chain (InnoDB's LSNs are each datadir's
own, backup/lineage.py): when the placement rule picks another member now (the chain's node became the
writer, or left), a new full backup starts a chain there instead.

Sets nobody writes any more (marked `running` by an agent that died, its lock long expired) would hold
the schedule back for ever (schedule.py waits while a set runs): they are named in `stale`, to be marked
failed by the chosen member, and count as failures from their start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from galera_pilot.backup.catalog import BackupSet
from galera_pilot.backup.request import FAILED, REQUESTED, RUNNING, BackupRequest
from galera_pilot.backup.schedule import Due, Schedule, next_backup

SCHEDULED_BY = "schedule"  # the `by` of a request the schedule writes starts with this
STALE_REQUEST = 300.0  # s: a request never taken in this long (its node died first) may be replaced


@dataclass(frozen=True)
class Look:
    """What the agent sees when it looks (one DCS snapshot and one listing of the repository)."""

    me: str
    sets: tuple[BackupSet, ...]
    request: BackupRequest | None
    lock_holder: str | None
    chosen: str | None  # the member the placement rule picks now (None: no member can take one)
    chosen_reason: str
    paused: bool
    now: float
    lock_ttl: float


@dataclass(frozen=True)
class Turn:
    due: Due | None  # the backup this agent asks for itself now; None: nothing to ask
    reason: str  # one sentence: why (or why not)
    stale: tuple[str, ...] = ()  # running sets nobody writes: marked failed before asking (chosen member only)


def scheduled_turn(schedule: Schedule, look: Look) -> Turn:
    if schedule.full_every <= 0:
        return Turn(None, "no backup schedule (backup.full_every_hours is 0)")
    if look.paused:
        return Turn(None, "the cluster is paused: no scheduled backup")
    request = look.request
    if request is not None and _in_flight(request, look):
        return Turn(None, f"backup {request.id} is {request.phase} on {request.node}")
    if look.lock_holder is not None:
        return Turn(None, f"the backup lock is held by {look.lock_holder}")
    stale = tuple(s.id for s in look.sets if s.status == "running" and s.started_at < look.now - 2 * look.lock_ttl)
    sets = [replace(s, status="failed", finished_at=s.started_at) if s.id in stale else s for s in look.sets]
    due = next_backup(schedule, sets, look.now)
    if due is not None and due.kind == "incremental" and look.chosen is not None:
        due = _on_the_chain_node(due, sets, look.chosen)
    mine = look.chosen == look.me
    if due is None:
        return Turn(None, "a backup set is being written", stale if mine else ())
    if due.at > look.now:
        return Turn(None, f"the next {due.kind} backup is due in {(due.at - look.now) / 60:.0f} min",
                    stale if mine else ())
    if (request is not None and request.phase == FAILED and request.by.startswith(SCHEDULED_BY)
            and look.now < request.updated_at + schedule.retry_after):
        wait = request.updated_at + schedule.retry_after - look.now
        return Turn(None, f"the scheduled backup {request.id} failed ({request.detail}); tried again in "
                          f"{wait / 60:.0f} min", stale if mine else ())
    if look.chosen is None:
        return Turn(None, f"a {due.kind} backup is due but no member can take it: {look.chosen_reason}")
    if not mine:
        return Turn(None, f"a {due.kind} backup is due: {look.chosen} takes it ({look.chosen_reason})")
    return Turn(due, f"a scheduled {due.kind} backup is due ({due.reason}); this node takes it "
                     f"({look.chosen_reason})", stale)


def _on_the_chain_node(due: Due, sets: list[BackupSet], chosen: str) -> Due:
    parent = next((s for s in sets if s.id == due.parent), None)
    if parent is None or not parent.node or parent.node == chosen:  # "": not recorded; the adapter checks
        return due
    return Due("full", due.at, f"an incremental on {parent.id} is due, but its chain was taken on {parent.node} "
                               f"and {chosen} takes backups now: a new chain starts there")


def _in_flight(request: BackupRequest, look: Look) -> bool:
    """Asked and not yet taken (unless long ago), or running under a held lock."""
    if request.phase == REQUESTED:
        return look.now - request.at < STALE_REQUEST
    return request.phase == RUNNING and look.lock_holder is not None

