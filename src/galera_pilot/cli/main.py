"""The `galera-pilot` command line. User errors print one clear message and exit 1, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path

import click
import pymysql
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from galera_pilot.agent.high_water import empty_start_refusal, held_most, shortfall
from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.config import dcs_url_carries_password, redact_dcs_url
from galera_pilot.dcs import DCS
from galera_pilot.embedded.cluster import DEFAULT_READER_BIND, DEFAULT_WRITER_BIND, EmbeddedCluster, find_cluster_config
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.disk import Usage, describe
from galera_pilot.proxy.haproxy_config import parse_bind
from galera_pilot.routing.freshness import skew_warning

LIST_KEYS = ("name", "address", "role", "state", "cluster_status", "cluster_size", "cluster_uuid", "seqno",
             "disk", "activity")


class PilotGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PilotError as error:
            click.echo(f"galera-pilot: {error}", err=True)
            sys.exit(1)


dir_option = click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
                          help="the embedded cluster's folder")


@click.group(cls=PilotGroup)
@click.version_option(package_name="galera-pilot")
def main() -> None:
    """Supervise MariaDB Galera clusters: agents per node, a coordination store, one CLI."""


def _no_password_in_argv(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Any user can read another's command line (ps): an etcd password must come from the environment."""
    if (value is not None and dcs_url_carries_password(value)
            and ctx.get_parameter_source(param.name or "") == ParameterSource.COMMANDLINE):
        raise click.BadParameter(f"{redact_dcs_url(value)}: a password on the command line is visible to every "
                                 "user of this machine (ps); set GALERA_PILOT_DCS to the URL instead", ctx, param)
    return value


@main.command()
@dir_option
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 64), help="number of nodes")
@click.option("--base-address", default="127.0.0.2", show_default=True,
              help="address of node1; node N gets base + N-1")
@click.option("--sst-method", type=click.Choice(["mariabackup", "rsync", "mysqldump"]), default="mariabackup",
              show_default=True, help="state transfer method for nodes created by this call")
@click.option("--seed/--no-seed", "use_seed", default=True, show_default=True,
              help="new nodes copy the initializer's seed datadir and join by IST (--no-seed: full SST)")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for every node to be Synced")
@click.option("--proxy/--no-proxy", "with_proxy", default=True, show_default=True,
              help="also run the managed HAProxy (writer and reader endpoints)")
@click.option("--writer-bind", default=None,
              help=f"ADDRESS:PORT of the writer endpoint [default: as configured, else {DEFAULT_WRITER_BIND}]")
@click.option("--reader-bind", default=None,
              help=f"ADDRESS:PORT of the reader endpoint [default: as configured, else {DEFAULT_READER_BIND}]")
@click.option("--dcs", default=None, metavar="URL", envvar="GALERA_PILOT_DCS", callback=_no_password_in_argv,
              help="coordination store for a new DIR, e.g. etcd://HOST:PORT[,HOST:PORT...] "
              "(default: a SQLite file in DIR); DIR remembers it. A URL with an etcd password "
              "(user:password@) goes in the environment variable GALERA_PILOT_DCS, never on the command line")
@click.option("--cluster-name", default=None, metavar="NAME",
              help="cluster name for a new DIR (default: galera); clusters sharing one etcd need distinct names")
