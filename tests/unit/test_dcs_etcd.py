"""dcs/etcd.py only: URL parsing, real etcd leases, endpoint failover, errors, authentication.

What every backend must do (and etcd does) is in test_dcs_contract.py and test_dcs_records.py. Here the
etcd server is real (conftest's session etcd_server) except where a test needs a server to misbehave:
then a small local HTTP server or a socket that never answers stands in for it.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dcs_backends import EtcdServer, Recorder, etcd_request, free_port

from galera_pilot.dcs import Change, get_dcs
from galera_pilot.dcs import etcd as etcd_module
from galera_pilot.dcs.base import RESYNC
from galera_pilot.dcs.etcd import EtcdDCS, EtcdSettings, lease_ttl, parse_etcd_url
from galera_pilot.errors import ConfigError, DCSError, PilotError

PAST_MIN_TTL = 3.5  # a 2 s etcd lease is gone 2.0-2.5 s after its grant (measured), plus a margin


def open_etcd(url: str, cluster: str, **timeouts: float) -> EtcdDCS:
    return EtcdDCS(parse_etcd_url(url), cluster, **timeouts)


def raw_kv(server: EtcdServer, store: EtcdDCS, key: str) -> dict | None:
    """The key as etcd itself has it (read with the stdlib, not with the code under test)."""
    full = base64.b64encode((store.prefix + key).encode()).decode()
    kvs = etcd_request(server.client_url, "/kv/range", {"key": full}).get("kvs") or []
    return kvs[0] if kvs else None


def lease_remaining(server: EtcdServer, lease: str) -> tuple[int, int]:
    """(TTL left, TTL granted) of a lease; TTL left is -1 once it has expired or been revoked."""
    answer = etcd_request(server.client_url, "/lease/timetolive", {"ID": lease})
    return int(answer.get("TTL", 0)), int(answer.get("grantedTTL", 0))


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> str:
    """A cluster name of this test's own on the shared etcd."""
    return f"etcd-{request.node.name}".replace("[", "-").replace("]", "")


# ---- URL parsing -----------------------------------------------------------------------------------------


def test_get_dcs_opens_etcd_without_contacting_it() -> None:
    """No I/O when opening: an agent may start before etcd, and its loop retries the DCS every round."""
    store = get_dcs(f"etcd://127.0.0.1:{free_port()}", "prod")
    assert isinstance(store, EtcdDCS)
    assert store.cluster_name == "prod" and store.prefix == "/galera-pilot/prod/"
    store.close()


@pytest.mark.parametrize(("url", "endpoints"), [
    ("etcd://127.0.0.1:2379", ("http://127.0.0.1:2379",)),
    ("etcd://127.0.0.1:2379/", ("http://127.0.0.1:2379",)),
    ("etcd://etcd-1.example.com", ("http://etcd-1.example.com:2379",)),
    ("etcd://h1:2379,h2,[::1]:22379", ("http://h1:2379", "http://h2:2379", "http://[::1]:22379")),
    ("etcds://h1:2379,h2:2379", ("https://h1:2379", "https://h2:2379")),
])
def test_parse_endpoints(url: str, endpoints: tuple[str, ...]) -> None:
    settings = parse_etcd_url(url)
    assert settings.endpoints == endpoints
    assert settings.username is None and settings.password is None
    assert settings.tls is url.startswith("etcds")


def test_parse_credentials_and_tls_options() -> None:
    settings = parse_etcd_url("etcds://gp%40ops:p%3Ass%2Cw@h1:2379,h2:2379?cacert=/ca.pem&cert=/c.pem&key=/c.key")
    assert settings == EtcdSettings(("https://h1:2379", "https://h2:2379"), "gp@ops", "p:ss,w",
                                    "/ca.pem", "/c.pem", "/c.key")
    assert parse_etcd_url("etcd://u:@h").password == ""


@pytest.mark.parametrize("url", [
    "etcd://",
    "etcd://:2379",
    "etcd://h:0",
    "etcd://h:70000",
    "etcd://h:port",
    "etcd://h1:2379,,h2:2379",
    "etcd://h1:2379,",
    "etcd://h:2379/galera",
    "etcd://h:2379?timeout=5",
    "etcd://h:2379?cacert=/ca.pem",  # TLS options without etcds://
    "etcds://h:2379?cacert=ca.pem",  # relative path
    "etcds://h:2379?key=/c.key",  # key without cert
    "etcd://user@h:2379",
    "etcd://:secret@h:2379",
    "etcd://h:2379#x",
    "etcd://[::1:2379",
    "etcd://h h:2379",
    "etcd3://h:2379",
    "etcds:/h:2379",
])
def test_malformed_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="field 'dcs'"):
        get_dcs(url, "galera")


