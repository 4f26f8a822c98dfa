"""When mariadbd exits without being asked to: tell the others at once, evict, and count it.

Two moments: the exit watcher's thread sees the exit the instant it happens (`on_exit_seen`: every
millisecond there stalls the survivors' writes), and the next cycle's observation notices it
(`on_unexpected_exit`: the backoff before the next start, and the crash-loop count that halts the agent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from galera_pilot.agent.cycle_errors import backoff_delay
from galera_pilot.agent.disk_guard import DiskGuard
from galera_pilot.agent.eviction import Eviction
from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History, MemberRecord
from galera_pilot.agent.observer import StatusObserver
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.mariadb.process import gave_up_reaching_peers, tail
from galera_pilot.routing.keeper import WriterKeeper

log = logging.getLogger(CYCLE_LOGGER)

CRASH_LOOP_COUNT = 5
CRASH_LOOP_WINDOW = 300.0
# Backoff cap after mariadbd gave up reaching its peers (a network problem, not a crash).
UNREACHABLE_BACKOFF_MAX = 5.0


class ExitHandler:
    """Handles unexpected exits of mariadbd; keeps the backoff (`retry_at`) and the crash-loop halt."""

    def __init__(self, config: NodeConfig, dcs: DCS, memory: AgentMemory, member: MemberRecord, disk: DiskGuard,
                 eviction: Eviction, observer: StatusObserver, writer: WriterKeeper, wake: threading.Event,
                 history: History, paused: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.dcs = dcs
        self.memory = memory
        self.member = member
        self.disk = disk
        self.eviction = eviction
        self.observer = observer
        self.writer = writer
        self.wake = wake
        self.history = history
        # `galera-pilot pause`: a person works by hand. An exit is reported, but not counted as a crash (a
        # server stopped by hand must not add up to a crash-loop halt), nobody is evicted, the writer role
        # stays where it is (its /writer answers 503 while the server is down).
        self.paused = paused
        self._exits: deque[float] = deque(maxlen=CRASH_LOOP_COUNT)
        self._consecutive_failures = 0
        self.crash_loop: str | None = None
        self.unexpected_exits = 0  # every one since the agent started, for /metrics (alerts: several within minutes)
        self.retry_at = 0.0

    def on_exit_seen(self, pid: int) -> None:
        """The exit watcher's callback, in its thread, the instant mariadbd exits: evict now (each
        millisecond here stalls the survivors' writes), and wake the cycle to do the rest."""
        if self.memory.expect_running:
            log.warning("mariadbd (pid %d) exited%s", pid, " (the cluster is paused)" if self.paused() else
                        " unexpectedly")
            self.observer.mark_stopped()
            self._publish_stopped()
            if not self.paused():
                self.writer.drop("mariadbd exited")
                self.eviction.evict_dead_instance()
        self.wake.set()

    def _publish_stopped(self) -> None:
        """Tell the other agents at once that this node is down, so the writer election does not wait
        for a member whose record still says Synced."""
        member = replace(self.member.get(), running=False, state="stopped", cluster_status="", updated_at=time.time())
        self.member.set(member)
        try:
            self.dcs.publish_member(member, self.config.timing.member_ttl)
        except PilotError as error:
            log.warning("could not publish the exit of mariadbd: %s", error)

    def on_unexpected_exit(self, now: float) -> None:
        memory = self.memory
        memory.expect_running = False
        if self.paused():
            log.info("mariadbd is no longer running (the cluster is paused: not counted as a crash, no action)")
            return
        self.eviction.evict_dead_instance()
        self.unexpected_exits += 1
        if memory.pc_recovery_started is not None:  # pc.recovery did not work out: bootstrap instead
            memory.pc_recovery_failed = True
            memory.pc_recovery_started = None
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
        self.retry_at = now + delay
        self.dcs.release_lease("join", self.config.name)
        log.error("mariadbd exited unexpectedly; last lines of %s:\n%s", self.config.error_log, last_lines)

    def note_synced(self) -> None:
        """Primary and Synced: the backoff starts over at the next exit."""
        self._consecutive_failures = 0

    def check_crash_loop(self, now: float) -> None:
        if (self.crash_loop is None and len(self._exits) == CRASH_LOOP_COUNT
                and now - self._exits[0] < CRASH_LOOP_WINDOW):
            # Sticky until the agent is restarted: a person must look before the server is started again.
            self.crash_loop = (f"it exited {CRASH_LOOP_COUNT} times within {CRASH_LOOP_WINDOW:.0f} s "
                               f"(crash loop); see {self.config.error_log}, then restart this agent")
            self.history("halt", f"crash loop: {self.crash_loop}")
