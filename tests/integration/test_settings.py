"""Cluster-wide settings (issue 13): `show-config`, `edit-config`, `reload` and `restart --pending`, on one
real 3-node cluster with its managed HAProxy (nodes on 127.0.0.175-177, the proxy on 127.0.0.174).

The tests share the cluster and run in file order; each leaves three Synced nodes whose files are as `up`
wrote them, with no setting pending a restart (the last one, automatic updates, leaves wrapped binaries).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls.http import api
from tests.waiting import wait_for

from .agents import agent_url
from .binaries import NEW_VERSION, REAL_VERSION, wrap_binaries
from .conftest import cli, dcs_view, destroy, mariadbd_pid, members, new_cluster_path, query, up_behind_proxy

PROXY_HOST = "127.0.0.174"
ADDRESSES = {"node1": "127.0.0.175", "node2": "127.0.0.176", "node3": "127.0.0.177"}
NODES = tuple(ADDRESSES)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        up_behind_proxy(directory, ADDRESSES["node1"], PROXY_HOST)
        yield directory
    finally:
        destroy(directory)


def settled(directory: Path) -> bool:
    snapshot = dcs_view(directory)
    return (all(n in snapshot.members and snapshot.members[n].is_synced and not snapshot.members[n].pending_restart
                for n in NODES) and snapshot.writer is not None and snapshot.roll is None)


@pytest.fixture(autouse=True)
def _whole_cluster(cluster: Path) -> Iterator[None]:
    wait_for(lambda: settled(cluster), 180, "three Synced nodes, a writer, nothing pending a restart")
    yield


def variable(directory: Path, node: str, name: str) -> str:
    return query(directory, f"SELECT @@GLOBAL.{name}", node)[-1][0]


def values(directory: Path, name: str) -> dict[str, str]:
    return {node: variable(directory, node, name) for node in NODES}


def mycnf_line(directory: Path, node: str, key: str) -> str | None:
    for line in (directory / node / "my.cnf").read_text().splitlines():
        if line.split("=")[0].strip() == key:
            return line.split("=", 1)[1].strip()
    return None


def edit(directory: Path, *args: str, check: bool = True) -> str:
    result = cli("edit-config", "--dir", str(directory), "--yes", *args, check=check)
    return result.stdout + result.stderr


def assert_refused(result_text: str, says: str) -> None:
    assert "nothing was stored" in result_text and says in result_text, result_text
    assert "Traceback" not in result_text, result_text


# ---- dynamic: applied at once on every node -----------------------------------------------------------------------
def test_a_dynamic_variable_is_applied_at_once_everywhere(cluster: Path) -> None:
    shown = cli("show-config", "--dir", str(cluster)).stdout
    assert "no cluster-wide settings yet" in shown, shown
    before = {node: mariadbd_pid(cluster, node) for node in NODES}
    out = edit(cluster, "--set", "mariadb.max_connections=321", "--set", "mariadb.long_query_time=2.5")
    assert "+ mariadb.max_connections = 321" in out and "applied at once" in out, out
    assert all(f"{node}: follows it" in out for node in NODES), out
    assert values(cluster, "max_connections") == dict.fromkeys(NODES, "321")
    assert {float(v) for v in values(cluster, "long_query_time").values()} == {2.5}
    assert {node: mariadbd_pid(cluster, node) for node in NODES} == before  # no restart
    assert all(mycnf_line(cluster, node, "max_connections") == "321" for node in NODES)  # persisted
    rows = members(cluster)
    assert all(rows[node]["pending_restart"] == [] for node in NODES), rows
    shown = cli("show-config", "--dir", str(cluster)).stdout
    assert "revision 1" in shown and "max_connections: '321'" in shown, shown
    # Removing it puts the server's default back, at once.
    out = edit(cluster, "--unset", "mariadb.long_query_time")
    assert "- mariadb.long_query_time (was 2.5)" in out, out
    wait_for(lambda: {float(v) for v in values(cluster, "long_query_time").values()} == {10.0}, 30,
             "long_query_time back at its default")
    assert all(mycnf_line(cluster, node, "long_query_time") is None for node in NODES)


# ---- refused: nothing stored ----------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment, says", [
    ("mariadb.max_conections=10", "mariadb.max_conections: not a system variable of MariaDB"),
    ("mariadb.max_connections=many", "mariadb.max_connections: 'many' is not a number"),
    ("mariadb.max_connections=5", "out of range (10 to 100000)"),
    ("mariadb.binlog_format=STATEMENT", "mariadb.binlog_format: managed by galera-pilot"),
    ("mariadb.read_only=ON", "set by the agents themselves"),
    ("galera.gcs.fc_limt=10", "galera.gcs.fc_limt: not an option of the Galera provider"),
    ("galera.gcs.fc_limit=lots", "galera.gcs.fc_limit: 'lots' is not a number"),
    ("mariadb.time_zone=+00:00", "mariadb.time_zone: my.cnf cannot set it"),
    ("mariadb.init_connect='SET NAMES utf8mb4'", "no quotes"),
    ("timing.loop_wait=20", "member_ttl must be more than twice loop_wait"),
])
def test_a_bad_setting_is_refused_and_nothing_stored(cluster: Path, assignment: str, says: str) -> None:
    before = dcs_view(cluster).settings
    result = cli("edit-config", "--dir", str(cluster), "--yes", "--set", assignment, check=False)
    assert result.returncode == 1
    assert_refused(result.stdout + result.stderr, says)
    assert dcs_view(cluster).settings == before


# ---- static: pending restart, then restart --pending ----------------------------------------------------------
def test_a_static_setting_waits_for_restart_pending(cluster: Path) -> None:
    out = edit(cluster, "--set", "mariadb.innodb_open_files=400", "--set", "galera.gcs.fc_limit=80")
    assert "next restart" in out and "restart --pending" in out, out
    rows = members(cluster)
    for node in NODES:
        assert rows[node]["pending_restart"] == ["innodb_open_files", "gcs.fc_limit"], rows[node]
        assert "pending restart" in rows[node]["version"], rows[node]
    assert values(cluster, "innodb_open_files") != dict.fromkeys(NODES, "400")
    out = cli("restart", "--dir", str(cluster), "--pending", "--yes", timeout=900).stdout
    assert "rolling restart of" in out, out
    assert values(cluster, "innodb_open_files") == dict.fromkeys(NODES, "400")
    for node in NODES:
        assert "gcs.fc_limit = 80" in variable(cluster, node, "wsrep_provider_options")
    wait_for(lambda: all(not r["pending_restart"] for r in members(cluster).values()), 30, "nothing pending")
    nothing = cli("restart", "--dir", str(cluster), "--pending", "--yes").stdout
    assert "no member has settings pending a restart" in nothing, nothing


# ---- the node's own file wins; reload re-reads it ---------------------------------------------------------------
def node_file(directory: Path, node: str) -> Path:
    return directory / node / "agent.yaml"


def test_the_node_file_wins_and_reload_rereads_it(cluster: Path) -> None:
    path = node_file(cluster, "node1")
    original = path.read_text()
    data = yaml.safe_load(original)
    try:
        data.setdefault("mariadb", {})["extra"] = {"max-connections": "111"}
        path.write_text(yaml.safe_dump(data))
        out = cli("reload", "--dir", str(cluster), "node1").stdout
        assert "node1: reloaded (mariadb changed)" in out, out
        wait_for(lambda: variable(cluster, "node1", "max_connections") == "111", 30, "node1 at its own value")
        assert variable(cluster, "node2", "max_connections") == "321"
        # A change only an agent restart applies is refused as a whole, and named.
        data["ports"] = {"api": 9008}
        path.write_text(yaml.safe_dump(data))
        result = cli("reload", "--dir", str(cluster), "node1", check=False)
        assert result.returncode == 1 and "ports changed; that takes an agent restart" in result.stdout, result
        # An invalid file: the agent keeps what it runs with. (Asked directly: the CLI's --dir reads every
        # node file itself and would refuse first.)
        path.write_text("name: [")
        status, body = api().request("POST", agent_url(ADDRESSES["node1"], "/reload"), b"{}", authorized=True)
        assert status == 400 and "not valid YAML" in json.loads(body)["error"], body
        status, body = api().request("POST", agent_url(ADDRESSES["node1"], "/reload"), b"{}")
        assert status == 401, body  # state-changing: the API token or a node certificate
        del data["ports"]
        path.write_text(yaml.safe_dump(data))
        assert variable(cluster, "node1", "max_connections") == "111"  # the refusals changed nothing
    finally:
        path.write_text(original)
    out = cli("reload", "--dir", str(cluster)).stdout
    assert all(f"{node}: reloaded" in out for node in NODES), out
    wait_for(lambda: variable(cluster, "node1", "max_connections") == "321", 30, "node1 back at the cluster value")


def test_a_paused_cluster_applies_nothing_until_resumed(cluster: Path) -> None:
    cli("pause", "--dir", str(cluster))
    try:
        out = edit(cluster, "--set", "mariadb.max_connections=222")
        assert "the cluster is paused, so the agents apply it once it is resumed" in out, out
        time.sleep(3)  # three agent cycles: a paused agent sets nothing
        assert values(cluster, "max_connections") == dict.fromkeys(NODES, "321")
    finally:
        cli("resume", "--dir", str(cluster), "--wait")
    wait_for(lambda: values(cluster, "max_connections") == dict.fromkeys(NODES, "222"), 30, "222 once resumed")
    edit(cluster, "--set", "mariadb.max_connections=321")


def test_status_shows_the_followed_revision(cluster: Path) -> None:
    revision = dcs_view(cluster).settings.revision  # type: ignore[union-attr]
    status = json.loads(cli("list", "--dir", str(cluster), "--format", "json").stdout)
    assert {row["name"] for row in status} >= set(NODES)
    assert all(dcs_view(cluster).members[n].settings_revision == revision for n in NODES)


# ---- automatic updates (last: it leaves the nodes on wrapped binaries) ------------------------------------------
def window_around(moment: datetime, starts_in: timedelta, lasts: timedelta) -> str:
    start = moment + starts_in
    return f"{start:%H:%M}-{start + lasts:%H:%M}"


def test_the_writers_agent_rolls_an_installed_minor_update_in_its_window(cluster: Path) -> None:
    for node in NODES:
        wrap_binaries(cluster, node, REAL_VERSION)
    wait_for(lambda: settled(cluster), 60, "the agents back")
    later = window_around(datetime.now(), timedelta(hours=2), timedelta(hours=1))
    out = edit(cluster, "--set", "updates.policy=scheduled", "--set", f"updates.window={later}")
    assert f"started only between {later}" in out, out
    started = time.time()
    for node in NODES:
        wrap_binaries(cluster, node, NEW_VERSION)  # the packages updated on every host
    wait_for(lambda: all("pending upgrade to 10.11.99" in r["version"] for r in members(cluster).values()), 60,
             "every node pending 10.11.99")
    writer = dcs_view(cluster).writer
    assert writer is not None
    log = EmbeddedCluster(cluster).node(writer).config.agent_log
    wait_for(lambda: f"waiting for the window {later}" in log.read_text(), 30, "the writer's agent waiting")
    assert dcs_view(cluster).roll is None  # outside the window: nothing rolls

    now = window_around(datetime.now(), timedelta(minutes=-30), timedelta(hours=1))
    edit(cluster, "--set", f"updates.window={now}")
    wait_for(lambda: all(r["server_version"] == NEW_VERSION for r in members(cluster).values())
             and dcs_view(cluster).roll is None, 600, "every node on 10.11.99, the automatic update done")
    history = [e for e in dcs_view(cluster).history if e.at >= started]
    assert [e.action for e in history].count("auto-update") == 1, history
    assert sorted(e.member for e in history if e.action == "upgrade") == list(NODES), history  # mariadb-upgrade
    done = [e for e in history if e.action == "roll" and "done" in e.reason]
    assert len(done) == 1 and done[0].inputs["automatic"] is True, history
    assert all(r["state"] == "Synced" for r in members(cluster).values())
