"""A host's TLS bundle: the files one node (or proxy) needs, checked before anything uses them.

    ca.pem         the node CA (both CAs while a CA rotation is under way)
    client-ca.pem  the CA of application client certificates (trusted by mariadbd for X509 users only)
    node.pem       this host's certificate (server and client use, its IP/DNS names)
    node.key       its private key                        0600
    api-token      the secret that authorizes state-changing REST API requests   0600

Every problem is reported with the file it is about, before mariadbd, HAProxy or the API are given the
files: a wrong key or an expired certificate found by a TLS handshake is reported by the *peer*, far from
the cause.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.errors import ConfigError
from galera_pilot.files import write_private
from galera_pilot.tls.pki import (
    CertificateFacts,
    Issued,
    describe,
    describe_all,
    key_matches,
    now_utc,
    short_id,
    signer_of,
)

CA, CLIENT_CA, CERT, KEY, TOKEN = "ca.pem", "client-ca.pem", "node.pem", "node.key", "api-token"
PRIVATE = (KEY, TOKEN)


@dataclass(frozen=True)
class Bundle:
    """A checked bundle folder (see load_bundle)."""

    dir: Path
    facts: CertificateFacts
    ca_facts: tuple[CertificateFacts, ...]
    signer: CertificateFacts  # the CA in ca.pem that signed node.pem

    def trust_ids(self) -> tuple[str, ...]:
        """The CAs this bundle trusts (short fingerprints, sorted): one, or two during a CA rotation."""
        return tuple(sorted(short_id(ca) for ca in self.ca_facts))

    def signer_id(self) -> str:
        return short_id(self.signer)

    @property
    def ca(self) -> Path:
        return self.dir / CA

    @property
    def client_ca(self) -> Path:
        return self.dir / CLIENT_CA

    @property
    def cert(self) -> Path:
        return self.dir / CERT

    @property
    def key(self) -> Path:
        return self.dir / KEY

    @property
    def token_file(self) -> Path:
        return self.dir / TOKEN

    def api_token(self) -> str:
        return self.token_file.read_text().strip()

    def files(self) -> tuple[Path, Path, Path]:
        return bundle_files(self.dir)

    def expires(self) -> dt.datetime:
        return self.facts.not_after


def bundle_files(directory: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) of a bundle folder: what an etcds:// DCS without options of its own is
    reached with (verified by the CA, the certificate presented)."""
    return directory / CA, directory / CERT, directory / KEY


def bundle_signature(directory: Path) -> tuple[tuple[int, int], ...]:
    """(mtime, size) of every file of a bundle: what a running process compares to notice a new one."""
    result = []
    for name in (CA, CLIENT_CA, CERT, KEY, TOKEN):
        try:
            stat = (directory / name).stat()
            result.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            result.append((0, 0))
    return tuple(result)


def write_bundle(directory: Path, ca_pem: bytes, client_ca_pem: bytes, leaf: Issued, token: str) -> None:
    """Write a bundle folder, each file atomically (a reader sees the old file or the new one, whole)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    write_private(directory / CA, ca_pem.decode(), 0o644)
    write_private(directory / CLIENT_CA, client_ca_pem.decode(), 0o644)
    write_private(directory / KEY, leaf.key_pem.decode())
    write_private(directory / CERT, leaf.cert_pem.decode(), 0o644)
    write_private(directory / TOKEN, token + "\n")


def write_trust(directory: Path, ca_pem: bytes) -> None:
    """Replace only the bundle's CA file (atomically): a CA rotation's first and last phases change which
    CAs a host trusts, not its certificate."""
    write_private(directory / CA, ca_pem.decode(), 0o644)


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} is missing") from None
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    if path.name in PRIVATE and path.stat().st_mode & 0o077:
        raise ConfigError(f"{what} {path} must not be readable by group or others (chmod 600 it)")
    return data


def load_bundle(directory: Path, now: dt.datetime | None = None, hint: str = "") -> Bundle:
    """Check a bundle folder: every file present and private where it must be, the key belongs to the
    certificate, the node CA signed it, and it is valid now. `hint` is added to a missing-folder error
    (how to make one)."""
    now = now or now_utc()
    if not directory.is_dir():
        raise ConfigError(f"TLS bundle folder {directory} does not exist" + (f"; {hint}" if hint else ""))
    ca_pem = _read(directory / CA, "CA certificate")
    cert_pem = _read(directory / CERT, "certificate")
    key_pem = _read(directory / KEY, "private key")
    token = _read(directory / TOKEN, "API token").strip()
    client_ca_pem = _read(directory / CLIENT_CA, "client CA certificate")
    try:
        facts = describe(cert_pem)
    except ValueError:
        raise ConfigError(f"certificate {directory / CERT} is not a PEM certificate") from None
    try:
        ca_facts = describe_all(ca_pem)
    except ValueError:
        raise ConfigError(f"CA certificate {directory / CA} is not a PEM certificate") from None
    if not ca_facts:
        raise ConfigError(f"CA certificate {directory / CA} holds no certificate")
    try:
        client_ca_facts = describe_all(client_ca_pem)
    except ValueError:
        raise ConfigError(f"client CA certificate {directory / CLIENT_CA} is not a PEM certificate") from None
    if not client_ca_facts:
        raise ConfigError(f"client CA certificate {directory / CLIENT_CA} holds no certificate")
    try:
        matches = key_matches(cert_pem, key_pem)
    except (ValueError, TypeError):
        raise ConfigError(f"private key {directory / KEY} is not an unencrypted PEM key") from None
    if not matches:
        raise ConfigError(f"private key {directory / KEY} does not belong to certificate {directory / CERT}")
    signer = signer_of(cert_pem, [ca_pem])
    if signer is None:
        raise ConfigError(f"certificate {directory / CERT} ({facts.subject}) was not signed by the CA in "
                          f"{directory / CA} ({', '.join(f.subject for f in ca_facts)})")
    if facts.not_after <= now:
        raise ConfigError(f"certificate {directory / CERT} expired on {facts.not_after:%Y-%m-%d %H:%M} UTC; "
                          "issue a new one (galera-pilot pki rotate)")
    if facts.not_before > now:
        raise ConfigError(f"certificate {directory / CERT} is valid only from {facts.not_before:%Y-%m-%d %H:%M} "
                          "UTC (is this host's clock behind?)")
    if len(token) < 16:
        raise ConfigError(f"API token {directory / TOKEN} is shorter than 16 characters")
    return Bundle(directory, facts, ca_facts, signer)
