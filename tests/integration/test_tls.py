"""TLS by default (issue 11): a cluster `up` makes with its own CA, checked from outside.

One cluster for the module (127.0.0.160-.163). What must hold:
- DIR/pki holds the CAs, keys 0600; each node's bundle keys and tokens are 0600; no key, token or
  password in any process's command line or environment, in the logs or in the DCS;
- TCP clients need TLS (require_secure_transport), verify the node against the CA and refuse another
  CA; the REST API is HTTPS only, and a state change needs the node CA's certificate or the token;
- a node with a bad bundle never starts, and says which file; a node with a certificate from another
  CA cannot join (Galera refuses the handshake) and the cluster is untouched; given a good bundle again
  it joins.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pymysql
import pytest

from galera_pilot.client import connect_writer, is_writer
from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.embedded.layout import lay_out
from galera_pilot.errors import PilotError
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.contexts import client_context
from galera_pilot.tls.http import ApiClient, ApiUnreachable
from tests.waiting import wait_for

from .conftest import CLI, agent_url, cli, destroy, members, new_cluster_path, query, test_address

NODES = [test_address(f"127.0.0.{160 + i}") for i in range(4)]
ENDPOINT = test_address("127.0.0.164")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--nodes", "3", "--base-address", NODES[0], "--own-pki",
            "--writer-bind", f"{ENDPOINT}:3306", "--reader-bind", f"{ENDPOINT}:3307")
        yield directory
    finally:
        destroy(directory)


def own_ca(cluster: Path) -> ssl.SSLContext:
    return client_context(cluster / "pki" / "ca.pem")


def test_up_made_its_own_pki_with_private_keys(cluster: Path) -> None:
    pki = cluster / "pki"
    for name in ("ca.key", "client-ca.key", "api-token"):
        assert stat.S_IMODE((pki / name).stat().st_mode) == 0o600, name
    for node in ("node1", "node2", "node3"):
        for name in ("node.key", "api-token"):
            assert stat.S_IMODE((cluster / node / "tls" / name).stat().st_mode) == 0o600, (node, name)
        copy = cluster / node / "run" / "tls" / "node.key"  # mariadbd's copy: its own, still 0600
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.owner() == "mysql"
    assert not (cluster / "node1" / "tls" / "ca.key").exists(), "the CA key never goes to a node"


def test_no_secret_in_argv_environment_logs_or_dcs(cluster: Path) -> None:
    credentials = load_credentials(cluster / "credentials.yaml")
    key_bodies = [path.read_text().splitlines()[1] for path in
                  [cluster / "pki" / "ca.key", *cluster.glob("node*/tls/node.key")]]
    secrets = [credentials.admin_password, credentials.sst_password,
               (cluster / "pki" / "api-token").read_text().strip(), *key_bodies]
    for proc in psutil.process_iter(["cmdline", "pid"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " ".join(f"{k}={v}" for k, v in proc.environ().items())
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        assert not any(s in text for s in secrets), f"a secret is in the command line or environment of {proc.pid}"
    for log in [*cluster.glob("node*/log/*"), cluster / "dcs.sqlite"]:
        if log.exists():
            data = log.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"a secret is in {log}"


def test_clients_need_tls_and_verify_the_node(cluster: Path) -> None:
    credentials = load_credentials(cluster / "credentials.yaml")
    login = {"host": NODES[1], "port": 3306, "user": credentials.admin_user, "password": credentials.admin_password,
             "connect_timeout": 3}
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(**login, ssl_disabled=True).close()
    assert refused.value.args[0] == 1045, refused.value  # require_secure_transport answers "Access denied"
    connection = pymysql.connect(**login, ssl=own_ca(cluster))  # verifies the chain and the IP in the SAN
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert str(cursor.fetchone()[1]).startswith("TLSv1.")
    connection.close()
    stranger = init_authority(cluster.parent / "stranger", "stranger")
    with pytest.raises(pymysql.err.OperationalError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        pymysql.connect(**login, ssl=client_context(stranger.ca_file)).close()
    # The CLI verifies with the folder's CA (query connects over TCP).
    assert query(cluster, "SELECT @@wsrep_node_name", "node2") == [["node2"]]


def test_rest_api_is_https_and_state_changes_need_credentials(cluster: Path) -> None:
    client = ApiClient(own_ca(cluster))
    url = agent_url(NODES[1])
    assert client.request("GET", url + "/health")[0] == 200
    with pytest.raises(ApiUnreachable):
        ApiClient().request("GET", url.replace("https://", "http://") + "/health")  # no plaintext answer
    stranger = init_authority(cluster.parent / "stranger-api", "stranger")
    with pytest.raises(ApiUnreachable, match="TLS handshake failed"):
        ApiClient(client_context(stranger.ca_file)).request("GET", url + "/health")
    body = b'{"writer": "node9", "ttl": 2}'
    assert client.request("POST", url + "/failsafe", body=body)[0] == 401
    assert ApiClient(own_ca(cluster), "not-the-token-at-all").request(
        "POST", url + "/failsafe", body=body, authorized=True)[0] == 401
    token = (cluster / "pki" / "api-token").read_text().strip()
    assert ApiClient(own_ca(cluster), token).request("POST", url + "/failsafe", body=body, authorized=True)[0] == 409
    bundle = cluster / "node1" / "tls"  # an agent's own certificate authorizes it (how peers ask)
    peer = ApiClient(client_context(bundle / "ca.pem", bundle / "node.pem", bundle / "node.key"))
    assert peer.request("POST", url + "/failsafe", body=body)[0] == 409


def test_connect_writer_verifies_the_agents_and_the_server(cluster: Path) -> None:
    """The application helper (client.py) over TLS: the agents' HTTPS API and the writer's certificate."""
    credentials = load_credentials(cluster / "credentials.yaml")
    urls = [agent_url(address) for address in NODES[:3]]
    connection = connect_writer(urls, credentials.admin_user, credentials.admin_password,
                                ca_file=str(cluster / "pki" / "ca.pem"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            assert str(cursor.fetchone()[1]).startswith("TLSv1.")
        assert is_writer(connection, urls, ca_file=str(cluster / "pki" / "ca.pem"))
    finally:
        connection.close()
    with pytest.raises(PilotError, match="knows no CA"):
        connect_writer(urls, credentials.admin_user, credentials.admin_password)


def test_rotation_is_live_and_a_broken_bundle_keeps_the_old_certificates(cluster: Path) -> None:
    """`pki rotate --dir`: every agent, Galera, the server and the proxy take the new certificates while
    running; the cluster never loses a member. A broken bundle is refused by name, the old one stays."""
    client = ApiClient(own_ca(cluster))

    def status(node: int) -> dict:
        code, body = client.request("GET", agent_url(NODES[node], "/status"), timeout=2.0)
        assert code == 200
        return json.loads(body)

    before = [status(i)["tls"]["not_after"] for i in range(3)]
    assert all(before) and members(cluster)["node1"]["cert"].endswith(" d")
    time.sleep(1.1)  # a new certificate's validity starts in another second: not_after differs
    cli("pki", "rotate", "--dir", str(cluster))
    wait_for(lambda: all(status(i)["tls"]["not_after"] != before[i] for i in range(3)), 20,
             "every agent to load its new certificate")
    history = cli("history", "--dir", str(cluster)).stdout
    assert history.count("Galera and the server reloaded it") >= 3, history
    wait_for(lambda: "loaded a new proxy certificate" in (cluster / "proxy" / "proxy.log").read_text(), 20,
             "the proxy to load its new certificate")
    rows = members(cluster)
    assert all(rows[f"node{i}"]["state"] == "Synced" and rows[f"node{i}"]["cluster_size"] == 3 for i in (1, 2, 3))
    credentials = load_credentials(cluster / "credentials.yaml")
    fresh = pymysql.connect(host=ENDPOINT, port=3306, user=credentials.admin_user, password=credentials.admin_password,
                            connect_timeout=3, ssl=own_ca(cluster))  # the writer endpoint, the new certificate
    with fresh.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_server_not_after'")
        served = str(cursor.fetchone()[1])
    fresh.close()
    assert served and served not in before, "FLUSH SSL: the server presents the new certificate"
    # A broken bundle on node2: refused by name, the old certificates stay, everything keeps working.
    (cluster / "node2" / "tls" / "node.pem").write_text("not a certificate\n")
    wait_for(lambda: status(1)["tls"]["reload_error"], 10, "node2 to refuse the broken bundle")
    assert "node.pem" in status(1)["tls"]["reload_error"]
    _code, metrics = client.request("GET", agent_url(NODES[1], "/metrics"))
    assert 'galera_pilot_tls_reload_failed{member="node2"} 1.0' in metrics.decode()
    assert client.request("GET", agent_url(NODES[1], "/health"))[0] == 200
    assert "TLS: the new TLS bundle is not used" in members(cluster)["node2"]["activity"]
    cli("pki", "rotate", "--dir", str(cluster), "node2")  # a good one again, named from the folder
    wait_for(lambda: status(1)["tls"]["reload_error"] is None, 20, "node2 to load a good bundle again")


def test_a_bad_bundle_is_named_and_a_foreign_ca_cannot_join(cluster: Path) -> None:
    """node4 with a key that is not its certificate's: its agent refuses to start and names the file. With
    a whole bundle from another CA (consistent in itself): Galera refuses its handshake and the cluster
    stays as it was. Then `up` issues it a good bundle and it joins."""
    lay_out(cluster, 4, NODES[0], "mariabackup")  # node4's folder and configuration, not started
    bundle = cluster / "node4" / "tls"
    foreign = init_authority(cluster.parent / "foreign", "foreign").issue_bundle(
        "node4", [NODES[3], "127.0.0.1"], ["localhost"], out=cluster.parent / "foreign-node4")
    good = Authority(cluster / "pki").issue_bundle("node4", [NODES[3], "127.0.0.1"], ["localhost"], out=bundle)
    (bundle / "node.key").write_bytes((foreign / "node.key").read_bytes())
    agent = [*CLI, "agent", str(cluster / "node4" / "agent.yaml")]
    result = subprocess.run(agent, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "does not belong to certificate" in result.stderr, result.stderr
    assert str(good / "node.key") in result.stderr
    assert not (cluster / "node4" / "data").exists() or not any((cluster / "node4" / "data").iterdir()), \
        "the agent must refuse before it touches anything"

    shutil.rmtree(bundle)
    shutil.copytree(foreign, bundle)
    log = cluster / "node4" / "log" / "agent-foreign.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(agent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        peers_log = [cluster / n / "log" / "mariadbd.err" for n in ("node1", "node2", "node3")]
        wait_for(lambda: any(_tls_refusal(p) for p in peers_log) or _tls_refusal(cluster / "node4" / "log"
                                                                                  / "mariadbd.err"),
                 90, "a TLS refusal of node4's certificate in a Galera log")
        rows = members(cluster)
        assert all(rows[n]["state"] == "Synced" and rows[n]["cluster_size"] == 3 for n in ("node1", "node2", "node3"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(120)
        EmbeddedCluster(cluster)._stop_node(EmbeddedCluster(cluster).node("node4"), 120)
    shutil.rmtree(bundle)
    shutil.rmtree(cluster / "node4" / "data", ignore_errors=True)
    cli("up", "--dir", str(cluster), "--nodes", "4")  # issues node4 a bundle from the folder's CA
    assert members(cluster)["node4"]["cluster_size"] == 4


def _tls_refusal(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace").lower()
    except OSError:
        return False
    return any(word in text for word in ("certificate verify failed", "handshake failed", "ssl handshake",
                                         "unknown ca", "tlsv1 alert"))
