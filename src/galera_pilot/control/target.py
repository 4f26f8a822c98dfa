"""Addressing a cluster: which DCS and cluster name an operator verb works on, and what this host knows
about the members without asking the DCS.

Three ways, as patronictl's `-c FILE` / `--dcs-url`: `--dir DIR` (the folder `up` made), `-c FILE` or
`GALERA_PILOT_CONFIG` (a control, node or proxy configuration, control/config.py), or `--dcs URL
--cluster NAME`. Every later verb takes a `ClusterTarget` and never asks how it was addressed.

What is known without the DCS (members' REST APIs and client addresses, the client endpoints, the
credentials file) is what lets `list`, `query --member` and `dsn` work while the DCS is unreachable.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galera_pilot.backup.settings import BackupSettings
from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig, redact_dcs_url
from galera_pilot.control.config import ControlConfig, Endpoints, load_any_config
from galera_pilot.credentials import Credentials, load_credentials
from galera_pilot.dcs import DCS, get_dcs
from galera_pilot.embedded.cluster import EmbeddedCluster, find_cluster_config
from galera_pilot.embedded.layout import BACKUPS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.proxy.manager import ProxyConfig
from galera_pilot.tls import http
from galera_pilot.tls.bundle import CA, TOKEN, bundle_files
from galera_pilot.tls.contexts import client_context

CA_ENV = "GALERA_PILOT_CA"  # the node CA for a cluster addressed by --dcs alone

NONE_GIVEN = ("no cluster given: use --dir DIR (a folder made by `up`), -c FILE (or GALERA_PILOT_CONFIG; a "
              "control, node or proxy configuration), or --dcs URL --cluster NAME")


class DCSUnreachable(DCSError):
    """The DCS did not answer; the message says which and why. Verbs that can fall back catch this."""


@dataclass(frozen=True)
class KnownMember:
    """A member as this host knows it without the DCS: where its REST API and its clients' port are."""

    name: str
    api_url: str
    address: str = ""
    client_port: int = 3306


@dataclass
class ClusterTarget:
    dcs_url: str
    cluster_name: str
    source: str  # how it was addressed, for messages: "the folder /x", "/etc/galera-pilot/node1.yaml", ...
    credentials_file: Path | None = None
    known: dict[str, KnownMember] = field(default_factory=dict)
    endpoints: Endpoints = field(default_factory=Endpoints)
    embedded: EmbeddedCluster | None = None
    ca_file: Path | None = None  # the node CA: verifies the members' REST APIs and servers (TLS clusters)
    token_file: Path | None = None  # the API token, for state-changing requests
    ca_required: bool = False  # the CA was named by the operator (control configuration): it must exist
    dcs_tls: tuple[Path, Path, Path] | None = None  # CA, certificate, key an etcds:// DCS is reached with
    backup: BackupSettings | None = None  # where the backups are, and their key (`backup` verbs; --repo overrides)

    def use_tls(self) -> None:
        """Make this process's REST API and MySQL clients verify this cluster's certificates (its CA);
        without a CA they stay plaintext, and an https:// member says what is missing."""
        ca_file = self.ca_file or (Path(os.environ[CA_ENV]) if os.environ.get(CA_ENV) else None)
        if ca_file is None or (not ca_file.exists() and not self.ca_required):
            return  # a node or proxy bundle not copied here yet: verbs that need it say so
        http.use_for_process(client_context(ca_file), self.api_token())

    def api_token(self) -> str | None:
        """The REST API token this host knows for the cluster; None without a file, or with an unreadable
        or empty one."""
        if self.token_file is not None:
            with contextlib.suppress(OSError):
                return self.token_file.read_text().strip() or None
        return None

    @property
    def dcs_label(self) -> str:
        return redact_dcs_url(self.dcs_url)

    def open_dcs(self) -> DCS:
        return get_dcs(self.dcs_url, self.cluster_name, self.dcs_tls)

    def snapshot(self) -> Cluster:
        """One read of the DCS. DCSUnreachable when it does not answer; a PilotError naming the clusters the
        store does hold when it holds nothing under this name (a typo must not look like an empty cluster)."""
        try:  # opening counts: a SQLite file that is gone fails there, and must read as unreachable too
            store = self.open_dcs()
        except DCSError as error:
            raise DCSUnreachable(f"the DCS {self.dcs_label} is unreachable: {error}") from None
        try:
            snapshot = store.snapshot()
            if self.embedded is None and _empty(snapshot):
                names = store.cluster_names()
                held = f"it holds: {', '.join(names)}" if names else "it holds no cluster at all"
                raise PilotError(f"the DCS {self.dcs_label} holds no cluster named {self.cluster_name!r} ({held}); "
                                 "check --cluster or the configuration's cluster_name")
            return snapshot
        except DCSError as error:
            raise DCSUnreachable(f"the DCS {self.dcs_label} is unreachable: {error}") from None
        finally:
            store.close()

    def credentials(self) -> Credentials:
        if self.credentials_file is None:
            raise PilotError(f"no admin credentials known for {self.source}: give -c FILE with credentials_file "
                             "(a control or node configuration), or --dir DIR")
        return load_credentials(self.credentials_file)


def _empty(snapshot: Cluster) -> bool:
    return (snapshot.initialize is None and not snapshot.members and not snapshot.roster
            and not snapshot.history)


