"""Never come back with less than the cluster had (issue 18), on real clusters: every datadir lost, one
datadir lost, and a corrupt grastate.dat on the most advanced node. Each scenario used to end with `up`
exiting 0 and a cluster missing data; now the agents keep the high-water mark and act on it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import psutil

from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for

from .conftest import cli, mariadbd_pid, members, query

NODES = ("node1", "node2", "node3")
BASE = "127.0.0.60"


def up(directory: Path, *args: str, check: bool = True):
    return cli("up", "--dir", str(directory), "--base-address", BASE, "--timeout", "300", *args, check=check)


def snapshot(directory: Path):
    return EmbeddedCluster(directory).snapshot()


def history(directory: Path) -> list[dict]:
    return json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)


def write_precious(directory: Path, rows: int = 3) -> None:
    query(directory, "CREATE DATABASE IF NOT EXISTS precious", "node1")
    query(directory, "CREATE TABLE IF NOT EXISTS precious.t (id INT PRIMARY KEY)", "node1")
    for i in range(rows):
        query(directory, f"INSERT INTO precious.t VALUES ({i + 1})", "node1")


def wait_mark_at_least(directory: Path, seqno: int) -> None:
    """The agents raise the mark at their next cycle (about a second)."""
    wait_for(lambda: (mark := snapshot(directory).high_water) is not None and mark.seqno >= seqno, 30,
             f"the high-water mark to reach {seqno}")


def live_seqno(directory: Path) -> int:
    return int(query(directory, "SHOW STATUS LIKE 'wsrep_last_committed'", "node1")[0][1])


def kill_everything(directory: Path) -> None:
    """Power loss: every agent, then every mariadbd, killed."""
    pids = [int((directory / n / "run" / "agent.pid").read_text()) for n in NODES]
    pids += [pid for n in NODES if (pid := mariadbd_pid(directory, n)) is not None]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids), 15, "every agent and mariadbd to die")


def stop_agent(directory: Path, node: str) -> None:
    """A graceful stop of one node (its agent shuts mariadbd down and records the clean stop)."""
    pid = int((directory / node / "run" / "agent.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(pid), 120, f"{node}'s agent to stop")


def lose_datadir(directory: Path, node: str) -> None:
    data = directory / node / "data"
    shutil.move(str(data), str(directory / node / "data.lost"))


def test_every_datadir_lost_is_said_and_a_person_starts_from_nothing(cluster_dir: Path) -> None:
    up(cluster_dir)
    old_uuid = snapshot(cluster_dir).initialize.cluster_uuid  # type: ignore[union-attr]
    seed = snapshot(cluster_dir).seed
    assert seed is not None
    write_precious(cluster_dir)
    reached = live_seqno(cluster_dir)
    assert reached > seed.seqno
    wait_mark_at_least(cluster_dir, reached)
    kill_everything(cluster_dir)
    for node in NODES:
        lose_datadir(cluster_dir, node)

    result = up(cluster_dir, check=False)
    assert result.returncode == 1, result.stdout
    assert "the data is gone from every node" in result.stderr and f"seqno {reached}" in result.stderr, result.stderr
    rows = members(cluster_dir)
    assert all("the data is gone from every node" in r["activity"] for r in rows.values()), rows
    assert all(r["state"] == "stopped" for r in rows.values()), "no agent started a cluster"
    listing = cli("list", "--dir", str(cluster_dir)).stdout
    assert f"high-water mark: seqno {reached} of cluster {old_uuid}" in listing
    assert any(e["action"] == "data-gone" for e in history(cluster_dir))
    assert not any((cluster_dir / n / "data" / "mysql").exists() for n in NODES), "nobody copied the seed"

    refused = cli("bootstrap", "--dir", str(cluster_dir), "--member", "node1", "--empty", check=False)
    assert refused.returncode == 1 and "discarded" in refused.stdout and "--force --empty" in refused.stderr
    ordered = cli("bootstrap", "--dir", str(cluster_dir), "--member", "node1", "--empty", "--force")
    assert "ordered" in ordered.stdout
    up(cluster_dir)
    fresh = snapshot(cluster_dir)
    assert fresh.initialize is not None and fresh.initialize.cluster_uuid not in (None, old_uuid)
    assert all(r["state"] == "Synced" and r["cluster_uuid"] == fresh.initialize.cluster_uuid
               for r in members(cluster_dir).values())
    assert ["precious"] not in query(cluster_dir, "SHOW DATABASES")
    forced = [e for e in history(cluster_dir) if e["action"] == "force"]
    assert forced and forced[-1]["inputs"]["empty"] is True and forced[-1]["inputs"]["replaces"] == old_uuid
    mark = fresh.high_water
    assert mark is not None and mark.uuid == fresh.initialize.cluster_uuid


def test_one_datadir_lost_is_no_bootstrap_candidate_and_the_data_comes_back(cluster_dir: Path) -> None:
    up(cluster_dir)
    write_precious(cluster_dir, rows=5)
    reached = live_seqno(cluster_dir)
    wait_mark_at_least(cluster_dir, reached)
    kill_everything(cluster_dir)
    lose_datadir(cluster_dir, "node3")
    restarted = time.time()
    up(cluster_dir)

    events = [e for e in history(cluster_dir) if e["at"] >= restarted]
    bootstraps = [e for e in events if e["action"] == "bootstrap"]
    assert len(bootstraps) == 1 and bootstraps[0]["member"] in ("node1", "node2"), events
    positions = bootstraps[0]["inputs"]["positions"]
    assert positions["node3"]["unusable"] == "the datadir is empty", positions
    assert not any(e["action"] == "form" for e in events), "node3 formed a component from the seed"
    # node3 waited with its empty datadir and joined the live component (from the seed copy by IST, as a
    # brand-new node would: the donor's gcache covers the seed's position here).
    joins = [e for e in events if e["action"] == "join" and e["member"] == "node3"]
    assert joins and joins[0]["at"] > bootstraps[0]["at"], events
    for node in NODES:
        assert query(cluster_dir, "SELECT COUNT(*) FROM precious.t", node) == [["5"]], node
    assert all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster_dir).values())


def test_a_corrupt_grastate_on_the_most_advanced_node_loses_no_acknowledged_write(cluster_dir: Path) -> None:
    up(cluster_dir)
    write_precious(cluster_dir, rows=0)
    stop_agent(cluster_dir, "node3")
    stop_agent(cluster_dir, "node2")
    for i in range(5):  # acknowledged on node1 alone
        query(cluster_dir, f"INSERT INTO precious.t VALUES ({i + 1})", "node1")
    stop_agent(cluster_dir, "node1")
    (cluster_dir / "node1" / "data" / "grastate.dat").write_text("garbage\n")
    restarted = time.time()
    up(cluster_dir)

    events = [e for e in history(cluster_dir) if e["at"] >= restarted]
    assert not any(e["action"] == "quarantine" for e in events), events
    bootstraps = [e for e in events if e["action"] == "bootstrap"]
    assert [e["member"] for e in bootstraps] == ["node1"], events
    repairs = [e for e in events if e["action"] == "repair" and e["member"] == "node1"]
    assert repairs and "grastate.dat is corrupt" in repairs[0]["reason"], events
    kept = list((cluster_dir / "node1" / "data").glob("grastate.dat.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == "garbage\n"
    for node in NODES:
        assert query(cluster_dir, "SELECT COUNT(*) FROM precious.t", node) == [["5"]], node
