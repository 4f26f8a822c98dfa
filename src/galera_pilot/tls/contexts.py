"""TLS contexts, built once per process and reused by every connection.

Building a context loads and parses certificates (PyMySQL 1.2 did it on every connect: 18 ms of CPU
each, docs/benchmarks.md); a kept context costs nothing per connection. Clients always verify the
peer's certificate *and* its name (PyMySQL's `ssl_ca` alone verifies neither, measured): a context with
check_hostname does both, and Python matches IP addresses against IP SANs.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from galera_pilot.errors import ConfigError

_mysql_context: ssl.SSLContext | None = None


def use_mysql_context(context: ssl.SSLContext | None) -> None:
    """The context this process's TCP connections to mariadbd use (None: plaintext); set once by its entry
    point, like tls.http.use."""
    global _mysql_context
    _mysql_context = context


def mysql_context() -> ssl.SSLContext | None:
    return _mysql_context


def client_context(ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
    """Verify servers against `ca_file` (and present cert/key when given: the agents' own calls)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, ca_file, cert_file, key_file)
    return context


def server_context(cert_file: Path, key_file: Path, ca_file: Path) -> ssl.SSLContext:
    """Serve with cert/key; a client certificate is optional, and verified against `ca_file` when presented
    (getpeercert() then names it): read-only checks stay open, state changes need it or a token."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    _load(context, ca_file, cert_file, key_file)
    return context


def _load(context: ssl.SSLContext, ca_file: Path, cert_file: Path | None, key_file: Path | None) -> None:
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, 'strerror', None) or error
        raise ConfigError(f"cannot load CA certificate {ca_file}: {reason}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"cannot load certificate {cert_file} with key {key_file}: "
                              f"{getattr(error, 'strerror', None) or error}") from None
