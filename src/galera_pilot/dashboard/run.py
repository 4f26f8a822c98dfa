"""`galera-pilot dashboard`: the web dashboard's process, for any cluster the control plane can address.

On one machine `up` starts it for the folder (embedded/dashboard.py); across hosts it runs where the
proxy runs, addressed by the proxy's configuration (`-c proxy.yaml`): the DCS names the members, their
REST APIs say the rest. Bound to a loopback address it needs nothing more; bound elsewhere it serves
HTTPS with a certificate (given, or the configuration's TLS bundle) and asks for the REST API's token,
and it refuses to start without either rather than put the cluster's view, or a token, on the wire.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.dashboard.collector import Collector
from galera_pilot.dashboard.frame import Identity
from galera_pilot.dashboard.hub import Hub
from galera_pilot.dashboard.server import DashboardServer
from galera_pilot.dashboard.watch import DcsNudge
from galera_pilot.errors import PilotError
from galera_pilot.proxy.haproxy_config import is_loopback, parse_bind
from galera_pilot.tls.bundle import CERT, KEY

log = logging.getLogger(__name__)
DEFAULT_BIND = "127.0.0.1:8080"


@dataclass(frozen=True)
class Exposure:
    """How the dashboard is served: plain HTTP and open (loopback), or HTTPS with the API token."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    token: str | None = None

    @property
    def url(self) -> str:
        host = self.host or "0.0.0.0"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"


def exposure(bind: str, target: ClusterTarget, cert: Path | None, key: Path | None) -> Exposure:
    """Decide how `bind` is served; a PilotError says what is missing for a non-loopback bind."""
    try:
        host, port = parse_bind(bind, "--bind")
    except ValueError as error:
        raise PilotError(str(error)) from None
    if is_loopback(host):
        return Exposure(host, port)
    where = host or "every address"
    token = target.api_token()
    if token is None:
        raise PilotError(f"the dashboard bound to {where} (not loopback) asks for the REST API token, and none is "
                         f"known for {target.source} (a TLS cluster's bundle holds it as api-token); bind it to "
                         "127.0.0.1 and reach it through an SSH tunnel instead")
    if (cert is None) != (key is None):
        raise PilotError("give both --cert and --key (or neither, to use the configuration's TLS bundle)")
    if cert is None and target.ca_file is not None:
        bundle = target.ca_file.parent
        if (bundle / CERT).exists() and (bundle / KEY).exists():
            cert, key = bundle / CERT, bundle / KEY
    if cert is None or key is None:
        raise PilotError(f"the dashboard bound to {where} (not loopback) is served over HTTPS: give --cert and "
                         "--key (a certificate for the name browsers will use, and its key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise PilotError(f"cannot use {cert} and {key} for the dashboard's HTTPS: {error}") from None
    return Exposure(host, port, context, token)


def identity_of(target: ClusterTarget) -> Identity:
    endpoints = {role: bind for role, bind in (("writer", target.endpoints.writer),
                                               ("reader", target.endpoints.reader)) if bind}
    return Identity(cluster_name=target.cluster_name, source=target.source, dcs=target.dcs_label,
                    endpoints=endpoints)


def serve(target: ClusterTarget, bind: str = DEFAULT_BIND, interval: float = 0.5, cert: Path | None = None,
          key: Path | None = None, ready: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    exposed = exposure(bind, target, cert, key)
    with contextlib.suppress(DCSUnreachable):  # an outage is shown on the page; a wrong cluster name is not
        target.snapshot()
    collector = Collector(target)
    hub = Hub(identity_of(target), collector.observe, interval=interval)
    server = DashboardServer((exposed.host, exposed.port), hub, exposed.tls, exposed.token)
    watch = DcsNudge(target.open_dcs, hub.nudge)
    hub.on_watched = watch.watched
    hub.start()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        hub.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    log.info("dashboard of %s at %s (%s)", target.source, exposed.url,
             "HTTPS, the API token required" if exposed.tls else "loopback only, no authentication")
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        watch.stop()
        hub.stop()
        server.server_close()
        collector.close()
