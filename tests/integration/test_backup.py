"""Backups and restore (issue 12), on one real 2-node cluster (127.0.0.226-227) without a proxy, and a real
SeaweedFS S3 endpoint (127.0.0.228) for one test.

What must hold:
- `backup create` is taken by the agent of the Synced member that is not the writer, frozen at one
  point: the set records the wsrep position and a CHECKSUM TABLE figure per table;
- full, incremental (on the full) and logical sets restore into a scratch mariadbd whose tables match
  those figures (`verify --restore-test`), and the incremental holds the rows written after the full;
- a corrupt object fails `verify` with the object named; a set an incremental depends on cannot be
  deleted; an incremental with no full backup, and a node that is not Synced, are refused clearly;
- a set whose agent dies mid-stream is marked failed and never restorable; a full repository fails the
  backup clearly; the cluster keeps serving through both;
- an encrypted set is sealed at rest and restores only with its key; a set streamed into S3 restores from
  it; a secret readable by others, and storage that is gone, are refused clearly;
- the agents run the schedule (one backup per due time, on the non-writer) and the retention;
- `restore` brings both members back to a set under a new cluster UUID (the later rows gone, the old
  datadirs kept aside, a new base backup), refuses a logical set and a serving cluster without --yes,
  and is resumed when the command is cut short.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from galera_pilot.config import load_config
from tests.integration.binaries import respawn_agent
from tests.waiting import wait_for

from .conftest import CLI, cli, destroy, http_json, new_cluster_path, query, test_address
from .seaweedfs import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS

ADDRESSES = {f"node{i + 1}": test_address(f"127.0.0.{226 + i}") for i in range(2)}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--nodes", "2", "--base-address", ADDRESSES["node1"],
                     "--no-proxy")
        assert "2 nodes Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE shop")
        query(directory, "CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40))")
        query(directory, "INSERT INTO shop.orders VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')")
        yield directory
    finally:
        destroy(directory)


def backups(directory: Path) -> list[dict]:
    return json.loads(cli("backup", "list", "--dir", str(directory), "--format", "json").stdout)


def schedule_state(directory: Path) -> str:
    """Why the schedule asks nothing: each agent's note, its backup report and its backup log lines."""
    said = []
    for name in ADDRESSES:
        config = load_config(directory / name / "agent.yaml")
        try:
            report = http_json(config.api_url + "/status").get("backup")
        except Exception as error:  # the message must still be written
            report = f"no /status: {error}"
        lines = [line for line in (directory / name / "log" / "agent.log").read_text(errors="replace").splitlines()
                 if "backup" in line and "reloaded" not in line]
        said.append(f"{name}: {report}; log: " + " | ".join(lines[-12:]))
    return "; ".join(said)


def writer(directory: Path) -> str:
    out = cli("list", "--dir", str(directory), "--format", "json").stdout
    return next(m["name"] for m in json.loads(out) if m.get("role") == "writer")


def set_backup_fields(directory: Path, **fields: object) -> None:
    """Change every node's backup section, then have the agents re-read their files."""
    for name in ADDRESSES:
        path = directory / name / "agent.yaml"
        data = yaml.safe_load(path.read_text())
        data["backup"].update({k: str(v) if isinstance(v, Path) else v for k, v in fields.items()})
        path.write_text(yaml.safe_dump(data))
    cli("reload", "--dir", str(directory))


def test_refusals_before_any_backup(cluster: Path) -> None:
    result = cli("backup", "create", "--dir", str(cluster), "--incremental", check=False)
    assert result.returncode == 1 and "needs a complete full backup" in result.stderr, result.stderr
    result = cli("backup", "create", "--dir", str(cluster), "--node", "node9", check=False)
    assert result.returncode == 1 and "node9 is not a live member" in result.stderr, result.stderr
    assert backups(cluster) == []


