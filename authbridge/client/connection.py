"""Why a connection to an authbridge server failed, said once for every client of it.

The issuer client (:mod:`authbridge.client.issuer`) and the admin API client
(:mod:`authbridge.client.admin_api`) meet the same failures below HTTP: an
untrusted certificate, TLS that fails, a refused connection, a timeout, a host
that does not resolve, a connection closed without an answer. :func:`explain`
turns the reason urllib gives into a message and a hint, in the words of the
client (which service, how its endpoint is set); each client raises its own
error type with them. Both make their TLS context with :func:`tls_context` and
refuse redirects with :class:`RefuseRedirects`. Standard library only, and
imported only where a request is sent: the token plugin's cached path never
loads it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, NoReturn


@dataclass(frozen=True)
class Words:
    """How a client names what it talks to, in its messages and hints."""

    service: str  # "the issuer"
    endpoint: str  # how the endpoint is set: "--endpoint"
    ca_hint: str  # how a CA bundle is given
    refused_hint: str  # what to do when nothing listens


def explain(
    reason: object, *, where: str, timeout: float, ca_file: str | None, words: Words
) -> tuple[str, str]:
    """(message, hint) for a connection to ``where`` that failed with ``reason``."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        # OpenSSL sets reason; an SSLError made elsewhere may lack it.
        why = (
            reason.verify_message or getattr(reason, "reason", None) or "certificate verify failed"
        )
        if ca_file is None:
            hint = (
                f"the server's certificate is not trusted by this system; {words.ca_hint}"
                " with the CA that signed it (authbridge init writes keys/tls/ca.crt)"
            )
        elif "hostname" in str(why).lower():
            hint = f"use the host name the server's certificate is issued for in {words.endpoint}"
        else:
            hint = f"check that {ca_file} is the CA that signed the server's certificate"
        return f"TLS verification of {where} failed: {why}", hint
    https_hint = f"check that {words.endpoint} is the https URL of the authbridge server"
    if isinstance(reason, ssl.SSLError):
        return f"TLS with {where} failed: {getattr(reason, 'reason', None) or reason}", https_hint
    if isinstance(reason, ConnectionRefusedError):
        return f"cannot connect to {words.service} at {where}: connection refused", (
            words.refused_hint
        )
    if isinstance(reason, TimeoutError):
        return (
            f"{words.service} at {where} did not answer within {timeout:g} s",
            f"check {words.endpoint} and the network (a firewall or proxy may drop packets)",
        )
    if isinstance(reason, socket.gaierror):
        return (
            f"cannot resolve the host of {where}: {reason.strerror}",
            f"check the host name in {words.endpoint} and DNS",
        )
    if isinstance(reason, http.client.HTTPException | ConnectionError):
        return f"{words.service} at {where} closed the connection without a valid answer", (
            https_hint
        )
    text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
    return f"cannot reach {words.service} at {where}: {text}", (
        f"check {words.endpoint} and the network"
    )


def tls_context(ca_file: str | None, ca_hint: str) -> ssl.SSLContext:
    """The context a client verifies the server with: the system trust store, or only
    ``ca_file``. A CA file that cannot be read or holds no certificate raises
    :class:`BadCaFile` (message, hint), which each client turns into its own error."""
    if ca_file is None:
        return ssl.create_default_context()
    try:
        # Only this bundle is trusted, not the system store as well.
        return ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError as e:
        raise BadCaFile(
            f"CA file {ca_file} holds no usable PEM certificate",
            f"{ca_hint}, naming the CA bundle that signed the server's certificate",
        ) from e
    except OSError as e:
        raise BadCaFile(
            f"cannot read CA file {ca_file}: {e.strerror or type(e).__name__}", ca_hint
        ) from e


class BadCaFile(Exception):
    """A CA file no TLS context can be made from: ``message`` and ``hint``."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the client's credentials (or a user's token) to another URL:
    every one is refused with the error ``refusal(code, new_url)`` makes."""

    def __init__(self, refusal: Callable[[int, str], Exception]) -> None:
        self.refusal = refusal

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> NoReturn:
        fp.close()
        raise self.refusal(code, newurl)