def resolve(directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
            from_env: frozenset[str] = frozenset()) -> ClusterTarget:
    """The target named by the options; `from_env` holds those that came from the environment, which
    yield to any given on the command line (a GALERA_PILOT_CONFIG set in a profile must not override an
    explicit --dir)."""
    given = {"--dir": directory, "-c/--config": config, "--dcs": dcs}
    on_line = [name for name, value in given.items() if value is not None and name not in from_env]
    if len(on_line) > 1:
        raise PilotError(f"give only one of {', '.join(on_line)}: each names a cluster by itself")
    chosen = on_line[0] if on_line else next((n for n in ("-c/--config", "--dcs") if given[n] is not None), None)
    if chosen is None:
        raise PilotError(NONE_GIVEN)
    if chosen == "--dir":
        assert directory is not None
        target = from_directory(directory)
    elif chosen == "-c/--config":
        assert config is not None
        target = from_config_file(config)
    else:
        assert dcs is not None
        target = ClusterTarget(dcs_url=dcs, cluster_name=cluster or "galera", source=redact_dcs_url(dcs),
                               ca_file=_url_ca(dcs))
        cluster = None
    if cluster is not None and "--cluster" in from_env:
        cluster = None  # GALERA_PILOT_CLUSTER goes with a --dcs from the command line or the environment only
    if cluster is not None and cluster != target.cluster_name:
        raise PilotError(f"{target.source} addresses the cluster {target.cluster_name!r}, not {cluster!r}; "
                         "drop --cluster (it only goes with --dcs)")
    target.use_tls()
    return target


def from_directory(directory: Path) -> ClusterTarget:
    embedded = find_cluster_config(directory)
    known = {node.name: _known(node.config) for node in embedded.nodes()}
    proxy = embedded.proxy.config()
    authority = embedded.authority
    tls = embedded.tls and authority.ca_file.exists()
    return ClusterTarget(dcs_url=embedded.dcs_url, cluster_name=embedded.cluster_name,
                         source=f"the folder {embedded.dir}", credentials_file=embedded.credentials_file,
                         known=known, endpoints=_proxy_endpoints(proxy) if proxy else Endpoints(),
                         embedded=embedded, ca_file=authority.ca_file if tls else None,
                         token_file=authority.token_file if tls else None, dcs_tls=embedded.dcs_tls,
                         backup=_embedded_backup(embedded))


def from_config_file(path: Path) -> ClusterTarget:
    config = load_any_config(path)
    source = str(path)
    if isinstance(config, NodeConfig):
        return ClusterTarget(dcs_url=config.dcs, cluster_name=config.cluster_name, source=source,
                             credentials_file=config.credentials_file, known={config.name: _known(config)},
                             backup=config.backup,
                             **_trust_of(config.tls_bundle if config.tls.enabled else None))
    if isinstance(config, ProxyConfig):
        return ClusterTarget(dcs_url=config.dcs, cluster_name=config.cluster_name, source=source,
                             endpoints=_proxy_endpoints(config),
                             **_trust_of(config.tls.bundle if config.tls.enabled else None))
    assert isinstance(config, ControlConfig)
    known = {name: KnownMember(name, url) for name, url in config.members.items()}
    bundle = config.tls_bundle
    return ClusterTarget(dcs_url=config.dcs, cluster_name=config.cluster_name, source=source,
                         credentials_file=config.credentials_file, known=known, endpoints=config.endpoints,
                         ca_file=config.ca_file or (bundle / CA if bundle else None),
                         token_file=config.api_token_file or (bundle / TOKEN if bundle else None),
                         ca_required=config.ca_file is not None or bundle is not None,
                         dcs_tls=bundle_files(bundle) if bundle else None,
                         backup=config.backup if config.backup is not None else
                         BackupSettings(repository=config.backup_repository))


def _embedded_backup(embedded: EmbeddedCluster) -> BackupSettings:
    """The folder's nodes share one backup section (`up` writes it): the first node's, as its agent runs it."""
    for node in embedded.nodes():
        with contextlib.suppress(PilotError, OSError):
            config = node.config
            if config.backup.configured:
                return config.backup
    return BackupSettings(repository=embedded.dir / BACKUPS)


def _url_ca(dcs: str) -> Path | None:
    """An etcds:// URL's `cacert`: the cluster's CA verifies its members' REST APIs and servers too."""
    if not dcs.startswith("etcds://"):
        return None
    from galera_pilot.dcs.etcd import parse_etcd_url

    cacert = parse_etcd_url(dcs).cacert
    return Path(cacert) if cacert else None


def _trust_of(bundle: Path | None) -> dict[str, Any]:
    """What a host's bundle gives the CLI: the CA and token for the REST APIs and servers, and the
    certificate for an etcds:// DCS (nothing without a bundle: a --no-tls cluster)."""
    if bundle is None:
        return {}
    return {"ca_file": bundle / CA, "token_file": bundle / TOKEN, "dcs_tls": bundle_files(bundle)}


def _known(config: NodeConfig) -> KnownMember:
    return KnownMember(config.name, config.api_url, config.advertised_address, config.advertised_port("client"))


def _proxy_endpoints(config: ProxyConfig) -> Endpoints:
    return Endpoints(writer=config.writer_bind, reader=config.reader_bind)