def test_full_incremental_and_logical_restore_with_matching_checksums(cluster: Path) -> None:
    the_writer = writer(cluster)
    full = cli("backup", "create", "--dir", str(cluster)).stdout
    assert "Synced and not the writer" in full and "1 table checksums" in full, full
    [made] = backups(cluster)
    assert made["kind"] == "full" and made["status"] == "complete" and made["restorable"]
    assert made["node"] != the_writer and made["seqno"] > 0 and made["cluster_uuid"]
    assert made["to_lsn"] and made["tables_checksummed"] == 1
    shown = json.loads(cli("backup", "show", "--dir", str(cluster), made["id"]).stdout)
    assert {o["name"] for o in shown["objects"]} >= {"data.mbstream.zst", "xtrabackup_checkpoints"}
    full_checksum = shown["checksums"]["shop.orders"]

    query(cluster, "INSERT INTO shop.orders VALUES (4, 'fig')")
    cli("backup", "create", "--dir", str(cluster), "--incremental")
    cli("backup", "create", "--dir", str(cluster), "--logical")
    sets = backups(cluster)
    incremental = next(s for s in sets if s["kind"] == "incremental")
    logical = next(s for s in sets if s["kind"] == "logical")
    assert incremental["parent"] == made["id"] and incremental["seqno"] > made["seqno"]
    inc_shown = json.loads(cli("backup", "show", "--dir", str(cluster), incremental["id"]).stdout)
    assert inc_shown["checksums"]["shop.orders"] != full_checksum  # the fig row is in it
    [[_table, live]] = query(cluster, "CHECKSUM TABLE shop.orders")
    assert int(live) == inc_shown["checksums"]["shop.orders"]

    for backup in (made, incremental, logical):
        out = cli("backup", "verify", "--dir", str(cluster), backup["id"], "--restore-test").stdout
        assert "every checksum matches" in out and "1 of 1 table(s) match" in out, out


def test_corruption_and_deletion_rules(cluster: Path) -> None:
    sets = backups(cluster)
    full = next(s for s in sets if s["kind"] == "full")
    result = cli("backup", "delete", "--dir", str(cluster), full["id"], "--yes", check=False)
    assert result.returncode == 1 and "incremental backups depend on" in result.stderr, result.stderr

    logical = next(s for s in sets if s["kind"] == "logical")
    damaged = cluster / "backups" / "galera" / logical["id"] / "dump.sql.zst"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    result = cli("backup", "verify", "--dir", str(cluster), logical["id"], check=False)
    assert result.returncode == 1 and "dump.sql.zst: checksum differs" in result.stdout, result.stdout
    cli("backup", "delete", "--dir", str(cluster), logical["id"], "--yes")
    assert logical["id"] not in {s["id"] for s in backups(cluster)}


