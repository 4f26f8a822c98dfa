"""The embedded cluster: N nodes on loopback addresses of one machine, sharing one DCS.

The DCS is a SQLite file in the folder by default, or an etcd cluster (`up --dcs etcd://...`); the
folder's `cluster.yaml` records the URL, so `list`, `history`, `bootstrap` and `down` find the same store.

A cluster folder (DIR) holds `cluster.yaml` (the marker that says the folder is ours), the generated
`credentials.yaml` (0600), the DCS file and one folder per node (`node1` … `nodeN`) with that node's
agent config, my.cnf, datadir, socket and logs. `up` starts one agent process per node and returns once
every node is Synced; `down` stops them gracefully.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from galera_pilot.agent.high_water import needs_a_person
from galera_pilot.cluster import Cluster, Member
from galera_pilot.config import (
    NAME_PATTERN,
    NodeConfig,
    SstMethod,
    dcs_url_carries_password,
    dump_config,
    load_config,
    parse_config,
    redact_dcs_url,
)
from galera_pilot.credentials import Credentials, load_credentials, save_credentials
from galera_pilot.dcs import DCS, get_dcs
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.process import MariadbProcess, tail
from galera_pilot.proxy.haproxy_config import parse_bind
from galera_pilot.proxy.haproxy_process import HaproxyProcess
from galera_pilot.proxy.manager import ProxyConfig, load_proxy_config, parse_proxy_config

MARKER = "cluster.yaml"
PROXY_CONFIG = "proxy.yaml"
PROXY_DIR = "proxy"
DEFAULT_WRITER_BIND = "127.0.0.1:3306"
DEFAULT_READER_BIND = "127.0.0.1:3307"
# `up` gives up once every agent has said this long that only a person can go on (a moment of that can be
# a recovery still gathering positions).
PERSON_NEEDED_GRACE = 3.0
SST_TOOLS: dict[str, tuple[str, ...]] = {
    "mariabackup": ("mariabackup", "socat"),
    "rsync": ("rsync",),
    "mysqldump": ("mysqldump", "mysql"),
}


@dataclass(frozen=True)
class Node:
    config: NodeConfig
    config_path: Path

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def agent_pid_file(self) -> Path:
        return self.config.run_dir / "agent.pid"

    def agent_pid(self) -> int | None:
        return running_pid(self.agent_pid_file, str(self.config_path))


# A process that has just exec'd shows an empty /proc/PID/cmdline for a moment: the parent's Popen returns
# when exec closes the close-on-exec pipe, before the kernel has set the new argument pages up (measured:
# 5 of 200 fresh children here). An empty command line is asked again for this long before it counts.
CMDLINE_SETTLE = 0.2


def running_pid(pid_file: Path, argument: str) -> int | None:
    """The pid in pid_file if that process runs with `argument` on its command line (pids are reused)."""
    try:
        pid = int(pid_file.read_text().strip())
        proc = psutil.Process(pid)
        deadline = time.monotonic() + CMDLINE_SETTLE
        while True:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = proc.cmdline()
            if cmdline or time.monotonic() > deadline:
                return pid if argument in cmdline else None
            time.sleep(0.005)
    except (OSError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _node_behind(host: str, port: int, credentials: Credentials) -> str:
    """The wsrep_node_name a new connection to host:port ("" = this host) reaches."""
    connection = sql.connect_tcp(host or "127.0.0.1", port, credentials, timeout=1.0)
    try:
        return sql.node_name(connection)
    finally:
        connection.close()


class EmbeddedCluster:
    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        marker = self.dir / MARKER
        try:
            meta = yaml.safe_load(marker.read_text())
        except FileNotFoundError:
            raise PilotError(f"{self.dir} is not a galera-pilot cluster folder (no {MARKER})") from None
        except yaml.YAMLError:
            raise ConfigError(f"{marker} is not valid YAML") from None
        if not isinstance(meta, dict) or meta.get("galera_pilot") != 1 or not isinstance(meta.get("nodes"), list):
            raise ConfigError(f"{marker} is not a galera-pilot cluster description")
        self.meta = meta
        self.credentials_file = self.dir / "credentials.yaml"
        self._spawned: dict[str, subprocess.Popen[bytes]] = {}  # agents this process started, by node

    # ---- layout --------------------------------------------------------------------------------------
    @classmethod
    def layout(cls, directory: Path, nodes: int, base_address: str, sst_method: SstMethod,
               cluster_name: str | None = None, use_seed: bool = True, dcs: str | None = None) -> EmbeddedCluster:
        """Create DIR, or extend an existing cluster folder to `nodes` nodes; existing nodes are kept.

        `dcs` (default: a SQLite file in DIR) and `cluster_name` (default `galera`) are fixed when DIR is
        created: an existing folder keeps its own, and asking for different ones is an error rather than a
        silent switch to another store (its agents would no longer see each other).
        """
        directory = directory.resolve()
        marker = directory / MARKER
        if directory.exists() and not directory.is_dir():
            raise PilotError(f"{directory} exists and is not a folder")
        if directory.is_dir() and not marker.exists() and any(directory.iterdir()):
            raise PilotError(f"{directory} is not empty and is not a galera-pilot cluster folder (no {MARKER}); "
                             "choose a new or empty folder")
        try:
            first = ipaddress.ip_address(base_address)
        except ValueError:
            raise PilotError(f"--base-address {base_address!r} is not an IP address") from None
        if nodes < 1:
            raise PilotError("--nodes must be at least 1")
        if cluster_name is not None and not re.fullmatch(NAME_PATTERN, cluster_name):
            raise PilotError(f"--cluster-name {cluster_name!r} must start with a letter and hold only letters, "
                             "digits, '-' and '_' (at most 63)")
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
        if marker.exists():
            existing = cls(directory)
            names = list(existing.meta["nodes"])
            known_name = existing.meta.get("cluster_name", "galera")
            dcs_url = existing.meta["dcs"]
            if dcs is not None and dcs != dcs_url:
                raise PilotError(f"{directory} uses the DCS {redact_dcs_url(dcs_url)}, not {redact_dcs_url(dcs)}; "
                                 "drop --dcs (the folder remembers its DCS)")
            if cluster_name is not None and cluster_name != known_name:
                raise PilotError(f"{directory} holds the cluster {known_name!r}, not {cluster_name!r}")
            cluster_name = known_name
        else:
            names = []
            cluster_name = cluster_name or "galera"
            dcs_url = dcs or f"sqlite://{directory / 'dcs.sqlite'}"
            store = get_dcs(dcs_url, cluster_name)  # validates the URL before anything is written
            try:
                if not dcs_url.startswith("sqlite://") and store.list(""):
                    raise PilotError(f"the DCS {redact_dcs_url(dcs_url)} already holds a cluster named "
                                     f"{cluster_name!r}; choose another --cluster-name (a new folder must "
                                     "not join a cluster it has no credentials or data for)")
            finally:
                store.close()
            save_credentials(directory / "credentials.yaml", Credentials.generate())
        for index in range(len(names), nodes):
            name = f"node{index + 1}"
            address = str(first + index)
            base = directory / name
            base.mkdir(exist_ok=True)
            config = parse_config({
                "name": name, "cluster_name": cluster_name, "address": address, "dcs": dcs_url,
                "base_dir": str(base), "credentials_file": str(directory / "credentials.yaml"),
                "sst_method": sst_method, "use_seed": use_seed,
            }, f"node {name}")
            _write_config(base / "agent.yaml", dump_config(config), dcs_url)
            names.append(name)
        meta = {"galera_pilot": 1, "cluster_name": cluster_name, "dcs": dcs_url, "nodes": names}
        _write_config(marker, yaml.safe_dump(meta, sort_keys=False), dcs_url)
        return cls(directory)

    def nodes(self) -> list[Node]:
        result = []
        for name in self.meta["nodes"]:
            path = self.dir / name / "agent.yaml"
            result.append(Node(load_config(path), path))
        return result

    def node(self, name: str) -> Node:
        for node in self.nodes():
            if node.name == name:
                return node
        raise PilotError(f"no member named {name!r} in {self.dir} (members: {', '.join(self.meta['nodes'])})")

    def credentials(self) -> Credentials:
        return load_credentials(self.credentials_file)

    def dcs(self) -> DCS:
        return get_dcs(self.meta["dcs"], self.meta.get("cluster_name", "galera"))

    def snapshot(self) -> Cluster:
        """One read of the DCS, connection closed again (what the read-only commands need)."""
        dcs = self.dcs()
        try:
            return dcs.snapshot()
        finally:
            dcs.close()

    # ---- the managed HAProxy ---------------------------------------------------------------------------
    @property
    def proxy_config_path(self) -> Path:
        return self.dir / PROXY_CONFIG

    @property
    def proxy_dir(self) -> Path:
        return self.dir / PROXY_DIR

    def proxy_config(self) -> ProxyConfig | None:
        """The proxy's configuration, or None when this cluster has no managed proxy."""
        if not self.proxy_config_path.exists():
            return None
        return load_proxy_config(self.proxy_config_path)

    def configure_proxy(self, writer_bind: str | None, reader_bind: str | None) -> ProxyConfig:
        """Write DIR/proxy.yaml: given binds win, else those already configured, else the defaults."""
        current = self.proxy_config()
        data = {
            **(current.model_dump(mode="json") if current else {}),  # keeps fields set by hand (nbthread, ...)
            "cluster_name": self.meta.get("cluster_name", "galera"),
            "dcs": self.meta["dcs"],
            "writer_bind": writer_bind or (current.writer_bind if current else DEFAULT_WRITER_BIND),
            "reader_bind": reader_bind or (current.reader_bind if current else DEFAULT_READER_BIND),
            "run_dir": str(self.proxy_dir),
        }
        config = parse_proxy_config(data, str(self.proxy_config_path))
        if current != config:
            # 0600: the dcs URL may carry an etcd password.
            write_private(self.proxy_config_path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        return config

    @property
    def proxy_pid_file(self) -> Path:
        return self.proxy_dir / "manager.pid"

    def proxy_pid(self) -> int | None:
        """The running proxy manager of this cluster (its command line names DIR/proxy.yaml)."""
        return running_pid(self.proxy_pid_file, str(self.proxy_config_path))

    def check_proxy_binds(self, config: ProxyConfig) -> None:
        """Fail now, with the owner named, if something else listens on an endpoint's address (an
        HAProxy of this cluster left running by a dead manager is adopted, not refused)."""
        if HaproxyProcess(self.proxy_dir / "haproxy.cfg", self.proxy_dir).is_running():
            return
        taken = HaproxyProcess._taken([parse_bind(config.writer_bind), parse_bind(config.reader_bind)])
        if taken:
            raise PilotError(f"cannot start the proxy: {'; '.join(taken)} (choose --writer-bind/--reader-bind, "
                             "or --no-proxy)")

    def spawn_proxy(self) -> subprocess.Popen[bytes]:
        """Start `galera-pilot proxy -c DIR/proxy.yaml` in its own session, like an agent."""
        self.proxy_dir.mkdir(parents=True, exist_ok=True)
        with open(self.proxy_dir / "proxy.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "galera_pilot", "proxy", "-c", str(self.proxy_config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
        self.proxy_pid_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_routed(self, timeout: float = 60.0) -> str:
        """Wait until a query through the writer endpoint reaches the DCS's writer, and one through the
        reader endpoint reaches some node (HAProxy offers a server only after its first check passed);
        return the writer's name."""
        config = self.proxy_config()
        if config is None:
            raise PilotError("this cluster has no managed proxy")
        host, port = parse_bind(config.writer_bind)
        reader_host, reader_port = parse_bind(config.reader_bind)
        credentials = self.credentials()
        deadline = time.monotonic() + timeout
        last = "no writer elected yet"
        while time.monotonic() < deadline:
            if self.proxy_pid() is None:
                raise PilotError(f"the proxy exited; last lines of {self.proxy_dir / 'proxy.log'}:\n"
                                 f"{tail(self.proxy_dir / 'proxy.log', 8)}")
            writer = self.snapshot().writer
            if writer is not None:
                try:
                    reached = _node_behind(host, port, credentials)
                except Exception as error:
                    last = f"the writer endpoint {config.writer_bind} does not answer yet: {error}"
                    reached = None
                if reached is not None and reached != writer:
                    last = f"the writer endpoint reached {reached}, the writer is {writer}"
                elif reached == writer:
                    try:
                        _node_behind(reader_host, reader_port, credentials)
                        return writer
                    except Exception as error:
                        last = f"the reader endpoint {config.reader_bind} does not answer yet: {error}"
            time.sleep(0.1)
        raise PilotError(f"clients cannot reach the writer through the proxy after {timeout:.0f} s: {last}")

    def stop_proxy(self, timeout: float = 30.0) -> bool:
        """SIGTERM the proxy manager (it stops HAProxy) and wait for it to exit."""
        pid = self.proxy_pid()
        if pid is None:
            return False
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proxy_pid() is not None:
            if time.monotonic() > deadline:
                raise PilotError(f"the proxy manager (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.05)
        self.proxy_pid_file.unlink(missing_ok=True)
        return True

    # ---- checks before starting --------------------------------------------------------------------------
    @staticmethod
    def check_binaries(config: NodeConfig) -> None:
        required = {
            "binaries.mariadbd": config.binaries.mariadbd,
            "binaries.install_db": config.binaries.install_db,
            "binaries.galera_provider": config.binaries.galera_provider,
        }
        for field, path in required.items():
            if not Path(path).exists():
                raise PilotError(f"{config.name}: {path} ({field}) not found; install Debian's mariadb-server and "
                                 f"galera-4 (apt-get install mariadb-server galera-4) or set {field}")
        for tool in SST_TOOLS[config.sst_method]:
            if shutil.which(tool) is None:
                raise PilotError(f"{config.name}: sst_method {config.sst_method} needs {tool!r}, which is not "
                                 "installed (apt-get install mariadb-backup socat rsync mariadb-client)")

    @staticmethod
    def check_ports(config: NodeConfig) -> None:
        ports = config.ports
        for label, port in (("client", ports.client), ("galera", ports.galera), ("ist", ports.ist),
                            ("sst", ports.sst), ("api", ports.api)):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((config.address, port))
                except OSError as error:
                    raise PilotError(f"{config.name}: {config.address}:{port} ({label} port) cannot be used: "
                                     f"{error.strerror}{_owner(config.address, port)}") from None

    # ---- start / wait / stop -------------------------------------------------------------------------------
    def start_agents(self) -> list[str]:
        started = []
        for node in self.nodes():
            if node.agent_pid() is not None:
                continue
            self.check_binaries(node.config)
            if not MariadbProcess(node.config).is_running():
                self.check_ports(node.config)
        for node in self.nodes():
            if node.agent_pid() is None:
                self.spawn_agent(node)
                started.append(node.name)
        return started

    def spawn_agent(self, node: Node) -> subprocess.Popen[bytes]:
        """Start one node's agent in its own session, logging to log/agent.log, and record its pid."""
        node.config.log_dir.mkdir(parents=True, exist_ok=True)
        node.config.run_dir.mkdir(parents=True, exist_ok=True)
        with open(node.config.agent_log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "galera_pilot", "agent", str(node.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
        node.agent_pid_file.write_text(f"{proc.pid}\n")
        self._spawned[node.name] = proc
        return proc

    def _agent_gone(self, node: Node) -> str | None:
        """Why the node's agent is gone (None while it runs). For an agent this process started, its exit
        status is the answer (waitpid cannot be wrong about its own child, and says how it ended);
        for one started earlier, the pid file and the process table."""
        proc = self._spawned.get(node.name)
        if proc is None:
            return None if node.agent_pid() is not None else "its agent is not running"
        code = proc.poll()
        if code is None:
            return None
        if code < 0:
            return f"its agent was killed by {signal.Signals(-code).name}"
        return f"its agent exited with status {code}"

    def wait_synced(self, timeout: float = 600.0, poll: float = 0.1) -> Cluster:
        """Until every node reports Synced in a full-size component, in a report made after this call began:
        an agent killed with its server leaves a 'Synced' record behind until the record's TTL runs out."""
        nodes = self.nodes()
        dcs = self.dcs()
        deadline = time.monotonic() + timeout
        person_needed_since: float | None = None
        try:
            # "Made after this call began" by the records' DCS versions, not their times: an agent's clock
            # may be off (issue 19), and every report is a new version.
            before = dcs.snapshot().member_versions
            while True:
                cluster = dcs.snapshot()
                pending = [n for n in nodes
                           if not _synced(cluster.members.get(n.name), len(nodes))
                           or cluster.member_versions.get(n.name) == before.get(n.name)]
                if not pending:
                    return cluster
                for node in pending:
                    gone = self._agent_gone(node)
                    if gone:
                        raise PilotError(_failure(node, gone))
                # Every agent says only a person can go on (the data is gone, or what is left is behind the
                # high-water mark): waiting out the timeout would only hide it.
                stuck = needs_a_person([cluster.members.get(n.name) if cluster.member_versions.get(n.name)
                                        != before.get(n.name) else None for n in nodes])
                if stuck is None:
                    person_needed_since = None
                else:
                    person_needed_since = person_needed_since or time.monotonic()
                    if time.monotonic() - person_needed_since >= PERSON_NEEDED_GRACE:
                        raise PilotError(f"no node can start: {stuck}")
                if time.monotonic() > deadline:
                    raise PilotError("\n\n".join(
                        _failure(n, f"not Synced after {timeout:.0f} s ({_doing(cluster.members.get(n.name))})")
                        for n in pending))
                time.sleep(poll)
        finally:
            dcs.close()

    def stop(self, timeout: float = 300.0) -> list[str]:
        """Stop every agent (each stops its mariadbd gracefully), one node at a time, node1 last.

        One at a time keeps a Primary Component until the end (two of three leaving at the same instant
        left the third non-Primary), so node1 shuts down as the last Primary member with the highest
        seqno and safe_to_bootstrap: 1, an obvious bootstrap source for the next `up`.
        """
        stopped: list[str] = []
        # Clients first: the proxy stops routing before the nodes go away one by one.
        if self.stop_proxy():
            stopped.append("proxy")
        for node in reversed(self.nodes()):
            if self._stop_node(node, timeout):
                stopped.append(node.name)
        return stopped

    def _stop_node(self, node: Node, timeout: float) -> str | None:
        pid = node.agent_pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).send_signal(signal.SIGTERM)
            # Poll instead of Process.wait(): an agent whose parent never reaps it stays a zombie, which
            # wait() on a non-child would count as alive until the timeout.
            deadline = time.monotonic() + timeout
            while node.agent_pid() is not None:
                if time.monotonic() > deadline:
                    raise PilotError(f"{node.name}: agent (pid {pid}) did not stop within {timeout:.0f} s; "
                                     f"see {node.config.agent_log}")
                time.sleep(0.05)
            node.agent_pid_file.unlink(missing_ok=True)
            return node.name
        process = MariadbProcess(node.config)
        if process.is_running():  # an orphan mariadbd whose agent died
            if not process.stop(timeout):
                raise PilotError(f"{node.name}: mariadbd did not stop within {timeout:.0f} s")
            return node.name
        return None


def _synced(member: Member | None, size: int) -> bool:
    return member is not None and member.is_synced and member.cluster_size >= size


def _doing(member: Member | None) -> str:
    if member is None:
        return "no report from its agent"
    return f"state {member.state}, {member.activity}"


def _failure(node: Node, what: str) -> str:
    parts = [f"{node.name} ({node.config.address}): {what}"]
    agent_tail = tail(node.config.agent_log, 8)
    if agent_tail:
        parts.append(f"last lines of {node.config.agent_log}:\n{agent_tail}")
    error_tail = tail(node.config.error_log, 12)
    if error_tail:
        parts.append(f"last lines of {node.config.error_log}:\n{error_tail}")
    return "\n".join(parts)


def _owner(address: str, port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.laddr and conn.laddr.port == port and conn.laddr.ip in (address, "0.0.0.0", "::")
                    and conn.status == psutil.CONN_LISTEN and conn.pid):
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def _write_config(path: Path, text: str, dcs_url: str) -> None:
    """Atomically; 0600 when the DCS URL carries a password (etcd user:password@), else 0644."""
    write_private(path, text, 0o600 if dcs_url_carries_password(dcs_url) else 0o644)


def find_cluster_config(directory: Path) -> EmbeddedCluster:
    if not directory.exists():
        raise PilotError(f"{directory} does not exist")
    return EmbeddedCluster(directory)