def up(directory: Path, nodes: int, base_address: str, sst_method: str, use_seed: bool, timeout: float,
       with_proxy: bool, writer_bind: str | None, reader_bind: str | None, dcs: str | None,
       cluster_name: str | None) -> None:
    """Lay out DIR (or extend it), start an agent per node and wait until every node is Synced; then start
    the managed HAProxy and wait until clients reach the writer through it."""
    started_at = time.monotonic()
    cluster = EmbeddedCluster.layout(directory, nodes, base_address, sst_method,  # type: ignore[arg-type]
                                     cluster_name=cluster_name, use_seed=use_seed, dcs=dcs)
    started = cluster.start_agents()
    snapshot = cluster.wait_synced(timeout)
    if with_proxy:
        try:
            proxy_config = cluster.configure_proxy(writer_bind, reader_bind)
        except ConfigError as error:
            raise PilotError(f"{error} (the nodes run; fix the binds or use --no-proxy)") from None
        if cluster.proxy_pid() is None:
            cluster.check_proxy_binds(proxy_config)
            cluster.spawn_proxy()
            started.append("proxy")
        cluster.wait_routed(min(timeout, 60.0))
        snapshot = cluster.snapshot()
    elapsed = time.monotonic() - started_at
    names = ", ".join(started) if started else "none (all were running)"
    count = len(cluster.nodes())
    click.echo(f"{count} node{'s' if count != 1 else ''} Synced in {elapsed:.1f} s (agents started: {names})")
    _print_members(cluster, snapshot, "table")
    admin = cluster.credentials().admin_user
    proxy = cluster.proxy_config() if with_proxy else None
    if proxy is not None:
        writer_host, writer_port = _client_address(proxy.writer_bind)
        reader_host, reader_port = _client_address(proxy.reader_bind)
        click.echo(
            f"\nWrites:  mariadb -h {writer_host} -P {writer_port} -u {admin} -p   (the writer, {snapshot.writer})"
            f"\nReads:   mariadb -h {reader_host} -P {reader_port} -u {admin} -p   (any node that may serve reads)"
        )
    else:
        first = cluster.nodes()[0].config
        click.echo(f"\nConnect: mariadb -h {first.address} -P {first.ports.client} -u {admin} -p")
    click.echo(
        f"  (the password is in {cluster.credentials_file}, readable by root only; "
        f"galera-pilot dsn --dir {cluster.dir} prints URLs)"
        f"\nOr:      galera-pilot query --dir {cluster.dir} \"SELECT 1\""
    )


def _client_address(bind: str) -> tuple[str, int]:
    """Where a client connects for a bind address (every address: connect to 127.0.0.1)."""
    host, port = parse_bind(bind)
    return host or "127.0.0.1", port


@main.command()
@dir_option
def down(directory: Path) -> None:
    """Stop every agent and its mariadbd gracefully; data stays in DIR."""
    cluster = find_cluster_config(directory)
    stopped = cluster.stop()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def _rows(cluster: EmbeddedCluster, snapshot: Cluster) -> list[dict[str, object]]:
    rows = []
    names = list(dict.fromkeys([*cluster.meta["nodes"], *snapshot.roster, *snapshot.members]))
    for name in names:
        member = snapshot.members.get(name)
        role = "writer" if snapshot.writer == name else ("maintenance" if name in snapshot.maintenance else "")
        if member is not None:
            seqno = member.seqno if member.running else (member.position.seqno if member.position else -1)
            rows.append({"name": name, "address": member.address, "role": role, "state": member.state,
                         "cluster_status": member.cluster_status, "cluster_size": member.cluster_size,
                         "cluster_uuid": member.cluster_uuid, "seqno": seqno, "disk": disk_column(member.disk),
                         "activity": _with_skew(member.activity, member.clock_skew)})
            continue
        roster = snapshot.roster.get(name)
        address = roster.address if roster else ""
        try:
            node = cluster.node(name)
            address = node.config.address
            state = "stopped" if node.agent_pid() is None else "unreachable"
        except PilotError:
            state = "stopped" if roster and roster.stopped_gracefully else "unreachable"
        rows.append({"name": name, "address": address, "role": role, "state": state, "cluster_status": "",
                     "cluster_size": 0, "cluster_uuid": "", "seqno": -1, "disk": "",
                     "activity": "agent not running" if state == "stopped" else "no heartbeat in the DCS"})
    return rows


