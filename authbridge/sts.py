"""Issuing tokens: GetSessionToken and AssumeRole over the store and the key set.

The service layer between the HTTP surface (``authbridge.web``) and the pure
core (``authbridge.tokens``): it reads the IAM store, decides, and mints. No
Flask here; the web layer only translates requests and these exceptions.

* :func:`get_session_token` - an access key id/secret for a token of its user
  (the OAuth ``client_credentials`` grant), for one cluster or for the ``sts``
  audience.
* :func:`assume_role` - a role-session token for a user, when the role's trust
  names the user, one of its groups or its account (the RFC 8693 token
  exchange); the caller is the owner of the access key it authenticated with,
  or the user of an ``sts`` token.
* :func:`exchange_own_token` - the token exchange without ``role_arn``: an
  ``sts`` token's user gets its own token for a cluster or the admin audience;
* :func:`verify_token` - every check :func:`authbridge.tokens.verify` makes,
  with revocation and principal status read from the store;
  :func:`verify_token_facts` also returns what that read found (the user and
  its groups), so a review asks the store once.
* :func:`revoke_token` - record a token's ``jti`` as revoked until it expires.

The mint functions take an optional ``kube_claims`` hook (``embedKubernetesClaims``):
``kube_claims(principal, audience)`` gives the claims naming the Kubernetes user
the mapping makes of the principal for that cluster (``k8s_username``,
``k8s_groups``, ``k8s_uid``: what a kube-apiserver in JWT mode reads), or
``None`` when the mapping makes none. Then:

* AssumeRole is refused with :class:`PrincipalNotMapped`: a role session is
  only good for Kubernetes, and one the kube-apiserver could not map is of no
  use, so saying so at once is clearer than a 401 later;
* GetSessionToken for a cluster mints the token without the ``k8s_*``
  claims: users that only assume roles are typically not mapped themselves
  (as with EKS), and refusing their user token would change nothing. The
  kube-apiserver refuses such a token, as the webhook would, with the
  configuration's message saying why. An ``sts`` token never has them.

The web layer builds the hook from the mapping and the store; this module
stays Flask-free and mapping-free.

Audiences (DESIGN.md, "Audiences: what a token is for"): a token is for one
of the served clusters, or for the ``sts`` audience, :func:`sts_audience` =
the issuer URL (without a trailing ``/``) + ``/sts``; the admin audience
(:func:`admin_audience`, ``/admin``) is the admin API's (:mod:`authbridge.web.api`):
GetSessionToken and AssumeRole mint for it as for a cluster, never with
``k8s_*`` claims, and no cluster or token exchange ever accepts it. Cluster
ids cannot contain ``:`` or ``/`` (settings), so no cluster id is ever one of
these. The rule:

* a cluster token (``aud`` names a cluster) is accepted by the webhook and
  ``/verify`` for that cluster, and is never a ``subject_token``: AssumeRole
  refuses it with ``invalid_grant`` "a cluster token is not an STS
  credential", whatever ``audience`` it asks for, its own cluster included.
  Whoever sees a cluster's bearer tokens (the kube-apiserver, its logs, a
  proxy) can use them against that cluster only, never to mint for another;
* an ``sts`` token (``client_credentials`` with ``audience=<sts audience>``)
  is only ever sent to the token endpoint and is accepted only as a
  ``subject_token``; its ``aud`` must be exactly the ``sts`` audience;
* no token may carry a service audience (``sts``, admin) together with any
  other audience: such a token is refused everywhere (``wrong_audience``);
  the token endpoint never mints one (one ``audience`` parameter, once);
* AssumeRole's caller is either the owner of the access key it authenticated
  with (client authentication, as AWS STS AssumeRole is signed with the
  caller's key; no ``subject_token`` needed), or the user of an ``sts``
  ``subject_token``; with both, they must be the same user.

Source identity: every token records where it started (``source_identity``,
and for role sessions ``source_jti`` and ``source_access_key_id``;
:mod:`authbridge.tokens`). A user token's source is the user itself. A role
session's source is the user behind the exchange, ``source_jti`` the ``sts``
token it was exchanged from (none when the caller authenticated with its
key only), ``source_access_key_id`` the key behind it (the client's key, or
the ``sts`` token's ``access_key_id``). :func:`verify_token_facts` refuses a
token whose source user is disabled or deleted, whose source key is inactive
or deleted, or whose source token is revoked, in the same store read as
everything else (``Store.review_facts``), so within the same bound.

The credential (access key, or ``subject_token``) is checked first, so a caller
who cannot authenticate learns nothing about clusters or roles. After that the
checks run in the order the exceptions below are listed per function.

Sign-in sessions (:mod:`authbridge.signin`): a token minted from one carries
``sid``, ``amr`` and ``mfa``; every token exchanged from it (the user's own
or a role session) carries the same three and lives no longer than the
session. :func:`verify_token_facts` refuses a token whose ``sid`` does not
name a live session of its source user (``TokenSessionEnded``), read in the
same statement as everything else.

Revocation bound: :func:`verify_token` asks the store on every call (one read,
``Store.review_facts``), so a revocation (or a disabled user, or an inactive
access key, of the principal or of the session's source) takes effect at once
in every worker and every replica that shares the store.

Decisions:

* Role chaining (a role session assuming a role) is refused; AWS allows it
  for up to an hour, authbridge keeps every role session one step from a user.
* A role that does not exist, has another path or lives in an unknown account
  is refused exactly like a role that does not trust the caller, as IAM does,
  so tokens cannot be used to enumerate roles; both make the same store calls
  in the same order and evaluate a trust (a never-matching one for a missing
  role), so neither does the answer's timing (the web layer also charges every
  refused exchange to the caller's failure limits, :mod:`authbridge.web.limits`).
* A role session lives only as long as what it came from: disabling or
  deleting its source user, deactivating or deleting the source access key,
  or revoking the ``sts`` token it was exchanged from ends it (and deleting
  the role, as before). AWS needs a separate "revoke older sessions" step for
  this; authbridge does it by default. Role sessions minted before source
  identities were recorded carry no ``source_identity`` and are refused (get
  a new token). Revoking one role session by ``jti`` ends only it.
* A break-glass role session (``authbridge token --local``) has no IAM
  source: its ``source_identity`` is the role's own id, checked as the role.
* The ``sts`` token is a user token like any other (the same lifetime caps,
  ``access_key_id``, no ``k8s_*`` claims); only its audience differs.
* RFC 8693 §2.1 makes ``subject_token`` required; authbridge also takes a
  token exchange without one when the client authenticated with an access
  key: the key's user is then the subject (AWS AssumeRole), so a caller
  holding a key needs no intermediate token.

Exceptions (each also an :class:`~authbridge.errors.AuthbridgeError`)::

    StsError                       .oauth_error: the RFC 6749 §5.2 / RFC 8693 §2.2.2 code
    ├── InvalidRequest             a parameter missing or out of its rules   invalid_request
    │   └── DurationNotAllowed     duration_seconds outside the allowed range
    ├── AudienceNotServed          audience is not a cluster this issuer serves   invalid_target
    └── GrantRefused               the grant itself is refused                invalid_grant
        ├── SubjectTokenRefused    subject_token does not verify (.reason: the token check's code)
        │   └── NotAnStsCredential subject_token is a cluster token, or not for the sts audience
        ├── RoleChainingRefused    subject_token is a role session, not a user
        ├── RoleNotTrusted         no such role, or its trust names none of the caller's ids
        └── PrincipalNotMapped     kube_claims: the mapping gives the role session no user

Wrong access key credentials stay :class:`~authbridge.errors.InvalidCredentials`
(one message for an unknown id, a wrong secret, an inactive key and a disabled
user), which the web layer answers as ``invalid_client``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from authbridge import arn as arns
from authbridge.errors import (
    AuthbridgeError,
    InputError,
    NoSuchEntity,
    TokenError,
    TokenSessionEnded,
    TokenWrongAudience,
)
from authbridge.iam import names, trust
from authbridge.iam.model import AccessKey, Role, User
from authbridge.keys import KeySet
from authbridge.settings import Settings
from authbridge.store.base import ReviewFacts, Store
from authbridge.tokens import (
    MAX_LEEWAY,
    MintedToken,
    Principal,
    VerifiedToken,
    check_status,
    mint,
    verify,
)

__all__ = [
    "ADMIN_AUDIENCE_PATH",
    "MAX_DURATION_DIGITS",
    "MIN_DURATION",
    "STS_AUDIENCE_PATH",
    "AudienceNotServed",
    "DurationNotAllowed",
    "GrantRefused",
    "InvalidRequest",
    "IssuerPolicy",
    "KubeClaims",
    "NotAnStsCredential",
    "PrincipalNotMapped",
    "RoleChainingRefused",
    "RoleNotTrusted",
    "StsError",
    "SubjectTokenRefused",
    "admin_audience",
    "assume_role",
    "exchange_own_token",
    "get_session_token",
    "parse_duration_seconds",
    "revoke_token",
    "session_token",
    "sts_audience",
    "verify_token",
    "verify_token_facts",
]

MIN_DURATION: Final = names.MIN_SESSION_DURATION  # seconds, the shortest token STS issues
MAX_DURATION_DIGITS: Final = 6  # "duration_seconds" longer than this is not a duration
STS_AUDIENCE_PATH: Final = "/sts"  # issuer URL + this: the audience of subject tokens
ADMIN_AUDIENCE_PATH: Final = "/admin"  # issuer URL + this: the admin API's audience
NOT_AN_STS_CREDENTIAL: Final = "a cluster token is not an STS credential"

# (principal, audience) -> the claims naming its Kubernetes user for that cluster, or None
# when the mapping gives it none (see the module docstring).
KubeClaims = Callable[[Principal, str], Mapping[str, object] | None]


# --------------------------------------------------------------------------- errors


class StsError(AuthbridgeError):
    """A token request refused. ``oauth_error`` is the code the token endpoint answers."""

    code = "StsError"
    oauth_error: str = "invalid_request"
    status: int = 400  # the token endpoint's HTTP status for it (401 only for invalid_client)


class InvalidRequest(StsError):
    """A request parameter is missing or breaks its rule; ``field`` names the parameter."""

    code = "ValidationError"
    oauth_error = "invalid_request"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class DurationNotAllowed(InvalidRequest):
    code = "ValidationError"


class AudienceNotServed(StsError):
    """RFC 8693 §2.2.2: the requested audience is not a cluster this issuer serves."""

    code = "InvalidTarget"
    oauth_error = "invalid_target"


class GrantRefused(StsError):
    """RFC 6749 §5.2 ``invalid_grant``: the presented grant does not give what was asked."""

    code = "AccessDenied"
    oauth_error = "invalid_grant"


class SubjectTokenRefused(GrantRefused):
    """The subject token does not verify; ``reason`` is the token check's code (e.g. expired)."""

    code = "InvalidSubjectToken"

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class NotAnStsCredential(SubjectTokenRefused):
    """The subject token is not for exactly the ``sts`` audience (a cluster token, say)."""

    code = "InvalidSubjectToken"


