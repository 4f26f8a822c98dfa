"""A node is cut off by a network partition while the cluster recovers from a full outage: one Primary
Component forms, never two, and the cut-off node rejoins by itself once the partition heals.

The partition is real: iptables drops every packet between the cut-off node's loopback address and the
others (Galera, IST/SST, SQL and the agents' REST API alike). The DCS is the shared SQLite file, as on one
machine, so every agent still reports its position: this is the case where a naive "the best node
bootstraps, the others join" could let the cut-off side bootstrap a second component.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.mariadb import sql
from tests.waiting import wait_for

from .conftest import cli, destroy, members, new_cluster_path, query
from .partitions import partition as cut_apart
from .partitions import remove_chain
from .test_recovery import NODES, kill_agents, kill_mariadbd

BASE = "127.0.0.46"
ADDRESSES = {"node1": "127.0.0.46", "node2": "127.0.0.47", "node3": "127.0.0.48"}
CHAIN = "gp3-partition"
PARTITION_HOLD = 20.0


def remove_partition_chain() -> None:
    remove_chain(CHAIN)


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_partition() -> Iterator[None]:
    """A run killed mid-test (Ctrl-C, a CI timeout) leaves its rules behind, and they would cut this
    run's nodes apart before any partition is meant to exist."""
    remove_partition_chain()
    yield
    remove_partition_chain()


def partition(cut_off: str) -> contextlib.AbstractContextManager[Callable[[], None]]:
    """Drop all traffic between cut_off's address and the other nodes'; yields a function that heals."""
    return cut_apart(CHAIN, {node: ADDRESSES[node] for node in NODES}, cut_off)


class ComponentSampler(threading.Thread):
    """Samples every node's view over its local socket (never through the partition) every 0.2 s and keeps
    each moment at which two nodes were Primary in different components: each outside the other's view
    (`wsrep_incoming_addresses`). Sizes or configuration ids alone differ for a moment during any view
    change, when one member has installed the new view and another not yet."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        embedded = EmbeddedCluster(directory)
        self.configs = {name: embedded.node(name).config for name in NODES}
        self.credentials = load_credentials(directory / "credentials.yaml")
        self.stop = threading.Event()
        self.splits: list[dict[str, frozenset[str]]] = []
        self.primary_seen: dict[str, int] = dict.fromkeys(NODES, 0)

    def view(self, name: str) -> frozenset[str] | None:
        """The addresses in this node's Primary view, or None when it is not Primary (or not answering)."""
        try:
            connection = sql.connect_socket(self.configs[name], self.credentials, timeout=0.5)
        except Exception:
            return None
        try:
            status = sql.global_status(connection, ("wsrep_cluster_status", "wsrep_incoming_addresses"))
        except Exception:
            return None
        finally:
            connection.close()
        if status.get("wsrep_cluster_status") != "Primary":
            return None
        return frozenset(item.rsplit(":", 1)[0] for item in status.get("wsrep_incoming_addresses", "").split(","))

    def run(self) -> None:
        while not self.stop.wait(0.2):
            primaries = {name: view for name in NODES if (view := self.view(name)) is not None}
            for name in primaries:
                self.primary_seen[name] += 1
            for (a, va), (b, vb) in itertools.combinations(primaries.items(), 2):
                if ADDRESSES[a] not in vb and ADDRESSES[b] not in va:
                    self.splits.append({a: va, b: vb})


@pytest.fixture
def crashed_cluster() -> Iterator[tuple[Path, list[int]]]:
    """A 3-node cluster after power loss (agents first, then node1, node2, node3, with writes in between).

    node1 died first, so node2 and node3 hold the same, highest seqno (node3 alone had no quorum after
    node2 died); node2 is the chosen bootstrap node: equal seqno, both unsafe, name tie-break."""
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", BASE)
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.acked (id INT PRIMARY KEY, node VARCHAR(10))", "node1")
        kill_agents(directory)
        acked: list[int] = []
        next_id = 1
        for victim in NODES:
            for node in NODES:
                result = cli("query", "--dir", str(directory), "--member", node,
                             f"INSERT INTO app.acked VALUES ({next_id}, '{node}')", check=False)
                if result.returncode == 0:
                    acked.append(next_id)
                next_id += 1
            kill_mariadbd(directory, victim)
        yield directory, acked
    finally:
        destroy(directory)


@pytest.mark.parametrize("cut_off", ["node2", "node1"])
def test_partition_during_recovery_never_forms_a_second_primary(crashed_cluster: tuple[Path, list[int]],
                                                                  cut_off: str) -> None:
    """node2 is the chosen bootstrap node. Cut off node2: it bootstraps alone and the others cannot reach
    it, so they must wait, not form their own component. Cut off node1: node2 and node3 form it."""
    directory, acked = crashed_cluster
    embedded = EmbeddedCluster(directory)
    restarted_at = time.time()
    sampler = ComponentSampler(directory)
    agents: list[subprocess.Popen[bytes]] = []
    with partition(cut_off) as heal:
        sampler.start()
        try:
            agents = [embedded.spawn_agent(embedded.node(name)) for name in NODES]
            wait_for(lambda: sampler.primary_seen["node2"] > 0, 120, "node2 (the chosen node) to be Primary")
            time.sleep(PARTITION_HOLD)
            if cut_off == "node2":
                assert sampler.primary_seen["node1"] == sampler.primary_seen["node3"] == 0, (
                    f"a node that cannot reach node2 became Primary: {sampler.primary_seen}")
            else:
                assert sampler.primary_seen["node3"] > 0, "node3 should have joined node2"
                assert sampler.primary_seen[cut_off] == 0, f"the cut-off {cut_off} became Primary"
            heal()
            wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3
                                 for r in members(directory).values()),
                     180, "the cut-off node to rejoin by itself after the partition healed")
        finally:
            sampler.stop.set()
            sampler.join(10)
    assert not sampler.splits, f"two Primary Components at once: {sampler.splits[:5]}"
    events = json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)
    bootstraps = [e for e in events if e["action"] == "bootstrap" and e["at"] >= restarted_at]
    assert [e["member"] for e in bootstraps] == ["node2"], f"exactly one bootstrap, by node2: {bootstraps}"
    for node in NODES:
        got = {int(r[0]) for r in query(directory, "SELECT id FROM app.acked", node)}
        assert set(acked) <= got, f"{node} lost acknowledged writes: acked {acked}, has {sorted(got)}"
    cli("down", "--dir", str(directory))
    for agent in agents:
        agent.wait(60)
