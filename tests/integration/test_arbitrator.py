"""The managed arbitrator (issue 14): two data nodes and garbd, on one real cluster (127.0.0.245-247).

What must hold:
- `up --nodes 2 --arbitrator` forms one component of three; `list` shows garbd with role `arbitrator`;
- a partition cuts the writer away: the side with the arbitrator stays Primary, takes the writer role
  and serves writes; the cut-off node is non-Primary (no split brain), and rejoins once the link heals;
- every process is killed at once and the agents are started again in several orders: the last
  component, garbd included, re-forms by pc.recovery, without a bootstrap, with every acknowledged row;
- a crash in two steps (one data node first, the other and garbd later): the survivor, the most
  advanced, bootstraps, as without an arbitrator;
- garbd killed with its agent and started again without its work dir joins as a new member;
- `remove arbitrator1` needs --force (two data nodes are an even count), then garbd leaves for good.

The partition is real: iptables drops every packet between the cut-off node's address and the others'.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.arbitrator.garbd import GarbdProcess, work_dir
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls.http import api
from tests.waiting import wait_for

from .agents import agent_url
from .conftest import CLI, cli, dcs_view, destroy, mariadbd_pid, members, new_cluster_path, query, test_address
from .partitions import partition, remove_chain

ADDRESSES = {"node1": test_address("127.0.0.245"), "node2": test_address("127.0.0.246"),
             "arbitrator1": test_address("127.0.0.247")}
DATA = ("node1", "node2")
CHAIN = "gp3-arbitrator"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    remove_chain(CHAIN)  # a run killed mid-test leaves its rules behind
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "2", "--arbitrator",
                     "--base-address", ADDRESSES["node1"])
        assert "2 nodes and 1 arbitrator Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE app")
        query(directory, "CREATE TABLE app.acked (id INT PRIMARY KEY, side VARCHAR(16))")
        yield directory
    finally:
        remove_chain(CHAIN)
        destroy(directory)


def wsrep(directory: Path, member: str, name: str) -> str:
    result = cli("query", "--dir", str(directory), "--member", member, f"SHOW STATUS LIKE '{name}'", check=False)
    return result.stdout.split("\t")[1].strip() if result.returncode == 0 and "\t" in result.stdout else ""


def component(directory: Path, member: str) -> tuple[str, int]:
    size = wsrep(directory, member, "wsrep_cluster_size")
    return wsrep(directory, member, "wsrep_cluster_status"), int(size or 0)


def arbitrator_ready(directory: Path) -> bool:
    report = dcs_view(directory).arbitrators.get("arbitrator1")
    # SYNCED once it joined a component; PRIMARY when pc.recovery re-formed one with it (no state exchange)
    return report is not None and report.running and report.primary and report.state in ("SYNCED", "PRIMARY")


def test_two_nodes_and_garbd_form_one_component_of_three(cluster: Path) -> None:
    assert all(component(cluster, node) == ("Primary", 3) for node in DATA)
    rows = members(cluster)
    garbd = rows["arbitrator1"]
    assert (garbd["role"], garbd["state"], garbd["cluster_status"], garbd["cluster_size"]) == (
        "arbitrator", "SYNCED", "Primary", 3), garbd
    assert GarbdProcess(EmbeddedCluster(cluster).node("arbitrator1").config).is_running()
    assert (work_dir(EmbeddedCluster(cluster).node("arbitrator1").config) / "gvwstate.dat").exists()
    report = dcs_view(cluster).arbitrators["arbitrator1"]
    assert report.gcomm_uuid and report.weight == 1
    # /metrics: the roster counts the arbitrator, as wsrep_cluster_size does (the size alert compares them).
    metrics = api().request("GET", agent_url(ADDRESSES["node1"], "/metrics"))[1].decode()
    assert 'galera_pilot_roster_members{member="node1"} 3.0' in metrics, metrics


def test_a_partition_leaves_the_side_with_the_arbitrator_primary_and_writable(cluster: Path) -> None:
    writer = dcs_view(cluster).writer
    assert writer in DATA
    survivor = next(n for n in DATA if n != writer)
    with partition(CHAIN, ADDRESSES, writer) as heal:
        wait_for(lambda: component(cluster, survivor) == ("Primary", 2), timeout=60,
                 what=f"{survivor} and the arbitrator to stay Primary without {writer}")
        wait_for(lambda: component(cluster, writer)[0] == "non-Primary", timeout=60,
                 what=f"{writer}, alone, to lose the Primary Component")
        wait_for(lambda: dcs_view(cluster).writer == survivor, timeout=60,
                 what=f"the writer role to move to {survivor}")
        query(cluster, "INSERT INTO app.acked VALUES (1, 'partition')", member=survivor)
        refused = cli("query", "--dir", str(cluster), "--member", writer,
                      "INSERT INTO app.acked VALUES (2, 'cut-off')", check=False)
        assert refused.returncode != 0, "the cut-off node took a write: two Primary Components"
        heal()
        wait_for(lambda: all(component(cluster, node) == ("Primary", 3) for node in DATA), timeout=120,
                 what=f"{writer} to rejoin once the partition healed")
    assert query(cluster, "SELECT id FROM app.acked", member=writer) == [["1"]]
    wait_for(lambda: arbitrator_ready(cluster), timeout=30, what="garbd to report Primary again")


def kill_everything(directory: Path) -> None:
    """Power loss: every agent, mariadbd and garbd of the folder, at once."""
    victims = [p for p in psutil.process_iter(["cmdline"]) if str(directory) in " ".join(p.info["cmdline"] or [])]
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


def events_since(directory: Path, since: float) -> list[dict]:
    return [e for e in json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)
            if e["at"] >= since]


def restart_in_order(directory: Path, order: tuple[str, ...], settled: Callable[[str], bool] = lambda n: True) -> None:
    """Start the agents one at a time, as hosts come back, each once `settled(previous)` holds."""
    embedded = EmbeddedCluster(directory)
    for name in order:
        embedded.spawn_agent(embedded.node(name))
        wait_for(lambda: settled(name), timeout=120, what=f"{name}'s agent to settle")  # noqa: B023
    embedded.wait_synced(timeout=300)
    wait_for(lambda: arbitrator_ready(directory), timeout=60, what="garbd in the recovered component")
    assert all(component(directory, node) == ("Primary", 3) for node in DATA)


def test_all_killed_at_once_re_form_by_pc_recovery_with_the_arbitrator(cluster: Path) -> None:
    """Every gvwstate.dat, garbd's included, names the same component. The arbitrator's host is back
    first (its agent reports the saved instance): the component re-forms, nobody bootstraps."""
    before = int(query(cluster, "SELECT COUNT(*) FROM app.acked")[0][0])
    query(cluster, "INSERT INTO app.acked VALUES (10, 'crash')")
    kill_everything(cluster)
    restarted_at = time.time()
    def reported(name: str) -> bool:  # the new agent's report (the killed one's outlives it by its TTL)
        report = dcs_view(cluster).arbitrators.get("arbitrator1")
        return name != "arbitrator1" or (report is not None and report.updated_at >= restarted_at
                                         and bool(report.gcomm_uuid))

    restart_in_order(cluster, ("arbitrator1", "node2", "node1"), reported)
    events = events_since(cluster, restarted_at)
    assert sorted(e["member"] for e in events if e["action"] == "pc-recovery") == list(DATA), events
    assert not [e for e in events if e["action"] == "bootstrap"], f"no bootstrap with pc.recovery: {events}"
    for node in DATA:
        assert int(query(cluster, "SELECT COUNT(*) FROM app.acked", member=node)[0][0]) == before + 1


def test_an_arbitrator_back_late_joins_the_bootstrapped_cluster(cluster: Path) -> None:
    """All killed at once, and the arbitrator's host comes back only after the data nodes recovered
    without it (their saved view names an instance nobody claims: a bootstrap, as without garbd)."""
    query(cluster, "INSERT INTO app.acked VALUES (11, 'crash')")
    kill_everything(cluster)
    # The killed agent's report lives out its TTL: the arbitrator is gone only once it has expired.
    wait_for(lambda: "arbitrator1" not in dcs_view(cluster).arbitrators, timeout=30, what="its report to expire")
    restarted_at = time.time()

    def primary(name: str) -> bool:
        return name == "arbitrator1" or name == "node2" or any(
            e["action"] == "bootstrap" for e in events_since(cluster, restarted_at))

    restart_in_order(cluster, ("node2", "node1", "arbitrator1"), primary)
    assert len([e for e in events_since(cluster, restarted_at) if e["action"] == "bootstrap"]) == 1
    for node in DATA:
        assert query(cluster, "SELECT side FROM app.acked WHERE id = 11", member=node) == [["crash"]]


def test_a_staggered_crash_bootstraps_the_most_advanced_node(cluster: Path) -> None:
    """One data node dies first and the other goes on with the arbitrator (two votes of three): their
    saved views differ, so the cluster recovers by a bootstrap of the survivor, whatever order the hosts
    come back in, and keeps what it acknowledged alone."""
    embedded = EmbeddedCluster(cluster)
    first, last = "node2", "node1"
    for name in DATA:
        pid = embedded.node(name).agent_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    mariadbd = mariadbd_pid(cluster, first)
    assert mariadbd is not None
    os.kill(mariadbd, signal.SIGKILL)
    wait_for(lambda: component(cluster, last) == ("Primary", 2), timeout=60,
             what=f"{last} and the arbitrator to go on without {first}")
    query(cluster, "INSERT INTO app.acked VALUES (20, 'alone')", member=last)
    kill_everything(cluster)
    restarted_at = time.time()
    restart_in_order(cluster, (first, "arbitrator1", last))
    bootstraps = [e for e in events_since(cluster, restarted_at) if e["action"] == "bootstrap"]
    assert [e["member"] for e in bootstraps] == [last], bootstraps
    for node in DATA:
        assert query(cluster, "SELECT side FROM app.acked WHERE id = 20", member=node) == [["alone"]]


def test_garbd_started_without_its_work_dir_joins_as_a_new_member(cluster: Path) -> None:
    embedded = EmbeddedCluster(cluster)
    node = embedded.node("arbitrator1")
    old_uuid = dcs_view(cluster).arbitrators["arbitrator1"].gcomm_uuid
    agent = node.agent_pid()
    garbd = GarbdProcess(node.config).pid()
    assert agent is not None and garbd is not None
    for pid in (agent, garbd):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(garbd), timeout=10, what="garbd to die")
    shutil.rmtree(work_dir(node.config))
    embedded.spawn_agent(node)
    wait_for(lambda: arbitrator_ready(cluster) and dcs_view(cluster).arbitrators["arbitrator1"].gcomm_uuid
             not in ("", old_uuid), timeout=60, what="garbd to join again under a new identity")
    # The old instance leaves the view once Galera suspects it (evs timeouts): three members again.
    wait_for(lambda: all(component(cluster, n) == ("Primary", 3) for n in DATA), timeout=60,
             what="a component of three again")
    assert (work_dir(node.config) / "gvwstate.dat").exists()


def test_a_rotated_certificate_restarts_garbd_on_it(cluster: Path) -> None:
    """garbd cannot reload its certificate: its agent restarts it on the new bundle, gracefully."""
    node = EmbeddedCluster(cluster).node("arbitrator1")
    wait_for(lambda: arbitrator_ready(cluster), timeout=60, what="garbd in the component")
    before = dcs_view(cluster).arbitrators["arbitrator1"].tls_not_after
    old_garbd = GarbdProcess(node.config).pid()
    time.sleep(1.1)  # the new certificate's validity starts a second later: a different not_after
    cli("pki", "rotate", "--dir", str(cluster), "arbitrator1")
    wait_for(lambda: dcs_view(cluster).arbitrators["arbitrator1"].tls_not_after not in ("", before)
             and arbitrator_ready(cluster), timeout=60, what="garbd to run on the new certificate")
    assert GarbdProcess(node.config).pid() not in (None, old_garbd)
    assert all(component(cluster, n) == ("Primary", 3) for n in DATA)
    rows = members(cluster)
    assert rows["arbitrator1"]["cert"], rows["arbitrator1"]


def test_removing_the_arbitrator_needs_force_then_it_leaves_for_good(cluster: Path) -> None:
    refused = cli("remove", "--dir", str(cluster), "arbitrator1", "--yes", check=False)
    assert refused.returncode == 1 and "even number of votes" in refused.stderr, refused.stderr
    result = cli("remove", "--dir", str(cluster), "arbitrator1", "--yes", "--force")
    assert "arbitrator1 removed" in result.stdout, result.stdout
    wait_for(lambda: all(component(cluster, n) == ("Primary", 2) for n in DATA), timeout=30,
             what="garbd to leave the view")
    embedded = EmbeddedCluster(cluster)
    assert embedded.arbitrator_names == [] and "arbitrator1" in embedded.meta["removed"]
    node_dir = cluster / "arbitrator1"
    assert (node_dir / "removed.json").exists()
    again = subprocess.run([*CLI, "agent", str(node_dir / "agent.yaml")], capture_output=True, text=True, timeout=60)
    assert again.returncode == 3 and "was removed" in again.stderr, again.stderr
    assert "arbitrator1" not in dcs_view(cluster).arbitrators
