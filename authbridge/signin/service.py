"""The sign-in service: device and authorization codes, sessions and the tokens they give.

Flask-free; the pages (``authbridge.web.signin``) and the token endpoint
(:mod:`authbridge.web.oauth`) call it, the CLI and the admin API reach it
for ``iam revoke-sessions``. Every function takes the store and ``now``
(seconds since the epoch) and decides; secrets are made here and only their
digests (:func:`authbridge.iam.sessions.secret_digest`) go to the store.

Token endpoint outcomes, as RFC 8628 §3.5 and RFC 6749 §5.2 name them
(each a :class:`SigninGrantError`, an :class:`authbridge.sts.StsError`)::

    UnknownClient          client_id is not authbridge-cli        invalid_client (401)
    AuthorizationPending   the user has not decided yet            authorization_pending
    SlowDown               polled sooner than the interval         slow_down
    ExpiredToken           the device code expired                 expired_token
    AccessDenied           the user denied it                      access_denied
    SessionGrantRefused    unknown, used or mismatched code,       invalid_grant
                           refresh token unknown or reused,
                           PKCE verifier missing or wrong
    └── SessionEnded       the session is over (ended, idle,      invalid_grant
                           past its absolute end, user disabled)
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

from authbridge.errors import AuthbridgeError
from authbridge.iam import sessions
from authbridge.iam.sessions import (
    CLI_CLIENT_ID,
    AuthorizationCodeRecord,
    DeviceStatus,
    FederatedSubject,
    SessionLifetimes,
    SessionRecord,
)
from authbridge.keys import KeySet
from authbridge.settings import Settings
from authbridge.signin.authorize import AuthorizeRequest
from authbridge.store.base import Store
from authbridge.sts import GrantRefused, IssuerPolicy, StsError
from authbridge.tokens import MintedToken, Principal, mint

DEVICE_PATH: Final = "/device"  # the verification page (RFC 8628 §3.3), on the issuer
SESSION_ENDED: Final = "the sign-in session has ended; run authbridge login"
_CSRF_INFO: Final = b"authbridge csrf key v1"


# --------------------------------------------------------------------------- errors


class DeviceCodeError(AuthbridgeError):
    """A user code that cannot be approved or denied; ``reason`` says why.

    ``unknown`` (no such code, or the approving user is not enabled),
    ``expired``, ``decided`` (approved or denied already, by anyone).
    """

    code = "InvalidUserCode"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SigninGrantError(StsError):
    """A token request of the sign-in grants refused; ``oauth_error`` is its code."""

    code = "SigninGrantError"


class UnknownClient(SigninGrantError):
    code = "InvalidClient"
    oauth_error = "invalid_client"
    status = 401


class AuthorizationPending(SigninGrantError):
    code = "AuthorizationPending"
    oauth_error = "authorization_pending"


class SlowDown(SigninGrantError):
    code = "SlowDown"
    oauth_error = "slow_down"


class ExpiredToken(SigninGrantError):
    code = "ExpiredToken"
    oauth_error = "expired_token"


class AccessDenied(SigninGrantError):
    code = "AccessDenied"
    oauth_error = "access_denied"


class SessionGrantRefused(GrantRefused):
    """``invalid_grant`` for a code or refresh token."""

    code = "InvalidGrant"


class SessionEnded(SessionGrantRefused):
    code = "SessionEnded"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: the answer to a device authorization request."""

    device_code: str = field(repr=False)
    user_code: str  # shown: XXXX-XXXX
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int

    def to_wire(self) -> dict[str, str | int]:
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "expires_in": self.expires_in,
            "interval": self.interval,
        }


@dataclass(frozen=True)
class DeviceRequest:
    """A device authorization as the ``/device`` page shows it."""

    user_code: str  # shown: XXXX-XXXX
    client_id: str
    scope: str
    expires_at: int
    status: DeviceStatus


@dataclass(frozen=True)
class BrowserSession:
    """The browser session a cookie names: who is signed in, and the form CSRF key."""

    session_id: str
    user_id: str
    user_name: str
    account_id: str
    user_arn: str
    mfa: bool
    expires_at: int
    csrf_key: bytes = field(repr=False)  # HMAC key for this session's CSRF tokens
    # A sign-in through an upstream IdP: then user_id, user_name and user_arn are the
    # role session's principal id, session name and assumed-role ARN.
    federated: FederatedSubject | None = None


