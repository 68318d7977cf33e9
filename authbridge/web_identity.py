"""AssumeRoleWithWebIdentity: a registered OIDC provider's token in, a role session out.

The RFC 8693 token exchange with ``subject_token_type``
``urn:ietf:params:oauth:token-type:id_token`` (or ``…:jwt`` when the token is
not authbridge's own) and a ``role_arn``: the upstream token is the only
credential (no client authentication). :func:`assume_role_with_web_identity`
checks it as strictly as :func:`authbridge.tokens.verify` checks authbridge's
own tokens, in this order, each refusal a :class:`WebIdentityRefused` whose
``reason`` is a short code (for the audit line and the metric label) and whose
message says what failed without repeating the token:

    over MAX_TOKEN_SIZE bytes (before any decoding)              malformed
    not three base64url segments of JSON objects, a claim name   malformed
    twice, a ``crit`` header, a ``typ`` other than JWT
    ``alg`` not one of oidc_upstream.ALLOWED_ALGS (none, HS*)    algorithm
    no ``iss``, or no provider with that URL in the role's       unknown_provider
    account (the role ARN names the account: a provider of
    another account never counts)
    the provider's keys cannot be had                            provider_unavailable
    (ProviderUnavailable.reason goes in the message and log)
    ``kid`` missing or not in the provider's JWKS (one           unknown_kid
    rate-limited refetch: authbridge.oidc_upstream)
    ``alg`` is not the algorithm of that JWKS key                algorithm
    signature (verified with exactly ``[key.alg]``)              bad_signature
    ``iss`` is not exactly the provider's URL                    wrong_issuer
    ``aud`` names none of the provider's client ids              wrong_audience
    ``exp`` (+ leeway) passed                                    expired
    ``nbf`` / ``iat`` (− leeway) in the future                   not_yet_valid
    ``sub``, ``exp``, ``iat`` missing or of the wrong type       claims_invalid
    the role does not exist or its trust policy does not allow   not_trusted
    the provider ``sts:AssumeRoleWithWebIdentity`` for these
    claims (``TrustDecision.reason``: which condition failed)

The same checks (:func:`verify_upstream_token`) verify the ID token of an
upstream sign-in, which :func:`verify_sign_in_id_token` then holds to the
sign-in client id (``aud``; ``azp`` when there are several audiences,
``wrong_azp``) and the flow's nonce (``wrong_nonce``).

A role that does not exist answers like one whose trust has no statement for
the provider (as :func:`authbridge.sts.assume_role` does for users), so role
names cannot be enumerated with a valid upstream token.

The session: ``arn:…:assumed-role/<role>/<role_session_name>``, with
``source_identity`` = ``<provider ARN>:<sub>`` (``/verify`` and the webhook's
review show it), no access key and no ``source_jti``. Its review checks that
the provider is still registered (``Store.review_facts``): deleting the
provider ends every session it started, as deleting the source user ends a
user's role sessions. The lifetime is ``duration_seconds`` (default the
issuer's default), at most the role's maximum session duration; it does not
depend on the upstream token's own ``exp`` (as AWS).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt

from authbridge import arn as arns
from authbridge import sts
from authbridge.errors import InputError, NoSuchEntity
from authbridge.iam import oidc_provider, trust
from authbridge.iam.model import Role
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.keys import KeySet
from authbridge.oidc_upstream import (
    ALLOWED_ALGS,
    ProviderUnavailable,
    UnknownKeyId,
    UpstreamKey,
    UpstreamKeys,
)
from authbridge.store.base import Store
from authbridge.tokens import (
    MAX_CLAIM_CHARS,
    MAX_LEEWAY,
    MAX_TOKEN_SIZE,
    MintedToken,
    Principal,
)

log = logging.getLogger(__name__)

__all__ = [
    "LEEWAY",
    "WebIdentityRefused",
    "assume_role_with_web_identity",
    "peek_issuer",
    "verify_sign_in_id_token",
    "verify_upstream_token",
]

LEEWAY: Final = MAX_LEEWAY  # seconds of clock skew on exp/nbf/iat (authbridge's own)
MAX_SUB: Final = 255  # characters of the upstream sub (the source identity's last part)
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")


class WebIdentityRefused(sts.GrantRefused):
    """The upstream token, its provider or the role's trust refused it (``reason``: a code)."""

    code = "InvalidIdentityToken"

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


def _refused(reason: str, message: str, hint: str | None = None) -> WebIdentityRefused:
    return WebIdentityRefused(f"web identity token refused: {message}", reason=reason, hint=hint)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError("a member is repeated")
        out[name] = value
    return out


def _decode_segment(segment: str) -> dict[str, Any]:
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, UnicodeDecodeError, RecursionError) as e:
        raise ValueError("not JSON") from e
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class _Parsed:
    header: dict[str, Any]
    claims: dict[str, Any]  # unverified until the signature is checked


