"""HTTPS to the admin API: ``POST {endpoint}/api/<surface>`` as the caller, stdlib only.

One call is ``{"Action": "CreateUser", ...params}`` as JSON; the answer is the
document ``authbridge -o json`` prints for the same verb, or ``{"Error":
{"Code", "Message"}}`` with a 4xx/5xx status. :meth:`AdminClient.call`
returns the document, or raises :class:`ApiRefused` (the server's code and
message; the CLI maps it back to the error class store mode raises) or
:class:`AdminApiError` (no usable answer: the endpoint unreachable, TLS
refused, not JSON, over :data:`MAX_ANSWER_BYTES`).

How the caller proves who it is (:class:`Authorization`): an access key as
HTTP Basic (:class:`AccessKeyAuthorization`, as the token endpoint takes
it), or later a sign-in session's admin-audience token as ``Bearer`` (any
object with an ``authorization()`` method: the seam is that one method).

Transport rules, as :mod:`authbridge.client.issuer`'s: https only; the CA
bundle given (the profile's ``ca_file``) or the system trust store, never no
verification; 10 s connect and read timeouts; redirects are not followed
(they would carry the credentials elsewhere). No message ever holds the
secret or the ``Authorization`` header: they name the endpoint and the fix.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Final, NoReturn, Protocol

from authbridge import __version__
from authbridge.client.connection import BadCaFile, RefuseRedirects, Words, explain, tls_context
from authbridge.client.issuer import basic_authorization
from authbridge.errors import AuthbridgeError

__all__ = [
    "MAX_ANSWER_BYTES",
    "SURFACES",
    "TIMEOUT",
    "AccessKeyAuthorization",
    "AdminApiError",
    "AdminClient",
    "ApiRefused",
    "Authorization",
    "parse_answer",
]

TIMEOUT: Final = 10.0  # seconds, for the TCP connect and for each read
MAX_ANSWER_BYTES: Final = 1024 * 1024
SURFACES: Final = ("iam", "access", "keys")
_MAX_CODE = 64
_MAX_MESSAGE = 1000
_CA_HINT = "set ca_file in the profile (`authbridge configure --ca-file F`) or AUTHBRIDGE_CA_FILE"
_WORDS = Words(
    service="the admin API",
    endpoint="the endpoint",
    ca_hint=_CA_HINT,
    refused_hint="check the endpoint (--endpoint or the profile's) and that the server runs;"
    " without a profile or endpoint the CLI uses the store directly",
)


class AdminApiError(AuthbridgeError):
    """The admin API gave no usable answer (network, TLS, not JSON, too large)."""

    code = "AdminApiError"


class ApiRefused(AuthbridgeError):
    """An ``{"Error": {"Code", "Message"}}`` answer: ``code``, ``status``, ``retry_after``."""

    def __init__(self, code: str, message: str, *, status: int, retry_after: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


class Authorization(Protocol):
    """The ``Authorization`` header value of a call (computed per call: a token may refresh)."""

    def authorization(self) -> str: ...


@dataclass(frozen=True)
class AccessKeyAuthorization:
    """HTTP Basic with an access key id and its secret (RFC 6749 §2.3.1 encoding)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)

    def authorization(self) -> str:
        return basic_authorization(self.access_key_id, self.secret_access_key)


def _printable(text: str, limit: int) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 9:
        return None
    return int(value.strip())


