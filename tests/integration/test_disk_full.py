"""Issue 20: a datadir that is its own filesystem (a tmpfs mounted at node3/data) fills up under load.

One cluster for the module, its tests in order: the disk fills (the cluster keeps serving, node3 says
why in one sentence, no traceback loop, no restart, no quarantine), the filesystem grows (node3 rejoins
by IST with its data), then a quarantine of the mount-point datadir (its contents are kept in
node3/data.refused-*, the mount stays, a full SST refills it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.config import load_config
from galera_pilot.credentials import load_credentials
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.disk import enospc_line, lines_since_last_start
from galera_pilot.tls.http import api
from tests.waiting import wait_for

from .conftest import cli, destroy, http_json, mariadbd_pid, members, new_cluster_path, query

SIZE = "260m"
GROWN = "700m"
ROW = 1024 * 1024


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    mount = directory / "node3" / "data"
    mounted = False
    try:
        cli("up", "--dir", str(directory), "--nodes", "2")
        mount.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},uid=mysql,gid=mysql,mode=0750", "tmpfs",
                        str(mount)], check=True)
        mounted = True
        cli("up", "--dir", str(directory), "--nodes", "3")  # node3 copies the seed into the mount point
        query(directory, "CREATE DATABASE app", "node1")
        query(directory, "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)", "node1")
        yield directory
    finally:
        destroy(directory)  # stops everything; its rmtree cannot remove the mount point itself
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)
        subprocess.run(["rm", "-rf", str(directory.parent)], check=False)


def status(directory: Path, node: str) -> dict:
    config = load_config(directory / node / "agent.yaml")
    return http_json(config.api_url + "/status")


def metrics(directory: Path, node: str) -> str:
    config = load_config(directory / node / "agent.yaml")
    code, body = api().request("GET", config.api_url + "/metrics", timeout=2.0)
    assert code == 200
    return body.decode()


def agent_log(directory: Path, node: str) -> str:
    return (directory / node / "log" / "agent.log").read_text(errors="replace")


def history(directory: Path) -> list[dict]:
    return json.loads(cli("history", "--dir", str(directory), "--format", "json").stdout)


def insert_rows(directory: Path, count: int, node: str = "node1") -> None:
    config = load_config(directory / node / "agent.yaml")
    connection = sql.connect_tcp(config.address, config.ports.client, load_credentials(directory / "credentials.yaml"),
                                 timeout=30)
    try:
        with connection.cursor() as cursor:
            for _ in range(count):
                cursor.execute("INSERT INTO app.t (b) VALUES (REPEAT('x', %s))", (ROW,))
        connection.commit()
    finally:
        connection.close()


def rows(directory: Path, node: str) -> int:
    return int(query(directory, "SELECT COUNT(*) FROM app.t", node)[0][0])


def test_disk_fills_under_load(cluster: Path) -> None:
    data = cluster / "node3" / "data"
    disk = status(cluster, "node3")["disk"]
    assert disk["data"]["mount_point"] and disk["data"]["path"] == str(data), disk
    assert disk["data"]["total_bytes"] == 260 * 1024 * 1024, disk
    assert disk["data"]["warning"] and "low disk space" in disk["data"]["warning"]  # under 1 GiB
    assert set(disk) == {"data", "log", "base"}
    assert 'galera_pilot_disk_free_bytes{location="data",member="node3"' in metrics(cluster, "node3")
    assert "MB free of 260 MB" in members(cluster)["node3"]["disk"]

    # 1 MB rows through node1 until node3's filesystem is full and its mariadbd gives up.
    inserted = 0
    while mariadbd_pid(cluster, "node3") is not None:
        assert inserted < 400, "node3's 260 MB filesystem never filled"
        insert_rows(cluster, 5)
        inserted += 5
    error_log = (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace")
    assert enospc_line(lines_since_last_start(error_log)), error_log[-3000:]

    # The survivors keep serving.
    insert_rows(cluster, 3)
    wait_for(lambda: members(cluster)["node1"]["cluster_size"] == 2, 30, "node1 to see a 2-node component")
    assert rows(cluster, "node1") == rows(cluster, "node2") == inserted + 3

    # node3 says why, in one sentence, and does nothing else.
    prefix = f"out of disk space on {data}: "
    wait_for(lambda: members(cluster)["node3"]["activity"].startswith(prefix), 60, "node3 to report the full disk")
    row = members(cluster)["node3"]
    assert "MB free of 260 MB" in row["activity"] and "not starting mariadbd" in row["activity"], row
    assert row["disk"].startswith("LOW "), row
    lines_before = len(agent_log(cluster, "node3").splitlines())
    time.sleep(10)
    log = agent_log(cluster, "node3")
    assert len(log.splitlines()) - lines_before < 20, log[-3000:]  # no flood
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
    assert mariadbd_pid(cluster, "node3") is None  # not restarted into the full disk
    assert not list((cluster / "node3").glob("data.refused-*"))  # not moved aside
    assert not [e for e in history(cluster) if e["action"] == "quarantine"]
    assert 'galera_pilot_disk_full{member="node3"} 1.0' in metrics(cluster, "node3")
    assert status(cluster, "node3")["disk_full"].startswith(prefix)


def test_space_restored_node_rejoins_by_ist_with_its_data(cluster: Path) -> None:
    data = cluster / "node3" / "data"
    assert mariadbd_pid(cluster, "node3") is None, "runs after test_disk_fills_under_load"
    subprocess.run(["mount", "-o", f"remount,size={GROWN}", "tmpfs", str(data)], check=True)
    wait_for(lambda: members(cluster)["node3"]["state"] == "Synced", 180, "node3 to rejoin once space is back")
    expected = rows(cluster, "node1")
    assert rows(cluster, "node3") == expected
    error_log = (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace")
    last_run = "\n".join(lines_since_last_start(error_log))
    assert "IST received" in last_run, last_run[-3000:]
    assert "SST completed" not in last_run
    assert not list((cluster / "node3").glob("data.refused-*"))
    assert 'galera_pilot_disk_full{member="node3"} 0.0' in metrics(cluster, "node3")
    assert "Traceback" not in agent_log(cluster, "node3")


def test_quarantine_of_a_mount_point_datadir(cluster: Path) -> None:
    data = cluster / "node3" / "data"
    agent = int((cluster / "node3" / "run" / "agent.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(agent, signal.SIGTERM)  # stops node3's mariadbd gracefully
    wait_for(lambda: not psutil.pid_exists(agent), 300, "node3's agent to stop")
    assert mariadbd_pid(cluster, "node3") is None
    (data / "sst_in_progress").write_text("")  # an aborted SST: this datadir must not be joined as it is
    kept = {p.name for p in data.iterdir()}
    assert "app" in kept and "ibdata1" in kept

    cli("up", "--dir", str(cluster), "--nodes", "3", "--timeout", "300")
    assert os.path.ismount(data), "the quarantine must leave the mount in place"
    refused = list((cluster / "node3").glob("data.refused-*"))
    assert len(refused) == 1, refused
    assert {p.name for p in refused[0].iterdir()} >= kept
    assert (refused[0] / "app").is_dir() and (refused[0] / "ibdata1").stat().st_size > 0
    events = [e for e in history(cluster) if e["action"] == "quarantine"]
    assert [e["member"] for e in events] == ["node3"] and "sst_in_progress" in events[0]["reason"], events
    assert not (data / "sst_in_progress").exists()
    assert "SST completed on joiner" in (cluster / "node3" / "log" / "mariadbd.err").read_text(errors="replace")
    assert rows(cluster, "node3") == rows(cluster, "node1")
    assert "Traceback" not in agent_log(cluster, "node3")
