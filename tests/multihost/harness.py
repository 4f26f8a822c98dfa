"""Several "hosts" on one machine: network namespaces joined by a bridge, each with its own address, a
3-member etcd cluster (one member per host) and one agent + mariadbd per host started with `ip netns exec`.

Why namespaces: each host then has its own loopback, its own ports (everything uses the standard 3306,
4567, 4568, 4444, 8008, 2379, 2380) and its own firewall, so partitions are real dropped packets between
addresses, as between machines. The test process stays in the root namespace and reaches every host
through the bridge (10.77.0.1), like an operator's workstation or a proxy host.

Everything is named `gp5-*` (namespaces, bridge, veths) and lives in 10.77.0.0/24, so `cleanup_leftovers`
can remove what a crashed run left behind without touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from galera_pilot.cluster import Cluster
from galera_pilot.credentials import Credentials, load_credentials, save_credentials
from galera_pilot.dcs import DCS, get_dcs
from galera_pilot.errors import DCSError
from galera_pilot.mariadb import sql
from galera_pilot.tls import http
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.bundle import bundle_files
from galera_pilot.tls.contexts import client_context
from tests.unit.dcs_backends import ETCD_BINARY
from tests.waiting import wait_for

PREFIX = "gp5-"
BRIDGE = "gp5-br0"
SUBNET = "10.77.0."
BRIDGE_ADDRESS = SUBNET + "1"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`galera-pilot ARGS` as its own process, with no GALERA_PILOT_* variable inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALERA_PILOT_")}
    result = subprocess.run([sys.executable, "-m", "galera_pilot", *args], capture_output=True, text=True,
                            timeout=timeout, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"galera-pilot {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def namespaces() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.startswith(PREFIX)]


def kill_namespace_processes(namespace: str) -> None:
    for pid in run("ip", "netns", "pids", namespace, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def cleanup_leftovers() -> None:
    """Remove every gp5-* namespace (after killing what runs in it), veth and bridge: what a crashed run
    may have left. Firewall rules live inside the namespaces and go with them."""
    for namespace in namespaces():
        kill_namespace_processes(namespace)
        run("ip", "netns", "del", namespace, check=False)
    for line in run("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            run("ip", "link", "del", name, check=False)


@dataclass
class Host:
    index: int
    root: Path

    @property
    def namespace(self) -> str:
        return f"{PREFIX}h{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET}{10 + self.index}"

    @property
    def node(self) -> str:
        return f"node{self.index}"

    @property
    def dir(self) -> Path:
        return self.root / f"host{self.index}"

    @property
    def config_path(self) -> Path:
        return self.dir / "agent.yaml"

    @property
    def api_url(self) -> str:
        return f"https://{self.address}:8008"

    @property
    def tls_bundle(self) -> Path:
        return self.dir / "tls"

    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *args]


@dataclass
class MultiHost:
    """N hosts, an etcd member on each of the first three, and an agent per host (started on demand)."""

    count: int = 3
    cluster_name: str = "mh"
    sst_method: str = "rsync"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gp5-multihost-")))
    hosts: list[Host] = field(default_factory=list)
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    etcds: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _etcd_args: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.chmod(0o755)  # mariadbd runs as mysql and must traverse to its datadir
        self.hosts = [Host(i, self.root) for i in range(1, self.count + 1)]

    @property
    def etcd_hosts(self) -> list[Host]:
        return self.hosts[:3]

    @property
    def dcs_url(self) -> str:
        """etcd over TLS with client certificates from the cluster's PKI: agents and the proxy present their
        bundles (an etcds:// URL without options of its own), the operator's CLI its own bundle."""
        return "etcds://" + ",".join(f"{h.address}:{ETCD_CLIENT_PORT}" for h in self.etcd_hosts)

    @property
    def operator_bundle(self) -> Path:
        """The operator's own certificate (this process, the CLI in the root namespace)."""
        bundle = self.authority().issued_dir("operator")
        if not bundle.exists():
            self.authority().issue_bundle("operator", [BRIDGE_ADDRESS], out=bundle)
        return bundle

    @property
    def operator_dcs_url(self) -> str:
        """The DCS URL an operator gives with --dcs: it names the operator's certificate and the CA."""
        bundle = self.operator_bundle
        return f"{self.dcs_url}?cacert={bundle / 'ca.pem'}&cert={bundle / 'node.pem'}&key={bundle / 'node.key'}"

    def operator_tls(self) -> tuple[Path, Path, Path]:
        return bundle_files(self.operator_bundle)

    def host(self, node: str) -> Host:
        return next(h for h in self.hosts if h.node == node)

    # ---- network ------------------------------------------------------------------------------------------
    def create_network(self) -> None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        for host in self.hosts:
            outside, inside = host.namespace, f"{host.namespace}p"
            run("ip", "netns", "add", host.namespace)
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            run("ip", "link", "set", outside, "master", BRIDGE)
            run("ip", "link", "set", outside, "up")
            run("ip", "link", "set", inside, "netns", host.namespace)
            run(*host.exec_args("ip", "link", "set", inside, "name", "eth0"))
            run(*host.exec_args("ip", "addr", "add", f"{host.address}/24", "dev", "eth0"))
            run(*host.exec_args("ip", "link", "set", "eth0", "up"))
            # mariadbd, its SST scripts and the agent talk to themselves over loopback too.
            run(*host.exec_args("ip", "link", "set", "lo", "up"))

    def partition(self, host: Host) -> None:
        """Drop every packet between `host` and the other hosts (both directions); the bridge host (the
        test, like a proxy host) still reaches it."""
        for other in self.hosts:
            if other is not host:
                run(*host.exec_args("iptables", "-A", "INPUT", "-s", other.address, "-j", "DROP"))
                run(*host.exec_args("iptables", "-A", "OUTPUT", "-d", other.address, "-j", "DROP"))

    def publish_ports(self, host: Host, published: dict[int, int]) -> None:
        """NAT inside `host`: connections to its address on a published port land on the listen port, as
        with a container's published ports (docker -p 14567:4567). Also for the host's own traffic."""
        for outside, inside in published.items():
            for chain in ("PREROUTING", "OUTPUT"):
                run(*host.exec_args("iptables", "-t", "nat", "-A", chain, "-d", host.address, "-p", "tcp",
                                    "--dport", str(outside), "-j", "REDIRECT", "--to-ports", str(inside)))
            # Like a container's private ports: dialling the listen port directly does not work, so
            # anything that reaches the node went through what it advertises.
            run(*host.exec_args("iptables", "-A", "INPUT", "!", "-i", "lo", "-p", "tcp", "-m", "conntrack",
                                "--ctstate", "NEW", "--ctorigdstport", str(inside), "-j", "DROP"))

    def heal(self, host: Host) -> None:
        run(*host.exec_args("iptables", "-F", "INPUT"))
        run(*host.exec_args("iptables", "-F", "OUTPUT"))

    # ---- etcd ---------------------------------------------------------------------------------------------
    def start_etcd(self, timeout: float = 60.0) -> None:
        assert os.access(ETCD_BINARY, os.X_OK), f"{ETCD_BINARY} is missing: apt-get install etcd-server"
        shm = Path("/dev/shm")
        data_root = Path(tempfile.mkdtemp(prefix="gp5-etcd-", dir=shm if shm.is_dir() else None))
        self._etcd_data = data_root
        initial = ",".join(f"e{h.index}=https://{h.address}:{ETCD_PEER_PORT}" for h in self.etcd_hosts)
        for host in self.etcd_hosts:
            client, peer = f"https://{host.address}:{ETCD_CLIENT_PORT}", f"https://{host.address}:{ETCD_PEER_PORT}"
            host.dir.mkdir(parents=True, exist_ok=True)
            # etcd's own certificate from the cluster's PKI; clients and peers must present one it signed.
            tls = self.authority().issue_bundle(f"etcd{host.index}", [host.address], out=host.dir / "etcd-tls")
            files = ["--cert-file", str(tls / "node.pem"), "--key-file", str(tls / "node.key"),
                     "--trusted-ca-file", str(tls / "ca.pem"), "--client-cert-auth",
                     "--peer-cert-file", str(tls / "node.pem"), "--peer-key-file", str(tls / "node.key"),
                     "--peer-trusted-ca-file", str(tls / "ca.pem"), "--peer-client-cert-auth"]
            self._etcd_args[host.node] = host.exec_args(
                ETCD_BINARY, "--name", f"e{host.index}", "--data-dir", str(data_root / f"e{host.index}"),
                "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer, "--initial-cluster", initial,
                "--initial-cluster-token", f"gp5-{os.getpid()}", "--initial-cluster-state", "new", *files)
            self.restart_etcd(host)
        for host in self.etcd_hosts:
            wait_for(lambda h=host: self._etcd_member_answers(h), timeout, f"etcd member e{host.index} to answer")

    def _etcd_member_answers(self, host: Host) -> bool:
        store = get_dcs(f"etcds://{host.address}:{ETCD_CLIENT_PORT}", self.cluster_name, self.operator_tls())
        try:
            store.list("")
            return True
        except DCSError:
            return False
        finally:
            store.close()

    def restart_etcd(self, host: Host) -> None:
        """(Re)start host's etcd member with its data: after a kill it rejoins its cluster as it was."""
        with open(host.dir / "etcd.log", "ab") as log:
            self.etcds[host.node] = subprocess.Popen(
                self._etcd_args[host.node], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    # ---- agents -------------------------------------------------------------------------------------------
    def write_configs(self, per_host: dict[str, dict[str, object]] | None = None, **overrides: object) -> None:
        """One agent.yaml per host, and a copy of the credentials file per host, 0600 from creation on
        (as an operator would install it on each machine). `per_host` adds fields for one node."""
        master = self.root / "credentials.yaml"
        save_credentials(master, Credentials.generate())
        authority = self.authority()
        for host in self.hosts:
            host.dir.mkdir(parents=True, exist_ok=True)
            # As an operator would: one bundle per host from the PKI on this (the operator's) host, naming
            # the host's address and the bridge's, where the endpoints of test_control_plane listen.
            authority.issue_bundle(host.node, [host.address, BRIDGE_ADDRESS, "127.0.0.1"], ["localhost"],
                                   out=host.tls_bundle)
            credentials = host.dir / "credentials.yaml"
            save_credentials(credentials, load_credentials(master))
            config = {
                "name": host.node, "cluster_name": self.cluster_name, "address": host.address, "dcs": self.dcs_url,
                "base_dir": str(host.dir / "node"), "credentials_file": str(credentials),
                "sst_method": self.sst_method, "use_seed": False, "tls": {"bundle": str(host.tls_bundle)},
            } | overrides | (per_host or {}).get(host.node, {})
            host.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def credentials(self) -> Credentials:
        return load_credentials(self.root / "credentials.yaml")

    def authority(self) -> Authority:
        """The cluster's PKI (made on first use); this process's API and MySQL clients verify with it."""
        authority = Authority(self.root / "pki")
        if not authority.exists():
            init_authority(authority.dir, self.cluster_name)
            http.use_for_process(client_context(authority.ca_file), authority.api_token())
        return authority

    def start_agent(self, host: Host) -> None:
        log_dir = host.dir / "node" / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "agent.log", "ab") as out:
            self.agents[host.node] = subprocess.Popen(
                host.exec_args(sys.executable, "-m", "galera_pilot", "agent", str(host.config_path)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def stop_agent(self, host: Host, timeout: float = 300.0) -> None:
        """SIGTERM: the agent shuts its mariadbd down gracefully, then exits."""
        proc = self.agents.pop(host.node, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start_agents_and_wait(self, what: str, timeout: float = 300.0) -> None:
        """Start every host's agent and wait until all are Synced; on a timeout, the agents' logs say why."""
        for host in self.hosts:
            self.start_agent(host)
        try:
            wait_for(self.all_synced, timeout, what)
        except AssertionError as error:
            logs = "\n\n".join(f"{h.node}:\n{self.agent_log(h)}" for h in self.hosts)
            raise AssertionError(f"{error}\n{logs}") from None

    def dcs(self) -> DCS:
        return get_dcs(self.dcs_url, self.cluster_name, self.operator_tls())

    def snapshot(self) -> Cluster:
        store = self.dcs()
        try:
            return store.snapshot()
        finally:
            store.close()

    def all_synced(self, size: int | None = None) -> bool:
        size = size or self.count
        members = self.snapshot().members
        return all((m := members.get(h.node)) is not None and m.is_synced and m.cluster_size >= size
                   for h in self.hosts)

    def run_sql(self, node: str, statement: str, port: int = 3306, causal: bool = False) -> list[tuple]:
        """One statement on `node`'s server, over TCP. `causal`: the node first applies everything the
        cluster committed before (wsrep_sync_wait), as a client that just wrote on another node needs:
        Galera certifies a commit everywhere at once but applies it on the others a moment later."""
        connection = sql.connect_tcp(self.host(node).address, port, self.credentials(), timeout=3.0)
        try:
            with connection.cursor() as cursor:
                if causal:
                    cursor.execute("SET SESSION wsrep_sync_wait = 15")
                cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def agent_log(self, host: Host) -> str:
        try:
            return (host.dir / "node" / "log" / "agent.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # ---- teardown -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop agents gracefully (in parallel: the partition test may leave a slow one), then kill whatever
        still runs in the namespaces, etcd included, and remove namespaces, bridge and files."""
        for host in self.hosts:
            with contextlib.suppress(AssertionError):
                self.heal(host)
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        for proc in self.agents.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        self.agents.clear()
        for host in self.hosts:
            kill_namespace_processes(host.namespace)
        for proc in self.etcds.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.etcds.clear()
        cleanup_leftovers()
        keep = os.environ.get("GP5_KEEP_LOGS")  # a folder: copy every host's logs there before removal
        if keep:
            for host in self.hosts:
                for log in (host.dir / "node" / "log").glob("*"):
                    target = Path(keep) / host.node / log.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(log, target)
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(AttributeError):
            shutil.rmtree(self._etcd_data, ignore_errors=True)
