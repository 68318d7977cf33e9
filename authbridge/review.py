"""Reviewing a bearer token: the Kubernetes user it stands for, or precisely why not.

The one decision behind ``POST /authenticate`` (the TokenReview webhook),
``/verify`` and ``authbridge verify --local``; Flask-free, so the CLI runs the
same code in-process. :func:`review_token` takes the token, the store, the key
set, the issuer policy, the current mapping and the clusters the caller may
speak for, and returns a :class:`Review`:

1. :func:`authbridge.sts.verify_token_facts` with ``audiences`` = those
   clusters: signature, issuer, ``aud`` names one of them, lifetime, then
   revocation and the principal's and access key's status, read from the
   store now, in one read (``Store.review_facts``) that also gives an IAM
   user's groups;
2. the mapping, if it names a ``clusterID``, applies only to tokens for that
   cluster;
3. for an IAM user, its groups (``mapGroups``) are those of that same read;
4. :func:`authbridge.mapping.resolve.resolve_access` maps the identity to a
   username and groups, or says no rule matched: by the authenticationMode of
   the first cluster the token is for, its access entry (bound to the unique
   id) and/or the mapping file. The entries come from the store object's
   snapshot (:meth:`Store.access_snapshot`), re-read only when the access
   version read with the facts of step 1 changed: no extra round trip, except
   one transaction per worker per access version.

A refused token gets ``reason`` (a short stable label: the token error code
such as ``expired``, or ``not_mapped``: metrics and logs) and ``detail``, one
line a person can act on ("token expired at 2026-11-22T00:15:00Z",
"user alice is disabled", …). Neither ever holds the token: error messages
in authbridge never do, and values shown from the token's header or claims
are shortened. Only the store failing raises (``StoreUnavailable``), since
that is not a verdict.

:func:`map_identity` is steps 2-4 alone: the token endpoint runs it at mint
time (``embedKubernetesClaims``) so a JWT-mode token carries exactly the user
the webhook would answer for it.

:func:`verify_answer` renders a review as the ``/verify`` JSON (docs/reference.md);
``identity`` also names the token's source (``sourceIdentity``: the user it
started from, ``sourceAccessKeyId``, ``sourceJti``: :mod:`authbridge.sts`),
and a token refused for its source says which (e.g. "user alice, which this
session started from, is disabled").
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, TypedDict

from authbridge import arn as arns
from authbridge.audit import redact
from authbridge.errors import (
    MalformedArn,
    NoSuchEntity,
    TokenError,
    TokenPrincipalRefused,
    TokenSourceRevoked,
)
from authbridge.iam.access import AccessEntry, AccessSnapshot, AuthenticationMode
from authbridge.keys import KeySet
from authbridge.mapping.model import Identity, KubeIdentity, MatchedRule
from authbridge.mapping.model import Mapping as MappingFile
from authbridge.mapping.resolve import resolve_access
from authbridge.store.base import ReviewFacts, Store
from authbridge.sts import IssuerPolicy, verify_token_facts
from authbridge.tokens import MAX_NUMERIC_DATE, MAX_TOKEN_SIZE, Principal

__all__ = [
    "REASON_NOT_MAPPED",
    "REASON_OK",
    "IdentityDoc",
    "KubernetesDoc",
    "Review",
    "RuleDoc",
    "TokenDoc",
    "TokenInfo",
    "VerifyAnswer",
    "describe_clusters",
    "identity_of",
    "map_identity",
    "map_snapshot",
    "review_token",
    "verify_answer",
]

REASON_OK: Final = "ok"
REASON_NOT_MAPPED: Final = "not_mapped"
_SHOWN: Final = 200  # characters of any value taken from an unverified token


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class TokenInfo:
    """What the token says about itself; ``verified`` False when it did not verify."""

    iss: str | None
    aud: tuple[str, ...]
    exp: int | None
    kid: str | None
    verified: bool


@dataclass(frozen=True)
class Review:
    """The verdict on one token, with everything the logs, metrics and /verify show."""

    authenticated: bool
    reason: str  # "ok", a token error code (authbridge.errors), or "not_mapped"
    detail: str | None = None  # the precise reason in words, when refused
    hint: str | None = None  # what to do about it, when known
    identity: Identity | None = None  # set once the token verified
    user: KubeIdentity | None = None  # status.user, when authenticated
    rules: tuple[MatchedRule, ...] = ()
    clusters: tuple[str, ...] = ()  # the token's audiences among the clusters asked about
    expires_at: int | None = None  # the verified token's exp
    token: TokenInfo | None = field(default=None)
    # Where the verified token's session started (authbridge.sts, "Source identity").
    source_identity: str | None = None
    source_access_key_id: str | None = None
    source_jti: str | None = None
    # The access version (Store.access_version) the entries consulted were of: the
    # webhook's verdict cache is tagged with it.
    access_version: int | None = None


# --------------------------------------------------------------------------- /verify JSON


class IdentityDoc(TypedDict):
    arn: str
    canonicalArn: str
    accountId: str
    principalId: str
    sessionName: str | None
    accessKeyId: str | None
    sourceIdentity: NotRequired[str | None]  # the unique id the session started from
    sourceAccessKeyId: NotRequired[str | None]  # the access key behind it
    sourceJti: NotRequired[str | None]  # the token a role session was exchanged from


class KubernetesDoc(TypedDict):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class RuleDoc(TypedDict):
    section: Literal["mapRoles", "mapUsers", "mapGroups", "mapAccounts", "accessEntry"]
    index: int
    arn: str | None


class TokenDoc(TypedDict):
    iss: str | None
    aud: list[str]
    exp: int | None
    expiresAt: str | None  # exp as RFC 3339 UTC
    kid: str | None
    verified: bool  # False: read from the token without checking its signature


class VerifyAnswer(TypedDict):
    """The ``/verify`` and ``authbridge verify -o json`` answer (docs/reference.md)."""

    authenticated: bool
    reason: NotRequired[str]  # when refused: the precise reason
    reasonCode: NotRequired[str]  # when refused: the label logs and metrics use
    hint: NotRequired[str]
    clusters: NotRequired[list[str]]  # served clusters the token is for
    identity: NotRequired[IdentityDoc]
    kubernetes: NotRequired[KubernetesDoc]
    matchedRule: NotRequired[RuleDoc]  # the rule that decided the username
    contributingRules: NotRequired[list[RuleDoc]]  # every rule that added to the answer
    token: NotRequired[TokenDoc]


def _rule_doc(rule: MatchedRule) -> RuleDoc:
    return {"section": rule.section, "index": rule.index, "arn": rule.arn}


def iso_utc(ts: float | None) -> str | None:
    """``ts`` as ``2026-11-22T00:15:00Z``, or None."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return None


