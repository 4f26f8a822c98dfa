"""Replacing this node's datadir: the seed the initializer creates, the copy of it that a node on the
same host takes instead of a state transfer, and moving aside (never deleting) what a new one replaces.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid as uuid_module
from pathlib import Path

from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History
from galera_pilot.agent.observation import PositionReader
from galera_pilot.agent.quarantine import SEED_PARTIAL, is_mount_point, move_aside, place_seed_in_mount
from galera_pilot.agent.restored_datadir import restore_datadir, roll_forward
from galera_pilot.agent.starter import Starter
from galera_pilot.backup.lineage import LINEAGE_FILE
from galera_pilot.backup.restore_order import RestoreOrder
from galera_pilot.cluster import SeedRecord
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.grastate import datadir_position, set_safe_to_bootstrap
from galera_pilot.mariadb.process import MariadbProcess, chown_tree

log = logging.getLogger(CYCLE_LOGGER)

# Not worth copying into the seed: the gcache is preallocated (gcache.size) and rebuilt on start, and a
# saved Primary Component view belongs to the initializer alone; so does the lineage its backups record.
SEED_IGNORE = shutil.ignore_patterns("galera.cache", "gvwstate.dat", "*.pid", "*.sock", LINEAGE_FILE)


class DatadirKeeper:
    """Creates the seed, copies it into place, and quarantines a datadir that a new one replaces."""

    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials, host: str, process: MariadbProcess,
                 memory: AgentMemory, positions: PositionReader, starter: Starter, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.host = host
        self.process = process
        self.memory = memory
        self.positions = positions
        self.starter = starter
        self.history = history

    def create_seed(self, ttl: float, restore_from: str | None = None,
                    point: RestoreOrder | None = None) -> tuple[str, int]:
        """install-db (or, for `galera-pilot restore`, the datadir restored from the backup set
        `restore_from`), one run with --wsrep-new-cluster to create the accounts, clean shutdown, copy.

        The clean shutdown stores the wsrep position in InnoDB, so joiners that copy the seed join by IST
        (a hand-written grastate.dat on a never-replicated datadir does not work: see galera-notes).
        """
        t0 = time.monotonic()
        self.memory.activity = "initializing a new cluster: mariadb-install-db"
        if self.config.data_dir.exists():
            if any(self.config.data_dir.iterdir()):  # kept, never deleted
                self.quarantine(f"galera-pilot restore replaces it with backup {restore_from}" if restore_from
                                else "a new cluster is initialized here (what an interrupted initialization left)")
            else:
                self.config.data_dir.rmdir()
        self.starter.prepare_dirs()
        self.starter.write_mycnf(())
        if restore_from is not None:
            self.memory.activity = f"restoring backup {restore_from} for the new cluster"
            restored = restore_datadir(self.config, restore_from,
                                       lambda: self.dcs.keep_initialize_lease(self.config.name, ttl))
            chown_tree(self.config.data_dir, self.config.effective_mariadbd_user)
            self.history("restore", f"{restored}; starting it as a new cluster", {"backup": restore_from})
        else:
            self.process.install_db()
        t_install = time.monotonic()
        self.dcs.keep_initialize_lease(self.config.name, ttl)
        self.memory.activity = "initializing a new cluster: creating accounts"
        self.process.start(bootstrap=True)
        self.memory.expect_running = True
        status = self.starter.wait_ready(as_root=True)
        if restore_from is not None and point is not None and point.to_seqno is not None:
            self.memory.activity = f"rolling backup {restore_from} forward to {point.asked or point.to_seqno}"
            rolled = roll_forward(self.config, point, self.config.socket,
                                  lambda: self.dcs.keep_initialize_lease(self.config.name, ttl))
            self.history("restore", rolled, {"backup": restore_from, "to_seqno": point.to_seqno})
        connection = sql.connect_socket(self.config, None, timeout=10)
        try:
            sql.secure_and_create_users(connection, self.credentials)
        finally:
            connection.close()
        uuid = status["wsrep_cluster_state_uuid"]
        t_accounts = time.monotonic()
        self.memory.expect_running = False
        if not self.process.stop(120):
            raise PilotError("mariadbd did not shut down within 120 s after creating the accounts")
        t_stop = time.monotonic()
        self.dcs.keep_initialize_lease(self.config.name, ttl)
        position = datadir_position(self.config.data_dir)
        if position is None or not position.usable or position.uuid != uuid:
            raise PilotError(f"the seed datadir has no clean position after shutdown ({position})")
        self.memory.activity = "initializing a new cluster: copying the seed datadir"
        seed = self.config.seed_dir
        if seed.exists():
            shutil.rmtree(seed)
        shutil.copytree(self.config.data_dir, seed, symlinks=True, ignore=SEED_IGNORE)
        set_safe_to_bootstrap(seed, False)
        chown_tree(seed, self.config.effective_mariadbd_user)
        self.dcs.publish_seed(self._seed_record(seed, uuid, position.seqno))
        t_seed = time.monotonic()
        log.info("seed datadir ready in %.2f s (install-db %.2f, first start and accounts %.2f, shutdown %.2f, "
                 "copy %.2f)", t_seed - t0, t_install - t0, t_accounts - t_install, t_stop - t_accounts,
                 t_seed - t_stop)
        return uuid, position.seqno

    def _seed_record(self, seed: Path, uuid: str, seqno: int) -> SeedRecord:
        """The seed, and who forms the first component from it: this node and every live agent on this
        host with an empty datadir that may use the seed. Each gets its own gcomm UUID in one shared view.
        Nodes that come later join the formed component as usual."""
        members = [m for m in self.dcs.snapshot().members.values()
                   if m.name != self.config.name and m.host == self.host and not m.running and m.use_seed
                   and (m.position is None or m.position.empty)]
        if not members:
            return SeedRecord(self.host, str(seed), uuid, seqno)
        formation = {m.name: str(uuid_module.uuid1()) for m in members}
        formation[self.config.name] = str(uuid_module.uuid1())
        addresses = {m.name: m.gcomm_address for m in members}
        addresses[self.config.name] = f"{self.config.advertised_address}:{self.config.advertised_port('galera')}"
        view_id = f"3 {min(formation.values())} 1"
        return SeedRecord(self.host, str(seed), uuid, seqno, view_id, formation, addresses)

    def copy_seed(self) -> None:
        seed = self.dcs.snapshot().seed
        if seed is None or not Path(seed.path).is_dir():
            raise PilotError("the seed datadir announced in the DCS is not on this host")
        self.memory.activity = "copying the seed datadir"
        data, user = self.config.data_dir, self.config.effective_mariadbd_user
        if is_mount_point(data):  # its own volume: cannot be renamed, so fill it in place
            if any(entry.name not in (SEED_PARTIAL, "lost+found") for entry in data.iterdir()):
                self.quarantine("not empty when the seed copy was to fill it (an interrupted join?)")
            place_seed_in_mount(Path(seed.path), data, lambda partial: chown_tree(partial, user))
            return
        partial = data.with_name(data.name + ".seed-copy")
        if partial.exists():
            shutil.rmtree(partial)
        shutil.copytree(seed.path, partial, symlinks=True)
        chown_tree(partial, user)
        # Rename last: an interrupted copy never looks like a datadir.
        if data.exists():
            if any(data.iterdir()):
                # What a join that was cut short left behind (a joiner stopped mid-SST): judged to hold
                # no usable data, but kept aside rather than deleted, like any datadir we replace.
                self.quarantine("not empty when the seed copy was to take its place (an interrupted join?)")
            else:
                data.rmdir()
        partial.rename(data)

    def quarantine(self, reason: str) -> Path:
        """Move the datadir aside (never delete it): the node then takes a full SST into an empty one.
        A mount-point datadir has its contents copied out instead (quarantine.py)."""
        target = move_aside(self.config.data_dir, self.config.base_dir)
        self.positions.forget()
        self.history("quarantine", f"datadir moved to {target}: {reason}", {"path": str(target)})
        log.warning("moved the datadir aside to %s: %s", target, reason)
        return target
