"""IAM OpenID Connect identity providers: their URL, client ids, CA bundle and ARN (pure).

An OIDC provider registered in IAM (AWS: ``CreateOpenIDConnectProvider``) is
an issuer whose tokens roles may trust (:mod:`authbridge.iam.trust`). Its
identity is its URL: the ARN is ``arn:<partition>:iam::<account>:oidc-provider/
<host[:port]/path>`` and trust conditions name its claims ``<host[:port]/path>:
<claim>`` (:func:`provider_key`). Rules, checked by the parsers here before
anything is stored:

* the URL is ``https://`` then a DNS name or IPv4 address, an optional port
  and an optional path; no user info, query or fragment, no empty, ``.`` or
  ``..`` path segment, printable ASCII only, at most :data:`MAX_URL` characters.
  The host is lowercased; the rest is kept exactly, so the URL is the
  ``iss`` a token must carry (OpenID Connect Discovery §4.3: exact match).
  A trailing ``/`` is kept in the URL and dropped from the key, so
  ``https://a/`` and ``https://a`` are one provider;
* client ids (the audiences a token may carry, AWS ``ClientIDList``): at
  most :data:`MAX_CLIENT_IDS`, each 1 to :data:`MAX_CLIENT_ID` printable ASCII
  characters without spaces; duplicates are folded, order kept. A provider
  with none accepts no token;
* the CA bundle (``--ca-file``, for an issuer whose certificate no public CA
  signs, like a kube-apiserver's): PEM certificates only, at most
  :data:`MAX_CA_BUNDLE` characters and :data:`MAX_CA_CERTIFICATES` of them;
  a private key in it is refused (it would be stored in the clear).

Every refusal is an :class:`~authbridge.errors.InputError` naming the field
(``Url``, ``ClientIDList[2]``, ``CaBundle``) and what to write instead.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from authbridge.errors import InputError, MalformedArn
from authbridge.iam.policy_patterns import show

MAX_URL: Final = 255  # characters, as IAM
MAX_CLIENT_IDS: Final = 100  # per provider, as IAM
MAX_CLIENT_ID: Final = 255
MAX_CA_BUNDLE: Final = 64 * 1024  # characters of PEM
MAX_CA_CERTIFICATES: Final = 16
MAX_PROVIDERS_PER_ACCOUNT: Final = 100  # as IAM

_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~%!$&'()*+,;=@-]{1,255}", re.ASCII)
_URL: Final = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?P<rest>[?#].*)?",
    re.ASCII | re.DOTALL,
)
_CLIENT_ID: Final = re.compile(r"[\x21-\x7e]+", re.ASCII)
_URL_HINT: Final = "write the issuer URL, e.g. https://token.actions.githubusercontent.com"


def _url_error(message: str) -> InputError:
    return InputError("Url", message, hint=_URL_HINT)


@dataclass(frozen=True)
class ProviderUrl:
    """A checked provider URL: ``url`` is the issuer, ``key`` its ``host[:port]/path``."""

    url: str
    key: str


def _is_host(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    # A last label of digits only is an address gone wrong (10.0.0, 999.1.1.1), not a name.
    return (
        len(host) <= 253 and bool(_HOST.fullmatch(host)) and not host.rsplit(".", 1)[-1].isdigit()
    )


def parse_url(text: object) -> ProviderUrl:
    """The checked URL of an OIDC provider (``InputError`` on field ``Url`` otherwise)."""
    if not isinstance(text, str):
        raise _url_error(f"must be a string, got {show(text)}")
    if not text:
        raise _url_error("must not be empty")
    if len(text) > MAX_URL:
        raise _url_error(f"must be at most {MAX_URL} characters, got {len(text)}")
    if not text.isascii() or not text.isprintable():
        raise _url_error(f"{show(text)} holds a character that is not printable ASCII")
    match = _URL.fullmatch(text)
    if match is None:
        raise _url_error(f"{show(text)} is not a URL")
    if match["scheme"] != "https":
        # Discovery and keys are never fetched in the clear.
        raise _url_error(f"must start with https://, got {show(match['scheme'])}://")
    if match["rest"]:
        raise _url_error("must have no query or fragment")
    authority = match["authority"]
    if "@" in authority:
        raise _url_error("must not hold a user name or password")
    host, sep, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if sep:
        if not port.isdigit() or not 1 <= int(port) <= 65535 or port != str(int(port)):
            raise _url_error(f"port {show(port)} is not a number from 1 to 65535")
    host = host.lower()
    if host.startswith("["):
        raise _url_error("IPv6 addresses are not supported as provider hosts; use a DNS name")
    if not host:
        raise _url_error("has no host")
    if not _is_host(host):
        raise _url_error(f"host {show(host)} is not a DNS name or IPv4 address")
    path = match["path"]
    trimmed = path[:-1] if path.endswith("/") else path
    if trimmed:
        for segment in trimmed.split("/")[1:]:
            if segment in ("", ".", ".."):
                raise _url_error("its path has an empty, '.' or '..' segment")
            if not _SEGMENT.fullmatch(segment):
                raise _url_error(f"its path segment {show(segment)} holds a character IAM refuses")
    netloc = f"{host}:{port}" if sep else host
    return ProviderUrl(url=f"https://{netloc}{path}", key=f"{netloc}{trimmed}")


def provider_key(url: str) -> str:
    """``host[:port]/path`` of a provider URL: its ARN's resource and its condition prefix."""
    return parse_url(url).key


