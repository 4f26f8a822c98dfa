"""The agent's cycle: observe the node, read the DCS, decide (pure), act, publish.

Each cycle returns one sentence saying what was decided and why; the agent logs it. All judgement is
in `decisions.py`; this module only runs the ladder and hands each decision to the room that carries it
out, re-checking under the bootstrap lock before anything irreversible (`bootstrap.py`):

* `observation.py`: what mariadbd and the datadir say (the LocalState), with --wsrep-recover if need be;
* `exits.py` and `eviction.py`: an unexpected exit of mariadbd, its backoff, crash loop and fast eviction;
* `initialize.py` and `datadir.py`: a new cluster, its seed, the seed copy, quarantining a datadir;
* `bootstrap.py`: bootstrap and pc.recovery; `join.py`: joining a live Primary Component;
* `starter.py`: starting mariadbd (folders, my.cnf, start position), which every way in ends with;
* `memory.py`: what those rooms share (the agent's memory of its mariadbd, the member record, history).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from galera_pilot.agent.auto_updates import AutoUpdates
from galera_pilot.agent.backups import BackupKeeper
from galera_pilot.agent.bootstrap import Bootstrapper
from galera_pilot.agent.cycle_errors import CycleErrors
from galera_pilot.agent.datadir import DatadirKeeper
from galera_pilot.agent.dcs_watch import DcsWatch
from galera_pilot.agent.decisions import Action, Decision, LocalState, RecoveryPolicy, decide
from galera_pilot.agent.disk_guard import DiskGuard
from galera_pilot.agent.event_keeper import EventKeeper
from galera_pilot.agent.eviction import Eviction
from galera_pilot.agent.exits import ExitHandler
from galera_pilot.agent.high_water import should_raise, vouched_seqno
from galera_pilot.agent.initialize import Initializer
from galera_pilot.agent.join import Joiner
from galera_pilot.agent.memory import AgentMemory, DcsHistory, MemberRecord
from galera_pilot.agent.observation import NodeObservation, PositionReader
from galera_pilot.agent.observer import StatusObserver
from galera_pilot.agent.removal import Leaver, removal_reason
from galera_pilot.agent.restarts import RollingRestarts
from galera_pilot.agent.settings_keeper import SettingsKeeper
from galera_pilot.agent.starter import Starter
from galera_pilot.agent.tls_keeper import TlsKeeper
from galera_pilot.cluster import Cluster, Member, RosterEntry
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.exit_watch import ExitWatcher
from galera_pilot.mariadb.grastate import datadir_position
from galera_pilot.mariadb.process import MariadbProcess
from galera_pilot.routing.health import QUERY_TIMEOUT
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.tls.node import NodeTls

log = logging.getLogger(__name__)


class Ha:
    """One node's agent: the cycle ladder, and the wiring of the rooms that carry its decisions out."""

    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials,
                 policy: RecoveryPolicy | None = None, node_tls: NodeTls | None = None,
                 on_tls_reload: Callable[[NodeTls], None] | None = None, config_path: Path | None = None) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self._policy_given = policy is not None  # a test's own; else the configuration's (it may be reloaded)
        self.policy = policy or RecoveryPolicy(config.recovery.policy, config.recovery.majority_timeout)
        self.process = MariadbProcess(config)
        self.host = socket.gethostname()
        self._history = DcsHistory(dcs, config.name)
        # The member record carries what others dial (advertised address and ports), not what we bind:
        # peers build wsrep_cluster_address, eviction and proxies connect from it.
        self._member = MemberRecord(Member(
            name=config.name, address=config.advertised_address, api_url=config.api_url,
            client_port=config.advertised_port("client"), galera_port=config.advertised_port("galera"),
            host=self.host, use_seed=config.use_seed, priority=config.priority,
            gcache_bytes=config.mariadb.gcache_bytes))
        self.memory = AgentMemory(expect_running=self.process.is_running())  # adopt an earlier agent's mariadbd
        self.disk = DiskGuard(config)  # issue 20: disk space observed, no restart into a full disk
        self.cycle_errors = CycleErrors()  # unexpected errors in the cycle (agent.py retries with a backoff)
        if not self.memory.expect_running:
            self.disk.note_exit(at_start=True)  # did the last run die of ENOSPC?
        # Set when the agent should run its next cycle now rather than after next_wait() (mariadbd exited).
        self.wake = threading.Event()
        self._synced_once = False
        self._data_gone_recorded = False
        self._transitional = True
        self.last_cycle_seconds = 0.0
        self.roster_members = 0  # the roster (with this node, without removed ones) as of the last cycle: /metrics
        # Routing (issue 4): a fast look at mariadbd for the health endpoints, and the writer lease.
        self._observer_connection = None  # the status observer's kept connection (its thread alone uses it)
        self.observer = StatusObserver(self._observer_query)
        self.writer = WriterKeeper(config.name, dcs, self.observer.latest, config.priority,
                                   config.timing.writer_lease_ttl, fresh_within=max(3.0, 3 * config.timing.loop_wait),
                                   on_change=self._writer_changed, failsafe=config.timing.writer_failsafe)
        self.writer.paused = None  # unknown until the first cycle has read the DCS: take no role before
        # Watches (issue 5): run the cycle or the writer election at once when the DCS says something changed.
        self.dcs_watch = DcsWatch(dcs, config.name, self.wake.set, self.writer.wake)
        # The rooms that carry the decisions out, each given what it needs.
        memory, history = self.memory, self._history
        self.eviction = Eviction(config, dcs, credentials, memory, history)
        # The cluster is paused (`galera-pilot pause`), as of the last cycle's snapshot; None until the first
        # cycle has asked the DCS.
        self.paused: bool | None = None
        self.exits = ExitHandler(config, dcs, memory, self._member, self.disk, self.eviction, self.observer,
                                 self.writer, self.wake, history, lambda: self.paused is True)
        self._exit_watch = ExitWatcher(self.exits.on_exit_seen)
        self.positions = PositionReader(config, self.process, self.disk, memory)
        self.observation = NodeObservation(config, credentials, self.host, self.process, memory, self._member,
                                           self.disk, self.positions, self.exits, self._exit_watch)
        self.starter = Starter(config, credentials, self.process, memory, self.positions, self._exit_watch, history,
                               node_tls)
        self.datadir = DatadirKeeper(config, dcs, credentials, self.host, self.process, memory, self.positions,
                                     self.starter, history)
        self.initializer = Initializer(config, dcs, self.process, memory, self.datadir, self.starter, history)
        self.bootstrapper = Bootstrapper(config, dcs, self.policy, memory, self.starter, history)
        self.joiner = Joiner(config, dcs, credentials, self.process, self.datadir, self.starter, history)
        self.leaver = Leaver(config, dcs, self.process, memory, self.writer, history)  # `galera-pilot remove`
        self.restarts = RollingRestarts(config, dcs, self.process, memory, self.writer, history, credentials,
                                        self._heartbeat, self._rebuild)
        # Cluster-wide settings merged with the node's file, followed on the running server (`edit-config`).
        self.settings = SettingsKeeper(config, config_path, credentials, self.writer)
        self.updates = AutoUpdates(config.name, dcs, history)  # the writer's agent rolls installed minor updates
        # takes the backup the DCS asks of us, and asks for the scheduled ones
        self.backups = BackupKeeper(config, dcs, credentials, history, self.wake.set)
        self.events = EventKeeper(config, dcs, history)  # Galera's notifications to the history; the callbacks
        self._restart_requested = False  # a rolling restart's request for this node, as of the last snapshot
        self._observed_pid: int | None = None  # mariadbd's pid as of the cycle's observation
        self.tls = None if node_tls is None else TlsKeeper(config, node_tls, credentials, self.process, history,
                                                           lambda fresh: self._tls_reloaded(fresh, on_tls_reload))

    def _tls_reloaded(self, fresh: NodeTls, then: Callable[[NodeTls], None] | None) -> None:
        self.starter.node_tls = fresh  # the next start installs the new files too
        if then is not None:
            then(fresh)  # the REST API's and this process's client contexts (run.py)

    def start_background(self) -> None:
        """Start the status observer and the writer keeper (the REST API reads both), and the DCS watch."""
        self.observer.start()
        self.writer.start()
        if self.config.timing.watch:
            self.dcs_watch.start()

    def _observer_query(self) -> dict[str, str] | None:
        """The observer's look, on one kept connection (a connect per look, four a second, was most of an
        idle agent's CPU); any error drops it, and the next look connects again."""
        try:
            if self._observer_connection is None:
                self._observer_connection = sql.connect_socket(self.config, self.credentials, timeout=QUERY_TIMEOUT)
            return sql.wsrep_status(self._observer_connection)
        except Exception:
            connection, self._observer_connection = self._observer_connection, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            raise

    def _writer_changed(self, sentence: str) -> None:
        self._history("writer", sentence)

    # ---- what the REST API reads ---------------------------------------------------------------------
    def member(self) -> Member:
        return self._member.get()

    @property
    def activity(self) -> str:
        """What the agent is doing, in one sentence: the member record and /status show it."""
        return self.memory.activity

    @activity.setter
    def activity(self, sentence: str) -> None:
        self.memory.activity = sentence

    # ---- observation -----------------------------------------------------------------------------------
    def observe(self, now: float) -> LocalState:
        """The cycle's look at this node (observation.py). Paused, it runs no --wsrep-recover: a person may be
        working on the datadir; so the very first cycle asks the DCS whether the cluster is paused."""
        if self.paused is None:
            self.paused = self.dcs.get("pause") is not None
        return self.observation.observe(now, recover=not self.paused)

    def publish(self) -> None:
        settings = self.settings.report
        member = replace(self.member(), activity=self.activity, clock_skew=self.writer.clock_skew,
                         paused=self.paused is True, settings_revision=settings.revision,
                         pending_restart=settings.pending_restart, settings_error=settings.error,
                         settings_overridden=settings.overridden,
                         gcache_bytes=settings.gcache_bytes or self.config.mariadb.gcache_bytes)
        if self.tls is not None:
            report = self.tls.report()
            member = replace(member, tls_not_after=report["not_after"], tls_trust=tuple(report["trust"]),
                             tls_signer=report["signer"],
                             tls_warning=report["reload_error"] or report["warning"] or "")
        self._member.set(member)
        self.dcs.publish_member(member, self.config.timing.member_ttl)

    def _heartbeat(self) -> None:
        """Publish during a long step of the cycle (mariadb-upgrade), so the record does not expire."""
        with contextlib.suppress(PilotError):
            self.publish()

    # ---- one cycle --------------------------------------------------------------------------------------
    def run_cycle(self) -> str:
        started = time.monotonic()
        try:
            return self._run_cycle()
        finally:
            self.last_cycle_seconds = time.monotonic() - started
            # Also after a failed cycle (the DCS away): a stop or a lost writer role is when a hook matters.
            self.events.after_cycle(self.member(), self._observed_pid, self.writer.holder == self.config.name,
                                    self._restart_requested)

    def _run_cycle(self) -> str:
        now = time.monotonic()  # the agent's own intervals (backoff, crash loop, waits): never the wall clock
        local = self.observe(now)
        # The pid that goes with the record published now: the cycle may stop or start mariadbd later,
        # and the callbacks compare records (event_keeper.py).
        self._observed_pid = self.process.pid() if local.running else None
        self.publish()
        cluster = self.dcs.snapshot(with_history=False)  # every second: the history only grows
        self._restart_requested = self.config.name in cluster.restarts
        self.roster_members = (len((set(cluster.roster) | {self.config.name}) - set(cluster.removed))
                               + len(cluster.arbitrators))  # garbd counts in wsrep_cluster_size too
        self.paused = cluster.pause is not None
        self.writer.paused = self.paused
        if not self.paused:  # paused: no SET GLOBAL, no new timings either
            self._follow_settings(cluster, local)
        pid = self.process.pid()
        local = replace(local, restart_due=self.restarts.due(cluster, pid),
                        removed=removal_reason(self.config, cluster),
                        use_seed=local.use_seed and not self.memory.sst_donor)  # reinit: a full SST, not the seed
        self._raise_high_water(local, cluster)
        if cluster.has_primary or local.cluster_status == "Primary":
            self.memory.no_primary_since = None
        elif self.memory.no_primary_since is None:
            self.memory.no_primary_since = now
        decision = decide(local, cluster, self.policy, now)
        if decision.inputs.get("data_gone") and not self._data_gone_recorded:
            self._data_gone_recorded = True  # once per agent run: the sentence stays in `activity`
            self._history("data-gone", decision.reason, decision.inputs)
        self._transitional = decision.action != Action.NONE or local.state != "Synced"
        try:
            sentence = self._act(decision, local, cluster)
        except PilotError as error:
            self.restarts.note_failure(cluster, pid, str(error))  # a rolling restart's start that failed
            raise
        if not self.paused and (decision.action == Action.HALT or local.backoff_remaining > 0):
            self.restarts.note_failure(cluster, pid, decision.reason)
        backup = self.backups.cycle(cluster, local.running and local.state == "Synced")
        if backup is not None:
            sentence = f"{sentence}; {backup}"
        self.activity = sentence
        self._after_cycle(local, cluster)
        if not self.paused:
            self.restarts.after_cycle(local, cluster, self.process.pid())
            self.updates.consider(cluster)
        self.publish()
        return sentence

    def reload_config(self) -> list[str]:
        """`galera-pilot reload` (REST API) and SIGHUP: re-read the node's file (settings_keeper.py); the
        sections that changed, taken at the cycle run now. A ConfigError, nothing changed, when refused."""
        changed = self.settings.reload()
        log.info("reloaded %s: %s", self.settings.path, ", ".join(changed) if changed else "nothing changed")
        self.wake.set()
        return changed

    def _follow_settings(self, cluster: Cluster, local: LocalState) -> None:
        self.settings.follow(cluster, local.running and local.state in ("Synced", "Donor/Desynced"))
        if self.settings.applied_reload is not None:  # merged now: on_reload at this cycle's end
            self.events.reloaded(self.settings.applied_reload)
            self.settings.applied_reload = None
        if not self._policy_given:  # `reload` may have changed the recovery section
            recovery = self.config.recovery
            if (self.policy.mode, self.policy.majority_timeout) != (recovery.policy, recovery.majority_timeout):
                self.policy = self.bootstrapper.policy = RecoveryPolicy(recovery.policy, recovery.majority_timeout)

    def _raise_high_water(self, local: LocalState, cluster: Cluster) -> None:
        """Keep the DCS's memory of how far the cluster got (high_water.py) current: a write only when
        this member vouches for more than the mark says."""
        cluster_uuid = cluster.initialize.cluster_uuid if cluster.initialize else None
        member = self.member()
        seqno = vouched_seqno(local.running, local.cluster_status, member.cluster_uuid, member.seqno,
                              local.position, cluster_uuid)
        if cluster_uuid is not None and seqno is not None and should_raise(cluster, cluster_uuid, seqno):
            self.dcs.raise_high_water(cluster_uuid, seqno, self.config.name)

    def next_wait(self) -> float:
        """Cycle quickly while something is changing, at loop_wait when all is calm."""
        return min(0.25, self.config.timing.loop_wait) if self._transitional else self.config.timing.loop_wait

    def _after_cycle(self, local: LocalState, cluster: Cluster) -> None:
        if self.tls is not None and not self.paused:  # paused: not even a TLS reload
            self.tls.check()
        joiner = self.joiner
        if local.running and local.cluster_status == "Primary":
            self.dcs.release_lease("join", self.config.name)
            joiner.join_watch = None
        elif local.running and joiner.join_watch is not None and joiner.entered_group(*joiner.join_watch):
            # Our gcomm join is done (the peer's view grew) even though the state transfer is still
            # running; the next node may start its own join now.
            self.dcs.release_lease("join", self.config.name)
            joiner.join_watch = None
        if local.running and local.cluster_status == "Primary" and local.state == "Synced":
            if cluster.bootstrap_lock_holder == self.config.name:
                self.dcs.release_bootstrap_lock(self.config.name)
            if cluster.forced_bootstrap == self.config.name:
                self.dcs.clear_bootstrap_order()
            if self.eviction.evicted is not None:
                self.eviction.clear()
            self.memory.pc_recovery_failed = False
            if not self._synced_once:
                self._synced_once = True
                self.dcs.update_roster(self._roster_entry(stopped_gracefully=False))

    def _rebuild(self, donor: str) -> None:
        """`galera-pilot reinit`, mariadbd stopped: the datadir is kept aside, the next join is a full SST."""
        self.datadir.quarantine(f"galera-pilot reinit rebuilds this node by a full SST from {donor}")
        self.memory.sst_donor = donor

    def _roster_entry(self, stopped_gracefully: bool) -> RosterEntry:
        return RosterEntry(self.config.name, self.config.advertised_address, self.config.api_url,
                           self.config.advertised_port("client"), stopped_gracefully)

    def _act(self, decision: Decision, local: LocalState, cluster: Cluster) -> str:
        if decision.action == Action.INITIALIZE:
            return self.initializer.initialize(decision, local)
        if decision.action == Action.BOOTSTRAP:
            return self.bootstrapper.bootstrap(decision, local)
        if decision.action == Action.JOIN:
            return self.joiner.join(decision, local)
        if decision.action == Action.COPY_SEED:
            self.datadir.copy_seed()
        if decision.action == Action.PC_RECOVER:
            return self.bootstrapper.pc_recover(decision, local)
        if decision.action == Action.FORM:
            return self.initializer.form(decision)
        if decision.action == Action.ROLL_RESTART:
            return self.restarts.stop(cluster, decision.reason)
        if decision.action == Action.RESTORE_STOP:
            self._history("restore-stop", decision.reason)
            self.writer.drop("mariadbd stops for a restore")
            self.memory.expect_running = False  # a deliberate stop, not a crash
            if not self.process.stop(300):
                self.process.kill()
                self.process.wait_exit(30)
            return f"{decision.reason}: stopped"
        if decision.action == Action.LEAVE:
            return self.leaver.leave(cluster, decision.reason)  # raises MemberRemoved: the agent exits
        if decision.action == Action.RESTART:
            if self.memory.pc_recovery_started is not None:
                self.memory.pc_recovery_failed = True
                self.memory.pc_recovery_started = None
            self._history("restart", decision.reason)
            self.memory.expect_running = False  # a deliberate stop, not a crash
            if not self.process.stop(120):
                self.process.kill()
                self.process.wait_exit(30)
            self.memory.disconnected_since = self.memory.not_primary_since = None
        return decision.reason

    # ---- stopping ----------------------------------------------------------------------------------------
    def _raise_high_water_from_datadir(self) -> None:
        """After a clean stop grastate.dat holds the final seqno: the last writes before the stop count."""
        position = datadir_position(self.config.data_dir)
        init = self.dcs.snapshot().initialize
        if position is not None and position.usable and init is not None and position.uuid == init.cluster_uuid:
            self.dcs.raise_high_water(position.uuid, position.seqno, self.config.name)

    def shutdown(self) -> None:
        """Graceful stop: mariadbd flushes and records its seqno; the roster remembers a clean stop. While
        the cluster is paused the agent leaves mariadbd running, as Patroni does in maintenance mode: a
        person who restarts the agent then does not take the node down (its successor adopts it)."""
        if self.paused is True or self.leaver.left:
            if not self.leaver.left:
                log.info("the cluster is paused: leaving mariadbd running (the next agent adopts it)")
            self.dcs_watch.stop()
            self.writer.stop()
            self.observer.stop()
            return
        self.activity = "stopping mariadbd"
        # Drain first: give the writer role up so clients move to another node before mariadbd stops.
        self.dcs_watch.stop()
        self.writer.stop()
        self.writer.drop("the agent is stopping")
        with contextlib.suppress(PilotError):
            self.publish()
        self.memory.expect_running = False
        self._exit_watch.cancel()
        stopped = self.process.stop(300)
        self.events.stopped()
        try:
            if stopped:
                self._raise_high_water_from_datadir()
            if stopped and (self._synced_once or self.config.name in self.dcs.snapshot().roster):
                self.dcs.update_roster(self._roster_entry(stopped_gracefully=True))
                self.dcs.release_bootstrap_lock(self.config.name)
            self.dcs.release_lease("join", self.config.name)
            self.dcs.remove_member(self.config.name)
        except PilotError as error:
            log.warning("could not record the stop in the DCS: %s", error)
        self.observer.stop()
        self.events.stop()
