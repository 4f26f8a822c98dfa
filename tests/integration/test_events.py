"""Galera's notifications and the user's callbacks (issue 14), on one real 3-node cluster (127.0.0.220-222).

What must hold:
- mariadbd runs galera-pilot's wsrep_notify_cmd, and the history shows what Galera said;
- callbacks configured in a node's file are taken by `reload` (which calls on_reload itself) and run as
  `COMMAND ACTION ROLE CLUSTER` with the event in GALERA_PILOT_EVENT: a switchover calls on_role_change
  on both nodes, a rolling restart on_restart on the restarted node and on_view_change on the others;
- a callback that hangs is killed at its timeout and one that fails is counted, in /metrics, and neither
  holds the agent back: the switchover goes through while node1's callback sleeps.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls.http import api
from tests.waiting import wait_for

from .conftest import agent_url, cli, dcs_view, destroy, new_cluster_path, query, test_address

ADDRESSES = {f"node{i + 1}": test_address(f"127.0.0.{220 + i}") for i in range(3)}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--base-address", ADDRESSES["node1"])
        assert "3 nodes Synced" in result.stdout, result.stdout
        yield directory
    finally:
        destroy(directory)


def calls(directory: Path, node: str) -> list[tuple[list[str], dict]]:
    path = directory / f"calls-{node}.jsonl"
    if not path.exists():
        return []
    return [(entry[0], json.loads(entry[1])) for entry in map(json.loads, path.read_text().splitlines())]


def recorder(directory: Path, node: str) -> str:
    script = directory / "record-call.py"
    if not script.exists():
        script.write_text("import json, os, sys\n"
                          "with open(sys.argv[1], 'a') as out:\n"
                          "    out.write(json.dumps([sys.argv[2:], os.environ['GALERA_PILOT_EVENT']]) + '\\n')\n")
    return f"{sys.executable} {script} {directory / f'calls-{node}.jsonl'}"


def set_callbacks(directory: Path, node: str, callbacks: dict[str, object]) -> None:
    path = EmbeddedCluster(directory).node(node).config_path
    config = yaml.safe_load(path.read_text())
    config["callbacks"] = callbacks
    path.write_text(yaml.safe_dump(config))


def metric(address: str, name: str, **labels: str) -> float:
    """One sample of an agent's /metrics (0 when absent), its labels given by name in any order."""
    _code, body = api().request("GET", agent_url(address, "/metrics"), timeout=3.0)
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            found = dict(part.split("=", 1) for part in line[len(name) + 1:line.index("}")].split(","))
            if all(found.get(key) == f'"{value}"' for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_mariadbd_runs_the_notify_command_and_the_history_shows_galera(cluster: Path) -> None:
    [[value]] = query(cluster, "SELECT @@wsrep_notify_cmd", member="node2")
    assert value == str(cluster / "node2" / "notify")
    history = cli("history", "--dir", str(cluster), "--galera").stdout
    assert "Galera says: status synced" in history and "primary view of 3" in history, history
    assert "Galera says" not in cli("history", "--dir", str(cluster)).stdout  # decisions only, by default


def test_callbacks_follow_reload_switchover_and_restart(cluster: Path) -> None:
    name = EmbeddedCluster(cluster).cluster_name
    every = ("on_start", "on_stop", "on_restart", "on_role_change", "on_state_change", "on_view_change", "on_reload")
    for node in ("node2", "node3"):
        set_callbacks(cluster, node, {action: recorder(cluster, node) for action in every})
    # node1: a view-change callback that hangs, a role-change one that fails.
    set_callbacks(cluster, "node1", {"on_view_change": "sh -c 'sleep 60'", "on_role_change": "false", "timeout": 2})
    if dcs_view(cluster).writer != "node1":
        cli("switchover", "--dir", str(cluster), "--to", "node1")
    # The reload may come in the middle of a cycle: on_reload is called once the cycle has merged it.
    cli("reload", "--dir", str(cluster))
    wait_for(lambda: all(any(argv[0] == "on_reload" for argv, _ in calls(cluster, n)) for n in ("node2", "node3")),
             30, "on_reload on node2 and node3")
    argv, event = next(c for c in calls(cluster, "node2") if c[0][0] == "on_reload")
    assert argv == ["on_reload", "reader", name], argv
    assert event["member"] == "node2" and event["changed"] == ["callbacks"]

    cli("switchover", "--dir", str(cluster), "--to", "node3")
    wait_for(lambda: any(argv[0] == "on_role_change" for argv, _ in calls(cluster, "node3")), 30,
             "on_role_change on node3")
    argv, event = next(c for c in calls(cluster, "node3") if c[0][0] == "on_role_change")
    assert argv == ["on_role_change", "writer", name] and (event["from"], event["to"]) == ("reader", "writer")
    wait_for(lambda: metric(ADDRESSES["node1"], "galera_pilot_callbacks_total", action="on_role_change",
                            outcome="failed") >= 1, 30, "node1's failing role-change callback to be counted")

    # node2 restarted by a roll: one on_restart there, the view shrinking and growing on node3, and on node1 a
    # callback that hangs at each view change, killed after 2 s, while the roll goes on.
    result = cli("restart", "--dir", str(cluster), "node2", "--yes", timeout=600)
    assert "restarted" in result.stdout, result.stdout
    wait_for(lambda: any(argv[0] == "on_restart" for argv, _ in calls(cluster, "node2")), 60, "on_restart on node2")
    assert not any(argv[0] in ("on_stop", "on_start") for argv, _ in calls(cluster, "node2")), \
        "a rolling restart is one on_restart, not a stop and a start"
    wait_for(lambda: [e["to"]["size"] for a, e in calls(cluster, "node3") if a[0] == "on_view_change"][-1:] == [3],
             60, "node3's on_view_change back to 3 members")
    sizes = [event["to"]["size"] for argv, event in calls(cluster, "node3") if argv[0] == "on_view_change"]
    assert 2 in sizes, sizes
    wait_for(lambda: metric(ADDRESSES["node1"], "galera_pilot_callbacks_total", action="on_view_change",
                            outcome="timeout") >= 1, 60, "node1's hung callback to be killed")
    history = cli("history", "--dir", str(cluster), "--galera").stdout
    assert "Galera says: status joined" in history, history  # node2 on its way back
