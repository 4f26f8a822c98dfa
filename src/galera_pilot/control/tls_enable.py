"""`galera-pilot tls enable --dir DIR`: a running plaintext folder moves to TLS, clients served throughout.

Galera cannot take TLS while it runs, and a node that speaks only TLS cannot reach one that speaks
only plaintext, so the move goes through `socket.dynamic` (TLS, plaintext peers still accepted):

0. the PKI and every bundle are issued; the proxy checks each agent over HTTPS once it answers so
   (proxy/membership.py), and takes its TLS configuration with a SIGHUP, HAProxy serving throughout;
1. each node in turn (the writer last, after a switchover): its agent stops it, its file says
   `tls.migrating: galera`, the agent starts again (REST API over HTTPS), and mariadbd rejoins by IST
   with Galera over TLS, dynamic; state transfers and clients stay plaintext, as on the others;
2. at once on every node: `tls.migrating: sst`, and each running server's my.cnf gets the TLS of
   state transfers and clients (the SST scripts read the file at every transfer, and donor and joiner
   must agree: with some nodes plaintext and some not, no IST would work);
3. each node in turn again: the file's `migrating` goes, the node restarts strict: Galera TLS only,
   `require_secure_transport`, the clients' certificate. Every node is Synced between two steps.

What each node's file says is the record of how far the move has come: run again after an
interruption, it goes on from there.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from galera_pilot.config import load_config
from galera_pilot.control.settings import reload_members
from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster, Node
from galera_pilot.embedded.layout import MARKER
from galera_pilot.embedded.tls import ensure_folder_tls
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb.mycnf import render_mycnf, with_tls_sections
from galera_pilot.proxy.check_tls import LOADED, loaded
from galera_pilot.routing.handover import run_switchover
from galera_pilot.tls import http
from galera_pilot.tls.contexts import client_context


def _stage_value(node: Node) -> str | None:
    """The node's own `tls.migrating` (None once strict), to restart it where it is."""
    return node.config.tls.migrating


def stage_of(node: Node) -> str:
    """How far a node has come: plaintext, galera, sst or tls."""
    tls = node.config.tls
    if not tls.enabled:
        return "plaintext"
    return tls.migrating or "tls"


