"""The embedded cluster's PKI: DIR/pki holds the CAs (this machine runs every node, so the CA key is
where the operator is), each node's bundle is DIR/nodeN/tls, the proxy's DIR/proxy/tls.

Node certificates name the node's address, localhost (mariabackup's SST checks the joiner as
`localhost` when its address is local), 127.0.0.1 and the endpoint addresses: HAProxy passes MySQL TLS
through, so a client verifying the endpoint sees a node's certificate. `up` issues what is missing and
re-issues a bundle that lacks an endpoint address or is two thirds through its life, for nodes whose
agent is not running (a running one keeps its files until it restarts)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from galera_pilot.config import NodeConfig
from galera_pilot.errors import ConfigError
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.bundle import bundle_files, load_bundle
from galera_pilot.tls.pki import describe, describe_all, now_utc, short_id

PKI_DIR = "pki"
OPERATOR = "operator"  # the CLI's own certificate on this machine (PKI/issued/operator)
LOCAL_NAMES = ("localhost",)


def authority_of(cluster_dir: Path, meta: dict[str, Any]) -> Authority:
    """The folder's PKI: DIR/pki, or the one `up --pki-dir` named when DIR was made (cluster.yaml: pki)."""
    return Authority(Path(meta["pki"]) if meta.get("pki") else cluster_dir / PKI_DIR)


def ensure_authority(authority: Authority, cluster_name: str) -> Authority:
    return authority if authority.exists() else init_authority(authority.dir, cluster_name)


def _needs_issue(authority: Authority, bundle_dir: Path, ips: Iterable[str], dns: Iterable[str] = ()) -> str | None:
    """Why the bundle must be (re)issued, or None when it is fine."""
    try:
        bundle = load_bundle(bundle_dir)
    except ConfigError as error:
        return str(error)
    trusted = tuple(sorted(short_id(ca) for ca in describe_all(authority.trust_pem())))
    if bundle.trust_ids() != trusted:
        return f"it trusts other CAs ({', '.join(bundle.trust_ids())}) than the PKI ({', '.join(trusted)})"
    missing = sorted(set(ips) - set(bundle.facts.ips)) + sorted(set(dns) - set(bundle.facts.dns))
    if missing:
        return f"its certificate does not name {', '.join(missing)}"
    if bundle.facts.renew_due(now_utc()):
        return f"its certificate is two thirds through its life (expires {bundle.expires():%Y-%m-%d})"
    return None


def node_names(config: NodeConfig, endpoint_hosts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(IP addresses, DNS names) a node's certificate must name (see the module docstring)."""
    ips = list(dict.fromkeys([config.address, config.advertised_address, "127.0.0.1", *endpoint_hosts]))
    ips = [ip for ip in ips if _is_ip(ip) and ip != "0.0.0.0"]
    names = [n for n in (config.address, config.advertised_address) if not _is_ip(n)]
    return ips, [*LOCAL_NAMES, *names]


def ensure_node_bundle(authority: Authority, config: NodeConfig, endpoint_hosts: Iterable[str],
                       force: bool = False) -> str | None:
    """Issue the node's bundle if it is missing or unfit (or `force`); returns why it was issued (None: kept)."""
    ips, dns = node_names(config, endpoint_hosts)
    reason = "rotation asked for" if force else _needs_issue(authority, config.tls_bundle, ips, dns)
    if reason is not None:
        authority.issue_bundle(config.name, ips, dns, out=config.tls_bundle)
    return reason


def ensure_proxy_bundle(authority: Authority, bundle_dir: Path, force: bool = False,
                        name: str = "proxy") -> str | None:
    """The proxy's bundle (or the operator's, `name`: the CLI's own certificate, for an etcds:// DCS)."""
    reason = "rotation asked for" if force else _needs_issue(authority, bundle_dir, ["127.0.0.1"], LOCAL_NAMES)
    if reason is not None:
        authority.issue_bundle(name, ["127.0.0.1"], list(LOCAL_NAMES), out=bundle_dir)
    return reason


def ensure_folder_tls(authority: Authority, cluster_name: str, stopped: list[NodeConfig], proxy_bundle: Path | None,
                      endpoint_hosts: Iterable[str]) -> list[str]:
    """The PKI, the bundles of these stopped nodes and of the stopped proxy, and the operator's, issued
    where missing or unfit; the names of what was issued."""
    authority = ensure_authority(authority, cluster_name)
    issued = [config.name for config in stopped if ensure_node_bundle(authority, config, endpoint_hosts)]
    if proxy_bundle is not None and ensure_proxy_bundle(authority, proxy_bundle):
        issued.append("proxy")
    if ensure_operator_bundle(authority)[0]:
        issued.append(OPERATOR)
    return issued


def ensure_operator_bundle(authority: Authority) -> tuple[str | None, tuple[Path, Path, Path]]:
    """The CLI's own certificate on this machine (PKI/issued/operator), issued if missing or unfit: (why it
    was issued or None, its (CA, certificate, key) files)."""
    bundle = authority.issued_dir(OPERATOR)
    return ensure_proxy_bundle(authority, bundle, name=OPERATOR), bundle_files(bundle)


def rotate_folder(authority: Authority, configs: list[NodeConfig], proxy_bundle: Path | None,
                  endpoint_hosts: Iterable[str]) -> list[str]:
    """New certificates now for these nodes (and the proxy), whatever their state: `pki rotate --dir`."""
    done = []
    hosts = list(endpoint_hosts)
    for config in configs:
        ensure_node_bundle(authority, config, hosts, force=True)
        done.append(f"{config.name} (until {_expiry(config.tls_bundle)})")
    if proxy_bundle is not None:
        ensure_proxy_bundle(authority, proxy_bundle, force=True)
        done.append(f"proxy (until {_expiry(proxy_bundle)})")
    return done


def _expiry(bundle: Path) -> str:
    return f"{describe((bundle / 'node.pem').read_bytes()).not_after:%Y-%m-%d}"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
