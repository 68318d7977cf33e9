"""Abuse limits in the app (authbridge.web.limits), with the test clock: one test per rule.

Covers, for failed client authentication at the token, introspection and
revocation endpoints:
- the per-key limit (one access key id from one address): N failures, then 429
  ``too_many_requests`` with the exact ``Retry-After``, RFC 6749-shaped and no-store;
- while limited, the right secret is refused too, and no secret is even
  checked (the store is not asked);
- lockout by key id: one address hammering an id does not lock its owner out
  from another address; the much higher ceiling for an id over all addresses;
- refused token exchanges (invalid_grant: a subject token that does not
  verify, a role that does not trust or does not exist) are charged too: 429
  with ``Retry-After`` before the subject token is looked at; the address is
  charged, never a ``client_id`` the request names;
- the wait: after ``Retry-After`` one more attempt, after a quiet minute a full burst;
  ``Retry-After`` counts down with the clock;
- a success clears its key id's failures, but not its address's;
- the per-address limit across many key ids; another address is unaffected;
  IPv6 clients count per /64; X-Forwarded-For only from ``trustedProxies``;
- unknown well-formed key ids are limited like real ones (no oracle); malformed
  ids count against the address only; client_secret_post is limited too;
- the limits are per worker: N // workers each;
- 0 turns each limit off; a store outage charges nothing;
- memory: at most ``max_entries`` keys tracked, least recently charged dropped first.
- the address the worker's connection cap counts (trusted proxies uncounted), for
  any peer string (a property test).

And the size caps: every endpoint refuses a declared body over ``maxRequestBytes``
with 413 JSON (RFC 6749-shaped, or the webhook's and /verify's own error), a
smaller cap is honoured, and an oversized Authorization header is 431 without
counting as a failed authentication. The settings that configure all of this.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from authbridge.errors import ConfigError, StoreUnavailable
from authbridge.iam.model import NewAccessKey
from authbridge.settings import load_settings
from authbridge.store import SqlStore
from authbridge.web.limits import (
    MAX_AUTHORIZATION_CHARS,
    ClientAuthLimits,
    FailureLimiter,
    TooManyFailedAttempts,
    client_address,
    connection_address,
    per_worker,
)
from tests.conftest import ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import (
    JWT_TYPE,
    TOKEN_EXCHANGE,
    Clock,
    World,
    assert_error,
    assert_invalid_client,
    basic,
    key_auth,
    session_token,
    sts_token,
)

UNKNOWN_KEY_ID = "AKIAZZZZZZZZZZZZZZZZ"  # well-formed, in no store
CLIENT_CREDENTIALS = {"grant_type": "client_credentials", "audience": "prod"}
KEY_IDS = [f"AKIA{c * 16}" for c in "ABCDEFGH"]  # well-formed, in no store


class CountingStore:
    """The real store, counting secret checks; ``down`` makes them fail like an outage."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.secret_checks = 0
        self.token_checks = 0  # review_facts: what every token verification reads
        self.down = False

    def review_facts(self, *args: Any, **kwargs: Any) -> Any:
        self.token_checks += 1
        return self.inner.review_facts(*args, **kwargs)

    def authenticate_access_key(self, access_key_id: str, secret: str) -> Any:
        self.secret_checks += 1
        if self.down:
            raise StoreUnavailable("the database is down")
        return self.inner.authenticate_access_key(access_key_id, secret)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def counting_store(app_store: SqlStore) -> CountingStore:
    return CountingStore(app_store)


@pytest.fixture
def build(
    make_app: Callable[..., Flask], tmp_path: Path, counting_store: CountingStore
) -> Callable[..., FlaskClient]:
    """A client of an app with these settings (one worker unless told)."""

    def make(**flags: Any) -> FlaskClient:
        flags.setdefault("workers", 1)
        app = make_app(settings=make_settings(tmp_path, **flags), store=counting_store)
        return app.test_client()

    return make


@pytest.fixture
def client(build: Callable[..., FlaskClient]) -> FlaskClient:
    """Defaults: 10 failures per key id, 30 per address, per minute."""
    return build()


def wrong(key: NewAccessKey | str) -> dict[str, str]:
    key_id = key if isinstance(key, str) else key.key.access_key_id
    return basic(key_id, "not-the-secret")


