"""Render HAProxy's configuration for the cluster's writer and reader endpoints (pure: text in, text out).

Clients connect to two TCP endpoints: the *writer* reaches the one node whose agent answers `/writer`
with 200, the *reader* any node whose agent answers `/read` with 200. HAProxy learns both from HTTP
health checks against each node's agent (`check port <api port>`), not from MariaDB itself: the agent
is the one place that judges a node (Synced, Primary, the cluster's chosen writer), and HAProxy only
follows that judgement quickly.

Every backend lists *all* members, healthy or not; health decides routing. So the text changes only
when the membership changes, never when a node's health does, and a reload (which costs a re-exec of
HAProxy's master) happens only then. Backends are sorted by name so the same membership always renders
byte-for-byte the same text, and the manager can compare texts to decide whether to reload.

Check timings (the defaults; see `ProxySettings` and docs/proxy.md for the arithmetic):

- `inter 200ms`: an UP server is asked every 200 ms, so a writer that stops being the writer is noticed
  within ~200 ms.
- `fall 2` with `fastinter 100ms`: one failed answer puts the server in a transition state and the
  next check follows 100 ms later; only the second failure marks it DOWN. A single slow or lost answer
  (a busy agent, a dropped packet) must not cut every writer session, which `shutdown-sessions` would
  do; the price is one `fastinter` (100 ms).
- `downinter 200ms` (= inter): in the writer backend every node but one is DOWN *by design*, so the
  interval for DOWN servers is what bounds how fast the new writer is picked up. A slower downinter
  (HAProxy's usual trick to spare dead servers) would directly delay every writer change.
- `rise 1`: the first 200 from the new writer makes it UP; waiting for a second one would only add
  a downinter to every failover, and the agent's answer is already a considered judgement.
- `timeout check 400ms` (2 x inter): HAProxy connects within min(timeout connect, inter) and then
  waits `timeout check` for the answer, so an agent that is merely slow for a moment is not taken as
  a failure, while a dead node (connection refused / no SYN-ACK) is still detected in one inter.
- `on-marked-down shutdown-sessions`: connections still open to a node that is no longer the writer
  are closed at once, so clients reconnect (to the new writer) instead of writing to the old one.

So new writer connections reach only the new writer ~300 ms (inter + fastinter) after the flip. Each
check is one small HTTP request: per node, 2 backends x 5 per second = 10 requests/s, negligible.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# HAProxy server names allow letters, digits and "-_.:"; member names are stricter anyway
# (config.NAME_PATTERN). Checked here because names come from the DCS and end up in the config text:
# a newline in a name must never become a configuration line.
SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes including the final NUL

PID_FILE = "haproxy.pid"
SERVER_STATE_FILE = "server-state"  # written before every start and reload: proxy/server_state.py
ADMIN_SOCKET = "admin.sock"


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _check_host(host: str, what: str) -> str:
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME_RE.fullmatch(host):
            raise ValueError(f"{_prefix(what)}{host!r} is neither an IPv4 address nor a host name") from None
        return host
    if parsed.version == 6:
        raise ValueError(f"{_prefix(what)}IPv6 addresses are not supported yet ({host!r})")
    return host


def parse_bind(value: str, what: str = "") -> tuple[str, int]:
    """Split "address:port" into its parts; "*:port" or ":port" mean every local address.

    Returned as ("", port) for every address, which is how HAProxy writes it too (`bind :3306`).
    `what` prefixes error messages (a field name) where the caller does not name the field itself.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{_prefix(what)}{value!r} must look like ADDRESS:PORT, e.g. 127.0.0.1:3306")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{_prefix(what)}port {port} is out of range 1-65535")
    if host in ("", "*", "0.0.0.0"):
        return "", port
    return _check_host(host, what), port