def provider_arn(partition: str, account_id: str, key: str) -> str:
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{key}"


_ARN: Final = re.compile(
    r"arn:(?P<partition>[a-z][a-z0-9-]{0,31}):iam::(?P<account>[0-9]{12}):oidc-provider/(?P<key>.+)",
    re.ASCII | re.DOTALL,
)


@dataclass(frozen=True)
class ProviderArn:
    partition: str
    account_id: str
    key: str

    @property
    def arn(self) -> str:
        return provider_arn(self.partition, self.account_id, self.key)


def parse_provider_arn(text: object, *, field: str = "OpenIDConnectProviderArn") -> ProviderArn:
    """An ``oidc-provider`` ARN, its key checked as :func:`parse_url` checks a URL."""
    hint = "e.g. arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"
    if not isinstance(text, str):
        raise MalformedArn(field, f"must be a string, got {show(text)}", hint=hint)
    if len(text) > 2048:
        raise MalformedArn(field, f"must be at most 2048 characters, got {len(text)}", hint=hint)
    match = _ARN.fullmatch(text)
    if match is None:
        raise MalformedArn(field, f"{show(text)} is not an oidc-provider ARN", hint=hint)
    key = match["key"]
    try:
        parsed = parse_url(f"https://{key}")
    except InputError as e:
        raise MalformedArn(field, f"its provider {show(key)} is not valid: {e}", hint=hint) from e
    if parsed.key != key:
        raise MalformedArn(
            field,
            f"its provider must be written {show(parsed.key)} (lowercase host, no trailing /)",
            hint=hint,
        )
    return ProviderArn(match["partition"], match["account"], key)


