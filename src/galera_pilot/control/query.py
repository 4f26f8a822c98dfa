"""`query` and `dsn`: reaching the cluster's SQL side as its admin user.

Neither needs the DCS when this host knows enough: `query --member NAME` connects to the address the
folder or configuration gives for NAME, `dsn` prints the configured endpoints. Without `--member`,
`query` picks the first Synced member from the DCS, or, while the DCS is unreachable, from the members'
own REST APIs.
"""

from __future__ import annotations

from urllib.parse import quote

import pymysql

from galera_pilot.control.members import ask_members, member_address
from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.errors import PilotError
from galera_pilot.mariadb import sql
from galera_pilot.proxy.haproxy_config import parse_bind


def query_target(target: ClusterTarget, member: str | None) -> tuple[str, int]:
    """HOST, PORT to run a statement on."""
    if member is not None:
        return member_address(target, member)
    try:
        snapshot = target.snapshot()
    except DCSUnreachable:
        view = ask_members(target.known)
        healthy = [view.members[n] for n, d in sorted(view.statuses.items()) if (d.get("routing") or {}).get("healthy")]
        if healthy and healthy[0].address:
            return healthy[0].address, healthy[0].client_port
        raise PilotError("the DCS is unreachable and no member that answered its REST API is healthy "
                         f"(answered: {', '.join(view.answered) or 'none'})") from None
    synced = [m for _, m in sorted(snapshot.members.items()) if m.is_synced]
    if synced:
        return synced[0].address, synced[0].client_port
    raise PilotError("no member is Synced (galera-pilot list shows what each is doing)")


def run_statement(target: ClusterTarget, member: str | None, statement: str) -> list[str]:
    """The statement's rows as tab-separated lines (NULL for NULL), run as the admin user."""
    credentials = target.credentials()
    host, port = query_target(target, member)
    try:
        connection = sql.connect_tcp(host, port, credentials)
    except pymysql.MySQLError as error:
        raise PilotError(f"cannot connect to {host}:{port}: {error.args[-1]}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            if not cursor.description:
                return []
            return ["\t".join("NULL" if v is None else _text(v) for v in row) for row in cursor.fetchall()]
    except pymysql.MySQLError as error:
        raise PilotError(f"{host}:{port}: {error.args[-1]}") from None
    finally:
        connection.close()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value).replace("\t", "\\t").replace("\n", "\\n")


def client_address(bind: str) -> tuple[str, int]:
    """Where a client connects for a bind address (every address: connect to 127.0.0.1)."""
    host, port = parse_bind(bind)
    return host or "127.0.0.1", port


def endpoint_urls(target: ClusterTarget, show_password: bool) -> dict[str, str]:
    """mysql:// URLs of the writer and reader endpoints known for this target."""
    endpoints = {"writer": target.endpoints.writer, "reader": target.endpoints.reader}
    if not any(endpoints.values()):
        raise PilotError(f"no client endpoints are known for {target.source}: give -c with a proxy configuration "
                         "or a control configuration's endpoints: (writer/reader HOST:PORT), or --dir of a folder "
                         "with a managed proxy")
    user, secret = "USER", ""
    if target.credentials_file is not None:
        credentials = target.credentials()
        user = quote(credentials.admin_user, safe="")
        secret = f":{quote(credentials.admin_password, safe='')}" if show_password else ""
    elif show_password:
        raise PilotError(f"no admin credentials known for {target.source}; --show-password needs them")
    urls = {}
    for role, bind in endpoints.items():
        if bind:
            host, port = client_address(bind)
            urls[role] = f"mysql://{user}{secret}@{host}:{port}/"
    return urls
