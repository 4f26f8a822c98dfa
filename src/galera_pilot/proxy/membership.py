"""Which members the endpoints front (both modes): every member the cluster knows, from one snapshot."""

from __future__ import annotations

from urllib.parse import urlparse

from galera_pilot.cluster import Cluster
from galera_pilot.proxy.haproxy_config import ProxyBackend

DEFAULT_API_PORT = 8008


def api_port_of(api_url: str, default: int = DEFAULT_API_PORT) -> int:
    """The port of a member's REST API URL ("http://127.0.0.2:8008" -> 8008); default when it has none."""
    try:
        port = urlparse(api_url).port
    except ValueError:
        return default
    return port or default


def backends_from(cluster: Cluster) -> tuple[list[ProxyBackend], list[str]]:
    """Every member the cluster knows, as HAProxy servers, sorted by name; plus why any were left out.

    The roster keeps a node that is down (its member key has expired) in the list, so HAProxy keeps a
    server for it and takes it back the moment its agent answers again, with no reload; a live member's
    own record wins over its roster entry because it is the fresher one (an address may have changed).
    A record that cannot become a server line (a bad name or address) is skipped with a reason rather
    than breaking the whole configuration.
    """
    known: dict[str, tuple[str, int, str]] = {}
    for entry in cluster.roster.values():
        known[entry.name] = (entry.address, entry.client_port, entry.api_url)
    for member in cluster.members.values():
        known[member.name] = (member.address, member.client_port, member.api_url)
    backends: list[ProxyBackend] = []
    skipped: list[str] = []
    for name in sorted(known):
        address, client_port, api_url = known[name]
        try:
            backends.append(ProxyBackend(name, address, client_port, api_port_of(api_url),
                                         api_tls=not api_url.startswith("http://")))
        except ValueError as error:
            skipped.append(f"{name} ({error})")
    return backends, skipped