def attempt(client: FlaskClient, headers: dict[str, str], **environ: str) -> TestResponse:
    return client.post(
        "/oauth2/token", data=CLIENT_CREDENTIALS, headers=headers, environ_base=environ
    )


def fail(client: FlaskClient, key: NewAccessKey | str, times: int, **environ: str) -> None:
    for _ in range(times):
        assert_invalid_client(attempt(client, wrong(key), **environ))


def assert_limited(response: TestResponse, retry_after: int) -> None:
    body = assert_error(response, 429, "too_many_requests", f"retry after {retry_after} s")
    assert response.headers["Retry-After"] == str(retry_after)
    assert "WWW-Authenticate" not in response.headers
    assert "not-the-secret" not in str(body)


# -- per access key id -----------------------------------------------------------------------


def test_per_key_limit_then_429_with_retry_after(client: FlaskClient, world: World) -> None:
    fail(client, world.alice_key, 10)
    # 10 a minute: the next attempt is possible in 60/10 s.
    assert_limited(attempt(client, wrong(world.alice_key)), 6)


def test_the_right_secret_is_refused_while_limited_without_checking_it(
    client: FlaskClient, world: World, counting_store: CountingStore
) -> None:
    fail(client, world.alice_key, 10)
    checks = counting_store.secret_checks
    assert_limited(session_token(client, world.alice_key), 6)
    assert_limited(attempt(client, wrong(world.alice_key)), 6)
    assert counting_store.secret_checks == checks
    # Other keys are not affected.
    assert session_token(client, world.bob_key).status_code == 200


def test_retry_after_counts_down_and_the_wait_lifts_the_limit(
    client: FlaskClient, world: World, clock: Clock
) -> None:
    fail(client, world.alice_key, 10)
    clock.advance(2)
    assert_limited(session_token(client, world.alice_key), 4)
    clock.advance(3.5)
    assert_limited(session_token(client, world.alice_key), 1)
    clock.advance(0.5)
    assert session_token(client, world.alice_key).status_code == 200


def test_after_the_wait_one_attempt_after_a_quiet_minute_a_full_burst(
    client: FlaskClient, world: World, clock: Clock
) -> None:
    fail(client, world.alice_key, 10)
    clock.advance(6)
    fail(client, world.alice_key, 1)
    assert_limited(attempt(client, wrong(world.alice_key)), 6)
    clock.advance(60)
    fail(client, world.alice_key, 10)
    assert_limited(attempt(client, wrong(world.alice_key)), 6)


def test_a_success_clears_the_key_ids_failures(client: FlaskClient, world: World) -> None:
    fail(client, world.alice_key, 9)
    assert session_token(client, world.alice_key).status_code == 200
    fail(client, world.alice_key, 10)
    assert_limited(attempt(client, wrong(world.alice_key)), 6)


def test_unknown_key_ids_are_limited_like_real_ones(client: FlaskClient) -> None:
    fail(client, UNKNOWN_KEY_ID, 10)
    assert_limited(attempt(client, wrong(UNKNOWN_KEY_ID)), 6)


def test_client_secret_post_is_limited_too(client: FlaskClient, world: World) -> None:
    key_id = world.alice_key.key.access_key_id
    data = {"grant_type": "client_credentials", "audience": "prod", "client_id": key_id}
    for _ in range(10):
        response = client.post("/oauth2/token", data={**data, "client_secret": "nope"})
        assert_invalid_client(response)
    secret = world.alice_key.secret_access_key
    assert_limited(client.post("/oauth2/token", data={**data, "client_secret": secret}), 6)


def test_introspection_and_revocation_count_and_are_refused(
    client: FlaskClient, world: World
) -> None:
    for path in ("/oauth2/introspect", "/oauth2/revoke") * 5:
        response = client.post(path, data={"token": "x"}, headers=wrong(world.alice_key))
        assert_invalid_client(response)
    assert_limited(session_token(client, world.alice_key), 6)
    response = client.post(
        "/oauth2/introspect", data={"token": "x"}, headers=key_auth(world.alice_key)
    )
    assert_limited(response, 6)


