"""wakeups.py: which DCS changes wake the HA cycle or the writer keeper, and which are heartbeats."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.agent.dcs_watch import DcsWatch
from galera_pilot.agent.wakeups import Wake, WakeFilter, essentials
from galera_pilot.dcs.base import RESYNC, Change
from galera_pilot.dcs.sqlite import SQLiteDCS


def member(name: str, **fields: object) -> Change:
    record = {"name": name, "state": "Synced", "cluster_status": "Primary", "running": True,
              "updated_at": 1.0, "seqno": 5, "activity": "calm"} | fields
    return Change(f"members/{name}", json.dumps(record))


def lease(key: str, holder: str, at: float) -> Change:
    return Change(key, json.dumps({"holder": holder, "reason": "r", "at": at}))


def test_a_peer_becoming_synced_wakes_both_loops() -> None:
    wake = WakeFilter("node1")
    assert wake.judge([member("node2", state="Joining")]) == Wake(cycle=True, writer=True)
    assert wake.judge([member("node2", state="Synced")]) == Wake(cycle=True, writer=True)


def test_heartbeats_wake_nothing() -> None:
    wake = WakeFilter("node1")
    wake.judge([member("node2")])
    assert wake.judge([member("node2", updated_at=2.0, seqno=99, activity="busy")]) == Wake()
    assert wake.judge([member("node2", write_rate=1234.5, recv_queue=3)]) == Wake()  # they move with the load


def test_own_record_and_history_wake_nothing() -> None:
    wake = WakeFilter("node1")
    assert wake.judge([member("node1", state="Joining"), Change("history/0001", "{}")]) == Wake()


def test_lease_renewals_wake_nothing_but_a_new_holder_or_a_release_does() -> None:
    wake = WakeFilter("node1")
    assert wake.judge([lease("writer", "node2", 1.0)]) == Wake(writer=True)
    assert wake.judge([lease("writer", "node2", 2.0)]) == Wake()  # renewal: only `at` moved
    assert wake.judge([Change("writer", None)]) == Wake(writer=True)
    assert wake.judge([lease("writer", "node3", 3.0)]) == Wake(writer=True)
    assert wake.judge([lease("bootstrap", "node3", 3.0)]) == Wake(cycle=True)
    assert wake.judge([lease("bootstrap", "node3", 4.0)]) == Wake()
    assert wake.judge([Change("bootstrap", None)]) == Wake(cycle=True)


def test_keys_reach_the_loops_that_read_them() -> None:
    wake = WakeFilter("node1")
    assert wake.judge([Change("switchover", "{}")]) == Wake(writer=True)
    assert wake.judge([Change("maintenance/node2", "{}")]) == Wake(writer=True)
    for key in ("initialize", "seed", "roster/node2", "force_bootstrap", "join"):
        assert wake.judge([Change(key, json.dumps({"k": key}))]) == Wake(cycle=True), key


def test_a_resync_wakes_both_and_forgets_what_was_seen() -> None:
    wake = WakeFilter("node1")
    wake.judge([member("node2")])
    assert wake.judge([Change(RESYNC, None)]) == Wake(cycle=True, writer=True)
    assert wake.judge([member("node2")]) == Wake(cycle=True, writer=True)  # not known any more


def test_a_batch_wakes_what_any_of_its_changes_wakes() -> None:
    wake = WakeFilter("node1")
    assert wake.judge([Change("switchover", "{}"), Change("seed", "{}")]) == Wake(cycle=True, writer=True)


def test_values_that_are_not_json_objects_are_compared_as_they_are() -> None:
    assert essentials("not json") == "not json"
    assert essentials("[1, 2]") == [1, 2]
    assert essentials(None) is None


@given(st.lists(st.tuples(st.sampled_from(["members/node1", "members/node2", "writer", "seed", "history/1"]),
                          st.one_of(st.none(), st.sampled_from(["Synced", "Joining"])),
                          st.floats(0, 10)), max_size=30))
def test_the_same_news_never_wakes_twice_in_a_row(steps: list[tuple[str, str | None, float]]) -> None:
    """Whatever came before, repeating a change with only volatile fields moved wakes nothing: the
    guarantee that keeps a lease renewal or a heartbeat from feeding a busy loop."""
    wake = WakeFilter("node1")
    for key, state, at in steps:
        value = None if state is None else json.dumps({"state": state, "at": at, "updated_at": at})
        wake.judge([Change(key, value)])
        repeat = None if state is None else json.dumps({"state": state, "at": at + 1, "updated_at": at + 1})
        if value is not None:
            assert wake.judge([Change(key, repeat)]) == Wake()


def test_dcs_watch_wakes_the_loops_from_a_real_store(tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    cycle, writer = threading.Event(), threading.Event()
    watch = DcsWatch(store, "node1", cycle.set, writer.set)
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while not writer.is_set():  # until the watch has its first listing, a write may go unreported
            assert time.monotonic() < deadline, "the watch never reported a change"
            store.put("switchover", json.dumps({"n": time.monotonic()}))
            writer.wait(0.2)
        assert not cycle.is_set()
        store.put("bootstrap", json.dumps({"holder": "node2", "at": 1.0}))
        assert cycle.wait(5), "a bootstrap lock change did not wake the cycle"
        assert watch.changes_seen >= 2
    finally:
        watch.stop()
        store.close()
