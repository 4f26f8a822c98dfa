"""Coordination store backends, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from galera_pilot.dcs.base import DCS, KV
from galera_pilot.errors import ConfigError

__all__ = ["DCS", "KV", "get_dcs"]


def get_dcs(url: str, cluster_name: str) -> DCS:
    """Open the DCS named by url: `sqlite:///absolute/path.sqlite` (embedded, one machine)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        if not parsed.path.startswith("/") or parsed.netloc:
            raise ConfigError(f"field 'dcs': {url!r} must look like sqlite:///absolute/path/dcs.sqlite")
        from galera_pilot.dcs.sqlite import SQLiteDCS

        return SQLiteDCS(Path(parsed.path), cluster_name)
    if parsed.scheme in ("etcd", "etcd3", "etcds"):
        raise ConfigError(f"field 'dcs': the etcd backend is not available in this version ({url!r})")
    raise ConfigError(f"field 'dcs': unknown scheme in {url!r}; expected sqlite:///path")