@dataclass(frozen=True)
class SessionTokens:
    """What a sign-in grant gives: an ``sts`` access token and the next refresh token."""

    access: MintedToken
    refresh_token: str = field(repr=False)
    refresh_expires_in: int
    session: SessionRecord

    def to_wire(self) -> dict[str, str | int]:
        return {
            "access_token": self.access.token,
            "token_type": "Bearer",
            "expires_in": self.access.expires_at - self.access.issued_at,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_expires_in,
        }


def session_lifetimes(settings: Settings) -> SessionLifetimes:
    """``sessionMaxSeconds`` and ``sessionIdleSeconds`` as the store records them."""
    return SessionLifetimes(settings.session_max_seconds, settings.session_idle_seconds)


def check_client(client_id: object) -> str:
    """The public client's id, or :class:`UnknownClient`."""
    if client_id != CLI_CLIENT_ID:
        raise UnknownClient(f"unknown client_id; the only client is {CLI_CLIENT_ID}")
    return CLI_CLIENT_ID


# --------------------------------------------------------------------------- device flow


def start_device_authorization(
    store: Store, policy: IssuerPolicy, *, client_id: str, scope: str = "", now: float
) -> DeviceAuthorization:
    """RFC 8628 §3.1/3.2: a new device code and user code for ``client_id``."""
    check_client(client_id)
    device_code = sessions.new_secret()
    for _ in range(8):  # a taken user code (1 in 2.6e10 per live code): draw another
        user_code = sessions.new_user_code()
        if store.create_device_authorization(
            device_hash=sessions.secret_digest("device_code", device_code),
            user_code=user_code,
            client_id=client_id,
            scope=scope,
            now=now,
            expires_in=sessions.DEVICE_CODE_SECONDS,
            interval=sessions.DEVICE_POLL_INTERVAL,
        ):
            break
    else:  # pragma: no cover - eight collisions in a row
        raise StsError("no free user code; try again")
    shown = sessions.format_user_code(user_code)
    base = policy.issuer.rstrip("/") + DEVICE_PATH
    return DeviceAuthorization(
        device_code=device_code,
        user_code=shown,
        verification_uri=base,
        verification_uri_complete=f"{base}?user_code={shown}",
        expires_in=sessions.DEVICE_CODE_SECONDS,
        interval=sessions.DEVICE_POLL_INTERVAL,
    )


def find_device_request(store: Store, user_code: str, now: float) -> DeviceRequest | None:
    """The device authorization a typed user code names; None if none, malformed or expired."""
    code = sessions.normalize_user_code(user_code)
    if code is None:
        return None
    found = store.device_request(code, now)
    if found is None:
        return None
    return DeviceRequest(
        user_code=sessions.format_user_code(found.user_code),
        client_id=found.client_id,
        scope=found.scope,
        expires_at=found.expires_at,
        status=found.status,
    )


def _decide(
    store: Store,
    user_code: str,
    *,
    approve: bool,
    user_id: str | None,
    mfa: bool,
    now: float,
    federated_id: str | None = None,
) -> None:
    code = sessions.normalize_user_code(user_code)
    outcome = (
        "unknown"
        if code is None
        else store.decide_device(
            code, approve=approve, user_id=user_id, mfa=mfa, now=now, federated_id=federated_id
        )
    )
    if outcome == "ok":
        return
    messages = {
        "unknown": "that code is not valid; check it and type it again",
        "expired": "that code has expired; start the sign-in on the device again",
        "decided": "that code has already been used",
    }
    raise DeviceCodeError(outcome, messages[outcome])


def approve_device(
    store: Store,
    user_code: str,
    *,
    user_id: str | None,
    mfa: bool,
    now: float,
    federated_id: str | None = None,
) -> None:
    """Approve a pending device authorization for ``user_id`` or a federated subject (once)."""
    _decide(
        store, user_code, approve=True, user_id=user_id, mfa=mfa, now=now, federated_id=federated_id
    )


def deny_device(store: Store, user_code: str, now: float) -> None:
    """Deny a pending device authorization (its next poll: access_denied)."""
    _decide(store, user_code, approve=False, user_id=None, mfa=False, now=now)


