"""Calling the agents' REST API, over HTTPS when the cluster has TLS (thin adapter over urllib3).

Every caller in one process (an agent asking its peers, a proxy checking its backends, the CLI) uses
one `ApiClient`: one TLS context, one connection pool. The process's entry point chooses it once
(`use(...)`): an agent and a proxy from their bundle, the CLI from the cluster it addresses.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import urllib3

from galera_pilot.errors import PilotError
from galera_pilot.tls.contexts import use_mysql_context


class ApiUnreachable(PilotError):
    """No HTTP answer: refused, timed out, or the TLS handshake failed (the message says which)."""


class ApiClient:
    def __init__(self, context: ssl.SSLContext | None = None, token: str | None = None) -> None:
        self.tls = context is not None
        self._token = token
        self._pool = urllib3.PoolManager(num_pools=32, maxsize=2, retries=False, ssl_context=context)

    def __repr__(self) -> str:
        return f"ApiClient(tls={self.tls}, token={'set' if self._token else 'none'})"

    def request(self, method: str, url: str, body: bytes | None = None, timeout: float = 1.0,
                authorized: bool = False) -> tuple[int, bytes]:
        """(HTTP status, body). `authorized`: send the API token (state-changing requests)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if authorized and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if url.startswith("https://") and not self.tls:
            raise ApiUnreachable(f"{url} is served over TLS, and this process knows no CA to verify it with "
                                 "(give the cluster's ca.pem: --dir, a node or control configuration)")
        try:
            response = self._pool.request(method, url, body=body, headers=headers, redirect=False,
                                          timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except urllib3.exceptions.SSLError as error:
            raise ApiUnreachable(f"{url}: TLS handshake failed ({_ssl_reason(error)})") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiUnreachable(f"{url} does not answer ({_reason(error)})") from None
        return response.status, response.data

    def clear(self) -> None:
        self._pool.clear()


def _reason(error: Exception) -> str:
    inner: Any = getattr(error, "reason", None) or error
    return type(inner).__name__ if not str(inner) else str(inner).split(": ")[-1][:160]


def _ssl_reason(error: Exception) -> str:
    text = str(error)
    for known in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "IP address mismatch",
                  "Hostname mismatch", "WRONG_VERSION_NUMBER", "wrong version number"):
        if known in text:
            start = text.find(known)
            return text[start:].split("'")[0].split(")")[0][:160]
    return text[:160]


_lock = threading.Lock()
_client = ApiClient()


def use(client: ApiClient) -> None:
    """Make `client` this process's API client (its entry point calls this once)."""
    global _client
    with _lock:
        _client = client


def api() -> ApiClient:
    return _client


def use_for_process(context: ssl.SSLContext | None, token: str | None = None) -> None:
    """This process's REST API client and its TCP connections to mariadbd both verify with `context`
    (None: plaintext again); what every entry point that knows the cluster's CA calls."""
    use(ApiClient(context, token))
    use_mysql_context(context)
