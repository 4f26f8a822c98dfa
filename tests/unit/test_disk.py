"""mariadb/disk.py and disk_guard.py: measuring, warning, ENOSPC in the error log, refusing to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit_helpers import make_config

from galera_pilot.agent.disk_guard import DiskGuard
from galera_pilot.errors import ConfigError
from galera_pilot.mariadb.disk import (
    MIB,
    SpaceShortage,
    Thresholds,
    Usage,
    describe,
    enospc_line,
    lines_since_last_start,
    low_space,
    measure,
    size_text,
    start_refusal,
)

DATA = "/srv/c/node3/data"
# What node3's error log said in issue 20 (abridged), after an earlier, clean run.
ISSUE_LOG = """\
2026-12-01  9:58:01 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision x server_uid y as process 100
2026-12-01  9:58:03 0 [Note] WSREP: Synchronized with group, ready for connections
2026-12-01 10:00:11 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision x server_uid y as process 200
2026-12-01 10:00:13 0 [Note] WSREP: Synchronized with group, ready for connections
2026-12-01 10:01:40 2 [ERROR] InnoDB: preallocating 1048576 bytes for file ./app/t.ibd failed with error 28
2026-12-01 10:01:40 2 [FATAL] InnoDB: Error (Out of disk space) in rollback
231201 10:01:40 [ERROR] mariadbd got signal 6 ;
"""


def usage(free_mb: int, total_mb: int = 260, free_inodes: int = 60000, total_inodes: int = 61000) -> Usage:
    return Usage("data", DATA, total_mb * MIB, free_mb * MIB, total_inodes, free_inodes, True)


def test_measure_a_real_folder_and_a_missing_one(tmp_path: Path) -> None:
    found = measure("data", tmp_path)
    assert found is not None and found.total_bytes > 0 and 0 <= found.free_bytes <= found.total_bytes
    assert not found.mount_point
    missing = measure("data", tmp_path / "not" / "yet")  # the datadir before the first start
    assert missing is not None and missing.path == str(tmp_path / "not" / "yet")
    assert missing.total_bytes == found.total_bytes
    assert measure("data", Path("/")) is not None and measure("data", Path("/")).mount_point  # type: ignore[union-attr]


def test_sentence_and_sizes() -> None:
    assert size_text(11 * MIB) == "11 MB"
    assert size_text(1536 * MIB) == "1.5 GB"
    assert describe(usage(11)) == "11 MB free of 260 MB"
    assert "inodes free" in describe(usage(200, free_inodes=10))


def test_warning_thresholds() -> None:
    big = Usage("data", DATA, 1000 * 1024 * MIB, 500 * 1024 * MIB, 1000, 900)
    assert low_space(big, Thresholds()) is None
    assert "under 10 %" in (low_space(Usage("data", DATA, 1000 * 1024 * MIB, 50 * 1024 * MIB, 0, 0), Thresholds())
                            or "")
    small = low_space(usage(100), Thresholds())  # 38 % free but under 1 GiB
    assert small == f"low disk space on {DATA}: 100 MB free of 260 MB (under 1.0 GB)"
    assert "inodes under 10 %" in (low_space(Usage("data", DATA, 10**12, 10**11 * 9, 1000, 5), Thresholds()) or "")
    assert low_space(usage(100), Thresholds(warn_free_mb=0)) is None  # configurable


def test_enospc_is_read_from_the_last_run_only() -> None:
    last = lines_since_last_start(ISSUE_LOG)
    assert last[0].endswith("as process 200")
    assert enospc_line(last) == ("[ERROR] InnoDB: preallocating 1048576 bytes for file ./app/t.ibd "
                                 "failed with error 28")
    restarted = ISSUE_LOG + "2026-12-01 10:05:00 0 [Note] Starting MariaDB 10.11.19 source revision x as process 300\n"
    assert enospc_line(lines_since_last_start(restarted)) is None  # a later run that did not fail
    assert enospc_line(["[ERROR] mariadbd: Disk full (./t.MYD); waiting for someone to free some space..."])
    assert enospc_line(["[Note] WSREP: Member 1 requested state transfer"]) is None
    assert enospc_line(["[ERROR] WSREP: Failed to open channel (errno 28: No space left on device)"])


@pytest.mark.parametrize(("free_mb", "shortage_mb", "refused"), [
    (200, None, False),  # plenty
    (20, None, True),  # under start_min_free_mb (32)
    (11, 11, True),  # just died of ENOSPC: the same full disk
    (40, 11, True),  # some room back, but not start_min_free_mb more than at the death
    (43, 11, False),  # 11 + 32
    (300, 11, False),  # the filesystem was grown
])
def test_start_refusal(free_mb: int, shortage_mb: int | None, refused: bool) -> None:
    shortage = None if shortage_mb is None else SpaceShortage("failed with error 28", shortage_mb * MIB)
    sentence = start_refusal(usage(free_mb, total_mb=600 if free_mb == 300 else 260), Thresholds(), shortage)
    assert (sentence is not None) == refused, sentence
    if shortage is not None and refused:
        assert sentence is not None and sentence.startswith(f"out of disk space on {DATA}: {free_mb} MB free of "
                                                            "260 MB (mariadbd died: failed with error 28)")


def test_start_refusal_for_inodes_and_when_disabled() -> None:
    assert "inodes are free" in (start_refusal(usage(200, free_inodes=3), Thresholds(), None) or "")
    assert start_refusal(usage(0, free_inodes=0), Thresholds(start_min_free_mb=0, start_min_free_inodes=0),
                         None) is None
    assert start_refusal(None, Thresholds(), None) is None


def test_guard_waits_after_an_enospc_death_and_resumes(tmp_path: Path) -> None:
    config = make_config(base_dir=str(tmp_path / "node3"))
    config.log_dir.mkdir(parents=True)
    config.error_log.write_text(ISSUE_LOG)
    guard = DiskGuard(config)
    shortage = guard.note_exit()
    assert shortage is not None and "error 28" in shortage.line
    guard.measure()
    real_free = guard.usages()["data"].free_bytes
    # The free space now is what was free at the death: refused until start_min_free_mb more is free.
    guard.shortage = SpaceShortage(shortage.line, real_free)
    sentence = guard.judge(running=False)
    assert sentence is not None and sentence.startswith(f"out of disk space on {config.data_dir}: ")
    assert guard.refusal == sentence
    assert set(guard.report()) == {"data", "log", "base"}
    guard.shortage = SpaceShortage(shortage.line, real_free - 64 * MIB)  # space came back
    assert guard.judge(running=False) is None and guard.shortage is None
    assert guard.judge(running=True) is None


def test_guard_recover_failure_for_space_is_transient(tmp_path: Path) -> None:
    guard = DiskGuard(make_config(base_dir=str(tmp_path / "node3")))
    assert not guard.note_recover_failure("mariadbd --wsrep-recover found no position: [ERROR] Aria: bad")
    assert guard.note_recover_failure("[ERROR] InnoDB: Write to file ./ib_logfile0 failed: No space left on device")
    assert guard.shortage is not None


def test_more_locations_are_watched_and_named(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    config = make_config(base_dir=str(tmp_path / "node3"), disk={"locations": {"backup": str(tmp_path / "backups")}})
    guard = DiskGuard(config)
    guard.measure()
    assert set(guard.report()) == {"data", "log", "base", "backup"}
    assert guard.report()["backup"]["path"] == str(tmp_path / "backups")
    with pytest.raises(ConfigError, match="not data, log or base"):
        make_config(base_dir=str(tmp_path / "n"), disk={"locations": {"data": "/x"}})
    with pytest.raises(ConfigError, match="absolute"):
        make_config(base_dir=str(tmp_path / "n"), disk={"locations": {"backup": "x"}})


def test_list_column() -> None:
    from galera_pilot.control.members import disk_column

    data = usage(11).to_dict() | {"warning": "low"}
    log = Usage("log", "/l", 10**12, 9 * 10**11, 0, 0).to_dict() | {"warning": None}
    backup = Usage("backup", "/b", 100 * MIB, 5 * MIB, 0, 0).to_dict() | {"warning": "low"}
    assert disk_column({"log": log, "data": data, "backup": backup}) == (
        "LOW 11 MB free of 260 MB (4%); LOW backup: 5 MB free of 100 MB (5%)")
    assert disk_column({}) == ""


def test_a_new_agent_after_an_enospc_death_asks_only_the_minimum(tmp_path: Path) -> None:
    # Regression: the free space at agent start (maybe already grown back) must not become the bar.
    config = make_config(base_dir=str(tmp_path / "node3"))
    config.log_dir.mkdir(parents=True)
    config.error_log.write_text(ISSUE_LOG)
    guard = DiskGuard(config)
    shortage = guard.note_exit(at_start=True)
    assert shortage is not None and shortage.free_bytes == 0
    guard.measure()
    assert guard.judge(running=False) is None  # tmp_path has far more than start_min_free_mb
