"""Sign-in session values and rules: codes, secrets, PKCE, lifetimes (pure, no I/O).

A *sign-in session* is what a person's sign-in (the ``/login`` page, the
device flow, the authorization code flow) leaves behind: a row in the store
(``signin_sessions``) naming the user, whether MFA was used (RFC 8176
``amr``), when it started, when it was last used and when it ends. Two kinds:

* ``cli``: made by the token endpoint when a device code or an authorization
  code is redeemed; held as a refresh token (rotated on every use, OAuth 2.0
  Security BCP §4.14) by ``authbridge login``;
* ``browser``: made by the ``/login`` page; held as a cookie.

Every token minted from a session carries its id as ``sid``; the session
ending (logout, ``iam revoke-sessions``, the user disabled or deleted, a
refresh token or an authorization code presented twice) refuses all of them
within the revocation bound (:func:`authbridge.sts.verify_token_facts`).

Secrets (device codes, authorization codes, refresh tokens, browser cookies)
are 32 random bytes, base64url; the store keeps only their SHA-256
(:func:`secret_digest`, one domain per kind, so a digest of one kind never
matches a secret of another). They carry 256 bits of entropy: a keyed or
slow hash would add nothing against guessing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from authbridge import arn as arns

CLI_CLIENT_ID: Final = "authbridge-cli"
SECRET_BYTES: Final = 32
# RFC 8628 §6.1: a user code from an alphabet without vowels (no words) and without
# look-alikes; 20 ** 8 ≈ 2.6e10 codes, 34.5 bits, for 600 s, behind rate limits (§5.1).
USER_CODE_ALPHABET: Final = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH: Final = 8
MAX_USER_CODE_INPUT: Final = 64  # characters a person may type, dashes and spaces included
DEVICE_CODE_SECONDS: Final = 600  # RFC 8628 §3.2 expires_in
DEVICE_POLL_INTERVAL: Final = 5  # RFC 8628 §3.2 interval, seconds
SLOW_DOWN_STEP: Final = 5  # RFC 8628 §3.5: the interval grows by this on slow_down
AUTHORIZATION_CODE_SECONDS: Final = 60  # RFC 6749 §4.1.2: "a maximum lifetime of 10 minutes"
DEFAULT_SESSION_MAX_SECONDS: Final = 43200  # sessionMaxSeconds
DEFAULT_SESSION_IDLE_SECONDS: Final = 7200  # sessionIdleSeconds
# When an expired code is forgotten: until then a late poll still gets expired_token.
FORGET_EXPIRED_SECONDS: Final = 3600
# Browser sessions record their last use at most this often (one write per minute).
LAST_USE_GRANULARITY: Final = 60

SessionKind = Literal["cli", "browser"]
SecretKind = Literal["device_code", "authorization_code", "refresh_token", "browser_session"]
DeviceStatus = Literal["pending", "approved", "denied", "redeemed"]
EndReason = Literal[
    "logout",
    "revoked",
    "refresh_token_reused",
    "code_reused",
    "user_disabled",
    "user_deleted",
    "trust_ended",
]
MAX_FEDERATED_CLAIMS: Final = 16384  # characters of a federated subject's claims, as JSON

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url(SHA-256), no padding (§4.2)
_USER_CODE_NOISE = re.compile(r"[\s-]")


@dataclass(frozen=True)
class SessionLifetimes:
    """How long a sign-in session lasts: ``max_seconds`` in all, ``idle_seconds`` unused."""

    max_seconds: int = DEFAULT_SESSION_MAX_SECONDS
    idle_seconds: int = DEFAULT_SESSION_IDLE_SECONDS


def new_secret() -> str:
    """A new device code, authorization code, refresh token or cookie value."""
    return secrets.token_urlsafe(SECRET_BYTES)


def new_session_id() -> str:
    """A session's id (the ``sid`` claim): unguessable, though not a credential."""
    return secrets.token_urlsafe(18)


