"""Fixtures shared by the unit tests.

The DCS contract tests run unchanged against every backend: a test module that sets
`DCS_BACKENDS = ("sqlite", "etcd")` gets its `backend` (and so its `dcs`) fixture parametrized over them.
Other modules that merely need a store (e.g. test_ha_position.py) keep a plain SQLite one, so they neither
run twice nor start etcd.

etcd is a REAL etcd process, one for the whole session, started only when a test needs it. Tests share it
without seeing each other: each test's cluster names carry a unique tag, and every key lives under
`/galera-pilot/<cluster_name>/`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dcs_backends import ETCD_TTLS, SQLITE_TTLS, Backend, EtcdServer, TTLs, running_etcd

from galera_pilot.dcs import DCS


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    with running_etcd() as server:
        yield server


_test_numbers = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = getattr(metafunc.module, "DCS_BACKENDS", None)
    if backends and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest, dcs_path: Path) -> Backend:
    """SQLite: a fresh file per test (dcs_path), cluster names as given. etcd: the shared server, and a
    unique tag (test number and pid) before every cluster name."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        return Backend("sqlite", f"sqlite://{dcs_path}", "", SQLITE_TTLS)
    assert name == "etcd", name
    server: EtcdServer = request.getfixturevalue("etcd_server")
    return Backend("etcd", server.url, f"t{next(_test_numbers)}-{os.getpid()}-", ETCD_TTLS)


@pytest.fixture
def ttls(backend: Backend) -> TTLs:
    return backend.ttls


@pytest.fixture
def dcs_path(tmp_path: Path) -> Path:
    return tmp_path / "dcs.sqlite"


@pytest.fixture
def dcs(backend: Backend) -> Iterator[DCS]:
    store = backend.open("galera")
    yield store
    store.close()