def test_lockout_by_key_id_one_address_hammering_does_not_lock_out_another(
    client: FlaskClient, world: World, counting_store: CountingStore
) -> None:
    attacker, owner = {"REMOTE_ADDR": "203.0.113.66"}, {"REMOTE_ADDR": "198.51.100.5"}
    for _ in range(10):
        assert_invalid_client(attempt(client, wrong(world.alice_key), **attacker))
    for _ in range(20):  # still hammering: refused before any secret is checked
        assert_limited(attempt(client, wrong(world.alice_key), **attacker), 6)
    checks = counting_store.secret_checks
    assert_limited(attempt(client, key_auth(world.alice_key), **attacker), 6)
    assert counting_store.secret_checks == checks
    # The owner, from elsewhere, gets a token with the right secret...
    response = attempt(client, key_auth(world.alice_key), **owner)
    assert response.status_code == 200, response.get_json()
    # ...and has its own budget for typos there.
    fail(client, world.alice_key, 10, **owner)
    assert_limited(attempt(client, key_auth(world.alice_key), **owner), 6)


def test_the_per_key_ceiling_over_all_addresses(
    build: Callable[..., FlaskClient], world: World
) -> None:
    client = build(failed_auth_per_key_all_addresses_per_minute=25)
    for n in range(5):  # 5 addresses, 5 failures each: under each pair's 10
        fail(client, world.alice_key, 5, REMOTE_ADDR=f"203.0.113.{n + 1}")
    # The id is out of attempts everywhere now, the right secret from a new address too
    # (25 a minute: the next in 60/25 s, rounded up).
    limited = attempt(client, key_auth(world.alice_key), REMOTE_ADDR="198.51.100.5")
    assert_limited(limited, 3)
    assert session_token(client, world.bob_key).status_code == 200  # other ids are not


def test_the_default_per_key_ceiling_is_far_above_one_address(client: FlaskClient) -> None:
    limits = client.application.extensions["authbridge.limits"]
    assert isinstance(limits, ClientAuthLimits)
    assert (limits.by_pair.per_minute, limits.by_address.per_minute) == (10, 30)
    assert limits.by_key.per_minute == 1000  # at 10 per address: 100 addresses to lock out


def test_each_worker_allows_its_share(build: Callable[..., FlaskClient], world: World) -> None:
    client = build(workers=2)  # 10 per instance: 5 per worker, one every 12 s
    fail(client, world.alice_key, 5)
    assert_limited(attempt(client, wrong(world.alice_key)), 12)


# -- refused token exchanges -----------------------------------------------------------------


def exchange_from(
    client: FlaskClient, subject: str, role_arn: str, address: str = "127.0.0.1", **extra: str
) -> TestResponse:
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject,
        "subject_token_type": JWT_TYPE,
        "audience": "prod",
        "role_arn": role_arn,
        "role_session_name": "s1",
        **extra,
    }
    headers = {k: v for k, v in extra.items() if k == "Authorization"}
    for name in headers:
        del data[name]
    return client.post(
        "/oauth2/token", data=data, headers=headers, environ_base={"REMOTE_ADDR": address}
    )


def test_refused_token_exchanges_are_charged_then_429_with_retry_after(
    client: FlaskClient, world: World, counting_store: CountingStore
) -> None:
    # Probing roles (or subject tokens) is limited like guessing secrets.
    subject = sts_token(client, world.alice_key)
    refused = [world.bob_only.arn, f"arn:aws:iam::{ACCOUNT}:role/Ghost"]
    for n in range(30):
        token = subject if n % 3 else "not-a-token"
        assert_error(exchange_from(client, token, refused[n % 2]), 400, "invalid_grant")
    checks = counting_store.token_checks
    limited = exchange_from(client, subject, world.admin.arn)  # one that would be allowed
    assert_error(limited, 429, "too_many_requests", "token exchanges", "retry after 2 s")
    assert limited.headers["Retry-After"] == "2"
    assert counting_store.token_checks == checks  # the subject token was not even looked at
    # Another address is not limited; the wait lifts the limit.
    assert exchange_from(client, subject, world.admin.arn, "192.0.2.9").status_code == 200


