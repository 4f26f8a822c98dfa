"""Rendering a node's my.cnf from its typed config.

The file carries wsrep_sst_auth (the SST scripts read it from here), so it is written 0640 and owned by
the mariadbd user's group: readable by mariadbd and its SST scripts, by nobody else.
"""

from __future__ import annotations

import shlex
import zlib
from collections.abc import Sequence

from galera_pilot.config import NodeConfig, option_key
from galera_pilot.credentials import Credentials
from galera_pilot.events.notify import SCRIPT as NOTIFY_SCRIPT
from galera_pilot.tls.node import server_tls_paths as tls_paths


def provider_options(config: NodeConfig) -> str:
    """Listen on `address` and the listen ports; tell peers the advertised address and ports.

    gmcast.listen_addr is what Galera binds; peers dial what wsrep_cluster_address names (the advertised
    galera address from the member records) and learn this node as wsrep_node_address. IST: the joiner
    sends ist.recv_addr to its donor, which dials it, so that is the advertised address; ist.recv_bind is
    what the joiner binds when the two differ. The IST port itself cannot be remapped (config validation):
    Galera puts the bound port into the IST request.
    """
    advertised = config.advertised_address
    options = {
        # Each node binds its own address: several nodes share one host on 127.0.0.x.
        "gmcast.listen_addr": f"tcp://{config.address}:{config.ports.galera}",
        "ist.recv_addr": f"{advertised}:{config.ports.ist}",
    }
    if advertised != config.address:
        options["ist.recv_bind"] = f"{config.address}:{config.ports.ist}"
    options |= {
        "gcache.size": config.mariadb.gcache_size,
        # pc.recovery lets the last Primary Component re-form by itself after all nodes crashed.
        "pc.recovery": "TRUE",
        # How often membership (join) messages are resent: it paces every view change, and writes stall
        # during a view change (see MariadbSettings.join_retrans_period).
        "evs.join_retrans_period": f"PT{config.mariadb.join_retrans_period:g}S",
    }
    options.update(sorted(config.mariadb.provider_options.items()))  # the person's own (config validation)
    if config.tls.enabled:
        # Replication and IST over TLS, strictly: no socket.dynamic (with every node dynamic one link stayed
        # plaintext, measured). Galera checks the peer's chain against the node CA, not its name.
        paths = tls_paths(config)
        options |= {"socket.ssl_cert": paths["cert"], "socket.ssl_key": paths["key"], "socket.ssl_ca": paths["ca"]}
        if config.tls.migrating:  # `tls enable`: plaintext peers still get in, until every node speaks TLS
            options["socket.dynamic"] = "true"
    return ";".join(f"{k}={v}" for k, v in options.items())


def sst_receive_address(config: NodeConfig) -> str:
    # mysqldump SST is pushed into the joiner's running server, through its extra port (see below);
    # the other methods listen on the SST port.
    # The donor dials this, so it is the advertised address; the port is always the listen port
    # (config validation: the SST scripts listen on this very port).
    return f"{config.advertised_address}:{config.ports.sst}"


def node_address(config: NodeConfig) -> str:
    """wsrep_node_address: the advertised address, with the galera port only when it is not the listen port
    (Galera takes the port as base_port; gmcast.listen_addr still says what is bound)."""
    port = config.advertised_port("galera")
    return config.advertised_address if port == config.ports.galera else f"{config.advertised_address}:{port}"


def notifications_on(config: NodeConfig) -> bool:
    """Whether mariadbd runs galera-pilot's wsrep_notify_cmd. mariadbd runs it through `sh -c`, with the
    members' names in the command line as the other nodes give them: only where Galera admits no node
    without a certificate of the node CA (strict TLS) does every name come from a node of ours. A
    plaintext cluster admits any node that reaches its port, and a name like `x;cmd` would run `cmd`
    as the mysql user on every node."""
    return config.tls.enabled and not config.tls.migrating


BINLOG_BASENAME = "mariadb-bin"
APPLIER_THREADS = 4  # wsrep_slave_threads unless the node or the cluster settings say otherwise


def local_gtid_domain(name: str, cluster_domain: int) -> int:
    """gtid_domain_id for what a node writes outside replication (wsrep_on=OFF): a domain of its own, so
    that such a transaction never takes a seqno of the cluster's domain on one node only (the cluster's
    sequence would then differ between nodes, and archives of different nodes would not continue each
    other). Derived from the name: the same on every start, different between nodes."""
    domain = 1_000_000 + zlib.crc32(name.encode()) % 1_000_000_000
    return domain if domain != cluster_domain else domain + 1


