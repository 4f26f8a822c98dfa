"""The etcd v3 DCS: the same primitives as the SQLite store, over etcd's HTTP/JSON gateway.

Why the gateway and urllib3 rather than gRPC: it needs no generated code and no compiled dependency, and
every etcd since 3.4 serves it on the client port. etcd 3.4 answers under both `/v3/` and `/v3beta/`
(3.3 only knows `/v3beta/`, 3.5 dropped it); `/v3/` is used. Keys and values travel base64-encoded,
64-bit integers (revisions, lease IDs) as JSON strings, and fields equal to their zero value are
omitted from answers (`kvs` of an empty range, `succeeded` of a failed txn, `deleted` of 0).

How each primitive maps onto etcd (one request each, so each is atomic on the server):
  KV.version          the key's `mod_revision`: cluster-wide, strictly increasing, never reused, so a
                      deleted-and-recreated key can never be mistaken for the old one (no ABA).
  get / list          a linearizable range; list asks for [prefix, prefix+1) sorted by key, which is
                      the byte order SQLite's BINARY collation gives too.
  create              txn: if create_revision(key) == 0 (absent) then put.
  compare_and_set     txn: if mod_revision(key) == version then put. etcd compares an ABSENT key as if
                      all its revisions were 0, so version 0 would "match" a missing key: versions < 1
                      are refused locally (a real mod_revision is always >= 1).
  delete              deleterange (count of deleted keys tells absent from present), or with a version
                      the txn: if mod_revision(key) == version then deleterange.

TTLs are etcd leases. Every write with a ttl grants a fresh lease and attaches it; a write without a ttl
attaches none, which also detaches any earlier lease (that is how `finish_initialize` makes the key
permanent). etcd lease TTLs are whole seconds, so ttl is rounded up (math.ceil). etcd also enforces a
minimum of 1.5 x election timeout rounded up: measured on etcd 3.4.23 with default timings, a grant of
TTL 0 or 1 is answered with TTL 2. The grant is clamped to MIN_TTL client-side too, so what is asked is
what is granted. Expiry is checked by the leader every 500 ms, so a 2 s lease disappears 2.0-2.5 s after
the grant (measured: 2.1-2.5 s; 3 s leases 3.1-3.5 s). Keys are really deleted at expiry, not just hidden.
Consequence for callers: a ttl below 2 s behaves as 2 s on etcd, and expiry is up to ~0.5 s late.

Lease leaks: a lease granted for a conditional write that then fails has no key and is revoked at once
(best effort). A lease replaced by a later write of the same key is not tracked: it holds no key any more
and expires on its own after its TTL, which costs etcd the same one revoke either way.

Endpoints: `etcd://host:port[,host:port...]` (`etcds://` for https). A request goes to the endpoint that
answered last; on a connection error, a timeout, or etcd saying it is unavailable (no leader), the next
endpoint is tried; when all fail, DCSError names every endpoint and why. Timeouts are short (connect 1 s,
read 2 s) because the agent's loop must never hang on the DCS. A write that timed out may still have
been applied; repeating it elsewhere is safe for galera-pilot: a repeated create or CAS then fails as if
another writer had won, and the caller re-reads on its next round (acquire_lease even recognises its
own holder record and renews it).

Options: `etcd://user:password@host:port` authenticates with /v3/auth/authenticate and sends the token
(re-authenticating once when etcd says it expired); `?cacert=/ca.pem&cert=/client.pem&key=/client.key`
configure TLS (with etcds:// only).

Watches: one streaming `/v3/watch` request on the cluster prefix, from the revision after the last one
seen, so nothing is missed across reconnections. The gateway answers with one JSON object per line: first
`created`, then a line per revision with its events (a PUT has no `type`, zero values being omitted; a
DELETE, lease expiry included, says "DELETE" and carries no value). The stream is (re)opened on the
endpoint the other requests last reached. A stream quiet for WATCH_IDLE s is reopened, and one that is
not even `created` within that time (a paused member accepts connections but answers nothing) moves the
watch to the next endpoint. A member cut off from its leader may accept a watch and stay quiet: agents
then fall back on their polls until the stream is reopened elsewhere. When etcd has compacted the
revision the watch wanted, a RESYNC change says "anything may have changed".

Thread safety: the agent loop, the REST API thread and the watch thread share one instance; urllib3's PoolManager is
thread-safe, and the only other mutable state (preferred endpoint, auth token) is replaced atomically.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

from galera_pilot.dcs.base import DCS, KV, RESYNC, ROOT, Change, ChangeCallback
from galera_pilot.errors import ConfigError, DCSError

DEFAULT_PORT = 2379
MIN_TTL = 2
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
WATCH_IDLE = 5.0  # a watch stream silent this long is reopened
API = "/v3"
TLS_OPTIONS = ("cacert", "cert", "key")
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16

_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class EtcdSettings:
    """What an etcd DCS URL says: where to connect and how to authenticate."""

    endpoints: tuple[str, ...]  # base URLs, e.g. "http://127.0.0.1:2379"
    username: str | None = None
    password: str | None = None
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def tls(self) -> bool:
        return self.endpoints[0].startswith("https://")


def parse_etcd_url(url: str) -> EtcdSettings:
    """Parse `etcd[s]://[user:password@]host[:port][,host[:port]...][/][?cacert=..&cert=..&key=..]`.

    Parsed by hand because urllib.parse cannot read a comma-separated host list (its `.port` fails).
    Every mistake is a ConfigError naming the field, so `galera-pilot` prints one clear line.
    """

    def bad(why: str) -> ConfigError:
        return ConfigError(f"field 'dcs': {url!r} {why}; expected etcd://host:port[,host:port...] or etcds://...")

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("etcd", "etcds"):
        raise bad("is not an etcd URL")
    if "#" in rest:
        raise bad("must not have a #fragment")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path:
        raise bad(f"must not have a path (/{path})")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if not user or not colon:
            raise bad("must give both user and password (user:password@host)")
        username, password = unquote(user), unquote(secret)
    if not hosts:
        raise bad("names no host")
    http = "https" if scheme == "etcds" else "http"
    endpoints: list[str] = []
    for item in hosts.split(","):
        match = _HOST_PORT.match(item)
        if match is None:
            raise bad(f"has an invalid host:port {item!r}")
        port = int(match["port"]) if match["port"] else DEFAULT_PORT
        if not 0 < port < 65536:
            raise bad(f"has an invalid port in {item!r}")
        host = f"[{match['ipv6']}]" if match["ipv6"] else match["host"]
        endpoints.append(f"{http}://{host}:{port}")
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in TLS_OPTIONS:
            raise bad(f"has an unknown option {name!r} (known: {', '.join(TLS_OPTIONS)})")
        if not value.startswith("/"):
            raise bad(f"option {name} must be an absolute file path")
        options[name] = value
    if options and scheme != "etcds":
        raise bad("gives TLS options; they need etcds://")
    if "key" in options and "cert" not in options:
        raise bad("gives a client key without its cert")
    return EtcdSettings(tuple(endpoints), username, password, **options)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def _unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def _prefix_end(key: str) -> str:
    """The range_end covering every key that starts with `key` (etcd's 'prefix + 1' convention)."""
    raw = bytearray(key.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return _b64("\0")  # everything from key on (etcd: range_end "\0" means "to the end")
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


def lease_ttl(ttl: float) -> int:
    """The whole-second lease etcd is asked for: at least `ttl`, and not below etcd's minimum."""
    return max(MIN_TTL, math.ceil(ttl))


def _reason(error: Exception) -> str:
    """A short human reason for a transport failure (urllib3's messages repeat the whole pool repr)."""
    if isinstance(error, NewConnectionError):  # checked first: urllib3 makes it a ConnectTimeoutError subclass
        return str(error).rpartition(": ")[2] or "cannot connect"
    if isinstance(error, ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, ReadTimeoutError):
        return "no answer in time"
    return str(error) or type(error).__name__


class _Unavailable(Exception):
    """This endpoint cannot serve the request now (e.g. its member has no leader): try the next one."""


class EtcdDCS(DCS):
    def __init__(self, settings: EtcdSettings, cluster_name: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> None:
        """No I/O here: an agent may start before etcd does, and its loop retries the DCS every round."""
        super().__init__(cluster_name)
        self.settings = settings
        self.endpoints = settings.endpoints
        for name in TLS_OPTIONS:
            path = getattr(settings, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"field 'dcs': TLS option {name}={path} is not a readable file")
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        tls: dict[str, Any] = {}
        if settings.tls:
            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": settings.cacert, "cert_file": settings.cert,
                   "key_file": settings.key}
        # maxsize: the agent loop, the REST API threads and tests' racing threads share the pool.
        self._pool = urllib3.PoolManager(num_pools=len(self.endpoints) + 1, maxsize=8, retries=False, **tls)
        self._preferred = 0
        self._token: str | None = None
        self._auth_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EtcdDCS({', '.join(self.endpoints)}, cluster={self.cluster_name!r})"

    # ---- transport -----------------------------------------------------------------------------------------
    def _post(self, endpoint: str, path: str, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = token
        response = self._pool.request("POST", endpoint + API + path, body=json.dumps(body).encode(),
                                      headers=headers, timeout=self._timeout, retries=False)
        try:
            data = json.loads(response.data or b"{}")
        except ValueError:
            data = {"message": response.data[:200].decode(errors="replace").strip()}
        if not isinstance(data, dict):
            data = {"message": str(data)[:200]}
        return response.status, data

    def _authenticate(self, endpoint: str) -> str:
        status, data = self._post(endpoint, "/auth/authenticate",
                                  {"name": self.settings.username, "password": self.settings.password}, None)
        if data.get("code") == GRPC_UNAVAILABLE or status in (502, 503, 504):
            raise _Unavailable(data.get("message") or f"HTTP {status}")  # e.g. no leader: try another member
        if status != 200 or not data.get("token"):
            raise DCSError(f"etcd {endpoint}: authentication as {self.settings.username!r} failed: "
                           f"{data.get('message') or data.get('error') or status}")
        return str(data["token"])

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the preferred endpoint, falling over to the others; DCSError when none answers."""
        failures: list[str] = []
        start = self._preferred
        count = len(self.endpoints)
        for step in range(count):
            index = (start + step) % count
            endpoint = self.endpoints[index]
            try:
                status, data = self._request(endpoint, path, body)
            except (urllib3.exceptions.HTTPError, OSError, _Unavailable) as error:
                failures.append(f"{endpoint} ({_reason(error)})")
                continue
            if status == 200:
                self._preferred = index
                return data
            message = data.get("message") or data.get("error") or ""
            if "code" not in data:  # not etcd's gateway (a proxy, or an etcd without /v3/): try another
                failures.append(f"{endpoint} (HTTP {status}, not an etcd v3 answer: {message[:80]!r})")
                continue
            if data["code"] == GRPC_UNAVAILABLE or status in (502, 503, 504):
                failures.append(f"{endpoint} ({message})")  # e.g. this member has no leader: try another
                continue
            if "user name is empty" in message:
                message += " (etcd requires authentication: give user:password@ in the dcs URL)"
            raise DCSError(f"etcd {endpoint} refused {path}: {message}")
        raise DCSError(f"no etcd endpoint answered {path}: {'; '.join(failures)}")

    def _current_token(self, endpoint: str) -> str:
        """The auth token, fetched from `endpoint` when there is none yet (or it was dropped as expired)."""
        token = self._token
        if token is None:
            with self._auth_lock:
                token = self._token = self._token or self._authenticate(endpoint)
        return token

    def _request(self, endpoint: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One endpoint, with authentication: a missing or expired token is (re)fetched once."""
        if self.settings.username is None:
            return self._post(endpoint, path, body, None)
        token = self._current_token(endpoint)
        try:
            status, data = self._post(endpoint, path, body, token)
        except ReadTimeoutError:
            # etcd 3.4's simple tokens end in ".<raft index>"; a member that has not applied that index yet
            # (lagging, or the token is bogus) holds the request for its whole request timeout (5 s) before
            # answering "invalid auth token". Forget the token, so the next endpoint or the next call
            # authenticates afresh. (An expired token, --auth-token-ttl 300 s idle, is refused at once: 401.)
            with self._auth_lock:
                if self._token == token:
                    self._token = None
            raise
        if status == 401 or data.get("code") == GRPC_UNAUTHENTICATED:
            with self._auth_lock:
                fresh = self._token
                if fresh is None or fresh == token:  # nobody re-authenticated meanwhile: we do
                    fresh = self._token = self._authenticate(endpoint)
                token = fresh
            status, data = self._post(endpoint, path, body, token)
        return status, data

    # ---- helpers --------------------------------------------------------------------------------------------
    def _kv(self, raw: dict[str, Any]) -> KV:
        key = _unb64(raw["key"])[len(self.prefix):]
        return KV(key, _unb64(raw.get("value", "")), int(raw["mod_revision"]))

    def _grant(self, ttl: float | None) -> str | None:
        if ttl is None:
            return None
        answer = self._call("/lease/grant", {"TTL": lease_ttl(ttl)})
        if not answer.get("ID"):
            raise DCSError(f"etcd granted no lease: {answer}")
        return str(answer["ID"])

    def _revoke_quietly(self, lease: str | None) -> None:
        """Free a lease that ended up holding no key; it would expire anyway, so failures are ignored."""
        if lease is None:
            return
        with contextlib.suppress(DCSError):
            self._call("/lease/revoke", {"ID": lease})

    def _put_op(self, key: str, value: str, lease: str | None) -> dict[str, Any]:
        op: dict[str, Any] = {"key": _b64(self.prefix + key), "value": _b64(value)}
        if lease is not None:
            op["lease"] = lease
        return op

    def _txn_put(self, compare: dict[str, Any], key: str, value: str, ttl: float | None) -> bool:
        lease = self._grant(ttl)
        answer = self._call("/kv/txn", {"compare": [compare],
                                        "success": [{"request_put": self._put_op(key, value, lease)}]})
        succeeded = bool(answer.get("succeeded"))
        if not succeeded:
            self._revoke_quietly(lease)
        return succeeded

    # ---- primitives -----------------------------------------------------------------------------------------
    def get(self, key: str) -> KV | None:
        kvs = self._call("/kv/range", {"key": _b64(self.prefix + key)}).get("kvs") or []
        return self._kv(kvs[0]) if kvs else None

    def list_outside(self, skip: str) -> list[KV]:
        """Both ranges around `skip` in one txn: one request, one revision."""
        full, skipped = self.prefix, self.prefix + skip
        ranges = [{"key": _b64(full), "range_end": _b64(skipped)},
                  {"key": _prefix_end(skipped), "range_end": _prefix_end(full)}]
        answer = self._call("/kv/txn", {"compare": [], "success": [
            {"request_range": {**bounds, "sort_order": "ASCEND", "sort_target": "KEY"}} for bounds in ranges]})
        kvs = [raw for response in answer.get("responses") or []
               for raw in (response.get("response_range") or {}).get("kvs") or []]
        return [self._kv(raw) for raw in kvs]

    def list(self, prefix: str = "") -> list[KV]:
        full = self.prefix + prefix
        answer = self._call("/kv/range", {"key": _b64(full), "range_end": _prefix_end(full),
                                          "sort_order": "ASCEND", "sort_target": "KEY"})
        return [self._kv(raw) for raw in answer.get("kvs") or []]

    def cluster_names(self) -> tuple[str, ...]:
        root = ROOT
        answer = self._call("/kv/range", {"key": _b64(root), "range_end": _prefix_end(root), "keys_only": True})
        return tuple(sorted({_unb64(raw["key"])[len(root):].partition("/")[0] for raw in answer.get("kvs") or []}))

    def create(self, key: str, value: str, ttl: float | None = None) -> bool:
        compare = {"key": _b64(self.prefix + key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
        return self._txn_put(compare, key, value, ttl)

    def compare_and_set(self, key: str, value: str, version: int, ttl: float | None = None) -> bool:
        if version < 1:
            return False  # etcd would compare an absent key's mod_revision as 0 and succeed
        compare = {"key": _b64(self.prefix + key), "result": "EQUAL", "target": "MOD", "mod_revision": str(version)}
        return self._txn_put(compare, key, value, ttl)

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        self._call("/kv/put", self._put_op(key, value, self._grant(ttl)))

    def delete(self, key: str, version: int | None = None) -> bool:
        full = _b64(self.prefix + key)
        if version is None:
            return int(self._call("/kv/deleterange", {"key": full}).get("deleted", 0)) > 0
        if version < 1:
            return False
        answer = self._call("/kv/txn", {
            "compare": [{"key": full, "result": "EQUAL", "target": "MOD", "mod_revision": str(version)}],
            "success": [{"request_delete_range": {"key": full}}],
        })
        return bool(answer.get("succeeded"))

    def close(self) -> None:
        """Drop pooled connections; the instance stays usable and reconnects on demand (like SQLiteDCS)."""
        self._pool.clear()

    # ---- watch ----------------------------------------------------------------------------------------------
    def watch(self, on_change: ChangeCallback, stop: threading.Event) -> None:
        revision: int | None = None  # the last revision reported; None: start from now
        offset = 0  # endpoints tried after the preferred one, after failures
        failures = 0
        while not stop.is_set():
            index = (self._preferred + offset) % len(self.endpoints)
            try:
                revision, created = self._watch_stream(self.endpoints[index], revision, on_change, stop)
            except (urllib3.exceptions.HTTPError, OSError, ValueError, _Unavailable, DCSError):
                created = False
            if created:
                offset, failures = 0, 0
            else:
                offset, failures = offset + 1, failures + 1
                stop.wait(min(1.0, 0.1 * failures))

    def _watch_stream(self, endpoint: str, revision: int | None, on_change: ChangeCallback,
                      stop: threading.Event) -> tuple[int | None, bool]:
        """One watch stream, read until it goes quiet or fails; (last revision seen, whether it was created)."""
        request: dict[str, Any] = {"key": _b64(self.prefix), "range_end": _prefix_end(self.prefix)}
        if revision is not None:
            request["start_revision"] = str(revision + 1)
        headers = {"Content-Type": "application/json"}
        if self.settings.username is not None:
            headers["Authorization"] = self._current_token(endpoint)
        response = self._pool.request(
            "POST", endpoint + API + "/watch", body=json.dumps({"create_request": request}).encode(),
            headers=headers, retries=False, preload_content=False,
            timeout=urllib3.Timeout(connect=self._timeout.connect_timeout, read=WATCH_IDLE))
        created = False
        try:
            if response.status != 200:
                return revision, False
            pending = b""
            for chunk in response.stream(8192):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if "result" not in message:  # {"error": ...}: e.g. an expired token
                        with self._auth_lock:
                            self._token = None
                        return revision, created
                    result = message["result"]
                    header_revision = int(result.get("header", {}).get("revision", 0))
                    if result.get("created"):
                        created = True
                        if revision is None:
                            revision = header_revision
                    if result.get("canceled"):
                        if result.get("compact_revision"):
                            on_change([Change(RESYNC, None)])
                            return None, created
                        return revision, created
                    if stop.is_set():  # no report after a stop, even if the stream only now speaks
                        return revision, created
                    events = result.get("events") or []
                    if events:
                        revision = max(revision or 0, header_revision)
                        changes = [c for c in map(self._change, events) if not c.key.startswith("history/")]
                        if changes:
                            on_change(changes)
        except ReadTimeoutError:
            pass  # quiet for WATCH_IDLE: reopen (elsewhere if this endpoint never even created the watch)
        finally:
            response.release_conn()
        return revision, created

    def _change(self, event: dict[str, Any]) -> Change:
        kv = event.get("kv", {})
        key = _unb64(kv.get("key", ""))[len(self.prefix):]
        return Change(key, None if event.get("type") == "DELETE" else _unb64(kv.get("value", "")))
