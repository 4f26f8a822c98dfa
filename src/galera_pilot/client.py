"""Connect straight to the cluster's writer, without the proxy hop (for Python applications).

HAProxy costs a second TCP hop and CPU on the same machine (docs/benchmarks.md). An application that
can reconnect on errors may instead ask the agents which node is the writer and connect to it directly:

    from galera_pilot.client import connect_writer
    connection = connect_writer(["http://10.0.0.1:8008", "http://10.0.0.2:8008"], user, password)

What the proxy does that this does not: it closes sessions on a node that stops being the writer
(`on-marked-down shutdown-sessions`). A direct connection stays open on the old writer after a
switchover, so an application using this helper must reconnect (call `connect_writer` again) on any
error *and* when it wants to follow a switchover, e.g. by checking `is_writer(connection)` per
transaction or on a timer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import pymysql

from galera_pilot.errors import PilotError


def find_writer(api_urls: Iterable[str], timeout: float = 0.5) -> tuple[str, int, str]:
    """(address, client port, name) of the member whose agent answers `/writer` with 200."""
    tried = []
    for url in api_urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/writer", timeout=timeout) as response:
                member = json.loads(response.read())
            return str(member["address"]), int(member["client_port"]), str(member["name"])
        except urllib.error.HTTPError as error:
            tried.append(f"{url}: {error.code}")
        except (OSError, ValueError, KeyError) as error:
            tried.append(f"{url}: {error}")
    raise PilotError(f"no agent answers /writer with 200 ({'; '.join(tried) or 'no agent URLs given'})")


def connect_writer(api_urls: Iterable[str], user: str, password: str, **connect_args: Any) -> pymysql.Connection:
    """A PyMySQL connection to the current writer (connect_args go to pymysql.connect)."""
    address, port, _name = find_writer(list(api_urls))
    connect_args.setdefault("connect_timeout", 2)
    return pymysql.connect(host=address, port=port, user=user, password=password, **connect_args)


def is_writer(connection: pymysql.Connection, api_urls: Iterable[str]) -> bool:
    """Is this connection still on the writer? (one SELECT and one HTTP request)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@wsrep_node_name")
        row = cursor.fetchone()
    if row is None:
        return False
    name = str(row[0])
    try:
        return find_writer(api_urls)[2] == name
    except PilotError:
        return False
