"""POST /oauth2/token with grant_type=client_credentials (GetSessionToken), on every backend.

Covers:
- client_secret_basic and client_secret_post both issue a token; the response is
  exactly access_token / token_type / expires_in (no refresh token), no-store;
- the token verifies with PyJWT using nothing but the JWKS document the app serves,
  and says what docs/architecture.md says (sub, arn, principal_id, access_key_id, aud, iss);
- duration_seconds: default 900, any value 900..maxUserTokenLifetimeSeconds;
- every refusal with its exact error and status: wrong secret, unknown key,
  inactive key, disabled user, malformed Authorization headers and no
  credentials (one invalid_client 401 answer for all, with WWW-Authenticate);
  missing / unknown audience; duration too long, too short, not a number;
  unsupported or missing grant_type; oversized body (413); parameters in the
  URL, a JSON body, a repeated parameter, two client auth methods; GET;
- a secret never appears in any response; the key's last use is recorded;
- an unavailable store is 503 temporarily_unavailable, an unexpected error a
  bare 500 server_error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from authbridge.errors import StoreUnavailable
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT
from tests.web.helpers import (
    ISSUER,
    NO_STORE,
    World,
    assert_error,
    assert_invalid_client,
    basic,
    key_auth,
    session_token,
)


@pytest.fixture
def app_store(store: SqlStore) -> SqlStore:
    """Run this module on SQLite and PostgreSQL."""
    return store


def test_client_secret_basic_issues_a_token(client: FlaskClient, world: World) -> None:
    response = session_token(client, world.alice_key)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response.mimetype == "application/json"
    for name, value in NO_STORE.items():
        assert response.headers[name] == value


def test_client_secret_post_issues_a_token(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "audience": "staging",
            "client_id": world.alice_key.key.access_key_id,
            "client_secret": world.alice_key.secret_access_key,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"access_token", "token_type", "expires_in"}


def test_the_token_verifies_with_only_the_served_jwks(
    client: FlaskClient, world: World, clock: Any
) -> None:
    token = session_token(client, world.alice_key).get_json()["access_token"]
    jwks_uri = client.get("/.well-known/openid-configuration").get_json()["jwks_uri"]
    jwks = client.get(jwks_uri.removeprefix(ISSUER)).get_json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="prod", issuer=ISSUER)
    assert claims == {
        "iss": ISSUER,
        "sub": world.alice.arn,
        "aud": "prod",
        "exp": int(clock.now) + 900,
        "iat": int(clock.now),
        "nbf": int(clock.now),
        "jti": claims["jti"],
        "arn": world.alice.arn,
        "account": ACCOUNT,
        "principal_id": world.alice.user_id,
        "access_key_id": world.alice_key.key.access_key_id,
        "source_identity": world.alice.user_id,
    }
    assert world.alice.arn == f"arn:aws:iam::{ACCOUNT}:user/team/alice"


@pytest.mark.parametrize("duration", ["900", "1800", "3600"])
def test_duration_within_the_user_cap(client: FlaskClient, world: World, duration: str) -> None:
    response = session_token(client, world.alice_key, duration_seconds=duration)
    assert response.status_code == 200
    assert response.get_json()["expires_in"] == int(duration)


def test_last_used_is_recorded(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    key_id = world.alice_key.key.access_key_id
    assert app_store.get_access_key(key_id).last_used_at is None
    assert session_token(client, world.alice_key).status_code == 200
    assert app_store.get_access_key(key_id).last_used_at is not None


# -- client authentication refusals: one answer for all ------------------------------


def test_wrong_secret(client: FlaskClient, world: World) -> None:
    key_id = world.alice_key.key.access_key_id
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "prod"},
        headers=basic(key_id, "x" * 40),
    )
    assert_invalid_client(response)


def test_wrong_secret_by_post(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "audience": "prod",
            "client_id": world.alice_key.key.access_key_id,
            "client_secret": "wrong",
        },
    )
    assert_invalid_client(response)


def test_unknown_key(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "prod"},
        headers=basic("AKIAAAAAAAAAAAAAAAAA", world.alice_key.secret_access_key),
    )
    assert_invalid_client(response)


def test_inactive_key(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    app_store.update_access_key(world.alice_key.key.access_key_id, "Inactive")
    assert_invalid_client(session_token(client, world.alice_key))


def test_disabled_user(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    assert_invalid_client(session_token(client, world.alice_key))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + _b64(b"no-colon-here"),
        "Basic " + _b64(b"\xff\xfe:\xff"),
        "Basic " + _b64(b":only-a-secret"),
        "Basic ",
        "Basic",
        "Bearer some.jwt.value",
        "Digest username=x",
    ],
)
def test_malformed_authorization_header(client: FlaskClient, world: World, header: str) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "prod"},
        headers={"Authorization": header},
    )
    assert_invalid_client(response)


def test_no_credentials(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "audience": "prod"}
    )
    assert_invalid_client(response)


def test_client_id_without_secret(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "audience": "prod",
            "client_id": world.alice_key.key.access_key_id,
        },
    )
    assert_invalid_client(response)


# -- request refusals ---------------------------------------------------------------


def test_missing_audience(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=key_auth(world.alice_key),
    )
    assert_error(response, 400, "invalid_request", "audience", "is required")


def test_unknown_audience(client: FlaskClient, world: World) -> None:
    response = session_token(client, world.alice_key, audience="dev-cluster")
    body = assert_error(response, 400, "invalid_target", "audience", "not a cluster")
    assert "dev-cluster" not in body["error_description"]


@pytest.mark.parametrize("duration", ["3601", "43200", "899", "0"])
def test_duration_out_of_range(client: FlaskClient, world: World, duration: str) -> None:
    response = session_token(client, world.alice_key, duration_seconds=duration)
    assert_error(
        response, 400, "invalid_request", "duration_seconds", "between 900 and 3600", duration
    )


@pytest.mark.parametrize("duration", ["abc", "-900", "1e3", "900.0", " 900", "1234567"])
def test_duration_not_a_number(client: FlaskClient, world: World, duration: str) -> None:
    response = session_token(client, world.alice_key, duration_seconds=duration)
    assert_error(response, 400, "invalid_request", "duration_seconds", "whole number of seconds")


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:example:grant"])
def test_unsupported_grant(client: FlaskClient, world: World, grant_type: str) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": grant_type, "audience": "prod"},
        headers=key_auth(world.alice_key),
    )
    body = assert_error(response, 400, "unsupported_grant_type", "client_credentials")
    assert grant_type not in body["error_description"]


def test_missing_grant_type(client: FlaskClient, world: World) -> None:
    response = client.post("/oauth2/token", data={"audience": "prod"})
    assert_error(response, 400, "invalid_request", "grant_type is required")


def test_oversized_body(client: FlaskClient, world: World) -> None:
    response = session_token(client, world.alice_key, padding="x" * (64 * 1024))
    assert_error(response, 413, "invalid_request", "65536 bytes")


def test_parameters_in_the_url_are_refused(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token?audience=prod",
        data={"grant_type": "client_credentials"},
        headers=key_auth(world.alice_key),
    )
    assert_error(response, 400, "invalid_request", "not the URL")


def test_json_body_is_refused(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "audience": "prod"},
        headers=key_auth(world.alice_key),
    )
    assert_error(response, 400, "invalid_request", "application/x-www-form-urlencoded")


def test_repeated_parameter_is_refused(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data="grant_type=client_credentials&audience=prod&audience=staging",
        content_type="application/x-www-form-urlencoded",
        headers=key_auth(world.alice_key),
    )
    assert_error(response, 400, "invalid_request", "audience is repeated")


def test_two_client_auth_methods_are_refused(client: FlaskClient, world: World) -> None:
    response = session_token(
        client,
        world.alice_key,
        client_id=world.alice_key.key.access_key_id,
        client_secret=world.alice_key.secret_access_key,
    )
    assert_error(response, 400, "invalid_request", "one client authentication method")


def test_get_is_not_allowed(client: FlaskClient) -> None:
    response = client.get("/oauth2/token")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_a_secret_never_appears_in_a_response(client: FlaskClient, world: World) -> None:
    secret = world.alice_key.secret_access_key
    key_id = world.alice_key.key.access_key_id
    responses = [
        session_token(client, world.alice_key),
        session_token(client, world.alice_key, audience="nope"),
        session_token(client, world.alice_key, duration_seconds="99999"),
        client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "audience": "prod"},
            headers=basic(key_id, secret + "x"),
        ),
        client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": key_id,
                "client_secret": secret[:-1],
            },
        ),
        client.post(
            "/oauth2/token",
            data={"grant_type": secret, "client_id": key_id, "client_secret": secret},
        ),
        client.post(f"/oauth2/token?client_secret={secret}", data={"grant_type": "x"}),
    ]
    for response in responses:
        assert secret not in response.get_data(as_text=True)
        assert all(secret not in value for _, value in response.headers.items())


# -- server-side failures --------------------------------------------------------------


class _FailingStore:
    """A store whose key check fails the way a database outage (or a bug) does."""

    partition = "aws"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def authenticate_access_key(self, access_key_id: str, secret: str) -> Any:
        raise self.error

    def schema_version(self) -> int:
        raise self.error


def test_store_unavailable_is_503(make_app: Callable[..., Flask], world: World) -> None:
    client = make_app(store=_FailingStore(StoreUnavailable("db down at 10.0.0.1"))).test_client()
    response = session_token(client, world.alice_key)
    body = assert_error(response, 503, "temporarily_unavailable")
    assert "10.0.0.1" not in json.dumps(body)


def test_unexpected_error_is_a_bare_500(make_app: Callable[..., Flask], world: World) -> None:
    client = make_app(store=_FailingStore(RuntimeError("internal detail xyz"))).test_client()
    response = session_token(client, world.alice_key)
    body = assert_error(response, 500, "server_error")
    assert "xyz" not in response.get_data(as_text=True)
    assert "internal detail" not in body.get("error_description", "")