def test_a_backup_whose_agent_dies_mid_stream_is_failed_and_never_restorable(cluster: Path, tmp_path: Path) -> None:
    """zstd is held back (a wrapper that waits first), so the copy is surely running when its agent is
    killed; the agent started again finds its request running with no copy and marks the set failed."""
    slow = tmp_path / "slow-zstd"
    slow.write_text("#!/bin/sh\nsleep 20\nexec /usr/bin/zstd \"$@\"\n")
    slow.chmod(0o755)
    set_backup_fields(cluster, tools={"zstd": str(slow)})
    try:
        asker = subprocess.Popen([*CLI, "backup", "create", "--dir", str(cluster)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        running = wait_for(lambda: next((s for s in backups(cluster) if s["status"] == "running"), None), 60,
                           "the backup to run")
        respawn_agent(cluster, running["node"])
        _out, err = asker.communicate(timeout=120)
        assert asker.returncode == 1 and "the agent was restarted while the backup ran" in err, err
        failed = next(s for s in backups(cluster) if s["id"] == running["id"])
        assert failed["status"] == "failed" and not failed["restorable"], failed
        refused = cli("restore", "--dir", str(cluster), "--backup", failed["id"], "--dry-run", check=False)
        assert refused.returncode == 1 and "is not restorable" in refused.stderr, refused.stderr
    finally:
        set_backup_fields(cluster, tools={})
    assert query(cluster, "SELECT COUNT(*) FROM shop.orders") == [["4"]]  # the cluster kept serving


def test_a_full_repository_fails_the_backup_clearly(cluster: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], check=True)
    try:
        set_backup_fields(cluster, repository=full)
        result = cli("backup", "create", "--dir", str(cluster), check=False, timeout=120)
        assert result.returncode == 1 and "No space left on device" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    finally:
        set_backup_fields(cluster, repository=cluster / "backups")
        subprocess.run(["umount", str(full)], check=True)
    assert query(cluster, "SELECT COUNT(*) FROM shop.orders") == [["4"]]


def test_an_encrypted_backup_is_sealed_at_rest_and_restores_only_with_its_key(cluster: Path) -> None:
    key = cluster / "backup.key"
    made_key = cli("backup", "key", str(key)).stdout
    assert "mode 0600" in made_key and key.stat().st_mode & 0o077 == 0
    set_backup_fields(cluster, encryption_key_file=key)
    cli("backup", "create", "--dir", str(cluster))
    newest = backups(cluster)[-1]
    assert newest["kind"] == "full" and newest["key_id"] and newest["key_id"] in made_key
    sealed = cluster / "backups" / "galera" / newest["id"] / "data.mbstream.zst"
    assert sealed.read_bytes()[:6] == b"GPENC1"
    out = cli("backup", "verify", "--dir", str(cluster), newest["id"], "--restore-test").stdout
    assert "every checksum matches" in out and "1 of 1 table(s) match" in out, out
    key.rename(cluster / "backup.key.away")  # the key lost: the set is named, not restored as garbage
    try:
        result = cli("backup", "verify", "--dir", str(cluster), newest["id"], "--restore-test", check=False)
        assert result.returncode == 1 and str(key) in result.stderr and "Traceback" not in result.stderr, result
    finally:
        (cluster / "backup.key.away").rename(key)


def test_the_agents_back_up_into_s3_compatible_storage(cluster: Path, tmp_path: Path) -> None:
    """A real SeaweedFS S3 endpoint (127.0.0.228): the set is streamed there by the agent, listed, and
    restored from it by the restore test (sealed, with the key set above, so decrypted on the way)."""
    server = SeaweedFS(tmp_path / "seaweedfs", test_address("127.0.0.228"))
    credentials = cluster / "s3.yaml"
    credentials.write_text(f"access_key: {ACCESS_KEY}\nsecret_key: {SECRET_KEY}\n")
    credentials.chmod(0o600)
    server.start()
    try:
        set_backup_fields(cluster, repository=None, s3={"endpoint": server.endpoint, "bucket": BUCKET,
                                                        "prefix": "prod", "credentials_file": str(credentials)})
        out = cli("backup", "create", "--dir", str(cluster)).stdout
        [made] = backups(cluster)  # the bucket holds this set alone
        assert made["kind"] == "full" and made["status"] == "complete" and made["key_id"], out
        keys = {o.object_name for o in server.client().list_objects(BUCKET, prefix="prod/galera/", recursive=True)}
        assert {f"prod/galera/{made['id']}/{name}" for name in ("data.mbstream.zst", "manifest.json")} <= keys
        tested = cli("backup", "verify", "--dir", str(cluster), made["id"], "--restore-test").stdout
        assert "1 of 1 table(s) match" in tested, tested
        credentials.chmod(0o644)  # a readable secret is refused by name, not used
        result = cli("backup", "list", "--dir", str(cluster), check=False)
        assert result.returncode == 1 and "may be read by others" in result.stderr and SECRET_KEY not in result.stderr
        credentials.chmod(0o600)
        server.stop()  # the storage gone: a backup fails clearly, the cluster keeps serving
        failed = cli("backup", "create", "--dir", str(cluster), check=False, timeout=300)
        assert failed.returncode == 1 and server.endpoint.split("//")[1] in failed.stderr, failed.stderr
        assert query(cluster, "SELECT COUNT(*) FROM shop.orders") == [["4"]]
    finally:
        server.stop()
        set_backup_fields(cluster, repository=cluster / "backups", s3=None)


def test_the_agents_run_the_schedule_and_apply_the_retention(cluster: Path) -> None:
    """Both agents have the schedule (due at the same moments): one backup per due time, on the member
    that is not the writer; the first scheduled full ends the old chain (keep_full 1, no window)."""
    old = {s["id"] for s in backups(cluster) if s["status"] == "complete"}  # failed sets stay a day
    the_writer = writer(cluster)
    set_backup_fields(cluster, full_every_hours=0.01, incremental_every_hours=0.002, keep_full=1, window_days=0)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sets = backups(cluster)
        scheduled = [s for s in sets if s["by"].startswith("schedule")]
        if (any(s["kind"] == "incremental" and s["status"] == "complete" for s in scheduled)
                and not old & {s["id"] for s in sets}):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"no scheduled full and incremental, or the old chain kept: {backups(cluster)}; "
                             f"{schedule_state(cluster)}")
    set_backup_fields(cluster, full_every_hours=0)  # no more backups while the rest is checked
    sets = wait_for(lambda: (found := backups(cluster)) and all(s["status"] != "running" for s in found) and found,
                    120, "the last scheduled backup to end")
    scheduled = [s for s in sets if s["by"].startswith("schedule")]
    assert all(s["status"] == "complete" and s["node"] != the_writer for s in scheduled), scheduled
    assert {s["by"] for s in scheduled} == {f"schedule ({scheduled[0]['node']})"}
    fulls = [s for s in scheduled if s["kind"] == "full"]
    assert fulls and all(b["started_at"] >= a["finished_at"] + 0.01 * 3600
                         for a, b in itertools.pairwise(fulls))  # never doubled
    known = {s["id"]: s for s in sets}
    for incremental in (s for s in scheduled if s["kind"] == "incremental"):
        parent = known[incremental["parent"]]  # its chain is kept whole
        assert parent["status"] == "complete" and incremental["started_at"] >= parent["finished_at"] + 0.002 * 3600
    verified = cli("backup", "verify", "--dir", str(cluster), scheduled[-1]["id"]).stdout
    assert "every checksum matches its manifest" in verified, verified