def test_a_refused_exchange_charges_the_address_not_a_key_id_it_names(
    client: FlaskClient, world: World
) -> None:
    subject = sts_token(client, world.alice_key)
    # A client_id without a secret authenticates nothing: naming bob's id charges bob nothing.
    bob_id = world.bob_key.key.access_key_id
    for _ in range(15):
        response = exchange_from(client, subject, world.bob_only.arn, client_id=bob_id)
        assert_error(response, 400, "invalid_grant")
    assert session_token(client, world.bob_key).status_code == 200
    # With client authentication: the address's bucket, whatever the key.
    for _ in range(15):
        response = exchange_from(client, subject, world.bob_only.arn, **key_auth(world.alice_key))
        assert_error(response, 400, "invalid_grant")
    assert_limited(session_token(client, world.bob_key), 2)  # 30 from 127.0.0.1


def test_exchanges_that_succeed_or_are_malformed_are_not_charged(
    client: FlaskClient, world: World
) -> None:
    subject = sts_token(client, world.alice_key)
    for _ in range(40):
        assert exchange_from(client, subject, world.admin.arn).status_code == 200
        response = exchange_from(client, subject, "not-an-arn")
        assert_error(response, 400, "invalid_request")
    assert session_token(client, world.bob_key).status_code == 200


# -- per client address ----------------------------------------------------------------------


def test_per_address_limit_across_key_ids(client: FlaskClient, world: World) -> None:
    for key_id in KEY_IDS[:7]:
        fail(client, key_id, 4)
    fail(client, KEY_IDS[7], 2)  # 30 failures from 127.0.0.1, at most 4 per key id
    assert_limited(session_token(client, world.bob_key), 2)  # 30 a minute: one every 2 s
    # Another address is not limited.
    response = attempt(client, key_auth(world.bob_key), REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200


def test_a_success_does_not_refill_the_address(client: FlaskClient, world: World) -> None:
    fail(client, UNKNOWN_KEY_ID, 9)
    fail(client, "AKIAYYYYYYYYYYYYYYYY", 9)
    fail(client, "AKIAXXXXXXXXXXXXXXXX", 9)
    assert session_token(client, world.bob_key).status_code == 200  # not a failure...
    fail(client, "AKIAWWWWWWWWWWWWWWWW", 3)  # ...but it gives none back: 30 failures
    assert_limited(attempt(client, wrong("AKIAVVVVVVVVVVVVVVVV")), 2)


def test_malformed_credentials_count_against_the_address_only(
    client: FlaskClient, world: World
) -> None:
    bad_headers = [
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer abc"},
        basic("not-an-access-key-id", "x"),
    ]
    for i in range(30):
        assert_invalid_client(attempt(client, bad_headers[i % 3]))
    assert_limited(session_token(client, world.alice_key), 2)
    response = attempt(client, key_auth(world.alice_key), REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 200


def test_ipv6_clients_count_per_64(client: FlaskClient, world: World) -> None:
    for host in range(30):
        response = attempt(client, wrong(KEY_IDS[host % 8]), REMOTE_ADDR=f"2001:db8::{host + 1:x}")
        assert_invalid_client(response)
    limited = attempt(client, key_auth(world.bob_key), REMOTE_ADDR="2001:db8::ffff:1")
    assert_limited(limited, 2)
    other_64 = attempt(client, key_auth(world.bob_key), REMOTE_ADDR="2001:db8:0:1::1")
    assert other_64.status_code == 200


def test_x_forwarded_for_only_from_trusted_proxies(
    build: Callable[..., FlaskClient], world: World
) -> None:
    client = build(trusted_proxies="10.0.0.0/8")

    def post(headers: dict[str, str], forwarded_for: str, peer: str = "10.1.2.3") -> TestResponse:
        return client.post(
            "/oauth2/token",
            data=CLIENT_CREDENTIALS,
            headers={**headers, "X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": peer},
        )

    for n in range(30):  # one client behind the proxy and an inner proxy
        assert_invalid_client(post(wrong(KEY_IDS[n % 8]), "198.51.100.9, 10.9.9.9"))
    assert_limited(post(key_auth(world.bob_key), "198.51.100.9"), 2)
    # Others behind the same proxy are not limited.
    assert post(key_auth(world.bob_key), "198.51.100.10").status_code == 200
    # A peer that is not a trusted proxy cannot choose its address.
    for n in range(30):
        assert_invalid_client(post(wrong(KEY_IDS[n % 8]), f"198.51.100.{n}", "203.0.113.5"))
    assert_limited(post(key_auth(world.bob_key), "198.51.100.99", "203.0.113.5"), 2)


def test_audit_lines_name_the_client_a_trusted_proxy_forwarded_for(
    build: Callable[..., FlaskClient], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # The token endpoint (a Flask view), /verify (Flask) and /authenticate (the WSGI
    # fast path) all name the same client: the peer, or who a trusted proxy names.
    import json
    import logging

    caplog.set_level(logging.INFO, logger="authbridge.audit")
    client = build(trusted_proxies="10.0.0.0/8")
    proxied = {"REMOTE_ADDR": "10.1.2.3"}
    hop = {"X-Forwarded-For": "2001:db8::7, 10.9.9.9"}

    def last_client(event: str) -> str | None:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "authbridge.audit"]
        value: str | None = [line for line in lines if line["event"] == event][-1]["client"]
        return value

    token = client.post(
        "/oauth2/token",
        data=CLIENT_CREDENTIALS,
        headers={**key_auth(world.bob_key), **hop},
        environ_base=proxied,
    ).get_json()["access_token"]
    assert last_client("token_issued") == "2001:db8::7"
    client.post("/verify", json={"token": token}, headers=hop, environ_base=proxied)
    assert last_client("verify") == "2001:db8::7"
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    client.post("/authenticate", json=review, headers=hop, environ_base=proxied)
    assert last_client("tokenreview") == "2001:db8::7"
    # A peer that is no trusted proxy is named itself, whatever it forwards.
    client.post(
        "/verify", json={"token": token}, headers=hop, environ_base={"REMOTE_ADDR": "203.0.113.5"}
    )
    assert last_client("verify") == "203.0.113.5"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", [], "192.0.2.1"),
        ("::ffff:192.0.2.1", [], "192.0.2.1"),
        ("2001:db8::1234", [], "2001:db8::/64"),
        ("192.0.2.1", ["198.51.100.1"], "192.0.2.1"),  # not a trusted proxy
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", ["203.0.113.1, 198.51.100.1"], "198.51.100.1"),  # right-most untrusted
        ("10.0.0.1", ["198.51.100.1", "10.0.0.2"], "198.51.100.1"),  # two headers
        ("10.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::/64"),
        ("10.0.0.1", ["garbage, 10.0.0.2"], "10.0.0.2"),  # garbage: the last trusted hop
        ("10.0.0.1", [], "10.0.0.1"),
        (None, ["198.51.100.1"], None),
        ("", [], None),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], expected: str | None) -> None:
    from ipaddress import ip_network

    assert client_address(peer, forwarded, (ip_network("10.0.0.0/8"),)) == expected


