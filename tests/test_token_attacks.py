"""Named security regression tests for token verification: one test per attack.

Every attack token is forged by hand here (base64url JSON, signed with
``cryptography``/``hmac``), never with ``mint``, so a bug in minting cannot hide a
bug in verification. Each test asserts the specific refusal (error class and,
where several defences overlap, the message), so it fails if its own defence is
removed.

Covers: alg none; HS256 signed with the RSA public key (key confusion); an
algorithm that is not its key's; unknown, missing and retired kid; tampered
payload and signature; wrong issuer (incl. trailing slash); missing and wrong
audience; expiry and nbf at the leeway boundary; oversized tokens; JWS JSON
serialization and other non-compact shapes; each required claim missing;
revoked jti; disabled principal; crit header; claim type confusion; foreign
typ; duplicate header members; keys embedded in the header are ignored; an
ES256 signature of the wrong length (DER included); an RS256 signature over
another spelling of the header; duplicate claim names; payloads that are not a
JSON object (checked only once the signature holds); a key whose type does not
fit the algorithm it is listed under; and PyJWT as an oracle: over a table of
well-formed tokens with good and bad signatures, verify accepts exactly what
``jwt.decode`` with the same key and algorithm accepts.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from authbridge.errors import (
    TokenAlgorithmRefused,
    TokenBadSignature,
    TokenClaimsInvalid,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenPrincipalRefused,
    TokenRevoked,
    TokenUnknownKey,
    TokenWrongAudience,
)
from authbridge.keys import KeySet, SigningKey, generate_signing_key
from authbridge.tokens import REQUIRED_CLAIMS, verify

NOW = 1_700_000_000
ISSUER = "https://authbridge.example.com"
AUDIENCE = "prod"
MAX_LIFETIME = 43200

# --------------------------------------------------------------------------- forging kit


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def sign_with(private_key: Any, signing_input: bytes) -> bytes:
    """RS256 (RFC 7518 §3.3) or ES256 (RFC 7518 §3.4, raw R || S)."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    der = private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def forge(
    header: dict[str, Any],
    claims: dict[str, Any],
    private_key: Any = None,
    *,
    raw_header: str | None = None,
) -> str:
    """A compact JWS; signed with ``private_key`` if given, else an empty signature."""
    signing_input = f"{raw_header or segment(header)}.{segment(claims)}"
    signature = sign_with(private_key, signing_input.encode()) if private_key else b""
    return f"{signing_input}.{b64(signature)}"


def header_for(key: SigningKey, **extra: Any) -> dict[str, Any]:
    return {"alg": key.alg, "kid": key.kid, "typ": "JWT", **extra}


def good_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "arn:aws:iam::111122223333:user/alice",
        "aud": AUDIENCE,
        "exp": NOW + 900,
        "iat": NOW,
        "nbf": NOW,
        "jti": "c3VwZXItcmFuZG9tLWp0aQ",
        "arn": "arn:aws:iam::111122223333:user/alice",
        "account": "111122223333",
        "principal_id": "AIDAEXAMPLEALICE00001",
        "access_key_id": "AKIAEXAMPLEKEY000001",
    }
    claims.update(changes)
    return claims


def valid_token(key: SigningKey, **changes: Any) -> str:
    return forge(header_for(key), good_claims(**changes), key.private_key)


def check(token: str, keys: KeySet, **kw: Any) -> Any:
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("audiences", [AUDIENCE])
    kw.setdefault("now", NOW + 1)
    return verify(token, keys=keys, **kw)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    """The active key."""
    return generate_signing_key("RS256", now=NOW - 500, activates_at=NOW - 500)


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    """A retiring key, still published."""
    return generate_signing_key("ES256", now=NOW - 1000, activates_at=NOW - 1000)


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys(rsa_key: SigningKey, ec_key: SigningKey) -> KeySet:
    ks = KeySet((rsa_key, ec_key), max_token_lifetime=MAX_LIFETIME)
    assert ks.states(NOW) == {rsa_key.kid: "active", ec_key.kid: "retiring"}
    return ks


