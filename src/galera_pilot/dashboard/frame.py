"""What the web page shows, as one JSON document (a "frame"), built from one observation of the cluster.

Pure: the collector (dashboard/collector.py) fetches, this decides what a card says. The member rows are
those of `galera-pilot list` (control/members.py), so the page and the CLI never disagree about a state
or a role; each agent's /status adds what only it knows live: its queues, flow control, and the verdicts
its /health, /read and /writer endpoints answer with (the same `verdicts` function serves both, so a
card's check is what HAProxy sees).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.dcs.history import NOTIFICATION

HISTORY_LINES = 60
CHECKS = (("health", "health", "health"), ("read", "read", "read_reason"), ("writer", "writer", "writer_reason"))

Row = dict[str, Any]


@dataclass
class Observation:
    """One look at the cluster: the DCS snapshot (None while it is unreachable, with why), `list`'s rows,
    and the /status of every member that answered (errors for those that did not)."""

    at: float
    rows: list[Row]
    snapshot: Cluster | None = None
    dcs_error: str = ""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """What does not change between frames: which cluster, addressed how, where its endpoints are."""

    cluster_name: str
    source: str
    dcs: str
    endpoints: dict[str, str]


def _checks(status: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    if status is None:
        return None
    routing = status.get("routing") or {}
    return {name: {"ok": bool(routing.get(key)), "reason": str(routing.get(reason) or "")}
            for name, key, reason in CHECKS}


def role_of(row: Row, checks: dict[str, dict[str, Any]] | None) -> str:
    """writer / maintenance / arbitrator as `list` says; `reader` for a member whose /read check passes."""
    if row.get("role"):
        return str(row["role"])
    return "reader" if checks is not None and checks["read"]["ok"] else ""


def card(row: Row, status: dict[str, Any] | None, api_error: str, flow_control: float | None) -> dict[str, Any]:
    checks = _checks(status)
    wsrep = (status or {}).get("wsrep") or {}
    routing = (status or {}).get("routing") or {}
    return {
        "name": row["name"], "address": row.get("address", ""), "role": role_of(row, checks),
        "state": row.get("state", ""), "cluster_status": row.get("cluster_status", ""),
        "cluster_size": row.get("cluster_size", 0), "cluster_uuid": row.get("cluster_uuid", ""),
        "seqno": row.get("seqno", -1), "version": row.get("version", ""), "activity": row.get("activity", ""),
        "recv_queue": routing.get("recv_queue") if status is not None else None,
        "send_queue": wsrep.get("send_queue"),
        "flow_control": flow_control,
        "checks": checks,
        "api": "answered" if status is not None else (api_error or "not asked"),
    }


def cluster_uuid(rows: list[Row]) -> str:
    """The UUID most members report (a member left in another cluster must not rename this one)."""
    counted = Counter(str(r.get("cluster_uuid")) for r in rows if r.get("cluster_uuid"))
    return counted.most_common(1)[0][0] if counted else ""


def writer_of(observation: Observation) -> str | None:
    if observation.snapshot is not None:
        return observation.snapshot.writer
    claimed = [r["name"] for r in observation.rows if r.get("role") == "writer"]
    return claimed[0] if len(claimed) == 1 else None  # during an outage: each agent's own view, if they agree


def writer_since(history: list[HistoryEvent], writer: str | None) -> float | None:
    """When the current writer took the role: the newest `writer` event it recorded."""
    if writer is None:
        return None
    return next((e.at for e in reversed(history) if e.action == "writer" and e.member == writer), None)


def latest_history(events: Iterable[HistoryEvent], count: int = HISTORY_LINES) -> list[HistoryEvent]:
    """The newest `count` decisions, newest first; Galera's own notifications (several per restart) would
    push every decision off a short list, so they are left out, as `history` leaves them out by default.
    The page's timeline and the terminal view's lines both come from here."""
    decisions = [event for event in events if event.action != NOTIFICATION]
    return sorted(decisions, key=lambda event: event.at, reverse=True)[:max(0, count)]


def timeline(history: list[HistoryEvent], lines: int = HISTORY_LINES) -> list[dict[str, Any]]:
    """The page's history: `latest_history` as JSON."""
    return [{"at": e.at, "member": e.member, "action": e.action, "reason": e.reason}
            for e in latest_history(history, lines)]


def build_frame(identity: Identity, observation: Observation,
                flow_control: dict[str, float | None] | None = None) -> dict[str, Any]:
    """The page's whole state except the charts (dashboard/series.py); `flow_control`: each member's share
    of the last interval paused, from the series."""
    snapshot = observation.snapshot
    history = list(snapshot.history) if snapshot is not None else []
    writer = writer_of(observation)
    cards = [card(row, observation.statuses.get(row["name"]), observation.status_errors.get(row["name"], ""),
                  (flow_control or {}).get(row["name"]))
             for row in observation.rows]
    return {
        "at": observation.at,
        "cluster": {
            "name": identity.cluster_name, "source": identity.source, "uuid": cluster_uuid(observation.rows),
            "dcs": identity.dcs, "dcs_ok": not observation.dcs_error, "dcs_error": observation.dcs_error,
            "writer": writer, "writer_since": writer_since(history, writer),
            "endpoints": identity.endpoints,
            "synced": sum(1 for c in cards if c["state"] == "Synced"), "members": len(cards),
        },
        "members": cards,
        "history": timeline(history),
    }


def changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Whether a page must be told: anything but the frame's own time differs."""
    if previous is None:
        return True
    return {k: v for k, v in previous.items() if k != "at"} != {k: v for k, v in current.items() if k != "at"}
