"""`up` and `down`: the embedded cluster's folder (embedded/), started and stopped on this machine."""

from __future__ import annotations

import time
from pathlib import Path

import click

from galera_pilot.cli.addressing import no_password_in_argv
from galera_pilot.cli.output import print_high_water, print_rows
from galera_pilot.control.members import rows_from_snapshot
from galera_pilot.control.query import client_address
from galera_pilot.control.target import from_directory
from galera_pilot.embedded.cluster import EmbeddedCluster, find_cluster_config
from galera_pilot.embedded.proxy import DEFAULT_READER_BIND, DEFAULT_WRITER_BIND
from galera_pilot.errors import ConfigError, PilotError

dir_option = click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
                          help="the embedded cluster's folder")


@click.command()
@dir_option
@click.option("--nodes", default=None, type=click.IntRange(1, 64),
              help="number of data nodes (default 3 for a new DIR; an existing DIR keeps its own)")
@click.option("--base-address", default=None,
              help="address of node1; node N gets base + N-1 (default 127.0.0.2; an existing DIR keeps its own)")
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
@click.option("--proxy-mode", type=click.Choice(["haproxy", "kernel"]), default=None,
              help="haproxy: a proxy process carries the connections; kernel: nftables DNAT rules, about as fast "
              "as a direct connection (docs/proxy.md#kernel-mode) [default: as configured, else haproxy]")
@click.option("--dcs", default=None, metavar="URL", envvar="GALERA_PILOT_DCS", callback=no_password_in_argv,
              help="coordination store for a new DIR, e.g. etcd://HOST:PORT[,HOST:PORT...] "
              "(default: a SQLite file in DIR); DIR remembers it. A URL with an etcd password "
              "(user:password@) goes in the environment variable GALERA_PILOT_DCS, never on the command line")
@click.option("--cluster-name", default=None, metavar="NAME",
              help="cluster name for a new DIR (default: galera); clusters sharing one etcd need distinct names")
@click.option("--tls/--no-tls", "tls", default=None,
              help="a new DIR encrypts replication, state transfer, client connections and the REST API with "
              "its own CA in DIR/pki (the default); --no-tls: all plaintext and an open REST API (docs/security.md)")
@click.option("--pki-dir", type=click.Path(path_type=Path), default=None, envvar="GALERA_PILOT_PKI",
              help="a new DIR takes its certificates from this PKI folder (made by `pki init`, or made here) "
              "instead of DIR/pki [env: GALERA_PILOT_PKI]")
@click.option("--dashboard/--no-dashboard", "with_dashboard", default=True, show_default=True,
              help="also serve the live web dashboard (docs/dashboard.md)")
@click.option("--dashboard-bind", default=None, metavar="ADDRESS:PORT",
              help="where the dashboard listens [default: as before, else 127.0.0.1:8080]; not loopback: HTTPS "
              "and the REST API token")
@click.option("--arbitrator", is_flag=True, help="add a garbd arbitrator (a vote, no data) if DIR has none: "
                                                "two nodes and an arbitrator survive the loss of either node")
def up(directory: Path, nodes: int | None, base_address: str | None, sst_method: str, use_seed: bool, timeout: float,
       with_proxy: bool, writer_bind: str | None, reader_bind: str | None, proxy_mode: str | None,
       dcs: str | None, cluster_name: str | None, tls: bool | None, pki_dir: Path | None, arbitrator: bool,
       with_dashboard: bool, dashboard_bind: str | None) -> None:
    """Lay out DIR (or extend it), start an agent per node and wait until every node is Synced; then start
    the managed HAProxy and wait until clients reach the writer through it, and the dashboard."""
    started_at = time.monotonic()
    cluster = EmbeddedCluster.layout(directory, nodes, base_address, sst_method,  # type: ignore[arg-type]
                                     cluster_name=cluster_name, use_seed=use_seed, dcs=dcs, tls=tls,
                                     pki_dir=pki_dir, arbitrator=arbitrator)
    if tls is False:
        click.echo("TLS is off: replication, state transfer, client connections and the REST API are plaintext, "
                   "and anyone who reaches an agent's API can change its state (docs/security.md)", err=True)
    binds = cluster.proxy.planned_binds(writer_bind, reader_bind) if with_proxy else ()
    cluster.ensure_tls([client_address(bind)[0] for bind in binds])
    from_directory(cluster.dir).use_tls()  # this process verifies the nodes with DIR/pki/ca.pem from now on
    started = cluster.start_agents()
    snapshot = cluster.wait_synced(timeout)
    if with_proxy:
        try:
            proxy_config = cluster.proxy.configure(writer_bind, reader_bind, proxy_mode)
        except ConfigError as error:
            raise PilotError(f"{error} (the nodes run; fix the binds or use --no-proxy)") from None
        if cluster.proxy.pid() is None:
            cluster.proxy.check_binds(proxy_config)
            cluster.proxy.spawn()
            started.append("proxy")
        cluster.proxy.wait_routed(min(timeout, 60.0))
        snapshot = cluster.snapshot()
    elapsed = time.monotonic() - started_at  # the cluster's time: the dashboard starts after it serves
    dashboard = _start_dashboard(cluster, dashboard_bind, started) if with_dashboard else None
    names = ", ".join(started) if started else "none (all were running)"
    count = len(cluster.nodes())
    voters = f" and {len(cluster.arbitrator_names)} arbitrator" if cluster.arbitrator_names else ""
    click.echo(f"{count} node{'s' if count != 1 else ''}{voters} Synced in {elapsed:.1f} s (agents started: {names})")
    print_rows(rows_from_snapshot(from_directory(cluster.dir), snapshot), "table")
    print_high_water(snapshot)
    admin = cluster.credentials().admin_user
    if cluster.tls:  # connect verifying the node's certificate (the endpoints pass TLS through)
        admin = f"{admin} --ssl-ca {cluster.authority.ca_file} --ssl-verify-server-cert"
    proxy = cluster.proxy.config() if with_proxy else None
    if proxy is not None:
        writer_host, writer_port = client_address(proxy.writer_bind)
        reader_host, reader_port = client_address(proxy.reader_bind)
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
    if dashboard:
        click.echo(f"Watch:   {dashboard}   (the dashboard; or galera-pilot top --dir {cluster.dir})")


def _start_dashboard(cluster: EmbeddedCluster, bind: str | None, started: list[str]) -> str | None:
    """The dashboard's URL: started now, or already running. A bind in use or a failed start is a warning:
    the cluster serves, which is what `up` is for."""
    chosen = cluster.dashboard.bind(bind)
    if cluster.dashboard.pid() is not None:
        return cluster.dashboard.url(chosen)
    try:
        url = cluster.dashboard.start(chosen)
    except PilotError as error:
        click.echo(f"galera-pilot: the dashboard was not started: {error} (--dashboard-bind ADDRESS:PORT, or "
                   "--no-dashboard)", err=True)
        return None
    started.append("dashboard")
    return url


@click.command()
@dir_option
def down(directory: Path) -> None:
    """Stop every agent and its mariadbd gracefully; data stays in DIR."""
    cluster = find_cluster_config(directory)
    stopped = cluster.stop()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


COMMANDS = (up, down)