# -- off, outages, memory --------------------------------------------------------------------


def test_zero_turns_each_limit_off(build: Callable[..., FlaskClient], world: World) -> None:
    client = build(
        failed_auth_per_key_per_minute=0,
        failed_auth_per_address_per_minute=0,
        failed_auth_per_key_all_addresses_per_minute=0,
    )
    fail(client, world.alice_key, 40)
    assert session_token(client, world.alice_key).status_code == 200

    all_addresses_only = build(
        failed_auth_per_key_per_minute=0,
        failed_auth_per_address_per_minute=0,
        failed_auth_per_key_all_addresses_per_minute=20,
    )
    fail(all_addresses_only, world.alice_key, 20)
    assert_limited(session_token(all_addresses_only, world.alice_key), 3)

    per_address_only = build(failed_auth_per_key_per_minute=0)
    fail(per_address_only, world.alice_key, 30)
    assert_limited(session_token(per_address_only, world.alice_key), 2)

    per_key_only = build(failed_auth_per_address_per_minute=0)
    for n in range(8):
        fail(per_key_only, KEY_IDS[n], 10)
    fail(per_key_only, world.alice_key, 10)
    assert_limited(session_token(per_key_only, world.alice_key), 6)
    assert session_token(per_key_only, world.bob_key).status_code == 200


