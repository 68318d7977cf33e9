"""Minting and verifying authbridge JWTs: pure functions, values in and values out.

Nothing here does I/O. Keys come in as a loaded :class:`~authbridge.keys.KeySet`
(so no key is parsed per call), the clock comes in as ``now``, and revocation
and principal status come in as callbacks, or are handed to :func:`check_status`
by a caller that reads both at once.

The signature is checked with ``cryptography`` on the segments
:func:`verify` has already split and strictly decoded; PyJWT only mints.

A token is a compact JWS (RFC 7515 §7.1) carrying a JWT (RFC 7519)::

    header  {"alg": "RS256" | "ES256", "kid": <RFC 7638 thumbprint>, "typ": "JWT"}
    claims  iss, sub (canonical ARN), aud, exp, iat, nbf, jti,
            arn (session ARN), account, principal_id,
            session_name (role sessions), access_key_id (when minted from a key),
            source_identity, source_jti, source_access_key_id (see below)

Source identity (DESIGN.md, "Audiences"): every token names what it started
from. ``source_identity`` is the unique id of the human or workload (a user's
``AIDA…``; a user token's own ``principal_id``; for a break-glass role session
the role's own ``AROA…`` id). A role session also carries ``source_jti``, the
token it was exchanged from (when it was), and ``source_access_key_id``, the
access key behind it (when there was one): ``access_key_id`` stays the key the
principal itself signed with, so mapping templates see what they always saw.
:func:`mint` fills ``source_identity`` in for a user and refuses a role
session without one; :func:`verify` refuses a role session without one (one
minted before source identities existed) and a user token naming another
source. Whether the source is still good is the store's to say
(:func:`check_status`).

:func:`verify` refuses, in this order, each with its own
:class:`~authbridge.errors.TokenError` subclass (whose ``code`` is the reason
label for logs and metrics):

    too large / not compact JWS / crit / foreign typ   TokenMalformed
    alg not RS256 or ES256 (none, HS*, PS*, …)         TokenAlgorithmRefused
    kid missing or not published at ``now``            TokenUnknownKey
    alg is not the algorithm of that key               TokenAlgorithmRefused
    signature                                          TokenBadSignature
    payload not a JSON object, or a claim name twice   TokenMalformed
    claim missing, of the wrong type or out of bounds  TokenClaimsInvalid
    (a lone surrogate, a control character, a nested
    object, an absurd number), iss, lifetime
    aud names none of the accepted audiences           TokenWrongAudience
    exp (+ leeway) passed                              TokenExpired
    nbf / iat (− leeway) in the future                 TokenNotYetValid
    jti revoked                                        TokenRevoked
    source_jti revoked                                 TokenSourceRevoked (a TokenRevoked)
    principal or access key refused                    TokenPrincipalRefused

Messages never contain the token itself; values taken from an unverified
header are shortened and quoted.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authbridge.audit import redact
from authbridge.errors import (
    TokenAlgorithmRefused,
    TokenBadSignature,
    TokenClaimsInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenPrincipalRefused,
    TokenRevoked,
    TokenSourceRevoked,
    TokenUnknownKey,
    TokenWrongAudience,
)
from authbridge.keys import ALGORITHMS, KeySet, SigningKey

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_CLAIM_CHARS",
    "MAX_LEEWAY",
    "MAX_NUMERIC_DATE",
    "MAX_TOKEN_SIZE",
    "REGISTERED_CLAIMS",
    "REQUIRED_CLAIMS",
    "SOURCE_CLAIMS",
    "MintedToken",
    "Principal",
    "VerifiedToken",
    "check_status",
    "mint",
    "verify",
]

DEFAULT_LIFETIME = 900  # seconds (15 minutes), as EKS tokens
MAX_LEEWAY = 60  # seconds of clock skew tolerated on exp/nbf/iat, never more
MAX_TOKEN_SIZE = 8192  # bytes; checked before any decoding
JTI_BYTES = 16  # 128 bits of randomness

REQUIRED_CLAIMS: tuple[str, ...] = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "arn",
    "account",
    "principal_id",
)
# Claims authbridge sets itself; ``extra_claims`` may not override any of them.
SOURCE_CLAIMS: tuple[str, ...] = ("source_identity", "source_jti", "source_access_key_id")
REGISTERED_CLAIMS: frozenset[str] = (
    frozenset(REQUIRED_CLAIMS) | {"session_name", "access_key_id"} | set(SOURCE_CLAIMS)
)
_STRING_CLAIMS = ("iss", "sub", "jti", "arn", "account", "principal_id")
# "sid": the sign-in session a token derives from (authbridge.iam.sessions), checked
# against the store with everything else; set by the minting caller as an extra claim.
_OPTIONAL_STRING_CLAIMS = ("session_name", "access_key_id", *SOURCE_CLAIMS, "sid")
_ALL_STRING_CLAIMS = (*_STRING_CLAIMS, *_OPTIONAL_STRING_CLAIMS)
_TIME_CLAIMS = ("exp", "iat", "nbf")
# Bounds of a claim value: a token authbridge signs never comes near them, so a
# value past one is refused as invalid claims (never a 500 further on).
MAX_CLAIM_CHARS = 2048  # characters of a string claim (IAM ARNs are at most 2048)
MAX_AUDIENCES = 64  # entries of an "aud" list
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z
# Characters no claim authbridge reads may hold: C0 and C1 controls, DEL, and lone
# surrogates, which JSON's \u escapes can carry but no UTF-8 encoder (the store's
# driver, a response) can write.
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# RFC 7515 §2: base64url without padding. The signature segment may be empty
# (an unsecured JWS, RFC 7515 §A.5) so that `alg: none` is refused as such.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]*")

# RFC 7518 §3.3 (RS256) and §3.4 (ES256): stateless parameter objects, made once.
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_COORDINATE = 32  # bytes of R and of S in an ES256 signature (RFC 7518 §3.4)

# Reasons a ``check_principal`` hook may give, in words for people.
_REFUSALS = {
    "user_disabled": "the user is disabled",
    "user_deleted": "the user no longer exists",
    "role_deleted": "the role no longer exists",
    "principal_deleted": "the principal no longer exists",
    "no_such_principal": "the principal no longer exists",
    "access_key_inactive": "the access key is inactive",
    "access_key_deleted": "the access key no longer exists",
    "disabled": "the principal is disabled",
    "source_user_disabled": "the user this session started from is disabled",
    "source_deleted": "the identity this session started from no longer exists",
}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for, in the AWS shapes (docs/architecture.md, "Identities")."""

    arn: str  # session ARN: user ARN, or arn:<p>:sts::<acct>:assumed-role/<Role>/<session>
    canonical_arn: str  # goes in `sub`: user ARN or role ARN (with its path)
    account_id: str
    principal_id: str  # AIDA… for users; "<AROA…>:<session>" for role sessions
    session_name: str | None = None
    access_key_id: str | None = None
    # Where the session started (see the module docstring); None: not recorded.
    source_identity: str | None = None  # AIDA… of the user (a user token: its own id)
    source_jti: str | None = None  # the token a role session was exchanged from
    source_access_key_id: str | None = None  # the access key behind a role session

    @property
    def source(self) -> str:
        """The unique id the session started from: ``source_identity``, or its own id."""
        return self.source_identity or self.principal_id

    @property
    def source_key(self) -> str | None:
        """The access key whose status decides this token: its own, or its source's."""
        return self.access_key_id or self.source_access_key_id


