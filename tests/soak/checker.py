"""The soak's judgement, pure: what the clients recorded and what every node holds at the end.

- bank: the total never changes (on every node); every acknowledged transfer is on every node; every
  node's balances are what its transfers say (a lost update would break that); a transfer reported as
  failed is not there; unknown outcomes are counted apart (committed or not), never as lost;
- append: every acknowledged value is in its list exactly once, on every node alike, in an order
  consistent with acknowledgement (x acknowledged before y was sent: x comes first); no value twice,
  none that no client sent;
- split brain: two nodes Primary at once, each outside the other's view, for longer than a view change;
- figures: stale reads through the reader endpoint, the longest client-visible gap per fault.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.soak.ops import FAIL, OK, UNKNOWN, Op

SPLIT_HOLD = 2.0  # seconds two disjoint Primary views may coexist (a view change in flight) before it counts
SAMPLE_FRESH = 1.5  # a node's last sample stands for it this long


@dataclass(frozen=True)
class Violation:
    kind: str
    at: float
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "at": self.at, "detail": self.detail}


@dataclass(frozen=True)
class BankState:
    """One node's bank at the end: balance per account, and every transfer row (id -> src, dst, amount)."""

    balances: Mapping[int, int]
    transfers: Mapping[str, tuple[int, int, int]]


@dataclass
class Judgement:
    violations: list[Violation] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)


def check_bank(ops: Sequence[Op], nodes: Mapping[str, BankState], accounts: int, initial: int,
               at: float) -> Judgement:
    judged = Judgement()
    transfers = [op for op in ops if op.kind == "transfer"]
    total = accounts * initial
    for name, state in sorted(nodes.items()):
        if sum(state.balances.values()) != total:
            judged.violations.append(Violation("bank-total", at, f"{name}: the balances sum to "
                                               f"{sum(state.balances.values())}, not {total}"))
        expected = {account: initial for account in range(accounts)}
        for src, dst, amount in state.transfers.values():
            expected[src] -= amount
            expected[dst] += amount
        wrong = {a: (state.balances.get(a), expected[a]) for a in expected if state.balances.get(a) != expected[a]}
        if wrong:
            judged.violations.append(Violation("bank-lost-update", at, f"{name}: balances that its transfers do "
                                               f"not explain (account: (balance, expected)): {wrong}"))
        for op in transfers:
            if op.outcome == OK and op.key not in state.transfers:
                judged.violations.append(Violation("bank-lost-transfer", op.end, f"{name}: acknowledged transfer "
                                                   f"{op.key} (acknowledged at {op.end:.3f}) is missing"))
            if op.outcome == FAIL and op.key in state.transfers:
                judged.violations.append(Violation("bank-failed-but-committed", op.end,
                                                   f"{name}: transfer {op.key} was reported failed ({op.error}) "
                                                   "and is there"))
    if len({frozenset(s.transfers) for s in nodes.values()}) > 1 or len(
            {tuple(sorted(s.balances.items())) for s in nodes.values()}) > 1:
        judged.violations.append(Violation("bank-divergent", at, "the nodes do not hold the same bank: "
                                           + "; ".join(f"{n}: {len(s.transfers)} transfers"
                                                       for n, s in sorted(nodes.items()))))
    present = set().union(*(s.transfers for s in nodes.values())) if nodes else set()
    unknown = [op for op in transfers if op.outcome == UNKNOWN]
    judged.figures = {"acknowledged": sum(op.outcome == OK for op in transfers),
                      "failed": sum(op.outcome == FAIL for op in transfers),
                      "unknown": len(unknown),
                      "unknown_committed": sum(op.key in present for op in unknown)}
    return judged


def check_append(ops: Sequence[Op], lists: Mapping[str, Mapping[int, str]], at: float) -> Judgement:
    """`lists`: each node's final value of every list (comma-separated appended values)."""
    judged = Judgement()
    appends = [op for op in ops if op.kind == "append"]
    sent = {op.key: op for op in appends}
    if len({tuple(sorted(v.items())) for v in lists.values()}) > 1:
        judged.violations.append(Violation("append-divergent", at, "the nodes' lists differ"))
    for name, values in sorted(lists.items()):
        for target, text in sorted(values.items()):
            items = [item for item in text.split(",") if item]
            position: dict[str, int] = {}
            for index, item in enumerate(items):
                if item in position:
                    judged.violations.append(Violation("append-duplicate", at, f"{name}: list {target} holds "
                                                       f"{item} twice"))
                position[item] = index
                if item not in sent or sent[item].target != target:
                    judged.violations.append(Violation("append-phantom", at, f"{name}: list {target} holds "
                                                       f"{item}, which no client appended to it"))
            mine = sorted((op for op in appends if op.target == target), key=lambda op: op.start)
            for op in mine:
                if op.outcome == OK and op.key not in position:
                    judged.violations.append(Violation("append-lost", op.end, f"{name}: acknowledged append {op.key} "
                                                       f"to list {target} is missing"))
                if op.outcome == FAIL and op.key in position:
                    judged.violations.append(Violation("append-failed-but-committed", op.end,
                                                       f"{name}: append {op.key} was reported failed and is there"))
            acked = [op for op in mine if op.outcome == OK and op.key in position]
            judged.violations += _reorderings(name, target, acked, position)
    unknown = [op for op in appends if op.outcome == UNKNOWN]
    present = {item for values in lists.values() for text in values.values() for item in text.split(",")}
    judged.figures = {"acknowledged": sum(op.outcome == OK for op in appends),
                      "failed": sum(op.outcome == FAIL for op in appends), "unknown": len(unknown),
                      "unknown_committed": sum(op.key in present for op in unknown)}
    return judged


