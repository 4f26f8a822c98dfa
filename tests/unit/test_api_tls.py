"""The REST API over TLS (agent/api.py with tls/contexts.py, and the client side, tls/http.py).

A real `Ha` on a real SQLite DCS with no mariadbd, as in test_api_server.py (whose server listens on
127.0.0.253; this one on 127.0.0.251, so both modules can run at once). The server's bundle comes from
a fresh authority in tmp_path: HTTPS only, reads open, POST /failsafe needs a client certificate the node
CA signed or the API token."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from unit_helpers import make_config

from galera_pilot.agent.api import API_THREADS, REQUEST_TIMEOUT, ApiServer
from galera_pilot.agent.ha import Ha
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.bundle import Bundle, load_bundle
from galera_pilot.tls.contexts import client_context, server_context
from galera_pilot.tls.http import ApiClient, ApiUnreachable

CREDENTIALS = Credentials("pilot_admin", "admin-secret", "pilot_sst", "sst-Secret_123")
ADDRESS = "127.0.0.251"  # no test runs a node there (test_api_server.py uses 127.0.0.253)
FAILSAFE_BODY = json.dumps({"writer": "node2", "ttl": 5}).encode()


@dataclass
class Tls:
    authority: Authority
    bundle: Bundle  # the server's (node1)
    peer: Bundle  # another node's, from the same node CA
    api: ApiServer

    @property
    def port(self) -> int:
        return int(self.api.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{ADDRESS}:{self.port}"

    def verify_only(self) -> ssl.SSLContext:
        """Verifies the server by the node CA, presents no certificate."""
        return client_context(self.bundle.ca)

    def with_peer_certificate(self) -> ssl.SSLContext:
        return client_context(self.peer.ca, self.peer.cert, self.peer.key)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    authority = init_authority(tmp_path / "pki", "apitest")
    bundle = load_bundle(authority.issue_bundle("node1", [ADDRESS]))
    peer = load_bundle(authority.issue_bundle("node2", ["127.0.0.250"]))
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    ha = Ha(make_config(address=ADDRESS, ports={"client": 3306, "galera": 4567, "ist": 4568, "sst": 4444,
                                                 "api": 18008}), dcs, CREDENTIALS)
    api = ApiServer(ADDRESS, 0, ha, tls=server_context(bundle.cert, bundle.key, bundle.ca),
                    token=bundle.api_token())
    api.start()
    try:
        yield Tls(authority, bundle, peer, api)
    finally:
        api.shutdown()
        api.server_close()
        dcs.close()


def https(tls: Tls, method: str, path: str, context: ssl.SSLContext, body: bytes | None = None,
          headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(ADDRESS, tls.port, context=context, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def failsafe(tls: Tls, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    return https(tls, "POST", "/failsafe", context, FAILSAFE_BODY,
                 {"Content-Type": "application/json", **(headers or {})})


def assert_failsafe_answered(code: int, body: bytes) -> None:
    """Authorized: the keeper judged the request (200 granted, 409 refused), with its JSON answer."""
    assert code in (200, 409), (code, body)
    document = json.loads(body)
    assert document["granted"] is (code == 200) and "reason" in document


# --- the transport --------------------------------------------------------------------------------------------


def test_plain_http_gets_no_http_answer(tls: Tls) -> None:
    with socket.create_connection((ADDRESS, tls.port), timeout=5.0) as sock:
        sock.sendall(f"GET /status HTTP/1.1\r\nHost: {ADDRESS}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert not received.startswith(b"HTTP/"), received[:200]
    assert b"node1" not in received  # whatever came back (a TLS alert at most), no status document


def test_plain_http_client_sees_the_connection_closed(tls: Tls) -> None:
    connection = http.client.HTTPConnection(ADDRESS, tls.port, timeout=5.0)
    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/status")
            connection.getresponse()
    finally:
        connection.close()


def test_https_status_with_the_node_ca(tls: Tls) -> None:
    code, body = https(tls, "GET", "/status", tls.verify_only())
    assert code == 200 and json.loads(body)["name"] == "node1"


def test_reads_stay_open_without_credentials(tls: Tls) -> None:
    assert https(tls, "GET", "/health", tls.verify_only())[0] == 503  # not observed yet: judged, not refused
    assert https(tls, "OPTIONS", "/read", tls.verify_only())[0] == 503
    code, body = https(tls, "GET", "/metrics", tls.verify_only())
    assert code == 200 and body
    assert https(tls, "GET", "/nowhere", tls.verify_only())[0] == 404


def test_a_client_trusting_another_ca_fails_verification(tls: Tls, tmp_path: Path) -> None:
    stranger = init_authority(tmp_path / "other-pki", "other")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        https(tls, "GET", "/status", client_context(stranger.ca_file))
    # and the server still answers the next (good) client
    assert https(tls, "GET", "/status", tls.verify_only())[0] == 200


def test_a_client_checks_the_server_name(tls: Tls) -> None:
    # the server's certificate names 127.0.0.251 (and node1), the peer's 127.0.0.250: a client that expects
    # node2's certificate there must refuse it
    context = tls.verify_only()
    with socket.create_connection((ADDRESS, tls.port), timeout=5.0) as raw, \
            context.wrap_socket(raw, server_hostname=ADDRESS) as good:
        peer = good.getpeercert()
        assert peer and peer["subject"] == ((("organizationName", "galera-pilot"),), (("commonName", "node1"),))
    with socket.create_connection((ADDRESS, tls.port), timeout=5.0) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        context.wrap_socket(raw, server_hostname="127.0.0.250")


# --- authorization of POST --------------------------------------------------------------------------------------


def test_post_without_credentials_is_401(tls: Tls) -> None:
    code, body = failsafe(tls, tls.verify_only())
    assert code == 401 and "API token" in json.loads(body)["error"]


@pytest.mark.parametrize("authorization", [
    "Bearer wrong-token-of-some-length",
    "Bearer ",
    "Bearer",
    "Token {token}",  # the right token under another scheme
    "Basic {token}",
    "Bearer {token}x",
    "Bearer x{token}",
    "Bearer {token_prefix}",
])
def test_post_with_a_wrong_token_is_401(tls: Tls, authorization: str) -> None:
    token = tls.bundle.api_token()
    header = authorization.format(token=token, token_prefix=token[:-1])
    code, body = failsafe(tls, tls.verify_only(), {"Authorization": header})
    assert code == 401, (header, body)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_post_with_the_token_is_judged(tls: Tls, scheme: str) -> None:
    assert_failsafe_answered(*failsafe(tls, tls.verify_only(), {"Authorization": f"{scheme} {tls.bundle.api_token()}"}))


def test_post_with_the_token_is_judged_on_its_body(tls: Tls) -> None:
    headers = {"Authorization": f"Bearer {tls.bundle.api_token()}", "Content-Type": "application/json"}
    assert https(tls, "POST", "/failsafe", tls.verify_only(), b"[1, 2]", headers)[0] == 400
    assert https(tls, "POST", "/failsafe", tls.verify_only(), b"{not json", headers)[0] == 400
    assert https(tls, "POST", "/elsewhere", tls.verify_only(), FAILSAFE_BODY, headers)[0] == 404
    code, body = https(tls, "POST", "/failsafe", tls.verify_only(), json.dumps({"ttl": 5}).encode(), headers)
    assert code == 409 and json.loads(body) == {"granted": False, "reason": "the request names no writer"}


def test_post_to_an_unknown_path_without_credentials_is_401_not_404(tls: Tls) -> None:
    assert https(tls, "POST", "/elsewhere", tls.verify_only(), FAILSAFE_BODY)[0] == 401


def test_post_with_a_node_ca_client_certificate_needs_no_token(tls: Tls) -> None:
    code, body = failsafe(tls, tls.with_peer_certificate())
    assert code != 401, body
    assert_failsafe_answered(code, body)
    # the server's own certificate (what its agent presents to peers) is from the node CA too
    own = client_context(tls.bundle.ca, tls.bundle.cert, tls.bundle.key)
    assert_failsafe_answered(*failsafe(tls, own))


def test_post_with_a_client_ca_certificate_is_not_authorized(tls: Tls) -> None:
    # an application's certificate (client CA) must never authorize a state change: the server trusts only
    # the node CA, so the handshake fails (or, were it to complete, the request is refused)
    clients = tls.authority.issue_client("app")
    context = client_context(clients / "ca.pem", clients / "app.pem", clients / "app.key")
    try:
        code, body = failsafe(tls, context)
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError: the handshake failed
        return
    assert code == 401, (code, body)


def test_post_with_a_certificate_from_another_ca_is_not_authorized(tls: Tls, tmp_path: Path) -> None:
    stranger = init_authority(tmp_path / "other-pki", "other")
    theirs = load_bundle(stranger.issue_bundle("intruder", ["127.0.0.251"]))
    context = client_context(tls.bundle.ca, theirs.cert, theirs.key)  # trusts our server, presents theirs
    try:
        code, body = failsafe(tls, context)
    except (OSError, http.client.HTTPException):
        return
    assert code == 401, (code, body)


# --- the handshake runs in the workers, under a timeout ----------------------------------------------------------


def test_a_silent_connection_does_not_block_an_https_request(tls: Tls) -> None:
    silent: list[socket.socket] = []
    try:
        # API_THREADS - 1 connections that never send a ClientHello, each now holding a worker. Connected
        # one at a time: the listen backlog is HTTPServer's 5, and a SYN the kernel drops when it is full is
        # only sent again after 1 s, which is not what this test measures.
        for _ in range(API_THREADS - 1):
            silent.append(socket.create_connection((ADDRESS, tls.port)))
            time.sleep(0.02)
        time.sleep(0.05)
        started = time.monotonic()
        code, _ = https(tls, "GET", "/status", tls.verify_only(), timeout=5.0)
        elapsed = time.monotonic() - started
        assert code == 200
        assert elapsed < 1.0, f"GET /status took {elapsed:.2f} s behind {len(silent)} silent connections"
    finally:
        for sock in silent:
            sock.close()


def test_more_silent_connections_than_workers_are_dropped_after_the_timeout(tls: Tls) -> None:
    silent = [socket.create_connection((ADDRESS, tls.port)) for _ in range(API_THREADS + 2)]
    try:
        started = time.monotonic()
        code, _ = https(tls, "GET", "/status", tls.verify_only(), timeout=30.0)
        elapsed = time.monotonic() - started
        assert code == 200
        assert elapsed < 2 * REQUEST_TIMEOUT + 2.0, f"GET /status waited {elapsed:.2f} s"
        for sock in silent:
            sock.settimeout(30.0)
            with contextlib.suppress(ConnectionResetError):  # closed, or reset: either way not kept
                assert sock.recv(1) == b"", "a silent connection is closed by the server"
    finally:
        for sock in silent:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) this connection; never blocks."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:  # reset, or a TLS EOF / alert
        return True
    finally:
        sock.setblocking(True)


def dribble_until_closed(sock: socket.socket, limit: float, interval: float = 0.25) -> float | None:
    """Send one byte every `interval` (a client too slow to ever finish); seconds until the server closed the
    connection, or None when it was still open after `limit`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if closed_by_server(sock):
            return time.monotonic() - started
        try:
            sock.sendall(b"a")
        except OSError:
            return time.monotonic() - started
        time.sleep(interval)
    return None