class TlsEnabler:
    def __init__(self, cluster: EmbeddedCluster, say: Callable[[str], None], timeout: float = 600.0) -> None:
        self.cluster = cluster
        self.say = say
        self.timeout = timeout

    def run(self) -> str:
        cluster = self.cluster
        stages = {node.name: stage_of(node) for node in cluster.nodes()}
        if set(stages.values()) == {"tls"} and cluster.tls:
            return f"{cluster.dir} already runs TLS everywhere"
        self._check_ready()
        started = time.monotonic()
        self._prepare()
        if any(stage == "plaintext" for stage in stages.values()):
            self.say("step 1 of 3: each node restarts with Galera over TLS, plaintext peers still accepted")
            self._roll(lambda node: stage_of(node) == "plaintext", "galera")
        if any(stage_of(node) != "tls" for node in self.cluster.nodes()):
            self._state_transfers_at_once()  # again after an interruption: it only writes what is due
        if any(stage_of(node) != "tls" for node in self.cluster.nodes()):
            self.say("step 3 of 3: each node restarts strict: TLS only, for peers and clients")
            self._roll(lambda node: stage_of(node) != "tls", None)
        return (f"{cluster.dir} runs TLS everywhere ({time.monotonic() - started:.0f} s): replication, state "
                f"transfers, clients (require_secure_transport) and the REST API; verify the nodes with "
                f"{cluster.authority.ca_file}")

    # ---- steps --------------------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        snapshot = self.cluster.snapshot()
        if snapshot.pause is not None:
            raise PilotError("the cluster is paused: resume it first (the move restarts every node)")
        if snapshot.roll is not None:
            raise PilotError(f"rolling restart {snapshot.roll.id} is recorded: finish or abort it first")
        if self.cluster.arbitrator_names:
            # garbd reads its transport options only at its start and is not stepped through the move.
            raise PilotError(f"the folder runs an arbitrator ({', '.join(self.cluster.arbitrator_names)}), which "
                             "this move does not carry over yet: remove it first (galera-pilot remove NAME --yes "
                             "--force), enable TLS, then add it again with up --arbitrator")
        names = [node.name for node in self.cluster.nodes()]
        synced = [n for n in names if n in snapshot.members and snapshot.members[n].is_synced]
        if len(synced) < len(names) // 2 + 1:
            # A node that is not Synced (an interrupted run's) is restarted first; a majority must serve.
            raise PilotError(f"a majority of the nodes must be up and Synced first; only {', '.join(synced) or 'none'}"
                             f" of {', '.join(names)} are")
        if len(names) < 2:
            raise PilotError("a single node cannot move without downtime: stop it (galera-pilot down), set "
                             "tls.enabled in its file and start it again")

    def _prepare(self) -> None:
        """The PKI and bundles, the folder's marker, this process's clients and the proxy."""
        cluster = self.cluster
        proxy_config = cluster.proxy.config()
        issued = ensure_folder_tls(cluster.authority, cluster.cluster_name, [n.config for n in cluster.nodes()],
                                   cluster.proxy.tls_bundle if proxy_config else None, cluster.endpoint_hosts())
        if issued:
            self.say(f"certificates issued for {', '.join(issued)} (CA {cluster.authority.ca_file})")
        if not cluster.tls:
            marker = cluster.dir / MARKER
            meta = yaml.safe_load(marker.read_text())
            meta["tls"] = True
            write_private(marker, yaml.safe_dump(meta, sort_keys=False), marker.stat().st_mode & 0o777)
            self.cluster = cluster = EmbeddedCluster(cluster.dir)
        http.use(http.ApiClient(client_context(cluster.authority.ca_file), cluster.authority.api_token()))
        if proxy_config is not None and not proxy_config.tls.enabled:
            proxy_config = cluster.proxy.configure(proxy_config.writer_bind, proxy_config.reader_bind,
                                                   proxy_config.mode)
            pid = cluster.proxy.pid()
            if pid is not None:
                self._reload_proxy(pid, proxy_config.run_dir)

    def _reload_proxy(self, pid: int, run_dir: Path) -> None:
        """SIGHUP: the manager checks its new file and executes anew, HAProxy serving; it says it serves
        the new certificates in run/tls-loaded.json (proxy/check_tls.record_loaded)."""
        (run_dir / LOADED).unlink(missing_ok=True)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while loaded(run_dir) is None:
            if time.monotonic() > deadline:
                raise PilotError(f"the proxy did not take its TLS configuration within 60 s; see "
                                 f"{run_dir / 'proxy.log'}")
            time.sleep(0.1)
        self.say("the proxy now checks each agent over HTTPS once it answers so (HAProxy kept serving)")

    def _state_transfers_at_once(self) -> None:
        self.say("step 2 of 3: state transfers and client TLS written on every node at once")
        credentials = load_credentials(self.cluster.credentials_file)
        for node in self.cluster.nodes():
            if stage_of(node) == "tls":
                continue  # restarted strict already (an interrupted run): its file and my.cnf are right
            self._set_stage(node, "sst")
            fresh = load_config(node.config_path)
            running = fresh.mycnf.read_text()
            text = with_tls_sections(running, render_mycnf(fresh, credentials, ()))
            write_private(fresh.mycnf, text, 0o640)
            user = fresh.effective_mariadbd_user
            if user and os.geteuid() == 0:  # mariadbd and its SST scripts read it as that user (starter.py)
                shutil.chown(fresh.mycnf, "root", user)
        refused = [f"{name}: {said}" for name, ok, said in reload_members(self.cluster.snapshot(), ()) if not ok]
        if refused:
            raise PilotError(f"agents did not take the step: {'; '.join(refused)}; run `galera-pilot tls enable` "
                             "again")

    def _roll(self, wanted: Callable[[Node], bool], stage: str | None) -> None:
        """Restart the nodes `wanted` says, into `stage`; a node not Synced (an interrupted run left it
        stopped or crash-looping) first, whatever its stage."""
        snapshot = self.cluster.snapshot()
        for name in self._order():
            node = self.cluster.node(name)
            member = snapshot.members.get(name)
            if wanted(node) or member is None or not member.is_synced:
                self._restart(node, stage if wanted(node) else _stage_value(node))

    def _order(self) -> list[str]:
        """Every node, the writer last (it hands over to one that has moved already)."""
        writer = self.cluster.snapshot().writer
        names = [node.name for node in self.cluster.nodes()]
        return [n for n in names if n != writer] + [n for n in names if n == writer]

    def _restart(self, node: Node, stage: str | None) -> None:
        store = self.cluster.dcs()
        try:
            snapshot = store.snapshot(with_history=False)
            if snapshot.writer == node.name:
                self.say(f"{node.name} holds the writer role: {run_switchover(store, None, 60.0)}")
            before = store.snapshot(with_history=False).member_versions.get(node.name)
        finally:
            store.close()
        started = time.monotonic()
        self.cluster._stop_node(node, self.timeout)
        self._set_stage(node, stage)
        moved = self.cluster.node(node.name)
        self.cluster.spawn_agent(moved)
        self._wait_back(moved, before)
        self.say(f"{node.name}: {'strict TLS' if stage is None else 'Galera over TLS (dynamic)'}, Synced again "
                 f"in {time.monotonic() - started:.1f} s")

    def _wait_back(self, node: Node, before: int | None) -> None:
        size = len(self.cluster.nodes())
        deadline = time.monotonic() + self.timeout
        while True:
            snapshot = self.cluster.snapshot()
            member = snapshot.members.get(node.name)
            if (member is not None and member.is_synced and member.cluster_size >= size
                    and snapshot.member_versions.get(node.name) != before and member.api_url.startswith("https://")):
                return
            gone = self.cluster._agent_gone(node)
            if gone or time.monotonic() > deadline:
                raise PilotError(f"{node.name} did not come back Synced ({gone or 'timed out'}); see "
                                 f"{node.config.agent_log} and {node.config.error_log}; the cluster keeps serving "
                                 "on the others, and `galera-pilot tls enable` goes on from here")
            time.sleep(0.2)

    def _set_stage(self, node: Node, stage: str | None) -> None:
        data: dict[str, Any] = yaml.safe_load(node.config_path.read_text())
        tls = dict(data.get("tls") or {})
        tls["enabled"] = True
        tls.setdefault("authority", str(self.cluster.authority.dir))
        if stage is None:
            tls.pop("migrating", None)
        else:
            tls["migrating"] = stage
        data["tls"] = tls
        write_private(node.config_path, yaml.safe_dump(data, sort_keys=False), node.config_path.stat().st_mode & 0o777)
