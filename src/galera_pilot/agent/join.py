"""Joining a live Primary Component: one node at a time enters the group (the join lease), after
checking that a peer's Galera port answers, with the datadir made ready for the state transfer.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import replace

from galera_pilot.agent.datadir import DatadirKeeper
from galera_pilot.agent.decisions import Decision, LocalState
from galera_pilot.agent.memory import History
from galera_pilot.agent.quarantine import copy_out_refusal
from galera_pilot.agent.starter import Starter
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.process import MariadbProcess

# The join lease covers the gcomm join (about 0.5 s here), not the state transfer: released when the node
# reports Primary, or expired after this many seconds, whichever comes first.
JOIN_LEASE_TTL = 2.0
# A joiner first checks that some peer's Galera port answers, within this many seconds per peer.
PEER_PROBE_TIMEOUT = 1.0


class Joiner:
    """Carries out JOIN, and tells the cycle when the gcomm join is done (`entered_group`), so that the
    join lease can go to the next node while the state transfer still runs."""

    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials, process: MariadbProcess,
                 datadir: DatadirKeeper, starter: Starter, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.process = process
        self.datadir = datadir
        self.starter = starter
        self.history = history
        # (address, client port, cluster size) of a Primary peer when the join started: its view grows
        # once this node has entered the group.
        self.join_watch: tuple[str, int, int] | None = None

    def join(self, decision: Decision, local: LocalState) -> str:
        if decision.peers and not any(self._galera_port_answers(peer) for peer in decision.peers):
            # Starting mariadbd now would only make it wait ~30 s for gcomm and exit; a partition or a
            # stale DCS record is the likely reason, and the next cycle looks again.
            return (f"a Primary Component is reported at {', '.join(decision.peers)} but no Galera port there "
                    "answers from here (network partition?); not starting mariadbd until one does")
        refusal = copy_out_refusal(self.config.data_dir, self.config.base_dir) if decision.quarantine else None
        if refusal:
            return f"not joining: the datadir must be moved aside ({decision.quarantine}), but {refusal}"
        if not self.dcs.acquire_lease("join", self.config.name, JOIN_LEASE_TTL, decision.reason):
            holder = self.dcs.get("join")
            who = json.loads(holder.value).get("holder") if holder else "another node"
            return f"waiting for {who} to enter the group first (one join at a time is faster)"
        if decision.quarantine:
            self.datadir.quarantine(decision.quarantine)
            local = replace(local, has_data=False, position=None)
        if decision.copy_seed:
            self.datadir.copy_seed()
        elif not local.has_data and self.config.sst_method == "mysqldump":
            self._prepare_for_mysqldump_sst()
        self._forget_saved_view()
        self.history("join", decision.reason, {"peers": list(decision.peers)})
        primaries = sorted(self.dcs.snapshot().primary_members, key=lambda m: m.name)
        if primaries:
            self.join_watch = (primaries[0].address, primaries[0].client_port, primaries[0].cluster_size)
        self.starter.start(bootstrap=False, peers=decision.peers, position=local.position)
        return decision.reason

    def _galera_port_answers(self, peer: str) -> bool:
        """From this node's own address, as Galera would connect: on a host with several addresses (all of
        127.0.0.0/8 here) the kernel would otherwise pick a source that a partition does not cut."""
        host, _, port = peer.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=PEER_PROBE_TIMEOUT,
                                          source_address=(self.config.address, 0)):
                return True
        except (OSError, ValueError):
            return False

    def _forget_saved_view(self) -> None:
        """A node that joins a live Primary must not restore its old Primary Component from gvwstate.dat
        (pc.recovery): the restored view names its own dead instance, and the survivors then spent ~7 s
        (measured) reaching consensus on the new view, stalling every write meanwhile. The saved view
        only helps when all members of it restart together, which is the full-outage path, not this one."""
        with contextlib.suppress(FileNotFoundError):
            (self.config.data_dir / "gvwstate.dat").unlink()

    def _prepare_for_mysqldump_sst(self) -> None:
        """mysqldump SST pushes SQL into the joiner's running server, which therefore needs a system
        schema and the SST account before it joins; rsync and mariabackup replace the datadir whole."""
        self.starter.prepare_dirs()
        self.starter.write_mycnf(())
        self.process.install_db()
        self.process.create_local_sst_account(self.credentials)

    def entered_group(self, address: str, port: int, size_before: int) -> bool:
        try:
            connection = sql.connect_tcp(address, port, self.credentials, timeout=0.5)
        except Exception:
            return False
        try:
            return int(sql.wsrep_status(connection).get("wsrep_cluster_size", 0)) > size_before
        except Exception:
            return False
        finally:
            connection.close()
