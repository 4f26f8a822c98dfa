"""The managed HAProxy layer: one writer and one reader endpoint in front of the cluster's nodes.

`haproxy_config` renders the configuration (pure), `haproxy_process` runs and reloads HAProxy, and
`manager` keeps the rendered membership in step with the DCS. See docs/proxy.md.
"""

from galera_pilot.proxy.haproxy_config import ProxyBackend, ProxySettings, render_haproxy_config
from galera_pilot.proxy.haproxy_process import HaproxyProcess

__all__ = ["HaproxyProcess", "ProxyBackend", "ProxySettings", "render_haproxy_config"]
