"""`pki`: the cluster's certificate authorities, kept where the operator runs the CLI (tls/authority.py).

    galera-pilot pki init [--pki-dir DIR] [--cluster-name NAME]
    galera-pilot pki issue NODE --ip ADDRESS [--ip …] [--dns NAME …] [--days N] [--out DIR]
    galera-pilot pki issue-client NAME [--days N] [--out DIR]
    galera-pilot pki show
    galera-pilot pki rotate [NAME …] [--due-only]     (--dir DIR: the folder's members, live)
    galera-pilot pki rotate-ca [--dir DIR | --pki-dir P [-c FILE | --dcs URL]]   (a new node CA, 3 phases)

The PKI folder is --pki-dir, else GALERA_PILOT_PKI, else DIR/pki of a cluster folder given by --dir.
"""

from __future__ import annotations

from pathlib import Path

import click

from galera_pilot.cli.addressing import Addressing, addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.tls import pki
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.bundle import CERT
from galera_pilot.tls.pki import describe, now_utc

pki_dir_option = click.option("--pki-dir", type=click.Path(path_type=Path), envvar="GALERA_PILOT_PKI", default=None,
                              help="the PKI folder [env: GALERA_PILOT_PKI; default: DIR/pki with --dir DIR]")
dir_option = click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
                          help="an embedded cluster's folder: its PKI (DIR/pki or the one it was made with)")
days_option = click.option("--days", type=click.IntRange(pki.MIN_LEAF_DAYS, pki.MAX_LEAF_DAYS),
                           default=pki.LEAF_DAYS, show_default=True, help="how long the certificate lives")


def _cluster_dir(ctx: click.Context) -> Path | None:
    own = ctx.params.get("directory")
    group = ctx.find_object(Addressing)
    return own or (group.directory if group is not None else None)


def _pki_dir(ctx: click.Context, pki_dir: Path | None) -> Path:
    if pki_dir is not None:
        return pki_dir
    directory = _cluster_dir(ctx)
    if directory is not None:
        from galera_pilot.embedded.cluster import find_cluster_config

        return find_cluster_config(directory).authority.dir
    raise PilotError("no PKI folder given: use --pki-dir DIR (or GALERA_PILOT_PKI), or --dir of a cluster folder")


@click.group()
def pki_group() -> None:
    """The cluster's CAs, node bundles and application certificates."""


@pki_group.command("init")
@pki_dir_option
@dir_option
@click.option("--cluster-name", default="galera", show_default=True, help="named in the CA certificates")
@click.pass_context
def init(ctx: click.Context, pki_dir: Path | None, directory: Path | None, cluster_name: str) -> None:
    """Make the node CA, the client CA and the API token (ECDSA P-256, keys 0600)."""
    authority = init_authority(_pki_dir(ctx, pki_dir), cluster_name)
    click.echo(f"PKI made in {authority.dir}: node CA {authority.ca_file}, client CA, API token. The CA keys "
               "stay in this folder: copy only the bundles `pki issue` writes.")


@pki_group.command("issue")
@pki_dir_option
@dir_option
@click.argument("name")
@click.option("--ip", "ips", multiple=True, help="an IP address the host is reached at (repeat; include the "
              "endpoint addresses clients use)")
@click.option("--dns", "dns", multiple=True, help="a DNS name the host is reached at (repeat)")
@days_option
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write the bundle [default: PKI/issued/NAME]")
@click.pass_context
def issue(ctx: click.Context, pki_dir: Path | None, directory: Path | None, name: str, ips: tuple[str, ...],
          dns: tuple[str, ...], days: int, out: Path | None) -> None:
    """Write NAME's bundle: CA certificates, its certificate and key (server and client use), the API token."""
    if not ips and not dns:
        raise PilotError("give at least one --ip or --dns: peers verify the names they dial")
    authority = Authority(_pki_dir(ctx, pki_dir))
    try:
        target = authority.issue_bundle(name, ips, dns, days, out)
    except ValueError as error:
        raise PilotError(f"cannot issue {name}: {error}") from None
    facts = describe((target / CERT).read_bytes())
    click.echo(f"{name}: bundle written to {target} (mode 0600 for the key and the token), valid until "
               f"{facts.not_after:%Y-%m-%d}, names {', '.join([*facts.ips, *facts.dns])}.\n"
               f"Copy the folder to the host (e.g. scp -rp {target} HOST:/etc/galera-pilot/tls) and point the "
               "node's tls.bundle (or the proxy's) at it.")