def disk_column(disk: dict[str, dict[str, object]]) -> str:
    """`list`'s disk column: the datadir's filesystem, 'LOW' first when under a warning threshold, and
    the other locations (log, base, disk.locations) only when they are low."""
    parts = []
    for location in sorted(disk, key=lambda name: name != "data"):
        entry = disk.get(location)
        if not entry:
            continue
        usage = Usage.from_dict(entry)
        low = bool(entry.get("warning"))
        if location == "data" or low:
            text = f"{describe(usage)} ({usage.free_percent:.0f}%)"
            parts.append(("LOW " if low else "") + (text if location == "data" else f"{location}: {text}"))
    return "; ".join(parts)


def _with_skew(activity: str, skew: float | None) -> str:
    """The activity, prefixed with a warning when the member's host reports its clock skewed."""
    if skew is None or not skew_warning(skew):
        return activity
    return f"clock {abs(skew):.1f} s {'ahead' if skew > 0 else 'behind'}! {activity}"


def _print_members(cluster: EmbeddedCluster, snapshot: Cluster, fmt: str) -> None:
    rows = _rows(cluster, snapshot)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(*LIST_KEYS, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(str(row[k]) for k in LIST_KEYS))
    Console(width=200).print(table)
    if snapshot.high_water is not None:
        click.echo(f"high-water mark: {held_most(snapshot)}")


@main.command(name="list")
@dir_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_members(directory: Path, fmt: str) -> None:
    """One row per member: state, cluster status and size, UUID, seqno, and what its agent is doing."""
    cluster = find_cluster_config(directory)
    _print_members(cluster, cluster.snapshot(), fmt)