def parse_answer(
    status: int, body: bytes, retry_after: str | None, endpoint: str
) -> dict[str, Any]:
    """The document of a 2xx answer; :class:`ApiRefused` for an error answer; else AdminApiError."""
    check = "check that the endpoint is the https URL of an authbridge server"
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        shown = f"HTTP {status}" if status >= 300 else "something that is not a JSON object"
        raise AdminApiError(f"the admin API at {endpoint} answered {shown}", hint=check)
    if 200 <= status < 300:
        return doc
    error = doc.get("Error")
    code = error.get("Code") if isinstance(error, dict) else None
    message = error.get("Message") if isinstance(error, dict) else None
    if (
        not isinstance(code, str)
        or not code.isascii()
        or not code.isalnum()
        or not 0 < len(code) <= _MAX_CODE
    ):
        raise AdminApiError(
            f"the admin API at {endpoint} answered HTTP {status} without an error code", hint=check
        )
    text = _printable(message, _MAX_MESSAGE) if isinstance(message, str) and message else code
    after = _retry_after(retry_after) if status == 429 else None
    raise ApiRefused(code, text, status=status, retry_after=after)


def _redirect_refused(endpoint: str) -> Callable[[int, str], AdminApiError]:
    def refusal(code: int, _new_url: str) -> AdminApiError:
        return AdminApiError(
            f"the admin API at {endpoint} answered HTTP {code}, a redirect",
            hint="authbridge does not follow redirects; set the endpoint to the server's own"
            " https URL",
        )

    return refusal


class AdminClient:
    """The admin API of one authbridge server, called as one caller."""

    def __init__(
        self,
        endpoint: str,
        credentials: Authorization,
        *,
        ca_file: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        if not endpoint.startswith("https://"):
            # authbridge.client.config checked it; this is the last line of defence.
            raise AdminApiError(f"refusing to send credentials to {endpoint}: not https")
        self.endpoint = endpoint.rstrip("/")
        self.ca_file = ca_file
        self.timeout = timeout
        self._credentials = credentials
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._tls_context()),
            RefuseRedirects(_redirect_refused(self.endpoint)),
        )

    def __repr__(self) -> str:
        return f"AdminClient({self.endpoint!r})"

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return tls_context(self.ca_file, _CA_HINT)
        except BadCaFile as e:
            raise AdminApiError(e.message, hint=e.hint) from None

    def call(self, surface: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """``action`` with ``params`` on ``/api/<surface>``: the answer's document."""
        if surface not in SURFACES:
            raise ValueError(f"no admin API surface {surface}")
        body = json.dumps({"Action": action, **params}, ensure_ascii=True).encode("ascii")
        request = urllib.request.Request(  # noqa: S310 - https:// (checked in __init__)
            f"{self.endpoint}/api/{surface}",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"authbridge/{__version__}",
                "Authorization": self._credentials.authorization(),
            },
            method="POST",
        )
        status, answer, retry_after = self._send(request)
        return parse_answer(status, answer, retry_after, self.endpoint)

    # -- transport ---------------------------------------------------------------------------
    def _read(self, stream: IO[bytes]) -> bytes:
        body = stream.read(MAX_ANSWER_BYTES + 1)
        if len(body) > MAX_ANSWER_BYTES:
            raise AdminApiError(
                f"the admin API at {self.endpoint} answered with more than"
                f" {MAX_ANSWER_BYTES // (1024 * 1024)} MiB",
                hint="check that the endpoint is the https URL of an authbridge server",
            )
        return body

    def _send(self, request: urllib.request.Request) -> tuple[int, bytes, str | None]:
        """(status, body, Retry-After) of the answer, whatever its status."""
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, self._read(response), None
        except urllib.error.HTTPError as e:
            try:
                body = self._read(e) if e.fp is not None else b""
            except (OSError, http.client.HTTPException):
                body = b""  # the status says enough
            finally:
                e.close()
            return e.code, body, e.headers.get("Retry-After") if e.headers else None
        except urllib.error.URLError as e:
            self._unreachable(e.reason, e)
        except (OSError, http.client.HTTPException) as e:
            self._unreachable(e, e)

    def _unreachable(self, reason: object, cause: BaseException) -> NoReturn:
        message, hint = explain(
            reason, where=self.endpoint, timeout=self.timeout, ca_file=self.ca_file, words=_WORDS
        )
        raise AdminApiError(message, hint=hint) from None