@pki_group.command("issue-client")
@pki_dir_option
@dir_option
@click.argument("name")
@days_option
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write NAME.pem, NAME.key and ca.pem [default: PKI/clients]")
@click.pass_context
def issue_client(ctx: click.Context, pki_dir: Path | None, directory: Path | None, name: str, days: int,
                 out: Path | None) -> None:
    """An application's client certificate, from the client CA (the node CA would let it join Galera)."""
    authority = Authority(_pki_dir(ctx, pki_dir))
    try:
        target = authority.issue_client(name, days, out)
    except ValueError as error:
        raise PilotError(f"cannot issue {name}: {error}") from None
    click.echo(f"{name}: {target / (name + '.pem')} and {target / (name + '.key')} (client CA); verify servers "
               f"with {target / 'ca.pem'}. A user created REQUIRE X509 accepts it.")


@pki_group.command("show")
@pki_dir_option
@dir_option
@click.pass_context
def show(ctx: click.Context, pki_dir: Path | None, directory: Path | None) -> None:
    """The CAs and every issued bundle, with their expiry."""
    authority = Authority(_pki_dir(ctx, pki_dir))
    now = now_utc()
    rows = []
    for label, path in (("node CA", authority.ca_file), ("client CA", authority.dir / "client-ca.pem")):
        if not path.exists():
            raise PilotError(f"{path} is missing: {authority.dir} is not a PKI folder (galera-pilot pki init)")
        rows.append((label, path))
    issued = authority.dir / "issued"
    rows += [(bundle.name, bundle / CERT) for bundle in sorted(issued.iterdir()) if (bundle / CERT).exists()] \
        if issued.is_dir() else []
    for label, path in rows:
        for facts in pki.describe_all(path.read_bytes()) if label == "node CA" else [describe(path.read_bytes())]:
            left = facts.remaining(now).days
            state = "EXPIRED" if left < 0 else ("renew now" if facts.renew_due(now) else "ok")
            names = ", ".join([*facts.ips, *facts.dns]) or f"{pki.short_id(facts)} {facts.subject}"
            click.echo(f"{label:<12} until {facts.not_after:%Y-%m-%d} ({left} days, {state})  {names}")
    from galera_pilot.tls.ca_rotation import PHASES, next_phase, read_state

    rotation = read_state(authority)
    if rotation is not None:
        click.echo(f"CA rotation from {rotation.old} to {rotation.new} (started {rotation.started}): phase "
                   f"{PHASES.index(rotation.phase) + 1} of 3 ({rotation.phase}) written, next: "
                   f"{next_phase(rotation)} (galera-pilot pki rotate-ca goes on)")


@pki_group.command("rotate")
@pki_dir_option
@dir_option
@click.argument("names", nargs=-1)
@days_option
@click.option("--due-only", is_flag=True, help="only certificates two thirds through their life or expired")
@click.pass_context
def rotate(ctx: click.Context, pki_dir: Path | None, directory: Path | None, names: tuple[str, ...], days: int,
           due_only: bool) -> None:
    """New certificates with the same names. With --dir DIR: each member's and the proxy's, which pick them
    up while running. With a PKI folder: the bundles in PKI/issued, to copy to their hosts again (an agent
    notices a new bundle and reloads it within a cycle). Works for expired certificates too."""
    cluster_dir = _cluster_dir(ctx)
    if pki_dir is None and cluster_dir is not None:
        from galera_pilot.embedded.cluster import find_cluster_config

        done = find_cluster_config(cluster_dir).rotate(list(names))
        click.echo(f"new certificates: {', '.join(done) or 'none'}; running agents and the proxy load them "
                   "within a second (galera-pilot list shows each node's expiry)")
        return
    authority = Authority(_pki_dir(ctx, pki_dir))
    issued = authority.dir / "issued"
    candidates = [issued / n for n in names] if names else sorted(p for p in issued.glob("*") if p.is_dir())
    now = now_utc()
    done = []
    for bundle in candidates:
        if due_only:
            try:
                facts = describe((bundle / CERT).read_bytes())
            except (OSError, ValueError):
                facts = None
            if facts is not None and not facts.renew_due(now) and facts.not_after > now:
                continue
        new = authority.reissue(bundle, bundle.name, days)
        done.append(f"{bundle.name} (until {new.not_after:%Y-%m-%d})")
    click.echo(f"new bundles in {issued}: {', '.join(done) or 'none'}; copy each to its host (an agent loads a "
               "new bundle within a cycle, no restart)")


