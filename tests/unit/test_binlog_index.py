"""The archived-binlog index: GTID parsing, gaps, replay steps and time -> GTID, against brute force over
generated histories (files of several nodes, overlapping, some missing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galera_pilot.backup.binlog_index import (
    ArchivedBinlog,
    Gap,
    NotReachable,
    covered_through,
    gaps,
    newest_time,
    replay_steps,
    seqno_at_time,
)
from galera_pilot.backup.gtid import Gtid, GtidPosition, parse_gtid, parse_position

DOMAIN = 7


def binlog(node: str, number: int, first: int | None, last: int | None, times: dict[int, int] | None = None,
           domain: int = DOMAIN) -> ArchivedBinlog:
    """A file holding seqnos first..last; times: seqno -> commit second (default: the seqno itself)."""
    seconds: list[tuple[int, int]] = []
    if first is not None and last is not None:
        for seqno in range(first, last + 1):
            at = (times or {}).get(seqno, seqno)
            if seconds and seconds[-1][0] == at:
                seconds[-1] = (at, seqno)
            else:
                seconds.append((at, seqno))
    stamps = [at for at, _ in seconds]
    return ArchivedBinlog(node, f"mariadb-bin.{number:06d}", f"binlogs/{node}/mariadb-bin.{number:06d}.zst", domain,
                          1, first, last, min(stamps, default=0), max(stamps, default=0), tuple(seconds))


def test_gtids_and_positions_parse_and_print() -> None:
    assert parse_gtid("0-1-42") == Gtid(0, 1, 42) and str(Gtid(0, 1, 42)) == "0-1-42"
    position = parse_position("7-1-100, 0-5-3")
    assert str(position) == "0-5-3,7-1-100" and position.seqno(7) == 100 and position.seqno(1) is None
    assert parse_position("") == GtidPosition() and str(GtidPosition()) == ""
    assert str(position.with_gtid(Gtid(7, 1, 101))) == "0-5-3,7-1-101"
    for bad in ("0-1", "a-1-2", "0-1-2-3", "-1-1-1", "4294967296-1-1"):
        with pytest.raises(ValueError, match="GTID"):
            parse_gtid(bad)
    with pytest.raises(ValueError, match="one GTID per domain"):
        parse_position("0-1-2,0-1-3")


def test_replay_reads_each_transaction_once_across_nodes() -> None:
    archived = [binlog("node1", 1, 1, 10), binlog("node1", 2, 11, 30), binlog("node2", 5, 25, 60),
                binlog("node3", 9, 40, 45)]
    steps = replay_steps(archived, DOMAIN, after=4, through=50)
    assert [(s.binlog.node, s.after, s.through) for s in steps] == [("node1", 4, 10), ("node1", 10, 30),
                                                                     ("node2", 30, 50)]
    assert steps[-1].start_position() == "7-1-30" and steps[-1].stop_position() == "7-1-50"
    assert replay_steps(archived, DOMAIN, after=50, through=50) == []
    with pytest.raises(NotReachable, match="before the backup's position"):
        replay_steps(archived, DOMAIN, after=50, through=49)
    with pytest.raises(NotReachable, match="reaches GTID seqno 60 of domain 7, not 61"):
        replay_steps(archived, DOMAIN, after=4, through=61)


def test_a_gap_is_named_and_stops_a_replay_past_it() -> None:
    archived = [binlog("node1", 1, 1, 10), binlog("node2", 3, 15, 20), binlog("node2", 4, None, None)]
    assert gaps(archived, DOMAIN, after=0) == [Gap(DOMAIN, 11, 14)]
    assert str(Gap(DOMAIN, 11, 14)) == "GTID seqnos 11..14 of domain 7 are in no archived binlog"
    assert gaps(archived, DOMAIN, after=14) == [] and covered_through(archived, DOMAIN, 14) == 20
    assert covered_through(archived, DOMAIN, 0) == 10
    assert replay_steps(archived, DOMAIN, 0, 10)[-1].through == 10
    with pytest.raises(NotReachable, match=r"seqnos 11\.\.14 .* cannot replay past seqno 10"):
        replay_steps(archived, DOMAIN, 0, 16)
    assert gaps([binlog("node1", 1, 5, 9)], DOMAIN, after=3) == [Gap(DOMAIN, 4, 4)]
    assert gaps([], DOMAIN, after=3) == [] and newest_time([], DOMAIN) is None
    with pytest.raises(NotReachable, match="no binlog is archived"):
        replay_steps([], DOMAIN, 3, 4)


def test_other_domains_are_not_counted() -> None:
    archived = [binlog("node1", 1, 1, 10), binlog("node1", 2, 11, 99, domain=0)]
    assert covered_through(archived, DOMAIN, 0) == 10 and newest_time(archived, DOMAIN) == 10


def test_a_time_maps_to_the_last_transaction_before_the_first_later_one() -> None:
    times = {1: 100, 2: 100, 3: 101, 4: 103, 5: 103, 6: 104}
    archived = [binlog("node1", 1, 1, 4, times), binlog("node2", 1, 3, 6, times)]
    assert seqno_at_time(archived, DOMAIN, 99.9) is None
    assert seqno_at_time(archived, DOMAIN, 100.0) == 2 and seqno_at_time(archived, DOMAIN, 100.99) == 2
    assert seqno_at_time(archived, DOMAIN, 102) == 3 and seqno_at_time(archived, DOMAIN, 103) == 5
    assert seqno_at_time(archived, DOMAIN, 1e9) == 6
    # A clock stepped back: seqno 3 is stamped 99, after transactions stamped 100. Restoring to 99 stops
    # before the first transaction stamped later (seqno 1), never taking seqno 3 without 1 and 2.
    stepped = [binlog("node1", 1, 1, 4, {1: 100, 2: 100, 3: 99, 4: 101})]
    assert seqno_at_time(stepped, DOMAIN, 99) is None and seqno_at_time(stepped, DOMAIN, 100) == 3


@st.composite
def archives(draw: st.DrawFn) -> tuple[int, list[ArchivedBinlog], dict[int, int]]:
    """A history of n transactions (non-decreasing seconds), and the files three nodes archived of it:
    each node's files are consecutive runs; some files are lost."""
    n = draw(st.integers(1, 60))
    steps = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    times, at = {}, 1000
    for seqno, step in zip(range(1, n + 1), steps, strict=True):
        at += step
        times[seqno] = at
    archived = []
    for node in ("node1", "node2", "node3"):
        start = draw(st.integers(1, n))
        number = 1
        while start <= n:
            end = min(n, start + draw(st.integers(0, 15)))
            if not draw(st.booleans()) or draw(st.integers(0, 4)) > 0:  # most files kept
                archived.append(binlog(node, number, start, end, times))
            start, number = end + 1, number + 1
    return n, archived, times


