"""Which callbacks a change seen between two cycles calls for (pure: unit-tested over every pair).

The agent looks at its node once a cycle; what it saw last time and what it sees now decide: mariadbd
started or stopped (a stop and start for a rolling restart is one on_restart), the wsrep state, the
writer role, the membership view. A change faster than a cycle is not seen here: Galera's own
notifications (notify.py) still put every step in the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Observed:
    """What one cycle saw of this node."""

    running: bool
    pid: int | None = None
    state: str = "stopped"  # wsrep_local_state_comment while running
    role: str = "reader"  # writer / reader
    view: tuple[str, int] = ("", 0)  # (cluster status, cluster size) while running


@dataclass(frozen=True)
class Event:
    action: str  # one of settings.ACTIONS
    details: dict[str, Any] = field(default_factory=dict)


def transitions(before: Observed | None, after: Observed, restarting: bool) -> list[Event]:
    """The callbacks due from `before` (None: the agent's first look) to `after`. `restarting`: a rolling
    restart of this node is under way, so its stop and start are one on_restart, called once it runs."""
    if before is None:
        return [Event("on_start", {"found_running": True, "pid": after.pid})] if after.running else []
    events: list[Event] = []
    replaced = before.running and after.running and before.pid != after.pid  # a stop and start between looks
    if before.running and (not after.running or replaced) and not restarting:
        events.append(Event("on_stop", {"pid": before.pid}))
    if after.running and (not before.running or replaced):
        events.append(Event("on_restart" if restarting else "on_start", {"pid": after.pid}))
    if before.running and after.running and not replaced:
        if before.state != after.state:
            events.append(Event("on_state_change", {"from": before.state, "to": after.state}))
        if before.view != after.view:
            events.append(Event("on_view_change", {"from": _view(before.view), "to": _view(after.view)}))
    if before.role != after.role:
        events.append(Event("on_role_change", {"from": before.role, "to": after.role}))
    return events


def _view(view: tuple[str, int]) -> dict[str, Any]:
    return {"status": view[0], "size": view[1]}
