"""Worker functions for the multi-process DCS races (a module of its own so `spawn` children import little).

Each worker opens the store by URL through get_dcs, exactly as an agent does, so the same races run
against SQLite (`sqlite:///...`) and etcd (`etcd://...`). `tag` is the test's prefix for cluster names
(see conftest.Backend).
"""

from __future__ import annotations

import json
from typing import Any

from galera_pilot.dcs import get_dcs


def race_initialize(url: str, tag: str, name: str, rounds: int, barrier: Any, results: Any) -> None:
    """Each round, every worker tries to create `initialize` in that round's cluster namespace at once."""
    won: list[int] = []
    for round_no in range(rounds):
        store = get_dcs(url, f"{tag}race{round_no}")
        barrier.wait()
        if store.try_initialize(name, 60.0):
            won.append(round_no)
        store.close()
    results.put((name, won))


def race_bootstrap_lock(url: str, tag: str, name: str, rounds: int, barrier: Any, results: Any) -> None:
    won: list[int] = []
    for round_no in range(rounds):
        store = get_dcs(url, f"{tag}lock{round_no}")
        barrier.wait()
        if store.acquire_bootstrap_lock(name, 60.0, "race"):
            won.append(round_no)
        store.close()
    results.put((name, won))


def increment_counter(url: str, tag: str, name: str, increments: int, barrier: Any, results: Any) -> None:
    """Read-modify-CAS loop: every successful CAS writes the next counter value exactly once."""
    store = get_dcs(url, f"{tag}counter")
    barrier.wait()
    written: list[int] = []
    failures = 0
    while len(written) < increments:
        current = store.get("counter")
        assert current is not None
        value = json.loads(current.value) + 1
        if store.compare_and_set("counter", json.dumps(value), current.version):
            written.append(value)
        else:
            failures += 1
    store.close()
    results.put((name, written, failures))