def verify_answer(review: Review) -> VerifyAnswer:
    """The ``/verify`` JSON for ``review``."""
    doc: VerifyAnswer = {"authenticated": review.authenticated}
    if not review.authenticated:
        doc["reason"] = review.detail or review.reason
        doc["reasonCode"] = review.reason
        if review.hint:
            doc["hint"] = review.hint
    if review.clusters:
        doc["clusters"] = list(review.clusters)
    ident = review.identity
    if ident is not None:
        doc["identity"] = {
            "arn": ident.arn,
            "canonicalArn": ident.canonical_arn,
            "accountId": ident.account_id,
            "principalId": ident.principal_id,
            "sessionName": ident.session_name,
            "accessKeyId": ident.access_key_id,
            "sourceIdentity": review.source_identity,
            "sourceAccessKeyId": review.source_access_key_id,
            "sourceJti": review.source_jti,
        }
    if review.user is not None:
        doc["kubernetes"] = {
            "username": review.user.username,
            "uid": review.user.uid,
            "groups": list(review.user.groups),
            "extra": {k: list(v) for k, v in review.user.extra.items()},
        }
    if review.rules:
        doc["matchedRule"] = _rule_doc(review.rules[0])
        doc["contributingRules"] = [_rule_doc(r) for r in review.rules]
    if review.token is not None:
        t = review.token
        doc["token"] = {
            "iss": t.iss,
            "aud": list(t.aud),
            "exp": t.exp,
            "expiresAt": iso_utc(t.exp),
            "kid": t.kid,
            "verified": t.verified,
        }
    return doc


# --------------------------------------------------------------------------- helpers


def _shown(value: object) -> str | None:
    """A string from an unverified token, redacted and bounded; None for anything else."""
    if not isinstance(value, str):
        return None
    clean = "".join(c if c.isprintable() else "?" for c in redact(value))
    return clean if len(clean) <= _SHOWN else clean[: _SHOWN - 1] + "…"


