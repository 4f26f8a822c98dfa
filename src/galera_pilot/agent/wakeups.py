"""Which DCS changes should wake which loop: pure logic over the changes a watch reports.

An agent's HA cycle runs every loop_wait (1 s) when calm and its writer keeper every WRITER_TICK; a watch
lets both run at once when something they act on changes: the bootstrap lock is freed, a peer becomes
Synced, the writer key goes away. Most changes are noise for this purpose, and waking on them would
burn CPU or, worse, feed back into a busy loop: a member republishes its record every cycle with a new
`updated_at`, its live `seqno` moves with every write, its `activity` sentence changes while it works,
and every lease renewal rewrites its key with a new `at`. So a record wakes only when it changes beyond
those fields, and the agent's own member record and the history never do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from galera_pilot.dcs.base import RESYNC, Change

# Fields that change without anything happening that another loop must act on.
# The write rate and the receive queue move with the load, like seqno (a rolling restart reads them; no
# loop acts on them the moment they change).
VOLATILE_FIELDS = frozenset({"updated_at", "seqno", "activity", "at", "write_rate", "recv_queue"})
# Keys only the writer election reads; members concern both loops; everything else the HA cycle.
WRITER_KEYS = ("writer", "switchover")
WRITER_PREFIXES = ("maintenance/",)


@dataclass(frozen=True)
class Wake:
    cycle: bool = False  # run the HA cycle now
    writer: bool = False  # run the writer keeper's tick now

    def __or__(self, other: Wake) -> Wake:
        return Wake(self.cycle or other.cycle, self.writer or other.writer)


def essentials(value: str | None) -> Any:
    """What a record says, without its volatile fields; None for a deleted record."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in VOLATILE_FIELDS}
    return data


def concerns(key: str) -> Wake:
    """Which loops act on this key."""
    if key == "high_water":
        return Wake()  # raised with every write a member commits; read by recoveries, which poll anyway
    if key.startswith("members/"):
        return Wake(cycle=True, writer=True)
    if key in WRITER_KEYS or key.startswith(WRITER_PREFIXES):
        return Wake(writer=True)
    return Wake(cycle=True)  # initialize, bootstrap, join, seed, roster, force_bootstrap


class WakeFilter:
    """Remembers what every key last said, to tell news from heartbeats and renewals."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._last: dict[str, Any] = {}

    def judge(self, changes: list[Change]) -> Wake:
        wake = Wake()
        for change in changes:
            wake = wake | self._judge_one(change)
        return wake

    def _judge_one(self, change: Change) -> Wake:
        key = change.key
        if key == RESYNC:  # the watch lost track: anything may have changed
            self._last.clear()
            return Wake(cycle=True, writer=True)
        if key.startswith("history/") or key == f"members/{self.me}":
            return Wake()
        said = essentials(change.value)
        if key in self._last and self._last[key] == said:
            return Wake()
        if said is None:
            self._last.pop(key, None)
        else:
            self._last[key] = said
        return concerns(key)
