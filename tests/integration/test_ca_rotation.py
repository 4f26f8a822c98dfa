"""Replacing the node CA of a running cluster (issue 11): `galera-pilot pki rotate-ca --dir DIR`.

One 3-node cluster with its own PKI and its managed HAProxy (nodes on 127.0.0.210-212, endpoints on
127.0.0.213). What must hold:
- nothing starts on a paused cluster, and nothing is changed;
- a phase that has not reached every host (here: a proxy manager that is stopped) stops the rotation
  there, naming who lags, and a second run goes on from that phase;
- at the end every bundle, the PKI, every agent and the proxy use the new CA only, every mariadbd was
  restarted, and a certificate of the old CA is refused by Galera and by the REST API, where it was
  accepted before; a client writing through the writer endpoint the whole time lost nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls import pki
from galera_pilot.tls.bundle import load_bundle
from galera_pilot.tls.contexts import client_context
from galera_pilot.tls.http import ApiClient, ApiUnreachable
from tests.tls_probes import galera_accepts
from tests.waiting import wait_for

from .conftest import agent_url, cli, dcs_view, destroy, mariadbd_pid, new_cluster_path, query, test_address
from .routing_helpers import AckWriter

NODES = {f"node{i + 1}": test_address(f"127.0.0.{210 + i}") for i in range(3)}
ENDPOINT = test_address("127.0.0.213")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--base-address", NODES["node1"], "--own-pki",
                     "--writer-bind", f"{ENDPOINT}:3306", "--reader-bind", f"{ENDPOINT}:3307")
        assert "3 nodes Synced" in result.stdout, result.stdout
        query(directory, "CREATE DATABASE IF NOT EXISTS app")
        query(directory, "CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY)")
        yield directory
    finally:
        destroy(directory)


def ca_ids(path: Path) -> tuple[str, ...]:
    return tuple(sorted(pki.short_id(ca) for ca in pki.describe_all(path.read_bytes())))


def api_post_with(ca: Path, bundle: Path, address: str) -> int | None:
    """POST /reload presenting `bundle`'s certificate and no token: its HTTP status, None when the TLS
    handshake itself refused the certificate."""
    client = ApiClient(client_context(ca, bundle / "node.pem", bundle / "node.key"))
    try:
        return client.request("POST", agent_url(address, "/reload"), b"{}", timeout=3.0)[0]
    except ApiUnreachable:
        return None


def test_nothing_starts_on_a_paused_cluster(cluster: Path) -> None:
    cli("pause", "--dir", str(cluster))
    try:
        result = cli("pki", "rotate-ca", "--dir", str(cluster), "--yes", check=False)
        assert result.returncode == 1 and "paused" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert not (cluster / "pki" / "ca-next.pem").exists() and not (cluster / "pki" / "ca-rotation.json").exists()
    finally:
        cli("resume", "--dir", str(cluster), "--wait")


def test_the_node_ca_is_replaced_while_clients_write(cluster: Path, tmp_path: Path) -> None:
    folder = EmbeddedCluster(cluster)
    pki_dir = cluster / "pki"
    old = ca_ids(pki_dir / "ca.pem")
    assert len(old) == 1
    kept = shutil.copytree(cluster / "node3" / "tls", tmp_path / "old-node3")  # a certificate of the old CA
    assert galera_accepts(NODES["node1"], pki_dir / "ca.pem", kept), "control: the old certificate works now"
    assert api_post_with(pki_dir / "ca.pem", kept, NODES["node1"]) == 200
    before = {name: mariadbd_pid(cluster, name) for name in NODES}
    credentials = load_credentials(cluster / "credentials.yaml")
    first_id = int(query(cluster, "SELECT COALESCE(MAX(id), 0) + 1 FROM app.acks")[0][0])
    writer = AckWriter(ENDPOINT, 3306, credentials.admin_user, credentials.admin_password, first_id=first_id).start()
    try:
        wait_for(lambda: len(writer.acked) > 20, 30, "the client to write through the endpoint")
        # Phase 1 cannot reach a proxy manager that is stopped: the rotation stops there and says so.
        proxy_pid = folder.proxy.pid()
        assert proxy_pid is not None
        os.kill(proxy_pid, signal.SIGSTOP)
        try:
            stuck = cli("pki", "rotate-ca", "--dir", str(cluster), "--yes", "--timeout", "3", check=False)
        finally:
            os.kill(proxy_pid, signal.SIGCONT)
        assert stuck.returncode == 1, stuck.stdout + stuck.stderr
        assert "phase 1 (trust) has not reached every host" in stuck.stderr and "proxy trusts" in stuck.stderr, \
            stuck.stderr
        state = cli("pki", "show", "--dir", str(cluster)).stdout
        assert "phase 1 of 3 (trust) written, next: reissue" in state, state
        both = ca_ids(pki_dir / "ca.pem")
        assert len(both) == 2 and set(old) < set(both)
        view = dcs_view(cluster)
        assert all(view.members[n].tls_trust == both and view.members[n].tls_signer == old[0] for n in NODES)

        rolled_at = time.monotonic()
        result = cli("pki", "rotate-ca", "--dir", str(cluster), "--yes", timeout=900)
        print(result.stdout)
        wait_for(lambda: len(writer.acked) > 0 and writer.ack_times[-1] > time.monotonic() - 1, 60,
                 "the client to write again after the rotation")
    finally:
        writer.stop()
    assert "phase 2 of 3" in result.stdout and "phase 3 of 3" in result.stdout, result.stdout
    assert "phase 1 of 3" not in result.stdout, "the second run goes on from the phase reached"
    assert "the CA rotation is complete" in result.stdout, result.stdout
    new = ca_ids(pki_dir / "ca.pem")
    assert len(new) == 1 and new[0] in both and new != old
    assert (pki_dir / "retired" / f"ca-{old[0]}.pem").exists()
    assert not any((pki_dir / name).exists() for name in ("ca-next.pem", "ca-next.key", "ca-rotation.json"))
    for name, bundle in folder.tls_bundles():
        loaded = load_bundle(bundle)
        assert (loaded.trust_ids(), loaded.signer_id()) == (new, new[0]), name
    view = dcs_view(cluster)
    assert all(view.members[n].is_synced and view.members[n].tls_trust == new for n in NODES)
    after = {name: mariadbd_pid(cluster, name) for name in NODES}
    assert all(after[n] is not None and after[n] != before[n] for n in NODES), (before, after)
    # Galera and the API now refuse the old CA's certificate, and take the new ones.
    for name, address in NODES.items():
        assert not galera_accepts(address, pki_dir / "ca.pem", kept), f"{name}'s Galera still trusts the old CA"
        assert galera_accepts(address, pki_dir / "ca.pem", cluster / "node3" / "tls"), name
        assert api_post_with(pki_dir / "ca.pem", kept, address) is None, name
    acked = {int(row[0]) for row in query(cluster, f"SELECT id FROM app.acks WHERE id >= {first_id}")}
    assert set(writer.acked) <= acked, "acknowledged writes were lost"
    print(f"CA rotation under writes: {len(writer.acked)} writes acknowledged, longest gap "
          f"{writer.longest_gap_after(rolled_at):.2f} s")
    assert "node1" in cli("list", "--dir", str(cluster)).stdout  # the CLI verifies with the new CA
