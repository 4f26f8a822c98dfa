"""One look at a cluster for the dashboard (thin adapter): the DCS snapshot and every member's /status.

While the DCS answers, its snapshot names the members and where their REST APIs are; while it does not,
the dashboard falls back as `list` does (control/members.py): the members' own /status, at their last
known addresses. Every /status is asked in parallel with a short timeout, so one hung agent delays a
frame by at most that timeout and never stops the others' cards from updating.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from galera_pilot.control.members import ask_members, outage_heading, rows_from_snapshot
from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.dashboard.frame import Observation
from galera_pilot.dashboard.series import Reading
from galera_pilot.errors import PilotError
from galera_pilot.routing.peers import fetch_status

STATUS_TIMEOUT = 1.0


class Collector:
    def __init__(self, target: ClusterTarget) -> None:
        self.target = target
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard-status")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def observe(self) -> Observation:
        at = time.time()
        try:
            snapshot = self.target.snapshot()
        except DCSUnreachable as error:
            view = ask_members(self.target.known)
            return Observation(at=at, rows=view.rows, dcs_error=outage_heading(self.target, str(error), view),
                               statuses=view.statuses,
                               status_errors={n: "its REST API did not answer" for n in view.silent})
        except PilotError as error:  # e.g. the store holds no such cluster (any more)
            return Observation(at=at, rows=[], dcs_error=str(error))
        rows = rows_from_snapshot(self.target, snapshot)
        urls = self._api_urls(snapshot)
        names = [str(row["name"]) for row in rows if urls.get(str(row["name"]))]
        answers = list(self._pool.map(lambda name: fetch_status(urls[name], STATUS_TIMEOUT), names))
        statuses = {name: document for name, (document, _) in zip(names, answers, strict=True) if document}
        errors = {name: why for name, (document, why) in zip(names, answers, strict=True) if document is None}
        return Observation(at=at, rows=rows, snapshot=snapshot, statuses=statuses, status_errors=errors)

    def _api_urls(self, snapshot: Any) -> dict[str, str]:
        """Where each member's REST API is: its own last report, else the roster, else this host's knowledge."""
        urls = {name: known.api_url for name, known in self.target.known.items() if known.api_url}
        urls |= {name: entry.api_url for name, entry in snapshot.roster.items() if entry.api_url}
        urls |= {name: member.api_url for name, member in snapshot.members.items() if member.api_url}
        return urls


def reading(at: float, status: dict[str, Any] | None) -> Reading:
    """What a chart takes from one look at a member (nothing from a member that did not answer or whose
    server is not running: a gap)."""
    if status is None or not status.get("running"):
        return Reading(at, None, None, None)
    wsrep = status.get("wsrep") or {}
    paused = wsrep.get("flow_control_paused_ns")
    seqno = status.get("seqno")
    return Reading(at, int(seqno) if isinstance(seqno, int) and seqno >= 0 else None,
                   int((status.get("routing") or {}).get("recv_queue") or 0),
                   int(paused) if isinstance(paused, int) else None)
