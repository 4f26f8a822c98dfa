"""Snapshots (issue 12): `snapshot save` seals a real 2-node cluster (127.0.0.180-181) into one file, and
`snapshot restore` makes a working cluster of it in a new folder (127.0.0.182-183).

What must hold:
- the file is mode 0600 and holds no password in the clear; an existing file is never written over;
- the new cluster has the snapshot's rows, its cluster-wide settings and its accounts (the same admin
  password works), under a new cluster UUID, every member Synced, with a new base backup of its own;
- a wrong key and a folder that is not new are refused by name, and nothing is laid out for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import cli, destroy, new_cluster_path, query, test_address

SOURCE = test_address("127.0.0.180")
RESTORED = test_address("127.0.0.182")


@pytest.fixture(scope="module")
def source() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "2", "--base-address", SOURCE, "--no-proxy")
        assert "2 nodes Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE shop")
        query(directory, "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40))")
        query(directory, "INSERT INTO shop.orders VALUES (1, 'apple'), (2, 'pear')")
        cli("edit-config", "--dir", str(directory), "--yes", "--set", "mariadb.max_connections=321")
        yield directory
    finally:
        destroy(directory)


def members(directory: Path) -> list[dict]:
    return json.loads(cli("list", "--dir", str(directory), "--format", "json").stdout)


def test_a_cluster_sealed_into_one_file_comes_back_whole_in_a_new_folder(source: Path, tmp_path: Path) -> None:
    key = tmp_path / "snapshot.key"
    cli("backup", "key", str(key))
    snapshot = tmp_path / "shop.snapshot"
    saved = cli("snapshot", "save", "--dir", str(source), str(snapshot), "--key", str(key)).stdout
    assert "Synced and not the writer" in saved and f"snapshot {snapshot}" in saved, saved
    password = yaml.safe_load((source / "credentials.yaml").read_text())["admin_password"]
    assert snapshot.stat().st_mode & 0o777 == 0o600 and password.encode() not in snapshot.read_bytes()
    again = cli("snapshot", "save", "--dir", str(source), str(snapshot), "--key", str(key), check=False)
    assert again.returncode == 1 and "never written over" in again.stderr, again.stderr
    query(source, "INSERT INTO shop.orders VALUES (3, 'written after the snapshot')")

    restored = new_cluster_path()
    try:
        out = cli("snapshot", "restore", "--dir", str(restored), str(snapshot), "--key", str(key),
                  "--base-address", RESTORED, timeout=900).stdout
        assert "new cluster" in out and "new base backup" in out, out
        data_nodes = [m for m in members(restored) if m.get("role") != "arbitrator"]
        assert len(data_nodes) == 2 and all(m["state"] == "Synced" for m in data_nodes), data_nodes
        old_uuid = members(source)[0]["cluster_uuid"]
        assert {m["cluster_uuid"] for m in data_nodes} != {old_uuid}
        for member in ("node1", "node2"):
            rows = query(restored, "SELECT id, item FROM shop.orders ORDER BY id", member=member)
            assert rows == [["1", "apple"], ["2", "pear"]], (member, rows)
        assert query(restored, "SELECT @@max_connections") == [["321"]]  # the settings came along
        assert "max_connections" in cli("show-config", "--dir", str(restored)).stdout
        assert (restored / "credentials.yaml").read_text() == (source / "credentials.yaml").read_text()
        assert (restored / "credentials.yaml").stat().st_mode & 0o077 == 0
        sets = json.loads(cli("backup", "list", "--dir", str(restored), "--format", "json").stdout)
        assert [s["status"] for s in sets] == ["complete", "complete"], sets  # the snapshot's set, a new base
        query(restored, "INSERT INTO shop.orders VALUES (4, 'the new cluster takes writes')")

        refused = cli("snapshot", "restore", "--dir", str(restored), str(snapshot), "--key", str(key), check=False)
        assert refused.returncode == 1 and "is not a new, empty folder" in refused.stderr, refused.stderr
    finally:
        destroy(restored)

    wrong = tmp_path / "wrong.key"
    cli("backup", "key", str(wrong))
    elsewhere = new_cluster_path()
    try:
        result = cli("snapshot", "restore", "--dir", str(elsewhere), str(snapshot), "--key", str(wrong), check=False)
        assert result.returncode == 1 and str(snapshot) in result.stderr and "Traceback" not in result.stderr, result
        assert not elsewhere.exists() or not any(elsewhere.iterdir())
        assert not list(elsewhere.parent.glob(".*snapshot-*")), "the staging folder was left behind"
    finally:
        destroy(elsewhere)
