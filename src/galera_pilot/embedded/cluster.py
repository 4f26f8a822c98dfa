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
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from galera_pilot.agent.arbitrator import check_arbitrator
from galera_pilot.agent.high_water import needs_a_person
from galera_pilot.arbitrator.garbd import GarbdProcess
from galera_pilot.cluster import Cluster, Member
from galera_pilot.config import NodeConfig, SstMethod, load_config
from galera_pilot.credentials import Credentials, load_credentials
from galera_pilot.dcs import DCS, get_dcs
from galera_pilot.embedded.dashboard import EmbeddedDashboard
from galera_pilot.embedded.layout import lay_out, read_marker, retire_node
from galera_pilot.embedded.processes import check_binaries, check_ports, running_pid
from galera_pilot.embedded.proxy import EmbeddedProxy
from galera_pilot.embedded.tls import OPERATOR, authority_of, ensure_folder_tls, rotate_folder
from galera_pilot.errors import PilotError
from galera_pilot.mariadb.process import MariadbProcess, tail
from galera_pilot.proxy.haproxy_config import parse_bind
from galera_pilot.tls.authority import Authority
from galera_pilot.tls.bundle import bundle_files

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


class EmbeddedCluster:
    def __init__(self, directory: Path) -> None:
        self.dir = directory.resolve()
        self.meta = read_marker(self.dir)
        self.cluster_name: str = self.meta.get("cluster_name", "galera")
        self.dcs_url: str = self.meta["dcs"]
        self.credentials_file = self.dir / "credentials.yaml"
        self.proxy = EmbeddedProxy(self.dir, self.cluster_name, self.dcs_url, self.credentials, self.snapshot,
                                   tls=self.tls)
        self.dashboard = EmbeddedDashboard(self.dir)
        self._spawned: dict[str, subprocess.Popen[bytes]] = {}  # agents this process started, by node

    @classmethod
    def layout(cls, directory: Path, nodes: int | None, base_address: str | None, sst_method: SstMethod,
               cluster_name: str | None = None, use_seed: bool = True, dcs: str | None = None,
               tls: bool | None = None, pki_dir: Path | None = None, arbitrator: bool = False) -> EmbeddedCluster:
        """Create DIR, or extend an existing cluster folder to `nodes` nodes (layout.lay_out)."""
        return cls(lay_out(directory, nodes, base_address, sst_method, cluster_name, use_seed, dcs, tls, pki_dir,
                           arbitrator))

    @property
    def authority(self) -> Authority:
        return authority_of(self.dir, self.meta)

    @property
    def tls(self) -> bool:
        return bool(self.meta.get("tls", False))

    def endpoint_hosts(self) -> list[str]:
        """The client endpoints' addresses as configured (node certificates name them)."""
        proxy = self.proxy.config()
        return [parse_bind(bind)[0] or "127.0.0.1" for bind in (proxy.writer_bind, proxy.reader_bind)] if proxy else []

    def ensure_tls(self, endpoint_hosts: list[str]) -> list[str]:
        """The PKI and every stopped member's bundle, issued where missing or unfit; what was issued."""
        if not self.tls:
            return []
        stopped = [node.config for node in self.nodes() + self.arbitrators() if node.agent_pid() is None]
        proxy = self.proxy.tls_bundle if self.proxy.pid() is None else None
        return ensure_folder_tls(self.authority, self.cluster_name, stopped, proxy, endpoint_hosts)

    def rotate(self, names: list[str]) -> list[str]:
        """New certificates for these members (every member and the proxy when empty), running or not: a
        running agent or proxy picks its new bundle up within a cycle (agent/tls_keeper.py)."""
        if not self.tls:
            raise PilotError(f"{self.dir} runs without TLS: there is nothing to rotate")
        wanted = names or [*self.meta["nodes"], *self.arbitrator_names, "proxy"]
        configs = [self.node(name).config for name in wanted if name != "proxy"]
        proxy = self.proxy.tls_bundle if "proxy" in wanted and self.proxy.config() is not None else None
        return rotate_folder(self.authority, configs, proxy, self.endpoint_hosts())

    def tls_bundles(self) -> list[tuple[str, Path]]:
        """Every bundle of the folder, by host: each node's, the proxy's, and those in PKI/issued (the
        operator's own, and any `pki issue` wrote)."""
        bundles = [(node.name, node.config.tls_bundle) for node in self.nodes() + self.arbitrators()]
        if self.proxy.config() is not None:
            bundles.append(("proxy", self.proxy.tls_bundle))
        issued = self.authority.dir / "issued"
        if issued.is_dir():
            bundles += [(path.name, path) for path in sorted(issued.iterdir()) if (path / "node.pem").exists()]
        return bundles

    def nodes(self) -> list[Node]:
        """The data nodes (mariadbd), in the folder's order."""
        return [self._load(name) for name in self.meta["nodes"]]

    @property
    def arbitrator_names(self) -> list[str]:
        return list(self.meta.get("arbitrators") or [])

    def arbitrators(self) -> list[Node]:
        """The garbd arbitrators (`up --arbitrator`): an agent each, no data."""
        return [self._load(name) for name in self.arbitrator_names]

    def _load(self, name: str) -> Node:
        path = self.dir / name / "agent.yaml"
        return Node(load_config(path), path)

    def retire_node(self, name: str) -> None:
        """`galera-pilot remove`: out of the node list, so `up` and `down` leave it alone (layout.retire_node)."""
        retire_node(self.dir, name)
        self.meta = read_marker(self.dir)

    def node(self, name: str) -> Node:
        for node in self.nodes() + self.arbitrators():
            if node.name == name:
                return node
        known = ", ".join([*self.meta["nodes"], *self.arbitrator_names])
        raise PilotError(f"no member named {name!r} in {self.dir} (members: {known})")

    def credentials(self) -> Credentials:
        return load_credentials(self.credentials_file)

    @property
    def dcs_tls(self) -> tuple[Path, Path, Path] | None:
        """The CLI's own certificate for an etcds:// DCS (PKI/issued/operator, made by ensure_tls)."""
        return bundle_files(self.authority.issued_dir(OPERATOR)) if self.tls else None

    def dcs(self) -> DCS:
        return get_dcs(self.dcs_url, self.cluster_name, self.dcs_tls)

    def snapshot(self) -> Cluster:
        """One read of the DCS, connection closed again (what the read-only commands need)."""
        dcs = self.dcs()
        try:
            return dcs.snapshot()
        finally:
            dcs.close()

    # ---- start / wait / stop -------------------------------------------------------------------------------
    def start_agents(self) -> list[str]:
        started = []
        for node in self.nodes():
            if node.agent_pid() is not None:
                continue
            check_binaries(node.config)
            if not MariadbProcess(node.config).is_running():
                check_ports(node.config)
        for node in self.arbitrators():
            if node.agent_pid() is None:
                check_arbitrator(node.config)
                if not GarbdProcess(node.config).is_running():
                    check_ports(node.config, ("galera",))
        for node in self.nodes() + self.arbitrators():
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
        """Until every node reports Synced in a full-size component, in a report made after this call began
        (the snapshot returned leaves the history out):
        an agent killed with its server leaves a 'Synced' record behind until the record's TTL runs out."""
        nodes = self.nodes()
        arbitrators = self.arbitrators()
        size = len(nodes) + len(arbitrators)  # garbd is a member of the component too
        dcs = self.dcs()
        deadline = time.monotonic() + timeout
        person_needed_since: float | None = None
        try:
            # "Made after this call began" by the records' DCS versions, not their times: an agent's clock
            # may be off (issue 19), and every report is a new version.
            before = dcs.snapshot(with_history=False).member_versions
            while True:
                cluster = dcs.snapshot(with_history=False)
                pending = [n for n in nodes
                           if not _synced(cluster.members.get(n.name), size)
                           or cluster.member_versions.get(n.name) == before.get(n.name)]
                pending += [a for a in arbitrators if not _voting(cluster, a.name)]
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
                    raise PilotError("\n\n".join(_failure(n, _not_ready(cluster, n, timeout)) for n in pending))
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
        if self.dashboard.stop():
            stopped.append("dashboard")
        # Clients first: the proxy stops routing before the nodes go away one by one.
        if self.proxy.stop():
            stopped.append("proxy")
        # The arbitrators next: each leaves gracefully, so the data nodes keep a Primary Component.
        for node in [*self.arbitrators(), *reversed(self.nodes())]:
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
        if node.config.role == "arbitrator":
            garbd = GarbdProcess(node.config)
            running = garbd.is_running()  # an orphan whose agent died
            garbd.stop()
            return node.name if pid is not None or running else None
        process = MariadbProcess(node.config)
        running = process.is_running()  # an orphan whose agent died, or one a paused agent left running
        if running and not process.stop(timeout):
            raise PilotError(f"{node.name}: mariadbd did not stop within {timeout:.0f} s")
        return node.name if pid is not None or running else None


def _synced(member: Member | None, size: int) -> bool:
    return member is not None and member.is_synced and member.cluster_size >= size


def _voting(cluster: Cluster, name: str) -> bool:
    report = cluster.arbitrators.get(name)
    return report is not None and report.running and report.primary  # SYNCED, or PRIMARY after pc.recovery


def _not_ready(cluster: Cluster, node: Node, timeout: float) -> str:
    if node.config.role == "arbitrator":
        report = cluster.arbitrators.get(node.name)
        doing = "no report from its agent" if report is None else f"state {report.state}, {report.activity}"
        return f"garbd not in the Primary Component after {timeout:.0f} s ({doing})"
    return f"not Synced after {timeout:.0f} s ({_doing(cluster.members.get(node.name))})"


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


def find_cluster_config(directory: Path) -> EmbeddedCluster:
    if not directory.exists():
        raise PilotError(f"{directory} does not exist")
    return EmbeddedCluster(directory)
