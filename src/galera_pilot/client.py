"""Connect straight to the cluster's writer, without the proxy hop (for Python applications).

HAProxy costs a second TCP hop and CPU on the same machine (docs/benchmarks.md). An application that
can reconnect on errors may instead ask the agents which node is the writer and connect to it directly:

    from galera_pilot.client import connect_writer
    connection = connect_writer(["https://10.0.0.1:8008", "https://10.0.0.2:8008"], user, password,
                                ca_file="/etc/galera-pilot/tls/ca.pem")

With `ca_file` (the cluster's node CA) both the agents' HTTPS API and the server's certificate are
verified, names included (PyMySQL's `ssl_ca` alone would verify neither); without it the agents must
be plaintext (`--no-tls`).

What the proxy does that this does not: it closes sessions on a node that stops being the writer
(`on-marked-down shutdown-sessions`). A direct connection stays open on the old writer after a
switchover, so an application using this helper must reconnect (call `connect_writer` again) on any
error *and* when it wants to follow a switchover, e.g. by checking `is_writer(connection)` per
transaction or on a timer.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pymysql

from galera_pilot.errors import PilotError
from galera_pilot.tls.contexts import client_context
from galera_pilot.tls.http import ApiClient, ApiUnreachable


@functools.lru_cache(maxsize=8)
def _trust(ca_file: str | None) -> tuple[ApiClient, ssl.SSLContext | None]:
    """One API client and one TLS context per CA file, built once (a context per connect costs ~18 ms)."""
    context = client_context(Path(ca_file)) if ca_file else None
    return ApiClient(context), context


def find_writer(api_urls: Iterable[str], timeout: float = 0.5, ca_file: str | None = None) -> tuple[str, int, str]:
    """(address, client port, name) of the member whose agent answers `/writer` with 200."""
    client, _context = _trust(ca_file)
    tried = []
    for url in api_urls:
        try:
            status, body = client.request("GET", url.rstrip("/") + "/writer", timeout=timeout)
            if status != 200:
                tried.append(f"{url}: {status}")
                continue
            member = json.loads(body)
            return str(member["address"]), int(member["client_port"]), str(member["name"])
        except (ApiUnreachable, ValueError, KeyError) as error:
            tried.append(f"{url}: {error}")
    raise PilotError(f"no agent answers /writer with 200 ({'; '.join(tried) or 'no agent URLs given'})")


def connect_writer(api_urls: Iterable[str], user: str, password: str, ca_file: str | None = None,
                   **connect_args: Any) -> pymysql.Connection:
    """A PyMySQL connection to the current writer (connect_args go to pymysql.connect); with `ca_file`
    over TLS, verifying the server's certificate and name."""
    address, port, _name = find_writer(list(api_urls), ca_file=ca_file)
    connect_args.setdefault("connect_timeout", 2)
    context = _trust(ca_file)[1]
    if context is not None:
        connect_args.setdefault("ssl", context)
    return pymysql.connect(host=address, port=port, user=user, password=password, **connect_args)


def is_writer(connection: pymysql.Connection, api_urls: Iterable[str], ca_file: str | None = None) -> bool:
    """Is this connection still on the writer? (one SELECT and one HTTP request)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@wsrep_node_name")
        row = cursor.fetchone()
    if row is None:
        return False
    name = str(row[0])
    try:
        return find_writer(api_urls, ca_file=ca_file)[2] == name
    except PilotError:
        return False
