"""What the agent's rooms share: its memory of its own mariadbd, the member record, the history log.

The cycle (`ha.py`) is carried out by small rooms, each readable on its own: observation, starting
mariadbd, eviction, exits, seed, initialization, bootstrap, join. A few facts are written by one room
and read by another (the starter sets `expect_running`, observation and the exit handler read it), so
they live here, in one place that says who writes what, rather than as attributes reached across rooms.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from galera_pilot.cluster import HistoryEvent, Member, Position
from galera_pilot.dcs.base import DCS

# Every room logs as the cycle did before it was split into rooms: the logger's name is in each log
# line (`%(name)s`), and people filter the agent's log on it.
CYCLE_LOGGER = "galera_pilot.agent.ha"


@dataclass
class AgentMemory:
    """The agent's memory of its own mariadbd between cycles (never persisted: a new agent starts afresh)."""

    # What the agent is doing, in one sentence: published in the member record and shown by /status.
    # Set by the cycle (its sentence), and by long steps while they run (--wsrep-recover, the seed).
    activity: str = "starting agent"
    # True while a mariadbd the agent started (or adopted) should be running: its exit is then a crash.
    # Set by the starter; cleared before every deliberate stop, and by the exit handler.
    expect_running: bool = False
    # The current mariadbd's exit was seen (and its eviction tried); cleared by the starter.
    exit_handled: bool = False
    # The running instance's gcomm UUID (observation), which eviction names once it is dead.
    gcomm_uuid: str = ""
    pc_recovery_started: float | None = None  # when mariadbd was started for pc.recovery
    pc_recovery_failed: bool = False  # until the next Synced: do not try pc.recovery again
    pc_recovery_position: Position | None = None  # published while waiting for pc.recovery
    disconnected_since: float | None = None  # since when mariadbd reports Disconnected (observation)
    not_primary_since: float | None = None  # since when a running mariadbd answers but is not Primary (observation)
    no_primary_since: float | None = None  # since when nobody reports Primary (the cycle)
    # `galera-pilot reinit`: the donor the next start takes its full SST from (never the seed), until Synced.
    sst_donor: str = ""


class MemberRecord:
    """This member's record as last built (observation, publish, the exit handler), behind a lock:
    the REST API and the exit watcher read or replace it from their own threads."""

    def __init__(self, member: Member) -> None:
        self._lock = threading.Lock()
        self._member = member

    def get(self) -> Member:
        with self._lock:
            return self._member

    def set(self, member: Member) -> None:
        with self._lock:
            self._member = member


class History(Protocol):
    """Records one event in the cluster's history in the DCS (what `galera-pilot history` shows)."""

    def __call__(self, action: str, reason: str, inputs: dict | None = None) -> None: ...


class DcsHistory:
    """History events of this node, recorded in the DCS with the wall-clock time (for people to read)."""

    def __init__(self, dcs: DCS, name: str) -> None:
        self._dcs = dcs
        self._name = name

    def __call__(self, action: str, reason: str, inputs: dict | None = None) -> None:
        self._dcs.record_history(HistoryEvent(time.time(), self._name, action, reason, inputs or {}))
