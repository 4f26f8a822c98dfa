"""Whether a node that Galera found inconsistent may still rejoin by IST (pure, over error-log text and
a recovered position; tests/unit/test_consistency.py).

A node that cannot apply a replicated write asks the cluster to vote; when the others applied it, the
node loses ("Inconsistency detected: Inconsistent by consensus on UUID:SEQNO") and leaves, and Galera
blanks grastate.dat's UUID (SavedState::mark_corrupt) so that it takes a full SST. A blank UUID is also
what a crash with a transaction in flight leaves (mark_unsafe), where the agent puts the UUID back from
InnoDB for an IST; this line in mariadbd's last run is what tells the two apart.

An IST after a lost vote is right only when the write failed for lack of space (the data was not wrong,
the disk was full: a full disk is a transient condition the agent waits out) and InnoDB's position is
before it, so the IST applies it again. With parallel appliers the writes after the failed one may have
committed: InnoDB's position is then past a hole, and an IST from there would leave the failed write out
for good while the node reported Synced (seen: failed 7096, InnoDB at 7099). For any other reason (a
row the others have and this node lacks) the data already differed. Both take a full SST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from galera_pilot.mariadb.disk import enospc_line, without_timestamp

# Galera 4 (voting): "[ERROR] WSREP: Inconsistency detected: Inconsistent by consensus on UUID:SEQNO".
INCONSISTENCY_RE = re.compile(r"WSREP: Inconsistency detected\b.*?(?: on ([0-9a-f-]{36}):(-?\d+))?\s*$")


@dataclass(frozen=True)
class LostVote:
    """Galera found the node inconsistent in this run of mariadbd."""

    line: str  # trimmed of its timestamp
    uuid: str | None  # the failed write's cluster UUID and seqno, when the line names them
    seqno: int | None
    for_lack_of_space: bool  # the run also logged a write that failed with ENOSPC


def lost_vote(lines: list[str]) -> LostVote | None:
    """The first lost consistency vote in `lines` (one run of mariadbd's error log), or None."""
    for line in lines:
        match = INCONSISTENCY_RE.search(line)
        if match:
            return LostVote(without_timestamp(line), match.group(1),
                            int(match.group(2)) if match.group(2) else None, enospc_line(lines) is not None)
    return None


def divergence(vote: LostVote, uuid: str, seqno: int) -> str | None:
    """Why a datadir whose InnoDB holds `uuid:seqno` must not join by IST after `vote`, or None when an IST
    applies the failed write again."""
    said = f"Galera found this node inconsistent with the cluster in mariadbd's last run ({vote.line})"
    if not vote.for_lack_of_space:
        return f"{said}: it could not apply a write the others applied, so its data differs from theirs"
    if vote.uuid is None or vote.seqno is None or vote.uuid != uuid or seqno >= vote.seqno:
        return (f"{said}, for lack of space: InnoDB's position ({uuid}:{seqno}) is past the write it failed, "
                "so an IST would leave that write out")
    return None