@dataclass(frozen=True)
class MintedToken:
    """A freshly signed token. ``repr``/``str`` never show the token itself."""

    token: str = field(repr=False)
    jti: str
    issued_at: int
    expires_at: int
    kid: str
    claims: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check, with the principal rebuilt from its claims."""

    claims: dict[str, Any] = field(repr=False)
    principal: Principal
    kid: str
    alg: str
    audiences: list[str]
    expires_at: int
    issued_at: int
    jti: str


# --------------------------------------------------------------------------- helpers


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    """Strict base64url (RFC 7515 §2): alphabet only, no padding, canonical encoding."""
    if not _SEGMENT_RE.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if _b64url_encode(data) != segment:
        # Unused trailing bits set: another spelling of the same bytes.
        raise ValueError("not canonical base64url")
    return data


class _DuplicateMember(ValueError):
    """A JSON object names a member twice."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 (header) and RFC 7519 §4 (claims) let a verifier reject
    # duplicate names; we do, so no two parsers can disagree on which one counts.
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateMember("duplicate member")
    return out


# One decoder for every header and payload: json.loads(..., object_pairs_hook=...)
# would build a new one per call.
_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _show(value: object) -> str:
    """An attacker-supplied value, quoted and shortened, for an error message.

    Redacted before it is cut (:func:`authbridge.audit.redact`), so a secret
    cut short never escapes the rule by no longer looking like one.
    """
    text = redact(repr(value))
    return text if len(text) <= 48 else text[:45] + "..."


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return str(ts)


