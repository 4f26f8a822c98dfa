"""The agent's REST API: health checks and status, answered from the agent's last observation.

It runs in its own threads and never queries mariadbd itself, so a busy agent loop or a hung server
cannot make a health check hang (HAProxy and the CLI rely on fast answers).
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from galera_pilot.errors import PilotError

if TYPE_CHECKING:
    from galera_pilot.ha import Ha

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("api: " + format, *args)

    def _answer(self, body_wanted: bool) -> None:
        member = self.server.ha.member()
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            healthy = member.running and member.cluster_status == "Primary" and member.state == "Synced"
            code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        elif path in ("/status", "/"):
            code = HTTPStatus.OK
        else:
            code = HTTPStatus.NOT_FOUND
        body = json.dumps(member.to_dict() if code != HTTPStatus.NOT_FOUND else {"error": "not found"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body_wanted:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int, ha: Ha) -> None:
        self.ha = ha
        try:
            super().__init__((address, port), _Handler)
        except OSError as error:
            raise PilotError(f"cannot listen on {address}:{port} for the REST API: {error.strerror}") from None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="rest-api", daemon=True)
        thread.start()
        return thread