def test_a_client_dribbling_its_handshake_is_cut_at_the_timeout(tls: Tls) -> None:
    # the socket timeout bounds the whole handshake (not each read), so a ClientHello that never ends
    # holds a worker for REQUEST_TIMEOUT only
    with socket.create_connection((ADDRESS, tls.port), timeout=5.0) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00")  # a TLS handshake record of 512 bytes... sent one byte at a time
        after = dribble_until_closed(sock, limit=REQUEST_TIMEOUT + 3.0)
    assert after is not None, "a never-ending ClientHello kept its worker"
    assert after < REQUEST_TIMEOUT + 1.0


def test_a_client_dribbling_its_request_after_the_handshake_is_cut(tls: Tls) -> None:
    # api.py: "a short socket timeout keep[s] an idle or slow client from holding a thread for long". A
    # client that completes the handshake and then sends its request one byte at a time, each within the
    # timeout, must still be cut after a bounded time, or API_THREADS such clients starve every check.
    limit = 2 * REQUEST_TIMEOUT + 2.0
    context = tls.verify_only()
    with socket.create_connection((ADDRESS, tls.port), timeout=5.0) as raw, \
            context.wrap_socket(raw, server_hostname=ADDRESS) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.251\r\nX-Slow: ")
        after = dribble_until_closed(sock, limit=limit)
    assert after is not None, (f"PRODUCT BUG: a client sending its request one byte every 0.25 s still held its "
                               f"worker after {limit:g} s (REQUEST_TIMEOUT={REQUEST_TIMEOUT:g} is per read, not "
                               "per request)")