@pki_group.command("rotate-ca")
@pki_dir_option
@addressing_options(with_env=False)
@click.option("--timeout", default=60.0, show_default=True, help="seconds every host may take to take a phase")
@click.option("--restart-timeout", default=900.0, show_default=True,
              help="seconds one node may take to be Synced again in the closing rolling restart")
@click.option("--one-phase", is_flag=True, help="with --dir too: do one phase and stop (applications verifying "
              "with a copy of ca.pem get the new one between phases 1 and 2)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
def rotate_ca(ctx: click.Context, pki_dir: Path | None, directory: Path | None, config: Path | None, dcs: str | None,
              cluster: str | None, timeout: float, restart_timeout: float, one_phase: bool, yes: bool) -> None:
    """Replace the node CA without downtime: trust a new CA beside the old one, re-issue every certificate
    from it, drop the old CA, then a rolling restart (Galera keeps a CA it loaded until restart).

    With --dir DIR, one run does it all. With a PKI folder whose bundles are copied to their hosts, each run
    does one phase and says what to copy; give the cluster (-c or --dcs) and the next run checks that every
    member took the last phase, and runs the closing rolling restart. Run again after an interruption: it
    goes on from the phase reached."""
    from galera_pilot.control.ca_rotation import CaRotation, dcs_probe
    from galera_pilot.embedded.cluster import find_cluster_config
    from galera_pilot.lifecycle.driver import RollOptions
    from galera_pilot.tls.ca_rotation import issued_bundles, read_state

    cluster_dir = _cluster_dir(ctx)
    addressed = any((cluster_dir, config, dcs, cluster)) or ctx.find_object(Addressing) not in (None, Addressing())
    embedded = find_cluster_config(cluster_dir) if cluster_dir is not None and pki_dir is None else None
    if embedded is not None and not embedded.tls:
        raise PilotError(f"{embedded.dir} runs without TLS: there is no CA to rotate")
    authority = embedded.authority if embedded is not None else Authority(_pki_dir(ctx, pki_dir))
    state = read_state(authority)
    if state is None and not yes and not click.confirm(
            f"replace the node CA of {authority.dir} in three phases, then a rolling restart of every member?"):
        raise PilotError("nothing was changed")
    rotation = CaRotation(authority, embedded.tls_bundles() if embedded else issued_bundles(authority), click.echo,
                          through=embedded is not None and not one_phase, in_place=embedded is not None,
                          wait=timeout,
                          roll_options=RollOptions(restart_timeout=restart_timeout))
    if not addressed:
        click.echo(rotation.run())
        return
    target = target_of(ctx, cluster_dir, config, dcs, cluster)
    rotation.probe = dcs_probe(target.dcs_url, target.cluster_name, authority)
    if embedded is not None and embedded.proxy.pid() is not None:
        proxy = embedded.proxy.config()
        rotation.proxy_run_dir = proxy.run_dir if proxy else None

    def rotate(store: DCS) -> str:
        rotation.store = store
        return rotation.run()
    click.echo(changing(target, "pki rotate-ca", rotate))


@click.group("tls")
def tls_group() -> None:
    """Transport security of a running cluster."""


@tls_group.command("enable")
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True,
              help="the folder of a cluster `up --no-tls` made")
@click.option("--timeout", default=600.0, show_default=True, help="seconds one node may take to be Synced again")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def tls_enable(directory: Path, timeout: float, yes: bool) -> None:
    """Move a running plaintext cluster to TLS everywhere, one node at a time, clients served throughout:
    Galera over TLS accepting plaintext peers, then state transfers and clients, then strict. Applications
    must connect over TLS once it is done (require_secure_transport); run again after an interruption."""
    from galera_pilot.control.tls_enable import TlsEnabler
    from galera_pilot.embedded.cluster import find_cluster_config

    cluster = find_cluster_config(directory)
    if not yes and not click.confirm(f"restart every node of {cluster.dir} twice (the writer after a switchover) "
                                     "to move it to TLS? Plaintext clients are refused at the end"):
        raise PilotError("nothing was changed")
    click.echo(TlsEnabler(cluster, click.echo, timeout).run())


pki_group.name = "pki"
COMMANDS = (pki_group, tls_group)