def test_a_store_outage_charges_nothing(
    client: FlaskClient, world: World, counting_store: CountingStore
) -> None:
    counting_store.down = True
    for _ in range(40):
        assert_error(session_token(client, world.alice_key), 503, "temporarily_unavailable")
    counting_store.down = False
    fail(client, world.alice_key, 10)
    assert_limited(session_token(client, world.alice_key), 6)


def test_memory_is_bounded_least_recently_charged_first() -> None:
    limiter = FailureLimiter(3, max_entries=100)
    for n in range(1000):
        assert limiter.charge(f"key-{n}", 0.0) == 0.0
    assert len(limiter) == 100
    for _ in range(2):
        limiter.charge("key-999", 0.0)
    assert limiter.charge("key-999", 0.0) == 20.0  # kept: the most recent
    assert limiter.charge("key-0", 0.0) == 0.0  # dropped long ago: a fresh bucket
    assert len(limiter) == 100


def test_a_full_bucket_is_not_stored_and_a_clock_step_back_is_bounded() -> None:
    limiter = FailureLimiter(10)
    for _ in range(10):
        limiter.charge("k", 1000.0)
    assert limiter.wait("k", 1000.0) == pytest.approx(6.0)
    assert limiter.wait("k", 1060.0) == 0.0
    assert len(limiter) == 0  # looked at when full again: forgotten
    for _ in range(10):
        limiter.charge("k", 1000.0)
    assert limiter.wait("k", 0.0) == pytest.approx(6.0)  # the clock went back 1000 s


def test_concurrent_successes_from_one_address_are_never_limited() -> None:
    # Only failures are charged: a CI runner behind one NAT address may have many
    # token requests in flight at once, all with the right secret.
    limits = ClientAuthLimits(5, 5)
    in_flight = [limits.begin("192.0.2.7", KEY_IDS[i % len(KEY_IDS)], 0.0) for i in range(50)]
    for attempt in in_flight:
        attempt.succeeded()
    for _ in range(5):
        limits.begin("192.0.2.7", None, 0.0).failed()
    with pytest.raises(TooManyFailedAttempts):
        limits.begin("192.0.2.7", None, 0.0)


def test_a_refused_key_id_still_charges_the_address() -> None:
    limits = ClientAuthLimits(1, 2)
    limits.begin("192.0.2.1", UNKNOWN_KEY_ID, 0.0).failed()
    with pytest.raises(TooManyFailedAttempts) as refused:
        limits.begin("192.0.2.1", UNKNOWN_KEY_ID, 0.0)
    assert refused.value.retry_after == 60
    limits.begin("192.0.2.1", None, 0.0).failed()  # the address still had one left
    with pytest.raises(TooManyFailedAttempts) as refused:
        limits.begin("192.0.2.1", None, 0.0)
    assert refused.value.retry_after == 30


@pytest.mark.parametrize(
    ("per_instance", "workers", "each"), [(10, 1, 10), (10, 2, 5), (10, 3, 3), (2, 4, 1), (0, 4, 0)]
)
def test_per_worker_share(per_instance: int, workers: int, each: int) -> None:
    assert per_worker(per_instance, workers) == each


