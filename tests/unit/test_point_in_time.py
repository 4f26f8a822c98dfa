"""Which set and which archived binlogs a point-in-time restore uses (restore/point_in_time.py)."""

from __future__ import annotations

import pytest

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.manifest import Manifest
from galera_pilot.restore.point_in_time import plan_point_in_time, seqno_of_gtid

DOMAIN = 1
OLD, NEW = "uuid-old", "uuid-new"


def backup(set_id: str, seqno: int | None, history: str = OLD, kind: str = "full", status: str = "complete",
           parent: str | None = None, started: float = 0.0) -> Manifest:
    return Manifest(id=set_id, kind=kind, cluster="galera", cluster_uuid=history, started_at=started,  # type: ignore[arg-type]
                    status=status, finished_at=started + 1, parent=parent,  # type: ignore[arg-type]
                    gtid="" if seqno is None else f"0-1-5,{DOMAIN}-1-{seqno}")


def binlog(node: str, first: int, last: int, history: str = OLD, start_second: int = 1000) -> ArchivedBinlog:
    seconds = tuple((start_second + s, s) for s in range(first, last + 1))
    return ArchivedBinlog(node, f"mariadb-bin.{first:06d}", "", DOMAIN, 1, first, last, seconds[0][0], seconds[-1][0],
                          seconds, size=1, sha256="x", archived_at=float(start_second + last), history=history)


ARCHIVE = [binlog("node2", 1, 50), binlog("node2", 51, 100), binlog("node3", 90, 150)]


def test_the_newest_set_before_the_point_and_the_files_after_it() -> None:
    sets = [backup("F1", 10, started=1), backup("F2", 60, started=2), backup("F3", 140, started=3)]
    plan = plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=120, asked="GTID 1-1-120")
    assert plan.backup == "F2" and plan.base == 60 and plan.target == 120
    assert [(s.binlog.node, s.after, s.through) for s in plan.steps] == [("node2", 60, 100), ("node3", 100, 120)]
    assert "then replays the archived binlogs from GTID seqno 60 through 120 of domain 1 (GTID 1-1-120)" \
        in plan.lines()[0]
    at_backup = plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=60)
    assert at_backup.backup == "F2" and at_backup.steps == ()
    named = plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=120, backup="F1")
    assert named.backup == "F1" and named.steps[0].after == 10


def test_a_time_is_resolved_through_the_index() -> None:
    sets = [backup("F1", 10)]
    plan = plan_point_in_time(sets, ARCHIVE, DOMAIN, to_time=1000 + 77.9)
    assert plan.target == 77
    with pytest.raises(ValueError, match="archive starts later"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_time=900)


def test_refusals_name_the_reason() -> None:
    sets = [backup("F1", 10), backup("L1", 20, kind="logical"), backup("X", None), backup("R", 30, status="failed")]
    with pytest.raises(ValueError, match="after the point asked"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=5, backup="F1")
    with pytest.raises(ValueError, match="no complete physical backup of cluster uuid-old is at or before"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=5)
    with pytest.raises(ValueError, match="records no GTID position"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=50, backup="X")
    with pytest.raises(ValueError, match="no backup nope"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=50, backup="nope")
    with pytest.raises(ValueError, match="cannot be restored"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN, to_seqno=50, backup="L1")
    gap = [binlog("node2", 1, 50), binlog("node2", 60, 100)]
    with pytest.raises(ValueError, match=r"from backup F1 \(seqno 10\): GTID seqnos 51\.\.59"):
        plan_point_in_time(sets, gap, DOMAIN, to_seqno=70)
    with pytest.raises(ValueError, match="give one point"):
        plan_point_in_time(sets, ARCHIVE, DOMAIN)
    with pytest.raises(ValueError, match="is of domain 0"):
        seqno_of_gtid("0-1-5", DOMAIN)
    assert seqno_of_gtid("1-1-5", DOMAIN) == 5


def test_another_history_is_never_mixed_in() -> None:
    """After a restore to seqno 60, the new cluster (a new UUID) writes seqnos 61, 62...: the old history's
    files hold other transactions under the same numbers."""
    sets = [backup("F1", 10), backup("N1", 60, history=NEW, started=5)]
    archive = [*ARCHIVE, binlog("node1", 61, 80, history=NEW, start_second=5000)]
    plan = plan_point_in_time(sets, archive, DOMAIN, to_seqno=75)
    assert plan.backup == "N1" and {s.binlog.history for s in plan.steps} == {NEW}
    old = plan_point_in_time(sets, archive, DOMAIN, to_seqno=75, backup="F1")
    assert {s.binlog.history for s in old.steps} == {OLD}
    with pytest.raises(ValueError, match="reaches GTID seqno 80 of domain 1, not 120"):
        plan_point_in_time(sets, archive, DOMAIN, to_seqno=120, history=NEW)


def test_the_archive_follows_the_backup_retention() -> None:
    from galera_pilot.backup.binlog_index import expired_binlogs

    archive = [*ARCHIVE, binlog("node1", 61, 80, history=NEW, start_second=5000)]
    assert expired_binlogs(ARCHIVE, [], DOMAIN, OLD) == [], "no backup records a position yet: all kept"
    sets = [backup("F2", 60), backup("N1", 60, history=NEW, started=5)]
    assert [b.file for b in expired_binlogs(archive, sets, DOMAIN, NEW)] == ["mariadb-bin.000001"]
    only_new = [backup("N1", 60, history=NEW, started=5)]
    assert {b.history for b in expired_binlogs(archive, only_new, DOMAIN, NEW)} == {OLD}, \
        "an old history with no kept backup goes entirely"
    assert expired_binlogs(archive, only_new, DOMAIN, OLD) == [], "the current history is kept without a backup"


def test_a_failed_restore_attempt_is_recorded_in_its_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The restoring agent records why its attempt failed, and stops (galera-pilot restore clears it)."""
    import json

    from galera_pilot.backup.restore_order import RESTORE, RestoreOrder
    from galera_pilot.dcs.backup import fail_restore
    from galera_pilot.dcs.sqlite import SQLiteDCS

    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    try:
        assert not fail_restore(store, "F1", "nothing ordered")
        store.create(RESTORE, json.dumps(RestoreOrder("F1", "node1", "x", 0.0, "restoring").to_dict()))
        assert not fail_restore(store, "F2", "another set")
        assert fail_restore(store, "F1", "the replay was refused")
        order = store.snapshot(with_history=False).restore
        assert order is not None and order.failed == "the replay was refused" and order.phase == "restoring"
    finally:
        store.close()