def redeem_device_code(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    device_code: str,
    client_id: str,
    lifetimes: SessionLifetimes,
    now: float,
) -> SessionTokens:
    """RFC 8628 §3.4/3.5: one poll; the session's tokens once the user approved."""
    check_client(client_id)
    if not device_code:
        raise SessionGrantRefused("device_code is required")
    refresh = sessions.new_secret()
    result = store.poll_device(
        sessions.secret_digest("device_code", device_code),
        client_id=client_id,
        now=now,
        session_id=sessions.new_session_id(),
        refresh_hash=sessions.secret_digest("refresh_token", refresh),
        lifetimes=lifetimes,
    )
    if result.outcome == "pending":
        raise AuthorizationPending("the user has not approved the request yet; keep polling")
    if result.outcome == "slow_down":
        raise SlowDown(f"polling too fast; poll every {result.interval} seconds")
    if result.outcome == "expired":
        raise ExpiredToken("the device code has expired; start again")
    if result.outcome == "denied":
        raise AccessDenied("the user denied the request")
    if result.outcome != "issued" or result.session is None:
        raise SessionGrantRefused("the device code is not valid (unknown or already used)")
    return session_tokens(store, keys, policy, result.session, refresh, now=now)


# --------------------------------------------------------------------------- authorization code


def issue_authorization_code(
    store: Store,
    request: AuthorizeRequest,
    *,
    user_id: str | None,
    mfa: bool,
    now: float,
    federated_id: str | None = None,
) -> str:
    """A code for a validated request the user consented to (60 s, single use)."""
    code = sessions.new_secret()
    store.create_authorization_code(
        sessions.secret_digest("authorization_code", code),
        AuthorizationCodeRecord(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            scope=request.scope,
            user_id=user_id,
            mfa=mfa,
            expires_at=int(now) + sessions.AUTHORIZATION_CODE_SECONDS,
            federated_id=federated_id,
        ),
        now,
    )
    return code


def redeem_authorization_code(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    code: str,
    client_id: str,
    redirect_uri: str,
    code_verifier: str,
    lifetimes: SessionLifetimes,
    now: float,
) -> SessionTokens:
    """RFC 6749 §4.1.3 with RFC 7636 §4.6: the code, once, for the session's tokens.

    ``redirect_uri`` must equal the request's and ``code_verifier`` match its
    S256 challenge; a code presented a second time is refused and ends the
    session its first redemption made (RFC 6749 §4.1.2).
    """
    check_client(client_id)
    if not code:
        raise SessionGrantRefused("code is required")
    problem = sessions.verifier_problem(code_verifier)
    if problem is not None:
        raise SessionGrantRefused(problem)

    def accept(record: AuthorizationCodeRecord) -> bool:
        same_client = record.client_id == client_id
        same_uri = hmac.compare_digest(record.redirect_uri.encode(), redirect_uri.encode())
        return (
            same_client and same_uri and sessions.pkce_matches(record.code_challenge, code_verifier)
        )

    refresh = sessions.new_secret()
    result = store.redeem_authorization_code(
        sessions.secret_digest("authorization_code", code),
        accept=accept,
        now=now,
        session_id=sessions.new_session_id(),
        refresh_hash=sessions.secret_digest("refresh_token", refresh),
        lifetimes=lifetimes,
    )
    if result.outcome == "reused":
        raise SessionGrantRefused(
            "the authorization code was already used; the session it gave is ended"
        )
    if result.outcome != "issued" or result.session is None:
        raise SessionGrantRefused(
            "the authorization code is not valid: unknown, expired, or the redirect_uri or"
            " code_verifier does not match the authorization request"
        )
    return session_tokens(store, keys, policy, result.session, refresh, now=now)


# --------------------------------------------------------------------------- refresh, revoke


def refresh_session(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    refresh_token: str,
    client_id: str,
    now: float,
) -> SessionTokens:
    """RFC 6749 §6: the next refresh token and a new access token; reuse ends the family."""
    check_client(client_id)
    if not refresh_token:
        raise SessionGrantRefused("refresh_token is required")
    new = sessions.new_secret()
    result = store.rotate_refresh_token(
        sessions.secret_digest("refresh_token", refresh_token),
        client_id=client_id,
        new_hash=sessions.secret_digest("refresh_token", new),
        now=now,
    )
    if result.outcome == "reused":
        raise SessionGrantRefused(
            "the refresh token was already used; the sign-in session is ended (run authbridge"
            " login)"
        )
    if result.outcome == "ended":
        raise SessionEnded(SESSION_ENDED)
    if result.outcome != "issued" or result.session is None:
        raise SessionGrantRefused("the refresh token is not valid")
    return session_tokens(store, keys, policy, result.session, new, now=now)


