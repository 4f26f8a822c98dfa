"""cycle_errors.py: an unexpected error in the cycle is retried with the crash backoff, never in a hot loop."""

from __future__ import annotations

from galera_pilot.cycle_errors import TRACEBACK_EVERY, CycleErrors, backoff_delay


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
