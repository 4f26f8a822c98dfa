"""The dashboard's HTTP side: the page, its JSON state, and a server-sent event stream.

| path           | what                                                                          |
| /              | the page (static/index.html; its script and style under /static/)              |
| /api/state     | the latest frame and the charts' whole window (JSON)                           |
| /events        | server-sent events: `state` at once, then `update` after every look             |

Read-only: no request changes anything in the cluster. Bound to a loopback address it is open to this
machine's users, as `list` is; bound elsewhere it is served over HTTPS and every request must carry the
REST API's token, as `Authorization: Bearer TOKEN` or as the password of HTTP basic authentication (what
a browser prompts for). One thread per connection: an event stream holds its thread while the page is
open, and a dashboard has a handful of viewers, not HAProxy's ten checks a second.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import ssl
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from galera_pilot.dashboard.hub import Hub
from galera_pilot.errors import PilotError

log = logging.getLogger(__name__)

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
KEEPALIVE = 15.0  # seconds between comments on an idle stream (proxies drop silent connections)
MAX_STREAMS = 32
HANDSHAKE_TIMEOUT = 10.0


def static_file(name: str) -> bytes:
    return resources.files("galera_pilot.dashboard").joinpath("static", name).read_bytes()


def authorized(header: str, token: str | None) -> bool:
    """No token: open (loopback). Else `Bearer TOKEN`, or basic authentication with TOKEN as password."""
    if token is None:
        return True
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"
    timeout = 60.0  # an idle kept-alive connection gives its thread back after a minute

    def log_message(self, format: str, *args: object) -> None:
        log.debug("dashboard: " + format, *args)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not authorized(self.headers.get("Authorization", ""), self.server.token):
            self._send(HTTPStatus.UNAUTHORIZED, b'{"error": "the REST API token is required"}\n',
                       "application/json", {"WWW-Authenticate": 'Basic realm="galera-pilot dashboard"'})
            return
        path = self.path.partition("?")[0]
        if path in STATIC:
            name, content_type = STATIC[path]
            self._send(HTTPStatus.OK, static_file(name), content_type)
        elif path == "/api/state":
            self._send(HTTPStatus.OK, json.dumps(self._state()).encode(), "application/json")
        elif path == "/events" and self.command == "GET":
            self._stream()
        else:
            self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}\n', "application/json")

    def _state(self) -> dict[str, Any]:
        frame, _, _ = self.server.hub.state()
        series, _ = self.server.hub.samples_since(0.0)
        return {"frame": frame, "series": series, "window": self.server.hub.series.window}

    def _stream(self) -> None:
        hub = self.server.hub
        if hub.watchers >= MAX_STREAMS:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b'{"error": "too many pages are open"}\n', "application/json")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        hub.watching(+1)
        try:
            frame, frame_version, look = hub.state()
            series, sampled_at = hub.samples_since(0.0)
            self._event("state", {"frame": frame, "series": series, "window": hub.series.window})
            quiet_since = time.monotonic()
            while not hub.stopping:
                newest = hub.wait_look(look, KEEPALIVE)
                if newest == look:
                    if time.monotonic() - quiet_since >= KEEPALIVE:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        quiet_since = time.monotonic()
                    continue
                look = newest
                frame, version, _ = hub.state()
                series, newest_at = hub.samples_since(sampled_at)
                update: dict[str, Any] = {"series": series}
                if version != frame_version:
                    update["frame"], frame_version = frame, version
                else:
                    update["at"] = frame["at"] if frame else None
                sampled_at = newest_at
                self._event("update", update)
                quiet_since = time.monotonic()
        except OSError:  # the page was closed or reloaded
            pass
        finally:
            hub.watching(-1)

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())
        self.wfile.flush()


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: Hub, tls: ssl.SSLContext | None = None,
                 token: str | None = None) -> None:
        self.hub = hub
        self.tls = tls
        self.token = token
        try:
            super().__init__(address, _Handler)
        except OSError as error:
            raise PilotError(f"the dashboard cannot listen on {address[0]}:{address[1]}: {error.strerror}") from None

    def get_request(self) -> tuple[Any, Any]:
        connection, client = super().get_request()
        if self.tls is not None:  # the handshake happens in the connection's own thread (finish_request)
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, client

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_TIMEOUT)  # a silent client must not hold a thread for ever
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as error:
                log.debug("dashboard: TLS handshake with %s failed: %s", client_address[0], error)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("dashboard: connection from %s ended with an error", client_address[0], exc_info=True)
