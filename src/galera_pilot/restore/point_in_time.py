"""`restore --to-time T | --to-gtid G`: which backup set, which archived binlogs, up to which GTID; pure.

A target time becomes a GTID through the archive's index (backup/binlog_index.py `seqno_at_time`): every
transaction committed at or before T's second, none after the first one stamped later. The set is the
newest complete physical one whose own position (its manifest's GTID, recorded when it was taken) is at
or before the target, unless a person names one; from its position the archived binlogs must cover every
seqno up to the target, else the restore is refused with the gap named. The agent that restores replays
the same steps, computed again from the same listing (`steps_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from galera_pilot.backup.binlog_index import (
    ArchivedBinlog,
    NotReachable,
    ReplayStep,
    backup_seqno,
    newest_history,
    of_history,
    replay_steps,
    seqno_at_time,
)
from galera_pilot.backup.catalog import by_id, restorable
from galera_pilot.backup.gtid import parse_gtid
from galera_pilot.backup.manifest import Manifest


@dataclass(frozen=True)
class PointInTime:
    backup: str  # the set restored first
    domain: int
    base: int  # the set's seqno in the domain
    target: int  # the last seqno replayed
    steps: tuple[ReplayStep, ...]
    asked: str  # what the person asked, in words ("2026-12-03 15:30:00 UTC", "GTID 1-1-420")

    def lines(self) -> list[str]:
        lines = [f"  then replays the archived binlogs from GTID seqno {self.base} through {self.target} of domain "
                 f"{self.domain} ({self.asked}):"]
        lines += [f"    {s.binlog.node}/{s.binlog.file}: {s.after + 1}..{s.through}" for s in self.steps]
        if not self.steps:
            lines.append("    nothing: the backup is at that point already")
        return lines


def seqno_of_gtid(text: str, domain: int) -> int:
    """--to-gtid: one GTID of the cluster's domain (`1-1-420`); ValueError naming what is wrong."""
    gtid = parse_gtid(text)
    if gtid.domain != domain:
        raise ValueError(f"GTID {text} is of domain {gtid.domain}; the cluster's transactions are in domain {domain} "
                         "(backup.binlogs.domain_id)")
    return gtid.seqno


def plan_point_in_time(manifests: Sequence[Manifest], archived: Sequence[ArchivedBinlog], domain: int,
                       to_seqno: int | None = None, to_time: float | None = None, backup: str | None = None,
                       asked: str = "", history: str | None = None) -> PointInTime:
    """The plan; ValueError with the reason when the point cannot be reached. Everything is of one history
    (a cluster UUID): the named backup's, else `history` (the cluster's current one), else the newest
    archived file's. Sets and files of another history share seqnos with this one's and are never mixed."""
    if (to_seqno is None) == (to_time is None):
        raise ValueError("give one point: a GTID or a time")
    named = next((m for m in manifests if m.id == backup), None) if backup is not None else None
    if backup is not None and named is None:
        raise ValueError(f"no backup {backup} in the repository")
    chosen_history = named.cluster_uuid if named is not None else (history or newest_history(archived) or "")
    archived = of_history(archived, chosen_history)
    manifests = [m for m in manifests if m.cluster_uuid == chosen_history]
    if not archived:
        raise ValueError(f"no binlog of cluster {chosen_history or '?'} is archived (backup.binlogs.archive)")
    if to_time is not None:
        found = seqno_at_time(archived, domain, to_time)
        if found is None:
            raise ValueError(f"no archived transaction was committed at or before {asked or to_time}: the archive "
                             "starts later")
        to_seqno = found
    assert to_seqno is not None
    sets = by_id(m.as_set() for m in manifests)
    candidates = [m for m in manifests if m.status == "complete" and m.kind != "logical"
                  and restorable(sets[m.id], sets) and (seqno := backup_seqno(m, domain)) is not None
                  and seqno <= to_seqno]
    if named is not None:
        seqno = backup_seqno(named, domain)
        if seqno is None:
            raise ValueError(f"backup {backup} records no GTID position of domain {domain} (binary logs were off "
                             "when it was taken): it cannot be rolled forward")
        if seqno > to_seqno:
            raise ValueError(f"backup {backup} is at GTID seqno {seqno}, after the point asked ({to_seqno}): choose "
                             "an older one")
        if named not in candidates:
            raise ValueError(f"backup {backup} cannot be restored (not complete, logical, or its chain is broken)")
        chosen = named
    elif not candidates:
        raise ValueError(f"no complete physical backup of cluster {chosen_history or '?'} is at or before GTID "
                         f"seqno {to_seqno} of domain {domain} with a recorded position: nothing to roll forward "
                         "from")
    else:
        chosen = max(candidates, key=lambda m: (backup_seqno(m, domain) or 0, m.started_at))
    base = backup_seqno(chosen, domain)
    assert base is not None
    try:
        steps = replay_steps(archived, domain, base, to_seqno)
    except NotReachable as error:
        raise ValueError(f"from backup {chosen.id} (seqno {base}): {error}") from None
    return PointInTime(chosen.id, domain, base, to_seqno, tuple(steps), asked or f"GTID seqno {to_seqno}")


def steps_for(archived: Sequence[ArchivedBinlog], domain: int, base: int, target: int) -> list[ReplayStep]:
    """What the restoring agent replays: the same rule over its own listing of the same archive."""
    return replay_steps(archived, domain, base, target)
