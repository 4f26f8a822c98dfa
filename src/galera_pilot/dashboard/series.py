"""The dashboard's charts: the last 15 minutes per node, kept in the dashboard process's memory.

Each sample is derived from two consecutive looks at a member's /status: commits per second from
`wsrep_last_committed` (the member's seqno), the receive queue as it was, and the share of the interval
replication spent paused by flow control (from the `wsrep_flow_control_paused_ns` counter). A counter that
went backwards (the server restarted) or a member that did not answer gives a gap (None), never a spike:
a chart that draws a restart as millions of commits per second would hide the real ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class Reading:
    """What one look at a member's /status gave (None: not answered, or not running)."""

    at: float  # wall clock of the look, seconds
    seqno: int | None
    recv_queue: int | None
    paused_ns: int | None


@dataclass(frozen=True)
class Sample:
    at: float
    commits_per_second: float | None
    recv_queue: int | None
    flow_control: float | None  # 0..1: the share of the interval paused by flow control

    def to_list(self) -> list[float | int | None]:
        """[at, commits/s, recv queue, flow control]: what the page receives (compact over 15 minutes)."""
        rate = None if self.commits_per_second is None else round(self.commits_per_second, 2)
        paused = None if self.flow_control is None else round(self.flow_control, 4)
        return [round(self.at, 3), rate, self.recv_queue, paused]


def derive(previous: Reading | None, current: Reading) -> Sample:
    """The sample for the interval that ends with `current`."""
    rate: float | None = None
    paused: float | None = None
    if previous is not None and current.at > previous.at:
        span = current.at - previous.at
        if previous.seqno is not None and current.seqno is not None and current.seqno >= previous.seqno >= 0:
            rate = (current.seqno - previous.seqno) / span
        if (previous.paused_ns is not None and current.paused_ns is not None
                and current.paused_ns >= previous.paused_ns):
            paused = min(1.0, (current.paused_ns - previous.paused_ns) / 1e9 / span)
    return Sample(current.at, rate, current.recv_queue, paused)


@dataclass
class MemberSeries:
    last: Reading | None = None
    samples: deque[Sample] = field(default_factory=deque)


class Series:
    """Samples per member over a sliding window; `add` per look, `since` for what a page has not seen."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._members: dict[str, MemberSeries] = {}

    def add(self, name: str, reading: Reading) -> Sample:
        series = self._members.setdefault(name, MemberSeries())
        sample = derive(series.last, reading)
        series.last = reading if reading.seqno is not None else None
        series.samples.append(sample)
        while series.samples and series.samples[0].at < reading.at - self.window:
            series.samples.popleft()
        return sample

    def forget(self, keep: set[str]) -> None:
        """Drop the series of members no longer in the cluster (removed members)."""
        for name in set(self._members) - keep:
            del self._members[name]

    def since(self, after: float = 0.0) -> dict[str, list[list[float | int | None]]]:
        """Every member's samples taken after `after` (0: the whole window)."""
        return {name: [s.to_list() for s in series.samples if s.at > after]
                for name, series in sorted(self._members.items())}
