"""Certificates for TLS and mutual TLS: a CA, serving and client certificates.

authbridge runs its own small CA (``authbridge init`` makes it): the serving
certificate for the webhook/issuer, and one client certificate per
kube-apiserver so the webhook knows which cluster is calling. Keys are ECDSA
P-256 (fast handshakes, small certificates); validity periods follow the
CA/Browser Forum ceiling for serving certificates (≤ 397 days) and give the
CA ten years.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from authbridge.errors import InputError, KeyStoreError

CA_DAYS = 3650
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}", re.ASCII)
LEAF_DAYS = 397


@dataclass(frozen=True)
class CertKey:
    """A certificate and its private key, both PEM. The key never shows in a repr."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyStoreError("the CA key is not an EC key", hint="re-run `authbridge init`")
        return key


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)


def new_ca(common_name: str = "authbridge CA", *, now: dt.datetime | None = None) -> CertKey:
    key = _new_key()
    start = _now(now)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _leaf(
    ca: CertKey,
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName] = (),
    now: dt.datetime | None,
    days: int,
) -> CertKey:
    ca_cert = ca.certificate
    ca_key = ca.private_key()
    key = _new_key()
    start = _now(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def server_names(hostnames: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    """Subject alternative names for a serving certificate; refuses malformed entries."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        label = host.rstrip(".").lower()
        if len(label) > 253 or not _DNS_NAME.fullmatch(label):
            raise InputError(
                "hostname", f"{host[:80]!r} is not a DNS name", hint="e.g. --hostname h.example"
            )
        names.append(x509.DNSName(label))
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise InputError(
                "ip", f"{ip!r} is not an IP address", hint="e.g. --ip 10.0.0.5"
            ) from None
    if not names:
        raise InputError("hostname", "a serving certificate needs at least one name or IP")
    return names


def issue_server_cert(
    ca: CertKey,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    now: dt.datetime | None = None,
    days: int = LEAF_DAYS,
) -> CertKey:
    sans = server_names(hostnames, ips)
    cn = hostnames[0] if hostnames else ips[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return _leaf(ca, subject, usage=ExtendedKeyUsageOID.SERVER_AUTH, sans=sans, now=now, days=days)


def issue_client_cert(
    ca: CertKey,
    *,
    common_name: str,
    organization: str | None = None,
    now: dt.datetime | None = None,
    days: int = LEAF_DAYS,
) -> CertKey:
    """A client certificate: CN names the caller (e.g. a kube-apiserver), O its cluster."""
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return _leaf(ca, x509.Name(attrs), usage=ExtendedKeyUsageOID.CLIENT_AUTH, now=now, days=days)


def load(cert_path: Path, key_path: Path) -> CertKey:
    try:
        return CertKey(cert_path.read_bytes(), key_path.read_bytes())
    except OSError as e:
        raise KeyStoreError(
            f"cannot read {e.filename}: {e.strerror}", hint="run `authbridge init` to create it"
        ) from e
