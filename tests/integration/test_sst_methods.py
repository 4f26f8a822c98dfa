"""Every state transfer method does a real SST, and two joiners on one host transfer at the same time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import cli, destroy, members, new_cluster_path, query

# What each method writes to the joiner's error log when a full SST (not an IST) completed; mysqldump's
# script runs on the donor only, so its joiner just records the position the dump set.
SST_DONE = {
    "rsync": "rsync SST completed on joiner",
    "mariabackup": "mariabackup SST completed on joiner",
    "mysqldump": "SST setting local position to",
}


@pytest.fixture
def sst_cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    yield directory
    destroy(directory)


@pytest.mark.parametrize("method", ["rsync", "mysqldump", "mariabackup"])
def test_joiners_take_a_full_sst_with_each_method(sst_cluster: Path, method: str) -> None:
    base = ["--dir", str(sst_cluster), "--base-address", "127.0.0.10", "--sst-method", method, "--no-seed"]
    cli("up", *base, "--nodes", "2")
    query(sst_cluster, "CREATE DATABASE sstdb", "node1")
    query(sst_cluster, "CREATE TABLE sstdb.t (id INT PRIMARY KEY, v TEXT)", "node1")
    query(sst_cluster, "INSERT INTO sstdb.t VALUES (1, REPEAT('x', 1000)), (2, 'two')", "node2")
    # Two more joiners on the same host at (nearly) the same time, each needing a full SST.
    cli("up", *base, "--nodes", "4")
    if method == "mysqldump":
        donors = "".join((sst_cluster / n / "log" / "mariadbd.err").read_text(errors="replace")
                         for n in ("node1", "node2", "node3", "node4"))
        assert donors.count("mysqldump SST completed on donor") >= 3
    rows = members(sst_cluster)
    assert len(rows) == 4 and all(r["state"] == "Synced" and r["cluster_size"] == 4 for r in rows.values())
    events = json.loads(cli("history", "--dir", str(sst_cluster), "--format", "json").stdout)
    initializer = next(e["member"] for e in events if e["action"] == "initialize")
    for node in sorted({"node1", "node2", "node3", "node4"} - {initializer}):
        log = (sst_cluster / node / "log" / "mariadbd.err").read_text(errors="replace")
        assert SST_DONE[method] in log, f"{node} did not complete a {method} SST"
        assert "SST succeeded for position" in log
        assert query(sst_cluster, "SELECT id, LENGTH(v) FROM sstdb.t ORDER BY id", node) == [["1", "1000"], ["2", "3"]]
