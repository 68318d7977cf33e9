"""The upstream sign-in's request and callback (pure): what goes to the IdP, what comes back.

The login page's "Sign in with <IdP>" starts an authorization code flow
(RFC 6749 §4.1, OpenID Connect Core §3.1) with PKCE (RFC 7636):

* :func:`new_attempt` makes the attempt kept server-side in the browser's
  flow: ``state`` and ``nonce`` (32 random bytes each, base64url) and the
  PKCE ``code_verifier`` (32 random bytes, base64url: 43 characters, RFC 7636
  §4.1), with its S256 ``code_challenge`` (§4.2);
* :func:`authorization_url` appends the request to the IdP's
  ``authorization_endpoint``, keeping a query it already has (§3.1:
  "MUST be retained");
* :func:`parse_callback` reads ``GET <issuer>/login/upstream/callback``'s
  query: ``code`` and ``state``, or the IdP's ``error`` (RFC 6749 §4.1.2.1),
  each bounded and of RFC 6749 Appendix A's characters; anything else is a
  :class:`CallbackInvalid` naming the parameter (never its value);
* :func:`state_matches` compares the state in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from authbridge.errors import InputError

STATE_BYTES: Final = 32
NONCE_BYTES: Final = 32
VERIFIER_BYTES: Final = 32
MAX_CODE: Final = 2048  # characters of an authorization code
MAX_STATE: Final = 128
MAX_ERROR: Final = 64
MAX_ERROR_DESCRIPTION: Final = 256
# RFC 6749 Appendix A: code and state are VSCHAR (%x20-7E); error is NQSCHAR without space.
_VSCHAR: Final = re.compile(r"[\x20-\x7e]+", re.ASCII)
_ERROR: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+", re.ASCII)


class CallbackInvalid(InputError):
    """The callback's query is not one the IdP would send (the parameter is named)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Attempt:
    """One sign-in attempt, kept in the flow row; nothing of it but state/nonce/challenge leaves."""

    provider_arn: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    started_at: int

    @property
    def code_challenge(self) -> str:
        return challenge_for(self.code_verifier)


def challenge_for(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def new_attempt(provider_arn: str, *, now: float) -> Attempt:
    return Attempt(
        provider_arn=provider_arn,
        state=_b64(secrets.token_bytes(STATE_BYTES)),
        nonce=_b64(secrets.token_bytes(NONCE_BYTES)),
        code_verifier=_b64(secrets.token_bytes(VERIFIER_BYTES)),
        started_at=int(now),
    )


def authorization_url(
    endpoint: str,
    attempt: Attempt,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
) -> str:
    """The IdP's authorization endpoint with the request appended to its own query."""
    parts = urllib.parse.urlsplit(endpoint)
    kept = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ours = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": attempt.state,
        "nonce": attempt.nonce,
        "code_challenge": attempt.code_challenge,
        "code_challenge_method": "S256",
    }
    # A parameter of ours that the endpoint's own query also names: ours wins, once.
    query = [(k, v) for k, v in kept if k not in ours] + list(ours.items())
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), "")
    )


@dataclass(frozen=True)
class Callback:
    """What the IdP sent back: a code and state, or an error (and the state, if any)."""

    state: str | None
    code: str | None = field(default=None, repr=False)
    error: str | None = None
    error_description: str | None = None


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise CallbackInvalid(name, "is given more than once", hint="start the sign-in again")
    return values[0]


def _checked(value: str | None, name: str, limit: int, pattern: re.Pattern[str]) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= limit:
        raise CallbackInvalid(
            name, f"must be 1 to {limit} characters, got {len(value)}", hint="start again"
        )
    if not pattern.fullmatch(value):
        raise CallbackInvalid(name, "holds characters an IdP never sends", hint="start again")
    return value


def parse_callback(query: Mapping[str, Sequence[str]]) -> Callback:
    """The callback's parameters (each at most once, bounded, of RFC 6749's characters)."""
    state = _checked(_one(query, "state"), "state", MAX_STATE, _VSCHAR)
    error = _checked(_one(query, "error"), "error", MAX_ERROR, _ERROR)
    if error is not None:
        description = _checked(
            _one(query, "error_description"), "error_description", MAX_ERROR_DESCRIPTION, _ERROR
        )
        return Callback(state=state, error=error, error_description=description)
    code = _checked(_one(query, "code"), "code", MAX_CODE, _VSCHAR)
    if code is None:
        raise CallbackInvalid("code", "is missing", hint="start the sign-in again")
    if state is None:
        raise CallbackInvalid("state", "is missing", hint="start the sign-in again")
    return Callback(state=state, code=code)


def state_matches(attempt: Attempt, got: str | None) -> bool:
    """Whether the callback's state is the attempt's (constant time)."""
    if got is None:
        return False
    return hmac.compare_digest(attempt.state.encode(), got.encode("utf-8", "surrogatepass"))
