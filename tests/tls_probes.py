"""Probing a node's TLS from outside, as a peer would (shared by the integration and multi-host tests)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from galera_pilot.tls.contexts import client_context


def galera_accepts(address: str, ca: Path, bundle: Path, port: int = 4567) -> bool:
    """Whether the Galera port takes a TLS link presenting `bundle`'s certificate (verifying the node by
    `ca`). Accepted: the node waits for the group protocol or speaks it; refused: an alert or a close
    (with TLS 1.3 the client's handshake ends before the server has judged the client's certificate, so
    the verdict comes with the first read)."""
    context = client_context(ca, bundle / "node.pem", bundle / "node.key")
    context.check_hostname = False
    try:
        with socket.create_connection((address, port), timeout=3) as raw, context.wrap_socket(raw) as link:
            link.settimeout(1.5)
            try:
                return link.recv(1) != b""
            except TimeoutError:
                return True
    except ssl.SSLError:
        return False
