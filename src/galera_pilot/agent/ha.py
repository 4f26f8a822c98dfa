"""The agent's cycle: observe the node, read the DCS, decide (pure), act, publish.

Each cycle returns one sentence saying what was decided and why; the agent logs it. All judgement is
in `decisions.py`; this module only gathers facts and carries decisions out, re-checking under the
bootstrap lock before anything irreversible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.request
import uuid as uuid_module
from collections import deque
from dataclasses import replace
from pathlib import Path

from galera_pilot.agent.cycle_errors import CycleErrors, backoff_delay
from galera_pilot.agent.dcs_watch import DcsWatch
from galera_pilot.agent.decisions import Action, Decision, LocalState, RecoveryPolicy, decide
from galera_pilot.agent.disk_guard import DiskGuard
from galera_pilot.agent.high_water import should_raise, vouched_seqno
from galera_pilot.agent.observer import StatusObserver
from galera_pilot.agent.quarantine import (
    SEED_PARTIAL,
    copy_out_refusal,
    is_mount_point,
    move_aside,
    place_seed_in_mount,
)
from galera_pilot.cluster import (
    EMPTY_POSITION,
    UNKNOWN_UUID,
    Cluster,
    HistoryEvent,
    Member,
    Position,
    RosterEntry,
    SavedView,
    SeedRecord,
)
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.exit_watch import ExitWatcher
from galera_pilot.mariadb.grastate import (
    datadir_position,
    has_data,
    restore_cluster_uuid,
    rewrite_grastate,
    set_safe_to_bootstrap,
)
from galera_pilot.mariadb.gvwstate import read_saved_view, render_gvwstate
from galera_pilot.mariadb.mycnf import render_mycnf
from galera_pilot.mariadb.process import MariadbProcess, chown_tree, gave_up_reaching_peers, tail
from galera_pilot.routing.health import QUERY_TIMEOUT
from galera_pilot.routing.keeper import WriterKeeper

log = logging.getLogger(__name__)

CRASH_LOOP_COUNT = 5
CRASH_LOOP_WINDOW = 300.0
START_WAIT = 300.0
# The join lease covers the gcomm join (about 0.5 s here), not the state transfer: released when the node
# reports Primary, or expired after this many seconds, whichever comes first.
JOIN_LEASE_TTL = 2.0
# Not worth copying into the seed: the gcache is preallocated (gcache.size) and rebuilt on start, and a
# saved Primary Component view belongs to the initializer alone.
# Backoff cap after mariadbd gave up reaching its peers (a network problem, not a crash).
UNREACHABLE_BACKOFF_MAX = 5.0
# A joiner first checks that some peer's Galera port answers, within this many seconds per peer.
PEER_PROBE_TIMEOUT = 1.0
SEED_IGNORE = shutil.ignore_patterns("galera.cache", "gvwstate.dat", "*.pid", "*.sock")


class Ha:
    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials,
                 policy: RecoveryPolicy | None = None) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.policy = policy or RecoveryPolicy(config.recovery.policy, config.recovery.majority_timeout)
        self.process = MariadbProcess(config)
        self.host = socket.gethostname()
        self.activity = "starting agent"
        self._lock = threading.Lock()
        # The member record carries what others dial (advertised address and ports), not what we bind:
        # peers build wsrep_cluster_address, eviction and proxies connect from it.
        self._member = Member(name=config.name, address=config.advertised_address, api_url=config.api_url,
                              client_port=config.advertised_port("client"),
                              galera_port=config.advertised_port("galera"), host=self.host,
                              use_seed=config.use_seed, priority=config.priority)
        self._recovered: tuple[tuple[int, int], Position] | None = None
        self._expect_running = self.process.is_running()  # adopt a mariadbd left by an earlier agent
        self.disk = DiskGuard(config)  # issue 20: disk space observed, no restart into a full disk
        self.cycle_errors = CycleErrors()  # unexpected errors in the cycle (agent.py retries with a backoff)
        if not self._expect_running:
            self.disk.note_exit(at_start=True)  # did the last run die of ENOSPC?
        self._exits: deque[float] = deque(maxlen=CRASH_LOOP_COUNT)
        self._consecutive_failures = 0
        self._crash_loop: str | None = None
        self._evicted: str | None = None
        self._evict_lock = threading.Lock()
        self._exit_handled = False  # the current mariadbd's exit was seen (and its eviction tried)
        # Set when the agent should run its next cycle now rather than after next_wait() (mariadbd exited).
        self.wake = threading.Event()
        self._exit_watch = ExitWatcher(self._on_exit_seen)
        self._join_watch: tuple[str, int, int] | None = None
        self._disconnected_since: float | None = None
        self._gcomm_uuid = ""
        self._retry_at = 0.0
        self._no_primary_since: float | None = None
        self._synced_once = False
        self._pc_recovery_started: float | None = None  # when mariadbd was started for pc.recovery
        self._pc_recovery_failed = False  # until the next Synced: do not try pc.recovery again
        self._pc_recovery_position: Position | None = None  # published while waiting for pc.recovery
        self._data_gone_recorded = False
        self._transitional = True
        self.last_cycle_seconds = 0.0
        # Routing (issue 4): a fast look at mariadbd for the health endpoints, and the writer lease.
        self._observer_connection = None  # the status observer's kept connection (its thread alone uses it)
        self.observer = StatusObserver(self._observer_query)
        self.writer = WriterKeeper(config.name, dcs, self.observer.latest, config.priority,
                                   config.timing.writer_lease_ttl, fresh_within=max(3.0, 3 * config.timing.loop_wait),
                                   on_change=self._writer_changed, failsafe=config.timing.writer_failsafe)
        # Watches (issue 5): run the cycle or the writer election at once when the DCS says something changed.
        self.dcs_watch = DcsWatch(dcs, config.name, self.wake.set, self.writer.wake)

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
        with self._lock:
            return self._member

    # ---- observation -----------------------------------------------------------------------------------
    def _query_status(self, as_root: bool = False) -> dict[str, str] | None:
        try:
            connection = sql.connect_socket(self.config, None if as_root else self.credentials, timeout=2.0)
        except Exception:
            return None
        try:
            return sql.wsrep_status(connection)
        except Exception:
            return None
        finally:
            connection.close()

    def _position(self, recover: bool = True) -> Position | None:
        position = self._grastate_or_recovered_position() if recover else datadir_position(self.config.data_dir)
        if position is None:
            return None
        return replace(position, saved_view=read_saved_view(self.config.data_dir))

    def _grastate_or_recovered_position(self) -> Position | None:
        position = datadir_position(self.config.data_dir)
        if position is None or not position.needs_recovery:
            return position
        key = self._recovery_key()
        if self._recovered is not None and self._recovered[0] == key:
            return replace(self._recovered[1], safe_to_bootstrap=position.safe_to_bootstrap)
        self.activity = "recovering the position with --wsrep-recover"
        try:
            recovered = self.process.wsrep_recover()
        except (PilotError, OSError) as error:
            if self.disk.note_recover_failure(str(error)):
                return position  # out of space: transient, not a reason to refuse the datadir
            return replace(position, unusable=f"--wsrep-recover failed: {error}")
        recovered = replace(recovered, grastate_problem=position.grastate_problem)
        if recovered.uuid == UNKNOWN_UUID:
            why = (f"{position.grastate_problem}, and InnoDB holds no cluster position either"
                   if position.grastate_problem else
                   "neither grastate.dat nor InnoDB holds a cluster position (never joined)")
            recovered = replace(recovered, unusable=why)
        elif position.uuid not in (UNKNOWN_UUID, recovered.uuid):
            recovered = replace(recovered, unusable=f"InnoDB holds {recovered.uuid}, grastate.dat {position.uuid}")
        elif position.grastate_problem:
            log.warning("%s; InnoDB holds the position %s:%d, which counts instead", position.grastate_problem,
                        recovered.uuid, recovered.seqno)
        self._recovered = (key, recovered)
        return replace(recovered, safe_to_bootstrap=position.safe_to_bootstrap)

    def _recovery_key(self) -> tuple[int, int]:
        stamps = []
        for name in ("grastate.dat", "ib_logfile0"):
            try:
                stamps.append((self.config.data_dir / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        return (stamps[0], stamps[1])

    def observe(self, now: float) -> LocalState:
        pid = self.process.pid()
        running = pid is not None
        if self._expect_running and not running:
            self._on_unexpected_exit(now)
        elif self._expect_running and pid is not None:
            self._exit_watch.watch(pid)
        status = self._query_status() if running else None
        if status and status.get("wsrep_gcomm_uuid"):
            # Kept across observations that time out (a busy server): fast eviction needs it at the crash.
            self._gcomm_uuid = status["wsrep_gcomm_uuid"]
        elif not running:
            self._gcomm_uuid = ""
        data = has_data(self.config.data_dir)
        self.disk.measure()
        disk_full = self.disk.judge(running)
        position: Position | None = None
        if running:
            if status:
                state = status.get("wsrep_local_state_comment", "")
                cluster_status = status.get("wsrep_cluster_status", "")
            else:
                state, cluster_status = "starting", ""
        else:
            state, cluster_status = "stopped", ""
            # An empty datadir is reported as such: a recovery then knows this member has nothing to offer.
            # Out of space: no --wsrep-recover (it may fail for that alone); grastate.dat's position is published.
            position = self._position(recover=disk_full is None) if data else EMPTY_POSITION
            disk_full = self.disk.judge(running)  # --wsrep-recover may have failed for lack of space
        if running and self._pc_recovery_started is not None and cluster_status != "Primary":
            position = self._pc_recovery_position
        if status and cluster_status == "Primary" and state == "Synced":
            self._consecutive_failures = 0
        if (self._crash_loop is None and len(self._exits) == CRASH_LOOP_COUNT
                and now - self._exits[0] < CRASH_LOOP_WINDOW):
            # Sticky until the agent is restarted: a person must look before the server is started again.
            self._crash_loop = (f"it exited {CRASH_LOOP_COUNT} times within {CRASH_LOOP_WINDOW:.0f} s "
                                f"(crash loop); see {self.config.error_log}, then restart this agent")
            self._history("halt", f"crash loop: {self._crash_loop}")
        member = replace(
            self.member(), running=running, state=state, cluster_status=cluster_status,
            cluster_size=int((status or {}).get("wsrep_cluster_size", 0) or 0),
            cluster_uuid=(status or {}).get("wsrep_cluster_state_uuid", ""),
            seqno=int((status or {}).get("wsrep_last_committed", -1) or -1),
            gcomm_uuid=self._gcomm_uuid,
            position=position, updated_at=time.time(), activity=self.activity, disk=self.disk.report(),
        )
        with self._lock:
            self._member = member
        return LocalState(
            name=self.config.name, host=self.host, running=running, cluster_status=cluster_status,
            state=state, has_data=data, position=position, use_seed=self.config.use_seed,
            crash_loop=self._crash_loop, backoff_remaining=max(0.0, self._retry_at - now),
            no_primary_since=self._no_primary_since, disconnected_for=self._disconnected_for(cluster_status, now),
            pc_recovery_allowed=not self._pc_recovery_failed,
            pc_recovering_for=self._pc_recovering_for(running, cluster_status, now), disk_full=disk_full,
        )

    def _pc_recovering_for(self, running: bool, cluster_status: str, now: float) -> float:
        if self._pc_recovery_started is None:
            return 0.0
        if cluster_status == "Primary" or not running:
            self._pc_recovery_started = None
            return 0.0
        return now - self._pc_recovery_started

    def _disconnected_for(self, cluster_status: str, now: float) -> float:
        if cluster_status != "Disconnected":
            self._disconnected_since = None
            return 0.0
        if self._disconnected_since is None:
            self._disconnected_since = now
        return now - self._disconnected_since

    def _on_exit_seen(self, pid: int) -> None:
        """The exit watcher's callback, in its thread, the instant mariadbd exits: evict now (each
        millisecond here stalls the survivors' writes), and wake the cycle to do the rest."""
        if self._expect_running:
            log.warning("mariadbd (pid %d) exited unexpectedly", pid)
            self.observer.mark_stopped()
            self._publish_stopped()
            self.writer.drop("mariadbd exited")
            self._evict_dead_instance()
        self.wake.set()

    def _publish_stopped(self) -> None:
        """Tell the other agents at once that this node is down, so the writer election does not wait
        for a member whose record still says Synced."""
        member = replace(self.member(), running=False, state="stopped", cluster_status="", updated_at=time.time())
        with self._lock:
            self._member = member
        try:
            self.dcs.publish_member(member, self.config.timing.member_ttl)
        except PilotError as error:
            log.warning("could not publish the exit of mariadbd: %s", error)

    def _evict_dead_instance(self) -> None:
        """Once per exit, from whichever thread notices it first."""
        if not self.config.fast_eviction:
            return
        with self._evict_lock:
            if self._exit_handled:
                return
            self._exit_handled = True
            dead_instance = self._gcomm_uuid
            if not dead_instance:
                log.warning("mariadbd died before its gcomm UUID was known; the survivors evict it by timeout")
            elif self._evicted != dead_instance:
                try:
                    self._evict(dead_instance)
                except DCSError as error:
                    # The peers' addresses come from the DCS: without it the survivors evict by timeout.
                    log.warning("cannot ask the peers to evict %s, the DCS is unavailable: %s", dead_instance, error)

    def _on_unexpected_exit(self, now: float) -> None:
        self._evict_dead_instance()
        self._expect_running = False
        if self._pc_recovery_started is not None:  # pc.recovery did not work out: bootstrap instead
            self._pc_recovery_failed = True
            self._pc_recovery_started = None
        last_lines = tail(self.config.error_log, 8)
        self._consecutive_failures += 1
        shortage = self.disk.note_exit()
        if gave_up_reaching_peers(last_lines):
            # Not a crash: the peers could not be reached (a partition, a peer that just died). Retry
            # soon, and never let a network problem add up to a crash-loop halt that outlives the problem.
            delay = backoff_delay(self._consecutive_failures, UNREACHABLE_BACKOFF_MAX)
        elif shortage is not None:
            # Not a crash either: the disk is full. The agent waits for space (LocalState.disk_full) and
            # does not start mariadbd into it, so these exits cannot loop; they do not count towards a halt.
            log.error("mariadbd died for lack of disk space on %s: %s", self.config.data_dir, shortage.line)
            delay = backoff_delay(self._consecutive_failures)
        else:
            self._exits.append(now)
            delay = backoff_delay(self._consecutive_failures)
        self._retry_at = now + delay
        self.dcs.release_lease("join", self.config.name)
        log.error("mariadbd exited unexpectedly; last lines of %s:\n%s", self.config.error_log, last_lines)

    def _peer_sql(self, statement: str, args: tuple = (), only_first: bool = True) -> list[str]:
        """Run a statement on live Primary peers over TCP as the admin user; names of those that took it."""
        done: list[str] = []
        for peer in self.dcs.snapshot().primary_members:
            if peer.name == self.config.name:
                continue
            try:
                connection = sql.connect_tcp(peer.address, peer.client_port, self.credentials, timeout=1.0)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(statement, args)
                finally:
                    connection.close()
            except Exception as error:
                log.warning("%s on %s failed: %s", statement.split("=")[0], peer.name, error)
                continue
            done.append(peer.name)
            if only_first:
                break
        return done

    def _evict(self, gcomm_uuid: str) -> None:
        """Fast eviction: without it the survivors keep the dead instance in the view and stall writes for
        evs.suspect_timeout (5.9 s measured). Every survivor is told, not just one: a survivor that has not
        heard of the eviction holds the new view's consensus back until its next join retransmission."""
        done = self._peer_sql("SET GLOBAL wsrep_provider_options = %s", (f"evs.evict={gcomm_uuid}",),
                              only_first=False)
        if done:
            self._evicted = gcomm_uuid
            self._history("evict", f"mariadbd died; {', '.join(done)} evicted its old instance {gcomm_uuid} "
                          "from the view", {"gcomm_uuid": gcomm_uuid, "evicted_by": done})
            log.info("asked %s to evict this node's dead instance %s", ", ".join(done), gcomm_uuid)
            if self._await_view_shrink(done[0]):
                # Once the view has dropped the dead instance the evict list has done its job; left in
                # place, it slowed the restarted node's own join (0.5-1.8 s of stalled writes, measured).
                self._peer_sql("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",), only_first=False)

    def _await_view_shrink(self, peer_name: str, timeout: float = 2.0) -> bool:
        """Wait until peer's Primary Component is smaller than the DCS last saw it (the eviction's view)."""
        peer = next((m for m in self.dcs.snapshot().primary_members if m.name == peer_name), None)
        if peer is None:
            return False
        deadline = time.monotonic() + timeout
        try:
            connection = sql.connect_tcp(peer.address, peer.client_port, self.credentials, timeout=1.0)
        except Exception:
            return False
        try:
            while time.monotonic() < deadline:
                if int(sql.wsrep_status(connection).get("wsrep_cluster_size", 0)) < peer.cluster_size:
                    return True
                time.sleep(0.02)
        except Exception as error:
            log.warning("watching %s's view after the eviction failed: %s", peer_name, error)
        finally:
            connection.close()
        return False

    def _clear_evictions(self) -> None:
        """The restarted node has a new gcomm UUID; clear the old one from every member's evict list."""
        self._peer_sql("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",), only_first=False)
        connection = None
        try:
            connection = sql.connect_socket(self.config, self.credentials, timeout=1.0)
            with connection.cursor() as cursor:
                cursor.execute("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",))
        except Exception as error:
            log.warning("clearing the local evict list failed: %s", error)
        finally:
            if connection is not None:
                connection.close()
        self._evicted = None

    def publish(self) -> None:
        member = replace(self.member(), activity=self.activity, clock_skew=self.writer.clock_skew)
        with self._lock:
            self._member = member
        self.dcs.publish_member(member, self.config.timing.member_ttl)

    # ---- one cycle --------------------------------------------------------------------------------------
    def run_cycle(self) -> str:
        started = time.monotonic()
        try:
            return self._run_cycle()
        finally:
            self.last_cycle_seconds = time.monotonic() - started

    def _run_cycle(self) -> str:
        now = time.monotonic()  # the agent's own intervals (backoff, crash loop, waits): never the wall clock
        local = self.observe(now)
        self.publish()
        cluster = self.dcs.snapshot()
        self._raise_high_water(local, cluster)
        if cluster.has_primary or local.cluster_status == "Primary":
            self._no_primary_since = None
        elif self._no_primary_since is None:
            self._no_primary_since = now
        decision = decide(local, cluster, self.policy, now)
        if decision.inputs.get("data_gone") and not self._data_gone_recorded:
            self._data_gone_recorded = True  # once per agent run: the sentence stays in `activity`
            self._history("data-gone", decision.reason, decision.inputs)
        self._transitional = decision.action != Action.NONE or local.state != "Synced"
        sentence = self._act(decision, local, cluster)
        self.activity = sentence
        self._after_cycle(local, cluster)
        self.publish()
        return sentence

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
        if local.running and local.cluster_status == "Primary":
            self.dcs.release_lease("join", self.config.name)
            self._join_watch = None
        elif local.running and self._join_watch is not None and self._entered_group(*self._join_watch):
            # Our gcomm join is done (the peer's view grew) even though the state transfer is still
            # running; the next node may start its own join now.
            self.dcs.release_lease("join", self.config.name)
            self._join_watch = None
        if local.running and local.cluster_status == "Primary" and local.state == "Synced":
            if cluster.bootstrap_lock_holder == self.config.name:
                self.dcs.release_bootstrap_lock(self.config.name)
            if cluster.forced_bootstrap == self.config.name:
                self.dcs.clear_bootstrap_order()
            if self._evicted is not None:
                self._clear_evictions()
            self._pc_recovery_failed = False
            if not self._synced_once:
                self._synced_once = True
                self.dcs.update_roster(self._roster_entry(stopped_gracefully=False))

    def _entered_group(self, address: str, port: int, size_before: int) -> bool:
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

    def _roster_entry(self, stopped_gracefully: bool) -> RosterEntry:
        return RosterEntry(self.config.name, self.config.advertised_address, self.config.api_url,
                           self.config.advertised_port("client"), stopped_gracefully)

    def _act(self, decision: Decision, local: LocalState, cluster: Cluster) -> str:
        if decision.action == Action.INITIALIZE:
            return self._initialize(decision, local)
        if decision.action == Action.BOOTSTRAP:
            return self._bootstrap(decision, local)
        if decision.action == Action.JOIN:
            return self._join(decision, local)
        if decision.action == Action.COPY_SEED:
            self._copy_seed()
        if decision.action == Action.PC_RECOVER:
            return self._pc_recover(decision, local)
        if decision.action == Action.FORM:
            return self._form(decision)
        if decision.action == Action.RESTART:
            if self._pc_recovery_started is not None:
                self._pc_recovery_failed = True
                self._pc_recovery_started = None
            self._history("restart", decision.reason)
            self._expect_running = False  # a deliberate stop, not a crash
            if not self.process.stop(120):
                self.process.kill()
                self.process.wait_exit(30)
            self._disconnected_since = None
        return decision.reason

    def _history(self, action: str, reason: str, inputs: dict | None = None) -> None:
        self.dcs.record_history(HistoryEvent(time.time(), self.config.name, action, reason, inputs or {}))

    # ---- actions ------------------------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        user = self.config.effective_mariadbd_user
        for path in (self.config.data_dir, self.config.run_dir, self.config.log_dir):
            path.mkdir(parents=True, exist_ok=True)
            if user and os.geteuid() == 0:
                shutil.chown(path, user, user)

    def _write_mycnf(self, peers: tuple[str, ...], start_position: str | None = None) -> None:
        text = render_mycnf(self.config, self.credentials, peers, start_position)
        write_private(self.config.mycnf, text, 0o640)
        user = self.config.effective_mariadbd_user
        if user and os.geteuid() == 0:
            shutil.chown(self.config.mycnf, "root", user)

    def _start(self, bootstrap: bool, peers: tuple[str, ...], position: Position | None = None) -> None:
        self._prepare_dirs()
        start = None
        if position is not None and position.source == "wsrep-recover" and position.unusable is None:
            start = f"{position.uuid}:{position.seqno}"
            # Else Galera ignores the start position: a join would take a full SST, a bootstrap a new UUID.
            if position.grastate_problem:
                kept = rewrite_grastate(self.config.data_dir, position.uuid, time.strftime("%Y%m%d-%H%M%S"))
                chown_tree(self.config.data_dir / "grastate.dat", self.config.effective_mariadbd_user)
                self._recovered = None
                self._history("repair", f"{position.grastate_problem}: rewrote it from the position InnoDB holds "
                              f"({position.uuid}:{position.seqno})" + (f"; the old file is kept as {kept}" if kept
                                                                       else ""),
                              {"uuid": position.uuid, "seqno": position.seqno, "kept": str(kept) if kept else None})
            elif restore_cluster_uuid(self.config.data_dir, position.uuid):
                log.info("grastate.dat had lost the cluster UUID in the crash; restored %s from InnoDB",
                         position.uuid)
        if bootstrap and (self.config.data_dir / "grastate.dat").exists():
            set_safe_to_bootstrap(self.config.data_dir, True)
        self._write_mycnf(peers, start)
        self._expect_running = True
        self._exit_handled = False
        self._exit_watch.watch(self.process.start(bootstrap))

    def _wait_ready(self, as_root: bool, timeout: float = START_WAIT) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.is_running():
                raise PilotError("mariadbd exited while starting; last lines of "
                                 f"{self.config.error_log}:\n{tail(self.config.error_log, 10)}")
            status = self._query_status(as_root=as_root)
            if status and status.get("wsrep_ready") == "ON":
                return status
            time.sleep(0.05)
        raise PilotError(f"mariadbd did not become ready within {timeout:.0f} s")

    def _initialize(self, decision: Decision, local: LocalState) -> str:
        ttl = max(self.config.timing.bootstrap_lock_ttl, 60.0)
        init = self.dcs.snapshot().initialize
        if init is None:
            if not self.dcs.try_initialize(self.config.name, ttl):
                return "another agent won the race to initialize the cluster; will join it"
        elif init.by != self.config.name:
            return f"{init.by} is initializing the cluster"
        self._history("initialize", "won the atomic create of the initialize key; creating a new cluster")
        try:
            uuid, seqno = self._create_seed(ttl)
        except PilotError as error:
            self._expect_running = False
            self.process.stop(30)
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
        self._history("bootstrap", reason, {"cluster_uuid": uuid, "seqno": seqno})
        self._start(bootstrap=True, peers=())
        return f"initialized cluster {uuid}; bootstrapping it"

    def _create_seed(self, ttl: float) -> tuple[str, int]:
        """install-db, one run with --wsrep-new-cluster to create the accounts, clean shutdown, copy.

        The clean shutdown stores the wsrep position in InnoDB, so joiners that copy the seed join by IST
        (a hand-written grastate.dat on a never-replicated datadir does not work: see galera-notes).
        """
        t0 = time.monotonic()
        self.activity = "initializing a new cluster: mariadb-install-db"
        if self.config.data_dir.exists():
            if any(self.config.data_dir.iterdir()):  # our own interrupted initialization: kept, never deleted
                self._quarantine("a new cluster is initialized here (what an interrupted initialization left)")
            else:
                self.config.data_dir.rmdir()
        self._prepare_dirs()
        self._write_mycnf(())
        self.process.install_db()
        t_install = time.monotonic()
        self.dcs.keep_initialize_lease(self.config.name, ttl)
        self.activity = "initializing a new cluster: creating accounts"
        self.process.start(bootstrap=True)
        self._expect_running = True
        status = self._wait_ready(as_root=True)
        connection = sql.connect_socket(self.config, None, timeout=10)
        try:
            sql.secure_and_create_users(connection, self.credentials)
        finally:
            connection.close()
        uuid = status["wsrep_cluster_state_uuid"]
        t_accounts = time.monotonic()
        self._expect_running = False
        if not self.process.stop(120):
            raise PilotError("mariadbd did not shut down within 120 s after creating the accounts")
        t_stop = time.monotonic()
        self.dcs.keep_initialize_lease(self.config.name, ttl)
        position = datadir_position(self.config.data_dir)
        if position is None or not position.usable or position.uuid != uuid:
            raise PilotError(f"the seed datadir has no clean position after shutdown ({position})")
        self.activity = "initializing a new cluster: copying the seed datadir"
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

    def _form(self, decision: Decision) -> str:
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
        self._history("form", decision.reason, {"members": sorted(seed.formation), "view": seed.view_id})
        self._pc_recovery_started = time.monotonic()
        self._start(bootstrap=False, peers=decision.peers)
        return decision.reason

    def _probe_primary(self, cluster: Cluster) -> str | None:
        """Ask every other roster member's REST API whether it is Primary (its DCS key may have expired)."""
        for name, entry in cluster.roster.items():
            if name == self.config.name or not entry.api_url:
                continue
            try:
                with urllib.request.urlopen(entry.api_url + "/status", timeout=0.5) as response:
                    data = json.loads(response.read())
            except Exception:
                continue
            if data.get("running") and data.get("cluster_status") == "Primary":
                return name
        return None

    def _bootstrap(self, decision: Decision, local: LocalState) -> str:
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
        self._history("bootstrap", again.reason, again.inputs)
        if again.inputs.get("discards") and local.position is not None:
            # A person accepted the loss: the cluster's history goes on from here, and the mark with it.
            self.dcs.reset_high_water(local.position.uuid, local.position.seqno, self.config.name)
        self._start(bootstrap=True, peers=(), position=local.position)
        return again.reason

    def _pc_recover(self, decision: Decision, local: LocalState) -> str:
        """Start towards every other member of the saved view, keeping gvwstate.dat: Galera re-forms the
        component once all of them meet (measured 3.3 s), and nodes behind catch up by IST from it."""
        self._history("pc-recovery", decision.reason, decision.inputs)
        self._pc_recovery_started = time.monotonic()
        self._pc_recovery_position = local.position
        self._start(bootstrap=False, peers=decision.peers, position=local.position)
        return decision.reason

    def _copy_seed(self) -> None:
        seed = self.dcs.snapshot().seed
        if seed is None or not Path(seed.path).is_dir():
            raise PilotError("the seed datadir announced in the DCS is not on this host")
        self.activity = "copying the seed datadir"
        data, user = self.config.data_dir, self.config.effective_mariadbd_user
        if is_mount_point(data):  # its own volume: cannot be renamed, so fill it in place
            if any(entry.name not in (SEED_PARTIAL, "lost+found") for entry in data.iterdir()):
                self._quarantine("not empty when the seed copy was to fill it (an interrupted join?)")
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
                self._quarantine("not empty when the seed copy was to take its place (an interrupted join?)")
            else:
                data.rmdir()
        partial.rename(data)

    def _quarantine(self, reason: str) -> Path:
        """Move the datadir aside (never delete it): the node then takes a full SST into an empty one.
        A mount-point datadir has its contents copied out instead (quarantine.py)."""
        target = move_aside(self.config.data_dir, self.config.base_dir)
        self._recovered = None
        self._history("quarantine", f"datadir moved to {target}: {reason}", {"path": str(target)})
        log.warning("moved the datadir aside to %s: %s", target, reason)
        return target

    def _join(self, decision: Decision, local: LocalState) -> str:
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
            self._quarantine(decision.quarantine)
            local = replace(local, has_data=False, position=None)
        if decision.copy_seed:
            self._copy_seed()
        elif not local.has_data and self.config.sst_method == "mysqldump":
            self._prepare_for_mysqldump_sst()
        self._forget_saved_view()
        self._history("join", decision.reason, {"peers": list(decision.peers)})
        primaries = sorted(self.dcs.snapshot().primary_members, key=lambda m: m.name)
        if primaries:
            self._join_watch = (primaries[0].address, primaries[0].client_port, primaries[0].cluster_size)
        self._start(bootstrap=False, peers=decision.peers, position=local.position)
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
        self._prepare_dirs()
        self._write_mycnf(())
        self.process.install_db()
        self.process.create_local_sst_account(self.credentials)

    # ---- stopping ----------------------------------------------------------------------------------------
    def _raise_high_water_from_datadir(self) -> None:
        """After a clean stop grastate.dat holds the final seqno: the last writes before the stop count."""
        position = datadir_position(self.config.data_dir)
        init = self.dcs.snapshot().initialize
        if position is not None and position.usable and init is not None and position.uuid == init.cluster_uuid:
            self.dcs.raise_high_water(position.uuid, position.seqno, self.config.name)

    def shutdown(self) -> None:
        """Graceful stop: mariadbd flushes and records its seqno; the roster remembers a clean stop."""
        self.activity = "stopping mariadbd"
        # Drain first: give the writer role up so clients move to another node before mariadbd stops.
        self.dcs_watch.stop()
        self.writer.stop()
        self.writer.drop("the agent is stopping")
        with contextlib.suppress(PilotError):
            self.publish()
        self._expect_running = False
        self._exit_watch.cancel()
        stopped = self.process.stop(300)
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
