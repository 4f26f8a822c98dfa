"""The DCS contract: atomic key/value primitives, TTLs, namespacing, and races between real processes.

Every test here runs unchanged against each backend (SQLite, and a real etcd): `DCS_BACKENDS` makes
conftest parametrize the `backend` and `dcs` fixtures. Backend-specific behaviour lives in
test_dcs_sqlite.py and test_dcs_etcd.py.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable

import dcs_race_workers
from dcs_backends import Backend, Recorder, TTLs

from galera_pilot.cluster import HistoryEvent
from galera_pilot.dcs import DCS, Change

DCS_BACKENDS = ("sqlite", "etcd")
LONG_TTL = 600.0


# ---- primitives -----------------------------------------------------------------------------------------


def test_create_if_absent(dcs: DCS) -> None:
    assert dcs.get("k") is None
    assert dcs.create("k", "one") is True
    assert dcs.create("k", "two") is False
    kv = dcs.get("k")
    assert kv is not None
    assert (kv.key, kv.value) == ("k", "one")


def test_versions_increase_with_every_write(dcs: DCS) -> None:
    dcs.create("a", "1")
    dcs.put("b", "1")
    first_a = dcs.get("a").version
    first_b = dcs.get("b").version
    assert first_a != first_b
    dcs.put("a", "2")
    assert dcs.get("a").version > max(first_a, first_b)


def test_compare_and_set_right_and_wrong_version(dcs: DCS) -> None:
    dcs.create("k", "v1")
    v1 = dcs.get("k").version
    assert dcs.compare_and_set("k", "v2", v1) is True
    kv = dcs.get("k")
    assert kv.value == "v2"
    assert kv.version != v1
    # The old version is stale now: a second writer holding it must lose.
    assert dcs.compare_and_set("k", "v3", v1) is False
    assert dcs.get("k").value == "v2"
    assert dcs.compare_and_set("k", "v3", kv.version) is True
    assert dcs.get("k").value == "v3"


def test_compare_and_set_on_absent_key_fails(dcs: DCS) -> None:
    # Version 0 matters: etcd compares an absent key's revisions as 0.
    assert dcs.compare_and_set("absent", "v", 0) is False
    assert dcs.compare_and_set("absent", "v", 1) is False
    assert dcs.compare_and_set("absent", "v", -1) is False
    assert dcs.get("absent") is None
    assert dcs.delete("absent", 0) is False


def test_version_is_not_reused_after_delete_and_recreate(dcs: DCS) -> None:
    dcs.create("k", "first")
    old = dcs.get("k").version
    assert dcs.delete("k") is True
    dcs.create("k", "second")
    assert dcs.get("k").version != old
    assert dcs.compare_and_set("k", "third", old) is False  # no ABA
    assert dcs.get("k").value == "second"


def test_put_overwrites_and_get_reads(dcs: DCS) -> None:
    dcs.put("k", "a")
    dcs.put("k", "b")
    assert dcs.get("k").value == "b"
    assert dcs.create("k", "c") is False


def test_list_by_prefix_sorted(dcs: DCS) -> None:
    for key in ("members/b", "members/a", "membersX", "roster/a", "members/c/deep", "member"):
        dcs.put(key, key.upper())
    assert [kv.key for kv in dcs.list("members/")] == ["members/a", "members/b", "members/c/deep"]
    assert [kv.value for kv in dcs.list("members/")] == ["MEMBERS/A", "MEMBERS/B", "MEMBERS/C/DEEP"]
    assert [kv.key for kv in dcs.list("roster/")] == ["roster/a"]
    assert [kv.key for kv in dcs.list("nothing/")] == []
    assert [kv.key for kv in dcs.list()] == sorted(
        ["members/b", "members/a", "membersX", "roster/a", "members/c/deep", "member"])


def test_list_versions_match_get(dcs: DCS) -> None:
    dcs.put("a", "1")
    dcs.create("b", "2", LONG_TTL)
    assert dcs.list() == [dcs.get("a"), dcs.get("b")]


def test_delete_without_version(dcs: DCS) -> None:
    dcs.put("k", "v")
    assert dcs.delete("k") is True
    assert dcs.get("k") is None
    assert dcs.delete("k") is False
    assert dcs.create("k", "again") is True


def test_delete_with_version(dcs: DCS) -> None:
    dcs.put("k", "v1")
    v1 = dcs.get("k").version
    dcs.put("k", "v2")
    assert dcs.delete("k", v1) is False
    assert dcs.get("k").value == "v2"
    assert dcs.delete("k", dcs.get("k").version) is True
    assert dcs.get("k") is None
    assert dcs.delete("k", v1) is False


def test_values_are_stored_verbatim(dcs: DCS) -> None:
    value = json.dumps({"text": "ünïcødé ✓ 'quotes' \"double\" \n newline", "n": [1, 2.5, None]})
    dcs.put("k", value)
    assert dcs.get("k").value == value
    dcs.put("empty", "")
    assert dcs.get("empty").value == ""
    raw = "not json: ünïcødé ✓ \t"
    dcs.put("raw", raw)
    assert dcs.get("raw").value == raw


def test_unicode_keys(dcs: DCS) -> None:
    dcs.put("members/nœud-1", "a")
    dcs.put("members/node-1", "b")
    assert dcs.get("members/nœud-1").value == "a"
    assert [kv.key for kv in dcs.list("members/")] == ["members/node-1", "members/nœud-1"]


# ---- TTLs -------------------------------------------------------------------------------------------------


def test_ttl_expiry_hides_keys_from_get_and_list(dcs: DCS, ttls: TTLs) -> None:
    dcs.put("members/short", "s", ttls.short)
    dcs.create("members/short2", "s", ttls.short)
    dcs.put("members/long", "l", LONG_TTL)
    dcs.put("members/forever", "f")
    time.sleep(ttls.past_short)
    assert dcs.get("members/short") is None
    assert dcs.get("members/short2") is None
    assert dcs.get("members/long").value == "l"
    assert dcs.get("members/forever").value == "f"
    assert [kv.key for kv in dcs.list("members/")] == ["members/forever", "members/long"]


def test_create_succeeds_over_an_expired_key(dcs: DCS, ttls: TTLs) -> None:
    assert dcs.create("lease", "old", ttls.short) is True
    time.sleep(ttls.past_short)
    assert dcs.create("lease", "new", LONG_TTL) is True
    assert dcs.get("lease").value == "new"
    assert dcs.create("lease", "newer", LONG_TTL) is False


def test_cas_and_delete_fail_on_an_expired_key(dcs: DCS, ttls: TTLs) -> None:
    dcs.create("a", "v", ttls.short)
    dcs.create("b", "v", ttls.short)
    kv_a, kv_b = dcs.get("a"), dcs.get("b")
    # (On a machine slow enough for them to be gone already, any version must be refused just the same.)
    version_a = kv_a.version if kv_a else 1
    version_b = kv_b.version if kv_b else 1
    time.sleep(ttls.past_short)
    assert dcs.compare_and_set("a", "w", version_a) is False
    assert dcs.get("a") is None
    assert dcs.delete("b", version_b) is False
    assert dcs.delete("b") is False


def test_cas_sets_a_new_ttl(dcs: DCS, ttls: TTLs) -> None:
    dcs.create("shorten", "v", LONG_TTL)
    dcs.create("lengthen", "v", ttls.short)
    dcs.create("permanent", "v", ttls.short)
    assert dcs.compare_and_set("shorten", "w", dcs.get("shorten").version, ttls.short)
    lengthen = dcs.get("lengthen")
    permanent = dcs.get("permanent")
    # These two were created a moment ago with a short TTL; on a very slow machine they may be gone already,
    # in which case CAS must refuse (checked elsewhere) and this test has nothing to say about them.
    extended = lengthen is not None and dcs.compare_and_set("lengthen", "w", lengthen.version, LONG_TTL)
    made_permanent = permanent is not None and dcs.compare_and_set("permanent", "w", permanent.version, None)
    time.sleep(ttls.past_short)
    assert dcs.get("shorten") is None
    if extended:
        assert dcs.get("lengthen").value == "w"
    if made_permanent:
        assert dcs.get("permanent").value == "w"


def test_put_sets_or_clears_the_ttl(dcs: DCS, ttls: TTLs) -> None:
    """A put without ttl makes a leased key permanent; a put with one makes a permanent key expire."""
    dcs.put("to_permanent", "v", ttls.short)
    dcs.put("to_leased", "v")
    dcs.put("to_permanent", "w")
    dcs.put("to_leased", "w", ttls.short)
    time.sleep(ttls.past_short)
    assert dcs.get("to_permanent").value == "w"
    assert dcs.get("to_leased") is None


# ---- namespacing ------------------------------------------------------------------------------------------


def test_cluster_names_do_not_see_each_other(backend: Backend) -> None:
    one = backend.open("galera")
    two = backend.open("galera2")
    three = backend.open("gal")  # a prefix of the others' names: the trailing / of the namespace matters
    assert one.create("initialize", "one") is True
    assert two.create("initialize", "two") is True
    assert three.create("initialize", "three") is True
    one.put("members/a", "1")
    two.put("members/b", "2")
    assert one.get("initialize").value == "one"
    assert two.get("initialize").value == "two"
    assert [kv.key for kv in one.list()] == ["initialize", "members/a"]
    assert [kv.key for kv in two.list()] == ["initialize", "members/b"]
    assert [kv.key for kv in three.list()] == ["initialize"]
    assert one.get("members/b") is None
    assert one.delete("members/b") is False
    assert two.get("members/b").value == "2"
    for store in (one, two, three):
        store.close()


def test_cluster_names_lists_every_cluster_with_live_keys(backend: Backend, ttls: TTLs) -> None:
    # What an operator who mistyped --cluster is shown: every cluster the store holds, ours or not.
    one, two, gone = backend.open("names1"), backend.open("names2"), backend.open("names3")
    one.put("members/a", "1")
    two.create("initialize", "x")
    two.put("history/1", "y")
    gone.put("members/c", "1", ttl=ttls.short)
    names = set(one.cluster_names())
    assert {backend.cluster("names1"), backend.cluster("names2"), backend.cluster("names3")} <= names
    time.sleep(ttls.past_short)
    assert backend.cluster("names3") not in set(two.cluster_names()), "a cluster whose keys all expired is gone"
    for store in (one, two, gone):
        store.close()


def test_prefix_is_the_cluster_namespace(backend: Backend) -> None:
    store = backend.open("prod")
    assert store.cluster_name == backend.cluster("prod")
    assert store.prefix == f"/galera-pilot/{backend.cluster('prod')}/"
    store.close()


def test_two_handles_on_one_store_share_data(backend: Backend) -> None:
    first = backend.open()
    second = backend.open()
    assert first.create("k", "v") is True
    assert second.create("k", "w") is False
    assert second.get("k").value == "v"
    first.close()
    second.close()


def test_close_and_reuse(dcs: DCS) -> None:
    dcs.put("k", "v")
    dcs.close()
    dcs.close()  # idempotent
    assert dcs.get("k").value == "v"  # reopens its connection on demand


# ---- concurrency -----------------------------------------------------------------------------------------


def test_threads_race_on_create(dcs: DCS) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        barrier.wait()
        if dcs.create("initialize", str(i)):
            winners.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert dcs.get("initialize").value == str(winners[0])


def run_processes(target: Callable[..., None], backend: Backend, count: int, arg: int) -> list[tuple]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    processes = [ctx.Process(target=target, args=(backend.url, backend.tag, f"n{i}", arg, barrier, results))
                 for i in range(count)]
    for process in processes:
        process.start()
    collected = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return collected


def test_processes_race_on_initialize_exactly_one_wins(backend: Backend) -> None:
    rounds = 25
    backend.open().close()  # SQLite: create the schema once
    results = run_processes(dcs_race_workers.race_initialize, backend, 8, rounds)
    wins_per_round = {r: [name for name, won in results if r in won] for r in range(rounds)}
    assert all(len(winners) == 1 for winners in wins_per_round.values()), wins_per_round
    for round_no, winners in wins_per_round.items():
        store = backend.open(f"race{round_no}")
        assert json.loads(store.get("initialize").value)["by"] == winners[0]
        store.close()


def test_processes_race_on_bootstrap_lock_exactly_one_wins(backend: Backend) -> None:
    rounds = 15
    backend.open().close()
    results = run_processes(dcs_race_workers.race_bootstrap_lock, backend, 8, rounds)
    for round_no in range(rounds):
        winners = [name for name, won in results if round_no in won]
        assert len(winners) == 1, (round_no, winners)
        store = backend.open(f"lock{round_no}")
        assert store.snapshot().bootstrap_lock_holder == winners[0]
        store.close()


def test_processes_cas_counter_loses_no_increment(backend: Backend) -> None:
    store = backend.open("counter")
    store.put("counter", "0")
    results = run_processes(dcs_race_workers.increment_counter, backend, 4, 50)
    assert json.loads(store.get("counter").value) == 200
    written = sorted(value for _, values, _ in results for value in values)
    assert written == list(range(1, 201))  # every value written exactly once: no lost or double update
    store.close()


# ---- watch -------------------------------------------------------------------------------------------------


def test_watch_reports_puts_deletes_and_expiries(backend: Backend, ttls: TTLs) -> None:
    watcher, writer = backend.open(), backend.open()
    recorder = Recorder(watcher)
    try:
        recorder.ready(writer)
        writer.put("members/a", "1")
        recorder.wait_for(lambda cs: Change("members/a", "1") in cs, 5, "put")
        writer.delete("members/a")
        recorder.wait_for(lambda cs: Change("members/a", None) in cs, 5, "delete")
        writer.create("writer", "w", ttls.short)
        recorder.wait_for(lambda cs: Change("writer", "w") in cs, 5, "create")
        recorder.wait_for(lambda cs: Change("writer", None) in cs, ttls.past_short + 5, "expiry")
    finally:
        recorder.stop.set()
        watcher.close()
        writer.close()


def test_watch_skips_history_and_other_clusters(backend: Backend) -> None:
    watcher, writer, other = backend.open("galera"), backend.open("galera"), backend.open("galera2")
    recorder = Recorder(watcher)
    try:
        recorder.ready(writer)
        other.put("members/x", "elsewhere")
        writer.put("history/0001", "{}")
        writer.put("members/last", "1")
        recorder.wait_for(lambda cs: Change("members/last", "1") in cs, 5, "put after the ignored ones")
        time.sleep(0.3)  # the polling watch reports per listing: give a stray change time to show
        assert [c.key for c in recorder.changes] == ["members/last"], recorder.changes
    finally:
        recorder.stop.set()
        for store in (watcher, writer, other):
            store.close()


def test_watch_stops_when_told(backend: Backend) -> None:
    watcher, writer = backend.open(), backend.open()
    recorder = Recorder(watcher)
    try:
        recorder.ready(writer)
        recorder.stop.set()
        time.sleep(0.5)  # a stop is seen at the next listing or message
        writer.put("members/late", "1")
        time.sleep(0.5)
        assert Change("members/late", "1") not in recorder.changes
    finally:
        watcher.close()
        writer.close()


# ---- the high-water mark (issue 18) ------------------------------------------------------------------------
HW_UUID = "11111111-2222-3333-4444-555555555555"


def test_the_high_water_mark_only_rises(dcs: DCS) -> None:
    assert dcs.snapshot().high_water is None
    assert dcs.raise_high_water(HW_UUID, 10, "node1")
    assert not dcs.raise_high_water(HW_UUID, 10, "node2"), "equal is no rise"
    assert not dcs.raise_high_water(HW_UUID, 7, "node2")
    assert dcs.raise_high_water(HW_UUID, 12, "node3")
    mark = dcs.snapshot().high_water
    assert mark is not None and (mark.uuid, mark.seqno, mark.member) == (HW_UUID, 12, "node3")
    other = "99999999-8888-7777-6666-555555555555"
    assert not dcs.raise_high_water(other, 99, "node1"), "another cluster's position never moves the mark"
    dcs.reset_high_water(other, 3, "node2")  # a new cluster (or a person's forced bootstrap)
    mark = dcs.snapshot().high_water
    assert mark is not None and (mark.uuid, mark.seqno, mark.member) == (other, 3, "node2")


def test_concurrent_raises_end_at_the_highest(dcs: DCS) -> None:
    threads = [threading.Thread(target=dcs.raise_high_water, args=(HW_UUID, seqno, f"node{seqno}"))
               for seqno in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mark = dcs.snapshot().high_water
    assert mark is not None and (mark.seqno, mark.member) == (8, "node8")


def test_trim_history_keeps_the_newest_and_what_decisions_look_back_at(dcs: DCS) -> None:
    for index in range(7):
        dcs.record_history(HistoryEvent(1000.0 + index, "node1", "galera", f"notification {index}", {}))
    for index in range(4):
        dcs.record_history(HistoryEvent(2000.0 + index, "node2", "join", f"decision {index}", {}))
    dcs.record_history(HistoryEvent(999.0, "galera-pilot", "roll", "an aborted upgrade", {"aborted": True}))
    # Notifications beyond the newest 2 go (5), then everything unprotected beyond the newest 3 (3 more).
    assert dcs.trim_history(keep=3, keep_notifications=2) == 8
    history = sorted(dcs.snapshot().history, key=lambda event: event.at)
    assert [event.reason for event in history] == ["an aborted upgrade", "decision 1", "decision 2", "decision 3"]
    assert dcs.trim_history(keep=3, keep_notifications=2) == 0


def test_list_outside_leaves_one_prefix_out_and_nothing_else(dcs: DCS) -> None:
    for key in ("a", "history", "historyx", "maintenance/n1", "zz"):
        dcs.put(key, "{}")
    dcs.record_history(HistoryEvent(1.0, "n1", "x", "y", {}))
    dcs.record_history(HistoryEvent(2.0, "n1", "x", "z", {}))
    assert [kv.key for kv in dcs.list_outside("history/")] == ["a", "history", "historyx", "maintenance/n1", "zz"]
    assert [kv.key for kv in dcs.list_outside("history/")] == [kv.key for kv in dcs.list("")
                                                               if not kv.key.startswith("history/")]
    snapshot = dcs.snapshot(with_history=False)
    assert snapshot.history == () and not snapshot.history_read and snapshot.maintenance == {"n1"}
    assert len(dcs.snapshot().history) == 2 and dcs.snapshot().history_read