def _parse(token: str) -> _Parsed:
    """The header and the (unverified) claims of a compact JWS; malformed otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_SIZE:
        raise _refused(
            "malformed", f"the token is larger than {MAX_TOKEN_SIZE} bytes", "send the id token"
        )
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:  # alg none has no signature
        raise _refused("malformed", "the token is not a signed JWT (three base64url segments)")
    try:
        header = _decode_segment(parts[0])
        claims = _decode_segment(parts[1])
    except ValueError as e:
        raise _refused("malformed", f"the token's header or payload is {e}") from None
    if "crit" in header:
        raise _refused("malformed", "the token has a crit header, which authbridge does not know")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() not in ("JWT", "AT+JWT")):
        raise _refused("malformed", "the token's typ header is not JWT")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise _refused(
            "algorithm",
            "its alg is not one of " + ", ".join(sorted(ALLOWED_ALGS)),
            "an id token is signed with the provider's published asymmetric key",
        )
    return _Parsed(header, claims)


def peek_issuer(token: str) -> str | None:
    """The unverified ``iss`` of a JWT, or None: which verifier a subject token is for."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_SIZE:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        iss = _decode_segment(parts[1]).get("iss")
    except ValueError:
        return None
    return iss if isinstance(iss, str) else None


def _provider(store: Store, partition: str, account_id: str, iss: object) -> OidcProvider:
    unknown = _refused(
        "unknown_provider",
        f"its issuer is not an OIDC provider registered in account {account_id}",
        "register it: authbridge iam create-open-id-connect-provider --url <issuer>",
    )
    if not isinstance(iss, str):
        raise _refused("claims_invalid", "the token has no 'iss' claim")
    try:
        key = oidc_provider.provider_key(iss)
        provider = store.get_open_id_connect_provider(
            account_id, oidc_provider.provider_arn(partition, account_id, key)
        )
    except (InputError, NoSuchEntity):
        raise unknown from None
    return provider


def _key(upstream: UpstreamKeys, provider: OidcProvider, header: Mapping[str, Any]) -> UpstreamKey:
    kid = header.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 256:
        raise _refused("unknown_kid", "the token has no kid header naming its signing key")
    try:
        return upstream.key_for(provider, kid)
    except ProviderUnavailable as e:
        log.warning("web identity: %s (%s)", e.message, e.reason)
        raise WebIdentityRefused(
            f"web identity token cannot be checked: {e.message} ({e.reason})",
            reason="provider_unavailable",
            hint=e.hint,
        ) from None
    except UnknownKeyId as e:
        raise _refused("unknown_kid", e.message, e.hint) from None


def _verify(
    token: str, parsed: _Parsed, key: UpstreamKey, provider: OidcProvider, now: float
) -> dict[str, Any]:
    if parsed.header["alg"] != key.alg:
        raise _refused("algorithm", f"its alg is not {key.alg}, the algorithm of its key")
    try:
        # The signature only, with exactly the key's algorithm; the claims were parsed
        # strictly from the same bytes already (a claim name twice is refused there).
        jwt.api_jws.decode_complete(token, key.key, algorithms=[key.alg])
    except jwt.InvalidSignatureError:
        raise _refused("bad_signature", "its signature does not verify") from None
    except jwt.PyJWTError:
        raise _refused("malformed", "the token cannot be decoded") from None
    claims = dict(parsed.claims)
    if claims.get("iss") != provider.url:
        raise _refused(
            "wrong_issuer",
            f"its iss is not exactly {provider.url}",
            "the provider must be registered with exactly the issuer URL its tokens carry",
        )
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    if not isinstance(auds, list) or not auds or not all(isinstance(a, str) for a in auds):
        raise _refused("claims_invalid", "claim 'aud' must be a string or a list of strings")
    if not set(auds).intersection(provider.client_ids):
        raise _refused(
            "wrong_audience",
            f"its aud is none of the client ids of {provider.arn}",
            "request the token for an audience in the provider's client id list",
        )
    for name in ("exp", "iat"):
        if name not in claims:
            raise _refused("claims_invalid", f"the token has no {name!r} claim")
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= 253402300799
        ):
            raise _refused("claims_invalid", f"claim {name!r} must be a number of seconds")
    if claims["exp"] + LEEWAY <= now:
        raise _refused("expired", "it has expired", "get a fresh token from the provider")
    if claims.get("nbf", 0) - LEEWAY > now or claims["iat"] - LEEWAY > now:
        raise _refused("not_yet_valid", "it is not valid yet (nbf or iat in the future)")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB or not sub.isprintable():
        raise _refused("claims_invalid", f"claim 'sub' must be 1 to {MAX_SUB} printable characters")
    return claims


def _verified(
    upstream: UpstreamKeys, provider: OidcProvider, token: str, parsed: _Parsed, now: float
) -> dict[str, Any]:
    key = _key(upstream, provider, parsed.header)
    return _verify(token, parsed, key, provider, now)


