"""Asking the other agents over their REST API (thin adapter): the writer's failsafe requests.

All peers are asked at once, each with ASK_TIMEOUT for connect and answer, so one hung agent costs a
round no more than that. Any answer but `200 {"granted": true}` is a refusal, and so is silence: the
caller (failsafe.py's rule) keeps the writer role only when nobody refused.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from galera_pilot.routing.failsafe import ASK_TIMEOUT, Peer
from galera_pilot.tls.http import ApiUnreachable, api

_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ask-peer")


def _ask(peer: Peer, body: bytes) -> str:
    """"" when the peer granted; otherwise why not, in a few words."""
    try:
        status, data = api().request("POST", peer.api_url.rstrip("/") + "/failsafe", body=body,
                                     timeout=ASK_TIMEOUT, authorized=True)
    except (ApiUnreachable, ValueError) as error:
        return f"{peer.name} did not answer ({error})"
    try:
        answer = json.loads(data or b"{}")
    except ValueError:
        answer = {}
    if status == 200 and isinstance(answer, dict) and answer.get("granted") is True:
        return ""
    reason = answer.get("reason") if isinstance(answer, dict) else None
    return f"{peer.name} refused ({reason or f'HTTP {status}'})"


def ask_peers_over_http(peers: list[Peer], request: dict[str, object]) -> list[str]:
    """POST request to every peer's /failsafe at once; the refusals (empty when all granted)."""
    body = json.dumps(request).encode()
    return [answer for answer in _executor.map(lambda peer: _ask(peer, body), peers) if answer]


STATUS_TIMEOUT = 1.0


def fetch_status(api_url: str, timeout: float = STATUS_TIMEOUT) -> tuple[dict[str, Any] | None, str]:
    """An agent's `/status`, or (None, why not)."""
    if not api_url:
        return None, "its member record publishes no REST API address"
    try:
        _status, data = api().request("GET", api_url + "/status", timeout=timeout)
        document = json.loads(data)
    except ApiUnreachable as error:
        return None, str(error)
    except ValueError:
        return None, f"{api_url} answered no JSON"
    return (document, "") if isinstance(document, dict) else (None, f"{api_url} answered no JSON object")