def test_forged_tokens_are_valid_as_a_baseline(
    keys: KeySet, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    """Every attack below changes one thing in a token that otherwise verifies."""
    assert check(valid_token(rsa_key), keys).kid == rsa_key.kid
    assert check(valid_token(ec_key), keys).kid == ec_key.kid


# --------------------------------------------------------------------------- algorithm


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
@pytest.mark.parametrize("with_kid", [True, False])
@pytest.mark.parametrize("with_signature", [True, False])
def test_alg_none_refused(
    keys: KeySet, rsa_key: SigningKey, alg: str, with_kid: bool, with_signature: bool
) -> None:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if with_kid:
        header["kid"] = rsa_key.kid
    token = forge(header, good_claims(), rsa_key.private_key if with_signature else None)
    with pytest.raises(TokenAlgorithmRefused, match="not accepted"):
        check(token, keys)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("with_kid", [True, False])
def test_hs256_signed_with_public_key_refused(
    keys: KeySet, rsa_key: SigningKey, alg: str, with_kid: bool
) -> None:
    # The classic key confusion: a verifier that let the token pick the
    # algorithm would use the (public!) RSA key as an HMAC secret.
    public_pem = rsa_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if with_kid:
        header["kid"] = rsa_key.kid
    signing_input = f"{segment(header)}.{segment(good_claims())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(public_pem, signing_input.encode(), digest).digest()
    token = f"{signing_input}.{b64(mac)}"
    with pytest.raises(TokenAlgorithmRefused, match="not accepted"):
        check(token, keys)


@pytest.mark.parametrize("alg", ["PS256", "RS512", "ES384", "EdDSA"])
def test_other_algorithms_refused(keys: KeySet, rsa_key: SigningKey, alg: str) -> None:
    token = forge(header_for(rsa_key, alg=alg), good_claims(), rsa_key.private_key)
    with pytest.raises(TokenAlgorithmRefused, match="not accepted"):
        check(token, keys)


def test_algorithm_not_allowed_for_key(
    keys: KeySet, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    # ES256 header on the RSA kid, validly ES256-signed by another published key.
    token = forge(header_for(rsa_key, alg="ES256"), good_claims(), ec_key.private_key)
    with pytest.raises(TokenAlgorithmRefused, match="is an RS256 key; the token says ES256"):
        check(token, keys)
    # RS256 header on the EC kid, validly RS256-signed by another published key.
    token = forge(header_for(ec_key, alg="RS256"), good_claims(), rsa_key.private_key)
    with pytest.raises(TokenAlgorithmRefused, match="is an ES256 key; the token says RS256"):
        check(token, keys)


# --------------------------------------------------------------------------- kid


def test_unknown_kid_refused(
    keys: KeySet, rsa_key: SigningKey, attacker_key: rsa.RSAPrivateKey
) -> None:
    other = generate_signing_key("ES256", now=NOW - 10)
    for kid, private_key in (
        ("attacker-key-1", attacker_key),
        (other.kid, other.private_key),  # a real key, but not one of ours
        (rsa_key.kid.lower(), rsa_key.private_key),  # kids compare exactly
    ):
        alg = "ES256" if private_key is other.private_key else "RS256"
        token = forge({"alg": alg, "kid": kid, "typ": "JWT"}, good_claims(), private_key)
        with pytest.raises(TokenUnknownKey, match="not a published signing key"):
            check(token, keys)
    for odd in (42, ["x"], {"kid": rsa_key.kid}):
        token = forge({"alg": "RS256", "kid": odd}, good_claims(), rsa_key.private_key)
        with pytest.raises(TokenUnknownKey):
            check(token, keys)


def test_missing_kid_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    # Correctly signed by the active key: only the missing kid is wrong, so a
    # verifier that fell back to "try the active key" would accept it.
    for header in ({"alg": "RS256", "typ": "JWT"}, {"alg": "RS256", "kid": None}):
        token = forge(header, good_claims(), rsa_key.private_key)
        with pytest.raises(TokenUnknownKey, match="no 'kid'"):
            check(token, keys)


def test_retired_key_refused(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    explicitly = KeySet(
        (rsa_key, dataclasses.replace(ec_key, retired_at=NOW - 1)),
        max_token_lifetime=MAX_LIFETIME,
    )
    token = valid_token(ec_key)
    with pytest.raises(TokenUnknownKey, match="retired"):
        check(token, explicitly)
    # Retired by time: its successor activated more than max_token_lifetime ago.
    by_time = KeySet(
        (rsa_key, ec_key),
        max_token_lifetime=MAX_LIFETIME,
    )
    late = NOW - 500 + MAX_LIFETIME
    token = valid_token(ec_key, iat=late - 10, nbf=late - 10, exp=late + 100)
    with pytest.raises(TokenUnknownKey, match="retired"):
        check(token, by_time, now=late)
    assert check(token, by_time, now=late - 1).kid == ec_key.kid


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_tampered_payload_refused(
    keys: KeySet, rsa_key: SigningKey, ec_key: SigningKey, which: str
) -> None:
    key = rsa_key if which == "rsa" else ec_key
    header, _, signature = valid_token(key).split(".")
    for change in (
        {"arn": "arn:aws:iam::111122223333:role/Admin"},
        {"sub": "arn:aws:iam::111122223333:role/Admin"},
        {"exp": NOW + 10**6},
        {"aud": ["prod", "other"]},
    ):
        token = f"{header}.{segment(good_claims(**change))}.{signature}"
        with pytest.raises(TokenBadSignature):
            check(token, keys)


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_tampered_signature_refused(
    keys: KeySet, rsa_key: SigningKey, ec_key: SigningKey, which: str
) -> None:
    key = rsa_key if which == "rsa" else ec_key
    header, payload, signature = valid_token(key).split(".")
    raw = unb64(signature)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    for bad in (bytes(flipped), raw[:-1], raw + b"\x00", b"", b"\x00" * len(raw)):
        with pytest.raises(TokenBadSignature):
            check(f"{header}.{payload}.{b64(bad)}", keys)


def test_embedded_key_headers_are_ignored(
    keys: KeySet, rsa_key: SigningKey, attacker_key: rsa.RSAPrivateKey
) -> None:
    # RFC 8725 §3.10-ish: a token may not bring its own key (jwk, jku, x5u, x5c).
    nums = attacker_key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64(nums.n.to_bytes(256, "big")),
        "e": b64(nums.e.to_bytes(3, "big")),
    }
    for extra in (
        {"jwk": jwk},
        {"jku": "https://evil.example/jwks"},
        {"x5u": "https://evil.example/cert"},
    ):
        token = forge(header_for(rsa_key, **extra), good_claims(), attacker_key)
        with pytest.raises(TokenBadSignature):
            check(token, keys)


# --------------------------------------------------------------------------- iss / aud


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example.com",
        ISSUER + "/",  # trailing slash: not byte-identical
        ISSUER.upper(),
        "http://authbridge.example.com",
        ISSUER + " ",
        "",
    ],
)
def test_wrong_issuer_refused(keys: KeySet, rsa_key: SigningKey, iss: str) -> None:
    with pytest.raises(TokenClaimsInvalid, match="issuer|'iss'"):
        check(valid_token(rsa_key, iss=iss), keys)