class RoleChainingRefused(GrantRefused):
    code = "RoleChainingRefused"


class RoleNotTrusted(GrantRefused):
    code = "AccessDenied"


class PrincipalNotMapped(GrantRefused):
    """``embedKubernetesClaims``: the mapping gives the role session no user for the audience."""

    code = "NotMapped"


# --------------------------------------------------------------------------- policy


def sts_audience(issuer: str) -> str:
    """The audience of tokens for the token endpoint only: the issuer URL + ``/sts``."""
    return issuer.rstrip("/") + STS_AUDIENCE_PATH


def admin_audience(issuer: str) -> str:
    """The audience of the admin API's tokens: the issuer URL + ``/admin``."""
    return issuer.rstrip("/") + ADMIN_AUDIENCE_PATH


@dataclass(frozen=True)
class IssuerPolicy:
    """What the issuer signs for: its URL, the clusters it serves and lifetimes (seconds)."""

    issuer: str  # byte-identical to the discovery document and every token's iss
    cluster_ids: frozenset[str]  # audiences a token may be requested for
    default_lifetime: int  # seconds, when a request names no duration
    max_user_lifetime: int  # seconds, cap for tokens minted from access keys
    partition: str  # ARN partition of every principal

    @property
    def sts_audience(self) -> str:
        return sts_audience(self.issuer)

    @property
    def admin_audience(self) -> str:
        return admin_audience(self.issuer)

    @property
    def service_audiences(self) -> frozenset[str]:
        """Audiences a token must carry alone (see the module docstring)."""
        return frozenset((sts_audience(self.issuer), admin_audience(self.issuer)))

    @classmethod
    def from_settings(cls, settings: Settings) -> IssuerPolicy:
        return cls(
            issuer=settings.issuer,
            cluster_ids=frozenset(settings.cluster_ids),
            default_lifetime=settings.default_token_lifetime,
            max_user_lifetime=settings.max_user_token_lifetime,
            partition=settings.partition,
        )


