"""A member that never comes back: 'all' waits and says why, 'majority' proceeds after its timeout, a
minority never bootstraps, and a person can force it with `galera-pilot bootstrap --force`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for

from .conftest import cli, destroy, members, new_cluster_path, query

BASE = "127.0.0.30"


@pytest.fixture
def stopped_cluster() -> Iterator[Path]:
    """A 3-node cluster with data, stopped gracefully: every member is in the roster."""
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", BASE)
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.t (id INT PRIMARY KEY)", "node1")
        query(directory, "INSERT INTO app.t VALUES (1), (2)", "node2")
        cli("down", "--dir", str(directory))
        yield directory
    finally:
        destroy(directory)


def set_policy(directory: Path, policy: str, timeout: float) -> None:
    for node in ("node1", "node2", "node3"):
        path = directory / node / "agent.yaml"
        config = yaml.safe_load(path.read_text())
        config["recovery"] = {"policy": policy, "majority_timeout": timeout}
        path.write_text(yaml.safe_dump(config))


def start_agents(directory: Path, *nodes: str) -> list[subprocess.Popen[bytes]]:
    cluster = EmbeddedCluster(directory)
    return [cluster.spawn_agent(cluster.node(node)) for node in nodes]


def activity(directory: Path, node: str) -> str:
    return members(directory)[node]["activity"]


def test_default_policy_waits_for_the_missing_member_and_says_why(stopped_cluster: Path) -> None:
    procs = start_agents(stopped_cluster, "node1", "node2")
    wait_for(lambda: "waiting for the positions of node3" in activity(stopped_cluster, "node1"), 60,
             "node1 to wait for node3's position")
    time.sleep(3)  # still waiting: nobody bootstraps without node3
    rows = members(stopped_cluster)
    assert all(r["state"] == "stopped" for r in rows.values()), rows
    # A person decides: node2 bootstraps although node3 never reported.
    out = cli("bootstrap", "--dir", str(stopped_cluster), "--member", "node2", check=False)
    assert out.returncode == 1 and "no position from node3" in out.stdout and "--force" in out.stderr
    cli("bootstrap", "--dir", str(stopped_cluster), "--member", "node2", "--force")
    wait_for(lambda: all(members(stopped_cluster)[n]["state"] == "Synced" for n in ("node1", "node2")), 120,
             "node1 and node2 to be Synced after the forced bootstrap")
    assert query(stopped_cluster, "SELECT COUNT(*) FROM app.t", "node1") == [["2"]]
    cli("down", "--dir", str(stopped_cluster))
    for proc in procs:
        proc.wait(30)


def test_majority_policy_proceeds_after_its_timeout_and_a_minority_never(stopped_cluster: Path) -> None:
    set_policy(stopped_cluster, "majority", 3.0)
    lone = start_agents(stopped_cluster, "node1")
    wait_for(lambda: "a minority never bootstraps" in activity(stopped_cluster, "node1"), 60,
             "node1 alone to refuse as a minority")
    time.sleep(5)  # longer than majority_timeout: still no bootstrap with 1 of 3
    assert members(stopped_cluster)["node1"]["state"] == "stopped"
    more = start_agents(stopped_cluster, "node2")
    wait_for(lambda: all(members(stopped_cluster)[n]["state"] == "Synced" for n in ("node1", "node2")), 120,
             "the majority (node1, node2) to come back after the timeout")
    events = [e for e in yaml.safe_load(cli("history", "--dir", str(stopped_cluster), "--format", "json").stdout)
              if e["action"] == "bootstrap"]
    assert events[-1]["inputs"]["policy"] == "majority"
    assert set(events[-1]["inputs"]["positions"]) == {"node1", "node2"}
    assert query(stopped_cluster, "SELECT COUNT(*) FROM app.t", "node2") == [["2"]]
    cli("down", "--dir", str(stopped_cluster))
    for proc in lone + more:
        proc.wait(30)