def binlog_settings(config: NodeConfig) -> list[tuple[str, str]]:
    """With `backup.binlogs.archive`: binary logs in the datadir and GTIDs identical on every node (one
    wsrep_gtid_domain_id, wsrep_gtid_mode, log_slave_updates, the same server_id: with differing ids
    mariabackup records an empty GTID on every node but the bootstrap one, MDEV-26223)."""
    binlogs = config.backup.binlogs
    if not binlogs.archive:
        return []
    return [
        ("log_bin", BINLOG_BASENAME),
        ("log_slave_updates", "ON"),
        ("server_id", "1"),
        ("wsrep_gtid_mode", "ON"),
        ("wsrep_gtid_domain_id", str(binlogs.domain_id)),
        ("gtid_domain_id", str(local_gtid_domain(config.name, binlogs.domain_id))),
        ("binlog_expire_logs_seconds", str(int(binlogs.keep_local_hours * 3600))),
    ]


def render_mycnf(config: NodeConfig, credentials: Credentials, peers: Sequence[str],
                 start_position: str | None = None, sst_donor: str = "") -> str:
    """my.cnf for one start of mariadbd; `peers` are host:port gcomm addresses (empty: new cluster).

    `start_position` (uuid:seqno from --wsrep-recover) is set after a crash: grastate.dat then says -1 and
    without it the node would ask for a full SST instead of an IST (Debian's galera_recovery does the same).
    `sst_donor`: the member `galera-pilot reinit` chose to rebuild this node from; the trailing comma of
    wsrep_sst_donor lets Galera fall back to another donor should that one be unable to donate.
    """
    user = config.effective_mariadbd_user
    lines = [
        "# Generated by galera-pilot for node " + config.name + " on every start; edits are overwritten.",
        "[mariadbd]",
    ]
    if user:
        lines.append(f"user = {user}")
    settings: list[tuple[str, str]] = [
        ("datadir", str(config.data_dir)),
        ("socket", str(config.socket)),
        ("pid-file", str(config.pid_file)),
        ("log-error", str(config.error_log)),
        ("bind-address", config.address),
        ("port", str(config.ports.client)),
        ("skip-name-resolve", "ON"),
        ("performance_schema", "OFF"),
        ("default_storage_engine", "InnoDB"),
        ("binlog_format", "ROW"),
        ("innodb_autoinc_lock_mode", "2"),
        ("innodb_buffer_pool_size", config.mariadb.innodb_buffer_pool_size),
        ("innodb_log_file_size", config.mariadb.innodb_log_file_size),
        ("innodb_flush_log_at_trx_commit", str(config.mariadb.innodb_flush_log_at_trx_commit)),
        ("wsrep_on", "ON"),
        ("wsrep_provider", config.binaries.galera_provider),
        ("wsrep_cluster_name", config.cluster_name),
        ("wsrep_cluster_address", "gcomm://" + ",".join(peers)),
        ("wsrep_node_name", config.name),
        ("wsrep_node_address", node_address(config)),
        ("wsrep_provider_options", '"' + provider_options(config) + '"'),
        ("wsrep_sst_method", config.sst_method),
        ("wsrep_sst_receive_address", sst_receive_address(config)),
        ("wsrep_sst_auth", f"{credentials.sst_user}:{credentials.sst_password}"),
    ]
    if notifications_on(config):
        # Galera's state and view changes, queued for the agent (events/notify.py; the starter writes it).
        settings.append(("wsrep_notify_cmd", shlex.quote(str(config.base_dir / NOTIFY_SCRIPT))))
    if config.sst_method == "mysqldump":
        # wsrep_sst_mysqldump refuses a destination that is a local address with the donor's own port
        # ("matches source address"), which is every peer when nodes share a host on 127.0.0.x with the
        # standard port. The joiner therefore takes the dump on its extra port (= the SST port).
        settings += [("extra_port", str(config.ports.sst)), ("extra_max_connections", "8")]
    if config.advertises_elsewhere:
        # What wsrep_incoming_addresses shows other nodes and clients as this node's client address.
        settings.append(("wsrep_node_incoming_address",
                         f"{config.advertised_address}:{config.advertised_port('client')}"))
    if start_position:
        settings.append(("wsrep_start_position", start_position))
    # `tls enable`'s first step keeps state transfers and clients plaintext: the SST scripts read ssl-* from
    # [mariadbd] too, and donor and joiner must agree (the IST stream runs through them as well).
    tls = tls_paths(config) if config.tls.enabled and config.tls.migrating != "galera" else None
    if tls:
        # Clients: TLS or the unix socket (the agent's way in). ssl_ca also trusts the client CA, so
        # application users created REQUIRE X509 can present a certificate from it.
        settings += [("ssl_ca", tls["client_trust"]), ("ssl_cert", tls["cert"]), ("ssl_key", tls["key"])]
        if not config.tls.migrating:
            settings.append(("require_secure_transport", "ON"))
    if sst_donor:
        settings.append(("wsrep_sst_donor", f"{sst_donor},"))
    settings += binlog_settings(config)
    if not any(option_key(key) == "wsrep_slave_threads" for key in config.mariadb.extra):
        # Parallel appliers: a node rejoining under writes catches up by IST that much faster (one applier:
        # 16 s from Joining to Synced at 450 writes/s on 2 cores; four: 1.6 s, docs/benchmarks.md). Galera
        # still commits in the cluster's order. `mariadb.wsrep_slave_threads` (edit-config) overrides it.
        settings.append(("wsrep_slave_threads", str(APPLIER_THREADS)))
    settings += sorted(config.mariadb.extra.items())
    lines += [f"{key} = {value}" for key, value in settings]
    lines += [
        "",
        "[sst]",
        # The joiner's socat listens on the wildcard address by default, so two joiners on one host
        # collide on *:4444; binding to the node's own address lets them run at the same time.
        f'sockopt = ",bind={config.address}"',
    ]
    if tls:
        # The SST stream (mariabackup's socat, rsync's stunnel) over TLS against the node CA only. It runs
        # for IST-only joins too, so donor and joiner must agree on these. mariabackup checks the peer's
        # name (localhost for a local address: node certificates carry it); rsync's stunnel would pin
        # the peer's certificate with VERIFY_IDENTITY, so it checks the chain.
        mode = "VERIFY_IDENTITY" if config.sst_method == "mariabackup" else "VERIFY_CA"
        lines += [f"ssl-ca = {tls['ca']}", f"ssl-cert = {tls['cert']}", f"ssl-key = {tls['key']}",
                  f"ssl-mode = {mode}"]
    lines += ["", "[client]", f"socket = {config.socket}"]
    if tls:
        # mysqldump SST: the donor's client pushes the dump to the joiner over TCP with these.
        lines += [f"ssl-ca = {tls['ca']}", f"ssl-cert = {tls['cert']}", f"ssl-key = {tls['key']}",
                  "ssl-verify-server-cert"]
    lines.append("")
    return "\n".join(lines)