def _audience_list(audience: str | Sequence[str]) -> list[str]:
    auds = [audience] if isinstance(audience, str) else list(audience)
    out: list[str] = []
    for a in auds:
        if not isinstance(a, str) or not a:
            raise ValueError("every audience must be a non-empty string")
        if a not in out:
            out.append(a)
    if not out:
        raise ValueError("at least one audience is required")
    return out


# --------------------------------------------------------------------------- mint


def mint(
    principal: Principal,
    *,
    keys: KeySet,
    issuer: str,
    audience: str | Sequence[str],
    lifetime: int = DEFAULT_LIFETIME,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> MintedToken:
    """Sign a token for ``principal`` with the key active at ``now``.

    ``lifetime`` is in seconds and may not exceed ``keys.max_token_lifetime``
    (the window for which a superseded key stays published, so every token it
    signed can be verified until it expires). ``aud`` is a string for one
    audience and a list for several (RFC 7519 §4.1.3).
    """
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
        raise ValueError("lifetime must be a positive number of seconds")
    if lifetime > keys.max_token_lifetime:
        raise ValueError(
            f"lifetime {lifetime} s exceeds the maximum token lifetime {keys.max_token_lifetime} s"
        )
    if not issuer:
        raise ValueError("issuer must be a non-empty string")
    for name in ("arn", "canonical_arn", "account_id", "principal_id"):
        if not getattr(principal, name):
            raise ValueError(f"principal.{name} must be a non-empty string")
    auds = _audience_list(audience)
    source_identity = principal.source_identity
    if principal.session_name is None:
        source_identity = source_identity or principal.principal_id
    elif not source_identity:
        raise ValueError("a role session must name its source_identity")
    extras = dict(extra_claims or {})
    clash = sorted(REGISTERED_CLAIMS & extras.keys())
    if clash:
        raise ValueError(f"extra_claims may not set {', '.join(clash)}")

    ts = time.time() if now is None else now
    key = keys.signing_key(ts)
    issued_at = int(ts)
    expires_at = issued_at + lifetime
    jti = secrets.token_urlsafe(JTI_BYTES)
    # RFC 7519 §4.1: registered claims, then authbridge's own.
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": principal.canonical_arn,
        "aud": auds[0] if len(auds) == 1 else auds,
        "exp": expires_at,
        "iat": issued_at,
        "nbf": issued_at,
        "jti": jti,
        "arn": principal.arn,
        "account": principal.account_id,
        "principal_id": principal.principal_id,
    }
    if principal.session_name is not None:
        claims["session_name"] = principal.session_name
    if principal.access_key_id is not None:
        claims["access_key_id"] = principal.access_key_id
    claims["source_identity"] = source_identity
    if principal.source_jti is not None:
        claims["source_jti"] = principal.source_jti
    if principal.source_access_key_id is not None:
        claims["source_access_key_id"] = principal.source_access_key_id
    claims.update(extras)

    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": "JWT"},
    )
    if len(token) > MAX_TOKEN_SIZE:
        raise ValueError(
            f"the token would be {len(token)} bytes, over the {MAX_TOKEN_SIZE} that verify accepts"
        )
    return MintedToken(
        token=token,
        jti=jti,
        issued_at=issued_at,
        expires_at=expires_at,
        kid=key.kid,
        claims=claims,
    )


# --------------------------------------------------------------------------- verify