# --------------------------------------------------------------------------- helpers


def parse_duration_seconds(raw: str | None) -> int | None:
    """The ``duration_seconds`` request parameter as an int, ``None`` when absent or empty."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_DURATION_DIGITS:
        raise DurationNotAllowed("duration_seconds", "must be a whole number of seconds")
    return int(raw)


def _check_audience(
    policy: IssuerPolicy, audience: str, *, sts: bool = False, admin: bool = True
) -> str:
    """``audience`` if it is a served cluster, the admin audience (unless not ``admin``),
    or, with ``sts``, the sts audience."""
    if not audience:
        raise InvalidRequest("audience", "is required: name the cluster id the token is for")
    if sts and audience == policy.sts_audience:
        return audience
    if admin and audience == policy.admin_audience:
        return audience
    if audience not in policy.cluster_ids:
        # The value is not repeated: it is whatever the caller sent.
        raise AudienceNotServed(
            "audience is not a cluster this issuer serves", hint="use a configured cluster id"
        )
    return audience


def _lifetime(duration: int | None, *, default: int, cap: int, what: str) -> int:
    """The token lifetime for a request: ``default`` (within ``cap``) or the requested one."""
    if duration is None:
        return min(default, cap)
    if isinstance(duration, bool) or not MIN_DURATION <= duration <= cap:
        raise DurationNotAllowed(
            "duration_seconds",
            f"must be between {MIN_DURATION} and {cap} seconds for {what}, got {duration}",
        )
    return duration


def _kube_claims(
    kube_claims: KubeClaims | None, principal: Principal, audience: str, *, required: bool
) -> dict[str, object] | None:
    """The claims ``kube_claims`` gives ``principal`` for ``audience``.

    None when there is no hook, or no user and not ``required``; PrincipalNotMapped
    when there is no user and ``required``.
    """
    if kube_claims is None:
        return None
    claims = kube_claims(principal, audience)
    if claims is None and not required:
        return None
    if claims is None:
        # Only the principal's own ARN and the (served) cluster id: which rule
        # failed and why goes to the server log, not to the caller.
        raise PrincipalNotMapped(
            f"no mapping rule maps {principal.canonical_arn} for cluster {audience};"
            " the kube-apiserver could not map this token",
            hint="add a rule for it to the mapping (authbridge mapping check shows the rules)",
        )
    return dict(claims)


def _user_principal(user: User, access_key_id: str | None) -> Principal:
    return Principal(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=user.account_id,
        principal_id=user.user_id,
        access_key_id=access_key_id,
    )


_SUBJECT_REASONS: Final[dict[str, str]] = {
    "expired": "subject_token expired",
    "revoked": "subject_token revoked",
    "not_yet_valid": "subject_token is not valid yet",
    "unknown_kid": "subject_token is signed by an unknown key",
}


def _subject_refused(error: TokenError) -> SubjectTokenRefused:
    if isinstance(error, TokenSessionEnded):
        return SubjectTokenRefused(
            "subject_token refused: the sign-in session it came from has ended",
            reason=error.code,
            hint="run authbridge login",
        )
    phrase = _SUBJECT_REASONS.get(error.code)
    if phrase is None:
        phrase = f"subject_token refused: {error.message}"
    return SubjectTokenRefused(phrase, reason=error.code)


# --------------------------------------------------------------------------- GetSessionToken


def get_session_token(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    access_key_id: str,
    secret: str,
    audience: str,
    duration: int | None,
    now: float,
    kube_claims: KubeClaims | None = None,
) -> MintedToken:
    """GetSessionToken: a token for the user owning the access key, for one cluster or sts.

    Refuses with InvalidCredentials (unknown id, wrong secret, inactive key,
    disabled user: one message), then InvalidRequest / AudienceNotServed for
    the audience, then DurationNotAllowed. Records the key's last use. With
    ``kube_claims``, a user the mapping does not map gets a token without the
    ``k8s_*`` claims (see the module docstring).
    """
    key, user = store.authenticate_access_key(access_key_id, secret)
    return session_token(
        keys,
        policy,
        key=key,
        user=user,
        audience=audience,
        duration=duration,
        now=now,
        kube_claims=kube_claims,
    )


def session_token(
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    key: AccessKey,
    user: User,
    audience: str,
    duration: int | None,
    now: float,
    kube_claims: KubeClaims | None = None,
) -> MintedToken:
    """GetSessionToken for a key the caller has already authenticated with the store.

    The web layer authenticates the client through Authlib (which calls
    ``store.authenticate_access_key``) and then mints here; anything else should
    use :func:`get_session_token`. ``audience`` is a served cluster, or the
    ``sts`` audience for a token that is only ever a ``subject_token`` (no
    ``k8s_*`` claims: no cluster ever sees it).
    """
    _check_audience(policy, audience, sts=True)
    cap = min(policy.max_user_lifetime, keys.max_token_lifetime)
    lifetime = _lifetime(duration, default=policy.default_lifetime, cap=cap, what="a user")
    principal = _user_principal(user, key.access_key_id)
    for_service = audience in policy.service_audiences
    return mint(
        principal,
        keys=keys,
        issuer=policy.issuer,
        audience=audience,
        lifetime=lifetime,
        now=now,
        extra_claims=None
        if for_service
        else _kube_claims(kube_claims, principal, audience, required=False),
    )


# --------------------------------------------------------------------------- AssumeRole


def mint_for_audience(
    principal: Principal,
    *,
    keys: KeySet,
    policy: IssuerPolicy,
    audience: str,
    lifetime: int,
    now: float,
    kube_claims: KubeClaims | None,
    required: bool,
    extra: Mapping[str, object] | None = None,
) -> MintedToken:
    """Mint ``principal``'s token for ``audience``: a cluster's carries the mapping's
    claims (``required``: a principal the mapping does not map is refused), a service
    audience's none; ``extra`` (the sign-in session's claims) goes in either way."""
    kube = (
        None
        if audience in policy.service_audiences
        else _kube_claims(kube_claims, principal, audience, required=required)
    )
    return mint(
        principal,
        keys=keys,
        issuer=policy.issuer,
        audience=audience,
        lifetime=lifetime,
        now=now,
        extra_claims={**(kube or {}), **(extra or {})} or None,
    )


def _parse_role_arn(policy: IssuerPolicy, role_arn: str) -> arns.PrincipalArn:
    if not role_arn:
        raise InvalidRequest("role_arn", "is required: the ARN of the role to assume")
    try:
        parsed = arns.parse_principal(role_arn, partitions={policy.partition})
    except InputError as e:
        detail = e.message.removeprefix(f"{e.field}: ")
        raise InvalidRequest("role_arn", f"is not a role ARN: {detail}") from e
    if parsed.kind != "role":
        what = "an assumed-role session" if parsed.kind == "assumed-role" else f"a {parsed.kind}"
        raise InvalidRequest(
            "role_arn",
            f"names {what}, not a role",
            hint="the form is arn:<partition>:iam::<account>:role/<path>Name",
        )
    return parsed


def _check_session_name(session_name: str) -> str:
    try:
        return names.session_name(session_name)
    except InputError as e:
        got = (
            f"got {len(session_name)} characters"
            if isinstance(session_name, str)
            and not names.SESSION_NAME_MIN <= len(session_name) <= names.SESSION_NAME_MAX
            else "got a character IAM does not allow"
        )
        raise InvalidRequest(
            "role_session_name",
            f"must be {names.SESSION_NAME_MIN} to {names.SESSION_NAME_MAX} characters of"
            f" letters, digits and + = , . @ _ - ({got})",
        ) from e


def _subject_user(store: Store, policy: IssuerPolicy, subject: VerifiedToken) -> User:
    """The IAM user a verified subject token speaks for; role sessions are refused."""
    principal = subject.principal
    try:
        kind = arns.parse_principal(principal.arn, partitions={policy.partition}).kind
    except InputError:
        kind = None
    if kind == "assumed-role" or principal.session_name is not None:
        # AWS allows role chaining (capped at one hour); authbridge does not, so a
        # role session can never outlive or widen what its user was given.
        raise RoleChainingRefused(
            "role chaining is not supported: subject_token is a role session",
            hint="exchange a user's token (from an access key) for the role",
        )
    if kind != "user":
        raise SubjectTokenRefused(
            "subject_token does not speak for an IAM user", reason="not_a_user"
        )
    try:
        return store.get_user_by_id(principal.principal_id)
    except NoSuchEntity as e:  # deleted between the token check and now
        raise SubjectTokenRefused(
            "subject_token refused: the user no longer exists", reason="disabled"
        ) from e


# What a role that does not exist is evaluated against: a trust naming three principals,
# none of which can match (no user, group or account has an empty id).
_NO_TRUST: Final = trust.legacy_policy(("", " ", "  "))


def trust_decision(
    policy: trust.TrustPolicy,
    user: User,
    group_ids: Collection[str],
    *,
    mfa: bool,
    now: float,
) -> trust.TrustDecision:
    """The role's trust policy on ``sts:AssumeRole`` by ``user`` (authbridge.iam.trust)."""
    return trust.evaluate(
        policy,
        trust.TrustRequest(
            trust.ASSUME_ROLE,
            principal_ids=frozenset({user.user_id, user.account_id, *group_ids}),
            context=trust.assume_role_context(
                user_arn=user.arn,
                user_name=user.name,
                user_id=user.user_id,
                account_id=user.account_id,
                mfa=mfa,
                now=now,
            ),
        ),
    )


