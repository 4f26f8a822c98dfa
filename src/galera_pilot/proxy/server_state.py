"""The server-state file a new HAProxy worker starts from (pure: text in, text out).

Why it exists: HAProxy starts every server it has not checked yet as UP, and with `fall 2` a server
whose agent is slow or silent stays UP for two check timeouts. In the writer backend that means new
connections reach a node that is *not* the writer for up to ~1 s after every start and every reload:
two writers at once, exactly what the single-writer design exists to prevent (measured: a stand-in
node with a silent agent took every second writer connection for 0.6 s after a start).

HAProxy's own remedy is the server-state file (`server-state-file` + `load-server-state-from-file`),
read by each new worker before it accepts a connection. We write it before every start and reload:

- a server the running worker already judged keeps that judgement (its `show servers state` line), so
  a reload changes nothing for clients;
- every other server starts DOWN, and its first passing check (one `inter`, 200 ms by default) makes it
  UP. A node is never offered before its agent has said yes.

The file's format is HAProxy's `show servers state` version 1. Lines are matched by backend and server
name (ids are written as 0: a reload may renumber servers, and HAProxy only compares ids it was told
are forced). A carried line is kept only while the server's address and ports are unchanged and its
checks had started; a moved server starts DOWN like a new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATE_VERSION = "1"
STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl"
    " srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
FIELD_COUNT = 25
# Values from HAProxy 2.6 (server.h, check.h): op state 0 = STOPPED; check status 1 = INI
# ("initializing": status 0 would leave the server's checks idle, measured); check result 2 = FAILED;
# check state 6 = CONFIGURED|ENABLED, i.e. checks run.
OP_STOPPED = "0"
CHECK_STATUS_UNKNOWN = "0"
CHECK_STATUS_INITIALIZING = "1"
CHECK_RESULT_FAILED = "2"
CHECK_STATE_ENABLED = "6"

_BACKEND_RE = re.compile(r"^backend\s+(\S+)\s*$")
_SERVER_RE = re.compile(r"^\s+server\s+(\S+)\s+(\S+):(\d+)\b.*?\bcheck port (\d+)")


@dataclass(frozen=True)
class ServerLine:
    """One `server` line of a rendered configuration: where HAProxy sends clients and checks."""

    backend: str
    name: str
    address: str
    port: int
    check_port: int


def servers_of(config_text: str) -> list[ServerLine]:
    """Every checked server of every backend, in the order of the configuration text."""
    found: list[ServerLine] = []
    backend: str | None = None
    for line in config_text.splitlines():
        if not line.startswith((" ", "\t")):
            match = _BACKEND_RE.match(line)
            backend = match.group(1) if match else None
            continue
        server = _SERVER_RE.match(line)
        if backend is not None and server is not None:
            name, address, port, check_port = server.groups()
            found.append(ServerLine(backend, name, address, int(port), int(check_port)))
    return found


def _down_line(server: ServerLine) -> list[str]:
    return [
        "0", server.backend, "0", server.name, server.address, OP_STOPPED, "0", "1", "1", "0",
        CHECK_STATUS_INITIALIZING, CHECK_RESULT_FAILED, "0", CHECK_STATE_ENABLED, "0", "0", "0", "-",
        str(server.port), "-", "0", str(server.check_port), "-", "-", "0",
    ]


def _live_lines(dump: str) -> dict[tuple[str, str], list[str]]:
    """The running worker's lines by (backend, server); anything that does not parse is left out."""
    lines: dict[tuple[str, str], list[str]] = {}
    text = dump.splitlines()
    if not text or text[0].strip() != STATE_VERSION:
        return lines
    for line in text[1:]:
        fields = line.split()
        if len(fields) != FIELD_COUNT or line.startswith("#"):
            continue
        lines[(fields[1], fields[3])] = fields
    return lines


def _still_applies(fields: list[str], server: ServerLine) -> bool:
    """Same address and ports, and checks that had started (status 0 would leave them idle)."""
    same_place = (fields[4], fields[18], fields[21]) == (server.address, str(server.port), str(server.check_port))
    return same_place and fields[10] != CHECK_STATUS_UNKNOWN


def render_server_state(config_text: str, live_dump: str | None = None) -> str:
    """The state file for config_text: the running worker's judgement where it still applies, else DOWN.

    live_dump is the running worker's `show servers state` answer (None at a first start, or when the
    worker did not answer: then every server starts DOWN, the safe side).
    """
    live = _live_lines(live_dump) if live_dump else {}
    rows = [STATE_VERSION, STATE_HEADER]
    for server in servers_of(config_text):
        fields = live.get((server.backend, server.name))
        if fields is not None and _still_applies(fields, server):
            carried = list(fields)
            # Ids: matched by name instead (a reload may renumber servers), so none is "forced".
            carried[0] = carried[2] = carried[15] = carried[16] = "0"
            rows.append(" ".join(carried))
        else:
            rows.append(" ".join(_down_line(server)))
    return "\n".join(rows) + "\n"
