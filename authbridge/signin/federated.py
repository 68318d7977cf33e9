"""Sign-in through an upstream IdP: the roles a person may pick, and the sessions' tokens.

After the upstream code flow (:mod:`authbridge.signin.upstream`) and the ID
token's checks (:func:`authbridge.web_identity.verify_sign_in_id_token`), the
person's claims are held against every role of the provider's account:
:func:`roles_for` lists those whose trust policy allows the provider
``sts:AssumeRoleWithWebIdentity`` for these claims (``trust.evaluate_web_identity``,
as AssumeRoleWithWebIdentity decides it), and the one picked becomes a
:class:`~authbridge.iam.sessions.FederatedSubject`: a role session
``assumed-role/<role>/<session name>`` whose source identity is
``<provider ARN>:<sub>``, like IAM Identity Center's permission sets.

Nothing is decided once for good: every grant of the session (its tokens from
a device code, an authorization code, a refresh token; every exchange of them)
calls :func:`check_subject`, which refuses with
:class:`~authbridge.signin.service.SessionEnded` when the provider is no longer
registered, the role is gone (or made again: another unique id), or its trust
no longer allows the claims recorded at the sign-in. The tokens say
``amr: ["fed"]`` and ``mfa: false``: the upstream's own MFA is not known here.

:func:`exchange` is the token exchange of such a session's ``sts`` token: no
``role_arn`` (or the session's own role) gives the same role session for the
audience; another role is allowed only when its trust allows the same claims
(switching permission sets without signing in again). A role session that is
not a federated sign-in stays refused as role chaining.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from authbridge import arn as arns
from authbridge import sts
from authbridge.errors import InputError, NoSuchEntity
from authbridge.iam import trust
from authbridge.iam.model import Role
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.iam.sessions import FederatedSubject, SessionRecord
from authbridge.keys import KeySet
from authbridge.store.base import Store
from authbridge.tokens import MintedToken, Principal, mint

AMR: Final = ["fed"]  # RFC 8176 has no value for "an upstream IdP said so"; ours, documented
SESSION_NAME_CLAIMS: Final = ("preferred_username", "email", "sub")
_SESSION_NAME_CHARS: Final = re.compile(r"[^\w+=,.@-]", re.ASCII)
MAX_SESSION_NAME: Final = 64
_MIN_SESSION_NAME: Final = 2


def session_name_for(claims: Mapping[str, Any]) -> str:
    """The role session name a person gets: their user name, e-mail or ``sub``, as STS allows.

    The first of :data:`SESSION_NAME_CLAIMS` that is a string, every character
    outside ``[\\w+=,.@-]`` replaced by ``-``, cut to 64; when none is
    two characters long: ``fed-`` and 16 hex digits of SHA-256 of ``sub`` (stable
    from one sign-in to the next).
    """
    for name in SESSION_NAME_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            cleaned = _SESSION_NAME_CHARS.sub("-", value)[:MAX_SESSION_NAME]
            if len(cleaned) >= _MIN_SESSION_NAME:
                return cleaned
    sub = claims.get("sub")
    digest = hashlib.sha256(str(sub).encode("utf-8", "surrogatepass")).hexdigest()
    return f"fed-{digest[:16]}"


def _role(store: Store, account_id: str, name: str) -> Role | None:
    try:
        return store.get_role(account_id, name)
    except (NoSuchEntity, InputError):
        return None


def _allows(role: Role, provider_arn: str, claims: Mapping[str, Any], now: float) -> bool:
    decision = trust.evaluate_web_identity(role.trust_policy, provider_arn, claims, now=now)
    return decision.allowed


def roles_for(
    store: Store, provider: OidcProvider, claims: Mapping[str, Any], *, now: float
) -> list[Role]:
    """The roles of the provider's account whose trust allows these claims, by name."""
    account_id = provider.account_id
    found = [
        role for role in store.list_roles(account_id) if _allows(role, provider.arn, claims, now)
    ]
    return sorted(found, key=lambda role: role.name.lower())


def new_subject(
    provider: OidcProvider, role: Role, claims: Mapping[str, Any], session_name: str
) -> FederatedSubject:
    return FederatedSubject(
        subject_id=f"fed-{secrets.token_hex(16)}",
        account_id=role.account_id,
        provider_arn=provider.arn,
        sub=str(claims["sub"]),
        role_arn=role.arn,
        role_id=role.role_id,
        session_name=session_name,
        claims=dict(claims),
    )


def check_subject(store: Store, subject: FederatedSubject, *, now: float) -> Role:
    """The subject's role, if the sign-in still holds; SessionEnded (with why) if not."""
    from authbridge.signin.service import SessionEnded

    try:
        store.get_open_id_connect_provider(subject.account_id, subject.provider_arn)
    except (NoSuchEntity, InputError) as e:
        raise SessionEnded(
            "the sign-in session has ended: its identity provider is no longer registered",
            hint="sign in again",
        ) from e
    name = arns.parse_principal(subject.role_arn, partitions=(subject.role_arn.split(":")[1],))
    role = _role(store, subject.account_id, name.name)
    if role is None or role.role_id != subject.role_id:
        raise SessionEnded(
            "the sign-in session has ended: its role no longer exists", hint="sign in again"
        )
    if not _allows(role, subject.provider_arn, subject.claims, now):
        raise SessionEnded(
            f"the sign-in session has ended: role {role.name} no longer trusts this identity",
            hint="sign in again and pick a role you may use",
        )
    return role


