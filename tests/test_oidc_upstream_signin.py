"""The sign-in half of authbridge.oidc_upstream: endpoints from discovery, the code exchange.

Covers, against tests/oidc_issuer.py playing an IdP over real https with its
own CA: the authorization and token endpoints come from discovery (cached
with the keys); a provider without them, with an http endpoint, or offering
PKCE without S256 fails sign-in with reason ``no_sign_in`` while its keys
(web identity) still work; the token endpoint authentication method
(``none`` for a public client, client_secret_basic, client_secret_post when
it is all that is offered); the code exchange for a public client and a
confidential one (Basic and form), a code used twice, a wrong verifier, a
wrong redirect_uri, a wrong client secret, a redirect, an oversized answer -
each refused with its reason, and the code, the verifier and the secret in
no message. Hypothesis: any discovery document gives endpoints or a reason,
never another exception.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.oidc_upstream import (
    ProviderUnavailable,
    SignInEndpoints,
    UpstreamKeys,
    parse_sign_in_endpoints,
    token_auth_method,
)
from tests.oidc_issuer import TestIssuer, running_issuer
from tests.test_oidc_upstream import provider_for

REDIRECT = "https://auth.example.test/login/upstream/callback"
SECRET = "client-Secret-0123456789-abcdef"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(tmp_path) as running:
        running.clients = {"public-app": None, "confidential-app": SECRET}
        yield running


@pytest.fixture
def fetcher() -> UpstreamKeys:
    return UpstreamKeys(timeout=5.0, max_bytes=64 * 1024)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _exchange(
    issuer: TestIssuer,
    fetcher: UpstreamKeys,
    *,
    client_id: str = "public-app",
    secret: str | None = None,
    code: str | None = None,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT,
) -> dict[str, Any]:
    provider = provider_for(issuer)
    good_verifier, challenge = _pkce()
    if code is None:
        code = issuer.issue_code(
            client_id=client_id, redirect_uri=REDIRECT, code_challenge=challenge, nonce="n-1"
        )
    endpoints = fetcher.sign_in_endpoints(provider)
    return dict(
        fetcher.exchange_code(
            provider,
            endpoints,
            client_id=client_id,
            client_secret=secret,
            code=code,
            code_verifier=verifier or good_verifier,
            redirect_uri=redirect_uri,
        )
    )


def test_sign_in_endpoints_come_from_discovery(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    endpoints = fetcher.sign_in_endpoints(provider_for(issuer))
    assert endpoints.authorization_endpoint == f"{issuer.url}/authorize"
    assert endpoints.token_endpoint == f"{issuer.url}/token"
    fetcher.sign_in_endpoints(provider_for(issuer))
    assert issuer.hits["/.well-known/openid-configuration"] == 1  # cached with the keys


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"authorization_endpoint": None}, "no authorization_endpoint"),
        ({"token_endpoint": "http://127.0.0.1/token"}, "token_endpoint is not an https URL"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE with S256"),
    ],
)
def test_a_provider_unfit_for_sign_in_fails_sign_in_only(
    issuer: TestIssuer, fetcher: UpstreamKeys, extra: dict[str, Any], says: str
) -> None:
    issuer.discovery_extra = extra
    provider = provider_for(issuer)
    with pytest.raises(ProviderUnavailable, match=says) as caught:
        fetcher.sign_in_endpoints(provider)
    assert caught.value.reason == "no_sign_in"
    assert fetcher.key_for(provider, issuer.key.kid).kid == issuer.key.kid  # web identity works


def test_token_endpoint_authentication_method() -> None:
    both = ("client_secret_basic", "client_secret_post")
    assert token_auth_method(both, has_secret=False) == "none"
    assert token_auth_method(both, has_secret=True) == "client_secret_basic"
    assert token_auth_method(("client_secret_post",), has_secret=True) == "client_secret_post"
    assert token_auth_method(("private_key_jwt",), has_secret=True) == "client_secret_basic"


def test_code_exchange_for_a_public_client(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    answer = _exchange(issuer, fetcher)
    assert isinstance(answer["id_token"], str)
    sent = issuer.token_requests[-1]
    assert sent["client_id"] == "public-app" and "client_secret" not in sent
    assert sent["grant_type"] == "authorization_code" and sent["redirect_uri"] == REDIRECT


def test_code_exchange_for_a_confidential_client_basic_then_post(
    issuer: TestIssuer, fetcher: UpstreamKeys
) -> None:
    assert "id_token" in _exchange(issuer, fetcher, client_id="confidential-app", secret=SECRET)
    assert "client_secret" not in issuer.token_requests[-1]  # in the Basic header
    issuer.discovery_extra = {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    post = UpstreamKeys(timeout=5.0)
    assert "id_token" in _exchange(issuer, post, client_id="confidential-app", secret=SECRET)
    assert issuer.token_requests[-1]["client_secret"] == SECRET


def _refused(excinfo: pytest.ExceptionInfo[ProviderUnavailable], *hidden: str) -> str:
    text = f"{excinfo.value} {excinfo.value.hint}"
    for value in hidden:
        assert value not in text
    return excinfo.value.reason


def test_replayed_code_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    verifier, challenge = _pkce()
    code = issuer.issue_code(
        client_id="public-app", redirect_uri=REDIRECT, code_challenge=challenge, nonce="n"
    )
    _exchange(issuer, fetcher, code=code, verifier=verifier)
    with pytest.raises(ProviderUnavailable) as caught:
        _exchange(issuer, fetcher, code=code, verifier=verifier)
    assert _refused(caught, code, verifier) == "http_status"


@pytest.mark.parametrize("wrong", ["verifier", "redirect_uri", "secret"])
def test_wrong_verifier_redirect_or_secret_is_refused(
    issuer: TestIssuer, fetcher: UpstreamKeys, wrong: str
) -> None:
    kw: dict[str, Any] = {"client_id": "confidential-app", "secret": SECRET}
    if wrong == "verifier":
        kw["verifier"] = secrets.token_urlsafe(32)
    elif wrong == "redirect_uri":
        kw["redirect_uri"] = REDIRECT + "x"
    else:
        kw["secret"] = "not-the-" + SECRET
    with pytest.raises(ProviderUnavailable) as caught:
        _exchange(issuer, fetcher, **kw)
    assert _refused(caught, SECRET) == "http_status"


@pytest.mark.parametrize(
    ("misbehave", "reason"), [("redirect", "http_status"), ("oversized", "too_large")]
)
def test_a_redirecting_or_oversized_token_endpoint_is_refused(
    issuer: TestIssuer, fetcher: UpstreamKeys, misbehave: str, reason: str
) -> None:
    fetcher.sign_in_endpoints(provider_for(issuer))  # discovery before the misbehaviour
    issuer.misbehave = {misbehave}
    with pytest.raises(ProviderUnavailable) as caught:
        _exchange(issuer, fetcher, client_id="confidential-app", secret=SECRET)
    assert _refused(caught, SECRET) == reason


_VALUE = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=40),
    st.sampled_from(["https://idp/a", "http://idp/a", "https://idp/#x"]),
    st.lists(st.sampled_from(["S256", "plain", 3, "client_secret_post"]), max_size=4),
)


@settings(max_examples=80, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            k: _VALUE
            for k in (
                "authorization_endpoint",
                "token_endpoint",
                "code_challenge_methods_supported",
                "token_endpoint_auth_methods_supported",
            )
        },
    )
)
def test_property_discovery_gives_endpoints_or_a_reason(document: dict[str, Any]) -> None:
    parsed = parse_sign_in_endpoints(document)
    if isinstance(parsed, str):
        assert parsed
        return
    assert isinstance(parsed, SignInEndpoints)
    assert parsed.authorization_endpoint.startswith("https://")
    assert parsed.token_endpoint.startswith("https://")