def test_missing_tls_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field 'dcs'.*cacert"):
        get_dcs(f"etcds://h:2379?cacert={tmp_path}/absent.pem", "galera")


def test_tls_files_reach_the_connection_pool(tmp_path: Path) -> None:
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    store = get_dcs(f"etcds://h:2379?cacert={tmp_path}/ca.pem&cert={tmp_path}/c.pem&key={tmp_path}/c.key", "g")
    assert isinstance(store, EtcdDCS)
    pool_kw = store._pool.connection_pool_kw
    assert pool_kw["ca_certs"] == f"{tmp_path}/ca.pem"
    assert (pool_kw["cert_file"], pool_kw["key_file"]) == (f"{tmp_path}/c.pem", f"{tmp_path}/c.key")
    assert pool_kw["cert_reqs"] == "CERT_REQUIRED"


@pytest.mark.parametrize(("ttl", "granted"), [(0.2, 2), (1, 2), (2, 2), (2.01, 3), (30, 30), (29.5, 30)])
def test_lease_ttl_rounds_up_to_whole_seconds_and_etcds_minimum(ttl: float, granted: int) -> None:
    assert lease_ttl(ttl) == granted


# ---- leases on a real etcd ---------------------------------------------------------------------------------


def test_ttl_writes_use_etcd_leases_and_really_expire(etcd_server: EtcdServer, cluster: str) -> None:
    store = open_etcd(etcd_server.url, cluster)
    store.put("put", "v", 0.2)
    store.create("create", "v", 0.2)
    store.put("cas", "v")
    assert store.compare_and_set("cas", "w", store.get("cas").version, 0.2)
    store.put("forever", "v")
    leases = {}
    for key in ("put", "create", "cas"):
        raw = raw_kv(etcd_server, store, key)
        assert raw is not None and int(raw.get("lease", 0)) != 0, raw
        leases[key] = raw["lease"]
        assert lease_remaining(etcd_server, raw["lease"])[1] == 2  # 0.2 s asked: etcd's minimum granted
        assert int(raw["mod_revision"]) == store.get(key).version  # KV.version is etcd's mod_revision
    assert len(set(leases.values())) == 3  # a fresh lease per write
    assert "lease" not in raw_kv(etcd_server, store, "forever")  # no ttl, no lease
    time.sleep(PAST_MIN_TTL)
    for key, lease in leases.items():
        assert raw_kv(etcd_server, store, key) is None  # deleted by etcd, not merely hidden
        assert lease_remaining(etcd_server, lease)[0] == -1
    assert [kv.key for kv in store.list()] == ["forever"]
    store.close()


def test_a_write_without_ttl_detaches_the_lease(etcd_server: EtcdServer, cluster: str) -> None:
    store = open_etcd(etcd_server.url, cluster)
    store.create("k", "v", 600)
    assert "lease" in raw_kv(etcd_server, store, "k")
    assert store.compare_and_set("k", "w", store.get("k").version, None)
    assert "lease" not in raw_kv(etcd_server, store, "k")
    store.close()