def is_loopback(host: str) -> bool:
    """Whether a bind's host (parse_bind's: "" is every address) reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ProxyBackend:
    """One cluster member as HAProxy sees it: where clients go, and where its agent answers checks."""

    name: str
    address: str
    client_port: int = 3306
    api_port: int = 8008
    api_tls: bool = True  # its agent answers over HTTPS (False: a plaintext agent, as while `tls enable` runs)

    def __post_init__(self) -> None:
        if not SERVER_NAME_RE.fullmatch(self.name):
            raise ValueError(f"member name {self.name!r} cannot be used as an HAProxy server name")
        _check_host(self.address, f"member {self.name}")
        for label, port in (("client_port", self.client_port), ("api_port", self.api_port)):
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"member {self.name}: {label} {port!r} is not a TCP port")


@dataclass(frozen=True)
class ProxySettings:
    """The endpoints and check timings; None for a derived timing means "from check_interval_ms"."""

    writer_bind: str = "127.0.0.1:3306"
    reader_bind: str = "127.0.0.1:3307"
    check_interval_ms: int = 200
    check_fastinter_ms: int | None = None  # default: half of check_interval_ms
    check_downinter_ms: int | None = None  # default: check_interval_ms (see the module docstring)
    check_timeout_ms: int | None = None  # default: twice check_interval_ms
    rise: int = 1
    fall: int = 2
    connect_timeout_ms: int = 1000
    # Database sessions sit idle for long stretches (connection pools); MariaDB's own wait_timeout
    # default is 8 h, so HAProxy should not cut an idle session earlier than the server would.
    session_timeout_s: int = 28800
    # How long an old worker may keep serving its established connections after a reload; None keeps
    # them until they end by themselves (or the session timeout), which is what a database client wants.
    hard_stop_after_s: int | None = None
    # Worker threads; None: HAProxy's default, one per CPU. On a machine shared with the database and
    # its clients, fewer threads can mean less contention (docs/benchmarks.md).
    nbthread: int | None = None
    # Checks over HTTPS (a TLS cluster): the node CA that must have signed each agent's certificate, and
    # the proxy's own certificate + key (one PEM) that it presents, both paths.
    check_ca_file: str | None = None
    check_cert_file: str | None = None

    def __post_init__(self) -> None:
        writer = parse_bind(self.writer_bind, "writer_bind")
        reader = parse_bind(self.reader_bind, "reader_bind")
        if writer == reader:
            raise ValueError(f"writer_bind and reader_bind are both {self.writer_bind!r}; they must differ")
        for label in ("check_interval_ms", "rise", "fall", "connect_timeout_ms", "session_timeout_s"):
            if getattr(self, label) < 1:
                raise ValueError(f"{label} must be at least 1")
        for label in ("check_fastinter_ms", "check_downinter_ms", "check_timeout_ms", "hard_stop_after_s",
                      "nbthread"):
            value = getattr(self, label)
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1")

    @property
    def fastinter_ms(self) -> int:
        return self.check_fastinter_ms or max(10, self.check_interval_ms // 2)

    @property
    def downinter_ms(self) -> int:
        return self.check_downinter_ms or self.check_interval_ms

    @property
    def timeout_check_ms(self) -> int:
        return self.check_timeout_ms or 2 * self.check_interval_ms

    @property
    def bind_addresses(self) -> tuple[tuple[str, int], tuple[str, int]]:
        """(host, port) of the writer and the reader endpoint; host "" means every address."""
        return parse_bind(self.writer_bind), parse_bind(self.reader_bind)


def _bind_text(host: str, port: int) -> str:
    return f"{host}:{port}" if host else f":{port}"


def check_run_dir(run_dir: Path) -> None:
    """HAProxy's config takes the path unquoted, and its sockets must fit a unix socket address."""
    text = str(run_dir)
    if not run_dir.is_absolute():
        raise ValueError(f"run_dir must be an absolute path, got {text!r}")
    if re.search(r"[\s\"'#\\]", text):
        raise ValueError(f"run_dir {text!r} contains a space, quote, '#' or backslash; HAProxy cannot take it")
    if len(str(run_dir / ADMIN_SOCKET)) > UNIX_PATH_MAX:
        raise ValueError(f"run_dir {text!r} is too long for a unix socket path (at most {UNIX_PATH_MAX} bytes)")


