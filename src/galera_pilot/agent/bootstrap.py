"""Making a Primary Component again when none is left: a bootstrap from the most advanced datadir, or
pc.recovery, where the members of the last saved view re-form it together.

Both are irreversible for whoever is behind, so the bootstrap re-decides under the DCS bootstrap lock on
a fresh snapshot, and asks the other members' REST APIs first (a DCS key may expire while its node lives).
"""

from __future__ import annotations

import time

from galera_pilot.agent.decisions import Action, Decision, LocalState, RecoveryPolicy, decide
from galera_pilot.agent.memory import AgentMemory, History
from galera_pilot.agent.starter import Starter
from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.base import DCS
from galera_pilot.routing.peers import fetch_status


class Bootstrapper:
    """Carries out BOOTSTRAP and PC_RECOVER."""

    def __init__(self, config: NodeConfig, dcs: DCS, policy: RecoveryPolicy, memory: AgentMemory,
                 starter: Starter, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.policy = policy
        self.memory = memory
        self.starter = starter
        self.history = history

    def _probe_primary(self, cluster: Cluster) -> str | None:
        """Ask every other roster member's REST API whether it is Primary (its DCS key may have expired)."""
        for name, entry in cluster.roster.items():
            if name == self.config.name or not entry.api_url:
                continue
            data, _ = fetch_status(entry.api_url, timeout=0.5)
            if data is None:
                continue
            if data.get("running") and data.get("cluster_status") == "Primary":
                return name
        return None

    def bootstrap(self, decision: Decision, local: LocalState) -> str:
        ttl = self.config.timing.bootstrap_lock_ttl
        if not self.dcs.acquire_bootstrap_lock(self.config.name, ttl, decision.reason):
            return "another node took the bootstrap lock first; waiting for its Primary Component"
        # Re-decide on a fresh snapshot now that we hold the lock: the first one may be stale.
        fresh = self.dcs.snapshot()
        again = decide(local, fresh, self.policy, time.monotonic())
        if again.action != Action.BOOTSTRAP:
            self.dcs.release_bootstrap_lock(self.config.name)
            return f"not bootstrapping after all: {again.reason}"
        primary = self._probe_primary(fresh)
        if primary is not None:
            self.dcs.release_bootstrap_lock(self.config.name)
            return f"not bootstrapping: {primary} answers as Primary although its DCS key is gone"
        self.history("bootstrap", again.reason, again.inputs)
        if again.inputs.get("discards") and local.position is not None:
            # A person accepted the loss: the cluster's history goes on from here, and the mark with it.
            self.dcs.reset_high_water(local.position.uuid, local.position.seqno, self.config.name)
        self.starter.start(bootstrap=True, peers=(), position=local.position)
        return again.reason

    def pc_recover(self, decision: Decision, local: LocalState) -> str:
        """Start towards every other member of the saved view, keeping gvwstate.dat: Galera re-forms the
        component once all of them meet (measured 3.3 s), and nodes behind catch up by IST from it."""
        self.history("pc-recovery", decision.reason, decision.inputs)
        self.memory.pc_recovery_started = time.monotonic()
        self.memory.pc_recovery_position = local.position
        self.starter.start(bootstrap=False, peers=decision.peers, position=local.position)
        return decision.reason