def _verify_subject(
    store: Store, keys: KeySet, policy: IssuerPolicy, subject_token: str, *, now: float
) -> VerifiedToken:
    """The verified ``sts`` token in ``subject_token``; a cluster token is refused as such."""
    sts_aud = policy.sts_audience
    not_sts = f"subject_token is not an STS credential: its audience must be exactly {sts_aud}"
    try:
        # Any of our audiences, so that a cluster token is told apart from the rest.
        verified = verify(
            subject_token,
            keys=keys,
            issuer=policy.issuer,
            audiences=policy.cluster_ids | {sts_aud},
            now=now,
        )
    except TokenWrongAudience as e:
        raise NotAnStsCredential(not_sts, reason="wrong_audience") from e
    except TokenError as e:
        raise _subject_refused(e) from e
    if verified.audiences != [sts_aud]:
        if policy.cluster_ids.intersection(verified.audiences):
            raise NotAnStsCredential(
                NOT_AN_STS_CREDENTIAL,
                reason="cluster_token",
                hint=f"exchange a token for audience {sts_aud} (client_credentials with that"
                " audience), or authenticate with the access key",
            )
        raise NotAnStsCredential(not_sts, reason="wrong_audience")
    try:
        _check_facts(store, verified)
    except TokenError as e:
        raise _subject_refused(e) from e
    return verified


