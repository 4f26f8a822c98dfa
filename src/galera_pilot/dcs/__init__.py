"""Coordination store backends, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from galera_pilot.dcs.base import DCS, KV, Change
from galera_pilot.errors import ConfigError

__all__ = ["DCS", "KV", "Change", "get_dcs"]


def get_dcs(url: str, cluster_name: str, tls_files: tuple[Path, Path, Path] | None = None) -> DCS:
    """Open the DCS named by url.

    `sqlite:///absolute/path.sqlite`: embedded, every agent on one machine shares the file.
    `etcd://host:port[,host:port...]` (`etcds://` for TLS): an etcd v3 cluster, for agents on several
    machines. Backends are imported lazily so the SQLite path does not load urllib3.

    `tls_files` (CA, certificate, key: the caller's TLS bundle) are what an `etcds://` URL that names no
    `cacert`/`cert` of its own uses: etcd's client certificates then come from the cluster's own PKI.
    """
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme in ("etcd", "etcds"):
        from dataclasses import replace

        from galera_pilot.dcs.etcd import EtcdDCS, parse_etcd_url

        settings = parse_etcd_url(url)
        if settings.tls and tls_files is not None and settings.cacert is None and settings.cert is None:
            ca, cert, key = tls_files
            settings = replace(settings, cacert=str(ca), cert=str(cert), key=str(key))
        return EtcdDCS(settings, cluster_name)
    if scheme in ("etcd3", "etcd3s", "etcdv3"):
        raise ConfigError(f"field 'dcs': {url!r}: the etcd scheme is spelled etcd:// (or etcds:// for TLS)")
    try:
        parsed = urlparse(url)
    except ValueError as error:
        raise ConfigError(f"field 'dcs': {url!r} is not a valid URL: {error}") from None
    if parsed.scheme == "sqlite":
        if not parsed.path.startswith("/") or parsed.netloc:
            raise ConfigError(f"field 'dcs': {url!r} must look like sqlite:///absolute/path/dcs.sqlite")
        from galera_pilot.dcs.sqlite import SQLiteDCS

        return SQLiteDCS(Path(parsed.path), cluster_name)
    raise ConfigError(f"field 'dcs': unknown scheme in {url!r}; expected sqlite:///path or etcd://host:port")
