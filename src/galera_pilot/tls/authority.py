"""The operator's PKI folder: the cluster's two CAs and their keys, and the bundles issued from them.

    ca.pem  ca.key (0600)                 the node CA: signs node and proxy certificates; ca.pem is also
                                          what clients verify nodes with, so while the CA is replaced
                                          (tls/ca_rotation.py) it holds both CAs, the outgoing one first
    ca-next.pem  ca-next.key              the incoming CA, during a rotation
    ca-rotation.json  retired/            the rotation's phase; the CAs rotated out
    client-ca.pem  client-ca.key (0600)   the client CA: signs application certificates only
    api-token (0600)                      what state-changing REST API requests must carry
    issued/NAME/                          the bundle of each host (bundle.py), to copy to that host

The CA keys stay here, where the operator runs the CLI: never in the DCS, never on every node. The
embedded cluster keeps its PKI folder in DIR/pki, on the one machine that runs every node.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.files import write_private
from galera_pilot.tls import pki
from galera_pilot.tls.bundle import write_bundle

NODE_CA, CLIENT_CA, TOKEN = "ca", "client-ca", "api-token"
NEXT_CA, ROTATION = "ca-next", "ca-rotation.json"


@dataclass(frozen=True)
class Authority:
    dir: Path

    def _pair(self, stem: str) -> pki.Issued:
        cert, key = self.dir / f"{stem}.pem", self.dir / f"{stem}.key"
        try:
            if key.stat().st_mode & 0o077:
                raise ConfigError(f"CA key {key} must not be readable by group or others (chmod 600 it)")
            return pki.Issued(pki.first_certificate(cert.read_bytes()), key.read_bytes())
        except FileNotFoundError as error:
            raise PilotError(f"{error.filename} is missing: {self.dir} is not a PKI folder (galera-pilot pki "
                             "init makes one)") from None

    def node_ca(self) -> pki.Issued:
        return self._pair(NODE_CA)

    def client_ca(self) -> pki.Issued:
        return self._pair(CLIENT_CA)

    @property
    def ca_file(self) -> Path:
        return self.dir / f"{NODE_CA}.pem"

    def trust_pem(self) -> bytes:
        """What clients verify the nodes with: the node CA, or both CAs while it is being replaced."""
        return self.ca_file.read_bytes()

    def next_ca(self) -> pki.Issued:
        return self._pair(NEXT_CA)

    def rotation(self) -> dict[str, str] | None:
        """The CA rotation under way (its recorded phase, tls/ca_rotation.py), None when there is none."""
        try:
            data = json.loads((self.dir / ROTATION).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise PilotError(f"{self.dir / ROTATION} cannot be read ({error}): it records the CA rotation "
                             "under way") from None
        return data if isinstance(data, dict) else None

    def signing_ca(self) -> pki.Issued:
        """The CA that signs new certificates: the incoming one once a rotation reached its second phase
        (every host trusts it by then), the node CA otherwise."""
        state = self.rotation()
        rotating = state is not None and state.get("phase") == "reissue" and (self.dir / f"{NEXT_CA}.key").exists()
        return self.next_ca() if rotating else self.node_ca()  # no ca-next.key: promoted already (phase 3)

    @property
    def token_file(self) -> Path:
        return self.dir / TOKEN

    def api_token(self) -> str:
        return self.token_file.read_text().strip()

    def exists(self) -> bool:
        return (self.dir / f"{NODE_CA}.key").exists()

    def issued_dir(self, name: str) -> Path:
        return self.dir / "issued" / name

    def issue_bundle(self, name: str, ips: Sequence[str], dns: Sequence[str] = (), days: int = pki.LEAF_DAYS,
                     out: Path | None = None) -> Path:
        """Write NAME's bundle (to `out`, default issued/NAME) and return its folder."""
        leaf = pki.issue(self.signing_ca(), name, ips, dns, days)
        target = out or self.issued_dir(name)
        write_bundle(target, self.trust_pem(), (self.dir / f"{CLIENT_CA}.pem").read_bytes(), leaf,
                     self.api_token())
        return target

    def reissue(self, bundle_dir: Path, name: str, days: int = pki.LEAF_DAYS) -> pki.CertificateFacts:
        """A new certificate for the bundle in `bundle_dir`, with the names the current one has (expired or
        not: `pki rotate` is how a cluster whose certificates all expired comes back)."""
        try:
            old = pki.describe((bundle_dir / "node.pem").read_bytes())
        except (OSError, ValueError):
            raise PilotError(f"{bundle_dir / 'node.pem'} cannot be read as a certificate: issue {name} anew with "
                             "its addresses (galera-pilot pki issue)") from None
        self.issue_bundle(name, old.ips, [d for d in old.dns if d != name], days, out=bundle_dir)
        return pki.describe((bundle_dir / "node.pem").read_bytes())

    def issue_client(self, name: str, days: int = pki.LEAF_DAYS, out: Path | None = None) -> Path:
        """An application's certificate from the client CA (never from the node CA: Galera trusts anything
        the node CA signed). Written as NAME.pem / NAME.key with the node CA to verify servers."""
        leaf = pki.issue(self.client_ca(), name, dns=[name], days=days, server=False, client=True)
        target = out or self.dir / "clients"
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        write_private(target / f"{name}.key", leaf.key_pem.decode())
        write_private(target / f"{name}.pem", leaf.cert_pem.decode(), 0o644)
        write_private(target / "ca.pem", self.trust_pem().decode(), 0o644)
        return target


def init_authority(directory: Path, cluster_name: str) -> Authority:
    """Make the two CAs and the API token; refuses to overwrite an existing PKI (its certificates are in use)."""
    authority = Authority(directory)
    if authority.exists():
        raise PilotError(f"{directory} already holds a PKI (ca.key); it is kept (remove it by hand only if no "
                         "cluster uses it)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for stem, label in ((NODE_CA, "node CA"), (CLIENT_CA, "client CA")):
        ca = pki.make_ca(f"galera-pilot {cluster_name} {label}")
        write_private(directory / f"{stem}.key", ca.key_pem.decode())
        write_private(directory / f"{stem}.pem", ca.cert_pem.decode(), 0o644)
    write_private(directory / TOKEN, secrets.token_urlsafe(32) + "\n")
    return authority
