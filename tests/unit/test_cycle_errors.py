"""cycle_errors.py: an unexpected error in the cycle is retried with the crash backoff, never in a hot loop."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from galera_pilot.agent.cycle_errors import TRACEBACK_EVERY, CycleErrors, backoff_delay
from galera_pilot.agent.run import supervise


def test_backoff_is_the_crash_backoff() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(4, cap=5.0) == 4 and backoff_delay(5, cap=5.0) == 5.0


def test_repeated_error_backs_off_and_logs_its_traceback_once() -> None:
    errors = CycleErrors()
    error = OSError(16, "Device or resource busy")
    now, delays, tracebacks = 0.0, [], 0
    while now < 120.0:  # two minutes of the loop: 331 tracebacks, 7,467 log lines
        if errors.remaining(now) > 0:
            now = errors.retry_at
            continue
        failure = errors.failed(error, now)
        delays.append(failure.delay)
        tracebacks += failure.with_traceback
    assert len(delays) <= 10, delays
    assert tracebacks == 1
    assert errors.total == len(delays)
    assert "Device or resource busy" in failure.sentence and "retrying in 30 s" in failure.sentence
    assert errors.failed(ValueError("other"), now).with_traceback  # a new error gets its traceback
    assert errors.failed(error, now + TRACEBACK_EVERY).with_traceback  # and an old one now and then


def test_a_completed_cycle_resets_the_backoff() -> None:
    errors = CycleErrors()
    for _ in range(4):
        errors.failed(RuntimeError("x"), 0.0)
    errors.succeeded()
    assert errors.remaining(0.0) == 0 and errors.failed(RuntimeError("x"), 0.0).delay == 0.5
    assert errors.total == 5


class FailingHa:
    """What agent.supervise needs of Ha; every cycle fails like issue 20's quarantine of a mount point."""

    def __init__(self) -> None:
        self.cycle_errors = CycleErrors()
        self.wake = threading.Event()
        self.config = SimpleNamespace(timing=SimpleNamespace(loop_wait=0.2))
        self.activity = ""
        self.cycles = 0
        self.published: list[str] = []

    def run_cycle(self) -> str:
        self.cycles += 1
        raise OSError(16, "Device or resource busy: '/c/node3/data' -> '/c/node3/data.refused-1'")

    def publish(self) -> None:
        self.published.append(self.activity)

    def next_wait(self) -> float:
        return 0.0


def test_the_agent_loop_backs_off_keeps_its_heartbeat_and_does_not_flood(caplog: pytest.LogCaptureFixture) -> None:
    ha = FailingHa()
    stop = threading.Event()
    timer = threading.Timer(3.2, lambda: (stop.set(), ha.wake.set()))
    timer.start()
    with caplog.at_level(logging.INFO, logger="galera_pilot.agent.run"):
        supervise(ha, stop)  # type: ignore[arg-type]
    assert 2 <= ha.cycles <= 4, ha.cycles  # 0, 0.5, 1.5 s (then 3.5): 3-5 a second before
    assert ha.cycle_errors.total == ha.cycles
    assert [r for r in caplog.records if r.exc_info] == caplog.records[:1]  # one traceback, then one line each
    assert len(caplog.records) == ha.cycles
    assert "unexpected error in the agent cycle" in ha.activity and "Device or resource busy" in ha.activity
    assert len(ha.published) >= 10 and ha.published[-1] == ha.activity  # heartbeat during the backoff
