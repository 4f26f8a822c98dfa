"""Starting mariadbd: its folders, its my.cnf, the start position, and waiting until it is ready.

Every way into the cluster (initialize, form, bootstrap, pc.recovery, join) ends here. The start
position matters: given a position recovered from InnoDB, Galera resumes from it; without one a join
would take a full SST, a bootstrap a new cluster UUID.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History
from galera_pilot.agent.observation import PositionReader, query_status
from galera_pilot.cluster import Position
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import PilotError
from galera_pilot.events import notify
from galera_pilot.files import write_private
from galera_pilot.mariadb.exit_watch import ExitWatcher
from galera_pilot.mariadb.grastate import restore_cluster_uuid, rewrite_grastate, set_safe_to_bootstrap
from galera_pilot.mariadb.mycnf import notifications_on, render_mycnf
from galera_pilot.mariadb.process import MariadbProcess, chown_tree, tail
from galera_pilot.tls.node import NodeTls, install_server_files

log = logging.getLogger(CYCLE_LOGGER)

START_WAIT = 300.0


class Starter:
    """Starts mariadbd (and watches for its exit from then on); the other rooms say how and towards whom."""

    def __init__(self, config: NodeConfig, credentials: Credentials, process: MariadbProcess, memory: AgentMemory,
                 positions: PositionReader, exit_watch: ExitWatcher, history: History,
                 node_tls: NodeTls | None = None) -> None:
        self.config = config
        self.node_tls = node_tls
        self.credentials = credentials
        self.process = process
        self.memory = memory
        self.positions = positions
        self.exit_watch = exit_watch
        self.history = history

    def prepare_dirs(self) -> None:
        user = self.config.effective_mariadbd_user
        for path in (self.config.data_dir, self.config.run_dir, self.config.log_dir):
            path.mkdir(parents=True, exist_ok=True)
            if user and os.geteuid() == 0:
                shutil.chown(path, user, user)

    def write_mycnf(self, peers: tuple[str, ...], start_position: str | None = None) -> None:
        if self.node_tls is not None:
            install_server_files(self.config, self.node_tls)  # the files my.cnf names, mariadbd's copy
        if notifications_on(self.config):  # my.cnf's wsrep_notify_cmd
            notify.install(self.config.base_dir, self.config.run_dir, self.config.effective_mariadbd_user)
        text = render_mycnf(self.config, self.credentials, peers, start_position, self.memory.sst_donor)
        write_private(self.config.mycnf, text, 0o640)
        user = self.config.effective_mariadbd_user
        if user and os.geteuid() == 0:
            shutil.chown(self.config.mycnf, "root", user)

    def start(self, bootstrap: bool, peers: tuple[str, ...], position: Position | None = None) -> None:
        self.prepare_dirs()
        start = None
        if position is not None and position.source == "wsrep-recover" and position.unusable is None:
            start = f"{position.uuid}:{position.seqno}"
            # Else Galera ignores the start position: a join would take a full SST, a bootstrap a new UUID.
            if position.grastate_problem:
                kept = rewrite_grastate(self.config.data_dir, position.uuid, time.strftime("%Y%m%d-%H%M%S"))
                chown_tree(self.config.data_dir / "grastate.dat", self.config.effective_mariadbd_user)
                self.positions.forget()
                self.history("repair", f"{position.grastate_problem}: rewrote it from the position InnoDB holds "
                             f"({position.uuid}:{position.seqno})" + (f"; the old file is kept as {kept}" if kept
                                                                      else ""),
                             {"uuid": position.uuid, "seqno": position.seqno, "kept": str(kept) if kept else None})
            elif restore_cluster_uuid(self.config.data_dir, position.uuid):
                log.info("grastate.dat had lost the cluster UUID in the crash; restored %s from InnoDB",
                         position.uuid)
        if bootstrap and (self.config.data_dir / "grastate.dat").exists():
            set_safe_to_bootstrap(self.config.data_dir, True)
        self.write_mycnf(peers, start)
        self.memory.expect_running = True
        self.memory.exit_handled = False
        self.exit_watch.watch(self.process.start(bootstrap))

    def wait_ready(self, as_root: bool, timeout: float = START_WAIT) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.is_running():
                raise PilotError("mariadbd exited while starting; last lines of "
                                 f"{self.config.error_log}:\n{tail(self.config.error_log, 10)}")
            status = query_status(self.config, self.credentials, as_root=as_root)
            if status and status.get("wsrep_ready") == "ON":
                return status
            time.sleep(0.05)
        raise PilotError(f"mariadbd did not become ready within {timeout:.0f} s")
