"""The one polling helper the integration and multi-host tests (and benches) share."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll until `predicate` returns something truthy (and return it); AssertionError after `timeout` s,
    naming `what` and the last exception the predicate raised (a condition may be unreadable while things
    move, so exceptions count as 'not yet')."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")
