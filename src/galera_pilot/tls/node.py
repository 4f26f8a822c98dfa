"""A node's TLS at run time: its checked bundle, the contexts built from it, and mariadbd's copy of it.

The agent runs as root and keeps the bundle 0600; mariadbd runs as `mysql` and cannot read it. Before
every start the agent copies what mariadbd needs into the node's run/tls, owned by that user and
still 0600: readable by the one account that uses it. The copy is also the unit of a reload: files
replaced atomically, then Galera, the server and the SST scripts pick them up.
"""

from __future__ import annotations

import os
import shutil
import ssl
from dataclasses import dataclass

from galera_pilot.config import NodeConfig
from galera_pilot.files import write_private
from galera_pilot.tls.bundle import Bundle, load_bundle
from galera_pilot.tls.contexts import client_context, server_context

# mariadbd's own copy of the node's TLS files, in config.server_tls_dir (my.cnf names them).
SERVER_CA, SERVER_CLIENT_TRUST, SERVER_CERT, SERVER_KEY = "ca.pem", "client-trust.pem", "node.pem", "node.key"


def server_tls_paths(config: NodeConfig) -> dict[str, str]:
    directory = config.server_tls_dir
    return {"ca": str(directory / SERVER_CA), "client_trust": str(directory / SERVER_CLIENT_TRUST),
            "cert": str(directory / SERVER_CERT), "key": str(directory / SERVER_KEY)}


@dataclass(frozen=True)
class NodeTls:
    bundle: Bundle
    client: ssl.SSLContext  # verifies peers by the node CA and presents this node's certificate
    server: ssl.SSLContext  # the REST API's
    token: str

    def __repr__(self) -> str:
        return f"NodeTls({self.bundle.dir}, expires {self.bundle.expires():%Y-%m-%d})"


def load_node_tls(config: NodeConfig) -> NodeTls | None:
    """None when the node runs without TLS; otherwise its checked bundle (ConfigError naming the file)."""
    if not config.tls.enabled:
        return None
    bundle = load_bundle(config.tls_bundle, hint=f"issue one with `galera-pilot pki issue {config.name} --ip "
                         f"{config.advertised_address}` and copy it there, or set tls.enabled: false")
    return NodeTls(bundle, client_context(bundle.ca, bundle.cert, bundle.key),
                   server_context(bundle.cert, bundle.key, bundle.ca), bundle.api_token())


def install_server_files(config: NodeConfig, node_tls: NodeTls) -> None:
    """mariadbd's copy of the bundle (see the module docstring), each file replaced atomically."""
    directory = config.server_tls_dir
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    user = config.effective_mariadbd_user if os.geteuid() == 0 else None
    bundle = node_tls.bundle
    ca = bundle.ca.read_text()
    files = {SERVER_CA: ca, SERVER_CLIENT_TRUST: ca.rstrip("\n") + "\n" + bundle.client_ca.read_text(),
             SERVER_CERT: bundle.cert.read_text(), SERVER_KEY: bundle.key.read_text()}
    for name, text in files.items():
        write_private(directory / name, text, 0o600)
        if user:
            shutil.chown(directory / name, user, user)
    if user:
        shutil.chown(directory, user, user)