def assume_role(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    subject_token: str | None,
    role_arn: str,
    session_name: str,
    audience: str,
    duration: int | None,
    now: float,
    client: tuple[AccessKey, User] | None = None,
    kube_claims: KubeClaims | None = None,
) -> MintedToken:
    """AssumeRole: an ``sts`` token or an authenticated access key in, a role session out.

    ``client`` is the access key the client authenticated with and its user,
    if it did; without ``subject_token`` that user is the caller (InvalidRequest
    when there is neither). Refuses, in this order: SubjectTokenRefused (does
    not verify; then NotAnStsCredential for a cluster token or any token not
    for exactly the ``sts`` audience; then revoked, user disabled, …);
    RoleChainingRefused (a role session cannot assume a role); GrantRefused
    when ``client``'s user is not the token's user; InvalidRequest /
    AudienceNotServed for the audience (a cluster; never the ``sts``
    audience); InvalidRequest for the session name and the role ARN;
    RoleNotTrusted when the role does
    not exist (its path, account or name) or its trust names neither the user,
    nor one of its groups, nor its account - one message for all, as IAM gives
    nothing away about roles a caller may not assume; DurationNotAllowed
    outside 900 s .. the role's maximum session duration; with ``kube_claims``,
    PrincipalNotMapped when the mapping gives the role session no user.
    """
    source_jti: str | None = None
    mfa = False  # aws:MultiFactorAuthPresent: only a subject token signed in with MFA has it
    signin: dict[str, object] = {}
    session_left: int | None = None
    if subject_token:
        subject = _verify_subject(store, keys, policy, subject_token, now=now)
        user = _subject_user(store, policy, subject)
        signin, session_left = _session_of(store, subject, now=now)
        if client is not None and client[1].user_id != user.user_id:
            raise GrantRefused(
                "the client's access key belongs to another user than subject_token",
                hint="authenticate with a key of the token's user, or send no client credentials",
            )
        source_jti = subject.jti
        source_key = subject.principal.access_key_id
        mfa = subject.claims.get("mfa") is True
    elif client is not None:
        key, user = client
        source_key = key.access_key_id
    else:
        raise InvalidRequest(
            "subject_token",
            f"is required: a token for audience {policy.sts_audience}, unless the client"
            " authenticates with an access key",
        )
    _check_audience(policy, audience)
    session = _check_session_name(session_name)
    wanted = _parse_role_arn(policy, role_arn)

    not_trusted = RoleNotTrusted(
        f"user {user.name} is not trusted by role {wanted.name}",
        hint="the role's trust policy must allow the user, one of its groups or its account"
        " sts:AssumeRole, and its conditions (MFA, …) must hold",
    )
    # A role that does not exist (or has another path) and one that does not trust the
    # caller get the same answer after the same work: the same store reads, in the same
    # order, and a trust evaluated (a dummy's, never matching) either way, so the answer's
    # timing does not tell them apart either (bench: `python -m bench.experiments role-timing`).
    group_ids = {g.group_id for g in store.list_groups_for_user(user.account_id, user.name)}
    try:
        role: Role | None = store.get_role(wanted.account_id, wanted.name)
    except (NoSuchEntity, InputError):
        role = None
    found = role is not None and role.path == wanted.path
    trusted = trust_decision(
        role.trust_policy if role is not None else _NO_TRUST, user, group_ids, mfa=mfa, now=now
    ).allowed
    if role is None or not (found and trusted):
        raise not_trusted

    cap = min(role.max_session_duration, keys.max_token_lifetime)
    if session_left is not None:
        cap = min(cap, session_left)
    lifetime = _lifetime(
        duration, default=policy.default_lifetime, cap=cap, what=f"role {role.name}"
    )
    principal = Principal(
        arn=arns.assumed_role_arn(policy.partition, role.account_id, role.name, session),
        canonical_arn=role.arn,
        account_id=role.account_id,
        principal_id=f"{role.role_id}:{session}",
        session_name=session,
        access_key_id=None,
        source_identity=user.user_id,
        source_jti=source_jti,
        source_access_key_id=source_key,
    )
    return mint_for_audience(
        principal,
        keys=keys,
        policy=policy,
        audience=audience,
        lifetime=lifetime,
        now=now,
        kube_claims=kube_claims,
        required=True,
        extra=signin,
    )


