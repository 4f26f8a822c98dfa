"""Backups (issue 12, first part), on one real 2-node cluster (127.0.0.226-227) without a proxy.

What must hold:
- `backup create` is taken by the agent of the Synced member that is not the writer, frozen at one
  point: the set records the wsrep position and a CHECKSUM TABLE figure per table;
- full, incremental (on the full) and logical sets restore into a scratch mariadbd whose tables match
  those figures (`verify --restore-test`), and the incremental holds the rows written after the full;
- a corrupt object fails `verify` with the object named; a set an incremental depends on cannot be
  deleted; an incremental with no full backup, and a node that is not Synced, are refused clearly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import cli, destroy, new_cluster_path, query, test_address

ADDRESSES = {f"node{i + 1}": test_address(f"127.0.0.{226 + i}") for i in range(2)}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "2", "--base-address", ADDRESSES["node1"],
                     "--no-proxy")
        assert "2 nodes Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE shop")
        query(directory, "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40))")
        query(directory, "INSERT INTO shop.orders VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')")
        yield directory
    finally:
        destroy(directory)


def backups(directory: Path) -> list[dict]:
    return json.loads(cli("backup", "list", "--dir", str(directory), "--format", "json").stdout)


def writer(directory: Path) -> str:
    out = cli("list", "--dir", str(directory), "--format", "json").stdout
    return next(m["name"] for m in json.loads(out) if m.get("role") == "writer")


def test_refusals_before_any_backup(cluster: Path) -> None:
    result = cli("backup", "create", "--dir", str(cluster), "--incremental", check=False)
    assert result.returncode == 1 and "needs a complete full backup" in result.stderr, result.stderr
    result = cli("backup", "create", "--dir", str(cluster), "--node", "node9", check=False)
    assert result.returncode == 1 and "node9 is not a live member" in result.stderr, result.stderr
    assert backups(cluster) == []


def test_full_incremental_and_logical_restore_with_matching_checksums(cluster: Path) -> None:
    the_writer = writer(cluster)
    full = cli("backup", "create", "--dir", str(cluster)).stdout
    assert "Synced and not the writer" in full and "1 table checksums" in full, full
    [made] = backups(cluster)
    assert made["kind"] == "full" and made["status"] == "complete" and made["restorable"]
    assert made["node"] != the_writer and made["seqno"] > 0 and made["cluster_uuid"]
    assert made["to_lsn"] and made["tables_checksummed"] == 1
    shown = json.loads(cli("backup", "show", "--dir", str(cluster), made["id"]).stdout)
    assert {o["name"] for o in shown["objects"]} >= {"data.mbstream.zst", "xtrabackup_checkpoints"}
    full_checksum = shown["checksums"]["shop.orders"]

    query(cluster, "INSERT INTO shop.orders VALUES (4, 'fig')")
    cli("backup", "create", "--dir", str(cluster), "--incremental")
    cli("backup", "create", "--dir", str(cluster), "--logical")
    sets = backups(cluster)
    incremental = next(s for s in sets if s["kind"] == "incremental")
    logical = next(s for s in sets if s["kind"] == "logical")
    assert incremental["parent"] == made["id"] and incremental["seqno"] > made["seqno"]
    inc_shown = json.loads(cli("backup", "show", "--dir", str(cluster), incremental["id"]).stdout)
    assert inc_shown["checksums"]["shop.orders"] != full_checksum  # the fig row is in it
    [[_table, live]] = query(cluster, "CHECKSUM TABLE shop.orders")
    assert int(live) == inc_shown["checksums"]["shop.orders"]

    for backup in (made, incremental, logical):
        out = cli("backup", "verify", "--dir", str(cluster), backup["id"], "--restore-test").stdout
        assert "every checksum matches" in out and "1 of 1 table(s) match" in out, out


def test_corruption_and_deletion_rules(cluster: Path) -> None:
    sets = backups(cluster)
    full = next(s for s in sets if s["kind"] == "full")
    result = cli("backup", "delete", "--dir", str(cluster), full["id"], "--yes", check=False)
    assert result.returncode == 1 and "incremental backups depend on" in result.stderr, result.stderr

    logical = next(s for s in sets if s["kind"] == "logical")
    damaged = cluster / "backups" / "galera" / logical["id"] / "dump.sql.zst"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    result = cli("backup", "verify", "--dir", str(cluster), logical["id"], check=False)
    assert result.returncode == 1 and "dump.sql.zst: checksum differs" in result.stdout, result.stdout
    cli("backup", "delete", "--dir", str(cluster), logical["id"], "--yes")
    assert logical["id"] not in {s["id"] for s in backups(cluster)}
