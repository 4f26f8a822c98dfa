"""The REST API server's own behaviour (agent/api.py): kept worker threads, one answer per connection,
and clients that connect and say nothing cannot starve the health checks.

A real `Ha` on a real SQLite DCS, with no mariadbd: every check answers 503 ("not observed yet"), which
is all these tests need; the checks' judgements are tested in test_routing.py and the integration tests."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from unit_helpers import make_config

from galera_pilot.agent.api import API_THREADS, ApiServer
from galera_pilot.agent.ha import Ha
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.sqlite import SQLiteDCS

CREDENTIALS = Credentials("pilot_admin", "admin-secret", "pilot_sst", "sst-Secret_123")
ADDRESS = "127.0.0.253"  # no test runs a node there


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    ha = Ha(make_config(address=ADDRESS, ports={"client": 3306, "galera": 4567, "ist": 4568, "sst": 4444,
                                                 "api": 18008}), dcs, CREDENTIALS)
    api = ApiServer(ADDRESS, 0, ha)
    api.start()
    try:
        yield api
    finally:
        api.shutdown()
        api.server_close()
        dcs.close()


def request(server: ApiServer, method: str, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(ADDRESS, server.server_address[1], timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_checks_and_status_answer_and_close_the_connection(server: ApiServer) -> None:
    code, headers, body = request(server, "OPTIONS", "/health")
    assert code == 503 and headers["connection"] == "close" and body == b""
    code, headers, body = request(server, "GET", "/status")
    assert code == 200 and json.loads(body)["name"] == "node1"
    assert "peers" in json.loads(body)
    assert request(server, "GET", "/nowhere")[0] == 404


def test_requests_reuse_the_kept_threads(server: ApiServer) -> None:
    for _ in range(50):
        request(server, "OPTIONS", "/read")
    workers = [t for t in threading.enumerate() if t.name.startswith("rest-api-worker")]
    assert 1 <= len(workers) <= API_THREADS


def test_silent_clients_do_not_starve_the_checks(server: ApiServer) -> None:
    # More idle connections than worker threads: each is dropped after REQUEST_TIMEOUT (the server
    # closes it: the client reads EOF), so the check behind them is answered, not queued for good.
    idle = [socket.create_connection((ADDRESS, server.server_address[1])) for _ in range(API_THREADS + 2)]
    try:
        assert request(server, "OPTIONS", "/health", timeout=60.0)[0] == 503
        for sock in idle:
            sock.settimeout(60.0)
            assert sock.recv(1) == b"", "an idle connection is closed by the server"
    finally:
        for sock in idle:
            sock.close()