def revoke_refresh_token(store: Store, refresh_token: str, now: float) -> str | None:
    """RFC 7009: end the session of a refresh token (current or rotated); its id, or None."""
    if not refresh_token or len(refresh_token) > 512:
        return None
    return store.end_session_by_refresh_token(
        sessions.secret_digest("refresh_token", refresh_token), "logout", now
    )


def session_tokens(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    session: SessionRecord,
    refresh_token: str,
    *,
    now: float,
) -> SessionTokens:
    """The ``sts`` access token of a session: the user's, for no longer than the session.

    Its lifetime is the default token lifetime, cut to what is left of the
    session; it carries ``sid``, ``amr`` and ``mfa`` (and, as every user
    token, ``source_identity`` = the user). A federated subject's session gives
    its role session instead, re-checked (:func:`authbridge.signin.federated.session_token`).
    """
    if session.user_id is None:
        from authbridge.signin import federated

        return SessionTokens(
            access=federated.session_token(store, keys, policy, session, now=now),
            refresh_token=refresh_token,
            refresh_expires_in=max(0, session.ends_at(now) - int(now)),
            session=session,
        )
    user = store.get_user_by_id(session.user_id)
    left = session.expires_at - int(now)
    lifetime = min(policy.default_lifetime, keys.max_token_lifetime, left)
    if lifetime <= 0 or not user.enabled:
        raise SessionEnded(SESSION_ENDED)
    principal = Principal(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=user.account_id,
        principal_id=user.user_id,
    )
    access = mint(
        principal,
        keys=keys,
        issuer=policy.issuer,
        audience=policy.sts_audience,
        lifetime=lifetime,
        now=now,
        extra_claims=session_claims(session.session_id, session.mfa),
    )
    return SessionTokens(
        access=access,
        refresh_token=refresh_token,
        refresh_expires_in=max(0, session.ends_at(now) - int(now)),
        session=session,
    )


def session_claims(session_id: str, mfa: bool) -> dict[str, object]:
    """The claims every token derived from a sign-in session carries (RFC 8176 ``amr``)."""
    return {"sid": session_id, "amr": sessions.amr(mfa), "mfa": mfa}


# --------------------------------------------------------------------------- browser sessions


def start_browser_session(
    store: Store,
    *,
    user_id: str | None,
    mfa: bool,
    address: str | None,
    now: float,
    lifetimes: SessionLifetimes | None = None,
    federated: FederatedSubject | None = None,
) -> tuple[str, str]:
    """A new browser session after a sign-in: ``(session_id, secret)``; the secret is the cookie.

    Always a new id and secret (no session fixation: a cookie set before the
    sign-in is never promoted). ``lifetimes``: the settings' (default 12 h, 2 h idle).
    """
    secret = sessions.new_secret()
    session_id = sessions.new_session_id()
    store.create_browser_session(
        session_id=session_id,
        secret_hash=sessions.secret_digest("browser_session", secret),
        user_id=user_id,
        client_id=CLI_CLIENT_ID,
        mfa=mfa,
        address=address,
        now=now,
        lifetimes=lifetimes or SessionLifetimes(),
        federated=federated,
    )
    return session_id, secret


def browser_session(store: Store, secret: str, now: float) -> BrowserSession | None:
    """The live session a cookie value names (its last use recorded); None if over or unknown."""
    if not isinstance(secret, str) or not secret or len(secret) > 128:
        return None
    found = store.browser_session(sessions.secret_digest("browser_session", secret), now)
    if found is None:
        return None
    csrf_key = hmac.new(secret.encode(), _CSRF_INFO, hashlib.sha256).digest()
    return BrowserSession(
        session_id=found.session_id,
        user_id=found.user_id,
        user_name=found.user_name,
        account_id=found.account_id,
        user_arn=found.user_arn,
        mfa=found.mfa,
        expires_at=found.expires_at,
        csrf_key=csrf_key,
        federated=found.federated,
    )


def end_session(store: Store, session_id: str, now: float) -> bool:
    """Sign out: end the session (browser or CLI); False if it was not open."""
    return store.end_signin_session(session_id, "logout", now)


def end_user_sessions(store: Store, account_id: str, user_name: str, now: float) -> int:
    """``iam revoke-sessions``: end every session of the user; how many were open."""
    return store.end_user_signin_sessions(account_id, user_name, "revoked", now)
