"""Making certificates: a cluster CA and the leaves it signs (pure functions over keys and names).

Choices, and why:
- ECDSA P-256 everywhere: Galera, socat, stunnel, mariadbd, PyMySQL, HAProxy and etcd all take it
  (measured on this machine), and signing or verifying is cheap.
- No intermediates: the SST scripts reject a leaf + intermediate bundle (MDEV-35812), so the root signs
  every leaf directly.
- Every node leaf is usable as server and as client (Galera's links and the agents' API calls are both).
- Two CAs: Galera trusts any certificate that chains to its CA, so an application's certificate must
  come from another CA (the client CA), never from the node CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
MIN_LEAF_DAYS, MAX_LEAF_DAYS = 90, 397  # 397: the longest life browsers' CA rules allow a leaf
# A leaf's validity starts a little in the past, so a peer whose clock is behind accepts it at once.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # never the key in a log or a traceback
        return f"Issued({describe(self.cert_pem).subject})"


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    ips: tuple[str, ...]
    dns: tuple[str, ...]
    is_ca: bool
    fingerprint: str  # SHA-256, hex

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        return self.not_after - now

    def renew_due(self, now: dt.datetime) -> bool:
        """Two thirds of the life are gone: time to renew (rotation is then a non-event, not an emergency)."""
        return now >= self.not_before + (self.not_after - self.not_before) * 2 / 3


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(common_name: str, days: int = CA_DAYS, now: dt.datetime | None = None) -> Issued:
    """A self-signed root that signs leaves only (path length 0)."""
    now = now or now_utc()
    key = _new_key()
    name = _name(common_name, "galera-pilot")
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(ca: Issued, common_name: str, ips: Sequence[str] = (), dns: Sequence[str] = (), days: int = LEAF_DAYS,
          server: bool = True, client: bool = True, now: dt.datetime | None = None) -> Issued:
    """A leaf signed by `ca` for these IP and DNS names (the common name is added as a DNS name when it
    is a valid host name, as OpenSSL-era clients still look at it)."""
    if not MIN_LEAF_DAYS <= days <= MAX_LEAF_DAYS:
        raise ValueError(f"a certificate lives {MIN_LEAF_DAYS} to {MAX_LEAF_DAYS} days, not {days}")
    now = now or now_utc()
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    unusable = [name for name in dns if not _is_host_name(name)]
    if unusable:
        raise ValueError(f"not a DNS name: {', '.join(unusable)} (IP addresses go in ips)")
    key = _new_key()
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
    names += [x509.DNSName(name) for name in dict.fromkeys([*dns, common_name]) if _is_host_name(name)]
    if not names:
        raise ValueError("a certificate needs at least one IP address or DNS name")
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH]
                                                                       if client else [])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(_name(common_name, "galera-pilot"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _is_host_name(name: str) -> bool:
    if not name.isascii():  # str.isalnum() below accepts any Unicode letter; DNS names are ASCII (A-labels)
        return False
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    labels = name.split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum() and label[0] != "-"
               for label in labels) and len(name) <= 253


def describe(cert_pem: bytes) -> CertificateFacts:
    """What a PEM certificate says (the first one in the data)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
        dns = tuple(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        ips, dns = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateFacts(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_before_utc,
                            cert.not_valid_after_utc, ips, dns, is_ca, cert.fingerprint(hashes.SHA256()).hex())


def describe_all(pem: bytes) -> tuple[CertificateFacts, ...]:
    """What every certificate in a PEM file says (a CA file holds two during a CA rotation); () when it
    holds none. ValueError when a block is not a certificate."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        return ()
    return tuple(describe(cert.public_bytes(serialization.Encoding.PEM))
                 for cert in x509.load_pem_x509_certificates(pem))


def first_certificate(pem: bytes) -> bytes:
    """The first certificate of a PEM file (a CA file holds two during a CA rotation: the signing one first)."""
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.PEM)


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the private key belongs to the certificate (a swapped key file fails every handshake)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public == cert.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)


def signed_by(cert_pem: bytes, ca_pems: Sequence[bytes]) -> bool:
    """Whether one of these CAs signed the certificate."""
    return signer_of(cert_pem, ca_pems) is not None


def signer_of(cert_pem: bytes, ca_pems: Sequence[bytes]) -> CertificateFacts | None:
    """The CA among these that signed the certificate (None: none of them). During a CA rotation a CA
    file holds two CAs, and which one signed a node's certificate says how far the node has come."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca_pem in ca_pems:
        for ca in x509.load_pem_x509_certificates(ca_pem):
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):  # another issuer, or not its signature
                continue
            return describe(ca.public_bytes(serialization.Encoding.PEM))
    return None


def short_id(facts: CertificateFacts) -> str:
    """A CA's name in reports: the start of its SHA-256 fingerprint (public, and unique enough to tell
    the outgoing CA from the incoming one)."""
    return facts.fingerprint[:16]
