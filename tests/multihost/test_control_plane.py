"""Operating a three-host cluster from the proxy host (issue 9): every operator verb, run as a separate
`galera-pilot` process in the root namespace (the bridge host 10.77.0.1, where the managed proxy runs
too), addressed by a control configuration, by a node's configuration and by `--dcs URL --cluster NAME`.
No cluster folder exists anywhere.

Then the DCS goes away (every etcd member SIGSTOPped while the cluster serves): `list` says so and shows
every member from their REST APIs, `query --member` and `dsn` work, and the verbs that change DCS state
refuse. Last, a full outage with one host gone for good: `bootstrap` shows what it would discard, and
`--force` brings the cluster back without it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pymysql
import pytest
import yaml

from galera_pilot.mariadb import sql
from galera_pilot.tls.contexts import client_context

from .harness import BRIDGE_ADDRESS, MultiHost, cli, run, wait_for

WRITER_BIND = f"{BRIDGE_ADDRESS}:13306"
READER_BIND = f"{BRIDGE_ADDRESS}:13307"


class ProxyHost:
    """The root namespace as an operator's host: a control configuration, a proxy configuration and the
    managed proxy, all in one folder of its own."""

    def __init__(self, multi: MultiHost) -> None:
        self.multi = multi
        self.dir = multi.root / "proxyhost"
        self.dir.mkdir()
        credentials = self.dir / "credentials.yaml"
        credentials.write_bytes((multi.root / "credentials.yaml").read_bytes())
        os.chmod(credentials, 0o600)
        self.control = self.dir / "control.yaml"
        self.control.write_text(yaml.safe_dump({
            "dcs": multi.dcs_url, "cluster_name": multi.cluster_name, "credentials_file": str(credentials),
            "members": {"node1": multi.host("node1").api_url},  # one is enough: the others are learned from it
            "endpoints": {"writer": WRITER_BIND, "reader": READER_BIND},
            "tls_bundle": str(multi.operator_bundle)}))
        bundle = multi.authority().issue_bundle("proxy", [BRIDGE_ADDRESS], out=self.dir / "proxy-tls")
        self.proxy_config = self.dir / "proxy.yaml"
        self.proxy_config.write_text(yaml.safe_dump({
            "dcs": multi.dcs_url, "cluster_name": multi.cluster_name, "writer_bind": WRITER_BIND,
            "reader_bind": READER_BIND, "run_dir": str(self.dir / "proxy"), "tls": {"bundle": str(bundle)}}))
        self.proxy: subprocess.Popen[bytes] | None = None

    def start_proxy(self) -> None:
        with open(self.dir / "proxy.log", "ab") as log:
            self.proxy = subprocess.Popen([sys.executable, "-m", "galera_pilot", "proxy", "-c", str(self.proxy_config)],
                                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)

    def stop_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(30)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait()


def rows(output: str) -> dict[str, list[str]]:
    """`list`'s table by member name (columns split on runs of spaces; empty role cells vanish, so the
    state is found by value rather than by position)."""
    found = {}
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("node"):
            found[fields[0]] = fields
    return found


def writer_of(output: str) -> str | None:
    return next((name for name, fields in rows(output).items() if fields[2] == "writer"), None)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[MultiHost, ProxyHost]]:
    multi = MultiHost(3, cluster_name="cp")
    proxy_host: ProxyHost | None = None
    try:
        multi.create_network()
        multi.start_etcd()
        multi.write_configs()
        multi.start_agents_and_wait("three hosts to be Synced over etcd")
        proxy_host = ProxyHost(multi)
        proxy_host.start_proxy()
        yield multi, proxy_host
    finally:
        if proxy_host is not None:
            proxy_host.stop_proxy()
        multi.close()


def addressings(multi: MultiHost, proxy_host: ProxyHost) -> list[list[str]]:
    return [["-c", str(proxy_host.control)], ["-c", str(multi.host("node2").config_path)],
            ["--dcs", multi.operator_dcs_url, "--cluster", multi.cluster_name]]


def test_every_way_of_addressing_lists_the_cluster(cluster: tuple[MultiHost, ProxyHost]) -> None:
    multi, proxy_host = cluster
    for addressing in addressings(multi, proxy_host):
        listing = rows(cli(*addressing, "list").stdout)
        assert sorted(listing) == ["node1", "node2", "node3"], addressing
        assert all("Synced" in fields and "Primary" in fields for fields in listing.values()), listing
        assert {fields[1] for fields in listing.values()} == {h.address for h in multi.hosts}
    # After the verb works too, and the environment variable names the configuration.
    assert writer_of(cli("list", "-c", str(proxy_host.control)).stdout) is not None
    env_list = subprocess.run([sys.executable, "-m", "galera_pilot", "list"], capture_output=True, text=True,
                              env={**os.environ, "GALERA_PILOT_CONFIG": str(proxy_host.control)}, timeout=60)
    assert env_list.returncode == 0 and len(rows(env_list.stdout)) == 3, env_list.stderr
    wrong = cli("--dcs", multi.operator_dcs_url, "--cluster", "nope", "list", check=False)
    assert wrong.returncode == 1 and f"holds no cluster named 'nope' (it holds: {multi.cluster_name})" in wrong.stderr
    none = cli("list", check=False)
    assert none.returncode == 1 and "no cluster given" in none.stderr


def test_history_query_and_dsn(cluster: tuple[MultiHost, ProxyHost]) -> None:
    multi, proxy_host = cluster
    history = cli("-c", str(proxy_host.control), "history").stdout
    assert "initialize" in history or "bootstrap" in history, history
    assert cli("-c", str(proxy_host.control), "query", "--member", "node3",
               "SELECT @@wsrep_node_name").stdout.strip() == "node3"
    assert cli("-c", str(multi.host("node1").config_path), "query",
               "SHOW STATUS LIKE 'wsrep_cluster_size'").stdout.strip() == "wsrep_cluster_size\t3"
    urls = dict(line.split(": ", 1) for line in cli("-c", str(proxy_host.control), "dsn").stdout.splitlines()
                if line.startswith(("writer:", "reader:")))
    assert urls == {"writer": f"mysql://pilot_admin@{WRITER_BIND}/", "reader": f"mysql://pilot_admin@{READER_BIND}/"}
    writer_url = cli("-c", str(proxy_host.control), "dsn", "--role", "writer", "--show-password").stdout.strip()
    parsed = urlparse(writer_url)
    writer = writer_of(cli("-c", str(proxy_host.control), "list").stdout)

    def through_the_proxy() -> str:
        connection = pymysql.connect(host=parsed.hostname, port=parsed.port, user=unquote(parsed.username or ""),
                                     password=unquote(parsed.password or ""), connect_timeout=3,
                                     ssl=client_context(multi.authority().ca_file))  # the endpoint is in the SANs
        try:
            return sql.node_name(connection)
        finally:
            connection.close()
    wait_for(lambda: through_the_proxy() == writer, 60, f"the proxy host's writer endpoint to reach {writer}")
    # The proxy's own configuration addresses the cluster too, and knows the endpoints (not the password).
    assert f"writer: mysql://USER@{WRITER_BIND}/" in cli("-c", str(proxy_host.proxy_config), "dsn").stdout


def test_the_dashboard_runs_on_the_proxy_host_over_https_with_the_token(cluster: tuple[MultiHost, ProxyHost]) -> None:
    """Issue 16 across hosts: `dashboard -c proxy.yaml` on the proxy host, bound to its bridge address (not
    loopback), serves HTTPS with the proxy's bundle and answers only requests carrying the REST API token;
    it learns the three members from the DCS and every card comes from that member's /status."""
    _, proxy_host = cluster
    bundle = proxy_host.dir / "proxy-tls"
    port = 18080
    process = subprocess.Popen([sys.executable, "-m", "galera_pilot", "dashboard", "-c", str(proxy_host.proxy_config),
                                "--bind", f"{BRIDGE_ADDRESS}:{port}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    context = client_context(bundle / "ca.pem")
    token = (bundle / "api-token").read_text().strip()

    def ask(headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection(BRIDGE_ADDRESS, port, context=context, timeout=5)
        try:
            connection.request("GET", "/api/state", headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def every_card_answered() -> dict | None:
        status, body = ask({"Authorization": f"Bearer {token}"})
        state = json.loads(body) if status == 200 else {}
        cards = (state.get("frame") or {}).get("members") or []
        return state if len(cards) == 3 and all(c["api"] == "answered" for c in cards) else None

    try:
        state = wait_for(every_card_answered, 60, "the proxy host's dashboard with every member's /status")
        assert isinstance(state, dict)
        assert sorted(c["name"] for c in state["frame"]["members"]) == ["node1", "node2", "node3"]
        assert state["frame"]["cluster"]["writer"] == writer_of(cli("-c", str(proxy_host.control), "list").stdout)
        assert ask({})[0] == 401
        assert ask({"Authorization": "Bearer not-the-token"})[0] == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


def test_switchover_maintenance_and_the_bootstrap_refusal(cluster: tuple[MultiHost, ProxyHost]) -> None:
    multi, proxy_host = cluster
    control = ["-c", str(proxy_host.control)]
    writer = writer_of(cli(*control, "list").stdout)
    target = next(n for n in ("node1", "node2", "node3") if n != writer)
    moved = cli("--dcs", multi.operator_dcs_url, "--cluster", multi.cluster_name, "switchover", "--to",
                target).stdout
    assert f"writer moved from {writer} to {target}" in moved
    assert writer_of(cli(*control, "list").stdout) == target
    drained = cli("-c", str(multi.host("node3").config_path), "maintenance", "on", "node3").stdout
    assert "node3: drained" in drained
    assert rows(cli(*control, "list").stdout)["node3"][2] in ("maintenance", "writer")
    cli(*control, "maintenance", "off", "node3")
    wait_for(lambda: rows(cli(*control, "list").stdout)["node3"][2] != "maintenance", 30, "node3 out of maintenance")
    refused = cli(*control, "bootstrap", "--member", "node1", "--force", check=False)
    assert refused.returncode == 1 and "a Primary Component exists" in refused.stderr


def test_during_a_dcs_outage(cluster: tuple[MultiHost, ProxyHost]) -> None:
    multi, proxy_host = cluster
    control = ["-c", str(proxy_host.control)]
    wait_for(multi.all_synced, 120, "a healthy cluster before the outage")
    for process in multi.etcds.values():
        process.send_signal(signal.SIGSTOP)
    try:
        listed = cli(*control, "list")
        first = listed.stdout.splitlines()[0]
        assert first.startswith(f"the DCS {multi.dcs_url} is unreachable"), listed.stdout
        assert "showing what the members' REST APIs say at their last known addresses" in first
        listing = rows(listed.stdout)
        # Only node1 is named in the control configuration; node2 and node3 come from its /status.
        assert sorted(listing) == ["node1", "node2", "node3"], listed.stdout
        assert all("Synced" in fields for fields in listing.values()), listed.stdout
        assert cli(*control, "query", "--member", "node2", "SELECT @@wsrep_node_name").stdout.strip() == "node2"
        assert cli("-c", str(multi.host("node3").config_path), "query", "--member", "node3",
                   "SELECT 1").stdout.strip() == "1"
        assert f"writer: mysql://pilot_admin@{WRITER_BIND}/" in cli(*control, "dsn").stdout
        for verb in (["switchover"], ["maintenance", "on", "node2"], ["bootstrap", "--member", "node1"]):
            refused = cli(*control, *verb, check=False)
            assert refused.returncode == 1, verb
            assert f"the DCS {multi.dcs_url} is unreachable" in refused.stderr, refused.stderr
    finally:
        for process in multi.etcds.values():
            process.send_signal(signal.SIGCONT)
    wait_for(multi.all_synced, 120, "the agents to use the DCS again")


def kill_node(multi: MultiHost, node: str) -> None:
    """A power loss of one host's database side: its agent and mariadbd SIGKILLed (etcd keeps running)."""
    host = multi.host(node)
    agent = multi.agents.pop(node)
    agent.kill()
    agent.wait(10)
    for pid in run("ip", "netns", "pids", host.namespace).stdout.split():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "mariadbd":
                os.kill(int(pid), signal.SIGKILL)


def test_forced_bootstrap_after_a_full_outage_with_a_host_gone(cluster: tuple[MultiHost, ProxyHost]) -> None:
    multi, proxy_host = cluster
    control = ["-c", str(proxy_host.control)]
    wait_for(multi.all_synced, 120, "a healthy cluster before the outage")
    for node in ("node1", "node2", "node3"):
        kill_node(multi, node)
    for node in ("node1", "node2"):  # node3's host stays down
        multi.start_agent(multi.host(node))
    def outage_seen() -> dict[str, int] | None:
        """Both restarted agents reported a position (stopped mariadbd), and node3's last record (a
        Primary member, until its TTL ran out) is gone."""
        snapshot = multi.snapshot()
        found = {n: m.position.seqno for n, m in snapshot.members.items()
                 if n in ("node1", "node2") and not m.running and m.position is not None}
        return found if len(found) == 2 and "node3" not in snapshot.members else None
    positions = wait_for(outage_seen, 120, "node1 and node2 to report positions, node3's record to expire")
    time.sleep(2)  # the default policy waits for node3: nobody bootstraps on its own
    assert not multi.snapshot().primary_members
    source = max(("node1", "node2"), key=lambda n: positions[n])
    shown = cli(*control, "bootstrap", "--member", source, check=False)
    assert shown.returncode == 1 and "not ordered; run again with --force" in shown.stderr
    assert "WARNING: no position from node3" in shown.stdout, shown.stdout
    ordered = cli("--dcs", multi.operator_dcs_url, "--cluster", multi.cluster_name, "bootstrap", "--member", source,
                  "--force").stdout
    assert f"ordered: {source}'s agent bootstraps the cluster" in ordered
    wait_for(lambda: all("Synced" in rows(cli(*control, "list").stdout).get(n, [])
                         for n in ("node1", "node2")), 180, "node1 and node2 Synced after the forced bootstrap")
    multi.start_agent(multi.host("node3"))
    wait_for(multi.all_synced, 300, "node3 to rejoin")
    forced = [e for e in multi.snapshot().history if e.action == "force"]
    assert forced and forced[-1].member == source