def test_missing_audience_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    claims = good_claims()
    del claims["aud"]
    token = forge(header_for(rsa_key), claims, rsa_key.private_key)
    with pytest.raises(TokenClaimsInvalid, match="'aud'"):
        check(token, keys)
    # An empty list names no audience at all.
    with pytest.raises(TokenWrongAudience):
        check(valid_token(rsa_key, aud=[]), keys)


@pytest.mark.parametrize("aud", ["staging", ["staging", "dev"], "PROD", "prod ", ["prod-2"]])
def test_wrong_audience_refused(keys: KeySet, rsa_key: SigningKey, aud: Any) -> None:
    token = valid_token(rsa_key, aud=aud)
    with pytest.raises(TokenWrongAudience) as err:
        check(token, keys)
    message = str(err.value)
    assert "accepted here: prod" in message
    assert repr(aud if isinstance(aud, list) else [aud]) in message
    assert token.split(".")[2] not in message


# --------------------------------------------------------------------------- time


def test_expired_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    token = valid_token(rsa_key, iat=NOW - 900, nbf=NOW - 900, exp=NOW)
    # Within the 60 s leeway: accepted up to the last second...
    assert check(token, keys, now=NOW + 59).jti
    assert check(token, keys, now=NOW + 59.999).jti
    # ...and refused from exp + leeway on (RFC 7519 §4.1.4: "on or after").
    with pytest.raises(TokenExpired, match="expired at 2023-11-14T22:13:20\\+00:00"):
        check(token, keys, now=NOW + 60)
    with pytest.raises(TokenExpired):
        check(token, keys, now=NOW + 10_000)
    # Without leeway, exp itself is too late.
    assert check(token, keys, now=NOW - 1, leeway=0).jti
    with pytest.raises(TokenExpired):
        check(token, keys, now=NOW, leeway=0)