def exchange_own_token(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    *,
    subject_token: str,
    audience: str,
    duration: int | None,
    now: float,
    client: tuple[AccessKey, User] | None = None,
    kube_claims: KubeClaims | None = None,
) -> MintedToken:
    """A token exchange without ``role_arn``: the subject user's own token for ``audience``.

    ``subject_token`` is an ``sts`` token (a sign-in session's access token,
    or one from ``client_credentials``); the answer is the same user's token
    for a served cluster or the admin audience (never the ``sts`` audience:
    no token makes another of its kind), as GetSessionToken would mint it,
    carrying the subject's ``access_key_id``, ``sid``, ``amr`` and ``mfa``, and
    living no longer than the subject's sign-in session. Refuses as
    :func:`assume_role` does, up to the audience; then DurationNotAllowed.
    """
    subject = _verify_subject(store, keys, policy, subject_token, now=now)
    user = _subject_user(store, policy, subject)
    if client is not None and client[1].user_id != user.user_id:
        raise GrantRefused(
            "the client's access key belongs to another user than subject_token",
            hint="authenticate with a key of the token's user, or send no client credentials",
        )
    _check_audience(policy, audience)
    signin, session_left = _session_of(store, subject, now=now)
    cap = min(policy.max_user_lifetime, keys.max_token_lifetime)
    if session_left is not None:
        cap = min(cap, session_left)
    lifetime = _lifetime(duration, default=policy.default_lifetime, cap=cap, what="a user")
    principal = _user_principal(user, subject.principal.access_key_id)
    return mint_for_audience(
        principal,
        keys=keys,
        policy=policy,
        audience=audience,
        lifetime=lifetime,
        now=now,
        kube_claims=kube_claims,
        required=False,
        extra=signin,
    )


