"""Asking test clusters' agents over their REST API (HTTPS: every test cluster runs TLS, and this
process's API client verifies with the session's CA, see conftest.py; a benchmark calls
`ClusterTarget.use_tls()` for its folder instead)."""

from __future__ import annotations

import json

from galera_pilot.tls.http import ApiUnreachable, api


def agent_url(address: str, path: str = "", port: int = 8008) -> str:
    """An agent's REST API URL (every test cluster runs TLS unless a test says --no-tls)."""
    return f"https://{address}:{port}{path}"


def http_status(url: str, method: str = "GET") -> int:
    """The status an agent answers (0 when it does not answer at all)."""
    try:
        return api().request(method, url, timeout=2.0)[0]
    except ApiUnreachable:
        return 0


def http_json(url: str) -> dict:
    status, body = api().request("GET", url, timeout=2.0)
    assert status == 200, f"{url}: HTTP {status}"
    return json.loads(body)