def test_nbf_in_future_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    token = valid_token(rsa_key, iat=NOW, nbf=NOW + 100, exp=NOW + 900)
    with pytest.raises(TokenNotYetValid, match="not valid before"):
        check(token, keys, now=NOW + 39)
    assert check(token, keys, now=NOW + 40).jti  # within the leeway
    with pytest.raises(TokenNotYetValid):
        check(token, keys, now=NOW + 99, leeway=0)
    # iat in the future is as suspicious as nbf.
    future = valid_token(rsa_key, iat=NOW + 600, nbf=NOW, exp=NOW + 900)
    with pytest.raises(TokenNotYetValid, match="issued in the future"):
        check(future, keys, now=NOW)


def test_lifetime_beyond_maximum_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    # A key stays published max_token_lifetime after rotation; longer tokens are not ours.
    token = valid_token(rsa_key, exp=NOW + MAX_LIFETIME + 1)
    with pytest.raises(TokenClaimsInvalid, match="lifetime"):
        check(token, keys)


# --------------------------------------------------------------------------- shape


def test_oversized_token_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    big = valid_token(rsa_key, pad="x" * 9000)  # correctly signed, just too big
    assert len(big) > 8192
    with pytest.raises(TokenMalformed, match="over the 8192 allowed"):
        check(big, keys)
    assert check(big, keys, max_size=len(big)).jti  # the only problem was size
    # The size is checked before any decoding: garbage of that size says "size".
    with pytest.raises(TokenMalformed, match="over the 8192 allowed"):
        check("!" * 8193, keys)


def test_json_serialization_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    header, payload, signature = valid_token(rsa_key).split(".")
    general = {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
    flattened = {"payload": payload, "protected": header, "signature": signature}
    for form in (general, flattened):
        for text in (json.dumps(form), " " + json.dumps(form, indent=2)):
            with pytest.raises(TokenMalformed, match="JSON serialization"):
                check(text, keys)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda h, p, s: f"{h}.{p}", id="two-parts"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}.{s}", id="four-parts"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}.", id="trailing-dot"),
        pytest.param(lambda h, p, s: f"{h}==.{p}.{s}", id="padding"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s[:-2]}+/", id="base64-not-url"),
        pytest.param(lambda h, p, s: f"{h}.{p}!.{s}", id="bad-character"),
        pytest.param(lambda h, p, s: f"{h}.{p[:-1]}.{s}", id="bad-length"),
        pytest.param(lambda h, p, s: f".{p}.{s}", id="empty-header"),
        pytest.param(lambda h, p, s: f"{h}..{s}", id="empty-payload"),
        pytest.param(lambda h, p, s: f"{segment(['RS256'])}.{p}.{s}", id="header-list"),
        pytest.param(lambda h, p, s: f"{segment('RS256')}.{p}.{s}", id="header-string"),
        pytest.param(lambda h, p, s: f"{b64(b'{nope')}.{p}.{s}", id="header-not-json"),
        pytest.param(lambda h, p, s: f"{b64(bytes([0xFF, 0xFE]))}.{p}.{s}", id="header-binary"),
        pytest.param(lambda h, p, s: f" {h}.{p}.{s}", id="leading-space"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}\n", id="trailing-newline"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}é", id="non-ascii"),
    ],
)
def test_not_compact_jws_refused(keys: KeySet, rsa_key: SigningKey, mangle: Any) -> None:
    h, p, s = valid_token(rsa_key).split(".")
    with pytest.raises(TokenMalformed):
        check(mangle(h, p, s), keys)


