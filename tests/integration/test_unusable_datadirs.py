"""Datadirs that must never seed a bootstrap (aborted SST, another cluster's UUID) are refused with a clear
reason, and healed by a full SST once a usable node has bootstrapped; a corrupt grastate.dat is not such a
datadir: its position is recovered from InnoDB, the file rewritten, and the node keeps its data (issue 18)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import cli, destroy, members, new_cluster_path, query

FOREIGN = "99999999-8888-7777-6666-555555555555"


@pytest.fixture
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--nodes", "4", "--base-address", "127.0.0.34")
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.t (id INT PRIMARY KEY)", "node1")
        query(directory, "INSERT INTO app.t VALUES (1), (2), (3)", "node1")
        cli("down", "--dir", str(directory))
        yield directory
    finally:
        destroy(directory)


def test_unusable_datadirs_are_refused_then_healed_by_sst(cluster: Path) -> None:
    # node4 stopped first (lowest seqno otherwise equal), node1 last: make the others look *ahead* of it,
    # so that only the usability rules can keep them from being chosen.
    data = {n: cluster / n / "data" for n in ("node1", "node2", "node3", "node4")}
    (data["node2"] / "sst_in_progress").write_text("")
    (data["node3"] / "grastate.dat").write_text("# GALERA saved state\nversion: 2.1\nuuid: garbage\nseqno: x\n")
    grastate = (data["node4"] / "grastate.dat").read_text()
    uuid = next(line.split()[1] for line in grastate.splitlines() if line.startswith("uuid:"))
    (data["node4"] / "grastate.dat").write_text(grastate.replace(uuid, FOREIGN).replace("seqno:   ", "seqno:   9"))

    cli("up", "--dir", str(cluster), "--timeout", "300")
    rows = members(cluster)
    assert all(r["state"] == "Synced" and r["cluster_size"] == 4 for r in rows.values()), rows
    events = json.loads(cli("history", "--dir", str(cluster), "--format", "json").stdout)
    boot = [e for e in events if e["action"] == "bootstrap"][-1]
    assert boot["member"] == "node1", boot
    positions = boot["inputs"]["positions"]
    assert "aborted" in positions["node2"]["unusable"]
    assert positions["node3"]["unusable"] is None, "InnoDB still knew node3's position"
    assert 0 < positions["node3"]["seqno"] <= positions["node1"]["seqno"], positions  # node1 stopped last
    assert positions["node4"]["uuid"] == FOREIGN
    quarantined = {e["member"] for e in events if e["action"] == "quarantine"}
    assert quarantined == {"node2", "node4"}
    repairs = [e for e in events if e["action"] == "repair"]
    assert [e["member"] for e in repairs] == ["node3"] and "grastate.dat is corrupt" in repairs[0]["reason"]
    assert not list((cluster / "node3").glob("data.refused-*")), "node3's datadir was moved aside"
    assert query(cluster, "SELECT COUNT(*) FROM app.t", "node3") == [["3"]]
    for node in ("node2", "node4"):
        assert list((cluster / node).glob("data.refused-*")), f"{node}'s refused datadir was not kept"
        # The cluster was created from the seed (IST only), so any full SST in the log is the healing one.
        log = (cluster / node / "log" / "mariadbd.err").read_text(errors="replace")
        assert "mariabackup SST completed on joiner" in log, f"{node} was not healed by a full SST"
        assert query(cluster, "SELECT COUNT(*) FROM app.t", node) == [["3"]]
