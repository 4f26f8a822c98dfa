"""The soak's judgement (tests/soak/checker.py) and its schedule, on made-up histories: each violation
kind is found when it is there and not when it is not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.soak import schedule
from tests.soak.checker import (
    BankState,
    FaultWindow,
    ViewSample,
    check_append,
    check_bank,
    split_brain,
    stale_reads,
    unavailability,
)
from tests.soak.ops import FAIL, OK, UNKNOWN, Op


def transfer(key: str, outcome: str = OK, at: float = 1.0) -> Op:
    return Op("transfer", "bank0", at, at + 0.01, outcome, key)


def bank(transfers: dict[str, tuple[int, int, int]], accounts: int = 3, initial: int = 100) -> BankState:
    balances = {a: initial for a in range(accounts)}
    for src, dst, amount in transfers.values():
        balances[src] -= amount
        balances[dst] += amount
    return BankState(balances, transfers)


def kinds(judged_violations: list) -> list[str]:
    return sorted(v.kind for v in judged_violations)


def test_a_consistent_bank_passes_and_counts_unknown_outcomes() -> None:
    rows = {"t1": (0, 1, 5), "t2": (1, 2, 7)}
    ops = [transfer("t1"), transfer("t2", UNKNOWN), transfer("t3", UNKNOWN), transfer("t4", FAIL)]
    judged = check_bank(ops, {"node1": bank(rows), "node2": bank(rows)}, 3, 100, 9.0)
    assert judged.violations == []
    assert judged.figures == {"acknowledged": 1, "failed": 1, "unknown": 2, "unknown_committed": 1}


def test_a_lost_transfer_a_lost_update_a_failed_commit_and_divergence_are_found() -> None:
    rows = {"t1": (0, 1, 5)}
    lost = bank({}, 3, 100)
    judged = check_bank([transfer("t1")], {"node1": bank(rows), "node2": lost}, 3, 100, 9.0)
    assert kinds(judged.violations) == ["bank-divergent", "bank-lost-transfer"]
    broken = BankState({0: 95, 1: 100, 2: 100}, rows)  # t1 took 5 from 0 and gave it to nobody
    assert kinds(check_bank([transfer("t1")], {"node1": broken}, 3, 100, 9.0).violations) == [
        "bank-lost-update", "bank-total"]
    assert kinds(check_bank([transfer("t1", FAIL)], {"node1": bank(rows)}, 3, 100, 9.0).violations) == [
        "bank-failed-but-committed"]


def append(value: str, target: int, start: float, end: float, outcome: str = OK) -> Op:
    return Op("append", value.split(".")[0], start, end, outcome, value, target)


def test_appends_in_order_pass() -> None:
    ops = [append("a.1", 0, 1.0, 1.1), append("b.1", 0, 1.05, 1.2), append("a.2", 0, 1.3, 1.4),
           append("a.3", 1, 1.5, 1.6, UNKNOWN)]
    lists = {0: ",b.1,a.1,a.2", 1: ""}  # a.1 and b.1 overlapped: either order is consistent
    judged = check_append(ops, {"node1": lists, "node2": lists}, 9.0)
    assert judged.violations == []
    assert judged.figures["unknown"] == 1 and judged.figures["unknown_committed"] == 0


def test_append_violations_are_found() -> None:
    ops = [append("a.1", 0, 1.0, 1.1), append("a.2", 0, 1.2, 1.3), append("a.3", 0, 1.4, 1.5, FAIL)]
    assert kinds(check_append(ops, {"n": {0: ",a.2,a.1"}}, 9.0).violations) == ["append-reordered"]
    assert kinds(check_append(ops, {"n": {0: ",a.1"}}, 9.0).violations) == ["append-lost"]
    assert kinds(check_append(ops, {"n": {0: ",a.1,a.1,a.2"}}, 9.0).violations) == ["append-duplicate"]
    assert kinds(check_append(ops, {"n": {0: ",a.1,a.2,zz.9"}}, 9.0).violations) == ["append-phantom"]
    assert kinds(check_append(ops, {"n": {0: ",a.1,a.2,a.3"}}, 9.0).violations) == ["append-failed-but-committed"]
    assert "append-divergent" in kinds(check_append(ops, {"n": {0: ",a.1,a.2"}, "m": {0: ",a.1"}}, 9.0).violations)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.001, 5)), min_size=1, max_size=30))
def test_a_list_in_acknowledgement_order_never_reads_as_reordered(spans: list[tuple[float, float]]) -> None:
    ops = [append(f"c.{i}", 0, start, start + length) for i, (start, length) in enumerate(spans)]
    in_order = ",".join(op.key for op in sorted(ops, key=lambda op: op.end))
    assert check_append(ops, {"n": {0: in_order}}, 200.0).violations == []


def view(at: float, node: str, primary: bool, members: str) -> ViewSample:
    return ViewSample(at, node, primary, frozenset(members.split()), "Synced" if primary else "Initialized")


def test_split_brain_needs_two_disjoint_primary_views_held_past_a_view_change() -> None:
    healthy = [view(t / 4, n, True, "node1 node2 node3") for t in range(40) for n in ("node1", "node2", "node3")]
    assert split_brain(healthy) == []
    majority = [view(t / 4, n, True, "node1 node2") for t in range(40) for n in ("node1", "node2")]
    assert split_brain(majority + [view(t / 4, "node3", False, "node3") for t in range(40)]) == []
    brief = [view(t / 4, "node3", t < 5, "node3") for t in range(40)]  # Primary alone 1.25 s: a view change
    assert split_brain(majority + brief) == []
    split = [view(t / 4, "node3", t < 20, "node3") for t in range(40)]  # 4.75 s
    found = split_brain(majority + split)
    assert [v.kind for v in found] == ["split-brain", "split-brain"]  # node3 against node1 and against node2


def test_stale_reads_and_the_gaps_per_fault() -> None:
    ops = [append("a.1", 0, 1.0, 1.1), append("a.2", 0, 2.0, 2.1),
           Op("read", "r", 3.0, 3.01, OK, seen=",a.1"), Op("read", "r", 3.5, 3.51, OK, seen=",a.1,a.2")]
    assert stale_reads(ops) == {"reads": 2, "stale": 1, "stale_share": 0.5}
    writes = [transfer(f"t{i}", at=float(t)) for i, t in enumerate([10, 11, 12, 20, 21])]
    windows = [FaultWindow("kill-node", "node2", 11.5, 11.5, 22.0),
               FaultWindow("kill-node", "node3", 30.0, 30.0, None)]
    figures = unavailability(windows, writes)["kill-node"]
    assert figures["count"] == 2 and figures["not_recovered"] == 1
    assert figures["heal_max"] == 10.5 and figures["gap_max"] == 8.0


def test_the_schedule_is_the_seeds() -> None:
    assert schedule.plan(7, 50) == schedule.plan(7, 50)
    assert schedule.plan(7, 50) != schedule.plan(8, 50)
    drawn = {fault.kind for fault in schedule.plan(3, 500)}
    assert drawn == set(schedule.EMBEDDED)
    assert {f.kind for f in schedule.plan(3, len(schedule.EMBEDDED))} == set(schedule.EMBEDDED)  # the first round
    assert all(fault.kind in ("kill-node", "stop-node", "partition-node")
               for fault in schedule.plan(3, 500) if fault.overlap_agent)
