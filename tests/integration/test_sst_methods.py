"""Every state transfer method does a real SST over TLS, and two joiners on one host transfer at the same
time. A capture of every packet between the nodes (SST, Galera, IST and client traffic) must not hold
a row the transfers carried: the stream is encrypted, whichever method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .capture import Capture
from .conftest import cli, destroy, members, new_cluster_path, query, test_address

# What each method writes to the joiner's error log when a full SST (not an IST) completed; mysqldump's
# script runs on the donor only, so its joiner just records the position the dump set.
SST_DONE = {
    "rsync": "rsync SST completed on joiner",
    "mariabackup": "mariabackup SST completed on joiner",
    "mysqldump": "SST setting local position to",
}
# What each method's SST script logs when it encrypts (mysqldump's goes through the client's TLS).
SST_TLS = {"rsync": "stunnel", "mariabackup": "Using openssl based encryption with socat", "mysqldump": None}
CANARY = "canary-9d0c1f4e-plaintext-would-show-this"


@pytest.fixture
def sst_cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    yield directory
    destroy(directory)


@pytest.mark.parametrize("method", ["rsync", "mysqldump", "mariabackup"])
def test_joiners_take_a_full_sst_with_each_method(sst_cluster: Path, method: str) -> None:
    base = ["--dir", str(sst_cluster), "--base-address", "127.0.0.10", "--sst-method", method, "--no-seed"]
    addresses = [test_address(f"127.0.0.{10 + i}") for i in range(4)]
    with Capture(sst_cluster.parent / "wire.pcap", addresses) as capture:
        cli("up", *base, "--nodes", "2")
        query(sst_cluster, "CREATE DATABASE sstdb", "node1")
        query(sst_cluster, "CREATE TABLE sstdb.t (id INT PRIMARY KEY, v TEXT)", "node1")
        query(sst_cluster, f"INSERT INTO sstdb.t VALUES (1, REPEAT('{CANARY}', 25)), (2, 'two')", "node2")
        # Two more joiners on the same host at (nearly) the same time, each needing a full SST.
        cli("up", *base, "--nodes", "4")
    wire = capture.data()
    assert len(wire) > 200_000, f"the capture holds only {len(wire)} bytes: did it see the transfers?"
    assert CANARY.encode() not in wire, f"a {method} SST, replication or a client sent a row in plaintext"
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
        if SST_TLS[method]:
            assert SST_TLS[method] in log, f"{node}'s {method} SST did not say it encrypts"
        assert "SST succeeded for position" in log
        assert query(sst_cluster, "SELECT id, LENGTH(v) FROM sstdb.t ORDER BY id", node) == [
            ["1", str(25 * len(CANARY))], ["2", "3"]]
