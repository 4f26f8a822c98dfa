"""mariadb/consistency.py: a lost consistency vote as mariadbd logs it (taken from a run whose datadir
filled up: the soak's fill-disk fault), and when an IST may still follow it."""

# ruff: noqa: E501 (the error log's lines as mariadbd writes them)
from __future__ import annotations

from galera_pilot.mariadb.consistency import LostVote, divergence, lost_vote
from galera_pilot.mariadb.disk import lines_since_last_start

VOTE_LOST = """\
2026-12-04 18:52:37 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision as process 4242
2026-12-04 18:52:37 2 [Note] WSREP: Synchronized with group, ready for connections
2026-12-04 18:52:52 7 [ERROR] InnoDB: preallocating 393216 bytes for file ./soak/transfers.ibd failed with error 28
2026-12-04 18:52:52 7 [ERROR] mariadbd: The table 'transfers' is full
2026-12-04 18:52:52 0 [Note] WSREP: Member 2(node3) initiates vote on db401f85-f013-11f1-9bfc-b3e8fa98e3cd:7096,cdeb7f6f3f6d6ec9:  The table 'transfers' is full, Error_code: 1114;
Winner: 0000000000000000
2026-12-04 18:52:52 7 [ERROR] WSREP: Inconsistency detected: Inconsistent by consensus on db401f85-f013-11f1-9bfc-b3e8fa98e3cd:7096
\t at ./galera/src/replicator_smm.cpp:process_apply_error():1345
2026-12-04 18:52:52 7 [Note] WSREP: Closing send monitor...
2026-12-04 18:53:04 0 [Note] InnoDB: Shutdown completed; log sequence number 5124871; transaction id 44862
"""
RESTARTED = VOTE_LOST + """\
2026-12-04 18:53:28 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision as process 4343
2026-12-04 18:53:28 2 [Note] WSREP: Synchronized with group, ready for connections
"""
CRASH_UNDER_LOAD = """\
2026-12-04 18:40:01 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision as process 4444
2026-12-04 18:40:03 2 [Note] WSREP: Synchronized with group, ready for connections
2026-12-04 18:40:09 9 [Warning] Aborted connection 9 to db: 'soak' user: 'pilot_admin' (Got an error reading communication packets)
"""
UUID = "db401f85-f013-11f1-9bfc-b3e8fa98e3cd"
ROW_MISSING = """\
2026-12-04 18:52:37 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision as process 4545
2026-12-04 18:52:52 7 [ERROR] Slave SQL: Could not execute Update_rows_v1 event on table soak.accounts; Can't find record in 'accounts', Error_code: 1032; handler error HA_ERR_KEY_NOT_FOUND
2026-12-04 18:52:52 7 [ERROR] WSREP: Inconsistency detected: Inconsistent by consensus on db401f85-f013-11f1-9bfc-b3e8fa98e3cd:812
"""


def test_the_lost_vote_is_found_with_its_write_and_its_cause() -> None:
    vote = lost_vote(lines_since_last_start(VOTE_LOST))
    assert vote == LostVote("[ERROR] WSREP: Inconsistency detected: Inconsistent by consensus on "
                            f"{UUID}:7096", UUID, 7096, True)
    missing = lost_vote(lines_since_last_start(ROW_MISSING))
    assert missing is not None and (missing.seqno, missing.for_lack_of_space) == (812, False)


def test_only_the_last_run_counts() -> None:
    # The run after the SST that replaced the datadir: the old verdict no longer applies to it.
    assert lost_vote(lines_since_last_start(RESTARTED)) is None
    assert lost_vote(lines_since_last_start(CRASH_UNDER_LOAD)) is None
    assert lost_vote([]) is None


def test_a_line_without_the_write_is_still_a_lost_vote() -> None:
    vote = lost_vote(["2026-12-04 18:52:52 7 [ERROR] WSREP: Inconsistency detected: Inconsistent by self vote"])
    assert vote is not None and vote.uuid is None and vote.seqno is None


def test_an_ist_follows_only_a_write_failed_for_space_that_innodb_is_before() -> None:
    space = LostVote("... on u:7096", UUID, 7096, True)
    assert divergence(space, UUID, 7095) is None  # the IST starts at 7096: the failed write again
    assert divergence(space, UUID, 6000) is None
    past = divergence(space, UUID, 7099)  # parallel appliers committed 7097-7099 around the hole
    assert past is not None and f"{UUID}:7099" in past and "leave that write out" in past
    assert divergence(space, UUID, 7096) is not None
    assert divergence(space, "00000000-1111-2222-3333-444444444444", 10) is not None  # another history
    assert divergence(LostVote("... self vote", None, None, True), UUID, 10) is not None  # no seqno: no proof
    differs = divergence(LostVote("... on u:812", UUID, 812, False), UUID, 811)  # a row it lacks
    assert differs is not None and "data differs" in differs