def _backend(name: str, uri: str, balance: str | None, backends: list[ProxyBackend],
             settings: ProxySettings) -> list[str]:
    lines = [f"backend {name}"]
    if balance:
        lines.append(f"    balance {balance}")
    lines += [
        "    option httpchk",
        f"    http-check send meth OPTIONS uri {uri}",
        "    http-check expect status 200",
    ]
    # check-ssl applies to the checks only: MySQL sessions pass through untouched (their own TLS).
    # Each agent as it answers: a TLS proxy checks a plaintext agent over HTTP (`tls enable` moves agents one
    # at a time).
    tls = (f" check-ssl verify required ca-file {settings.check_ca_file} crt {settings.check_cert_file}"
           if settings.check_ca_file else "")
    lines += [f"    server {b.name} {b.address}:{b.client_port} check port {b.api_port}{tls if b.api_tls else ''}"
              for b in backends]
    return lines


def render_haproxy_config(settings: ProxySettings, backends: Iterable[ProxyBackend], run_dir: Path) -> str:
    """The complete haproxy.cfg for this membership; equal inputs give equal text (sorted by name)."""
    check_run_dir(run_dir)
    members = sorted(backends, key=lambda b: b.name)
    names = [b.name for b in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"member names must be unique; repeated: {', '.join(duplicates)}")
    (writer_host, writer_port), (reader_host, reader_port) = settings.bind_addresses
    s = settings
    global_lines = [
        "global",
        # We run `haproxy -W -db`: a master process in the foreground that re-executes itself on
        # SIGUSR2 and hands the listening sockets to the new worker, while old workers keep serving
        # the connections they have until those end.
        "    master-worker",
        f"    pidfile {run_dir / PID_FILE}",
        # expose-fd listeners: the listening sockets can be passed to a new process over this socket,
        # so a reload never closes them (no refused connections during a reload).
        f"    stats socket {run_dir / ADMIN_SOCKET} mode 600 level admin expose-fd listeners",
        # Each new worker starts from this file instead of taking every unchecked server for UP, which
        # would offer a non-writer on the writer endpoint until its first checks (server_state.py).
        f"    server-state-file {run_dir / SERVER_STATE_FILE}",
    ]
    if s.hard_stop_after_s is not None:
        global_lines.append(f"    hard-stop-after {s.hard_stop_after_s}s")
    if s.nbthread is not None:
        global_lines.append(f"    nbthread {s.nbthread}")
    lines = [
        "# Rendered by galera-pilot (galera_pilot/proxy/haproxy_config.py). It is rewritten, and HAProxy",
        "# reloaded, whenever the cluster's membership changes: edits made here are lost.",
        *global_lines,
        "",
        "defaults",
        "    mode tcp",
        "    load-server-state-from-file global",
        f"    timeout connect {s.connect_timeout_ms}ms",
        f"    timeout client {s.session_timeout_s}s",
        f"    timeout server {s.session_timeout_s}s",
        f"    timeout check {s.timeout_check_ms}ms",
        # Keepalive probes on both sides: idle pooled connections survive stateful firewalls/NAT, and a
        # vanished peer is noticed by the kernel rather than after the 8 h session timeout.
        "    option clitcpka",
        "    option srvtcpka",
        f"    default-server inter {s.check_interval_ms}ms fastinter {s.fastinter_ms}ms "
        f"downinter {s.downinter_ms}ms rise {s.rise} fall {s.fall} on-marked-down shutdown-sessions",
        "",
        "frontend writer",
        f"    bind {_bind_text(writer_host, writer_port)}",
        "    default_backend writer",
        "",
        *_backend("writer", "/writer", None, members, s),
        "",
        "frontend reader",
        f"    bind {_bind_text(reader_host, reader_port)}",
        "    default_backend reader",
        "",
        # leastconn: database sessions are long-lived and uneven, so counting open connections spreads
        # load better than taking turns.
        *_backend("reader", "/read", "leastconn", members, s),
    ]
    return "\n".join(lines) + "\n"