def test_non_canonical_base64_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    # Setting the unused low bits of the last character spells the same bytes
    # differently; only the canonical spelling is accepted.
    h, p, s = valid_token(rsa_key).split(".")
    assert len(s) % 4 == 2  # 256-byte signature: the last char carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = s[:-1] + alphabet[alphabet.index(s[-1]) ^ 0x01]
    assert unb64(twin) == unb64(s)
    with pytest.raises(TokenMalformed, match="base64url"):
        check(f"{h}.{p}.{twin}", keys)


def test_payload_not_a_json_object_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    signing_input = f"{segment(header_for(rsa_key))}.{segment(['not', 'an', 'object'])}"
    token = f"{signing_input}.{b64(sign_with(rsa_key.private_key, signing_input.encode()))}"
    with pytest.raises(TokenMalformed, match="payload"):
        check(token, keys)


def test_crit_header_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    extra: dict[str, Any]
    for extra in (
        {"crit": ["exp"], "exp": NOW + 900},
        {"crit": ["b64"], "b64": True},
        {"crit": []},
    ):
        token = forge(header_for(rsa_key, **extra), good_claims(), rsa_key.private_key)
        with pytest.raises(TokenMalformed, match="'crit'"):
            check(token, keys)


def test_foreign_typ_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    for typ in ("at+jwt", "JOSE", "logout+jwt", 1):
        token = forge(header_for(rsa_key, typ=typ), good_claims(), rsa_key.private_key)
        with pytest.raises(TokenMalformed, match="type"):
            check(token, keys)
    # RFC 7515 §4.1.9: media type names compare case-insensitively; typ is optional.
    assert check(forge(header_for(rsa_key, typ="jwt"), good_claims(), rsa_key.private_key), keys)
    no_typ = {"alg": "RS256", "kid": rsa_key.kid}
    assert check(forge(no_typ, good_claims(), rsa_key.private_key), keys)


def test_duplicate_header_member_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    raw = b64(f'{{"alg":"none","alg":"RS256","kid":"{rsa_key.kid}"}}'.encode())
    token = forge({}, good_claims(), rsa_key.private_key, raw_header=raw)
    with pytest.raises(TokenMalformed, match="JOSE header"):
        check(token, keys)


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_required_claims_refused(
    keys: KeySet, rsa_key: SigningKey, claim: str, how: str
) -> None:
    claims = good_claims()
    if how == "absent":
        del claims[claim]
    else:
        claims[claim] = None
    token = forge(header_for(rsa_key), claims, rsa_key.private_key)
    with pytest.raises(TokenClaimsInvalid, match=f"no '{claim}' claim"):
        check(token, keys)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", str(NOW + 900)),
        ("exp", True),
        ("exp", [NOW + 900]),
        ("exp", float("nan")),
        ("exp", float("inf")),
        ("iat", str(NOW)),
        ("nbf", {"t": NOW}),
        ("aud", {"prod": True}),
        ("aud", ["prod", 1]),
        ("aud", 1),
        ("iss", [ISSUER]),
        ("sub", ["arn:aws:iam::111122223333:user/alice"]),
        ("arn", {"arn": "arn:aws:iam::111122223333:role/Admin"}),
        ("jti", 12345),
        ("account", 111122223333),
        ("principal_id", ["AIDAEXAMPLEALICE00001"]),
        ("principal_id", ""),
        ("session_name", 5),
        ("access_key_id", ["AKIAEXAMPLEKEY000001"]),
    ],
)
def test_claim_type_confusion_refused(
    keys: KeySet, rsa_key: SigningKey, claim: str, value: Any
) -> None:
    token = valid_token(rsa_key, **{claim: value})
    with pytest.raises(TokenClaimsInvalid, match=f"'{claim}'"):
        check(token, keys)