@main.command()
@dir_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def history(directory: Path, fmt: str) -> None:
    """Every recorded initialize / bootstrap / join / evict / halt decision, oldest first, with its reason."""
    cluster = find_cluster_config(directory)
    snapshot = cluster.snapshot()
    events = snapshot.history
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in events], indent=2))
        return
    table = Table("time", "member", "action", "reason", box=None, pad_edge=False)
    for event in events:
        stamp = datetime.fromtimestamp(event.at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(stamp, event.member, event.action, event.reason)
    Console(width=200).print(table)
    if snapshot.high_water is not None:
        click.echo(f"high-water mark: {held_most(snapshot)}")


@main.command()
@dir_option
@click.option("--member", required=True, help="the member whose datadir becomes the cluster's state")
@click.option("--force", is_flag=True, help="really order it (without: only show what it would discard)")
@click.option("--empty", is_flag=True,
              help="start a new cluster from nothing on MEMBER's empty datadir (a new cluster UUID)")
def bootstrap(directory: Path, member: str, force: bool, empty: bool) -> None:
    """Order MEMBER to bootstrap after a full outage without waiting for the missing members.

    The agents never do this alone with less than what the recovery policy requires, nor below the
    cluster's high-water mark; a person may, and this command first shows what it would discard.
    With --empty (the data is gone from every node), MEMBER starts a new cluster from nothing.
    """
    cluster = find_cluster_config(directory)
    dcs = cluster.dcs()
    try:
        snapshot = dcs.snapshot()
        if empty:
            _order_empty_start(dcs, snapshot, member, force)
            return
        primary = [m.name for m in snapshot.primary_members]
        if primary:
            raise PilotError(f"a Primary Component exists ({', '.join(sorted(primary))}); nothing to bootstrap")
        target = snapshot.members.get(member)
        if target is None or target.position is None:
            raise PilotError(f"{member} has not reported a position (is its agent running?)")
        if target.position.unusable:
            raise PilotError(f"{member}'s datadir cannot be a bootstrap source: {target.position.unusable}")
        ahead = [f"{n} (seqno {m.position.seqno})" for n, m in sorted(snapshot.members.items())
                 if m.position is not None and m.position.seqno > target.position.seqno]
        missing = sorted(set(snapshot.roster) - {n for n, m in snapshot.members.items() if m.position})
        click.echo(f"{member} is at seqno {target.position.seqno} of cluster {target.position.uuid}.")
        lost = shortfall(snapshot, target.position)
        if lost:
            click.echo(f"WARNING: the cluster had reached {held_most(snapshot)}: bootstrapping {member} discards "
                       f"{lost} committed transactions.")
        if ahead:
            click.echo(f"WARNING: ahead of it: {', '.join(ahead)}; their extra transactions will be discarded.")
        if missing:
            click.echo(f"WARNING: no position from {', '.join(missing)}; they may hold transactions that will be "
                       "discarded when they rejoin.")
        if not force:
            raise PilotError("not ordered; run again with --force to bootstrap from " + member)
        if not dcs.order_bootstrap(member, ttl=120.0):
            raise PilotError("a bootstrap order is already pending")
        dcs.record_history(HistoryEvent(time.time(), member, "force",
                                        f"a person ordered {member} to bootstrap (galera-pilot bootstrap --force)",
                                        {"ahead": ahead, "missing": missing, "discards": lost}))
        click.echo(f"ordered: {member}'s agent bootstraps the cluster within seconds; the others then join it.")
    finally:
        dcs.close()


def _order_empty_start(dcs: DCS, snapshot: Cluster, member: str, force: bool) -> None:
    """`bootstrap --empty`: what starting from nothing discards, then (with --force) the order."""
    refusal = empty_start_refusal(snapshot, member)
    if refusal:
        raise PilotError(refusal)
    old = snapshot.initialize.cluster_uuid if snapshot.initialize else None
    reached = held_most(snapshot) or "an unknown seqno (no high-water mark)"
    click.echo(f"{member}'s datadir is empty. Starting from nothing creates a new cluster UUID; cluster {old} had "
               f"reached {reached}, and all of it is discarded.")
    kept = [n for n, m in sorted(snapshot.members.items()) if m.position is not None and not m.position.empty]
    if kept:
        click.echo(f"Datadirs still holding data ({', '.join(kept)}) are moved aside, not deleted, when they join.")
    if not force:
        raise PilotError(f"not ordered; run again with --force --empty to start a new cluster on {member}")
    if not dcs.order_empty_start(member, ttl=120.0):
        raise PilotError("the initialize record changed meanwhile; look again with `galera-pilot list`")
    dcs.record_history(HistoryEvent(time.time(), member, "force",
                                    f"a person ordered {member} to start a new cluster from nothing, replacing "
                                    f"{old} (galera-pilot bootstrap --force --empty)",
                                    {"empty": True, "replaces": old, "high_water": reached}))
    click.echo(f"ordered: {member}'s agent initializes a new cluster within seconds; the others then join it.")


@main.command()
@dir_option
@click.option("--member", default=None, help="member to run on (default: the first Synced member)")
@click.argument("statement")
def query(directory: Path, member: str | None, statement: str) -> None:
    """Run SQL as the cluster's admin user; rows are printed as tab-separated values."""
    cluster = find_cluster_config(directory)
    snapshot = cluster.snapshot()
    if member is None:
        synced = [m for n, m in sorted(snapshot.members.items()) if m.is_synced]
        if not synced:
            raise PilotError("no member is Synced; start the cluster with `galera-pilot up`")
        target = synced[0]
        host, port = target.address, target.client_port
    else:
        config = cluster.node(member).config
        host, port = config.advertised_address, config.advertised_port("client")
    try:
        connection = sql.connect_tcp(host, port, cluster.credentials())
    except pymysql.MySQLError as error:
        raise PilotError(f"cannot connect to {host}:{port}: {error.args[-1]}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            if cursor.description:
                for row in cursor.fetchall():
                    click.echo("\t".join("NULL" if v is None else _text(v) for v in row))
    except pymysql.MySQLError as error:
        raise PilotError(f"{host}:{port}: {error.args[-1]}") from None
    finally:
        connection.close()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value).replace("\t", "\\t").replace("\n", "\\n")


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def agent(config: Path, log_level: str) -> None:
    """Run one node's agent in the foreground (what `up` spawns and systemd runs)."""
    from galera_pilot.agent.run import run_agent

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    run_agent(config)


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="the proxy configuration (docs/proxy.md)")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def proxy(config_path: Path, log_level: str) -> None:
    """Run the managed HAProxy in the foreground: writer and reader endpoints, membership from the DCS."""
    from galera_pilot.proxy.manager import run_proxy

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    run_proxy(config_path)