@settings(max_examples=300, deadline=None)
@given(archives(), st.data())
def test_replay_and_gaps_agree_with_brute_force(case: tuple[int, list[ArchivedBinlog], dict[int, int]],
                                                data: st.DataObject) -> None:
    n, archived, times = case
    held = {seqno for b in archived for seqno in range(b.first_seqno or 1, (b.last_seqno or 0) + 1)}
    after = data.draw(st.integers(0, n))
    through = data.draw(st.integers(after, n))
    missing = [seqno for seqno in range(after + 1, through + 1) if seqno not in held]
    if missing:
        with pytest.raises(NotReachable):
            replay_steps(archived, DOMAIN, after, through)
    else:
        steps = replay_steps(archived, DOMAIN, after, through)
        replayed = [seqno for step in steps for seqno in range(step.after + 1, step.through + 1)]
        assert replayed == list(range(after + 1, through + 1)), "each transaction once, in order"
        assert all(step.binlog.covers(step.after + 1) and step.binlog.covers(step.through) for step in steps)
    newest = max(held, default=after)
    expected_gaps = sorted(seqno for seqno in range(after + 1, newest + 1) if seqno not in held)
    listed = [seqno for gap in gaps(archived, DOMAIN, after) for seqno in range(gap.first, gap.last + 1)]
    assert listed == expected_gaps
    reach = covered_through(archived, DOMAIN, after)
    assert all(s in held for s in range(after + 1, reach + 1)) and reach + 1 not in held
    when = data.draw(st.integers(990, 1200))
    expected = max((s for s in sorted(held) if times[s] <= when
                    and all(times[t] <= when for t in sorted(held) if t < s)), default=None)
    assert seqno_at_time(archived, DOMAIN, when) == expected