# --------------------------------------------------------------------------- status hooks


def test_revoked_jti_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    revoked = {"revoked-jti-0000000001"}
    token = valid_token(rsa_key, jti="revoked-jti-0000000001")
    with pytest.raises(TokenRevoked, match="revoked-jti-0000000001"):
        check(token, keys, is_revoked=revoked.__contains__)
    assert check(valid_token(rsa_key), keys, is_revoked=revoked.__contains__).jti


def test_disabled_principal_refused(keys: KeySet, rsa_key: SigningKey) -> None:
    disabled = {"AIDAEXAMPLEALICE00001"}

    def check_principal(principal_id: str, access_key_id: str | None) -> str | None:
        return "user_disabled" if principal_id in disabled else None

    with pytest.raises(TokenPrincipalRefused, match="the user is disabled"):
        check(valid_token(rsa_key), keys, check_principal=check_principal)
    other = valid_token(rsa_key, principal_id="AIDAEXAMPLEBOB0000001")
    assert check(other, keys, check_principal=check_principal).principal.principal_id == (
        "AIDAEXAMPLEBOB0000001"
    )


# --------------------------------------------------------------------------- signature bytes

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def raw_es256(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_es256_signature_of_wrong_length_refused(keys: KeySet, ec_key: SigningKey) -> None:
    # RFC 7518 §3.4: R || S, 32 bytes each. The same (r, s) spelled any other
    # way is refused: DER (what cryptography itself produces), or one byte
    # more or less, although each still carries the right numbers.
    header, payload, signature = valid_token(ec_key).split(".")
    raw = unb64(signature)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    for bad in (
        encode_dss_signature(r, s),  # DER
        b"\x00" + raw,  # 65 bytes: the numbers are unchanged
        raw[:-1],  # 63
        raw[:32],  # R alone
        r.to_bytes(33, "big") + s.to_bytes(33, "big"),  # 66: each number padded
        raw + raw,  # 128
        b"",
    ):
        assert len(bad) != 64
        with pytest.raises(TokenBadSignature):
            check(f"{header}.{payload}.{b64(bad)}", keys)
    assert check(f"{header}.{payload}.{b64(raw_es256(r, s))}", keys).kid == ec_key.kid


def test_rs256_signature_over_another_header_spelling_refused(
    keys: KeySet, rsa_key: SigningKey
) -> None:
    # The signature covers the header *as sent* (RFC 7515 §5.2), not the JSON
    # it decodes to: the same header spelled with another member order or with
    # spaces is another signing input.
    header = header_for(rsa_key)
    payload = segment(good_claims())
    signed = f"{segment(header)}.{payload}"
    signature = b64(sign_with(rsa_key.private_key, signed.encode()))
    assert check(f"{signed}.{signature}", keys).kid == rsa_key.kid
    respelled = (
        b64(json.dumps(dict(reversed(header.items())), separators=(",", ":")).encode()),
        b64(json.dumps(header).encode()),  # ", " and ": "
        b64(json.dumps(header, separators=(",", ":")).encode() + b" "),
    )
    for other in respelled:
        assert json.loads(unb64(other)) == header and other != segment(header)
        with pytest.raises(TokenBadSignature):
            check(f"{other}.{payload}.{signature}", keys)
    # And the other way round: a signature over a respelled header does not
    # vouch for the canonical one.
    moved = b64(sign_with(rsa_key.private_key, f"{respelled[0]}.{payload}".encode()))
    with pytest.raises(TokenBadSignature):
        check(f"{signed}.{moved}", keys)


def raw_claims_token(key: SigningKey, raw_claims: bytes) -> str:
    """A token whose payload is ``raw_claims`` verbatim, correctly signed by ``key``."""
    signing_input = f"{segment(header_for(key))}.{b64(raw_claims)}"
    return f"{signing_input}.{b64(sign_with(key.private_key, signing_input.encode()))}"


@pytest.mark.parametrize("claim", ["sub", "aud", "principal_id", "exp"])
def test_duplicate_claim_names_refused(keys: KeySet, rsa_key: SigningKey, claim: str) -> None:
    # RFC 7519 §4: reject, or keep the last. Keeping one would let two parsers
    # (ours, a log reader's, the kube-apiserver's in JWT mode) disagree on who
    # the token is for, so it is refused, even correctly signed.
    good = json.dumps(good_claims(), separators=(",", ":"))
    forged = {"sub": '"arn:aws:iam::111122223333:role/Admin"', "aud": '"staging"'}
    extra = forged.get(claim, json.dumps(good_claims()[claim]))
    token = raw_claims_token(rsa_key, f'{good[:-1]},"{claim}":{extra}}}'.encode())
    with pytest.raises(TokenMalformed, match="repeats a claim name"):
        check(token, keys)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(json.dumps([good_claims()]).encode(), id="array-of-the-claims"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'"claims"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf-8"),
        pytest.param(json.dumps(good_claims()).encode("utf-16"), id="utf-16"),
    ],
)
def test_payload_json_array_or_other_non_object_refused(
    keys: KeySet, rsa_key: SigningKey, raw: bytes
) -> None:
    token = raw_claims_token(rsa_key, raw)
    with pytest.raises(TokenMalformed, match="payload is not a JSON object"):
        check(token, keys)
    # The payload is only read once the signature holds: unsigned, it is a bad signature.
    h, p, s = token.split(".")
    with pytest.raises(TokenBadSignature):
        check(f"{h}.{p}.{b64(unb64(s)[::-1])}", keys)