def test_an_incremental_is_taken_only_on_the_datadir_of_its_chain(cluster: Path) -> None:
    """InnoDB's LSNs are each datadir's own (backup/lineage.py): an incremental follows its chain's node,
    onto the writer if need be, and is refused, before anything is paused, where the datadir is not the
    one its parent was copied from."""
    cli("backup", "create", "--dir", str(cluster))
    full = backups(cluster)[-1]
    chain_node = full["node"]
    other = next(n for n in ADDRESSES if n != chain_node)
    lineage_file = cluster / chain_node / "data" / "galera-pilot.lineage"
    assert full["lineage"].startswith(f"{chain_node}:") and lineage_file.read_text().strip() == full["lineage"]
    refused = cli("backup", "create", "--dir", str(cluster), "--incremental", "--node", other, check=False)
    assert refused.returncode == 1 and f"taken on {chain_node}: it can only be taken there" in refused.stderr, \
        refused.stderr
    cli("switchover", "--dir", str(cluster), "--to", chain_node)
    out = cli("backup", "create", "--dir", str(cluster), "--incremental").stdout
    assert f"{chain_node}, which holds the chain of {full['id']} (it is the writer" in out, out
    made = backups(cluster)[-1]
    assert (made["kind"], made["node"], made["parent"], made["lineage"], made["status"]) == (
        "incremental", chain_node, full["id"], full["lineage"], "complete"), made
    lineage_file.write_text(f"{other}:0123456789abcdef\n")  # what a copy of the other node's datadir carries
    failed = cli("backup", "create", "--dir", str(cluster), "--incremental", check=False)
    assert failed.returncode == 1 and f"{chain_node}'s datadir is not the one backup {made['id']}" in failed.stderr, \
        failed.stderr
    assert backups(cluster)[-1]["status"] == "failed"
    cli("backup", "create", "--dir", str(cluster), "--node", chain_node)  # a new chain, a new lineage
    renewed = backups(cluster)[-1]
    assert renewed["kind"] == "full" and renewed["status"] == "complete"
    assert renewed["lineage"] not in (full["lineage"], "") and lineage_file.read_text().strip() == renewed["lineage"]


