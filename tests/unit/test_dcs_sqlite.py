"""dcs/sqlite.py only: opening the file, its failures, and TTL boundaries on a fake clock.

What every backend must do is in test_dcs_contract.py and test_dcs_records.py (they run on SQLite too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from galera_pilot.dcs import get_dcs
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.errors import ConfigError, DCSError, PilotError

UUID = "6b1c6d2e-86c4-11ee-a1a2-0242ac120002"


def open_dcs(path: Path, cluster: str = "galera") -> SQLiteDCS:
    store = get_dcs(f"sqlite://{path}", cluster)
    assert isinstance(store, SQLiteDCS)
    return store


# ---- get_dcs ---------------------------------------------------------------------------------------------


def test_get_dcs_opens_sqlite(dcs_path: Path) -> None:
    store = open_dcs(dcs_path, "prod")
    assert store.path == dcs_path
    assert store.cluster_name == "prod"
    assert store.prefix == "/galera-pilot/prod/"
    assert dcs_path.exists()
    store.close()


def test_the_default_dcs_fixture_is_sqlite(dcs: SQLiteDCS, dcs_path: Path) -> None:
    """Modules without DCS_BACKENDS (e.g. test_ha_position.py) keep a plain SQLite store named galera."""
    assert isinstance(dcs, SQLiteDCS)
    assert dcs.path == dcs_path and dcs.cluster_name == "galera"


@pytest.mark.parametrize("url", ["sqlite://relative/dcs.sqlite", "sqlite:relative.sqlite", "sqlite://host/abs.sqlite"])
def test_get_dcs_rejects_non_absolute_sqlite_paths(url: str) -> None:
    with pytest.raises(ConfigError, match="field 'dcs'"):
        get_dcs(url, "galera")


@pytest.mark.parametrize("url", ["consul://h:8500", "http://h/x", "/var/lib/dcs.sqlite", ""])
def test_get_dcs_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ConfigError, match="field 'dcs': unknown scheme"):
        get_dcs(url, "galera")


def test_get_dcs_missing_folder_is_a_dcs_error(tmp_path: Path) -> None:
    with pytest.raises(DCSError, match="does not exist"):
        get_dcs(f"sqlite://{tmp_path}/absent/dcs.sqlite", "galera")


def test_dcs_errors_are_pilot_errors(tmp_path: Path) -> None:
    with pytest.raises(PilotError):
        get_dcs(f"sqlite://{tmp_path}/absent/dcs.sqlite", "galera")


def test_a_file_that_is_not_sqlite_is_a_dcs_error(tmp_path: Path) -> None:
    path = tmp_path / "dcs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DCSError):
        open_dcs(path)


# ---- TTL boundaries on a fake clock ------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module of dcs/sqlite.py, which reads the clock through it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:  # the wall clock: never consulted for expiry (see the skew test below)
        return 42.0


def test_ttl_with_a_fake_clock(dcs: SQLiteDCS, monkeypatch: pytest.MonkeyPatch) -> None:
    """TTL boundaries, deterministic: the SQLite backend reads the (monotonic) clock through its `time` module."""
    import galera_pilot.dcs.sqlite as sqlite_module

    clock = FakeClock(1_000_000.0)
    monkeypatch.setattr(sqlite_module, "time", clock)
    dcs.put("k", "v", 10.0)
    clock.now += 9.999
    assert dcs.get("k") is not None
    assert [kv.key for kv in dcs.list()] == ["k"]
    assert dcs.create("k", "other") is False
    clock.now += 0.001  # exactly at expiry: gone
    assert dcs.get("k") is None
    assert dcs.list() == []
    assert dcs.create("k", "other", 5.0) is True
    version = dcs.get("k").version
    clock.now += 4.0
    assert dcs.compare_and_set("k", "forever", version, None) is True
    clock.now += 10_000.0
    assert dcs.get("k").value == "forever"


def test_finished_initialize_is_permanent(dcs: SQLiteDCS, monkeypatch: pytest.MonkeyPatch) -> None:
    import galera_pilot.dcs.sqlite as sqlite_module

    clock = FakeClock(5_000.0)
    monkeypatch.setattr(sqlite_module, "time", clock)
    dcs.try_initialize("a", 30)
    assert dcs.finish_initialize("a", UUID) is True
    clock.now += 1_000_000
    record = dcs.snapshot().initialize
    assert record is not None and record.cluster_uuid == UUID
    assert json.loads(dcs.get("initialize").value)["by"] == "a"
    assert dcs.try_initialize("b", 30) is False


def test_expiry_ignores_each_process_wall_clock(dcs_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: a process whose wall clock runs 30 s ahead (or behind) sees the same live keys as the
    others; expiry follows the host's monotonic clock, which NTP and faketime never step."""
    import time

    import galera_pilot.dcs.sqlite as sqlite_module

    holder = open_dcs(dcs_path)
    assert holder.acquire_writer("node1", 3.0, "test")
    holder.put("members/node1", "{}", 10.0)

    class Skewed:
        def __init__(self, offset: float) -> None:
            self.offset = offset

        def time(self) -> float:
            return time.time() + self.offset

        def monotonic(self) -> float:
            return time.monotonic()

    for offset in (30.0, -30.0):
        monkeypatch.setattr(sqlite_module, "time", Skewed(offset))
        skewed = open_dcs(dcs_path)
        assert skewed.get("writer") is not None, f"a {offset:+g} s process saw the writer lease as expired"
        assert skewed.acquire_writer("node3", 3.0, "test") is False, "it took a lease another agent holds"
        assert [kv.key for kv in skewed.list("members/")] == ["members/node1"]
        skewed.close()


def test_a_lease_from_another_boot_is_expired(dcs: SQLiteDCS) -> None:
    """The monotonic clock starts again at boot: rows leased during another boot are gone, rows without a
    TTL stay."""
    dcs.put("lease", "v", 1000.0)
    dcs.put("forever", "v")
    dcs._connection().execute("UPDATE kv SET boot_id = 'another-boot'")
    assert dcs.get("lease") is None
    assert dcs.get("forever") is not None
    assert dcs.create("lease", "new", 5.0) is True