def _segment(text: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def unverified_info(token: str) -> TokenInfo | None:
    """What the token's header and claims say, without checking anything; None if unreadable.

    For display only (/verify of a refused token): nothing here is trusted.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_SIZE or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header, claims = _segment(parts[0]), _segment(parts[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    exp = claims.get("exp")
    # Compared, not math.isfinite()d: an unverified exp of 10**400 overflows a float.
    exp_int = (
        math.floor(exp)
        if isinstance(exp, int | float)
        and not isinstance(exp, bool)
        and 0 <= exp <= MAX_NUMERIC_DATE
        else None
    )
    return TokenInfo(
        iss=_shown(claims.get("iss")),
        aud=tuple(s for s in (_shown(a) for a in auds[:16]) if s is not None),
        exp=exp_int,
        kid=_shown(header.get("kid")),
        verified=False,
    )


def _claims(token: str) -> dict[str, Any]:
    """The claims segment as a dict (unverified), or {}."""
    parts = token.split(".")
    claims = _segment(parts[1]) if len(parts) == 3 and len(token) <= MAX_TOKEN_SIZE else None
    return claims if isinstance(claims, dict) else {}


def describe_clusters(clusters: Collection[str]) -> str:
    return ", ".join(sorted(clusters))


def _list(values: Collection[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _principal_detail(store: Store, claims: Mapping[str, Any]) -> str | None:
    """Why the principal of a token refused with ``disabled`` is refused, in words."""
    principal_id = claims.get("principal_id")
    key_id = claims.get("access_key_id") or claims.get("source_access_key_id")
    source = claims.get("source_identity")
    # sub is the canonical ARN: the role of a role session, which is what was deleted
    arn = _shown(claims.get("sub")) or _shown(claims.get("arn")) or "the principal"
    if not isinstance(principal_id, str):
        return None
    jti = claims.get("jti")
    facts = store.review_facts(
        jti if isinstance(jti, str) else "",
        principal_id,
        key_id if isinstance(key_id, str) else None,
        source_identity=source if isinstance(source, str) else None,
    )
    refusal = facts.refusal
    if refusal == "source_user_disabled":
        return f"user {facts.source_user_name}, which this session started from, is disabled"
    if refusal == "source_deleted":
        return f"{_shown(source)}, which this session started from, no longer exists"
    if refusal == "user_disabled":
        if facts.user_name is None:
            return f"{arn} no longer exists"
        return f"user {facts.user_name} is disabled"
    if refusal == "access_key_inactive":
        return f"access key {_shown(key_id)} is inactive"
    if refusal == "access_key_deleted":
        return f"access key {_shown(key_id)} no longer exists"
    if refusal == "principal_deleted":
        return f"{arn} no longer exists"
    return None


def _refusal_detail(
    error: TokenError,
    token: str,
    *,
    store: Store,
    policy: IssuerPolicy,
    clusters: Collection[str],
    info: TokenInfo | None,
) -> str:
    """The precise reason for a token error, in words (never the token)."""
    code = error.code
    if code == "expired" and info is not None and info.exp is not None:
        return f"token expired at {iso_utc(info.exp)}"
    if code == "wrong_audience":
        aud = _list(info.aud) if info is not None else "of the token"
        if set(clusters) == set(policy.cluster_ids):
            return (
                f"audience {aud} is not a cluster this server serves"
                f" ({describe_clusters(policy.cluster_ids)})"
            )
        accepted = describe_clusters(clusters)
        return f"audience {aud} is not among the clusters accepted for this request ({accepted})"
    if code == "unknown_kid":
        kid = info.kid if info is not None and info.kid is not None else "(none)"
        retired = "retired" in error.message
        return f"unknown key id {kid}" + (": the key is retired" if retired else "")
    if isinstance(error, TokenSourceRevoked):
        source_jti = _shown(_claims(token).get("source_jti"))
        return f"the token this session was minted from has been revoked (jti {source_jti})"
    if code == "revoked":
        jti = _shown(_claims(token).get("jti"))
        return f"token revoked (jti {jti})" if jti else "token revoked"
    if isinstance(error, TokenPrincipalRefused):
        return _principal_detail(store, _claims(token)) or error.message
    if code == "malformed":
        return f"malformed token: {error.message}"
    if code == "not_yet_valid":
        return f"token not valid yet: {error.message}"
    if code == "bad_signature":
        return f"bad signature: {error.message}"
    if code == "bad_algorithm":
        return f"algorithm refused: {error.message}"
    if code == "invalid_claims":
        return f"invalid claims: {error.message}"
    return error.message


def identity_of(principal: Principal) -> Identity:
    """The mapping's view of a token's principal (verified, or about to be minted)."""
    return Identity(
        arn=principal.arn,
        canonical_arn=principal.canonical_arn,
        account_id=principal.account_id,
        principal_id=principal.principal_id,
        session_name=principal.session_name,
        access_key_id=principal.access_key_id,
    )


def _is_user(identity: Identity, partition: str) -> bool:
    if identity.session_name is not None:
        return False
    return _is_user_arn(identity.arn, partition)


@functools.lru_cache(maxsize=4096)  # a review per request, for the same few principals
def _is_user_arn(arn: str, partition: str) -> bool:
    try:
        parsed = arns.parse_principal(arn, partitions=arns.KNOWN_PARTITIONS | {partition})
    except MalformedArn:
        return False
    return parsed.kind == "user"


# --------------------------------------------------------------------------- review


def review_token(
    token: str,
    *,
    store: Store,
    keys: KeySet,
    policy: IssuerPolicy,
    mapping: MappingFile,
    clusters: Collection[str],
    now: float,
    mapping_note: str | None = None,
) -> Review:
    """The verdict on ``token`` for a caller speaking for ``clusters`` (see the module doc).

    ``clusters`` must be non-empty, and served (``policy.cluster_ids``).
    ``mapping_note`` is added to the reason when no rule matched (e.g. that no
    mapping file could be loaded, so the mapping in use is empty).
    Raises ``StoreUnavailable`` when the store cannot be asked; every other
    outcome is a :class:`Review`.
    """
    if not clusters:
        raise ValueError("review_token needs at least one cluster to check the audience against")
    try:
        verified, facts = verify_token_facts(
            store, keys, policy, token, audiences=clusters, now=now
        )
    except TokenError as e:
        info = unverified_info(token)
        return Review(
            authenticated=False,
            reason=e.code,
            detail=_refusal_detail(
                e, token, store=store, policy=policy, clusters=clusters, info=info
            ),
            hint=e.hint,
            token=info,
        )

    identity = identity_of(verified.principal)
    token_clusters = tuple(a for a in verified.audiences if a in set(clusters))
    info = TokenInfo(
        iss=verified.claims.get("iss"),
        aud=tuple(verified.audiences),
        exp=verified.expires_at,
        kid=verified.kid,
        verified=True,
    )
    mapped = map_identity(
        identity,
        token_clusters,
        store=store,
        policy=policy,
        mapping=mapping,
        mapping_note=mapping_note,
        facts=facts,
    )
    principal = verified.principal
    return replace(
        mapped,
        expires_at=verified.expires_at,
        token=info,
        source_identity=principal.source,
        source_access_key_id=principal.source_access_key_id,
        source_jti=principal.source_jti,
    )


def map_identity(
    identity: Identity,
    clusters: tuple[str, ...],
    *,
    store: Store,
    policy: IssuerPolicy,
    mapping: MappingFile,
    mapping_note: str | None = None,
    facts: ReviewFacts | None = None,
) -> Review:
    """Steps 2-4 of the module doc: the Kubernetes user of a verified ``identity``.

    ``clusters`` are the clusters its token is (or will be) for. The webhook
    runs this on every token it verified; with ``embedKubernetesClaims`` the
    token endpoint runs it at mint time for the requested audience, so the
    ``k8s_*`` claims are exactly what the webhook would answer for that token.
    The :class:`Review` has no token information (the caller adds it).
    ``facts``, the store's ``review_facts`` for ``identity`` read while
    verifying its token, gives the user's groups without asking the store again.
    Raises ``StoreUnavailable`` when the store cannot be asked.
    """
    # Access entries: those of the first cluster the token is for, from the
    # worker's snapshot, re-read only when review_facts saw a new access version.
    snapshot = store.access_snapshot(facts.access_version if facts is not None else None)
    wrong_file = _file_refusal(identity, clusters, snapshot=snapshot, mapping=mapping)
    if wrong_file is not None:
        return wrong_file
    refused = _refused(identity, clusters)

    group_arns: list[str] = []
    if _is_user(identity, policy.partition):
        if facts is not None:
            if facts.user_name is None:  # a user ARN whose principal id is no user
                return replace(
                    refused, reason="disabled", detail=f"{identity.arn} no longer exists"
                )
            group_arns = list(facts.group_arns)
        else:
            try:
                user = store.get_user_by_id(identity.principal_id)
            except NoSuchEntity:  # deleted between the token check and now
                return replace(
                    refused, reason="disabled", detail=f"{identity.arn} no longer exists"
                )
            group_arns = [g.arn for g in store.list_groups_for_user(user.account_id, user.name)]
    return _resolved(
        identity,
        clusters,
        snapshot=snapshot,
        mapping=mapping,
        group_arns=group_arns,
        mapping_note=mapping_note,
    )


def map_snapshot(
    identity: Identity,
    clusters: tuple[str, ...],
    *,
    snapshot: AccessSnapshot,
    mapping: MappingFile,
    group_arns: Sequence[str] = (),
    mapping_note: str | None = None,
) -> Review:
    """:func:`map_identity` without the store: ``snapshot`` gives the access entries and
    ``group_arns`` the IAM groups of a user (ignored for anything else).

    The same steps in the same order (it is what :func:`map_identity` runs once it
    has read the store), so the access explorer (:mod:`authbridge.explain`) answers
    exactly what the webhook would.
    """
    wrong_file = _file_refusal(identity, clusters, snapshot=snapshot, mapping=mapping)
    if wrong_file is not None:
        return wrong_file
    return _resolved(
        identity,
        clusters,
        snapshot=snapshot,
        mapping=mapping,
        group_arns=group_arns,
        mapping_note=mapping_note,
    )


def _refused(identity: Identity, clusters: tuple[str, ...]) -> Review:
    return Review(
        authenticated=False,
        reason=REASON_NOT_MAPPED,
        identity=identity,
        clusters=clusters,
    )


def _entry_of(
    identity: Identity, clusters: tuple[str, ...], snapshot: AccessSnapshot
) -> tuple[str | None, AuthenticationMode, AccessEntry | None]:
    cluster = clusters[0] if clusters else None
    mode = snapshot.mode(cluster) if cluster is not None else "CONFIG_MAP"
    entry = snapshot.entry_for(cluster, identity.principal_id) if cluster is not None else None
    return cluster, mode, entry


def _file_refusal(
    identity: Identity,
    clusters: tuple[str, ...],
    *,
    snapshot: AccessSnapshot,
    mapping: MappingFile,
) -> Review | None:
    """The refusal when the file decides and is another cluster's, else None."""
    _, mode, entry = _entry_of(identity, clusters, snapshot)
    uses_file = mode == "CONFIG_MAP" or (mode == "API_AND_CONFIG_MAP" and entry is None)
    if uses_file and mapping.cluster_id is not None and mapping.cluster_id not in clusters:
        return replace(
            _refused(identity, clusters),
            detail=f"no mapping rule matched {identity.canonical_arn}: the mapping"
            f" {mapping.source} is for cluster {mapping.cluster_id}, this token for"
            f" {describe_clusters(clusters)}",
            hint="use the mapping of this cluster, or a token for its cluster id",
        )
    return None


def _resolved(
    identity: Identity,
    clusters: tuple[str, ...],
    *,
    snapshot: AccessSnapshot,
    mapping: MappingFile,
    group_arns: Sequence[str],
    mapping_note: str | None,
) -> Review:
    """Step 4 of the module doc, the entries of ``snapshot`` and the file by the mode."""
    cluster, mode, entry = _entry_of(identity, clusters, snapshot)
    refused = _refused(identity, clusters)
    entry_policies = (
        snapshot.policies_for(cluster, identity.principal_id)
        if entry is not None and cluster is not None
        else ()
    )
    resolution = resolve_access(
        mapping, identity, group_arns, mode=mode, entry=entry, entry_policies=entry_policies
    )
    if resolution.user is None:
        detail = resolution.reason or f"no mapping rule matched {identity.canonical_arn}"
        hint = (
            "create an access entry for it (authbridge access create-entry)"
            if mode == "API"
            else "add a rule for it to the mapping (authbridge mapping check shows the"
            " rules), or an access entry (authbridge access create-entry)"
        )
        return replace(
            refused,
            detail=f"{detail}; {mapping_note}" if mapping_note and mode != "API" else detail,
            hint=hint,
            rules=resolution.rules,
            access_version=snapshot.version,
        )

    return Review(
        authenticated=True,
        reason=REASON_OK,
        identity=identity,
        user=resolution.user,
        rules=resolution.rules,
        clusters=clusters,
        access_version=snapshot.version,
    )
