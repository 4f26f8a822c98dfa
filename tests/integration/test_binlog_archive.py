"""Binary logs archived for point-in-time recovery (issue 12), on a real 3-node cluster (127.0.0.185-.187):

- `backup.binlogs.archive` on, `reload` and `restart --pending`: every node writes binary logs with the same
  GTIDs (one domain, the same server_id), and one agent, the Synced non-writer the placement rule picks,
  archives them: every transaction a client wrote is in the archive within the interval, indexed by GTID;
- a full backup records the GTID position it is consistent at, the one the archive counts from;
- the archiver's mariadbd killed: the lease moves to another Synced member, which archives from its own
  files; nothing is missing afterwards (no gap), the archived objects verify.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.gtid import parse_position
from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for

from .agents import agent_url, http_json
from .conftest import cli, destroy, mariadbd_pid, members, new_cluster_path, query, test_address
from .routing_helpers import AckWriter

ADDRESSES = {f"node{i + 1}": test_address(f"127.0.0.{185 + i}") for i in range(3)}
DOMAIN = 1  # backup.binlogs.domain_id's default


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "3", "--base-address", ADDRESSES["node1"],
                     "--no-proxy")
        assert "3 nodes Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE app")
        query(directory, "CREATE TABLE app.acks (id INT PRIMARY KEY)")
        yield directory
    finally:
        destroy(directory)


def archive(directory: Path) -> dict:
    return json.loads(cli("backup", "binlogs", "--dir", str(directory), "--format", "json").stdout)


def gtid_pos(directory: Path, node: str) -> str:
    return query(directory, "SELECT @@GLOBAL.gtid_binlog_pos", node)[0][0]


def writer_of(directory: Path) -> str:
    return str(wait_for(lambda: next((n for n, r in members(directory).items() if r["role"] == "writer"), None), 60,
                        "a writer"))


def archiver_of(directory: Path) -> str | None:
    """The member whose agent says it archives (its /status `backup.binlogs`)."""
    for node, address in ADDRESSES.items():
        try:
            note = str(http_json(agent_url(address, "/status")).get("backup", {}).get("binlogs", ""))
        except Exception:  # its agent does not answer now
            continue
        if note.startswith("this node") and "archive" in note and "gives" not in note and "failed" not in note:
            return node
    return None


def test_binlogs_are_archived_and_the_archive_moves_with_its_node(cluster: Path) -> None:
    for name in ADDRESSES:
        path = cluster / name / "agent.yaml"
        data = yaml.safe_load(path.read_text())
        data["backup"]["binlogs"] = {"archive": True, "interval_seconds": 5}
        path.write_text(yaml.safe_dump(data))
    cli("reload", "--dir", str(cluster))
    wait_for(lambda: all("log_bin" in r["pending_restart"] for r in members(cluster).values()), 30,
             "every member to say log_bin waits for a restart")
    rolled = cli("restart", "--dir", str(cluster), "--pending", "--yes", timeout=900)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert not any(r["pending_restart"] for r in members(cluster).values())
    query(cluster, "INSERT INTO app.acks VALUES (0)", "node1")
    positions = {name: parse_position(gtid_pos(cluster, name)).get(DOMAIN) for name in ADDRESSES}
    assert len(set(positions.values())) == 1 and positions["node1"] is not None, \
        f"the same GTID of the cluster's domain on every node: {positions}"

    credentials = load_credentials(cluster / "credentials.yaml")
    primary = writer_of(cluster)  # the roll moved the writer: the client writes, and positions are read, there
    writer = AckWriter(ADDRESSES[primary], 3306, credentials.admin_user, credentials.admin_password,
                       first_id=1).start()
    try:
        wait_for(lambda: len(writer.acked) > 200, 60, "the client to write")
        # A full backup records where in the GTID history it stands.
        cli("backup", "create", "--dir", str(cluster), timeout=600)
        made = json.loads(cli("backup", "list", "--dir", str(cluster), "--format", "json").stdout)[-1]
        shown = json.loads(cli("backup", "show", "--dir", str(cluster), made["id"]).stdout)
        assert parse_position(shown["gtid"]).seqno(DOMAIN) is not None, shown["gtid"]
        first = str(wait_for(lambda: archiver_of(cluster), 60, "an archiver"))
        assert first != primary, f"the uploads stay off the writer ({primary})"
        wait_for(lambda: len(writer.acked) > 400, 60, "more writes")
        target = parse_position(gtid_pos(cluster, primary)).seqno(DOMAIN)
        assert target is not None
        wait_for(lambda: archive(cluster)["covered_through"] >= target, 60,
                 f"the archive to reach seqno {target} (closed within the 5 s interval)")

        # The archiver's host dies (its agent, then its server; a server killed alone is back and Synced
        # by IST within seconds, and its agent rightly keeps the lease): the lease expires, another
        # member takes it and archives from its own files.
        agent = EmbeddedCluster(cluster).node(first).agent_pid()
        pid = mariadbd_pid(cluster, first)
        assert agent is not None and pid is not None
        os.kill(agent, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        second = wait_for(lambda: (a := archiver_of(cluster)) not in (None, first) and a, 90,
                          "another member to archive")
        wait_for(lambda: len(writer.acked) > 700, 60, "more writes")
    finally:
        writer.stop()
    target = parse_position(gtid_pos(cluster, primary)).seqno(DOMAIN)
    assert target is not None
    state = wait_for(lambda: (a := archive(cluster))["covered_through"] >= target and a, 90,
                     f"the archive to reach seqno {target} after the move")
    assert state["gaps"] == [], state["gaps"]
    files = [ArchivedBinlog.from_dict(f) for f in state["files"]]
    assert {f.node for f in files} >= {first, second}, [(f.node, f.file) for f in files]
    assert all(f.size > 0 and f.sha256 for f in files)
    cli("up", "--dir", str(cluster), "--no-proxy")  # the dead host comes back
    wait_for(lambda: all(r["state"] == "Synced" for r in members(cluster).values()), 180, "every member Synced")


def test_a_dropped_table_comes_back_with_every_write_before_it(cluster: Path) -> None:
    """Point-in-time recovery: the backup of the first test, rolled forward through the archived binlogs
    to the last write before a `DROP TABLE`, under a new cluster UUID; nothing after the point is there."""
    wait_for(lambda: all(m["state"] == "Synced" for m in members(cluster).values()), 180, "every member Synced")
    credentials = load_credentials(cluster / "credentials.yaml")
    primary = writer_of(cluster)
    first_id = int(query(cluster, "SELECT COALESCE(MAX(id), 0) + 1 FROM app.acks", primary)[0][0])
    writer = AckWriter(ADDRESSES[primary], 3306, credentials.admin_user, credentials.admin_password,
                       first_id=first_id).start()
    try:
        wait_for(lambda: len(writer.acked) > 300, 60, "the client to write")
    finally:
        writer.stop()
    kept = int(query(cluster, "SELECT COUNT(*) FROM app.acks", primary)[0][0])
    point = parse_position(gtid_pos(cluster, primary)).get(DOMAIN)
    assert point is not None
    query(cluster, "DROP TABLE app.acks", primary)  # the mistake
    query(cluster, "CREATE TABLE app.after (id INT PRIMARY KEY)", primary)
    after = parse_position(gtid_pos(cluster, primary)).seqno(DOMAIN)
    assert after is not None and after > point.seqno
    wait_for(lambda: archive(cluster)["covered_through"] >= after, 60, "the mistake to be archived too")

    dry = cli("restore", "--dir", str(cluster), "--to-gtid", str(point), "--dry-run")
    assert f"through {point.seqno} of domain {DOMAIN} (GTID {point})" in dry.stdout, dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    by_time = cli("restore", "--dir", str(cluster), "--to-time", now, "--dry-run")
    assert f"through {after} of domain {DOMAIN} ({now} (" in by_time.stdout, by_time.stdout
    refused = cli("restore", "--dir", str(cluster), "--to-gtid", f"{DOMAIN}-1-{after + 1000}", "--dry-run", check=False)
    assert refused.returncode == 1 and f"not {after + 1000}" in refused.stderr, refused.stderr
    old_uuid = members(cluster)[primary]["cluster_uuid"]

    restored = cli("restore", "--dir", str(cluster), "--to-gtid", str(point), "--yes", timeout=1800)
    assert "restored backup" in restored.stdout, restored.stdout + restored.stderr
    assert int(query(cluster, "SELECT COUNT(*) FROM app.acks", "node1")[0][0]) == kept
    assert query(cluster, "SHOW TABLES FROM app LIKE 'after'", "node1") == [], "nothing after the point"
    assert old_uuid not in {m["cluster_uuid"] for m in members(cluster).values()}, "a new cluster UUID"
    for name in ADDRESSES:
        assert int(query(cluster, "SELECT COUNT(*) FROM app.acks", name)[0][0]) == kept, name
    history = cli("history", "--dir", str(cluster)).stdout
    assert "rolled forward from GTID seqno" in history and f"through {point.seqno}" in history, history
