"""The public client ``authbridge-cli`` signing in: device code, authorization code, refresh.

Every request goes to the endpoint the profile names, over
:class:`~authbridge.client.issuer.Issuer`'s verified TLS (no redirects
followed, answers capped at 64 KiB), form-encoded, with
``client_id=authbridge-cli`` and no client secret (a public client, RFC 6749
§2.1; ``token_endpoint_auth_method`` ``none``):

* device authorization (RFC 8628 §3.1-3.2): ``POST /oauth2/device_authorization``
  answers ``device_code``, ``user_code``, ``verification_uri``
  [``verification_uri_complete``], ``expires_in`` [``interval``, default 5];
  the token endpoint is then polled with ``grant_type=…:device_code`` (§3.4)
  no faster than ``interval``, which each ``slow_down`` raises by 5 s (§3.5),
  until a token, ``expired_token`` or ``access_denied``. A request that fails
  in transit doubles the interval (§3.5's back-off), three in a row give up;
* authorization code (RFC 6749 §4.1) with PKCE S256 (RFC 7636 §4.1-4.2): the
  code from the loopback redirect (:mod:`authbridge.client.loopback`) is
  redeemed with its ``code_verifier`` and the same ``redirect_uri``;
* refresh (RFC 6749 §6): the server rotates the refresh token on every use;
  the new one replaces the old (a missing one keeps the old, as §6 permits);
* revocation (RFC 7009 §2.1): ``token`` + ``token_type_hint=refresh_token``
  ends the session; 200 whatever the token was.

The three grants answer ``{access_token, token_type: Bearer, expires_in,
refresh_token, refresh_token_expires_in}`` (:func:`parse_signin_tokens`): the
access token is for the issuer's ``sts`` audience, the subject token of the
RFC 8693 exchanges ``authbridge token`` makes. Everything the server says that
is shown on the terminal (user code, URLs, error descriptions) must be
printable text, so an answer cannot write escape sequences to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from authbridge.client.errors import IssuerError, IssuerRefused, SessionEnded, SignInError
from authbridge.client.fastpath import is_token
from authbridge.client.issuer import (
    DISCOVERY_PATH,
    GRANT_AUTHORIZATION_CODE,
    GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN,
    TOKEN_PATH,
    IssuedToken,
    Issuer,
    parse_discovery,
    parse_success,
)
from authbridge.client.session import Session, SessionFiles

__all__ = [
    "AUTHORIZE_PATH",
    "CLIENT_ID",
    "DEVICE_AUTHORIZATION_PATH",
    "REVOKE_PATH",
    "DeviceAuthorization",
    "Discovered",
    "SignInClient",
    "SignInTokens",
    "authorize_url",
    "code_challenge",
    "current_session",
    "new_code_verifier",
    "parse_device_authorization",
    "parse_discovered",
    "parse_signin_tokens",
    "run_device_flow",
    "token_identity",
]

CLIENT_ID = "authbridge-cli"
DEVICE_AUTHORIZATION_PATH = "/oauth2/device_authorization"
REVOKE_PATH = "/oauth2/revoke"
AUTHORIZE_PATH = "/oauth2/authorize"
_DEFAULT_INTERVAL = 5  # RFC 8628 §3.2
_SLOW_DOWN = 5  # seconds added by each slow_down (RFC 8628 §3.5)
_MAX_INTERVAL = 300
_MAX_EXPIRES_IN = 24 * 3600
_MAX_URL = 2048
_MAX_USER_CODE = 64
_MAX_TRANSIT_FAILURES = 3
_CHECK = "check that --endpoint is the URL of an authbridge server that supports sign-in"


def _shown(value: object, limit: int) -> bool:
    """Printable text of at most ``limit`` characters (shown on a terminal, so no escapes)."""
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _https_url(value: object) -> bool:
    if not _shown(value, _MAX_URL) or not str(value).isascii():
        return False
    try:
        parts = urlsplit(str(value))
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not parts.username


def _positive_int(value: object, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 < value <= limit or value != int(value):
        return None
    return int(value)


def _json_object(body: bytes, endpoint: str, what: str) -> dict[str, object]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise IssuerError(
            f"the issuer at {endpoint} answered {what} with non-JSON", hint=_CHECK
        ) from e
    if not isinstance(doc, dict):
        raise IssuerError(
            f"the issuer at {endpoint} answered {what} with a non-object", hint=_CHECK
        )
    return doc


# -- PKCE (RFC 7636) ----------------------------------------------------------------------


def new_code_verifier() -> str:
    """A ``code_verifier``: 64 random bytes, base64url: 86 of the §4.1 unreserved characters."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding (RFC 7636 §4.2, S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    authorization_endpoint: str, *, redirect_uri: str, state: str, challenge: str
) -> str:
    """The URL the browser opens (RFC 6749 §4.1.1 + RFC 7636 §4.3)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{authorization_endpoint}?{query}"


# -- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovered:
    """What sign-in needs from the discovery document."""

    issuer: str
    authorization_endpoint: str


def parse_discovered(body: bytes, endpoint: str) -> Discovered:
    """The issuer and the authorization endpoint (https, else the issuer's own path)."""
    issuer = parse_discovery(body, endpoint)
    doc = _json_object(body, endpoint, "discovery")
    authorize = doc.get("authorization_endpoint")
    if not _https_url(authorize):
        if not _https_url(issuer):
            raise IssuerError(
                f"the issuer at {endpoint} has no https authorization endpoint",
                hint="use `authbridge login --device-code`, or ask the administrator to"
                " serve the issuer over https",
            )
        authorize = issuer.rstrip("/") + AUTHORIZE_PATH
    return Discovered(issuer=issuer, authorization_endpoint=str(authorize))


@dataclass(frozen=True)
class SignInTokens:
    """A grant's answer: the ``sts`` access token and the (rotated) refresh token."""

    access: IssuedToken
    refresh_token: str = field(repr=False)
    refresh_expires_at: int | None  # epoch seconds; None when the server did not say


def parse_signin_tokens(
    body: bytes, sent_at: float, endpoint: str, *, previous_refresh: str | None = None
) -> SignInTokens:
    """The answer of a sign-in grant (RFC 6749 §5.1 plus ``refresh_token``)."""
    access = parse_success(body, sent_at, endpoint)
    doc = _json_object(body, endpoint, "the token request")
    refresh = doc.get("refresh_token", previous_refresh)
    if not is_token(refresh):
        raise IssuerError(
            f"the issuer at {endpoint} answered the sign-in without a usable refresh_token",
            hint=_CHECK,
        )
    refresh_expires_at = None
    if "refresh_token_expires_in" in doc:
        seconds = _positive_int(doc["refresh_token_expires_in"], 10 * 365 * 24 * 3600)
        if seconds is None:
            raise IssuerError(
                f"the issuer at {endpoint} answered refresh_token_expires_in"
                f" {str(doc['refresh_token_expires_in'])[:40]!r}, not a number of seconds",
                hint=_CHECK,
            )
        refresh_expires_at = int(sent_at + seconds)
    return SignInTokens(access, refresh, refresh_expires_at)


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: what to show the user, and what to poll with."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float  # on this machine's clock
    interval: int


def parse_device_authorization(body: bytes, sent_at: float, endpoint: str) -> DeviceAuthorization:
    doc = _json_object(body, endpoint, "the device authorization request")

    def bad(name: str) -> IssuerError:
        return IssuerError(
            f"the issuer at {endpoint} answered the device authorization with an unusable {name}",
            hint=_CHECK,
        )

    device_code = doc.get("device_code")
    if not is_token(device_code) or len(device_code) > 1024:
        raise bad("device_code")
    user_code = doc.get("user_code")
    if not _shown(user_code, _MAX_USER_CODE):
        raise bad("user_code")
    uri = doc.get("verification_uri")
    if not _https_url(uri):
        raise bad("verification_uri")
    complete = doc.get("verification_uri_complete")
    if complete is not None and not _https_url(complete):
        raise bad("verification_uri_complete")
    expires_in = _positive_int(doc.get("expires_in"), _MAX_EXPIRES_IN)
    if expires_in is None:
        raise bad("expires_in")
    interval = _DEFAULT_INTERVAL
    if doc.get("interval") is not None:
        given = _positive_int(doc["interval"], _MAX_INTERVAL)
        if given is None:
            raise bad("interval")
        interval = given
    return DeviceAuthorization(
        device_code=device_code,
        user_code=str(user_code),
        verification_uri=str(uri),
        verification_uri_complete=None if complete is None else str(complete),
        expires_at=sent_at + expires_in,
        interval=interval,
    )


def token_identity(token: str) -> tuple[str | None, str | None]:
    """``(arn, source_identity)`` of a JWT, unverified (shown to the user, and the default
    role session name; the token came over verified TLS and the server checks it anyway)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    segment = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    arn, source = claims.get("arn"), claims.get("source_identity")
    return (
        arn if _shown(arn, 2048) else None,
        source if _shown(source, 128) else None,
    )


# -- requests -----------------------------------------------------------------------------


class SignInClient:
    """The sign-in requests of the public client, over one :class:`Issuer`."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.endpoint = issuer.endpoint

    def discover(self) -> Discovered:
        return parse_discovered(self.issuer.fetch(DISCOVERY_PATH), self.endpoint)

    def device_authorization(self) -> DeviceAuthorization:
        body, sent_at = self.issuer.post_form(
            DEVICE_AUTHORIZATION_PATH, {"client_id": CLIENT_ID}, hint=GRANT_DEVICE_CODE
        )
        return parse_device_authorization(body, sent_at, self.endpoint)

    def _grant(self, form: dict[str, str], previous_refresh: str | None = None) -> SignInTokens:
        body, sent_at = self.issuer.post_form(TOKEN_PATH, {**form, "client_id": CLIENT_ID})
        return parse_signin_tokens(body, sent_at, self.endpoint, previous_refresh=previous_refresh)

    def poll_device(self, device_code: str) -> SignInTokens:
        return self._grant({"grant_type": GRANT_DEVICE_CODE, "device_code": device_code})

    def redeem_code(self, code: str, *, verifier: str, redirect_uri: str) -> SignInTokens:
        return self._grant(
            {
                "grant_type": GRANT_AUTHORIZATION_CODE,
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )

    def refresh(self, refresh_token: str) -> SignInTokens:
        return self._grant(
            {"grant_type": GRANT_REFRESH_TOKEN, "refresh_token": refresh_token},
            previous_refresh=refresh_token,
        )

    def revoke(self, refresh_token: str) -> None:
        """RFC 7009: the server ends the session; it answers 200 for any token."""
        self.issuer.post_form(
            REVOKE_PATH,
            {"token": refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID},
            hint=GRANT_REFRESH_TOKEN,
        )


def run_device_flow(
    client: SignInClient,
    say: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> SignInTokens:
    """RFC 8628 from the start: ask for a code, tell the user (``say``), poll until decided."""
    grant = client.device_authorization()
    minutes = max(1, round((grant.expires_at - clock()) / 60))
    say(f"To sign in, open {grant.verification_uri} and enter the code {grant.user_code}")
    if grant.verification_uri_complete is not None:
        say(f"  (or open {grant.verification_uri_complete})")
    say(f"The code expires in {minutes} minute{'s' if minutes != 1 else ''}. Waiting…")
    interval = grant.interval
    failures = 0
    while True:
        sleep(interval)
        if clock() >= grant.expires_at:
            raise _expired(grant)
        try:
            return client.poll_device(grant.device_code)
        except IssuerRefused as e:
            failures = 0
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                interval = min(interval + _SLOW_DOWN, _MAX_INTERVAL)
                continue
            if e.error == "expired_token":
                raise _expired(grant) from None
            if e.error == "access_denied":
                raise SignInError(
                    f"the sign-in was denied at {grant.verification_uri}",
                    hint="run `authbridge login` again to retry, or ask the authbridge"
                    " administrator for access",
                ) from None
            raise
        except IssuerError:
            failures += 1
            if failures >= _MAX_TRANSIT_FAILURES:
                raise
            interval = min(interval * 2, _MAX_INTERVAL)


def _expired(grant: DeviceAuthorization) -> SignInError:
    return SignInError(
        f"the code {grant.user_code} expired before it was approved",
        hint="run `authbridge login` again for a new code",
    )


# -- the session's sts token, refreshed under the lock ---------------------------------


def current_session(
    files: SessionFiles,
    client: SignInClient,
    profile: str,
    *,
    refused: str | None = None,
    now: Callable[[], float] = time.time,
) -> Session:
    """The profile's session with a usable ``sts`` access token, refreshed if need be.

    ``refused``: an access token the server just refused (an exchange answered
    ``invalid_grant``): refresh even though it looks usable. The refresh happens
    under :meth:`SessionFiles.locked`, after reading the session again: another
    process may have refreshed meanwhile (then its tokens are used, and the
    rotated refresh token is never presented twice). :class:`SessionEnded` when
    there is no session or the server refuses the refresh (it ended); the
    session's files are then deleted.
    """
    session = files.load()
    if session is None:
        raise SessionEnded(profile, f"profile {profile} is not signed in")
    if refused is None and session.access_usable(now()):
        return session
    with files.locked():
        session = files.load()
        if session is None:
            raise SessionEnded(profile, f"profile {profile} is not signed in")
        stale = refused is not None and session.access_token == refused
        if not stale and session.access_usable(now()):
            return session  # refreshed by another process while we waited
        if session.refresh_expires_at is not None and now() >= session.refresh_expires_at:
            # The server said when it stops taking this refresh token: no need to ask.
            files.delete()
            raise SessionEnded(profile, f"the sign-in session of profile {profile} has ended")
        try:
            tokens = client.refresh(session.refresh_token)
        except IssuerRefused as e:
            if e.error != "invalid_grant":
                raise
            files.delete()
            why = f" ({e.description})" if e.description else ""
            raise SessionEnded(
                profile, f"the sign-in session of profile {profile} has ended{why}"
            ) from None
        session = session.refreshed(
            access_token=tokens.access.token,
            access_expires_at=tokens.access.expires_at,
            refresh_token=tokens.refresh_token,
            refresh_expires_at=tokens.refresh_expires_at,
        )
        files.save(session)
        return session
