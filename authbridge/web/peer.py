"""Who is calling: the verified TLS client certificate of the current request, if any.

``authbridge serve`` (gunicorn) puts the connection's socket in the WSGI
environ as ``gunicorn.socket``. With a client CA configured, TLS asks for a
client certificate and verifies it against that CA during the handshake, but
does not require one (``CERT_OPTIONAL``: people and curl reach ``/verify``
without one). ``SSLSocket.getpeercert()`` then returns the certificate's
fields, or ``None`` when the client sent none; a certificate that does not
chain to the CA never gets this far, the handshake fails.

The certificates ``authbridge init`` makes for kube-apiservers carry the
client's name as CN and its cluster id as O (organizationName), so the
webhook knows which cluster is asking.

Tests use Flask's test client, which has no socket: they put a dict of the
same shape under :data:`TEST_ENVIRON_KEY` (``environ_base``). WSGI environ keys
from HTTP headers all start with ``HTTP_``, so no caller can set that key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger(__name__)

TEST_ENVIRON_KEY: Final = "authbridge.peer_cert"
GUNICORN_SOCKET: Final = "gunicorn.socket"


@dataclass(frozen=True)
class PeerCert:
    """The subject of a verified client certificate."""

    common_name: str
    organizations: tuple[str, ...]


def from_getpeercert(cert: Mapping[str, Any] | None) -> PeerCert | None:
    """A :class:`PeerCert` from :meth:`ssl.SSLSocket.getpeercert`'s dict; None when empty.

    ``subject`` is a tuple of relative distinguished names, each a tuple of
    ``(attribute, value)`` pairs: ``((("commonName", "kube-apiserver"),),
    (("organizationName", "prod"),))``.
    """
    if not cert:
        return None
    common_names: list[str] = []
    organizations: list[str] = []
    subject = cert.get("subject")
    if not isinstance(subject, tuple | list):
        return None
    for rdn in subject:
        if not isinstance(rdn, tuple | list):
            continue
        for pair in rdn:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                continue
            name, value = pair
            if not isinstance(value, str):
                continue
            if name == "commonName":
                common_names.append(value)
            elif name == "organizationName":
                organizations.append(value)
    return PeerCert(
        common_name=common_names[0] if common_names else "",
        organizations=tuple(organizations),
    )


def client_certificate(environ: Mapping[str, Any]) -> PeerCert | None:
    """The verified client certificate of this request, or None when there is none."""
    if TEST_ENVIRON_KEY in environ:
        value = environ[TEST_ENVIRON_KEY]
        return from_getpeercert(value if isinstance(value, Mapping) else None)
    sock = environ.get(GUNICORN_SOCKET)
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:  # plain HTTP (development) or another server
        return None
    try:
        cert = getpeercert()
    except (OSError, ValueError) as e:  # the connection went away, or no handshake
        log.info("no peer certificate: %s", type(e).__name__)
        return None
    return from_getpeercert(cert if isinstance(cert, Mapping) else None)
