"""Observation: what this node's mariadbd and datadir say, gathered into the LocalState `decide()` judges.

The cycle's own look, once a cycle, with the time to run --wsrep-recover when a crashed datadir needs it.
(The fast look behind the routing endpoints, four a second, is `observer.py`'s StatusObserver.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from galera_pilot.agent.decisions import LocalState
from galera_pilot.agent.disk_guard import DiskGuard
from galera_pilot.agent.exits import ExitHandler
from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, MemberRecord
from galera_pilot.agent.write_rate import WriteRate
from galera_pilot.cluster import EMPTY_POSITION, UNKNOWN_UUID, Position
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import PilotError
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.consistency import divergence, lost_vote
from galera_pilot.mariadb.disk import lines_since_last_start
from galera_pilot.mariadb.exit_watch import ExitWatcher
from galera_pilot.mariadb.grastate import datadir_position, has_data
from galera_pilot.mariadb.gvwstate import read_saved_view
from galera_pilot.mariadb.process import MariadbProcess, tail
from galera_pilot.mariadb.version import InstalledVersion

log = logging.getLogger(CYCLE_LOGGER)
# The error log's end read for the last run's inconsistency: a leave and shutdown log a few hundred lines.
RUN_LOG_LINES = 2000


def query_status(config: NodeConfig, credentials: Credentials, as_root: bool = False,
                 with_version: bool = False) -> dict[str, str] | None:
    """mariadbd's wsrep status over its socket (and its `version` when asked), or None when it does not
    answer (yet)."""
    try:
        connection = sql.connect_socket(config, None if as_root else credentials, timeout=2.0)
    except Exception:
        return None
    try:
        status = sql.wsrep_status(connection)
        if with_version:
            status["version"] = sql.server_version(connection)
        return status
    except Exception:
        return None
    finally:
        connection.close()


class PositionReader:
    """The datadir's position: grastate.dat's, or InnoDB's (--wsrep-recover) when grastate.dat cannot
    say, cached while grastate.dat and the redo log are unchanged (a recovery takes seconds)."""

    def __init__(self, config: NodeConfig, process: MariadbProcess, disk: DiskGuard, memory: AgentMemory) -> None:
        self.config = config
        self.process = process
        self.disk = disk
        self.memory = memory
        self._recovered: tuple[tuple[int, int], Position] | None = None

    def forget(self) -> None:
        """The datadir was replaced or grastate.dat rewritten: the cached recovery no longer applies."""
        self._recovered = None

    def read(self, recover: bool = True) -> Position | None:
        position = self.grastate_or_recovered() if recover else datadir_position(self.config.data_dir)
        if position is None:
            return None
        return replace(position, saved_view=read_saved_view(self.config.data_dir))

    def grastate_or_recovered(self) -> Position | None:
        position = datadir_position(self.config.data_dir)
        if position is None or not position.needs_recovery:
            return position
        key = self._recovery_key()
        if self._recovered is not None and self._recovered[0] == key:
            return replace(self._recovered[1], safe_to_bootstrap=position.safe_to_bootstrap)
        self.memory.activity = "recovering the position with --wsrep-recover"
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
        if recovered.unusable is None:
            recovered = self._after_a_lost_vote(recovered)
        self._recovered = (key, recovered)
        return replace(recovered, safe_to_bootstrap=position.safe_to_bootstrap)

    def _after_a_lost_vote(self, recovered: Position) -> Position:
        """The recovered position, unusable when mariadbd's last run lost a consistency vote and an IST
        from it would not apply the failed write again (mariadb/consistency.py)."""
        vote = lost_vote(lines_since_last_start(tail(self.config.error_log, RUN_LOG_LINES)))
        if vote is None:
            return recovered
        why = divergence(vote, recovered.uuid, recovered.seqno)
        if why is None:
            log.info("mariadbd's last run failed seqno %s for lack of space and lost the consistency vote; InnoDB "
                     "holds %d, before it, so an IST applies it again", vote.seqno, recovered.seqno)
            return recovered
        return replace(recovered, unusable=f"{why}; it must neither join by IST nor seed a bootstrap")

    def _recovery_key(self) -> tuple[int, int]:
        stamps = []
        for name in ("grastate.dat", "ib_logfile0"):
            try:
                stamps.append((self.config.data_dir / name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        return (stamps[0], stamps[1])


class NodeObservation:
    """One look at this node per cycle: notices an unexpected exit, publishes the member record's facts
    (kept in `member`), and returns the LocalState that `decide()` judges."""

    def __init__(self, config: NodeConfig, credentials: Credentials, host: str, process: MariadbProcess,
                 memory: AgentMemory, member: MemberRecord, disk: DiskGuard, positions: PositionReader,
                 exits: ExitHandler, exit_watch: ExitWatcher) -> None:
        self.config = config
        self.credentials = credentials
        self.host = host
        self.process = process
        self.memory = memory
        self.member = member
        self.disk = disk
        self.positions = positions
        self.exits = exits
        self.exit_watch = exit_watch
        self.write_rate = WriteRate()
        self.installed = InstalledVersion(config.binaries.mariadbd)
        self._version: tuple[int, str] | None = None  # (pid, version) of the running server, asked once per pid

    def observe(self, now: float, recover: bool = True) -> LocalState:
        """`recover`: run --wsrep-recover when the datadir's position needs it (not while paused)."""
        memory = self.memory
        pid = self.process.pid()
        running = pid is not None
        if memory.expect_running and not running:
            self.exits.on_unexpected_exit(now)
        elif memory.expect_running and pid is not None:
            self.exit_watch.watch(pid)
        ask_version = running and (self._version is None or self._version[0] != pid)
        status = query_status(self.config, self.credentials, with_version=ask_version) if running else None
        if status and "version" in status and pid is not None:
            self._version = (pid, status["version"])
        self.write_rate.add(now, status)
        if status and status.get("wsrep_gcomm_uuid"):
            # Kept across observations that time out (a busy server): fast eviction needs it at the crash.
            memory.gcomm_uuid = status["wsrep_gcomm_uuid"]
        elif not running:
            memory.gcomm_uuid = ""
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
            position = self.positions.read(recover=disk_full is None and recover) if data else EMPTY_POSITION
            disk_full = self.disk.judge(running)  # --wsrep-recover may have failed for lack of space
        if running and memory.pc_recovery_started is not None and cluster_status != "Primary":
            position = memory.pc_recovery_position
        if status and cluster_status == "Primary" and state == "Synced":
            self.exits.note_synced()
        self.exits.check_crash_loop(now)
        member = replace(
            self.member.get(), running=running, state=state, cluster_status=cluster_status,
            cluster_size=int((status or {}).get("wsrep_cluster_size", 0) or 0),
            cluster_uuid=(status or {}).get("wsrep_cluster_state_uuid", ""),
            seqno=int((status or {}).get("wsrep_last_committed", -1) or -1),
            gcomm_uuid=memory.gcomm_uuid,
            position=position, updated_at=time.time(), activity=memory.activity, disk=self.disk.report(),
            recv_queue=int((status or {}).get("wsrep_local_recv_queue", 0) or 0),
            write_rate=round(self.write_rate.per_second(), 1),
            version=self._version[1] if self._version is not None and self._version[0] == pid else "",
            installed_version=self.installed.get(),
        )
        self.member.set(member)
        return LocalState(
            name=self.config.name, host=self.host, running=running, cluster_status=cluster_status,
            state=state, has_data=data, position=position, use_seed=self.config.use_seed,
            crash_loop=self.exits.crash_loop, backoff_remaining=max(0.0, self.exits.retry_at - now),
            no_primary_since=memory.no_primary_since,
            disconnected_for=self._disconnected_for(cluster_status, now),
            not_primary_for=self._not_primary_for(running and bool(status), cluster_status, now),
            pc_recovery_allowed=not memory.pc_recovery_failed,
            pc_recovering_for=self._pc_recovering_for(running, cluster_status, now), disk_full=disk_full,
        )

    def _pc_recovering_for(self, running: bool, cluster_status: str, now: float) -> float:
        if self.memory.pc_recovery_started is None:
            return 0.0
        if cluster_status == "Primary" or not running:
            self.memory.pc_recovery_started = None
            return 0.0
        return now - self.memory.pc_recovery_started

    def _not_primary_for(self, answering: bool, cluster_status: str, now: float) -> float:
        if not answering or cluster_status == "Primary":
            self.memory.not_primary_since = None
            return 0.0
        if self.memory.not_primary_since is None:
            self.memory.not_primary_since = now
        return now - self.memory.not_primary_since

    def _disconnected_for(self, cluster_status: str, now: float) -> float:
        if cluster_status != "Disconnected":
            self.memory.disconnected_since = None
            return 0.0
        if self.memory.disconnected_since is None:
            self.memory.disconnected_since = now
        return now - self.memory.disconnected_since
