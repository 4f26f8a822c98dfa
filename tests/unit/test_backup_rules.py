"""backup/: which backup is due and which sets may go, exhaustively over generated repositories."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.backup.catalog import BackupSet, by_id, chain_root, restorable
from galera_pilot.backup.retention import DAY, Retention, expired
from galera_pilot.backup.schedule import HOUR, Schedule, next_backup
from galera_pilot.dcs.backup import hold_backup_lock, release_backup_lock
from galera_pilot.dcs.sqlite import SQLiteDCS

NOW = 1_000 * DAY
DAILY = Schedule(full_every=24 * HOUR, incremental_every=4 * HOUR)


def full(id_: str, finished: float, status: str = "complete") -> BackupSet:
    return BackupSet(id_, "full", finished - 60, finished if status != "running" else None, status)  # type: ignore[arg-type]


def incr(id_: str, parent: str, finished: float, status: str = "complete") -> BackupSet:
    return BackupSet(id_, "incremental", finished - 30, finished if status != "running" else None,
                     status, parent=parent)  # type: ignore[arg-type]


# ---- the catalog -------------------------------------------------------------------------------------------
def test_an_incremental_is_restorable_only_through_a_complete_chain() -> None:
    sets = by_id([full("f1", NOW - 10 * HOUR), incr("i1", "f1", NOW - 8 * HOUR), incr("i2", "i1", NOW - 6 * HOUR),
                  incr("orphan", "gone", NOW - 5 * HOUR), incr("i3", "bad", NOW - 4 * HOUR),
                  full("bad", NOW - 9 * HOUR, "failed")])
    assert restorable(sets["i2"], sets) and chain_root(sets["i2"], sets) == sets["f1"]
    assert not restorable(sets["orphan"], sets) and chain_root(sets["orphan"], sets) is None
    assert not restorable(sets["i3"], sets)  # its full failed
    loop = by_id([incr("a", "b", NOW), incr("b", "a", NOW)])
    assert chain_root(loop["a"], loop) is None and not restorable(loop["a"], loop)


def test_the_record_survives_json_and_ignores_unknown_fields() -> None:
    backup = incr("i1", "f1", NOW)
    assert BackupSet.from_dict({**backup.to_dict(), "newer_field": 1}) == backup


# ---- the schedule ------------------------------------------------------------------------------------------
def test_an_empty_repository_takes_a_full_backup_now() -> None:
    due = next_backup(DAILY, [], NOW)
    assert due is not None and (due.kind, due.at) == ("full", NOW)


def test_incrementals_between_fulls_on_the_newest_set_of_the_chain() -> None:
    sets = [full("f1", NOW - 10 * HOUR), incr("i1", "f1", NOW - 6 * HOUR)]
    due = next_backup(DAILY, sets, NOW)
    assert due is not None and (due.kind, due.parent, due.at) == ("incremental", "i1", NOW - 2 * HOUR)
    assert next_backup(Schedule(full_every=24 * HOUR), sets, NOW).kind == "full"  # type: ignore[union-attr]


def test_a_missed_run_is_caught_up_once_not_doubled() -> None:
    """The agents were down for three days: one full backup is due (in the past), not three."""
    due = next_backup(DAILY, [full("f1", NOW - 3 * DAY)], NOW)
    assert due is not None and due.kind == "full" and due.at == NOW - 2 * DAY
    after = next_backup(DAILY, [full("f1", NOW - 3 * DAY), full("f2", NOW)], NOW)
    assert after is not None and after.at == NOW + 4 * HOUR and after.kind == "incremental"


def test_nothing_is_due_while_one_runs_and_a_failure_backs_off() -> None:
    assert next_backup(DAILY, [full("f1", NOW - DAY), full("f2", NOW, "running")], NOW) is None
    failed = next_backup(DAILY, [full("f1", NOW - 2 * DAY), full("f2", NOW - 60, "failed")], NOW)
    assert failed is not None and failed.kind == "full" and failed.at == NOW - 60 + DAILY.retry_after
    assert next_backup(Schedule(full_every=0), [], NOW) is None


def test_a_broken_chain_is_not_extended() -> None:
    sets = [full("f1", NOW - 10 * HOUR), incr("i1", "f1", NOW - 6 * HOUR, "failed")]
    due = next_backup(DAILY, sets, NOW)
    assert due is not None and due.kind == "incremental" and due.parent == "f1"


# ---- retention -----------------------------------------------------------------------------------------------
def test_two_chains_and_the_window_are_kept_the_rest_goes() -> None:
    sets = [full("f1", NOW - 20 * DAY), incr("i1", "f1", NOW - 19 * DAY),
            full("f2", NOW - 10 * DAY), incr("i2", "f2", NOW - 9 * DAY),
            full("f3", NOW - 5 * DAY), incr("i3", "f3", NOW - 4 * DAY),
            full("f4", NOW - 1 * DAY)]
    # keep_full 2: f4 and f3 chains; the 7-day window starts inside f3's time, its anchor is f2's chain.
    assert expired(Retention(keep_full=2, window=7 * DAY), sets, NOW) == ["f1", "i1"]
    assert expired(Retention(keep_full=1, window=0), sets, NOW) == ["f1", "i1", "f2", "i2", "f3", "i3"]


def test_the_newest_full_and_logical_backups_are_never_deleted() -> None:
    sets = [full("f1", NOW - 100 * DAY), BackupSet("d1", "logical", NOW - 90 * DAY, NOW - 90 * DAY, "complete")]
    assert expired(Retention(keep_full=0, window=0), sets, NOW) == []


ids = st.sampled_from([f"b{i}" for i in range(8)])


@st.composite
def repositories(draw: st.DrawFn) -> list[BackupSet]:
    sets: list[BackupSet] = []
    for index in range(draw(st.integers(0, 8))):
        finished = NOW - draw(st.floats(0, 30 * DAY))
        status = draw(st.sampled_from(["complete", "complete", "complete", "failed", "running"]))
        kind = draw(st.sampled_from(["full", "incremental", "logical"]))
        parent = draw(ids) if kind == "incremental" else None
        sets.append(BackupSet(f"b{index}", kind, finished - 60, None if status == "running" else finished,
                              status, parent=parent))  # type: ignore[arg-type]
    return sets


@given(repositories(), st.integers(0, 4), st.floats(0, 20 * DAY))
def test_retention_never_breaks_what_it_keeps(sets: list[BackupSet], keep_full: int, window: float) -> None:
    gone = set(expired(Retention(keep_full=keep_full, window=window), sets, NOW))
    known = by_id(sets)
    kept = [s for s in sets if s.id not in gone]
    for backup in kept:  # a kept incremental's chain is kept whole
        current, seen = backup, {backup.id}
        while current.kind == "incremental" and current.parent in known and current.parent not in seen:
            assert current.parent not in gone, (backup, gone)
            current = known[current.parent]
            seen.add(current.id)
    fulls = [s for s in sets if s.kind == "full" and restorable(s, known)]
    if fulls:
        newest = max(fulls, key=lambda s: s.finished_at or 0.0)
        assert newest.id not in gone
    assert not {s.id for s in sets if s.status == "running"} & gone
    # Every moment of the window after the oldest restorable full keeps a restorable full at or before it.
    start = NOW - window
    before = [s for s in fulls if (s.finished_at or 0.0) <= start]
    if before:
        assert max(before, key=lambda s: s.finished_at or 0.0).id not in gone


@given(repositories(), st.floats(0, 2 * DAY), st.floats(0, 12 * HOUR))
def test_the_schedule_is_one_answer_never_two_backups_at_once(sets: list[BackupSet], full_every: float,
                                                               incremental_every: float) -> None:
    due = next_backup(Schedule(full_every=full_every, incremental_every=incremental_every), sets, NOW)
    if any(s.status == "running" for s in sets) or full_every <= 0:
        assert due is None
        return
    assert due is not None
    if due.kind == "incremental":
        known = by_id(sets)
        assert due.parent in known and restorable(known[due.parent], known)


def test_one_backup_lock_at_a_time_and_the_snapshot_names_its_holder(tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    assert hold_backup_lock(store, "node2", "20261202-full", 30.0)
    assert not hold_backup_lock(store, "node3", "20261202-other", 30.0)  # one at a time
    assert hold_backup_lock(store, "node2", "20261202-full", 30.0)  # its holder renews it
    assert store.snapshot(with_history=False).backup_holder == "node2"
    release_backup_lock(store, "node3")  # not the holder: nothing happens
    assert store.snapshot(with_history=False).backup_holder == "node2"
    release_backup_lock(store, "node2")
    assert store.snapshot(with_history=False).backup_holder is None
    assert hold_backup_lock(store, "node3", "20261202-other", 30.0)