def _parse_compact(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """A compact JWS (RFC 7515 §7.1) after checking its shape, each segment decoded once.

    Returns the JOSE header, the payload and signature bytes, and the signing
    input: the ASCII bytes of ``header.payload`` exactly as received (RFC 7515 §5.2).
    """
    if token.lstrip().startswith("{"):
        raise TokenMalformed(
            "JWS JSON serialization is not accepted (RFC 7515 §7.2)",
            hint="send the compact form header.payload.signature",
        )
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenMalformed(
            f"not a compact JWS: {len(segments)} segments instead of 3 (RFC 7515 §7.1)"
        )
    header_b64, payload_b64, signature_b64 = segments
    if not header_b64 or not payload_b64:
        raise TokenMalformed("not a compact JWS: empty header or payload (RFC 7515 §7.1)")
    try:
        raw_header = _b64url_decode(header_b64)
        payload = _b64url_decode(payload_b64)
        signature = _b64url_decode(signature_b64)
    except (ValueError, binascii.Error) as e:
        raise TokenMalformed("not a compact JWS: a segment is not base64url (RFC 7515 §2)") from e
    try:
        header = _JSON.decode(raw_header.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise TokenMalformed("the JOSE header is not valid JSON (RFC 7515 §4)") from e
    if not isinstance(header, dict):
        raise TokenMalformed("the JOSE header is not a JSON object (RFC 7515 §4)")
    # The caller checked the token is ASCII, so this is the received text byte for byte.
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    return header, payload, signature, signing_input


def _check_signature(key: SigningKey, signing_input: bytes, signature: bytes) -> None:
    """RFC 7515 §5.2 step 8 with ``key`` and only its own algorithm, or a TokenError.

    The key's type is checked against the algorithm here too (an RSA key for
    RS256, a P-256 key for ES256), so no key can ever be used under an
    algorithm of another kind, whatever the key set holds.
    """
    public_key = key.public_key
    try:
        if key.alg == "RS256" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signing_input, _PKCS1V15, _SHA256)
        elif (
            key.alg == "ES256"
            and isinstance(public_key, ec.EllipticCurvePublicKey)
            and isinstance(public_key.curve, ec.SECP256R1)
        ):
            # RFC 7518 §3.4: R || S, each exactly 32 bytes; anything else (a DER
            # signature included) is not an ES256 signature.
            if len(signature) != 2 * _P256_COORDINATE:
                raise InvalidSignature("not 64 bytes")
            der = encode_dss_signature(
                int.from_bytes(signature[:_P256_COORDINATE], "big"),
                int.from_bytes(signature[_P256_COORDINATE:], "big"),
            )
            public_key.verify(der, signing_input, _ECDSA_SHA256)
        else:
            raise TokenAlgorithmRefused(f"algorithm {key.alg} refused for key {key.kid}")
    except InvalidSignature as e:
        raise TokenBadSignature(f"the signature does not verify with key {key.kid}") from e


def _parse_claims(payload: bytes) -> dict[str, Any]:
    """The JWT claims set (RFC 7519 §7.2 step 10): a JSON object, each name once."""
    try:
        claims = _JSON.decode(payload.decode("utf-8"))
    except _DuplicateMember as e:
        # RFC 7519 §4: a parser must reject duplicates or keep the last one; we
        # reject, as for the header.
        raise TokenMalformed("the token payload repeats a claim name (RFC 7519 §4)") from e
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise TokenMalformed("the token payload is not a JSON object (RFC 7519 §7.2)") from e
    if not isinstance(claims, dict):
        raise TokenMalformed("the token payload is not a JSON object (RFC 7519 §7.2)")
    return claims


def _text_problem(value: str) -> str | None:
    """What keeps the string ``value`` from being a claim value, or ``None``."""
    if len(value) > MAX_CLAIM_CHARS:
        return f"at most {MAX_CLAIM_CHARS} characters"
    if _BAD_CHARS.search(value):
        return "well-formed text (no control characters, no lone surrogates)"
    return None


def _claim_problem(claims: Mapping[str, Any]) -> str | None:
    """What is wrong with the claims' presence, types or values, or ``None``.

    Strict, so that whatever a key of ours ever signed cannot break a later
    step (the store, a response, a log): each string claim authbridge reads
    is a non-empty string (not a number, list or object) of well-formed text
    and bounded length; each time claim is a number of seconds since the
    epoch, up to the year 9999; ``aud`` is a string or a bounded list of such
    strings.
    """
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            return f"the token has no {name!r} claim"
    # The text checks run once over every string claim together (this is on every
    # review's path); only a token that fails them is walked claim by claim, to name one.
    texts: list[str] = []
    for name in _ALL_STRING_CLAIMS:
        value = claims.get(name)
        if value is None and name in _OPTIONAL_STRING_CLAIMS:
            continue
        if not isinstance(value, str) or not value:
            return f"claim {name!r} must be a non-empty string"
        if len(value) > MAX_CLAIM_CHARS:
            return f"claim {name!r} must be at most {MAX_CLAIM_CHARS} characters"
        texts.append(value)
    if _BAD_CHARS.search("".join(texts)):
        for name in _ALL_STRING_CLAIMS:
            value = claims.get(name)
            problem = _text_problem(value) if isinstance(value, str) else None
            if problem:
                return f"claim {name!r} must be {problem}"
    for name in _TIME_CLAIMS:
        value = claims[name]
        # RFC 7519 §2 NumericDate: a JSON number. bool is an int subclass in
        # Python, and json.loads accepts NaN/Infinity (refused by the range, as
        # NaN compares false) and integers of any size (compared without
        # converting them to float, which would overflow).
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_NUMERIC_DATE
        ):
            return (
                f"claim {name!r} must be a number of seconds since the epoch,"
                f" 0 to {MAX_NUMERIC_DATE}"
            )
    aud = claims["aud"]
    # RFC 7519 §4.1.3: a string or an array of strings.
    auds = [aud] if isinstance(aud, str) else aud
    if (
        not isinstance(auds, list)
        or len(auds) > MAX_AUDIENCES
        or not all(isinstance(a, str) and _text_problem(a) is None for a in auds)
    ):
        return (
            f"claim 'aud' must be a string or a list of at most {MAX_AUDIENCES} strings"
            f" of well-formed text, each at most {MAX_CLAIM_CHARS} characters"
        )
    return None


