"""`galera-pilot remove` (issue 14), on one real 4-node cluster (127.0.0.240-243).

What must hold:
- the writer, a terminal-less run without --yes, and a removal that would leave an even number of votes
  are refused, and nothing changes;
- a removed reader's agent stops mariadbd cleanly and exits; the view, the roster and the folder's node
  list lose it; its folder is marked and its agent, started again, refuses with exit status 3;
- a full outage afterwards is recovered without waiting for it (the `all` policy waits for every roster
  member: with the member still listed it would wait for ever).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.cluster import REMOVED
from tests.waiting import wait_for

from .conftest import CLI, cli, dcs_view, destroy, mariadbd_pid, members, new_cluster_path, query, test_address

ADDRESSES = {f"node{i + 1}": test_address(f"127.0.0.{240 + i}") for i in range(4)}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "4", "--base-address", ADDRESSES["node1"])
        assert "4 nodes Synced" in result.stdout, result.stdout
        yield directory
    finally:
        destroy(directory)


def cluster_size(directory: Path, member: str) -> int:
    [[_name, value]] = query(directory, "SHOW STATUS LIKE 'wsrep_cluster_size'", member=member)
    return int(value)


def test_refusals_change_nothing(cluster: Path) -> None:
    # `up` without a proxy returns once every node is Synced; the writer role may still be in flux then
    # (the fourth joiner's donor was the writer, and a desynced donor gives the role up).
    wait_for(lambda: dcs_view(cluster).writer is not None, timeout=30, what="a writer")
    writer = dcs_view(cluster).writer
    assert writer is not None
    refused = cli("remove", "--dir", str(cluster), writer, "--yes", check=False)
    assert refused.returncode == 1 and "is the writer" in refused.stderr and "switchover" in refused.stderr
    reader = next(n for n in ADDRESSES if n != writer)
    unconfirmed = cli("remove", "--dir", str(cluster), reader, check=False)
    assert unconfirmed.returncode == 1 and "--yes" in unconfirmed.stderr, unconfirmed.stderr
    unknown = cli("remove", "--dir", str(cluster), "node9", "--yes", check=False)
    assert unknown.returncode == 1 and "no member named 'node9'" in unknown.stderr
    snapshot = dcs_view(cluster)
    assert not snapshot.removed and set(snapshot.roster) == set(ADDRESSES)
    assert cluster_size(cluster, "node1") == 4


def test_a_removed_reader_leaves_for_good(cluster: Path) -> None:
    if dcs_view(cluster).writer == "node4":
        cli("switchover", "--dir", str(cluster), "--to", "node1")
    result = cli("remove", "--dir", str(cluster), "node4", "--yes")
    assert "node4 removed" in result.stdout and "stopped cleanly" in result.stdout, result.stdout
    snapshot = dcs_view(cluster)
    assert snapshot.removed["node4"].phase == REMOVED
    assert "node4" not in snapshot.roster and "node4" not in snapshot.members
    assert mariadbd_pid(cluster, "node4") is None
    # node4's clean leave reaches the survivors' view a moment after its mariadbd exited (CI saw 4 there once).
    wait_for(lambda: cluster_size(cluster, "node1") == 3, timeout=30, what="node1's view without node4")
    meta = yaml.safe_load((cluster / "cluster.yaml").read_text())
    assert meta["nodes"] == ["node1", "node2", "node3"] and meta["removed"] == ["node4"]
    assert (cluster / "node4" / "removed.json").exists()
    assert (cluster / "node4" / "data" / "grastate.dat").exists()  # the datadir is kept
    again = subprocess.run([*CLI, "agent", str(cluster / "node4" / "agent.yaml")], capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 3 and "was removed from cluster" in again.stderr, again.stderr
    assert mariadbd_pid(cluster, "node4") is None
    assert "node4" not in members(cluster), "no row for a removed member"
    listed = cli("list", "--dir", str(cluster)).stdout
    assert "node4: removed by" in listed.splitlines()[-1], listed  # named under the table instead


def test_three_to_two_needs_force(cluster: Path) -> None:
    snapshot = dcs_view(cluster)
    reader = next(n for n in ("node3", "node2") if n != snapshot.writer)
    refused = cli("remove", "--dir", str(cluster), reader, "--yes", check=False)
    assert refused.returncode == 1 and "even number of votes" in refused.stderr and "--force" in refused.stderr
    assert reader in dcs_view(cluster).roster


def test_a_full_outage_no_longer_waits_for_it(cluster: Path) -> None:
    cli("down", "--dir", str(cluster))
    result = cli("up", "--dir", str(cluster))
    assert "3 nodes Synced" in result.stdout, result.stdout
    assert mariadbd_pid(cluster, "node4") is None
    wait_for(lambda: cluster_size(cluster, "node1") == 3, timeout=30, what="a 3-node view")


def test_reinit_rebuilds_a_reader_by_a_full_sst_from_a_chosen_donor(cluster: Path) -> None:
    """After the removal three nodes remain; node3 is rebuilt from node2 and keeps every row."""
    if dcs_view(cluster).writer != "node1":
        cli("switchover", "--dir", str(cluster), "--to", "node1")
    query(cluster, "CREATE DATABASE IF NOT EXISTS rebuilt")
    query(cluster, "CREATE TABLE IF NOT EXISTS rebuilt.t (id INT PRIMARY KEY)")
    query(cluster, "INSERT INTO rebuilt.t VALUES (1), (2), (3)")
    before = mariadbd_pid(cluster, "node3")
    result = cli("reinit", "--dir", str(cluster), "node3", "--donor", "node2", "--yes")
    assert "rebuilt by a full SST from node2" in result.stdout, result.stdout
    assert "after a full state transfer (SST)" in result.stdout, result.stdout
    assert mariadbd_pid(cluster, "node3") not in (None, before)
    assert list((cluster / "node3").glob("data.refused-*")), "the old datadir is kept aside"
    error_log = (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace")
    assert "requested state transfer from 'node2,'. Selected" in error_log and "(node2)" in error_log
    assert query(cluster, "SELECT COUNT(*) FROM rebuilt.t", member="node3") == [["3"]]
    snapshot = dcs_view(cluster)
    assert snapshot.roll is None and snapshot.members["node3"].is_synced and "node3" not in snapshot.maintenance
    refused = cli("reinit", "--dir", str(cluster), "node3", "--donor", snapshot.writer or "node1", "--yes",
                  check=False)
    assert refused.returncode == 1 and "cannot donate" in refused.stderr, refused.stderr
