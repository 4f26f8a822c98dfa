"""Moving a running plaintext cluster to TLS (issue 11): `galera-pilot tls enable --dir DIR`.

One 3-node cluster made `up --no-tls` with its managed HAProxy (nodes on 127.0.0.230-232, endpoints on
127.0.0.233). A client writes through the writer endpoint the whole time. What must hold afterwards:
every acknowledged write is there, and the client was never cut off for longer than the rolls'
switchovers; every node requires TLS of clients and verifies with the folder's new CA; the REST API is
HTTPS and refuses state changes without credentials; rows written after the move cross the wire
encrypted only (a capture of replication between the nodes); and `list` and `up` know the folder as TLS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls.contexts import client_context
from galera_pilot.tls.http import ApiClient, ApiUnreachable

from .capture import Capture
from .conftest import agent_url, cli, destroy, members, new_cluster_path, test_address
from .routing_helpers import AckWriter

NODES = {f"node{i + 1}": test_address(f"127.0.0.{230 + i}") for i in range(3)}
ENDPOINT = test_address("127.0.0.233")
CANARY = "tls-enable-canary-7f3a"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--base-address", NODES["node1"], "--no-tls",
                     "--writer-bind", f"{ENDPOINT}:3306", "--reader-bind", f"{ENDPOINT}:3307")
        assert "3 nodes Synced" in result.stdout, result.stdout
        yield directory
    finally:
        destroy(directory)


def connect(address: str, directory: Path, **tls: object) -> pymysql.connections.Connection:
    credentials = load_credentials(directory / "credentials.yaml")
    return pymysql.connect(host=address, port=3306, user=credentials.admin_user, password=credentials.admin_password,
                           connect_timeout=3, autocommit=True, **tls)  # type: ignore[arg-type]


def run(connection: pymysql.connections.Connection, statement: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return list(cursor.fetchall())


def test_a_plaintext_cluster_moves_to_tls_while_a_client_writes(cluster: Path) -> None:
    plain = connect(NODES["node1"], cluster, ssl_disabled=True)
    run(plain, "CREATE DATABASE IF NOT EXISTS app")
    run(plain, "CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY)")
    run(plain, "CREATE TABLE IF NOT EXISTS app.rows (id INT PRIMARY KEY, v TEXT)")
    plain.close()
    credentials = load_credentials(cluster / "credentials.yaml")
    writer = AckWriter(ENDPOINT, 3306, credentials.admin_user, credentials.admin_password).start()
    try:
        time.sleep(2)
        moved_at = time.monotonic()
        result = cli("tls", "enable", "--dir", str(cluster), "--yes", timeout=1200)
        print(result.stdout)
        time.sleep(2)
    finally:
        writer.stop()
    for step in ("step 1 of 3", "step 2 of 3", "step 3 of 3", "runs TLS everywhere"):
        assert step in result.stdout, result.stdout
    assert len(writer.acked) > 100 and writer.ack_times[-1] > moved_at, "the client wrote during and after"
    print(f"tls enable under writes: {len(writer.acked)} writes acknowledged, longest gap "
          f"{writer.longest_gap_after(moved_at):.2f} s")

    ca = cluster / "pki" / "ca.pem"
    verified = {"ssl": client_context(ca)}
    with pytest.raises(pymysql.err.OperationalError):
        connect(NODES["node2"], cluster, ssl_disabled=True).close()  # require_secure_transport
    for name, address in NODES.items():
        connection = connect(address, cluster, **verified)
        assert run(connection, "SELECT @@require_secure_transport")[0][0] == 1, name
        assert run(connection, "SHOW STATUS LIKE 'Ssl_version'")[0][1].startswith("TLS"), name
        connection.close()
    # Everything acknowledged is there, read over TLS through the writer endpoint.
    endpoint = connect(ENDPOINT, cluster, **verified)
    stored = {row[0] for row in run(endpoint, "SELECT id FROM app.acks")}
    assert set(writer.acked) <= stored, "acknowledged writes were lost"
    # Replication between the nodes is TLS now: a row written after the move never crosses in plaintext.
    with Capture(cluster.parent / "after.pcap", list(NODES.values())) as capture:
        run(endpoint, f"INSERT INTO app.rows VALUES (1, REPEAT('{CANARY}', 40))")
        time.sleep(1)
    endpoint.close()
    wire = capture.data()
    assert len(wire) > 2000 and CANARY.encode() not in wire, "replication or a client sent the row in plaintext"
    # The REST API: HTTPS only, verified by the new CA; state changes need credentials.
    anonymous = ApiClient(client_context(ca))
    assert anonymous.request("GET", agent_url(NODES["node1"], "/health"))[0] == 200
    assert anonymous.request("POST", agent_url(NODES["node1"], "/reload"), b"{}")[0] == 401
    with pytest.raises(ApiUnreachable):
        ApiClient().request("GET", f"http://{NODES['node1']}:8008/health", timeout=2.0)
    folder = EmbeddedCluster(cluster)
    assert folder.tls and all(not node.config.tls.migrating and node.config.tls.enabled for node in folder.nodes())
    rows = members(cluster)  # `list` over HTTPS, verified with the folder's CA
    assert all(rows[n]["state"] == "Synced" and rows[n]["cluster_size"] == 3 for n in NODES), rows
    assert "runs TLS everywhere" in cli("tls", "enable", "--dir", str(cluster), "--yes").stdout  # nothing to do