def _source_problem(claims: Mapping[str, Any]) -> str | None:
    """What is wrong with the source claims of claims that are otherwise well-formed."""
    source = claims.get("source_identity")
    if claims.get("session_name") is not None:
        if source is None:
            # Minted before sessions recorded their source: nothing to check it against.
            return "the role session has no 'source_identity' claim; get a new token"
        return None
    if source is not None and source != claims["principal_id"]:
        return "claim 'source_identity' of a user token must be its own principal_id"
    return None


def verify(
    token: str,
    *,
    keys: KeySet,
    issuer: str,
    audiences: Collection[str],
    now: float | None = None,
    leeway: int = MAX_LEEWAY,
    max_size: int = MAX_TOKEN_SIZE,
    is_revoked: Callable[[str], bool] | None = None,
    check_principal: Callable[[str, str | None], str | None] | None = None,
) -> VerifiedToken:
    """Check ``token`` completely and return what it says, or raise a TokenError.

    ``audiences`` are the accepted audiences (cluster ids); the token must name
    at least one. ``leeway`` (0–60 s) absorbs clock skew on exp/nbf/iat.
    ``is_revoked(jti)`` and ``check_principal(principal_id, access_key_id)``
    run last, on a token that is otherwise valid; the latter returns ``None``
    to accept or a reason label such as ``"user_disabled"`` to refuse.
    """
    if isinstance(leeway, bool) or not 0 <= leeway <= MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
    accepted = {audiences} if isinstance(audiences, str) else set(audiences)
    if not accepted:
        raise ValueError("at least one accepted audience is required")
    ts = time.time() if now is None else now

    # Size first, before any decoding work an attacker could inflate.
    if not isinstance(token, str):
        raise TokenMalformed("the token is not a string")
    if len(token) > max_size:
        raise TokenMalformed(f"the token is {len(token)} bytes, over the {max_size} allowed")
    if not token.isascii():
        raise TokenMalformed("not a compact JWS: non-ASCII characters (RFC 7515 §7.1)")

    header, payload, signature, signing_input = _parse_compact(token)

    # RFC 7515 §4.1.11: an extension we do not understand must make us refuse,
    # and we understand none (so not RFC 7797 b64 either).
    if "crit" in header:
        raise TokenMalformed("the token has a 'crit' header; no JWS extensions are accepted")
    if "b64" in header:
        raise TokenMalformed("the token has a 'b64' header; unencoded payloads are not accepted")
    # RFC 7515 §4.1.9 / RFC 8725 §3.11: only plain JWTs, not other JWT types
    # (e.g. "at+jwt") that the same key might one day sign.
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise TokenMalformed(f"the token has type {_show(typ)}; only 'JWT' is accepted")

    # RFC 8725 §3.1: an allowlist, and (below) the algorithm bound to the key,
    # never taken from the token. Refuses none, HS* (key confusion), PS*, ...
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise TokenAlgorithmRefused(
            f"algorithm {_show(alg)} is not accepted; only {', '.join(ALGORITHMS)}"
        )

    # RFC 7515 §4.1.4: kid selects the key, and only published keys are candidates.
    kid = header.get("kid")
    if kid is None:
        raise TokenUnknownKey("the token has no 'kid' header")
    key = keys.verification_key(kid, ts) if isinstance(kid, str) else None
    if key is None:
        known = keys.get(kid) if isinstance(kid, str) else None
        if known is not None:
            raise TokenUnknownKey(
                f"kid {known.kid} belongs to a retired signing key", hint="get a new token"
            )
        raise TokenUnknownKey(f"kid {_show(kid)} is not a published signing key")
    if alg != key.alg:
        raise TokenAlgorithmRefused(f"kid {key.kid} is an {key.alg} key; the token says {alg}")

    # One signature check, with the loaded key object and only its algorithm;
    # the claims are read only from a payload that it covers.
    _check_signature(key, signing_input, signature)
    claims = _parse_claims(payload)

    problem = _claim_problem(claims) or _source_problem(claims)
    if problem:
        raise TokenClaimsInvalid(problem)

    # RFC 7519 §4.1.1 and OIDC: the issuer is compared exactly, no normalisation.
    if claims["iss"] != issuer:
        raise TokenClaimsInvalid(
            f"issuer {_show(claims['iss'])} is not the expected issuer {issuer!r}"
        )

    # RFC 7519 §4.1.3: the token must be meant for us.
    aud = claims["aud"]
    token_auds: list[str] = [aud] if isinstance(aud, str) else list(aud)
    if not accepted.intersection(token_auds):
        raise TokenWrongAudience(
            f"the token is for audience {_show(token_auds)}, "
            f"accepted here: {', '.join(sorted(accepted))}",
            hint="get a token for this cluster id",
        )

    exp, iat, nbf = claims["exp"], claims["iat"], claims["nbf"]
    # RFC 7519 §4.1.4: refused on or after exp (plus leeway).
    if ts >= exp + leeway:
        raise TokenExpired(f"the token expired at {_iso(exp)}", hint="get a new token")
    # RFC 7519 §4.1.5: refused before nbf (minus leeway).
    if ts < nbf - leeway:
        raise TokenNotYetValid(
            f"the token is not valid before {_iso(nbf)}", hint="check the clocks of both machines"
        )
    if ts < iat - leeway:
        raise TokenNotYetValid(
            f"the token was issued in the future, at {_iso(iat)}",
            hint="check the clocks of both machines",
        )
    # A token outliving the time its key stays published after rotation could
    # not be verified to its end; no key of ours signs one, so refuse it.
    if exp - iat > keys.max_token_lifetime:
        raise TokenClaimsInvalid(
            f"the token lifetime ({exp - iat:.0f} s) exceeds the maximum "
            f"{keys.max_token_lifetime} s"
        )

    jti: str = claims["jti"]
    if is_revoked is not None and is_revoked(jti):
        raise _revoked(jti)

    principal = Principal(
        arn=claims["arn"],
        canonical_arn=claims["sub"],
        account_id=claims["account"],
        principal_id=claims["principal_id"],
        session_name=claims.get("session_name"),
        access_key_id=claims.get("access_key_id"),
        source_identity=claims.get("source_identity"),
        source_jti=claims.get("source_jti"),
        source_access_key_id=claims.get("source_access_key_id"),
    )
    if check_principal is not None:
        refusal = check_principal(principal.principal_id, principal.access_key_id)
        if refusal:
            raise _refused(principal.principal_id, refusal)

    return VerifiedToken(
        claims=claims,
        principal=principal,
        kid=key.kid,
        alg=key.alg,
        audiences=token_auds,
        expires_at=math.floor(exp),
        issued_at=math.floor(iat),
        jti=jti,
    )


