"""The index of archived binary logs, and what point-in-time recovery reads from it: pure.

Every archived binlog file is one `ArchivedBinlog`: which node wrote it, the first and last seqno it
holds in the cluster's GTID domain, and a compact time map (for each second in which a transaction
committed, the last seqno of that second). Binlog timestamps are whole seconds, so that map is exactly
what a time can be resolved with: `--to-time T` restores every transaction committed at or before T's
second, and nothing after it, through the GTID the map gives (mariadb-binlog's `--stop-datetime` would
cut at the same second but cannot say which GTID it stopped at).

Files of different nodes overlap (each node logs every transaction, and an archiver that moves to
another node starts from that node's file holding the next seqno); a replay reads each transaction
once, from the file that covers it, with `--start-position` after what was already replayed. A seqno
covered by no file is a **gap**: a point in time beyond it cannot be reached, and `gaps` names it so
that the archiver can report it and ask for a fresh full backup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from galera_pilot.backup.gtid import parse_position
from galera_pilot.backup.manifest import Manifest


@dataclass(frozen=True)
class ArchivedBinlog:
    node: str
    file: str  # the binlog's own name on its node, e.g. mariadb-bin.000012
    object: str  # where it is stored in the repository
    domain: int
    server: int  # the server id its GTIDs carry (the same on every node)
    first_seqno: int | None  # None: the file holds no transaction of the domain (a rotation only)
    last_seqno: int | None
    first_time: int  # epoch seconds of its first and last transaction (0 when it holds none)
    last_time: int
    seconds: tuple[tuple[int, int], ...] = ()  # (second, last seqno of a run committed in it), in seqno order
    size: int = 0  # of the stored object (compressed, sealed when encrypted)
    sha256: str = ""  # of the stored object
    key_id: str = ""  # the encryption key's id (backup/encryption.py); "": stored in the clear
    archived_at: float = 0.0
    # The Galera cluster UUID of the history it belongs to (wsrep_cluster_state_uuid when archived). A
    # restore starts a new history whose seqnos go on from the point restored to: files of the old one
    # then share seqnos with the new one's, and must never be replayed into it.
    history: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchivedBinlog:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["seconds"] = tuple((int(at), int(seqno)) for at, seqno in data.get("seconds", ()))
        return cls(**values)

    def holds_transactions(self) -> bool:
        return self.first_seqno is not None and self.last_seqno is not None

    def covers(self, seqno: int) -> bool:
        return (self.first_seqno is not None and self.last_seqno is not None
                and self.first_seqno <= seqno <= self.last_seqno)


@dataclass(frozen=True)
class ReplayStep:
    """Replay `binlog` from after `after` up to `through` (seqnos in the domain, inclusive of `through`)."""

    binlog: ArchivedBinlog
    after: int
    through: int

    def start_position(self) -> str:
        return f"{self.binlog.domain}-{self.binlog.server}-{self.after}"

    def stop_position(self) -> str:
        return f"{self.binlog.domain}-{self.binlog.server}-{self.through}"


@dataclass(frozen=True)
class Gap:
    """No archived file holds the seqnos `first`..`last` of the domain."""

    domain: int
    first: int
    last: int

    def __str__(self) -> str:
        span = f"{self.first}" if self.first == self.last else f"{self.first}..{self.last}"
        return f"GTID seqnos {span} of domain {self.domain} are in no archived binlog"


class NotReachable(ValueError):
    """A point in time or a GTID that the archive cannot replay to (the reason in the message)."""


def of_history(archived: Iterable[ArchivedBinlog], history: str) -> list[ArchivedBinlog]:
    """The files of one history (a cluster UUID): the only ones a set of that history rolls forward with."""
    return [b for b in archived if b.history == history]


def newest_history(archived: Iterable[ArchivedBinlog]) -> str | None:
    """The history of the most recently archived file (what the cluster runs now, unless it was just
    restored and has archived nothing yet)."""
    newest = max(archived, key=lambda b: b.archived_at, default=None)
    return newest.history if newest is not None else None


def _with_transactions(archived: Iterable[ArchivedBinlog], domain: int) -> list[ArchivedBinlog]:
    return sorted((b for b in archived if b.domain == domain and b.holds_transactions()),
                  key=lambda b: (b.first_seqno, -(b.last_seqno or 0), b.node, b.file))


def covered_through(archived: Iterable[ArchivedBinlog], domain: int, after: int) -> int:
    """The highest seqno up to which every seqno after `after` is in some archived file (`after` itself
    when the next one is in none)."""
    reached = after
    for binlog in _with_transactions(archived, domain):
        assert binlog.first_seqno is not None and binlog.last_seqno is not None
        if binlog.first_seqno > reached + 1:
            break
        reached = max(reached, binlog.last_seqno)
    return reached


def gaps(archived: Iterable[ArchivedBinlog], domain: int, after: int) -> list[Gap]:
    """Every run of seqnos after `after` (the oldest kept backup's position) and before the newest
    archived one that no archived file holds, oldest first."""
    found: list[Gap] = []
    reached = after
    for binlog in _with_transactions(archived, domain):
        assert binlog.first_seqno is not None and binlog.last_seqno is not None
        if binlog.first_seqno > reached + 1:
            found.append(Gap(domain, reached + 1, binlog.first_seqno - 1))
        reached = max(reached, binlog.last_seqno)
    return found


def replay_steps(archived: Sequence[ArchivedBinlog], domain: int, after: int, through: int) -> list[ReplayStep]:
    """The files to replay, in order, to go from a restored position (`after`, the backup's seqno in the
    domain) to `through` inclusive, each transaction read once; NotReachable naming the first gap or
    how far the archive reaches."""
    if through < after:
        raise NotReachable(f"GTID seqno {through} is before the backup's position ({after}): choose a backup "
                           "taken before the point to restore to")
    steps: list[ReplayStep] = []
    reached = after
    candidates = _with_transactions(archived, domain)
    while reached < through:
        # Among the files that hold the next seqno, the one reaching furthest: fewest files to read.
        usable = [b for b in candidates if b.covers(reached + 1)]
        if not usable:
            newest = max((b.last_seqno or 0 for b in candidates), default=None)
            if newest is not None and newest > reached:
                nxt = min(b.first_seqno or 0 for b in candidates if (b.first_seqno or 0) > reached)
                raise NotReachable(f"{Gap(domain, reached + 1, nxt - 1)}: the archive cannot replay past seqno "
                                   f"{reached}")
            raise NotReachable(f"the archive reaches GTID seqno {reached} of domain {domain}, not {through}"
                               + ("" if newest is not None else " (no binlog is archived)"))
        best = max(usable, key=lambda b: (b.last_seqno or 0, b.node, b.file))
        assert best.last_seqno is not None
        upto = min(best.last_seqno, through)
        steps.append(ReplayStep(best, reached, upto))
        reached = upto
    return steps


def seqno_at_time(archived: Iterable[ArchivedBinlog], domain: int, when: float) -> int | None:
    """The point to restore to for `--to-time`: the last seqno of the domain before the first transaction
    stamped later than `when`'s second (binlog timestamps are whole seconds). A prefix of the history,
    so a clock stepped back never lets a transaction stamped after `when` in. None: the first archived
    transaction is already later."""
    second = int(when // 1)
    entries = sorted({(seqno, at) for binlog in archived if binlog.domain == domain and binlog.holds_transactions()
                      for at, seqno in binlog.seconds})
    best: int | None = None
    for seqno, at in entries:
        if at > second:
            break
        best = seqno
    return best


def newest_time(archived: Iterable[ArchivedBinlog], domain: int) -> int | None:
    """The second of the newest archived transaction of the domain (what the archiver's lag counts from)."""
    times = [b.last_time for b in archived if b.domain == domain and b.holds_transactions()]
    return max(times) if times else None


@dataclass(frozen=True)
class ArchiveSummary:
    """What `backup binlogs` says of the archive of one domain."""

    domain: int
    files: int
    base: int  # the seqno the coverage counts from (the oldest backup's, else the oldest archived one's - 1)
    covered_through: int  # every seqno after `base` up to this one is archived
    newest_seqno: int | None
    newest_time: int | None
    gaps: tuple[Gap, ...]


def summarize(archived: Sequence[ArchivedBinlog], manifests: Sequence[Manifest], domain: int,
              history: str) -> ArchiveSummary:
    """What the files of one history (a cluster UUID) cover of the domain, counted from that history's
    oldest kept backup (else from the oldest archived seqno)."""
    files = [b for b in of_history(archived, history) if b.domain == domain]
    mine = [b for b in files if b.holds_transactions()]
    base = oldest_backup_seqno(manifests, domain, history)
    if base is None:
        base = min((b.first_seqno or 0 for b in mine), default=1) - 1
    return ArchiveSummary(domain, len(files), base, covered_through(mine, domain, base),
                          max((b.last_seqno or 0 for b in mine), default=None), newest_time(mine, domain),
                          tuple(gaps(mine, domain, base)))


def backup_seqno(manifest: Manifest, domain: int) -> int | None:
    """A set's GTID seqno in `domain` (where its roll-forward starts), None when it records none."""
    if not manifest.gtid:
        return None
    try:
        return parse_position(manifest.gtid).seqno(domain)
    except ValueError:
        return None


def oldest_backup_seqno(manifests: Iterable[Manifest], domain: int, history: str | None = None) -> int | None:
    """The GTID seqno in `domain` of the oldest complete physical set (of `history`, a cluster UUID, when
    given) that records one: where the archive must cover from for every kept set to roll forward."""
    seqnos = [seqno for m in manifests
              if m.status == "complete" and m.kind != "logical" and (history is None or m.cluster_uuid == history)
              and (seqno := backup_seqno(m, domain)) is not None]
    return min(seqnos) if seqnos else None


def expired_binlogs(archived: Iterable[ArchivedBinlog], manifests: Sequence[Manifest], domain: int,
                    current_history: str) -> list[ArchivedBinlog]:
    """The archived files no kept backup can use: of the current history, those whose transactions all
    precede the oldest kept backup's position (while no backup of it records a position, none); of another
    history, all of them once no kept backup of that history remains. The backup retention decides what
    is kept; the archive follows it."""
    gone = []
    for binlog in archived:
        if binlog.domain != domain:
            continue
        base = oldest_backup_seqno(manifests, domain, binlog.history)
        if base is None:
            if binlog.history != current_history:
                gone.append(binlog)
            continue
        if binlog.last_seqno is None or binlog.last_seqno <= base:
            gone.append(binlog)
    return gone
