"""The ID token of an upstream sign-in (web_identity.verify_sign_in_id_token), end to end.

Covers, with tests/oidc_issuer.py playing the IdP over real https: a code
exchanged at its token endpoint gives an ID token whose claims (sub,
groups, preferred_username, nonce) are verified by the same strict verifier
as AssumeRoleWithWebIdentity; then the named attacks, each refused with its
reason code and never echoing the token: a wrong nonce (token injection),
an aud for another client, several audiences without azp, alg none, an
unknown kid, an expired token, no id_token in the answer, HS256 keyed with
the JWKS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from authbridge.oidc_upstream import UpstreamKeys
from authbridge.web_identity import WebIdentityRefused, verify_sign_in_id_token
from tests.oidc_issuer import TestIssuer, running_issuer
from tests.test_oidc_upstream import provider_for
from tests.test_oidc_upstream_signin import REDIRECT, _pkce

CLIENT = "authbridge-signin"
NONCE = "flow-nonce-0123456789abcdef0123456789abcdef"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(tmp_path) as running:
        running.clients = {CLIENT: None}
        yield running


def _sign_in(issuer: TestIssuer, *, nonce: str = NONCE) -> tuple[Any, dict[str, Any]]:
    """Exchange a fresh code; the raw token endpoint answer, and what verification gives."""
    upstream = UpstreamKeys(timeout=5.0)
    provider = replace(provider_for(issuer), client_ids=(CLIENT,))
    verifier, challenge = _pkce()
    code = issuer.issue_code(
        client_id=CLIENT, redirect_uri=REDIRECT, code_challenge=challenge, nonce=NONCE
    )
    answer = upstream.exchange_code(
        provider,
        upstream.sign_in_endpoints(provider),
        client_id=CLIENT,
        client_secret=None,
        code=code,
        code_verifier=verifier,
        redirect_uri=REDIRECT,
    )
    claims = verify_sign_in_id_token(
        upstream, provider, answer.get("id_token"), client_id=CLIENT, nonce=nonce, now=time.time()
    )
    return answer, claims


def _refused(issuer: TestIssuer, *, nonce: str = NONCE) -> str:
    with pytest.raises(WebIdentityRefused) as caught:
        _sign_in(issuer, nonce=nonce)
    message = str(caught.value)
    assert "eyJ" not in message  # no token, no token part
    return caught.value.reason


def test_an_exchanged_id_token_is_verified(issuer: TestIssuer) -> None:
    _, claims = _sign_in(issuer)
    assert claims["sub"] == "00u-alice" and claims["groups"] == ["platform", "dev"]
    assert claims["preferred_username"] == "alice" and claims["nonce"] == NONCE
    assert claims["aud"] == CLIENT and claims["iss"] == issuer.url


def test_wrong_nonce_token_injection_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"wrong_nonce"}
    assert _refused(issuer) == "wrong_nonce"


def test_a_token_of_another_sign_in_is_refused_by_its_nonce(issuer: TestIssuer) -> None:
    assert _refused(issuer, nonce="the-nonce-of-another-browser-flow") == "wrong_nonce"


def test_wrong_aud_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"other_aud"}
    assert _refused(issuer) == "wrong_audience"


def test_several_audiences_without_azp_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"several_aud_no_azp"}
    assert _refused(issuer) == "wrong_azp"


def test_alg_none_id_token_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"alg_none"}
    assert _refused(issuer) == "algorithm"


def test_unknown_kid_id_token_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"unknown_kid"}
    assert _refused(issuer) == "unknown_kid"


def test_expired_id_token_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"expired"}
    assert _refused(issuer) == "expired"


def test_an_answer_without_id_token_is_refused(issuer: TestIssuer) -> None:
    issuer.misbehave = {"no_id_token"}
    assert _refused(issuer) == "malformed"


def test_hs256_with_the_jwks_as_secret_id_token_is_refused(issuer: TestIssuer) -> None:
    upstream = UpstreamKeys(timeout=5.0)
    provider = replace(provider_for(issuer), client_ids=(CLIENT,))
    now = int(time.time())
    forged = issuer.mint_hs256_with_jwks(
        {"iss": issuer.url, "aud": CLIENT, "sub": "x", "iat": now, "exp": now + 60, "nonce": NONCE}
    )
    with pytest.raises(WebIdentityRefused) as caught:
        verify_sign_in_id_token(
            upstream, provider, forged, client_id=CLIENT, nonce=NONCE, now=float(now)
        )
    assert caught.value.reason == "algorithm"
