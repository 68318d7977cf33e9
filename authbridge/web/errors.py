"""One error handler: every refusal leaves as RFC 6749 §5.2 JSON, nothing secret echoed.

The body is always ``{"error": <code>, "error_description": <one line>}`` with
``Cache-Control: no-store`` and ``Pragma: no-cache`` (RFC 6749 §5.1), whatever
raised it:

=============================================  ======  ===========================
raised                                         status  error
=============================================  ======  ===========================
InvalidCredentials, Authlib InvalidClientError  401    invalid_client (+ WWW-Authenticate,
                                                        one message for every cause)
sts.InvalidRequest / DurationNotAllowed         400    invalid_request
errors.InputError                               400    invalid_request
sts.AudienceNotServed                           400    invalid_target
sts.GrantRefused and subclasses                 400    invalid_grant
errors.TokenError (a token that must verify)    400    invalid_grant
Authlib OAuth2Error (unsupported grant, …)      its    its code
StoreUnavailable                                503    temporarily_unavailable
limits.TooManyFailedAttempts                    429    too_many_requests (+ Retry-After)
HTTP 404 / 405 / 413 / 431 …                    its    not_found / method_not_allowed /
                                                        invalid_request (body or header
                                                        too large)
anything else                                   500    server_error (details only logged)
=============================================  ======  ===========================

Descriptions are limited to the characters RFC 6749 §5.2 allows (no ``"`` or
``\\``, printable ASCII) and to a bounded length; exception messages in
authbridge never contain secrets or tokens, and a client secret or token is
never put in one here. Free-form parameters (grant_type, audience, a
non-numeric duration) are named, never repeated back. Where a message does
quote what the caller sent (a malformed ``role_arn``, a repeated parameter's
name, a field of a forged subject token's header), every secret-shaped run
in it (:func:`authbridge.audit.redact`: a JWT, or 40 base64url characters
like an access-key secret) becomes ``[redacted]``: the description names the
field and what it expects, never a secret pasted into it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError, UnsupportedGrantTypeError
from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from authbridge.audit import redact
from authbridge.errors import (
    AuthbridgeError,
    InputError,
    InvalidCredentials,
    StoreUnavailable,
    TokenError,
)
from authbridge.sts import StsError
from authbridge.web.limits import TooManyFailedAttempts

log = logging.getLogger(__name__)

CLIENT_AUTH_FAILED = (
    "client authentication failed: the access key id or secret is not valid,"
    " or the key or its user is not active"
)
UNSUPPORTED_GRANT = (
    "grant_type must be client_credentials, urn:ietf:params:oauth:grant-type:token-exchange,"
    " urn:ietf:params:oauth:grant-type:device_code, authorization_code or refresh_token"
)
WWW_AUTHENTICATE = 'Basic realm="authbridge"'
NO_STORE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
)
MAX_DESCRIPTION = 300  # characters of error_description


class ErrorBody(TypedDict):
    """RFC 6749 §5.2 error response."""

    error: str
    error_description: NotRequired[str]


@dataclass(frozen=True)
class WireError:
    """An error as it goes on the wire."""

    status: int
    error: str
    description: str
    headers: tuple[tuple[str, str], ...] = field(default=())


def wire_text(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """``text`` redacted, in the characters RFC 6749 §5.2 allows, bounded.

    Allowed: %x20-21 / %x23-5B / %x5D-7E; anything else becomes ``?``.
    """
    clean = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in redact(text))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _http_error_code(e: HTTPException) -> str:
    if e.code in (413, 431):
        return "invalid_request"
    return (e.name or "error").lower().replace(" ", "_").replace("'", "")


def to_wire(exc: BaseException, *, max_body: int | None = None) -> WireError:
    """How ``exc`` is answered (see the table in the module docstring)."""
    if isinstance(exc, InvalidCredentials | InvalidClientError):
        return WireError(
            401, "invalid_client", CLIENT_AUTH_FAILED, (("WWW-Authenticate", WWW_AUTHENTICATE),)
        )
    if isinstance(exc, StsError):
        challenge = (("WWW-Authenticate", WWW_AUTHENTICATE),) if exc.status == 401 else ()
        return WireError(exc.status, exc.oauth_error, str(exc), challenge)
    if isinstance(exc, InputError):
        return WireError(400, "invalid_request", str(exc))
    if isinstance(exc, TokenError):
        return WireError(400, "invalid_grant", str(exc))
    if isinstance(exc, StoreUnavailable):
        return WireError(
            503, "temporarily_unavailable", "the IAM store is unavailable; retry shortly"
        )
    if isinstance(exc, TooManyFailedAttempts):
        # Not an RFC 6749 code (it has none for this); named after HTTP 429 (RFC 6585 §4).
        return WireError(
            429, "too_many_requests", str(exc), (("Retry-After", str(exc.retry_after)),)
        )
    if isinstance(exc, UnsupportedGrantTypeError):
        # Authlib's description repeats the value; ours names what is supported.
        return WireError(400, "unsupported_grant_type", UNSUPPORTED_GRANT)
    if isinstance(exc, OAuth2Error):
        status = int(exc.status_code or 400)
        headers: tuple[tuple[str, str], ...] = ()
        if status == 401:
            headers = (("WWW-Authenticate", WWW_AUTHENTICATE),)
        return WireError(status, str(exc.error), str(exc.get_error_description() or ""), headers)
    if isinstance(exc, HTTPException) and exc.code is not None:
        if exc.code == 413:
            limit = f" of {max_body} bytes" if max_body else ""
            return WireError(413, "invalid_request", f"the request body is over the limit{limit}")
        # Keep what the exception says about the request (e.g. Allow on a 405).
        kept = tuple((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
        return WireError(exc.code, _http_error_code(exc), str(exc.description or exc.name), kept)
    return WireError(500, "server_error", "internal error; the server log has the details")


def error_response(wire: WireError) -> Response:
    body: ErrorBody = {"error": wire.error}
    if wire.description:
        body["error_description"] = wire_text(wire.description)
    response = Response(json.dumps(body), status=wire.status, mimetype="application/json")
    for name, value in (*NO_STORE_HEADERS, *wire.headers):
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Install the handler for every exception a view can raise."""

    def handle(exc: Exception) -> Response | HTTPException:
        if isinstance(exc, HTTPException) and (exc.code is None or exc.code < 400):
            return exc  # routing redirects (e.g. a missing trailing slash) stay what they are
        wire = to_wire(exc, max_body=app.config.get("MAX_CONTENT_LENGTH"))
        if wire.status >= 500:
            log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        elif isinstance(exc, AuthbridgeError):
            log.info("request refused: %s (%s): %s", wire.error, exc.code, exc.message)
        else:
            log.info("request refused: %s", wire.error)
        return error_response(wire)

    app.register_error_handler(Exception, handle)
