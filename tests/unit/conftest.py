"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from galera_pilot.dcs import get_dcs
from galera_pilot.dcs.sqlite import SQLiteDCS


@pytest.fixture
def dcs_path(tmp_path: Path) -> Path:
    return tmp_path / "dcs.sqlite"


@pytest.fixture
def dcs(dcs_path: Path) -> Iterator[SQLiteDCS]:
    store = get_dcs(f"sqlite://{dcs_path}", "galera")
    assert isinstance(store, SQLiteDCS)
    yield store
    store.close()