# --- the client side (tls/http.py) ------------------------------------------------------------------------------


def test_api_client_without_a_ca_refuses_an_https_url(tls: Tls) -> None:
    with pytest.raises(ApiUnreachable, match="knows no CA") as caught:
        ApiClient(None).request("GET", f"{tls.url}/status")
    assert tls.url in str(caught.value) and "ca.pem" in str(caught.value)


def test_api_client_with_the_ca_and_the_token(tls: Tls) -> None:
    client = ApiClient(tls.verify_only(), tls.bundle.api_token())
    assert client.tls and "set" in repr(client) and tls.bundle.api_token() not in repr(client)
    try:
        code, body = client.request("GET", f"{tls.url}/status")
        assert code == 200 and json.loads(body)["name"] == "node1"
        assert_failsafe_answered(*client.request("POST", f"{tls.url}/failsafe", FAILSAFE_BODY, authorized=True))
        # the token is sent only when asked for
        assert client.request("POST", f"{tls.url}/failsafe", FAILSAFE_BODY)[0] == 401
    finally:
        client.clear()


def test_api_client_without_a_token_is_refused_a_post(tls: Tls) -> None:
    client = ApiClient(tls.verify_only())
    try:
        assert client.request("POST", f"{tls.url}/failsafe", FAILSAFE_BODY, authorized=True)[0] == 401
    finally:
        client.clear()


def test_api_client_with_a_node_certificate_needs_no_token(tls: Tls) -> None:
    client = ApiClient(tls.with_peer_certificate())
    try:
        assert_failsafe_answered(*client.request("POST", f"{tls.url}/failsafe", FAILSAFE_BODY, authorized=True))
    finally:
        client.clear()


def test_api_client_reports_a_failed_verification(tls: Tls, tmp_path: Path) -> None:
    stranger = init_authority(tmp_path / "other-pki", "other")
    client = ApiClient(client_context(stranger.ca_file))
    try:
        with pytest.raises(ApiUnreachable, match="TLS handshake failed") as caught:
            client.request("GET", f"{tls.url}/status")
        assert "certificate verify failed" in str(caught.value).lower() or "CERTIFICATE_VERIFY_FAILED" in str(
            caught.value)
    finally:
        client.clear()


def test_api_client_over_plain_http_to_the_tls_server_does_not_answer(tls: Tls) -> None:
    client = ApiClient(None)
    try:
        with pytest.raises(ApiUnreachable, match="does not answer"):
            client.request("GET", f"http://{ADDRESS}:{tls.port}/status")
    finally:
        client.clear()
