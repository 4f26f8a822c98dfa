"""The agent's side of a rolling restart, as pure rules over its restart request and its mariadbd's pid.

The request records the pid the agent stopped. That is what makes the restart safe against an agent
restarted in the middle: a new agent that finds the request STOPPING and the *same* pid running stops it
(the stop never happened); a *different* pid that is Synced means the restart is done. Nothing here
compares clocks.
"""

from __future__ import annotations

from galera_pilot.cluster import FAILED, REQUESTED, STOPPING, RestartRequest


def restart_due(request: RestartRequest | None, pid: int | None, paused: bool) -> bool:
    """Whether this agent must stop its running mariadbd now for a rolling restart."""
    if request is None or paused or pid is None:
        return False
    if request.phase == REQUESTED:
        return True
    return request.phase == STOPPING and request.stopped_pid in (None, pid)


def restart_confirmed(request: RestartRequest | None, pid: int | None, synced: bool) -> bool:
    """Whether the request is carried out: a new mariadbd (not the one stopped) is Synced. A FAILED
    request turns done too, once the node recovered (the driver halted; `restart --resume` goes on),
    unless mariadb-upgrade failed: that is for a person to look at, never retried by itself."""
    return (request is not None and request.phase in (STOPPING, FAILED) and request.stopped_pid is not None
            and pid is not None and pid != request.stopped_pid and synced and not request.upgrade_failed)


def restart_failing(request: RestartRequest | None, pid: int | None) -> bool:
    """Whether a failure now (a start that failed, a crash loop) belongs to the request: the agent stopped
    the old server for it and no new one is confirmed yet."""
    return (request is not None and request.phase == STOPPING and request.stopped_pid is not None
            and pid != request.stopped_pid)