def test_restore_brings_the_whole_cluster_back_to_a_backup_under_a_new_uuid(cluster: Path) -> None:
    query(cluster, "INSERT INTO shop.orders VALUES (10, 'kept')")
    cli("backup", "create", "--dir", str(cluster))
    chosen = backups(cluster)[-1]
    assert chosen["kind"] == "full" and chosen["status"] == "complete"
    old_uuid = chosen["cluster_uuid"]
    query(cluster, "INSERT INTO shop.orders VALUES (11, 'written after the backup')")

    dry = cli("restore", "--dir", str(cluster), "--backup", chosen["id"], "--dry-run").stdout
    assert f"restore backup {chosen['id']}" in dry and "starts a new cluster" in dry and "dry run" in dry, dry
    refused = cli("restore", "--dir", str(cluster), "--backup", chosen["id"], check=False)
    assert refused.returncode == 1 and "serves clients now" in refused.stderr, refused.stderr
    logical = cli("backup", "create", "--dir", str(cluster), "--logical").stdout
    assert "logical" in logical
    result = cli("restore", "--dir", str(cluster), "--backup", backups(cluster)[-1]["id"], "--yes", check=False)
    assert result.returncode == 1 and "is logical" in result.stderr, result.stderr
    assert query(cluster, "SELECT COUNT(*) FROM shop.orders") == [["6"]]  # nothing was touched

    first = subprocess.Popen([*CLI, "restore", "--dir", str(cluster), "--backup", chosen["id"], "--yes"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "RESTORING backup" in cli("list", "--dir", str(cluster)).stdout, 60, "the restore order")
    finally:
        first.kill()  # the command cut short: the order stays in the DCS, and `list` says so
        first.wait()
    out = cli("restore", "--dir", str(cluster), "--backup", chosen["id"], "--yes", timeout=900).stdout
    assert "resuming the restore" in out and "new cluster" in out and "new base backup" in out, out
    members = json.loads(cli("list", "--dir", str(cluster), "--format", "json").stdout)
    data_nodes = [m for m in members if m.get("role") != "arbitrator"]
    assert len(data_nodes) == 2 and all(m["state"] == "Synced" for m in data_nodes), members
    new_uuids = {m["cluster_uuid"] for m in data_nodes}
    assert len(new_uuids) == 1 and old_uuid not in new_uuids, (old_uuid, new_uuids)
    for member in ADDRESSES:  # both members hold the backup's rows, not the later one; the admin account works
        rows = query(cluster, "SELECT id FROM shop.orders ORDER BY id", member=member)
        assert rows == [["1"], ["2"], ["3"], ["4"], ["10"]], (member, rows)
        assert list((cluster / member).glob("data.refused-*")), f"{member}'s old datadir was not kept aside"
    base = backups(cluster)[-1]
    assert base["kind"] == "full" and base["status"] == "complete" and base["cluster_uuid"] in new_uuids
    query(cluster, "INSERT INTO shop.orders VALUES (12, 'the restored cluster takes writes')")
    assert cli("restore", "--dir", str(cluster), "--abort").stdout.strip() == "no restore is in progress"