_AMR_VALUES: Final = frozenset({"pwd", "mfa", "otp", "fed"})


def _session_of(
    store: Store, subject: VerifiedToken, *, now: float
) -> tuple[dict[str, object], int | None]:
    """The sign-in session claims a derived token inherits, and the seconds left of it.

    ``({}, None)`` for a subject from no session. The session was found live
    by the subject's check (in the review read); its end is read here, on the
    exchange, never on a review: a derived token must not outlive it.
    """
    claims = subject.claims
    sid = claims.get("sid")
    if not isinstance(sid, str):
        return {}, None
    mfa = claims.get("mfa") is True
    amr = claims.get("amr")
    if not (isinstance(amr, list) and amr and all(a in _AMR_VALUES for a in amr)):
        amr = ["pwd", "mfa"] if mfa else ["pwd"]
    record = store.get_signin_session(sid)
    left = 0 if record is None else record.ends_at(now) - int(now)
    if left <= 0:
        raise SubjectTokenRefused(
            "subject_token refused: the sign-in session it came from has ended",
            reason="revoked",
            hint="run authbridge login",
        )
    return {"sid": sid, "amr": list(amr), "mfa": mfa}, left


# --------------------------------------------------------------------------- verify / revoke


def verify_token(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    token: str,
    *,
    audiences: Collection[str] | None = None,
    now: float,
) -> VerifiedToken:
    """Verify ``token`` completely, revocation and principal status included.

    ``audiences`` defaults to every served cluster. Raises a TokenError.
    """
    return verify_token_facts(store, keys, policy, token, audiences=audiences, now=now)[0]


