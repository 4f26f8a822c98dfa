"""SQL access to the local mariadbd over its unix socket, with short timeouts.

The agent must never hang on a sick server, so every connection has connect/read/write timeouts of a
couple of seconds; the REST API answers from the last observation instead of querying live.

The unix socket never negotiates TLS (`ssl_disabled`): PyMySQL 1.2 made TLS "preferred" by default and
builds a new SSL context, loading the system CA store, on every connect: 18 ms of CPU per connect and
status query over the unix socket, against 0.3 ms without (measured). TCP connections use one context,
built once per process (tls/contexts.py), that verifies the server's certificate and name; without one
(a cluster running --no-tls) they are plaintext, never "preferred".
"""

from __future__ import annotations

import ssl

import pymysql

from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.tls.contexts import mysql_context

PROCESS_DEFAULT = object()  # connect_tcp's tls: this process's context (tls.contexts.use_mysql_context)

WSREP_STATUS_KEYS = (
    "wsrep_ready",
    "wsrep_connected",
    "wsrep_local_state_comment",
    "wsrep_cluster_status",
    "wsrep_cluster_size",
    "wsrep_cluster_state_uuid",
    "wsrep_last_committed",
    "wsrep_gcomm_uuid",
    "wsrep_local_index",
    "wsrep_incoming_addresses",
    # for /read?max_queue=N and /metrics
    "wsrep_local_state",
    "wsrep_local_recv_queue",
    "wsrep_local_send_queue",
    "wsrep_flow_control_paused",
    "wsrep_flow_control_paused_ns",  # a counter: /metrics' rate() of it is flow control over any window
    "wsrep_desync_count",
    # for a rolling restart's gcache check (agent/write_rate.py)
    "wsrep_replicated_bytes",
    "wsrep_received_bytes",
)


def connect_socket(config: NodeConfig, credentials: Credentials | None, timeout: float = 2.0):
    """Connect over the node's socket: as the admin user, or as OS root (unix_socket auth) when None."""
    user, password = ("root", "") if credentials is None else (credentials.admin_user, credentials.admin_password)
    return pymysql.connect(
        unix_socket=str(config.socket),
        user=user,
        password=password,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
        ssl_disabled=True,  # a unix socket never needs TLS
    )


def connect_tcp(host: str, port: int, credentials: Credentials, timeout: float = 5.0,
                database: str | None = None, tls: ssl.SSLContext | object | None = PROCESS_DEFAULT):
    """A TCP connection as the admin user; `tls`: a context (verifying), None (plaintext) or the process's."""
    context = mysql_context() if tls is PROCESS_DEFAULT else tls
    verified = context if isinstance(context, ssl.SSLContext) else None
    return pymysql.connect(
        host=host,
        port=port,
        user=credentials.admin_user,
        password=credentials.admin_password,
        database=database,
        connect_timeout=timeout,
        read_timeout=max(timeout, 30.0),
        write_timeout=max(timeout, 30.0),
        autocommit=True,
        ssl=verified,
        ssl_disabled=verified is None,
    )


def node_name(connection) -> str:
    """The wsrep_node_name of the server a connection reached (through a proxy: which node it chose)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@wsrep_node_name")
        return str(cursor.fetchone()[0])


def global_status(connection, names: tuple[str, ...]) -> dict[str, str]:
    """These status variables (lower-case names) in one query; absent ones are left out."""
    placeholders = ",".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({placeholders})", names)
        return {str(name).lower(): str(value) for name, value in cursor.fetchall()}


def wsrep_status(connection) -> dict[str, str]:
    return global_status(connection, WSREP_STATUS_KEYS)


def server_version(connection) -> str:
    """The running server's version (`10.11.19-MariaDB-0+deb12u1`): what `list` shows and upgrades compare."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        return str(cursor.fetchone()[0])


def secure_and_create_users(connection, credentials: Credentials) -> None:
    """Remove anonymous users and create the admin and SST accounts (or, in a restored datadir, give the
    ones it has this cluster's passwords).

    Runs on the initializer while it is the only node, with wsrep on: CREATE/DROP USER and GRANT are
    DDL, replicated and part of the seed, so every node gets the same accounts.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT user, host FROM mysql.user WHERE user = ''")
        for user, host in cursor.fetchall():
            cursor.execute("DROP USER %s@%s", (user, host))
        for host in ("localhost", "%"):
            cursor.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                           (credentials.admin_user, host, credentials.admin_password))
            # A restored datadir brings its own accounts: their passwords become this cluster's.
            cursor.execute("ALTER USER %s@%s IDENTIFIED BY %s",
                           (credentials.admin_user, host, credentials.admin_password))
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION",
                           (credentials.admin_user, host))
            # mysqldump SST loads the dump into the joiner as this user, so it needs full privileges.
            cursor.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                           (credentials.sst_user, host, credentials.sst_password))
            cursor.execute("ALTER USER %s@%s IDENTIFIED BY %s", (credentials.sst_user, host, credentials.sst_password))
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s", (credentials.sst_user, host))
        cursor.execute("DROP DATABASE IF EXISTS test")