def check_status(
    verified: VerifiedToken, *, revoked: bool, refusal: str | None, source_revoked: bool = False
) -> None:
    """The last checks of :func:`verify`, on a status the caller read itself.

    For a caller that reads revocation and principal status in one go after
    :func:`verify` without hooks passed: raises exactly what ``verify`` with
    ``is_revoked`` and ``check_principal`` answering ``revoked`` and
    ``refusal`` would have raised, in the same order; ``source_revoked`` (the
    token's ``source_jti`` is revoked) comes right after ``revoked``.
    """
    if revoked:
        raise _revoked(verified.jti)
    if source_revoked:
        source_jti = verified.principal.source_jti
        raise TokenSourceRevoked(
            f"token {verified.jti} was minted from token {source_jti}, which has been revoked",
            hint="get a new token",
        )
    if refusal:
        raise _refused(verified.principal.principal_id, refusal)


def _revoked(jti: str) -> TokenRevoked:
    return TokenRevoked(f"token {jti} has been revoked", hint="get a new token")


def _refused(principal_id: str, refusal: str) -> TokenPrincipalRefused:
    reason = _REFUSALS.get(refusal, refusal.replace("_", " "))
    return TokenPrincipalRefused(f"principal {principal_id} refused ({refusal}): {reason}")