def verify_token_facts(
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    token: str,
    *,
    audiences: Collection[str] | None = None,
    now: float,
) -> tuple[VerifiedToken, ReviewFacts]:
    """:func:`verify_token`, also returning the store's facts it decided on.

    The token's own checks come first, as always (and a service audience
    together with another is refused, see the module docstring); then one
    store read gives the revocation, principal and source status (refused in
    that order, with the messages :func:`authbridge.tokens.verify`'s hooks
    give) and, for an IAM user, its name and groups. Raises a TokenError.
    """
    verified = _verified(
        keys,
        policy,
        token,
        audiences=policy.cluster_ids if audiences is None else audiences,
        now=now,
    )
    return verified, _check_facts(store, verified)


def _verified(
    keys: KeySet, policy: IssuerPolicy, token: str, *, audiences: Collection[str], now: float
) -> VerifiedToken:
    """:func:`authbridge.tokens.verify`, and no service audience beside another audience."""
    verified = verify(token, keys=keys, issuer=policy.issuer, audiences=audiences, now=now)
    auds = verified.audiences
    if len(auds) > 1 and policy.service_audiences.intersection(auds):
        raise TokenWrongAudience(
            "the token carries an authbridge service audience together with others;"
            " no authbridge token does",
            hint="get a new token",
        )
    return verified


def _check_facts(store: Store, verified: VerifiedToken) -> ReviewFacts:
    """One store read for ``verified``; raises what :func:`check_status` raises."""
    principal = verified.principal
    session_id = verified.claims.get("sid")  # a string when present (tokens.verify checked)
    facts = store.review_facts(
        verified.jti,
        principal.principal_id,
        principal.source_key,
        source_identity=principal.source_identity,
        source_jti=principal.source_jti,
        session_id=session_id,
    )
    check_status(
        verified, revoked=facts.revoked, refusal=facts.refusal, source_revoked=facts.source_revoked
    )
    if facts.session_ended:
        raise TokenSessionEnded(
            "the sign-in session this token came from has ended",
            hint="run authbridge login",
        )
    return facts


def revoke_token(
    store: Store, keys: KeySet, policy: IssuerPolicy, token: str, *, now: float
) -> str | None:
    """RFC 7009: record ``token`` as revoked; return its ``jti``, or None if nothing to do.

    Only a token this issuer signed, for a served cluster, the ``sts`` or the
    admin audience and not yet expired, is recorded; anything else could not be
    used anyway. Revoking an ``sts`` token also ends the role sessions
    exchanged from it. The principal's status
    is deliberately not checked: the token of a disabled user is revoked too, so
    enabling the user again does not bring it back. The ``jti`` is kept until
    the token's ``exp`` plus the verification leeway, after which
    ``purge_revoked_tokens`` may forget it.
    """
    try:
        verified = verify(
            token,
            keys=keys,
            issuer=policy.issuer,
            audiences=policy.cluster_ids | policy.service_audiences,
            now=now,
        )
    except TokenError:
        return None
    keep_until = datetime.fromtimestamp(verified.expires_at + MAX_LEEWAY, UTC)
    store.revoke_token(verified.jti, keep_until)
    return verified.jti