def test_a_failed_conditional_write_revokes_its_fresh_lease(etcd_server: EtcdServer, cluster: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_etcd(etcd_server.url, cluster)
    granted: list[str | None] = []
    grant = store._grant

    def spy(ttl: float | None) -> str | None:
        granted.append(grant(ttl))
        return granted[-1]

    monkeypatch.setattr(store, "_grant", spy)
    assert store.create("k", "v", 600) is True
    assert store.create("k", "again", 600) is False
    assert store.compare_and_set("k", "w", 999_999_999, 600) is False
    kept, *orphans = granted
    assert lease_remaining(etcd_server, kept)[0] > 500
    assert len(orphans) == 2
    for lease in orphans:
        assert lease_remaining(etcd_server, lease)[0] == -1
    store.close()


def test_etcd_refusals_are_dcs_errors(etcd_server: EtcdServer, cluster: str) -> None:
    """An error etcd itself answers is not retried elsewhere: it would answer the same."""
    store = open_etcd(etcd_server.url, cluster)
    with pytest.raises(DCSError, match="request is too large"):
        store.put("big", "x" * 2_000_000)  # etcd's default --max-request-bytes is 1.5 MiB
    store.close()


# ---- endpoints ----------------------------------------------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """host:port that accepts TCP connections (the kernel's backlog does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_failover_from_a_dead_first_endpoint(etcd_server: EtcdServer, cluster: str) -> None:
    store = get_dcs(f"etcd://127.0.0.1:{free_port()},127.0.0.1:{etcd_server.port}", cluster)
    assert isinstance(store, EtcdDCS)
    assert store.create("k", "v") is True
    assert store.get("k").value == "v"
    assert store._preferred == 1  # later requests go straight to the endpoint that answered
    store.close()


def test_failover_from_an_endpoint_that_never_answers(etcd_server: EtcdServer, cluster: str,
                                                      silent_endpoint: str) -> None:
    store = open_etcd(f"etcd://{silent_endpoint},127.0.0.1:{etcd_server.port}", cluster, read_timeout=0.5)
    store.put("k", "v")
    assert store.get("k").value == "v"
    store.close()


def test_all_endpoints_dead_is_a_dcs_error_naming_them(silent_endpoint: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    store = open_etcd(f"etcd://{dead},{silent_endpoint}", "galera", read_timeout=0.5)
    with pytest.raises(DCSError) as caught:
        store.get("k")
    message = str(caught.value)
    assert "no etcd endpoint answered" in message
    assert f"http://{dead} (" in message and "refused" in message.lower()
    assert f"http://{silent_endpoint} (no answer in time)" in message
    assert isinstance(caught.value, PilotError)  # the CLI prints it as one line


def test_all_endpoints_dead_with_default_timeouts() -> None:
    """The defaults (connect 1 s, read 2 s) bound the wait; refused connections fail at once."""
    store = get_dcs(f"etcd://127.0.0.1:{free_port()},127.0.0.1:{free_port()}", "galera")
    for operation in (lambda: store.get("k"), lambda: store.put("k", "v", 5), lambda: store.delete("k")):
        with pytest.raises(DCSError, match="no etcd endpoint answered"):
            operation()


# ---- servers that are not (quite) etcd -----------------------------------------------------------------------


class FakeEtcd(BaseHTTPRequestHandler):
    """Just enough of etcd's gateway with authentication enabled: /v3/auth/authenticate and /v3/kv/range."""

    tokens: list[str]
    issued: list[str]
    valid: set[str]
    seen: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        token = self.headers.get("Authorization")
        self.seen.append((self.path, token))
        if self.path == "/v3/auth/authenticate":
            if (body.get("name"), body.get("password")) != ("root", "p:w"):
                self.answer(400, {"error": "etcdserver: authentication failed, invalid user ID or password",
                                  "message": "etcdserver: authentication failed, invalid user ID or password",
                                  "code": 3})
                return
            issued = self.tokens[len(self.issued)]
            self.issued.append(issued)
            self.valid.add(issued)
            self.answer(200, {"header": {}, "token": issued})
        elif token is None:
            self.answer(400, {"error": "etcdserver: user name is empty", "message": "etcdserver: user name is empty",
                              "code": 3})
        elif token not in self.valid:
            self.answer(401, {"error": "etcdserver: invalid auth token", "message": "etcdserver: invalid auth token",
                              "code": 16})
        else:
            self.answer(200, {"header": {}})


@pytest.fixture
def fake_etcd() -> Iterator[tuple[str, type[FakeEtcd]]]:
    handler = type("Handler", (FakeEtcd,), {"tokens": ["tok1.5", "tok2.9"], "issued": [], "valid": set(),
                                          "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_authentication_token_is_sent_and_renewed_once(fake_etcd: tuple[str, type[FakeEtcd]]) -> None:
    address, handler = fake_etcd
    store = get_dcs(f"etcd://root:p%3Aw@{address}", "galera")
    assert store.get("k") is None
    assert handler.seen == [("/v3/auth/authenticate", None), ("/v3/kv/range", "tok1.5")]
    assert store.get("k") is None  # the token is kept
    handler.valid.discard("tok1.5")  # expired (etcd's --auth-token-ttl)
    assert store.get("k") is None
    assert handler.seen[2:] == [("/v3/kv/range", "tok1.5"), ("/v3/kv/range", "tok1.5"),
                                ("/v3/auth/authenticate", None), ("/v3/kv/range", "tok2.9")]


def test_wrong_password_is_a_dcs_error(fake_etcd: tuple[str, type[FakeEtcd]]) -> None:
    address, _ = fake_etcd
    with pytest.raises(DCSError, match=r"authentication as 'root' failed.*invalid user ID or password"):
        get_dcs(f"etcd://root:wrong@{address}", "galera").get("k")


def test_missing_credentials_say_so(fake_etcd: tuple[str, type[FakeEtcd]]) -> None:
    address, _ = fake_etcd
    with pytest.raises(DCSError, match=r"user name is empty.*user:password@"):
        get_dcs(f"etcd://{address}", "galera").get("k")


class NotEtcd(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "19")
        self.end_headers()
        self.wfile.write(b"404 page not found\n")


def test_a_server_that_is_not_etcd_is_skipped(etcd_server: EtcdServer, cluster: str) -> None:
    """E.g. an etcd 3.3 (no /v3/ prefix) or some other service on that port: try the next endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotEtcd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        other = f"127.0.0.1:{server.server_address[1]}"
        store = get_dcs(f"etcd://{other},127.0.0.1:{etcd_server.port}", cluster)
        store.put("k", "v")
        assert store.get("k").value == "v"
        alone = get_dcs(f"etcd://{other}", cluster)
        with pytest.raises(DCSError, match="HTTP 404, not an etcd v3 answer: '404 page not found'"):
            alone.get("k")
    finally:
        server.shutdown()
        server.server_close()


class NoLeader(BaseHTTPRequestHandler):
    """An etcd member cut off from its cluster: every request, authentication included, is unavailable."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"error": "etcdserver: no leader", "message": "etcdserver: no leader", "code": 14}).encode()
        self.send_response(503)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_member_without_leader_is_skipped(etcd_server: EtcdServer, cluster: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoLeader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cut_off = f"127.0.0.1:{server.server_address[1]}"
        store = get_dcs(f"etcd://{cut_off},127.0.0.1:{etcd_server.port}", cluster)
        assert store.create("k", "v", 60) is True
        assert store.get("k").value == "v"
        with pytest.raises(DCSError, match=rf"http://{cut_off} \(etcdserver: no leader\)"):
            get_dcs(f"etcd://{cut_off}", cluster).get("k")
        with pytest.raises(DCSError, match=rf"http://{cut_off} \(etcdserver: no leader\)"):
            get_dcs(f"etcd://u:p@{cut_off}", cluster).get("k")  # authentication falls over the same way
    finally:
        server.shutdown()
        server.server_close()


# ---- watch --------------------------------------------------------------------------------------------------


def test_a_quiet_watch_is_reopened_without_missing_a_change(etcd_server: EtcdServer, cluster: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_module, "WATCH_IDLE", 0.3)
    watcher, writer = open_etcd(etcd_server.url, cluster), open_etcd(etcd_server.url, cluster)
    recorder = Recorder(watcher)
    try:
        recorder.ready(writer)
        time.sleep(1.5)  # several silent periods: the stream is reopened from the next revision each time
        writer.put("members/a", "1")
        writer.put("members/a", "2")
        recorder.wait_for(lambda cs: Change("members/a", "2") in cs, 5, "the second put")
        assert recorder.changes == [Change("members/a", "1"), Change("members/a", "2")]
    finally:
        recorder.stop.set()


def test_watch_moves_on_from_an_endpoint_that_never_answers(etcd_server: EtcdServer, cluster: str,
                                                           silent_endpoint: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_module, "WATCH_IDLE", 0.5)
    watcher = open_etcd(f"etcd://{silent_endpoint},127.0.0.1:{etcd_server.port}", cluster)
    writer = open_etcd(etcd_server.url, cluster)
    recorder = Recorder(watcher)
    try:
        recorder.ready(writer)  # the sentinel gets through once the watch has moved to the live endpoint
    finally:
        recorder.stop.set()


def test_a_compacted_revision_is_reported_as_a_resync(etcd_server: EtcdServer, cluster: str) -> None:
    store = open_etcd(etcd_server.url, cluster)
    store.put("k", "1")
    old = store.get("k").version
    store.put("k", "2")
    etcd_request(etcd_server.client_url, "/kv/compaction", {"revision": str(store.get("k").version)})
    seen: list[Change] = []
    revision, _ = store._watch_stream(etcd_server.client_url, old - 1, seen.extend, threading.Event())
    assert seen == [Change(RESYNC, None)] and revision is None


def test_an_etcds_url_without_options_presents_the_callers_bundle(tmp_path: Path) -> None:
    """A node's or proxy's bundle reaches etcd (client certificates from the cluster's PKI), unless the URL
    names files of its own; plain etcd:// never gets TLS files."""
    files = tuple(tmp_path / name for name in ("ca.pem", "node.pem", "node.key"))
    for path in files:
        path.write_text("x")
    store = get_dcs("etcds://h:2379", "g", files)  # type: ignore[arg-type]
    assert isinstance(store, EtcdDCS)
    assert (store.settings.cacert, store.settings.cert, store.settings.key) == tuple(str(p) for p in files)
    own = tmp_path / "own.pem"
    own.write_text("x")
    store = get_dcs(f"etcds://h:2379?cacert={own}", "g", files)  # type: ignore[arg-type]
    assert isinstance(store, EtcdDCS) and store.settings.cacert == str(own) and store.settings.cert is None
    store = get_dcs("etcd://h:2379", "g", files)  # type: ignore[arg-type]
    assert isinstance(store, EtcdDCS) and store.settings.cacert is None
