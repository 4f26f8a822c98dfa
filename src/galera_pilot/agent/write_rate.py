"""The write-set traffic this node sees, in bytes per second over the last minute: what a rolling restart
weighs against the donors' gcache (lifecycle/roll.ist_shortfall). Every write-set of the cluster passes
through each node, replicated by it or received, so one node's counters measure the whole cluster."""

from __future__ import annotations

from collections import deque

WINDOW = 60.0  # s


class WriteRate:
    """Samples of wsrep_replicated_bytes + wsrep_received_bytes against the agent's monotonic clock."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, status: dict[str, str] | None) -> None:
        """One observation; a server that does not answer, or restarted (counters went down), starts over."""
        try:
            total = int((status or {})["wsrep_replicated_bytes"]) + int((status or {})["wsrep_received_bytes"])
        except (KeyError, ValueError):
            self._samples.clear()
            return
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