@main.command()
@dir_option
@click.option("--role", type=click.Choice(["writer", "reader"]), default=None,
              help="print only this endpoint's URL (default: both, labelled)")
@click.option("--show-password", is_flag=True, help="put the password into the URL (it is printed on stdout)")
def dsn(directory: Path, role: str | None, show_password: bool) -> None:
    """Connection URLs of the writer and reader endpoints (the managed proxy)."""
    from urllib.parse import quote

    cluster = find_cluster_config(directory)
    proxy_config = cluster.proxy_config()
    if proxy_config is None:
        raise PilotError(f"{cluster.dir} has no managed proxy; run galera-pilot up --dir {cluster.dir} --proxy")
    credentials = cluster.credentials()
    user = quote(credentials.admin_user, safe="")
    secret = f":{quote(credentials.admin_password, safe='')}" if show_password else ""
    urls = {}
    for name, bind in (("writer", proxy_config.writer_bind), ("reader", proxy_config.reader_bind)):
        host, port = _client_address(bind)
        urls[name] = f"mysql://{user}{secret}@{host}:{port}/"
    if role is not None:
        click.echo(urls[role])
        return
    for name, url in urls.items():
        click.echo(f"{name}: {url}")
    if not show_password:
        click.echo(f"(password: in {cluster.credentials_file}; --show-password puts it into the URLs)")


@main.command()
@dir_option
@click.option("--to", "target", default=None, help="the member that becomes the writer (default: the best other)")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for the new writer")
def switchover(directory: Path, target: str | None, timeout: float) -> None:
    """Move the writer role gracefully: the writer stops answering /writer (HAProxy drains it), gives the
    lease up, and the chosen member takes it."""
    from galera_pilot.control.handover import run_switchover

    cluster = find_cluster_config(directory)
    dcs = cluster.dcs()
    try:
        click.echo(run_switchover(dcs, target, timeout))
    finally:
        dcs.close()


@main.command()
@dir_option
@click.argument("mode", type=click.Choice(["on", "off"]))
@click.argument("member")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for the node to be drained")
def maintenance(directory: Path, mode: str, member: str, timeout: float) -> None:
    """Drain MEMBER (on): its /read and /writer answer 503, so HAProxy routes around it and it may be
    restarted; off: it serves again once healthy."""
    import urllib.error
    import urllib.request

    from galera_pilot.control.handover import fetch_status, keeper_refusal

    cluster = find_cluster_config(directory)
    node = cluster.node(member)
    if mode == "on":
        # An agent that answers but does not read the DCS would never see the mark: refuse at once, with
        # the reason. (An agent that does not answer at all is out of the endpoints already: HAProxy's
        # checks fail too, so it counts as drained below.)
        document, _ = fetch_status(node.config.api_url)
        why = keeper_refusal(document) if document is not None else ""
        if why:
            raise PilotError(f"maintenance refused: {member} could not see the mark: {why}")
    dcs = cluster.dcs()
    try:
        dcs.set_maintenance(member, mode == "on")
    finally:
        dcs.close()
    if mode == "off":
        click.echo(f"{member}: maintenance off; it serves reads (and may be elected writer) once healthy")
        return

    def code(path: str) -> int:
        request = urllib.request.Request(node.config.api_url + path, method="OPTIONS")
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0  # the agent is not answering: HAProxy's check fails too

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if code("/read") != 200 and code("/writer") != 200:
            writer = cluster.snapshot().writer
            click.echo(f"{member}: drained in {time.monotonic() - started:.2f} s (/read and /writer answer 503); "
                       f"the writer is {writer or 'nobody yet'}. It may be restarted now.")
            return
        time.sleep(0.05)
    raise PilotError(f"{member} still answers 200 on /read or /writer after {timeout:.0f} s")
