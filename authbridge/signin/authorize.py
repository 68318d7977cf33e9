"""Checking an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8252 §7.3).

:func:`validate_authorize_request` is what ``GET /oauth2/authorize`` calls
before anything else. The checks run in this order, so that nothing is ever
sent to a redirect URI that is not known to be the client's:

=====================================  ===========================  ============
what                                   error                        redirectable
=====================================  ===========================  ============
a parameter repeated, too long, or     invalid_request              no
too many parameters
client_id not ``authbridge-cli``       invalid_client               no
redirect_uri missing or not loopback   invalid_request              no
state not printable ASCII / too long   invalid_request              no
response_type not ``code``             unsupported_response_type    yes
code_challenge_method not ``S256``     invalid_request              yes
(absent means ``plain``: refused)
code_challenge missing or malformed    invalid_request              yes
scope malformed                        invalid_scope                yes
=====================================  ===========================  ============

A redirect URI is accepted only as RFC 8252 §7.3 has a native app's
loopback redirect: ``http://127.0.0.1:<port>/callback`` or
``http://[::1]:<port>/callback``, the port explicit (1-65535, no leading
zero), the path exactly ``/callback``, and no userinfo, query or fragment.
``localhost`` is refused (RFC 8252 §8.3: it may resolve elsewhere), as are
https, other hosts and other paths: the check is a full match of the
text, not a parse that different URL parsers could read differently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authbridge.errors import AuthbridgeError
from authbridge.iam.sessions import CLI_CLIENT_ID, challenge_problem

MAX_PARAMS: Final = 32
MAX_PARAM_CHARS: Final = 2048
MAX_STATE_CHARS: Final = 512
MAX_SCOPE_CHARS: Final = 256
REDIRECT_PATH: Final = "/callback"

_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\]):([1-9][0-9]{0,4})/callback", re.ASCII)
_STATE = re.compile(r"[\x20-\x7e]+")  # RFC 6749 Appendix A.5: VSCHAR
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*")  # §3.3


class AuthorizeError(AuthbridgeError):
    """An authorization request refused (RFC 6749 §4.1.2.1).

    ``error`` is the OAuth error code, ``description`` one line for the
    person or the client. When ``redirectable``, the redirect URI has been
    validated and the error goes back to it (with ``state``); otherwise it
    must be shown as an error page and never redirected anywhere.
    """

    code = "InvalidAuthorizationRequest"

    def __init__(self, error: str, description: str, *, redirectable: bool) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirectable = redirectable


@dataclass(frozen=True)
class AuthorizeRequest:
    """A checked authorization request: what the consent page shows and the code records."""

    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str = ""


def redirect_uri_problem(uri: object) -> str | None:
    """What keeps ``uri`` from being the CLI's loopback redirect URI, or None."""
    if not isinstance(uri, str) or not uri:
        return "redirect_uri is required"
    match = _LOOPBACK.fullmatch(uri)
    if match is None or int(match.group(2)) > 65535:
        return (
            "redirect_uri must be http://127.0.0.1:PORT/callback or http://[::1]:PORT/callback"
            " (a loopback address, an explicit port, the path /callback, nothing else)"
        )
    return None


def _single(params: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter once, bounded, as text; a repeat or an oversize is not redirected."""
    if len(params) > MAX_PARAMS:
        raise AuthorizeError(
            "invalid_request", f"at most {MAX_PARAMS} parameters", redirectable=False
        )
    getlist = getattr(params, "getlist", None)
    out: dict[str, str] = {}
    for name in params:
        values = getlist(name) if callable(getlist) else [params[name]]
        if len(values) != 1:
            raise AuthorizeError(
                "invalid_request",
                "a parameter is repeated (RFC 6749 section 3.1)",
                redirectable=False,
            )
        value = values[0]
        if not isinstance(name, str) or not isinstance(value, str):
            raise AuthorizeError("invalid_request", "parameters must be text", redirectable=False)
        if len(value) > MAX_PARAM_CHARS or len(name) > 64:
            raise AuthorizeError(
                "invalid_request",
                f"a parameter is longer than {MAX_PARAM_CHARS} characters",
                redirectable=False,
            )
        out[name] = value
    return out


def validate_authorize_request(params: Mapping[str, Any]) -> AuthorizeRequest:
    """The checked request, or :class:`AuthorizeError` (see the module docstring).

    ``params`` is the query (a ``MultiDict`` or any mapping with ``getlist``
    has its repeats refused; a plain mapping cannot carry any).
    """
    form = _single(params)
    client_id = form.get("client_id", "")
    if client_id != CLI_CLIENT_ID:
        raise AuthorizeError(
            "invalid_client",
            f"unknown client_id; the only client is {CLI_CLIENT_ID}",
            redirectable=False,
        )
    redirect_uri = form.get("redirect_uri", "")
    problem = redirect_uri_problem(redirect_uri)
    if problem is not None:
        raise AuthorizeError("invalid_request", problem, redirectable=False)
    state = form.get("state") or None  # an empty state is no state
    if state is not None and (len(state) > MAX_STATE_CHARS or not _STATE.fullmatch(state)):
        raise AuthorizeError(
            "invalid_request",
            f"state must be 1 to {MAX_STATE_CHARS} printable ASCII characters",
            redirectable=False,
        )
    response_type = form.get("response_type")
    if response_type != "code":
        raise AuthorizeError(
            "invalid_request" if not response_type else "unsupported_response_type",
            "response_type must be code",
            redirectable=True,
        )
    method = form.get("code_challenge_method")
    if method != "S256":
        raise AuthorizeError(
            "invalid_request",
            "code_challenge_method must be S256 (plain, or no method, is refused; RFC 7636"
            " section 4.3)",
            redirectable=True,
        )
    problem = challenge_problem(form.get("code_challenge"))
    if problem is not None:
        raise AuthorizeError("invalid_request", problem, redirectable=True)
    scope = form.get("scope", "")
    if scope and (len(scope) > MAX_SCOPE_CHARS or not _SCOPE.fullmatch(scope)):
        raise AuthorizeError(
            "invalid_scope",
            f"scope must be space-separated scope tokens, at most {MAX_SCOPE_CHARS} characters",
            redirectable=True,
        )
    return AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=form["code_challenge"],
        scope=scope,
    )