# ---- the file as the record of what the running server was started with (settings/follow.py) -------------
def server_section(text: str) -> dict[str, str]:
    """The [mariadbd] section's `key = value` lines, keys spelled as option_key(), values unquoted."""
    values: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif section == "mariadbd" and stripped and not stripped.startswith(("#", ";")):
            key, _, value = stripped.partition("=")
            values[option_key(key)] = value.strip().strip('"')
    return values


def provider_option_map(text: str) -> dict[str, str]:
    """wsrep_provider_options' `a=b;c=d` as a mapping."""
    options = {}
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            options[name.strip()] = value.strip()
    return options


def patch_server_section(text: str, changes: dict[str, str | None]) -> str:
    """`text` with the [mariadbd] lines of `changes` replaced (None: removed, absent: appended to the
    section): how a setting applied at runtime is written down without touching the others."""
    pending = {option_key(k): v for k, v in changes.items()}
    out: list[str] = []
    section = ""

    def flush() -> None:
        out.extend(f"{key} = {value}" for key, value in pending.items() if value is not None)
        pending.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if section == "mariadbd":
                while out and not out[-1].strip():
                    out.pop()
                flush()
                out.append("")
            section = stripped[1:-1].strip()
        elif section == "mariadbd" and stripped and not stripped.startswith(("#", ";")):
            key = option_key(stripped.partition("=")[0])
            if key in pending:
                value = pending.pop(key)
                if value is not None:
                    out.append(f"{key} = {value}")
                continue
        out.append(line)
    if section == "mariadbd":
        flush()
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


TLS_SERVER_KEYS = ("ssl_ca", "ssl_cert", "ssl_key")


def with_tls_sections(running: str, fresh: str) -> str:
    """`running` (what a server was started with) with the state-transfer and client TLS of `fresh` (a
    render of the same node's next configuration): its [sst] and [client] sections, and the server's
    ssl_* lines. `tls enable` writes this on every node at once, so that donors and joiners agree while
    the servers still run as they were started (the SST scripts read the file at every transfer)."""
    marker = "\n[sst]\n"
    if marker not in running or marker not in fresh:
        raise ValueError("not a my.cnf rendered by galera-pilot: no [sst] section")
    wanted = server_section(fresh)
    patched = patch_server_section(running, {key: wanted.get(key) for key in TLS_SERVER_KEYS})
    return patched[:patched.index(marker)] + fresh[fresh.index(marker):]
