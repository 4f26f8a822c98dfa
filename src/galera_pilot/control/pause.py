"""`galera-pilot pause` / `resume`: stop every agent from acting while a person works by hand.

Paused agents keep observing, publishing and answering their REST checks truthfully, but start, stop,
bootstrap and join nothing, and the writer role stays where it is (a writer whose server dies keeps the
lease; its /writer answers 503 and nobody takes over). Each agent confirms in its member record once its
cycle has seen the pause, which is what both verbs wait for.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import datetime

from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.lifecycle import clear_pause, set_pause

CONFIRM_POLL = 0.1


def unconfirmed(snapshot: Cluster, paused: bool) -> list[str]:
    """The live members whose agents have not reported the cluster as `paused` yet."""
    return sorted(name for name, member in snapshot.members.items() if member.paused != paused)


def wait_confirmed(dcs: DCS, paused: bool, timeout: float) -> list[str]:
    """Wait until every live agent reports `paused`; the ones that did not within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        missing = unconfirmed(dcs.routing_view(), paused)  # the members only, not the whole history
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(CONFIRM_POLL)


def pause_cluster(dcs: DCS, timeout: float, say: Callable[[str], None]) -> str:
    snapshot = dcs.snapshot()
    if snapshot.roll is not None:
        say(f"note: rolling restart {snapshot.roll.id} is recorded; paused agents carry out no restart request")
    by = f"{socket.gethostname()}:{os.getpid()}"
    if not set_pause(dcs, by):
        current = dcs.snapshot().pause
        since = datetime.fromtimestamp(current.at).strftime("%Y-%m-%d %H:%M:%S") if current else "?"
        return f"the cluster was already paused (by {current.by if current else '?'} at {since})"
    dcs.record_history(HistoryEvent(time.time(), "galera-pilot", "pause", f"paused by {by}", {}))
    missing = wait_confirmed(dcs, True, timeout)
    names = ", ".join(sorted(snapshot.members)) or "none"
    if missing:
        return (f"paused, but {', '.join(missing)} did not confirm within {timeout:.0f} s (agent busy or cut off from "
                f"the DCS: it takes no action from its next cycle on). Members: {names}")
    return (f"paused: the agents of {names} take no action (no start, stop, bootstrap, join or writer change) "
            "until galera-pilot resume")


def resume_cluster(dcs: DCS, wait: bool, timeout: float) -> str:
    if not clear_pause(dcs):
        return "the cluster was not paused"
    dcs.record_history(HistoryEvent(time.time(), "galera-pilot", "resume",
                                    f"resumed by {socket.gethostname()}:{os.getpid()}", {}))
    if not wait:
        return "resumed: the agents act again from their next cycle"
    missing = wait_confirmed(dcs, False, timeout)
    if missing:
        return f"resumed, but {', '.join(missing)} did not confirm within {timeout:.0f} s"
    return "resumed: every agent acts again"