def secret_digest(kind: SecretKind, secret: str) -> str:
    """What the store keeps of a secret: SHA-256 over a per-kind domain and the secret."""
    data = f"authbridge {kind}\0{secret}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def new_user_code() -> str:
    """A user code, normalised (8 letters, no dash); :func:`format_user_code` shows it."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def format_user_code(code: str) -> str:
    """``BCDFGHJK`` as a person reads it: ``BCDF-GHJK``."""
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_user_code(text: object) -> str | None:
    """A typed user code as stored (8 letters of the alphabet), or None if it is not one.

    Case, dashes and white space are ignored (RFC 8628 §6.1); anything else,
    or more than :data:`MAX_USER_CODE_INPUT` characters, is not a user code.
    """
    if not isinstance(text, str) or len(text) > MAX_USER_CODE_INPUT:
        return None
    code = _USER_CODE_NOISE.sub("", text).upper()
    if len(code) != USER_CODE_LENGTH or not all(c in USER_CODE_ALPHABET for c in code):
        return None
    return code


def verifier_problem(verifier: object) -> str | None:
    """What keeps ``verifier`` from being an RFC 7636 §4.1 code verifier, or None."""
    if not isinstance(verifier, str) or not verifier:
        return "code_verifier is required (PKCE, RFC 7636 section 4.5)"
    if not _VERIFIER.fullmatch(verifier):
        return "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"
    return None


def challenge_problem(challenge: object) -> str | None:
    """What keeps ``challenge`` from being an S256 code challenge, or None."""
    if not isinstance(challenge, str) or not challenge:
        return "code_challenge is required (PKCE with S256, RFC 7636 section 4.3)"
    if not _CHALLENGE.fullmatch(challenge):
        return "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
    return None


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(challenge: str, verifier: str) -> bool:
    """Whether ``verifier`` is the one ``challenge`` was made from (constant time)."""
    if verifier_problem(verifier) is not None:
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def amr(mfa: bool) -> list[str]:
    """RFC 8176 authentication methods: a password, and a one-time code when ``mfa``."""
    return ["pwd", "mfa"] if mfa else ["pwd"]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class FederatedSubject:
    """Who a sign-in through an upstream IdP is: a role session of a provider's identity.

    The upstream ID token's ``sub`` at ``provider_arn``, the role picked (its
    unique id too: a role made again under the same name is another role), the
    role session name, and the ID token's claims, which the role's trust is
    evaluated against again at every grant of the session.
    """

    subject_id: str
    account_id: str
    provider_arn: str
    sub: str
    role_arn: str
    role_id: str
    session_name: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def source_identity(self) -> str:
        """``<provider ARN>:<sub>``, as every web identity session's."""
        return f"{self.provider_arn}:{self.sub}"

    @property
    def principal_id(self) -> str:
        return f"{self.role_id}:{self.session_name}"

    @property
    def assumed_role_arn(self) -> str:
        """``arn:…:sts::<acct>:assumed-role/<role name>/<session name>``."""
        role = arns.parse_principal(self.role_arn, partitions=(self.role_arn.split(":")[1],))
        return arns.assumed_role_arn(role.partition, role.account_id, role.name, self.session_name)


@dataclass(frozen=True)
class SessionRecord:
    """A live sign-in session as the store hands it out: a user's, or a federated subject's."""

    session_id: str
    user_id: str | None
    kind: SessionKind
    client_id: str
    mfa: bool
    created_at: int
    last_used_at: int
    expires_at: int  # the absolute end
    idle_seconds: int
    federated_id: str | None = None  # FederatedSubject.subject_id when user_id is None

    def ends_at(self, now: float) -> int:
        """When it ends if not used again: the absolute end or the idle timeout."""
        return min(self.expires_at, self.last_used_at + self.idle_seconds)

    def live(self, now: float) -> bool:
        return now < self.ends_at(now)


@dataclass(frozen=True)
class DeviceRecord:
    """A device authorization (RFC 8628) as the verification page sees it."""

    user_code: str  # normalised
    client_id: str
    scope: str
    expires_at: int
    status: DeviceStatus


@dataclass(frozen=True)
class BrowserRecord:
    """A live browser session with its user (enabled), as the pages need it."""

    session_id: str
    user_id: str
    user_name: str
    account_id: str
    user_arn: str
    mfa: bool
    expires_at: int
    federated: FederatedSubject | None = None  # then user_* name the role session


@dataclass(frozen=True)
class AuthorizationCodeRecord:
    """An authorization code's request, as the token endpoint checks it."""

    client_id: str
    redirect_uri: str
    code_challenge: str = field(repr=False)
    scope: str
    user_id: str | None
    mfa: bool
    expires_at: int
    federated_id: str | None = None  # when user_id is None


PollOutcome = Literal["pending", "slow_down", "expired", "denied", "invalid", "issued"]
RedeemOutcome = Literal["invalid", "reused", "issued"]
RefreshOutcome = Literal["invalid", "reused", "ended", "issued"]
DecideOutcome = Literal["ok", "unknown", "expired", "decided"]


@dataclass(frozen=True)
class GrantResult:
    """What the store answered a redemption: an outcome and, when issued, the session."""

    outcome: str
    session: SessionRecord | None = None
    interval: int | None = None  # device polls: the interval now in force
