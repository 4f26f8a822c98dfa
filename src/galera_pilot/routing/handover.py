"""`galera-pilot switchover` (and the maintenance command's check): refuse at once what cannot work, and
report a failed handover as soon as the old writer took the role back.

Before writing the request, the target's agent is asked for its `/status`: it must answer, be healthy
and out of maintenance, its writer election must have read the DCS within KEEPER_STALE (by its own
clock), and it must see the same writer. A target that fails any of these would let the writer give
the role up for nobody, so the request is refused with the reason instead. The check compares no
times between hosts: ages are measured by the agent on its own monotonic clock.

Once the request is written, the writer gives the role up and the target takes it, normally within
a few hundred milliseconds. If nobody took it within `writer.HANDBACK_AFTER` (by the old writer's
clock), the old writer takes it back and marks the request failed with the reason, which ends the
wait here at once.
"""

from __future__ import annotations

import time
from typing import Any

from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.routing.peers import STATUS_TIMEOUT, fetch_status
from galera_pilot.tls.http import ApiUnreachable, api

KEEPER_STALE = 1.0  # s: a writer election that has not read the DCS for longer cannot take the role now


def keeper_refusal(document: dict[str, Any]) -> str:
    """Why this agent's writer election cannot act on a request now ("" if it can)."""
    routing = document.get("routing") or {}
    ago = routing.get("writer_keeper_ago")
    if not isinstance(ago, int | float) or ago > KEEPER_STALE:
        error = routing.get("writer_error")
        since = "never" if ago is None else f"not for {ago:.1f} s"
        return f"its agent has read the DCS {since}" + (f" (last error: {error})" if error else "")
    return ""


def target_refusal(document: dict[str, Any] | None, error: str, holder: str) -> str:
    """Why the member whose `/status` this is cannot take the writer role from `holder` now ("" if it can)."""
    if document is None:
        return f"its agent does not answer: {error}"
    routing = document.get("routing") or {}
    if not routing.get("healthy"):
        return f"it is not healthy ({routing.get('health', 'unknown')})"
    if routing.get("maintenance"):
        return "it is in maintenance"
    stale = keeper_refusal(document)
    if stale:
        return stale
    seen = routing.get("writer_holder")
    if seen != holder:
        return f"it sees {seen or 'no writer'} as the writer, not {holder}"
    return ""


def run_switchover(dcs: DCS, target: str | None, timeout: float) -> str:
    """Request the switchover and wait for its outcome; the sentence to print, or PilotError."""
    snapshot = dcs.snapshot()
    holder = snapshot.writer
    if holder is None:
        raise PilotError("no member holds the writer role now; nothing to switch over")
    eligible = sorted(n for n, m in snapshot.members.items()
                      if m.is_synced and n != holder and n not in snapshot.maintenance)
    if target is not None:
        if target == holder:
            raise PilotError(f"{target} already is the writer")
        if target not in eligible:
            raise PilotError(f"{target} cannot take the writer role: it is not a Synced member out of "
                             f"maintenance (candidates: {', '.join(eligible) or 'none'})")
    elif not eligible:
        raise PilotError(f"no other Synced member can take the writer role from {holder}")
    refusals = {}
    for name in [target] if target is not None else eligible:
        refusals[name] = target_refusal(*fetch_status(snapshot.members[name].api_url), holder)
    if all(refusals.values()):
        reasons = "; ".join(f"{name}: {why}" for name, why in refusals.items())
        raise PilotError(f"switchover refused, the writer stays {holder}: no member can take the role now ({reasons})")
    if not dcs.request_switchover(holder, target, ttl=max(timeout, 5.0)):
        raise PilotError("another switchover is pending")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        view = dcs.routing_view()
        writer = view.writer
        if writer is not None and writer != holder and (target is None or writer == target):
            return f"writer moved from {holder} to {writer} in {time.monotonic() - started:.2f} s"
        if view.switchover is not None and view.switchover.failed:
            dcs.clear_switchover()
            raise PilotError(f"switchover failed after {time.monotonic() - started:.2f} s: {view.switchover.failed}; "
                             f"{holder} took the writer role back")
        time.sleep(0.05)
    dcs.clear_switchover()
    raise PilotError(f"the writer did not move from {holder} within {timeout:.0f} s")


def endpoint_code(api_url: str, path: str) -> int:
    """What the agent at `api_url` answers on a routing endpoint (as HAProxy asks: OPTIONS); 0 when it
    does not answer."""
    try:
        return api().request("OPTIONS", api_url + path, timeout=STATUS_TIMEOUT)[0]
    except ApiUnreachable:
        return 0


def wait_drained(api_url: str, timeout: float, poll: float = 0.05) -> float:
    """Seconds until the agent at `api_url` answers neither /read nor /writer with 200 (an agent that does
    not answer counts as drained: HAProxy's checks fail too); PilotError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if endpoint_code(api_url, "/read") != 200 and endpoint_code(api_url, "/writer") != 200:
            return time.monotonic() - started
        time.sleep(poll)
    raise PilotError(f"{api_url} still answers 200 on /read or /writer after {timeout:.0f} s")
