"""The test OIDC issuer (tests/oidc_issuer.py) is what it claims, checked through the fetcher.

Covers: kube-apiserver service-account, GitHub Actions and GitLab CI tokens
carry their issuers' header and claim shapes and verify with the keys
authbridge.oidc_upstream fetched over https, for the registered issuer and
audience only; after a rotation upstream, a token of the new key verifies
once the unknown kid refreshed the JWKS, and one of a key the issuer dropped
no longer does once the cache ran out; the hostile tokens the exchange must
refuse - alg none, HS256 keyed with the public JWKS, a kid of another
provider - find no key to pass with.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from authbridge.iam import oidc_provider as op
from authbridge.oidc_upstream import UnknownKeyId, UpstreamKeys
from tests.oidc_issuer import TestIssuer, running_issuer

ACCOUNT = "111122223333"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(tmp_path) as it:
        yield it


def provider_for(issuer: TestIssuer, audiences: tuple[str, ...]) -> op.OidcProvider:
    parsed = op.parse_url(issuer.url)
    return op.OidcProvider(
        arn=op.provider_arn("aws", ACCOUNT, parsed.key),
        account_id=ACCOUNT,
        url=parsed.url,
        key=parsed.key,
        client_ids=audiences,
        created_at=datetime.now(UTC),
        ca_bundle=op.parse_ca_bundle(issuer.ca_pem),
    )


def header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def check(fetcher: UpstreamKeys, provider: op.OidcProvider, token: str) -> dict[str, Any]:
    """What the exchange will do: the key by kid, its own algorithm only, exact iss and aud."""
    found = fetcher.key_for(provider, str(header(token).get("kid")))
    claims: dict[str, Any] = jwt.decode(
        token,
        found.key,
        algorithms=[found.alg],
        audience=list(provider.client_ids),
        issuer=provider.url,
    )
    return claims


def test_kube_github_and_gitlab_tokens_verify_with_the_fetched_keys(issuer: TestIssuer) -> None:
    fetcher = UpstreamKeys()
    kube = issuer.kube_token(namespace="ci", name="deployer")
    assert header(kube) == {"alg": "RS256", "kid": issuer.key.kid}
    claims = check(fetcher, provider_for(issuer, ("authbridge",)), kube)
    assert claims["sub"] == "system:serviceaccount:ci:deployer"
    assert claims["aud"] == ["authbridge"]
    assert set(claims["kubernetes.io"]) == {"namespace", "serviceaccount", "pod", "node"}
    assert set(claims["kubernetes.io"]["serviceaccount"]) == {"name", "uid"}

    github = issuer.github_token(audience="sts.amazonaws.com")
    assert set(header(github)) == {"alg", "kid", "typ", "x5t"}
    claims = check(fetcher, provider_for(issuer, ("sts.amazonaws.com",)), github)
    assert claims["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert claims["job_workflow_ref"].startswith("octo-org/octo-repo/.github/workflows/")

    gitlab = issuer.gitlab_token(audience="authbridge")
    assert header(gitlab) == {"alg": "RS256", "kid": issuer.key.kid, "typ": "JWT"}
    claims = check(fetcher, provider_for(issuer, ("authbridge",)), gitlab)
    assert claims["sub"] == "project_path:my-group/my-project:ref_type:branch:ref:main"

    with pytest.raises(jwt.InvalidAudienceError):
        check(fetcher, provider_for(issuer, ("someone-else",)), kube)


def test_rotation_upstream(issuer: TestIssuer) -> None:
    clock = Clock()
    fetcher = UpstreamKeys(clock=clock)
    issuer.cache_control = "max-age=600"
    provider = provider_for(issuer, ("authbridge",))
    old_token = issuer.kube_token()
    check(fetcher, provider, old_token)
    clock.now += 61
    issuer.rotate(keep_old=False)
    check(fetcher, provider, issuer.kube_token())  # unknown kid: one refresh finds it
    with pytest.raises(UnknownKeyId):
        check(fetcher, provider, old_token)  # the dropped key is gone with the refresh


def test_hostile_upstream_tokens_find_no_key(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_issuer(tmp_path / "a") as ours, running_issuer(tmp_path / "b") as theirs:
        fetcher = UpstreamKeys()
        provider = provider_for(ours, ("authbridge",))
        claims = {"iss": ours.url, "sub": "x", "aud": "authbridge", "exp": 2_000_000_000}
        with pytest.raises(jwt.InvalidAlgorithmError):
            check(fetcher, provider, ours.mint_alg_none(claims))
        with pytest.raises(jwt.InvalidAlgorithmError):
            check(fetcher, provider, ours.mint_hs256_with_jwks(claims))
        # Signed by another provider, with that provider's kid: not a key of ours.
        with pytest.raises(UnknownKeyId):
            check(fetcher, provider, theirs.mint(claims))
        # Signed by another provider under our kid: the signature does not verify.
        with pytest.raises(jwt.InvalidSignatureError):
            check(fetcher, provider, theirs.mint(claims, kid=ours.key.kid))
