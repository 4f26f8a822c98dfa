"""Backoff for failures: mariadbd's crashes (exits.py) and unexpected errors in the agent cycle (agent.py).

An unexpected exception in the cycle is a bug or an unforeseen condition (issue 20: a rename of a mount
point, EBUSY, 3-5 tracebacks a second with no backoff). It is retried like a crash: after 0.5 s, doubling
up to 30 s, reset by a cycle that completes. Its traceback is logged the first time a given error is
seen and then at most every TRACEBACK_EVERY seconds; the repeats are one line each, so the log cannot
flood. The cause goes into the member's activity, and the count into /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
TRACEBACK_EVERY = 300.0


def backoff_delay(failures: int, cap: float = BACKOFF_MAX) -> float:
    """0.5 s after the first failure, doubling with each consecutive one, capped."""
    return min(BACKOFF_BASE * 2 ** (max(failures, 1) - 1), cap)


@dataclass(frozen=True)
class CycleFailure:
    delay: float
    sentence: str  # the member's activity until the retry
    with_traceback: bool  # log the traceback this time


class CycleErrors:
    def __init__(self) -> None:
        self.total = 0  # since the agent started (galera_pilot_agent_cycle_errors_total)
        self.consecutive = 0
        self.retry_at = 0.0  # monotonic
        self._tracebacks: dict[str, float] = {}  # error signature -> when its traceback was last logged

    def failed(self, error: BaseException, now: float) -> CycleFailure:
        self.total += 1
        self.consecutive += 1
        delay = backoff_delay(self.consecutive)
        self.retry_at = now + delay
        cause = f"{type(error).__name__}: {error}"
        signature = f"{type(error).__name__}:{error}"
        last = self._tracebacks.get(signature)
        with_traceback = last is None or now - last >= TRACEBACK_EVERY
        if with_traceback:
            self._tracebacks[signature] = now
        times = f" ({self.consecutive} times in a row)" if self.consecutive > 1 else ""
        return CycleFailure(delay, f"unexpected error in the agent cycle{times}: {cause}; retrying in {delay:g} s",
                            with_traceback)

    def succeeded(self) -> None:
        self.consecutive = 0
        self.retry_at = 0.0

    def remaining(self, now: float) -> float:
        return max(0.0, self.retry_at - now)
