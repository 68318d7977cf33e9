"""RFC 7662 introspection and RFC 7009 revocation.

Covers:
- introspection needs client authentication with an active access key (none,
  a wrong secret, an inactive key: invalid_client 401); basic and post both work;
- an active token's answer has exactly the documented members, for a user token
  and for a role session; anything else is exactly {"active": false}: garbage,
  a token of another issuer, expired, for a cluster not served, revoked, of a
  disabled user, minted from a key made inactive since;
- revocation: no client auth needed; 200 and an empty body for a revoked,
  unknown, malformed, expired or already revoked token; token_type_hint accepted
  and ignored; a wrong client secret is still invalid_client; with another
  user's client auth exactly the presented token is revoked (the presenting
  holder's), nothing else;
- the jti is kept until the token's exp plus the leeway, then may be purged;
- a disabled user's token revoked stays revoked once the user is enabled again;
- a revocation made through one app is seen at once by a second app (another
  replica: its own store connection and key ring over the same database and
  keys/), on SQLite and PostgreSQL. The bound is zero: both read the store on
  every verification.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authbridge.errors import TokenRevoked
from authbridge.iam.credentials import Pepper
from authbridge.keys import KeyDirectory, KeyRing, KeySet, generate_signing_key
from authbridge.settings import Settings
from authbridge.store import SqlStore, open_store
from authbridge.sts import IssuerPolicy, verify_token
from authbridge.tokens import MAX_LEEWAY, Principal, mint
from authbridge.web import create_app
from tests.conftest import ACCOUNT
from tests.web.helpers import (
    NO_STORE,
    Clock,
    World,
    assert_error,
    assert_invalid_client,
    basic,
    build_world,
    claims_of,
    exchange,
    key_auth,
    sts_token,
    user_token,
)

ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
USER_MEMBERS = {
    "active", "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "token_type",
    "arn", "account", "principal_id", "access_key_id", "username",
}  # fmt: skip
ROLE_MEMBERS = USER_MEMBERS - {"access_key_id", "username"} | {"session_name"}


def introspect(client: FlaskClient, token: str, auth: dict[str, str]) -> Any:
    response = client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert response.status_code == 200, response.get_json()
    for name, value in NO_STORE.items():
        assert response.headers[name] == value
    return response.get_json()


def assert_inactive(client: FlaskClient, token: str, auth: dict[str, str]) -> None:
    response = client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert response.status_code == 200
    assert response.get_json() == {"active": False}
    assert response.get_data() in (b'{"active": false}', b'{"active":false}')


def revoke(client: FlaskClient, token: str, **extra: Any) -> Any:
    headers = extra.pop("headers", {})
    response = client.post("/oauth2/revoke", data={"token": token, **extra}, headers=headers)
    return response


# -- introspection: who may ask ----------------------------------------------------------


def test_introspection_requires_client_auth(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    assert_invalid_client(client.post("/oauth2/introspect", data={"token": token}))


def test_introspection_with_a_wrong_secret(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    headers = basic(world.bob_key.key.access_key_id, "wrong")
    assert_invalid_client(client.post("/oauth2/introspect", data={"token": token}, headers=headers))


def test_introspection_with_an_inactive_key(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    app_store.update_access_key(world.bob_key.key.access_key_id, "Inactive")
    response = client.post(
        "/oauth2/introspect", data={"token": token}, headers=key_auth(world.bob_key)
    )
    assert_invalid_client(response)


def test_introspection_by_post(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    response = client.post(
        "/oauth2/introspect",
        data={
            "token": token,
            "client_id": world.bob_key.key.access_key_id,
            "client_secret": world.bob_key.secret_access_key,
        },
    )
    assert response.get_json()["active"] is True


def test_introspection_needs_a_token(client: FlaskClient, world: World) -> None:
    response = client.post("/oauth2/introspect", data={}, headers=key_auth(world.bob_key))
    assert_error(response, 400, "invalid_request", "token is required")


# -- introspection: what it says ----------------------------------------------------------


def test_active_user_token(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    body = introspect(client, token, key_auth(world.bob_key))
    assert set(body) == USER_MEMBERS
    claims = claims_of(token)
    assert body == {
        "active": True,
        **{name: claims[name] for name in USER_MEMBERS & set(claims)},
        "token_type": "Bearer",
        "username": "alice",
    }
    assert body["access_key_id"] == world.alice_key.key.access_key_id


def test_active_role_session(client: FlaskClient, world: World) -> None:
    role_token = exchange(client, sts_token(client, world.alice_key), ADMIN_ARN, "ops")
    token = role_token.get_json()["access_token"]
    body = introspect(client, token, key_auth(world.alice_key))
    assert set(body) == ROLE_MEMBERS
    assert body["session_name"] == "ops"
    assert body["sub"] == ADMIN_ARN
    assert body["principal_id"] == f"{world.admin.role_id}:ops"


def _foreign_token(world: World, clock: Clock, *, issuer: str, keys: KeySet | None = None) -> str:
    keys = keys or KeySet((generate_signing_key("ES256", now=int(clock.now) - 10),))
    principal = Principal(
        arn=world.alice.arn,
        canonical_arn=world.alice.arn,
        account_id=ACCOUNT,
        principal_id=world.alice.user_id,
    )
    return mint(principal, keys=keys, issuer=issuer, audience="prod", now=clock.now).token


def test_inactive_shapes(
    client: FlaskClient,
    world: World,
    clock: Clock,
    keyring: KeyRing,
    app_store: SqlStore,
) -> None:
    auth = key_auth(world.bob_key)
    assert_inactive(client, "garbage", auth)
    assert_inactive(client, "a.b.c", auth)
    # Signed with our own key, but for another issuer or a cluster not served.
    assert_inactive(
        client, _foreign_token(world, clock, issuer="https://evil", keys=keyring.current()), auth
    )
    assert_inactive(client, _foreign_token(world, clock, issuer="https://authbridge.test"), auth)
    staging = user_token(client, world.alice_key, audience="staging")
    assert introspect(client, staging, auth)["active"] is True

    expiring = user_token(client, world.alice_key)
    clock.advance(900 + MAX_LEEWAY)
    assert_inactive(client, expiring, auth)


def test_inactive_after_the_user_is_disabled(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    assert_inactive(client, token, key_auth(world.bob_key))


def test_inactive_after_the_access_key_is_deactivated(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    app_store.update_access_key(world.alice_key.key.access_key_id, "Inactive")
    assert_inactive(client, token, key_auth(world.bob_key))


# -- revocation --------------------------------------------------------------------------


def test_revoke_then_introspect(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    response = revoke(client, token)
    assert response.status_code == 200
    assert response.get_data() == b""
    for name, value in NO_STORE.items():
        assert response.headers[name] == value
    assert_inactive(client, token, key_auth(world.bob_key))


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 9000])
def test_revoke_unknown_or_malformed_is_200(client: FlaskClient, world: World, token: str) -> None:
    response = revoke(client, token)
    assert response.status_code == 200
    assert response.get_data() == b""


def test_revoke_twice_and_with_any_hint(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    assert revoke(client, token, token_type_hint="access_token").status_code == 200
    assert revoke(client, token, token_type_hint="refresh_token").status_code == 200
    assert revoke(client, token, token_type_hint="whatever").status_code == 200
    assert_inactive(client, token, key_auth(world.bob_key))


def test_revoke_an_expired_token_stores_nothing(
    client: FlaskClient, world: World, clock: Clock, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    clock.advance(900 + MAX_LEEWAY)
    assert revoke(client, token).status_code == 200
    assert not app_store.is_token_revoked(claims_of(token)["jti"])


def test_revoke_needs_a_token(client: FlaskClient, world: World) -> None:
    assert_error(
        client.post("/oauth2/revoke", data={}), 400, "invalid_request", "token is required"
    )


def test_revoke_with_a_wrong_client_secret(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    headers = basic(world.alice_key.key.access_key_id, "wrong")
    assert_invalid_client(revoke(client, token, headers=headers))
    assert introspect(client, token, key_auth(world.bob_key))["active"] is True


def test_revoke_with_another_users_client_auth_revokes_exactly_the_presented_token(
    client: FlaskClient, world: World
) -> None:
    # Decision: holding a token is enough to revoke it (revoking only removes
    # access). Bob, authenticated, presents Alice's token: that token, and only
    # that one, is revoked; Bob's own token and Alice's other tokens live on.
    alice_1 = user_token(client, world.alice_key)
    alice_2 = user_token(client, world.alice_key)
    bob = user_token(client, world.bob_key)
    response = revoke(client, alice_1, headers=key_auth(world.bob_key))
    assert response.status_code == 200
    auth = key_auth(world.bob_key)
    assert_inactive(client, alice_1, auth)
    assert introspect(client, alice_2, auth)["active"] is True
    assert introspect(client, bob, auth)["active"] is True


def test_revocation_is_kept_until_expiry_plus_leeway(
    client: FlaskClient, world: World, clock: Clock, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    revoke(client, token)
    claims = claims_of(token)
    still_verifiable = datetime.fromtimestamp(claims["exp"] + MAX_LEEWAY - 1, UTC)
    app_store.purge_revoked_tokens(now=still_verifiable)
    assert app_store.is_token_revoked(claims["jti"])
    after = datetime.fromtimestamp(claims["exp"] + MAX_LEEWAY + 1, UTC)
    app_store.purge_revoked_tokens(now=after)
    assert not app_store.is_token_revoked(claims["jti"])


def test_a_disabled_users_token_stays_revoked_when_enabled_again(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    assert revoke(client, token).status_code == 200
    app_store.set_user_enabled(ACCOUNT, "alice", True)
    assert_inactive(client, token, key_auth(world.bob_key))


def test_a_revoked_role_session(client: FlaskClient, world: World) -> None:
    token = exchange(client, sts_token(client, world.alice_key), ADMIN_ARN).get_json()[
        "access_token"
    ]
    revoke(client, token)
    assert_inactive(client, token, key_auth(world.alice_key))


# -- every worker / replica ---------------------------------------------------------------


@pytest.fixture
def replicas(
    empty_dsn: str, pepper: Pepper, settings: Settings, key_directory: KeyDirectory, clock: Clock
) -> Iterator[tuple[Flask, Flask, World, SqlStore]]:
    """Two apps, each with its own store connection and key ring, over one database."""
    first = open_store(empty_dsn, pepper=pepper)
    second = open_store(empty_dsn, pepper=pepper)
    try:
        first.create_account(ACCOUNT)
        world = build_world(first)
        apps = [
            create_app(settings, store=s, keys=KeyRing(key_directory, clock=clock), clock=clock)
            for s in (first, second)
        ]
        yield apps[0], apps[1], world, second
    finally:
        first.close()
        second.close()


def test_a_revocation_is_seen_at_once_by_another_replica(
    replicas: tuple[Flask, Flask, World, SqlStore],
    settings: Settings,
    key_directory: KeyDirectory,
    clock: Clock,
) -> None:
    app_a, app_b, world, store_b = replicas
    a, b = app_a.test_client(), app_b.test_client()
    token = user_token(a, world.alice_key)
    auth = key_auth(world.bob_key)
    assert introspect(b, token, auth)["active"] is True
    assert revoke(a, token).status_code == 200
    # No clock movement, no cache to expire: the very next check on B refuses it.
    assert_inactive(b, token, auth)
    with pytest.raises(TokenRevoked):
        verify_token(
            store_b,
            key_directory.load(),
            IssuerPolicy.from_settings(settings),
            token,
            now=clock.now,
        )
    subject = sts_token(a, world.alice_key)
    assert revoke(a, subject).status_code == 200
    response = exchange(b, subject, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "subject_token revoked")
