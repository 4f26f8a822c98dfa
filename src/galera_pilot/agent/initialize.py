"""Initializing a new cluster: one agent wins the initialize key, creates the seed, and either
bootstraps from it alone or forms the first Primary Component with the other nodes on its host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from galera_pilot.agent.datadir import DatadirKeeper
from galera_pilot.agent.decisions import Decision, LocalState
from galera_pilot.agent.memory import AgentMemory, History
from galera_pilot.agent.starter import Starter
from galera_pilot.cluster import SavedView
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.backup import fail_restore
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb.gvwstate import render_gvwstate
from galera_pilot.mariadb.process import MariadbProcess


class Initializer:
    """Carries out INITIALIZE (create the cluster) and FORM (start into the seed's shared first view)."""

    def __init__(self, config: NodeConfig, dcs: DCS, process: MariadbProcess, memory: AgentMemory,
                 datadir: DatadirKeeper, starter: Starter, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.process = process
        self.memory = memory
        self.datadir = datadir
        self.starter = starter
        self.history = history

    def initialize(self, decision: Decision, local: LocalState) -> str:
        ttl = max(self.config.timing.bootstrap_lock_ttl, 60.0)
        snapshot = self.dcs.snapshot(with_history=False)
        init = snapshot.initialize
        if init is None:
            if not self.dcs.try_initialize(self.config.name, ttl):
                return "another agent won the race to initialize the cluster; will join it"
        elif init.by != self.config.name:
            return f"{init.by} is initializing the cluster"
        order = snapshot.restore
        if init is not None and init.restore_from and order is not None and order.failed:
            return (f"the restore of backup {init.restore_from} failed ({order.failed}); not tried again until "
                    "`galera-pilot restore` is run again")
        if init is not None and init.restore_from:
            self.history("initialize", f"galera-pilot restore: creating a new cluster from backup {init.restore_from}")
        else:
            self.history("initialize", "won the atomic create of the initialize key; creating a new cluster")
        restore_from = init.restore_from if init is not None else None
        point = order if restore_from and order is not None and order.backup == restore_from else None
        try:
            uuid, seqno = self.datadir.create_seed(ttl, restore_from, point)
        except Exception as error:
            self.memory.expect_running = False
            self.process.stop(30)
            # Said in the history: the next cycle tries again (this node still holds the record), and a
            # second `initialize` event must say why there was one.
            self.history("initialize-failed", f"initializing the cluster failed: {error}", {})
            if not isinstance(error, PilotError):
                raise
            if restore_from is not None:
                with contextlib.suppress(DCSError):
                    fail_restore(self.dcs, restore_from, str(error))
                self.history("restore", f"the restore of backup {restore_from} failed: {error}",
                             {"backup": restore_from})
            raise PilotError(f"initializing the cluster failed: {error}") from None
        seed = self.dcs.snapshot().seed
        forming = seed is not None and len(seed.formation) > 1
        if seed is not None and forming:
            reason = (f"initializer: the new cluster {uuid} forms its first Primary Component from the seed "
                      f"(seqno {seqno}) with {', '.join(sorted(seed.formation))} together")
        else:
            reason = f"initializer bootstraps the new cluster {uuid} from its seed (seqno {seqno})"
        # Lock first, then mark the cluster initialized: no joiner holding a seed copy can ever see an
        # initialized cluster without Primary and without a bootstrap lock holder.
        if not self.dcs.acquire_bootstrap_lock(self.config.name, self.config.timing.bootstrap_lock_ttl, reason):
            raise PilotError("the bootstrap lock is held by another node during initialization")
        if not self.dcs.finish_initialize(self.config.name, uuid):
            self.dcs.release_bootstrap_lock(self.config.name)
            return "lost the initialize lease while initializing; another agent may have taken over"
        # A new cluster's mark starts at its seed: until something is committed beyond it, a seed copy is
        # the whole cluster (high_water.never_served).
        self.dcs.reset_high_water(uuid, seqno, self.config.name)
        if forming:
            return f"initialized cluster {uuid}; forming it from the seed with the other nodes"
        self.history("bootstrap", reason, {"cluster_uuid": uuid, "seqno": seqno})
        self.starter.start(bootstrap=True, peers=())
        return f"initialized cluster {uuid}; bootstrapping it"

    def form(self, decision: Decision) -> str:
        """Start from the seed with the shared saved view: pc.recovery forms the component once every
        formation member is up (each at the seed's position, so nobody needs a state transfer)."""
        seed = self.dcs.snapshot().seed
        if seed is None or self.config.name not in seed.formation:
            raise PilotError("the seed's formation record is gone")
        view = SavedView(seed.formation[self.config.name], seed.view_id, tuple(sorted(seed.formation.values())))
        path = self.config.data_dir / "gvwstate.dat"
        write_private(path, render_gvwstate(view), 0o640)
        user = self.config.effective_mariadbd_user
        if user and os.geteuid() == 0:
            shutil.chown(path, user, user)
        self.history("form", decision.reason, {"members": sorted(seed.formation), "view": seed.view_id})
        self.memory.pc_recovery_started = time.monotonic()
        self.starter.start(bootstrap=False, peers=decision.peers)
        return decision.reason
