"""Fetching providers' discovery and JWKS (authbridge.oidc_upstream) from a real https issuer.

Covers, against tests/oidc_issuer.py over TLS on a free port: keys fetched
with the provider's own CA, refused without it (``tls``); the discovery
``issuer`` must be the registered URL exactly; a ``jwks_uri`` that is not
https, a redirect, an error status, an answer over the size cap, not JSON,
too many keys - each refused with its reason; hostile JWKS entries (an HMAC
``oct`` key, RSA under 2048 bits, an EC key whose ``alg`` is not its
curve's, ``use: enc``, no ``kid``, ``alg: none``/``HS256``) never become
keys; ``Cache-Control`` (bounded by min/max, ``no-store``, absent) decides
how long keys are kept, on an injected clock; an unknown ``kid`` refetches
once, then not again within the refresh interval; key rotation upstream;
an unreachable or hanging provider fails only its own lookups, with a
clear reason, remembered for ``retry_after`` so it is not retried per
login, and recovers; the observer sees each fetch's outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from authbridge.iam import oidc_provider as op
from authbridge.oidc_upstream import (
    ProviderUnavailable,
    UnknownKeyId,
    UpstreamKeys,
    cache_seconds,
    parse_jwks,
)
from tests.oidc_issuer import JWKS_PATH, TestIssuer, new_key, running_issuer

ACCOUNT = "111122223333"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider_for(issuer: TestIssuer, *, ca: bool = True, url: str | None = None) -> op.OidcProvider:
    parsed = op.parse_url(url or issuer.url)
    return op.OidcProvider(
        arn=op.provider_arn("aws", ACCOUNT, parsed.key),
        account_id=ACCOUNT,
        url=parsed.url,
        key=parsed.key,
        client_ids=("authbridge",),
        created_at=datetime.now(UTC),
        ca_bundle=op.parse_ca_bundle(issuer.ca_pem) if ca else None,
    )


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(tmp_path) as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seen() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def fetcher(clock: Clock, seen: list[tuple[str, str]]) -> UpstreamKeys:
    return UpstreamKeys(
        timeout=5.0, clock=clock, observe=lambda arn, outcome: seen.append((arn, outcome))
    )


def test_keys_are_fetched_with_the_providers_ca(
    issuer: TestIssuer, fetcher: UpstreamKeys, seen: list[tuple[str, str]]
) -> None:
    provider = provider_for(issuer)
    keys = fetcher.keys(provider)
    assert keys.issuer == issuer.url
    assert list(keys.keys) == [issuer.key.kid]
    assert fetcher.key_for(provider, issuer.key.kid).alg == "RS256"
    assert seen == [(provider.arn, "ok")]


def test_es256_issuer_with_a_path(tmp_path: Path, fetcher: UpstreamKeys) -> None:
    with running_issuer(tmp_path, path="/tenant/a", alg="ES256") as issuer:
        provider = provider_for(issuer)
        assert provider.key.endswith("/tenant/a")
        assert fetcher.key_for(provider, issuer.key.kid).alg == "ES256"


def test_issuer_without_its_ca_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    with pytest.raises(ProviderUnavailable, match="certificate does not verify") as caught:
        fetcher.keys(provider_for(issuer, ca=False))
    assert caught.value.reason == "tls"
    assert "--ca-file" in str(caught.value)


def test_issuer_mismatch_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    issuer.issuer_override = "https://evil.example"
    with pytest.raises(ProviderUnavailable) as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == "issuer_mismatch"


def test_trailing_slash_is_another_issuer(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        fetcher.keys(provider_for(issuer, url=issuer.url + "/"))
    assert caught.value.reason == "issuer_mismatch"


def test_jwks_uri_in_the_clear_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    issuer.discovery_extra = {"jwks_uri": f"http://127.0.0.1:{issuer.port}{JWKS_PATH}"}
    with pytest.raises(ProviderUnavailable, match="not an https URL") as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == "bad_discovery"
    assert issuer.hits[JWKS_PATH] == 0


def test_redirect_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    issuer.redirect_to = "http://127.0.0.1:1/.well-known/openid-configuration"
    with pytest.raises(ProviderUnavailable, match="HTTP 302") as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == "http_status"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"x" * (300 * 1024), "too_large"),
        (b"not json", "not_json"),
        (b"[" * 150_000 + b"]" * 150_000, "too_large"),
        (b"[" * 50_000 + b"]" * 50_000, "not_json"),
        (b'{"keys": {}}', "bad_jwks"),
        (json.dumps({"keys": [{"kty": "RSA"}] * 101}).encode(), "bad_jwks"),
    ],
)
def test_hostile_jwks_answers_are_refused(
    issuer: TestIssuer, fetcher: UpstreamKeys, body: bytes, reason: str
) -> None:
    issuer.jwks_override = body
    with pytest.raises(ProviderUnavailable) as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == reason


def test_error_status_is_refused(issuer: TestIssuer, fetcher: UpstreamKeys) -> None:
    issuer.status = 503
    with pytest.raises(ProviderUnavailable, match="HTTP 503") as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == "http_status"


def test_hmac_and_weak_keys_in_a_jwks_are_never_keys(issuer: TestIssuer) -> None:
    good = issuer.key.jwk()
    weak_rsa = {**good, "kid": "weak", "n": "sXch"}  # a 16-bit modulus
    ec_key = new_key("ES256").jwk()
    entries = [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {**good, "kid": "none", "alg": "none"},
        {**good, "kid": "hs", "alg": "HS256"},
        {**good, "kid": "enc", "use": "enc"},
        {k: v for k, v in good.items() if k != "kid"},
        weak_rsa,
        {**ec_key, "kid": "ec-wrong-alg", "alg": "ES384"},
        {**ec_key, "kid": "ec-rsa-alg", "alg": "RS256"},
        {"kty": "OKP", "kid": "okp", "crv": "Ed25519", "x": "AAAA"},
        {**good, "kid": "x" * 300},
        "not an object",
        good,
        {**good, "kid": good["kid"], "n": "AQAB"},  # a second key with the same kid: ignored
    ]
    keys = parse_jwks({"keys": entries}, provider="p")
    assert list(keys) == [good["kid"]]
    assert keys[good["kid"]].alg == "RS256"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300),
        ("public, max-age=3600", 3600),
        ("max-age=5", 60),
        ("max-age=99999999", 86400),
        ("s-maxage=10, max-age=600", 600),
        ("no-store", 60),
        ("no-cache, max-age=600", 60),
        ("private", 300),
        ("max-age=abc", 300),
        ("max-age=" + "9" * 50, 300),
    ],
)
def test_cache_control_is_bounded(header: str | None, seconds: int) -> None:
    assert cache_seconds(header, default=300, minimum=60, maximum=86400) == seconds


def test_keys_are_cached_for_max_age_then_refetched(
    issuer: TestIssuer, fetcher: UpstreamKeys, clock: Clock
) -> None:
    issuer.cache_control = "max-age=120"
    provider = provider_for(issuer)
    first = fetcher.keys(provider)
    assert first.expires_at - first.fetched_at == 120
    clock.now += 119
    fetcher.keys(provider)
    assert issuer.hits[JWKS_PATH] == 1
    clock.now += 2
    fetcher.keys(provider)
    assert issuer.hits[JWKS_PATH] == 2


def test_unknown_kid_refetches_at_most_once_a_minute(
    issuer: TestIssuer, fetcher: UpstreamKeys, clock: Clock
) -> None:
    provider = provider_for(issuer)
    fetcher.keys(provider)
    clock.now += 61
    rotated = issuer.rotate(keep_old=False)
    assert fetcher.key_for(provider, rotated.kid).kid == rotated.kid  # one refetch finds it
    assert issuer.hits[JWKS_PATH] == 2
    for _ in range(5):  # made-up kids: refused without asking the provider again
        with pytest.raises(UnknownKeyId, match="no signing key"):
            fetcher.key_for(provider, "made-up")
    assert issuer.hits[JWKS_PATH] == 2
    clock.now += 61
    with pytest.raises(UnknownKeyId):
        fetcher.key_for(provider, "made-up")
    assert issuer.hits[JWKS_PATH] == 3


def test_unknown_kid_message_does_not_echo_hostile_text(
    issuer: TestIssuer, fetcher: UpstreamKeys
) -> None:
    provider = provider_for(issuer)
    with pytest.raises(UnknownKeyId) as caught:
        fetcher.key_for(provider, "\x1b[31m" + "k" * 500)
    assert "k" * 100 not in str(caught.value) and "\x1b" not in str(caught.value)


def test_unreachable_provider_fails_only_its_own_lookups(
    tmp_path: Path, fetcher: UpstreamKeys, clock: Clock, seen: list[tuple[str, str]]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_issuer(tmp_path / "a") as down, running_issuer(tmp_path / "b") as up:
        down.cache_control = up.cache_control = "max-age=60"
        dead, alive = provider_for(down), provider_for(up)
        fetcher.keys(dead)
        fetcher.keys(alive)
        down.go_down()
        clock.now += 61  # the cached keys run out: they are not used past their time
        with pytest.raises(ProviderUnavailable, match="cannot be reached") as caught:
            fetcher.key_for(dead, down.key.kid)
        assert caught.value.reason == "unreachable"
        assert fetcher.key_for(alive, up.key.kid).kid == up.key.kid
        assert seen[-2:] == [(dead.arn, "unreachable"), (alive.arn, "ok")]
        # Remembered for retry_after: the next login does not wait on the dead provider.
        with pytest.raises(ProviderUnavailable):
            fetcher.keys(dead)
        assert seen[-1] == (alive.arn, "ok")
        down.come_back()
        with pytest.raises(ProviderUnavailable):
            fetcher.keys(dead)  # still within retry_after
        clock.now += 11
        assert fetcher.key_for(dead, down.key.kid).kid == down.key.kid
        assert seen[-1] == (dead.arn, "ok")


def test_hanging_provider_times_out(issuer: TestIssuer, clock: Clock) -> None:
    fetcher = UpstreamKeys(timeout=0.5, clock=clock)
    issuer.hang.set()
    with pytest.raises(ProviderUnavailable) as caught:
        fetcher.keys(provider_for(issuer))
    assert caught.value.reason == "timeout"


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="min_ttl"):
        UpstreamKeys(min_ttl=600, default_ttl=300)


def test_fetch_outcomes_are_counted_per_provider(issuer: TestIssuer, clock: Clock) -> None:
    from authbridge.web import metrics

    def count(arn: str, outcome: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "authbridge_oidc_provider_fetches_total", {"provider": arn, "outcome": outcome}
        )
        return value or 0.0

    fetcher = UpstreamKeys(clock=clock, observe=metrics.observe_oidc_fetch)
    provider = provider_for(issuer)
    before_ok, before_down = count(provider.arn, "ok"), count(provider.arn, "unreachable")
    fetcher.keys(provider)
    issuer.go_down()
    clock.now += 4000
    with pytest.raises(ProviderUnavailable):
        fetcher.keys(provider)
    assert count(provider.arn, "ok") == before_ok + 1
    assert count(provider.arn, "unreachable") == before_down + 1
    metrics.observe_oidc_fetch(provider.arn, "made up by someone")  # never a new label value
    assert count(provider.arn, "made up by someone") == 0
    assert count(provider.arn, "other") >= 1