def _reorderings(name: str, target: int, acked: Sequence[Op], position: Mapping[str, int]) -> list[Violation]:
    """x acknowledged before y was sent must come before y. Sorted by start, a running maximum of the
    positions of those acknowledged before each op's start finds every such pair in one pass."""
    by_end = sorted(acked, key=lambda op: op.end)
    found: list[Violation] = []
    latest: Op | None = None  # the op at the highest position among those acknowledged so far
    index = 0
    for op in sorted(acked, key=lambda op: op.start):
        while index < len(by_end) and by_end[index].end < op.start:
            done = by_end[index]
            if latest is None or position[done.key] > position[latest.key]:
                latest = done
            index += 1
        if latest is not None and position[latest.key] > position[op.key]:
            found.append(Violation("append-reordered", op.start, f"{name}: list {target}: {latest.key} "
                                   f"(acknowledged at {latest.end:.3f}) comes after {op.key} (sent at {op.start:.3f})"))
    return found


@dataclass(frozen=True)
class ViewSample:
    """One look at one node: whether it is in a Primary Component, and who is in its view."""

    at: float
    node: str
    primary: bool
    view: frozenset[str]
    state: str = ""


def split_brain(samples: Iterable[ViewSample], hold: float = SPLIT_HOLD) -> list[Violation]:
    """Two Primary nodes, each outside the other's view, for longer than `hold` (one violation per episode)."""
    latest: dict[str, ViewSample] = {}
    since: dict[tuple[str, str], float] = {}
    reported: set[tuple[str, str]] = set()
    found: list[Violation] = []
    for sample in sorted(samples, key=lambda s: s.at):
        latest[sample.node] = sample
        fresh = {n: s for n, s in latest.items() if sample.at - s.at <= SAMPLE_FRESH and s.primary}
        conflicting = {(a, b) for a, b in itertools.combinations(sorted(fresh), 2)
                       if a not in fresh[b].view and b not in fresh[a].view}
        for pair in list(since):
            if pair not in conflicting:
                del since[pair]
                reported.discard(pair)
        for pair in conflicting:
            started = since.setdefault(pair, sample.at)
            if sample.at - started > hold and pair not in reported:
                reported.add(pair)
                a, b = pair
                found.append(Violation("split-brain", started, f"{a} (view {sorted(fresh[a].view)}) and {b} "
                                       f"(view {sorted(fresh[b].view)}) both Primary, each outside the other's "
                                       f"view, since {started:.3f}"))
    return found


def stale_reads(ops: Sequence[Op]) -> dict[str, object]:
    """Reads of list 0 through the reader endpoint that missed an append acknowledged before they began
    (with wsrep_sync_wait off a reader may lag the writer: a figure, not a failure)."""
    acked = sorted((op for op in ops if op.kind == "append" and op.target == 0 and op.outcome == OK),
                   key=lambda op: op.end)
    ends = [op.end for op in acked]
    reads = [op for op in ops if op.kind == "read" and op.outcome == OK]
    stale = 0
    for read in reads:
        latest = bisect.bisect_left(ends, read.start)  # acked[:latest] ended before the read began
        if latest and acked[latest - 1].key not in read.seen.split(","):
            stale += 1
    return {"reads": len(reads), "stale": stale, "stale_share": round(stale / len(reads), 4) if reads else 0.0}


@dataclass(frozen=True)
class FaultWindow:
    kind: str
    target: str
    start: float
    healed: float  # when the fault was taken away (the kill itself for a kill)
    recovered: float | None  # when every node was Synced again (None: not within the bound)


def unavailability(windows: Sequence[FaultWindow], ops: Sequence[Op]) -> dict[str, dict[str, float]]:
    """Per fault kind: the longest gap between two acknowledged writes from the fault's start to its
    recovery (median and max over the faults of that kind), and the time to heal (start to recovered)."""
    writes = sorted(op.end for op in ops if op.kind in ("transfer", "append") and op.outcome == OK)
    gaps: dict[str, list[float]] = {}
    heal: dict[str, list[float]] = {}
    for window in windows:
        end = window.recovered if window.recovered is not None else window.healed
        inside = [window.start, *writes[bisect.bisect_left(writes, window.start):bisect.bisect_right(writes, end)],
                  end]
        gaps.setdefault(window.kind, []).append(max(b - a for a, b in itertools.pairwise(inside)))
        if window.recovered is not None:
            heal.setdefault(window.kind, []).append(window.recovered - window.start)
    figures = {}
    for kind in sorted(gaps):
        figures[kind] = {"count": len(gaps[kind]), "gap_median": round(statistics.median(gaps[kind]), 3),
                         "gap_max": round(max(gaps[kind]), 3)}
        if heal.get(kind):
            figures[kind] |= {"heal_median": round(statistics.median(heal[kind]), 3),
                              "heal_max": round(max(heal[kind]), 3)}
        figures[kind]["not_recovered"] = sum(1 for w in windows if w.kind == kind and w.recovered is None)
    return figures
