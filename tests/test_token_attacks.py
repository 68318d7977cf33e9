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
typ; duplicate header members; keys embedded in the header are ignored.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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
