"""The agent's REST API: health checks, routing checks, status and metrics.

It runs in its own threads and never queries mariadbd itself: every answer comes from the status
observer's last look (at most ~0.25 s old) and the writer keeper's lease, so a busy agent loop or a
hung server cannot make a check hang, and HAProxy's checks cost microseconds of judgement.

| path                | 200 when                                                                 |
| /health             | mariadbd answers, Primary and Synced, observation fresh                   |
| /read, /replica     | may serve reads (routing.may_read; `?max_queue=N`)                       |
| /writer             | this node holds the writer lease and is healthy                           |
| /status, /          | always (JSON)                                                             |
| /metrics            | always (Prometheus text format)                                           |
| POST /failsafe      | a peer writer that cannot renew its lease asks us not to take the role    |
| POST /reload        | the node's file was re-read (`galera-pilot reload`); 400 names the error  |
| POST /settings/check| always: proposed settings judged against this server (`edit-config`)     |

HEAD and OPTIONS return the status code without a body (HAProxy checks with OPTIONS).

With TLS (the default) the API speaks HTTPS only. Reads stay open to anyone who can reach it (they are
what HAProxy and monitoring poll); every state-changing request must present a client certificate that
the node CA signed (the agents do) or the bundle's API token as `Authorization: Bearer`, compared in
constant time. The handshake runs in the connection's worker thread under the request timeout: wrapping
the listening socket instead let one idle connection hang the whole API (measured).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

from galera_pilot.agent.metrics import agent_registry, render_metrics
from galera_pilot.agent.settings_keeper import check as check_settings
from galera_pilot.agent.verdicts import verdicts
from galera_pilot.errors import PilotError
from galera_pilot.routing.health import parse_max_queue

if TYPE_CHECKING:
    from galera_pilot.agent.ha import Ha

log = logging.getLogger(__name__)
MAX_POST = 65536
# Requests are served by a few kept threads, one answer per connection: a thread started per request
# was most of an idle agent's CPU (HAProxy checks every agent ten times a second; measured 0.47 against
# 0.18 ms of CPU per check with kept threads, bench/footprint.py). Closing after each answer, and a
# short socket timeout, keep an idle or slow client from holding a thread for long.
API_THREADS = 8
REQUEST_TIMEOUT = 2.0


def status_document(ha: Ha) -> dict[str, Any]:
    member = ha.member().to_dict()
    judged = verdicts(ha)
    live = ha.observer.latest()
    member["routing"] = {
        "healthy": judged["health"].ok, "health": judged["health"].reason,
        "read": judged["read"].ok, "read_reason": judged["read"].reason,
        "writer": judged["writer"].ok, "writer_reason": judged["writer"].reason,
        "writer_holder": ha.writer.holder, "maintenance": ha.writer.maintenance,
        "priority": ha.config.priority,
        "observed_ago": round(live.age(time.monotonic()), 3) if live.at else None,
        "recv_queue": int(live.number("wsrep_local_recv_queue")),
    }
    # What the dashboard charts (dashboard/series.py): counters and queues of the observer's last look.
    member["wsrep"] = {"send_queue": int(live.number("wsrep_local_send_queue")),
                       "flow_control_paused_ns": int(live.number("wsrep_flow_control_paused_ns"))} if live.at else {}
    member["routing"]["writer_failsafe"] = ha.writer.failsafe_state
    keeper = ha.writer
    member["routing"]["writer_keeper_ago"] = (round(time.monotonic() - keeper.last_tick_at, 3)
                                              if keeper.last_tick_at else None)
    member["routing"]["writer_error"] = keeper.last_error
    member["clock"] = {"skew": None if keeper.clock_skew is None else round(keeper.clock_skew, 3),
                       "offsets": {n: round(o, 3) for n, o in keeper.changes.offsets(keeper.name).items()},
                       "warning": keeper.skew_warning}
    member["dcs_watch"] = {"changes_seen": ha.dcs_watch.changes_seen}
    # Where the others were at the last look: an operator's `list` during a DCS outage learns the rest of
    # the cluster from any one member it can reach (control/members.py).
    view = keeper.last_view
    member["peers"] = {name: {"api_url": m.api_url, "address": m.address, "client_port": m.client_port}
                       for name, m in sorted(view.members.items()) if name != ha.config.name} if view else {}
    member["disk"] = ha.disk.report()  # the agent's last measurement (every cycle), never measured here
    member["disk_full"] = ha.disk.refusal
    member["cycle_errors"] = {"total": ha.cycle_errors.total, "consecutive": ha.cycle_errors.consecutive}
    member["tls"] = ha.tls.report() if ha.tls is not None else {"enabled": False}
    member["backup"] = ha.backups.report()
    return member


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        log.debug("api: " + format, *args)

    def _send(self, code: int, body: bytes, content_type: str, body_wanted: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        # HEAD announces the length of the body it leaves out; OPTIONS has no body at all.
        self.send_header("Content-Length", "0" if self.command == "OPTIONS" else str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if body_wanted:
            self.wfile.write(body)

    def _answer(self, body_wanted: bool) -> None:
        ha = self.server.ha
        path, _, query = self.path.partition("?")
        path = path.rstrip("/") or "/"
        if path == "/metrics":
            body, content_type = render_metrics(self.server.registry)
            self._send(HTTPStatus.OK, body, content_type, body_wanted)
            return
        checks = {"/health": "health", "/read": "read", "/replica": "read", "/writer": "writer"}
        if path in checks:
            verdict = verdicts(ha, parse_max_queue(query))[checks[path]]
            code = HTTPStatus.OK if verdict.ok else HTTPStatus.SERVICE_UNAVAILABLE
            if not body_wanted:  # HEAD / OPTIONS: what an HAProxy check costs, nothing more
                self._send(code, b"", "application/json", False)
                return
            document = status_document(ha)
            document["reason"] = verdict.reason
        elif path in ("/status", "/"):
            code, document = HTTPStatus.OK, status_document(ha)
        else:
            code, document = HTTPStatus.NOT_FOUND, {"error": "not found"}
        self._send(code, json.dumps(document).encode(), "application/json", body_wanted)

    def do_GET(self) -> None:
        self._answer(True)

    def _authorized(self) -> bool:
        """A state change: a client certificate the node CA signed (verified in the handshake), or the token."""
        if not self.server.tls:
            return True  # a --no-tls cluster: said at `up` and in docs/security.md
        if isinstance(self.connection, ssl.SSLSocket) and self.connection.getpeercert():
            return True
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        token = self.server.token
        if not token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode(), token.encode())

    def do_POST(self) -> None:
        """`/failsafe` (failsafe.py): {"writer": NAME, "ttl": SECONDS} -> 200 granted / 409 refused;
        `/reload`; `/settings/check` {"mariadb": {...}, "galera": {...}} -> the server's judgement."""
        path = self.path.partition("?")[0].rstrip("/")
        document: dict[str, object]
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not self._authorized():
            code, document = HTTPStatus.UNAUTHORIZED, {"error": "a client certificate from the node CA or the "
                                                       "API token (Authorization: Bearer) is required"}
            log.warning("refused an unauthenticated %s %s from %s", self.command, path, self.client_address[0])
        elif path not in ("/failsafe", "/reload", "/settings/check"):
            code, document = HTTPStatus.NOT_FOUND, {"error": "not found"}
        elif not 0 <= length <= MAX_POST:
            code, document = HTTPStatus.BAD_REQUEST, {"error": f"a body of at most {MAX_POST} bytes is expected"}
        else:
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                request = None
            if not isinstance(request, dict):
                code, document = HTTPStatus.BAD_REQUEST, {"error": "the body must be a JSON object"}
            elif path != "/failsafe":
                code, document = settings_request(self.server.ha, path, request)
            else:
                verdict = self.server.ha.writer.grant_failsafe(request.get("writer"), request.get("ttl"))
                code = HTTPStatus.OK if verdict.ok else HTTPStatus.CONFLICT
                document = {"granted": verdict.ok, "reason": verdict.reason}
                log.log(logging.DEBUG if verdict.ok else logging.INFO, "failsafe request from %s: %s",
                        request.get("writer"), verdict.reason)
        if code in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.UNAUTHORIZED):
            self.close_connection = True  # the body may not have been read
        self._send(code, json.dumps(document).encode(), "application/json", True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def do_OPTIONS(self) -> None:
        self._answer(False)


def settings_request(ha: Ha, path: str, request: dict[str, Any]) -> tuple[HTTPStatus, dict[str, object]]:
    """`/reload` and `/settings/check` (agent/settings_keeper.py)."""
    try:
        if path == "/reload":
            return HTTPStatus.OK, {"reloaded": True, "changed": ha.reload_config()}
        proposed = [request.get("mariadb") or {}, request.get("galera") or {}]
        if not all(isinstance(p, dict) and all(isinstance(v, str) for v in p.values()) for p in proposed):
            return HTTPStatus.BAD_REQUEST, {"error": "mariadb and galera must map names to strings"}
        judged = check_settings(ha.config, ha.credentials, proposed[0], proposed[1])
        return HTTPStatus.OK, {"errors": list(judged.errors), "at_once": list(judged.at_once),
                               "restart": list(judged.restart)}
    except PilotError as error:
        return HTTPStatus.BAD_REQUEST, {"error": str(error)}


class ApiServer(HTTPServer):
    allow_reuse_address = True
    # A burst of connections (several HAProxies' checks, a monitoring scrape) must not overflow the
    # listen queue: the default 5 dropped one of 7 simultaneous connects, which the client retried 1 s later.
    request_queue_size = 64

    def __init__(self, address: str, port: int, ha: Ha, tls: ssl.SSLContext | None = None,
                 token: str | None = None) -> None:
        self.ha = ha
        self.tls = tls
        self.token = token
        self.registry = agent_registry(ha)
        self._workers = ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="rest-api-worker")
        # connection -> when it must be done: the socket timeout bounds each read, not a whole request
        self._deadlines: dict[Any, float] = {}
        self._deadlines_lock = threading.Lock()
        try:
            super().__init__((address, port), _Handler)
        except OSError as error:
            self._workers.shutdown(wait=False)
            raise PilotError(f"cannot listen on {address}:{port} for the REST API: {error.strerror}") from None

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],  # type: ignore[override]
                        client_address: Any) -> None:
        self._workers.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                request.settimeout(REQUEST_TIMEOUT)
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    # A plaintext client, a wrong CA, a scanner: its problem, logged quietly.
                    log.debug("api: TLS handshake with %s failed: %s", client_address[0], error)
                    return
            with self._deadlines_lock:
                self._deadlines[request] = time.monotonic() + REQUEST_TIMEOUT
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._deadlines_lock:  # before it is closed: service_actions never shuts a reused fd
                self._deadlines.pop(request, None)
            self.shutdown_request(request)

    def service_actions(self) -> None:
        """Cut connections still unanswered at their deadline (serve_forever calls this every poll)."""
        now = time.monotonic()
        with self._deadlines_lock:
            for connection, deadline in self._deadlines.items():
                if deadline <= now:
                    with contextlib.suppress(OSError):  # the plain socket's shutdown, even under TLS
                        socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-answer (a reset, a TLS EOF) is its own business: one debug line, no
        traceback; anything else is a bug and keeps its traceback in the log."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # ssl.SSLError and ConnectionError are OSErrors
            log.debug("api: connection from %s ended: %s", client_address[0], error)
            return
        log.exception("api: unexpected error serving %s", client_address[0])

    def server_close(self) -> None:
        super().server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="rest-api", daemon=True)
        thread.start()
        return thread