def parse_client_ids(values: object, *, field: str = "ClientIDList") -> tuple[str, ...]:
    """Checked client ids, duplicates folded, order kept."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(field, f"must be a list of client ids, got {show(values)}")
    if len(values) > MAX_CLIENT_IDS:
        raise InputError(field, f"must have at most {MAX_CLIENT_IDS} client ids, got {len(values)}")
    out: list[str] = []
    for position, value in enumerate(values):
        out_id = parse_client_id(value, field=f"{field}[{position}]")
        if out_id not in out:
            out.append(out_id)
    return tuple(out)


def parse_client_id(value: object, *, field: str = "ClientID") -> str:
    hint = "a client id is the audience the provider puts in its tokens, e.g. sts.amazonaws.com"
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {show(value)}", hint=hint)
    if not 1 <= len(value) <= MAX_CLIENT_ID:
        raise InputError(
            field, f"must be 1 to {MAX_CLIENT_ID} characters, got {len(value)}", hint=hint
        )
    if not _CLIENT_ID.fullmatch(value):
        raise InputError(
            field, "must be printable ASCII without spaces or control characters", hint=hint
        )
    return value


def parse_ca_bundle(text: object, *, field: str = "CaBundle") -> str:
    """The PEM bundle, checked to be certificates only, re-encoded (one canonical form)."""
    hint = "give the PEM file of the CA that signed the issuer's certificate"
    if not isinstance(text, str):
        raise InputError(field, f"must be PEM text, got {show(text)}", hint=hint)
    if len(text) > MAX_CA_BUNDLE:
        raise InputError(
            field, f"must be at most {MAX_CA_BUNDLE} characters, got {len(text)}", hint=hint
        )
    if "PRIVATE KEY" in text:
        raise InputError(field, "holds a private key; a CA bundle is certificates only", hint=hint)
    if not text.isascii():
        raise InputError(field, "must be ASCII PEM text", hint=hint)
    try:
        certificates = x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        raise InputError(field, "is not a PEM bundle of X.509 certificates", hint=hint) from None
    if len(certificates) > MAX_CA_CERTIFICATES:
        raise InputError(
            field,
            f"must hold at most {MAX_CA_CERTIFICATES} certificates, got {len(certificates)}",
        )
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def ca_fingerprints(bundle: str | None) -> tuple[str, ...]:
    """SHA-256 fingerprints (hex) of the bundle's certificates, in order."""
    if not bundle:
        return ()
    return tuple(
        hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
        for c in x509.load_pem_x509_certificates(bundle.encode("ascii"))
    )


@dataclass(frozen=True)
class OidcProvider:
    """A registered provider, as the store returns it."""

    arn: str
    account_id: str
    url: str
    key: str
    client_ids: tuple[str, ...]
    created_at: datetime
    ca_bundle: str | None = field(default=None, repr=False)
    tags: dict[str, str] = field(default_factory=dict)

    def to_aws(self) -> dict[str, Any]:
        """``aws iam get-open-id-connect-provider``'s shape (Url without ``https://``)."""
        out: dict[str, Any] = {
            "Arn": self.arn,
            "Url": self.url.removeprefix("https://"),
            "ClientIDList": list(self.client_ids),
            "ThumbprintList": [],
            "CaCertificateFingerprints": list(ca_fingerprints(self.ca_bundle)),
            "CreateDate": self.created_at.astimezone(UTC).replace(microsecond=0).isoformat(),
        }
        if self.tags:
            out["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]
        return out


def fold(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` with duplicates dropped, first occurrence kept."""
    return tuple(dict.fromkeys(values))


# The provider part of a web identity source: arn:<p>:iam::<acct>:oidc-provider/<host>...
_SOURCE: Final = re.compile(
    r"arn:[a-z][a-z0-9-]{0,31}:iam::(?P<account>[0-9]{12}):oidc-provider/(?P<rest>.+)",
    re.ASCII | re.DOTALL,
)
_PORT_THEN: Final = re.compile(r"(?P<host>[^:/]+):(?P<port>[0-9]{1,5})(?=[/:])")


def web_identity_source(provider_arn_text: str, sub: str) -> str:
    """The ``source_identity`` of a web identity session: ``<provider ARN>:<sub>``."""
    return f"{provider_arn_text}:{sub}"


def source_provider_keys(source_identity: str) -> tuple[str, tuple[str, ...]] | None:
    """The account and the candidate provider keys of a web identity source, or None.

    ``<provider ARN>:<sub>``: the provider key is ``host[:port][/path]`` (no ``:`` in
    the path), so the key ends at the first ``:`` after the host, or after the port
    when one follows the host. A host followed by ``:<digits>:`` is read both ways
    (``host:port`` with the sub after it, or ``host`` with a sub starting with digits);
    the source is live when either provider is registered.
    """
    match = _SOURCE.fullmatch(source_identity)
    if match is None:
        return None
    rest = match["rest"]
    candidates: list[str] = []
    with_port = _PORT_THEN.match(rest)
    if with_port is not None:
        tail = rest[with_port.end() :]
        path = tail.split(":", 1)[0] if ":" in tail else None
        if path is not None:
            candidates.append(f"{with_port['host']}:{with_port['port']}{path}")
    plain, sep, _ = rest.partition(":")
    if sep and plain:
        candidates.append(plain)
    return (match["account"], tuple(dict.fromkeys(candidates))) if candidates else None