def mislabelled(key: SigningKey, **fields: Any) -> SigningKey:
    """``key`` with some fields changed past SigningKey's own checks (which refuse that)."""
    twin = copy.copy(key)
    for name, value in fields.items():
        object.__setattr__(twin, name, value)
    return twin


def test_key_of_another_type_than_its_alg_is_never_used(
    rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    # SigningKey refuses to pair a key with an algorithm of another kind; if a
    # key set held one anyway, verify refuses before any signature math.
    rsa_as_es = mislabelled(rsa_key, alg="ES256")
    token = forge(header_for(rsa_as_es), good_claims(), ec_key.private_key)
    with pytest.raises(TokenAlgorithmRefused, match=f"refused for key {rsa_key.kid}"):
        check(token, KeySet((rsa_as_es,), max_token_lifetime=MAX_LIFETIME))

    ec_as_rs = mislabelled(ec_key, alg="RS256")
    token = forge(header_for(ec_as_rs), good_claims(), rsa_key.private_key)
    with pytest.raises(TokenAlgorithmRefused, match=f"refused for key {ec_key.kid}"):
        check(token, KeySet((ec_as_rs,), max_token_lifetime=MAX_LIFETIME))

    # ES256 is P-256 only: a P-384 key under the ES256 label is not used either.
    p384 = ec.generate_private_key(ec.SECP384R1())
    wrong_curve = mislabelled(ec_key, private_key=p384, public_key=p384.public_key())
    signing_input = f"{segment(header_for(wrong_curve))}.{segment(good_claims())}"
    r, s = decode_dss_signature(p384.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    token = f"{signing_input}.{b64(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"
    with pytest.raises(TokenAlgorithmRefused, match=f"refused for key {ec_key.kid}"):
        check(token, KeySet((wrong_curve,), max_token_lifetime=MAX_LIFETIME))


# --------------------------------------------------------------------------- PyJWT as an oracle


Signer = Callable[[str, str, bytes], bytes]  # (header_b64, payload_b64, valid signature)


def flipped(sig: bytes, at: int) -> bytes:
    out = bytearray(sig)
    out[at] ^= 0x01
    return bytes(out)


def signature_table(key: SigningKey, other: Any) -> dict[str, Signer]:
    """Signatures for a token of ``key``: good ones, bad ones, and near misses."""

    def signed_by(private_key: Any, what: Callable[[str, str], bytes]) -> Signer:
        return lambda h, p, sig: sign_with(private_key, what(h, p))

    table: dict[str, Signer] = {
        "valid": lambda h, p, sig: sig,
        "valid-resigned": signed_by(key.private_key, lambda h, p: f"{h}.{p}".encode()),
        "flip-first": lambda h, p, sig: flipped(sig, 0),
        "flip-middle": lambda h, p, sig: flipped(sig, len(sig) // 2),
        "flip-last": lambda h, p, sig: flipped(sig, -1),
        "truncated": lambda h, p, sig: sig[:-1],
        "extended": lambda h, p, sig: sig + b"\x00",
        "zero-prefixed": lambda h, p, sig: b"\x00" + sig,
        "empty": lambda h, p, sig: b"",
        "zeros": lambda h, p, sig: bytes(len(sig)),
        "ones": lambda h, p, sig: b"\xff" * len(sig),
        "another-key": signed_by(other, lambda h, p: f"{h}.{p}".encode()),
        "over-payload-only": signed_by(key.private_key, lambda h, p: p.encode()),
        "over-decoded-json": signed_by(key.private_key, lambda h, p: unb64(h) + unb64(p)),
        "over-padded-header": signed_by(key.private_key, lambda h, p: f"{h}=.{p}".encode()),
    }
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        rsa_private = key.private_key
        n = rsa_private.public_key().public_numbers().n
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
        table["pss"] = lambda h, p, sig: rsa_private.sign(f"{h}.{p}".encode(), pss, hashes.SHA256())
        table["sha384"] = lambda h, p, sig: rsa_private.sign(
            f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA384()
        )
        table["modulus"] = lambda h, p, sig: n.to_bytes(256, "big")
    else:
        assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
        ec_private = key.private_key

        def r_of(sig: bytes) -> int:
            return int.from_bytes(sig[:32], "big")

        def s_of(sig: bytes) -> int:
            return int.from_bytes(sig[32:], "big")

        table["high-s"] = lambda h, p, sig: raw_es256(r_of(sig), P256_ORDER - s_of(sig))
        table["swapped"] = lambda h, p, sig: raw_es256(s_of(sig), r_of(sig))
        table["r-zero"] = lambda h, p, sig: raw_es256(0, s_of(sig))
        table["s-zero"] = lambda h, p, sig: raw_es256(r_of(sig), 0)
        table["r-is-order"] = lambda h, p, sig: raw_es256(P256_ORDER, s_of(sig))
        table["s-is-order"] = lambda h, p, sig: raw_es256(r_of(sig), P256_ORDER)
        table["der"] = lambda h, p, sig: encode_dss_signature(r_of(sig), s_of(sig))
        table["sha384"] = lambda h, p, sig: raw_es256(
            *decode_dss_signature(ec_private.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA384())))
        )
    return table


def pyjwt_accepts(token: str, key: SigningKey) -> bool:
    try:
        jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
                "require": [],
            },
        )
    except jwt.InvalidSignatureError:
        return False
    return True


