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
from rich.console import Console
from rich.table import Table

from galera_pilot.cluster import Cluster, HistoryEvent
from galera_pilot.embedded import EmbeddedCluster, find_cluster_config
from galera_pilot.errors import PilotError
from galera_pilot.mariadb import sql

LIST_KEYS = ("name", "address", "state", "cluster_status", "cluster_size", "cluster_uuid", "seqno", "activity")


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
@click.option("--dcs", default=None, metavar="URL",
              help="coordination store for a new DIR, e.g. etcd://HOST:PORT[,HOST:PORT...] "
              "(default: a SQLite file in DIR); DIR remembers it")
@click.option("--cluster-name", default=None, metavar="NAME",
              help="cluster name for a new DIR (default: galera); clusters sharing one etcd need distinct names")
def up(directory: Path, nodes: int, base_address: str, sst_method: str, use_seed: bool, timeout: float,
       dcs: str | None, cluster_name: str | None) -> None:
    """Lay out DIR (or extend it), start an agent per node and wait until every node is Synced."""
    started_at = time.monotonic()
    cluster = EmbeddedCluster.layout(directory, nodes, base_address, sst_method,  # type: ignore[arg-type]
                                     cluster_name=cluster_name, use_seed=use_seed, dcs=dcs)
    started = cluster.start_agents()
    snapshot = cluster.wait_synced(timeout)
    elapsed = time.monotonic() - started_at
    names = ", ".join(started) if started else "none (all were running)"
    count = len(cluster.nodes())
    click.echo(f"{count} node{'s' if count != 1 else ''} Synced in {elapsed:.1f} s (agents started: {names})")
    _print_members(cluster, snapshot, "table")
    first = cluster.nodes()[0].config
    click.echo(
        f"\nConnect: mariadb -h {first.address} -P {first.ports.client} -u {cluster.credentials().admin_user} -p"
        f"\n  (the password is in {cluster.credentials_file}, readable by root only)"
        f"\nOr:      galera-pilot query --dir {cluster.dir} \"SELECT 1\""
    )


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
        if member is not None:
            seqno = member.seqno if member.running else (member.position.seqno if member.position else -1)
            rows.append({"name": name, "address": member.address, "state": member.state,
                         "cluster_status": member.cluster_status, "cluster_size": member.cluster_size,
                         "cluster_uuid": member.cluster_uuid, "seqno": seqno, "activity": member.activity})
            continue
        roster = snapshot.roster.get(name)
        address = roster.address if roster else ""
        try:
            node = cluster.node(name)
            address = node.config.address
            state = "stopped" if node.agent_pid() is None else "unreachable"
        except PilotError:
            state = "stopped" if roster and roster.stopped_gracefully else "unreachable"
        rows.append({"name": name, "address": address, "state": state, "cluster_status": "",
                     "cluster_size": 0, "cluster_uuid": "", "seqno": -1,
                     "activity": "agent not running" if state == "stopped" else "no heartbeat in the DCS"})
    return rows


def _print_members(cluster: EmbeddedCluster, snapshot: Cluster, fmt: str) -> None:
    rows = _rows(cluster, snapshot)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(*LIST_KEYS, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(str(row[k]) for k in LIST_KEYS))
    Console(width=200).print(table)


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
    events = cluster.snapshot().history
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in events], indent=2))
        return
    table = Table("time", "member", "action", "reason", box=None, pad_edge=False)
    for event in events:
        stamp = datetime.fromtimestamp(event.at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(stamp, event.member, event.action, event.reason)
    Console(width=200).print(table)


@main.command()
@dir_option
@click.option("--member", required=True, help="the member whose datadir becomes the cluster's state")
@click.option("--force", is_flag=True, help="really order it (without: only show what it would discard)")
def bootstrap(directory: Path, member: str, force: bool) -> None:
    """Order MEMBER to bootstrap after a full outage without waiting for the missing members.

    The agents never do this alone with less than what the recovery policy requires; a person may, and
    this command first shows which reported positions are ahead of MEMBER (their transactions are lost).
    """
    cluster = find_cluster_config(directory)
    dcs = cluster.dcs()
    try:
        snapshot = dcs.snapshot()
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
                                        {"ahead": ahead, "missing": missing}))
        click.echo(f"ordered: {member}'s agent bootstraps the cluster within seconds; the others then join it.")
    finally:
        dcs.close()


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
    from galera_pilot.agent import run_agent

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    run_agent(config)