def verify_upstream_token(
    upstream: UpstreamKeys, provider: OidcProvider, token: str, *, now: float
) -> dict[str, Any]:
    """The claims of a token of ``provider``, checked as the module docstring lists.

    The one strict verifier AssumeRoleWithWebIdentity and the upstream sign-in
    share (parse, alg allowlist, kid, signature with the key's alg, exact iss,
    aud in the client ids, exp/nbf/iat); WebIdentityRefused with its reason.
    """
    return _verified(upstream, provider, token, _parse(token), now)


def verify_sign_in_id_token(
    upstream: UpstreamKeys,
    provider: OidcProvider,
    token: object,
    *,
    client_id: str,
    nonce: str,
    now: float,
) -> dict[str, Any]:
    """An ID token from the code exchange of an upstream sign-in (OpenID Connect Core §3.1.3.7).

    :func:`verify_upstream_token`, then: ``aud`` holds the sign-in client id
    (``wrong_audience``); with several audiences ``azp`` is the client id
    (``wrong_azp``); ``nonce`` is the flow's, compared in constant time
    (``wrong_nonce``: a token injected from another login). No ``id_token`` in
    the answer is ``malformed``.
    """
    if not isinstance(token, str) or not token:
        raise _refused("malformed", "the token endpoint answered no id_token")
    claims = verify_upstream_token(upstream, provider, token, now=now)
    aud = claims["aud"]
    auds = [aud] if isinstance(aud, str) else list(aud)
    if client_id not in auds:
        raise _refused(
            "wrong_audience",
            "its aud does not hold the sign-in client id",
            "the IdP must issue the ID token for the client id configured for sign-in",
        )
    if len(auds) > 1 and claims.get("azp") != client_id:
        raise _refused("wrong_azp", "it has several audiences and its azp is not the client id")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(
        got.encode("utf-8", "surrogatepass"), nonce.encode()
    ):
        raise _refused(
            "wrong_nonce",
            "its nonce is not the one this sign-in sent",
            "start the sign-in again from the login page",
        )
    return claims


def _not_trusted(role_name: str, reason: str) -> WebIdentityRefused:
    return WebIdentityRefused(
        f"role {role_name} does not trust this web identity: {reason}"[:MAX_CLAIM_CHARS],
        reason="not_trusted",
        hint="the role's trust policy must allow the provider (Principal Federated)"
        " sts:AssumeRoleWithWebIdentity, and its conditions on the token's claims must hold",
    )


def assume_role_with_web_identity(
    store: Store,
    keys: KeySet,
    policy: sts.IssuerPolicy,
    upstream: UpstreamKeys,
    *,
    web_identity_token: str,
    role_arn: str,
    session_name: str,
    audience: str,
    duration: int | None,
    now: float,
    kube_claims: sts.KubeClaims | None = None,
) -> MintedToken:
    """A role session for an upstream token (see the module docstring for the refusals).

    The request parameters are checked first (InvalidRequest / AudienceNotServed
    for the audience, the session name and the role ARN), then the token, then
    the trust; DurationNotAllowed last; with ``kube_claims``, PrincipalNotMapped.
    """
    sts._check_audience(policy, audience)  # noqa: SLF001 - sts's own rule, shared
    session = sts._check_session_name(session_name)  # noqa: SLF001
    wanted = sts._parse_role_arn(policy, role_arn)  # noqa: SLF001
    parsed = _parse(web_identity_token)
    provider = _provider(store, policy.partition, wanted.account_id, parsed.claims.get("iss"))
    claims = _verified(upstream, provider, web_identity_token, parsed, now)

    try:
        role: Role | None = store.get_role(wanted.account_id, wanted.name)
    except (NoSuchEntity, InputError):
        role = None
    if role is None or role.path != wanted.path:
        # As a role whose trust has no statement for the provider (nothing about roles leaks).
        decision = trust.evaluate_web_identity(sts._NO_TRUST, provider.arn, claims, now=now)  # noqa: SLF001
        raise _not_trusted(wanted.name, decision.reason)
    decision = trust.evaluate_web_identity(role.trust_policy, provider.arn, claims, now=now)
    if not decision.allowed:
        raise _not_trusted(role.name, decision.reason)

    cap = min(role.max_session_duration, keys.max_token_lifetime)
    lifetime = sts._lifetime(  # noqa: SLF001
        duration, default=policy.default_lifetime, cap=cap, what=f"role {role.name}"
    )
    principal = Principal(
        arn=arns.assumed_role_arn(policy.partition, role.account_id, role.name, session),
        canonical_arn=role.arn,
        account_id=role.account_id,
        principal_id=f"{role.role_id}:{session}",
        session_name=session,
        access_key_id=None,
        source_identity=oidc_provider.web_identity_source(provider.arn, claims["sub"]),
    )
    return sts.mint_for_audience(
        principal,
        keys=keys,
        policy=policy,
        audience=audience,
        lifetime=lifetime,
        now=now,
        kube_claims=kube_claims,
        required=True,
    )