def authbridge_accepts(token: str, keys: KeySet) -> bool:
    try:
        check(token, keys)
    except TokenBadSignature:
        return False
    return True


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_signature_verdicts_match_pyjwt(
    keys: KeySet,
    rsa_key: SigningKey,
    ec_key: SigningKey,
    attacker_key: rsa.RSAPrivateKey,
    which: str,
) -> None:
    # PyJWT verified signatures before; for the signature alone it is the
    # oracle. Every token here is well-formed (strict base64url, good claims),
    # so each side either accepts it or refuses it as a bad signature, and
    # the two must agree on every row.
    key = rsa_key if which == "rsa" else ec_key
    other = attacker_key if which == "rsa" else ec.generate_private_key(ec.SECP256R1())
    header, payload, signature = valid_token(key).split(".")
    verdicts = {}
    for name, make in signature_table(key, other).items():
        token = f"{header}.{payload}.{b64(make(header, payload, unb64(signature)))}"
        ours, theirs = authbridge_accepts(token, keys), pyjwt_accepts(token, key)
        assert ours == theirs, f"{name}: authbridge {ours}, PyJWT {theirs}"
        verdicts[name] = ours
    # ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s).
    expected = {"valid", "valid-resigned"} | ({"high-s"} if which == "ec" else set())
    assert {name for name, ok in verdicts.items() if ok} == expected
