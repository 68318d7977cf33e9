"""Minting and verifying tokens (authbridge.tokens), the happy paths and the API rules.

Covers:
- mint → verify round trips for a user and for a role session, RS256 and ES256;
- the header and claims exactly as docs/architecture.md specifies (aud string vs list, jti
  randomness, session_name / access_key_id only when given);
- several audiences on the token and on the verifier;
- a token signed by a retiring key still verifies; a pending key never signs;
- mint's argument rules: extra_claims cannot override authbridge claims,
  lifetime capped by the key set, no oversized tokens;
- verify's argument rules: leeway 0..60, at least one audience;
- the revocation and principal hooks get the right arguments; check_status
  (status read by the caller) refuses exactly as the hooks do;
- keys from a KeyDirectory work end to end;
- nothing secret in reprs; error codes are the reason labels.

The attacks live in test_token_attacks.py.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from authbridge.errors import TokenError, TokenPrincipalRefused, TokenUnknownKey
from authbridge.keys import KeyDirectory, KeySet, SigningKey, generate_signing_key
from authbridge.tokens import (
    DEFAULT_LIFETIME,
    REGISTERED_CLAIMS,
    MintedToken,
    Principal,
    check_status,
    mint,
    verify,
)

NOW = 1_700_000_000
ISSUER = "https://authbridge.example.com"
MAX_LIFETIME = 43200

USER = Principal(
    arn="arn:aws:iam::111122223333:user/team/alice",
    canonical_arn="arn:aws:iam::111122223333:user/team/alice",
    account_id="111122223333",
    principal_id="AIDAEXAMPLEALICE00001",
    access_key_id="AKIAEXAMPLEKEY000001",
)
ROLE_SESSION = Principal(
    arn="arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com",
    canonical_arn="arn:aws:iam::111122223333:role/platform/Admin",
    account_id="111122223333",
    principal_id="AROAEXAMPLEADMIN00001:alice@example.com",
    session_name="alice@example.com",
    source_identity="AIDAEXAMPLEALICE00001",
    source_jti="the-sts-token-jti",
    source_access_key_id="AKIAEXAMPLEKEY000001",
)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return generate_signing_key("RS256", now=NOW - 1000, activates_at=NOW - 1000)


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return generate_signing_key("ES256", now=NOW - 1000, activates_at=NOW - 1000)


@pytest.fixture(scope="module")
def rsa_keys(rsa_key: SigningKey) -> KeySet:
    return KeySet((rsa_key,), max_token_lifetime=MAX_LIFETIME)


@pytest.fixture(scope="module")
def ec_keys(ec_key: SigningKey) -> KeySet:
    return KeySet((ec_key,), max_token_lifetime=MAX_LIFETIME)


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    def dec(seg: str) -> bytes:
        return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))

    h, p, s = token.split(".")
    return json.loads(dec(h)), json.loads(dec(p)), dec(s)


def check(token: str, keys: KeySet, **kw: Any) -> Any:
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("audiences", ["prod"])
    kw.setdefault("now", NOW + 1)
    return verify(token, keys=keys, **kw)


# --------------------------------------------------------------------------- round trips


def test_user_round_trip(rsa_keys: KeySet, rsa_key: SigningKey) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    header, claims, _ = parts(minted.token)
    assert header == {"alg": "RS256", "kid": rsa_key.kid, "typ": "JWT"}
    assert claims == {
        "iss": ISSUER,
        "sub": USER.canonical_arn,
        "aud": "prod",
        "exp": NOW + DEFAULT_LIFETIME,
        "iat": NOW,
        "nbf": NOW,
        "jti": minted.jti,
        "arn": USER.arn,
        "account": "111122223333",
        "principal_id": "AIDAEXAMPLEALICE00001",
        "access_key_id": "AKIAEXAMPLEKEY000001",
        "source_identity": "AIDAEXAMPLEALICE00001",  # a user token is its own source
    }
    assert minted.claims == claims
    assert (minted.issued_at, minted.expires_at, minted.kid) == (NOW, NOW + 900, rsa_key.kid)

    verified = check(minted.token, rsa_keys)
    assert verified.principal == dataclasses.replace(USER, source_identity=USER.principal_id)
    assert verified.principal.source == USER.principal_id
    assert verified.claims == claims
    assert (verified.kid, verified.alg) == (rsa_key.kid, "RS256")
    assert verified.audiences == ["prod"]
    assert (verified.expires_at, verified.issued_at, verified.jti) == (
        NOW + 900,
        NOW,
        minted.jti,
    )


def test_role_session_round_trip(ec_keys: KeySet, ec_key: SigningKey) -> None:
    minted = mint(ROLE_SESSION, keys=ec_keys, issuer=ISSUER, audience="prod", now=NOW)
    header, claims, signature = parts(minted.token)
    assert header == {"alg": "ES256", "kid": ec_key.kid, "typ": "JWT"}
    assert len(signature) == 64  # RFC 7518 §3.4: R || S, 32 bytes each
    assert claims["sub"] == "arn:aws:iam::111122223333:role/platform/Admin"
    assert claims["arn"] == "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com"
    assert claims["session_name"] == "alice@example.com"
    assert claims["principal_id"] == "AROAEXAMPLEADMIN00001:alice@example.com"
    assert "access_key_id" not in claims
    assert claims["source_identity"] == "AIDAEXAMPLEALICE00001"
    assert claims["source_jti"] == "the-sts-token-jti"
    assert claims["source_access_key_id"] == "AKIAEXAMPLEKEY000001"
    verified = check(minted.token, ec_keys)
    assert verified.principal == ROLE_SESSION
    assert verified.principal.source_key == "AKIAEXAMPLEKEY000001"


def test_user_without_key_has_no_optional_claims(rsa_keys: KeySet) -> None:
    user = dataclasses.replace(USER, access_key_id=None)
    claims = mint(user, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW).claims
    assert "access_key_id" not in claims and "session_name" not in claims


def test_jti_is_random_and_at_least_128_bits(ec_keys: KeySet) -> None:
    jtis = {
        mint(USER, keys=ec_keys, issuer=ISSUER, audience="prod", now=NOW).jti for _ in range(50)
    }
    assert len(jtis) == 50
    assert all(len(base64.urlsafe_b64decode(j + "==")) >= 16 for j in jtis)


def test_multiple_audiences(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience=["prod", "staging", "prod"], now=NOW)
    assert minted.claims["aud"] == ["prod", "staging"]
    assert check(minted.token, rsa_keys, audiences=["staging"]).audiences == ["prod", "staging"]
    assert check(minted.token, rsa_keys, audiences={"dev", "prod"}).audiences == [
        "prod",
        "staging",
    ]
    # One audience in a list is still written as a string (RFC 7519 §4.1.3).
    single = mint(USER, keys=rsa_keys, issuer=ISSUER, audience=["prod"], now=NOW)
    assert single.claims["aud"] == "prod"


def test_audiences_given_as_a_string_is_one_audience(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    assert check(minted.token, rsa_keys, audiences="prod").audiences == ["prod"]
    with pytest.raises(TokenError):
        check(minted.token, rsa_keys, audiences="production")  # not a set of letters


def test_extra_claims(rsa_keys: KeySet) -> None:
    minted = mint(
        USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW, extra_claims={"x": 1}
    )
    assert check(minted.token, rsa_keys).claims["x"] == 1


@pytest.mark.parametrize("claim", sorted(REGISTERED_CLAIMS))
def test_extra_claims_cannot_override(rsa_keys: KeySet, claim: str) -> None:
    with pytest.raises(ValueError, match=claim):
        mint(
            USER,
            keys=rsa_keys,
            issuer=ISSUER,
            audience="prod",
            now=NOW,
            extra_claims={claim: "evil"},
        )


# --------------------------------------------------------------------------- key rotation


def test_retiring_key_still_verifies(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    old = dataclasses.replace(ec_key, activates_at=NOW - 5000)
    new = dataclasses.replace(rsa_key, activates_at=NOW)
    keys = KeySet((old, new), max_token_lifetime=MAX_LIFETIME)
    minted = mint(USER, keys=keys, issuer=ISSUER, audience="prod", now=NOW - 1, lifetime=3600)
    assert minted.kid == old.kid
    assert keys.state_of(old.kid, NOW + 3000) == "retiring"
    assert check(minted.token, keys, now=NOW + 3000).kid == old.kid
    # Once retired (successor activation + max lifetime), the key is gone.
    with pytest.raises(TokenUnknownKey):
        check(minted.token, keys, now=NOW + MAX_LIFETIME)


def test_pending_key_never_signs(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    current = dataclasses.replace(rsa_key, activates_at=NOW - 5000)
    pending = dataclasses.replace(ec_key, activates_at=NOW + 600)
    keys = KeySet((current, pending), max_token_lifetime=MAX_LIFETIME)
    for t in (NOW, NOW + 300, NOW + 599):
        assert mint(USER, keys=keys, issuer=ISSUER, audience="prod", now=t).kid == current.kid
    assert mint(USER, keys=keys, issuer=ISSUER, audience="prod", now=NOW + 600).kid == pending.kid


def test_keys_from_directory(tmp_path: Path) -> None:
    kd = KeyDirectory(tmp_path / "keys")
    kd.init("ES256", now=NOW - 10)
    keys = kd.load()
    minted = mint(ROLE_SESSION, keys=keys, issuer=ISSUER, audience="prod", now=NOW)
    assert check(minted.token, keys).principal == ROLE_SESSION
    assert check(minted.token, kd.load()).jti == minted.jti


# --------------------------------------------------------------------------- argument rules


def test_lifetime_rules(rsa_keys: KeySet) -> None:
    m = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW, lifetime=MAX_LIFETIME)
    assert m.expires_at - m.issued_at == MAX_LIFETIME
    for bad in (0, -1, MAX_LIFETIME + 1):
        with pytest.raises(ValueError, match="lifetime"):
            mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW, lifetime=bad)


def test_mint_argument_rules(rsa_keys: KeySet) -> None:
    with pytest.raises(ValueError, match="audience"):
        mint(USER, keys=rsa_keys, issuer=ISSUER, audience=[], now=NOW)
    with pytest.raises(ValueError, match="audience"):
        mint(USER, keys=rsa_keys, issuer=ISSUER, audience=[""], now=NOW)
    with pytest.raises(ValueError, match="issuer"):
        mint(USER, keys=rsa_keys, issuer="", audience="prod", now=NOW)
    with pytest.raises(ValueError, match="principal_id"):
        mint(
            dataclasses.replace(USER, principal_id=""),
            keys=rsa_keys,
            issuer=ISSUER,
            audience="prod",
            now=NOW,
        )


def test_mint_refuses_tokens_verify_would_refuse_as_oversized(ec_keys: KeySet) -> None:
    with pytest.raises(ValueError, match="8192"):
        mint(
            USER,
            keys=ec_keys,
            issuer=ISSUER,
            audience="prod",
            now=NOW,
            extra_claims={"pad": "x" * 8192},
        )


@pytest.mark.parametrize("leeway", [-1, 61, 3600])
def test_leeway_must_be_at_most_60(rsa_keys: KeySet, leeway: int) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    with pytest.raises(ValueError, match="leeway"):
        check(minted.token, rsa_keys, leeway=leeway)


def test_verify_needs_an_audience(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    with pytest.raises(ValueError, match="audience"):
        check(minted.token, rsa_keys, audiences=[])


def test_hooks_receive_jti_and_principal(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    seen: list[Any] = []

    def is_revoked(jti: str) -> bool:
        seen.append(("revoked?", jti))
        return False

    def check_principal(principal_id: str, access_key_id: str | None) -> str | None:
        seen.append(("principal?", principal_id, access_key_id))
        return None

    check(minted.token, rsa_keys, is_revoked=is_revoked, check_principal=check_principal)
    assert seen == [
        ("revoked?", minted.jti),
        ("principal?", "AIDAEXAMPLEALICE00001", "AKIAEXAMPLEKEY000001"),
    ]


@pytest.mark.parametrize(
    ("refusal", "words"),
    [
        ("user_disabled", "the user is disabled"),
        ("access_key_inactive", "the access key is inactive"),
        ("something_else", "something else"),
    ],
)
def test_principal_refusal_messages(rsa_keys: KeySet, refusal: str, words: str) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    with pytest.raises(TokenPrincipalRefused) as err:
        check(minted.token, rsa_keys, check_principal=lambda p, k: refusal)
    assert words in str(err.value) and refusal in str(err.value)
    assert err.value.code == "disabled"


@pytest.mark.parametrize(
    ("revoked", "refusal"),
    [(False, None), (True, None), (False, "user_disabled"), (True, "access_key_deleted")],
)
def test_check_status_refuses_as_the_hooks_do(
    rsa_keys: KeySet, revoked: bool, refusal: str | None
) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    verified = check(minted.token, rsa_keys)  # no hooks: signature, claims, times
    try:
        check(
            minted.token,
            rsa_keys,
            is_revoked=lambda jti: revoked,
            check_principal=lambda p, k: refusal,
        )
    except TokenError as e:
        expected: TokenError | None = e
    else:
        expected = None
    if expected is None:
        check_status(verified, revoked=revoked, refusal=refusal)
        return
    with pytest.raises(type(expected)) as err:
        check_status(verified, revoked=revoked, refusal=refusal)
    assert (err.value.code, err.value.message, err.value.hint) == (
        expected.code,
        expected.message,
        expected.hint,
    )


# --------------------------------------------------------------------------- no secrets


def test_minted_token_repr_hides_token(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    signature = minted.token.rsplit(".", 1)[1]
    for text in (repr(minted), str(minted)):
        assert minted.token not in text
        assert signature not in text
        assert minted.jti in text  # the id is fine to log
    assert isinstance(minted, MintedToken)


def test_error_messages_never_contain_the_token(rsa_keys: KeySet) -> None:
    minted = mint(USER, keys=rsa_keys, issuer=ISSUER, audience="prod", now=NOW)
    failures: list[TokenError] = []
    for kw in (
        {"audiences": ["other"]},
        {"issuer": ISSUER + "/"},
        {"now": NOW + 10_000},
        {"is_revoked": lambda j: True},
    ):
        with pytest.raises(TokenError) as err:
            check(minted.token, rsa_keys, **kw)
        failures.append(err.value)
    signature = minted.token.rsplit(".", 1)[1]
    for e in failures:
        assert signature not in str(e) and minted.token not in repr(e)
    assert [e.code for e in failures] == ["wrong_audience", "invalid_claims", "expired", "revoked"]