# -- sizes -----------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/openid/v1/jwks"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/oauth2/token"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/revoke"),
    ("POST", "/oauth2/authorize"),
    ("GET", "/verify"),
    ("POST", "/verify"),
    ("POST", "/authenticate"),
    ("POST", "/no/such/path"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_refuses_an_oversized_body_with_413_json(
    client: FlaskClient, method: str, path: str
) -> None:
    response = client.open(
        path,
        method=method,
        data=b"x" * (64 * 1024 + 1),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert "65536 bytes" in str(body)
    if path not in ("/verify", "/authenticate"):
        assert_error(response, 413, "invalid_request", "65536 bytes")
    else:  # the webhook's and /verify's own error form, never a TokenReview
        assert set(body) == {"error"}


def test_max_request_bytes_is_honoured(build: Callable[..., FlaskClient], world: World) -> None:
    client = build(max_request_bytes=20_000)
    padding = "x" * 19_000
    assert session_token(client, world.alice_key, padding=padding).status_code == 200
    response = session_token(client, world.alice_key, padding=padding + "x" * 1_000)
    assert_error(response, 413, "invalid_request", "20000 bytes")
    response = client.post("/authenticate", data=b"{" + b" " * 20_000 + b"}")
    assert response.status_code == 413
    assert "20000 bytes" in response.get_json()["error"]


def test_an_oversized_authorization_header_is_431_and_no_failed_attempt(
    client: FlaskClient, world: World, counting_store: CountingStore
) -> None:
    huge = {"Authorization": "Basic " + "A" * MAX_AUTHORIZATION_CHARS}
    for _ in range(40):
        response = attempt(client, huge)
        assert_error(response, 431, "invalid_request", "Authorization header")
    assert counting_store.secret_checks == 0
    assert session_token(client, world.alice_key).status_code == 200

    response = client.get(
        "/verify", headers={"Authorization": "Bearer " + "a" * MAX_AUTHORIZATION_CHARS}
    )
    assert response.status_code == 431
    assert "Authorization header" in response.get_json()["error"]
    # At the cap, /verify looks at the token (and says why it is refused).
    at_the_cap = "Bearer " + "a" * (MAX_AUTHORIZATION_CHARS - 7)
    response = client.get("/verify", headers={"Authorization": at_the_cap})
    assert response.status_code == 200
    assert response.get_json()["authenticated"] is False


def test_a_basic_header_under_the_cap_is_still_a_failed_attempt(
    client: FlaskClient, world: World
) -> None:
    key_id = world.alice_key.key.access_key_id
    long_secret = base64.b64encode(f"{key_id}:{'s' * 7000}".encode()).decode()
    for _ in range(10):
        assert_invalid_client(attempt(client, {"Authorization": f"Basic {long_secret}"}))
    assert_limited(session_token(client, world.alice_key), 6)


# -- settings --------------------------------------------------------------------------------


def test_settings_defaults_env_and_validation(tmp_path: Path) -> None:
    s = load_settings({}, {}, None, cwd=tmp_path)
    assert (s.failed_auth_per_key_per_minute, s.failed_auth_per_address_per_minute) == (10, 30)
    assert (s.max_request_bytes, s.trusted_proxies) == (65536, ())

    env = {
        "AUTHBRIDGE_FAILED_AUTH_PER_KEY_PER_MINUTE": "0",
        "AUTHBRIDGE_FAILED_AUTH_PER_ADDRESS_PER_MINUTE": "100",
        "AUTHBRIDGE_MAX_REQUEST_BYTES": "131072",
        "AUTHBRIDGE_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8,192.0.2.1",
    }
    s = load_settings({}, env, None, cwd=tmp_path)
    assert (s.failed_auth_per_key_per_minute, s.failed_auth_per_address_per_minute) == (0, 100)
    assert s.max_request_bytes == 131072
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]

    conf = tmp_path / "authbridge.yaml"
    conf.write_text(
        "failedAuthPerKeyPerMinute: -1\nfailedAuthPerAddressPerMinute: lots\n"
        "maxRequestBytes: 1024\ntrustedProxies: [10.0.0.0/33]\n"
    )
    with pytest.raises(ConfigError) as e:
        load_settings({}, {}, conf, cwd=tmp_path)
    text = str(e.value)
    assert "failedAuthPerKeyPerMinute must be between 0 and 10000" in text
    assert "failedAuthPerAddressPerMinute must be a whole number of attempts" in text
    assert "maxRequestBytes must be between 16384 and 16777216" in text
    assert "trustedProxies '10.0.0.0/33' is not a CIDR" in text


# -- the connection cap's address ------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8::1234", "2001:db8::/64"),
        ("10.0.0.1", None),  # a trusted proxy: not capped per address
        ("", None),  # a Unix socket has no address
        (None, None),
    ],
)
def test_connection_address(peer: str | None, expected: str | None) -> None:
    from ipaddress import ip_network

    assert connection_address(peer, (ip_network("10.0.0.0/8"),)) == expected


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.text(max_size=60),
    )
)
def test_connection_address_of_any_peer_is_an_address_or_none(peer: str) -> None:
    # Whatever the socket reports, the worker gets a bucket or None, never an error.
    found = connection_address(peer, ())
    assert found is None or found == client_address(peer, [], ())