def subject_of(store: Store, session: SessionRecord) -> FederatedSubject:
    from authbridge.signin.service import SESSION_ENDED, SessionEnded

    subject = (
        None if session.federated_id is None else store.get_federated_subject(session.federated_id)
    )
    if subject is None:
        raise SessionEnded(SESSION_ENDED)
    return subject


def principal_of(policy: sts.IssuerPolicy, role: Role, subject: FederatedSubject) -> Principal:
    return Principal(
        arn=arns.assumed_role_arn(
            policy.partition, role.account_id, role.name, subject.session_name
        ),
        canonical_arn=role.arn,
        account_id=role.account_id,
        principal_id=f"{role.role_id}:{subject.session_name}",
        session_name=subject.session_name,
        access_key_id=None,
        source_identity=subject.source_identity,
    )


def session_claims(session_id: str) -> dict[str, object]:
    """What every token of a federated sign-in session carries (no MFA known here)."""
    return {"sid": session_id, "amr": list(AMR), "mfa": False}


def session_token(
    store: Store,
    keys: KeySet,
    policy: sts.IssuerPolicy,
    session: SessionRecord,
    *,
    now: float,
) -> MintedToken:
    """The ``sts`` access token of a federated session: its role session, re-checked."""
    from authbridge.signin.service import SESSION_ENDED, SessionEnded

    subject = subject_of(store, session)
    role = check_subject(store, subject, now=now)
    left = session.expires_at - int(now)
    lifetime = min(
        policy.default_lifetime, role.max_session_duration, keys.max_token_lifetime, left
    )
    if lifetime <= 0:
        raise SessionEnded(SESSION_ENDED)
    return mint(
        principal_of(policy, role, subject),
        keys=keys,
        issuer=policy.issuer,
        audience=policy.sts_audience,
        lifetime=lifetime,
        now=now,
        extra_claims=session_claims(session.session_id),
    )


# --------------------------------------------------------------------------- token exchange


def _unverified_claims(token: str) -> Mapping[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16384:
        return {}
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def looks_federated(subject_token: str) -> bool:
    """Whether a subject token says it is a federated sign-in's (only routes; :func:`exchange`
    verifies everything): a ``sid`` and a source identity that is a provider's."""
    claims = _unverified_claims(subject_token)
    source = claims.get("source_identity")
    return (
        isinstance(claims.get("sid"), str)
        and isinstance(source, str)
        and ":oidc-provider/" in source
    )


def exchange(
    store: Store,
    keys: KeySet,
    policy: sts.IssuerPolicy,
    *,
    subject_token: str,
    role_arn: str,
    session_name: str,
    audience: str,
    duration: int | None,
    now: float,
    kube_claims: sts.KubeClaims | None = None,
) -> MintedToken:
    """The token exchange of a federated session's ``sts`` token (see the module docstring).

    Refuses as :func:`authbridge.sts.assume_role` does: the subject token first
    (SubjectTokenRefused, NotAnStsCredential), then SessionEnded when the sign-in
    no longer holds, the audience, the session name, the role ARN, RoleNotTrusted
    for a role whose trust does not allow the sign-in's claims (or that does not
    exist: the same answer), DurationNotAllowed, PrincipalNotMapped.
    """
    verified = sts._verify_subject(store, keys, policy, subject_token, now=now)  # noqa: SLF001
    sid = verified.claims.get("sid")
    record = store.get_signin_session(sid) if isinstance(sid, str) else None
    if record is None or record.federated_id is None:
        raise sts.RoleChainingRefused(
            "role chaining is not supported: subject_token is a role session",
            hint="exchange a user's token (from an access key) for the role",
        )
    subject = subject_of(store, record)
    if subject.source_identity != verified.principal.source_identity:
        raise sts.SubjectTokenRefused(
            "subject_token refused: it is not its sign-in session's", reason="revoked"
        )
    own = check_subject(store, subject, now=now)
    sts._check_audience(policy, audience)  # noqa: SLF001 - sts's own rules, shared
    name = sts._check_session_name(session_name) if session_name else subject.session_name  # noqa: SLF001
    role = own
    if role_arn:
        wanted = sts._parse_role_arn(policy, role_arn)  # noqa: SLF001
        found = _role(store, wanted.account_id, wanted.name)
        allowed = (
            found is not None
            and found.path == wanted.path
            and _allows(found, subject.provider_arn, subject.claims, now)
        )
        if found is None or not allowed:
            raise sts.RoleNotTrusted(
                f"role {wanted.name} does not trust this sign-in's identity",
                hint="the role's trust policy must allow the provider"
                " sts:AssumeRoleWithWebIdentity for the claims you signed in with",
            )
        role = found
    left = record.ends_at(now) - int(now)
    cap = min(role.max_session_duration, keys.max_token_lifetime, left)
    lifetime = sts._lifetime(  # noqa: SLF001
        duration, default=policy.default_lifetime, cap=cap, what=f"role {role.name}"
    )
    named = dataclasses.replace(subject, role_arn=role.arn, role_id=role.role_id, session_name=name)
    return sts.mint_for_audience(
        principal_of(policy, role, named),
        keys=keys,
        policy=policy,
        audience=audience,
        lifetime=lifetime,
        now=now,
        kube_claims=kube_claims,
        required=True,
        extra=session_claims(record.session_id),
    )


def role_choices(roles: Sequence[Role]) -> list[dict[str, str]]:
    """The picker's rows: each role's ARN, name and description."""
    return [
        {"arn": role.arn, "name": role.name, "description": role.description or ""}
        for role in roles
    ]
