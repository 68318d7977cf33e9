"""Helpers shared by the web tests: a settable clock, the IAM world, request shortcuts."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import jwt
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge.errors import StoreUnavailable
from authbridge.iam.model import Group, NewAccessKey, Role, User
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT

ISSUER = "https://authbridge.test"
STS = ISSUER + "/sts"  # the audience of subject tokens (authbridge.sts.sts_audience)
CLUSTERS = ("prod", "staging")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CLIENT_AUTH_FAILED = (
    "client authentication failed: the access key id or secret is not valid,"
    " or the key or its user is not active"
)


class Clock:
    """Wall-clock seconds that only move when a test says so (also drives the KeyRing)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class World:
    """The IAM entities every web test starts with (account 111122223333).

    alice (path /team/) is in group devs; bob is in no group. Roles:
    Admin (/platform/, max 3600 s) trusts alice; Dev (max 7200 s) trusts group
    devs; Reader trusts the account root; BobOnly trusts bob.
    """

    alice: User
    alice_key: NewAccessKey
    bob: User
    bob_key: NewAccessKey
    devs: Group
    admin: Role
    dev: Role
    reader: Role
    bob_only: Role


def build_world(store: SqlStore) -> World:
    alice = store.create_user(ACCOUNT, "alice", path="/team/")
    bob = store.create_user(ACCOUNT, "bob")
    devs = store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    return World(
        alice=alice,
        alice_key=store.create_access_key(ACCOUNT, "alice"),
        bob=bob,
        bob_key=store.create_access_key(ACCOUNT, "bob"),
        devs=devs,
        admin=store.create_role(
            ACCOUNT, "Admin", trust=[alice.arn], path="/platform/", max_session_duration=3600
        ),
        dev=store.create_role(ACCOUNT, "Dev", trust=[devs.arn], max_session_duration=7200),
        reader=store.create_role(ACCOUNT, "Reader", trust=[f"arn:aws:iam::{ACCOUNT}:root"]),
        bob_only=store.create_role(ACCOUNT, "BobOnly", trust=[bob.arn]),
    )


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def key_auth(key: NewAccessKey) -> dict[str, str]:
    return basic(key.key.access_key_id, key.secret_access_key)


def session_token(
    client: FlaskClient, key: NewAccessKey, audience: str = "prod", **extra: str
) -> TestResponse:
    """POST client_credentials with HTTP Basic."""
    return client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": audience, **extra},
        headers=key_auth(key),
    )


def user_token(client: FlaskClient, key: NewAccessKey, audience: str = "prod") -> str:
    response = session_token(client, key, audience)
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["access_token"]
    return token


def sts_token(client: FlaskClient, key: NewAccessKey) -> str:
    """A user token for the sts audience: what AssumeRole takes as subject_token."""
    return user_token(client, key, STS)


def exchange(
    client: FlaskClient,
    subject_token: str,
    role_arn: str,
    session: str = "alice-session",
    *,
    audience: str = "prod",
    headers: dict[str, str] | None = None,
    **extra: str,
) -> TestResponse:
    """POST an RFC 8693 token exchange (AssumeRole), without client auth unless headers say."""
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": JWT_TYPE,
        "audience": audience,
        "role_arn": role_arn,
        "role_session_name": session,
        **extra,
    }
    return client.post("/oauth2/token", data=data, headers=headers or {})


def assert_error(
    response: TestResponse, status: int, error: str, *fragments: str
) -> dict[str, Any]:
    """The response is exactly an RFC 6749 §5.2 error with this code and status."""
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == "application/json"
    assert set(body) <= {"error", "error_description"}
    assert body["error"] == error, body
    for fragment in fragments:
        assert fragment in body.get("error_description", ""), body
    for name, value in NO_STORE.items():
        assert response.headers.get(name) == value
    return dict(body)


def assert_invalid_client(response: TestResponse) -> None:
    body = assert_error(response, 401, "invalid_client")
    assert body["error_description"] == CLIENT_AUTH_FAILED
    assert response.headers["WWW-Authenticate"] == 'Basic realm="authbridge"'


def claims_of(token: str) -> dict[str, Any]:
    """The claims, unverified (for looking; verification is tested separately)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


class FlakyStore:
    """The real store, or StoreUnavailable from every call while ``down``.

    The failure's message holds a DSN with a password, as a driver's might:
    tests check it never reaches an answer or a log.
    """

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.partition = inner.partition
        self.down = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("cannot reach postgresql://admin:hunter2@db/iam")
            return value(*args, **kwargs)

        return call
