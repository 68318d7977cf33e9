"""Claim values: a token signed with the real key is a verdict with a reason, never an error.

The signature proves only that our key signed the claims, not that they are
sane (a bug, a misused key, a future claim): whatever they hold must end in
a refusal with a reason, in-process and over HTTP.

Covers:
- named: a lone surrogate, a NUL, a nested object, a list or a number where
  a string claim is expected, a string over 2048 characters, an absurd
  numeric date (10**400, -1, 1e308, NaN, a bool), an ``aud`` of 65 entries or
  with a surrogate: ``review_token`` refuses with ``invalid_claims`` and a
  detail naming the claim; ``/verify`` answers 200 with that reason and
  ``/authenticate`` a 200 denial;
- a token *not* signed by us (the attacker has no key) whose ``exp`` is
  10**400: /verify shows what it says without overflowing a float;
- a Hypothesis property over claim sets built from a valid, mapped token of
  alice with up to three claims replaced by any JSON value (the kinds above,
  deep nesting, secret-shaped strings) and one perhaps removed:
  ``review_token`` returns a Review whose reason is a documented token error
  code, ``not_mapped`` or ``ok``, and both endpoints answer 200 with JSON
  (the verdict shape for ``/authenticate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge import errors
from authbridge.mapping.holder import MappingHolder
from authbridge.review import REASON_NOT_MAPPED, REASON_OK, Review, review_token
from authbridge.sts import IssuerPolicy
from authbridge.web.review import MAX_TOKEN_CHARS
from tests.web.hostile import JSON_VALUES, PROD_CERT, Env, build_env, deep, sign

CLAIMS = (
    "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "arn", "account", "principal_id",
    "session_name", "access_key_id",
)  # fmt: skip
TOKEN_ERRORS = {
    cls.code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.TokenError)
}
DOCUMENTED = TOKEN_ERRORS | {REASON_OK, REASON_NOT_MAPPED}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    built = build_env(tmp_path_factory.mktemp("claims"))
    try:
        yield built
    finally:
        built.store.close()


def review(env: Env, token: str) -> Review:
    return review_token(
        token,
        store=env.store,
        keys=env.ring.current(),
        policy=IssuerPolicy.from_settings(env.settings),
        mapping=MappingHolder(env.settings.mapping_file).current(),
        clusters=("prod",),
        now=env.clock.now,
    )


def over_http(env: Env, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(/verify answer, /authenticate status): both must be 200 JSON.

    /verify refuses a token over 16 KiB as a request error (400, documented);
    the webhook denies it like any other.
    """
    verify = env.client.post("/verify", json={"token": token})
    if len(token) > MAX_TOKEN_CHARS:
        assert verify.status_code == 400 and "longer than" in verify.get_json()["error"]
    else:
        assert verify.status_code == 200, verify.get_data()
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    webhook = env.client.post(
        "/authenticate", json={**body, "spec": {"token": token}}, environ_base=PROD_CERT
    )
    assert webhook.status_code == 200, webhook.get_data()
    answer = webhook.get_json()
    assert answer["apiVersion"] == body["apiVersion"] and answer["kind"] == "TokenReview"
    assert isinstance(answer["status"]["authenticated"], bool)
    return verify.get_json(), answer["status"]


def test_the_good_claims_are_a_baseline_that_authenticates(env: Env) -> None:
    token = env.sign(env.good_claims())
    assert review(env, token).authenticated
    verify, status = over_http(env, token)
    assert verify["authenticated"] and status["user"]["username"] == "alice"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "\ud800"),
        ("arn", "arn:aws:iam::111122223333:user/team/\udfff"),
        ("principal_id", "\ud800"),
        ("session_name", "a\x00b"),
        ("access_key_id", "AKIA\x1b[31m"),
        ("jti", "x" * 2049),
        ("sub", {"nested": "object"}),
        ("arn", ["arn:aws:iam::111122223333:user/team/alice"]),
        ("account", 111122223333),
        ("iss", deep(50)),
        ("exp", 10**400),
        ("exp", 1e308),
        ("iat", -1),
        ("nbf", float("nan")),
        ("exp", True),
        ("aud", ["prod"] * 65),
        ("aud", ["prod", "\ud800"]),
        ("aud", {"prod": True}),
    ],
    ids=repr,
)
def test_an_impossible_signed_claim_is_refused_with_a_reason_not_a_500(
    env: Env, claim: str, value: Any
) -> None:
    token = env.sign({**env.good_claims(), claim: value})
    refused = review(env, token)
    assert (refused.authenticated, refused.reason) == (False, "invalid_claims")
    assert refused.detail is not None and f"'{claim}'" in refused.detail
    verify, status = over_http(env, token)
    assert verify["reasonCode"] == "invalid_claims" and f"'{claim}'" in verify["reason"]
    assert status == {"authenticated": False, "error": "token refused"}


def test_an_unverified_exp_too_large_for_a_float_is_not_a_500(env: Env) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    # Our kid and algorithm, another key: the signature cannot verify.
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = sign(env.signing_key(), {**env.good_claims(), "exp": 10**400}, private_key=attacker)
    assert review(env, token).reason == "bad_signature"
    verify, status = over_http(env, token)
    assert verify["reasonCode"] == "bad_signature" and verify["token"]["exp"] is None
    assert status["authenticated"] is False


@settings(max_examples=120)
@given(
    changes=st.dictionaries(st.sampled_from(CLAIMS), JSON_VALUES, max_size=3),
    removed=st.lists(st.sampled_from(CLAIMS), max_size=1),
)
def test_any_claim_values_give_a_documented_verdict(
    env: Env, changes: dict[str, Any], removed: list[str]
) -> None:
    claims = {**env.good_claims(), **changes}
    for name in removed:
        claims.pop(name, None)
    token = env.sign(claims)
    verdict = review(env, token)
    assert verdict.reason in DOCUMENTED, verdict
    assert verdict.authenticated == (verdict.reason == REASON_OK)
    verify, status = over_http(env, token)
    assert verify.get("authenticated", False) is verdict.authenticated
    assert status["authenticated"] is verdict.authenticated
