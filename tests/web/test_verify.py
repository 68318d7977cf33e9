"""GET|POST /verify: what Kubernetes would see for a token, or precisely why not.

Covers:
- GET and POST; the token in ``Authorization: Bearer`` or in a JSON body;
  the answer's members for a mapped user (identity, kubernetes, matchedRule,
  contributingRules, token with ``verified: true``) and a role session;
- each refusal's precise reason and code: expired (with the time), an
  audience this server does not serve, an audience other than the clusterID
  asked for, unknown key id, user disabled, access key inactive, no mapping
  rule matched, revoked, malformed; the token's unverified header and claims
  shown with ``verified: false`` when they can be read;
- clusterID in the body or the query: served or 400;
- 400 without a token, with the token in the URL, with it twice, with a
  non-JSON body; 503 when the store is down;
- the token never appears in an answer; nothing is cached; a counter per
  outcome and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge.keys import KeyRing, KeySet, generate_signing_key
from authbridge.store import SqlStore
from authbridge.tokens import Principal, mint
from tests.conftest import ACCOUNT
from tests.web.helpers import ISSUER, Clock, FlakyStore, World, exchange, sts_token, user_token
from tests.web.test_webhook import (  # the same app, mapping and store double
    ADMIN_ARN,
    ALICE_ARN,
    BOB_ARN,
    DEVS_ARN,
    build,
    holder,
    sample,
    settings,
)

__all__ = ["build", "holder", "settings"]  # fixtures, imported for pytest


def verify(client: FlaskClient, token: str | None = None, **body: Any) -> TestResponse:
    """POST {"token": …} (plus ``body``)."""
    if token is not None:
        body["token"] = token
    return client.post("/verify", json=body)


def answer(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data()
    assert response.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = response.get_json()
    return doc


def refused(response: TestResponse, code: str) -> dict[str, Any]:
    doc = answer(response)
    assert doc["authenticated"] is False
    assert doc["reasonCode"] == code, doc
    assert "kubernetes" not in doc
    return doc


@pytest.fixture
def client(build: Callable[..., Flask]) -> FlaskClient:
    return build().test_client()


def _alice(world: World) -> Principal:
    return Principal(
        arn=ALICE_ARN,
        canonical_arn=ALICE_ARN,
        account_id=ACCOUNT,
        principal_id=world.alice.user_id,
    )


# --------------------------------------------------------------------------- accepted


def test_bearer_get_and_json_post_agree(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    by_header = answer(client.get("/verify", headers={"Authorization": f"Bearer {token}"}))
    by_post = answer(client.post("/verify", headers={"Authorization": f"bearer {token}"}))
    by_body = answer(verify(client, token))
    assert by_header == by_post == by_body
    key_id = world.alice_key.key.access_key_id
    claims_exp = by_body["token"]["exp"]
    assert by_body == {
        "authenticated": True,
        "clusters": ["prod"],
        "identity": {
            "arn": ALICE_ARN,
            "canonicalArn": ALICE_ARN,
            "accountId": ACCOUNT,
            "principalId": world.alice.user_id,
            "sessionName": None,
            "accessKeyId": key_id,
            "sourceIdentity": world.alice.user_id,
            "sourceAccessKeyId": None,
            "sourceJti": None,
        },
        "kubernetes": {
            "username": "alice",
            "uid": f"authbridge:{ACCOUNT}:{world.alice.user_id}",
            "groups": ["authbridge:devs", "authbridge:oncall"],
            "extra": {
                "arn": [ALICE_ARN],
                "canonicalArn": [ALICE_ARN],
                "sessionName": [""],
                "accessKeyId": [key_id],
                "principalId": [world.alice.user_id],
            },
        },
        "matchedRule": {"section": "mapUsers", "index": 0, "arn": ALICE_ARN},
        "contributingRules": [
            {"section": "mapUsers", "index": 0, "arn": ALICE_ARN},
            {"section": "mapGroups", "index": 0, "arn": DEVS_ARN},
        ],
        "token": {
            "iss": ISSUER,
            "aud": ["prod"],
            "exp": claims_exp,
            "expiresAt": by_body["token"]["expiresAt"],
            "kid": by_body["token"]["kid"],
            "verified": True,
        },
    }
    assert by_body["token"]["expiresAt"].endswith("Z")
    assert token not in by_body.__repr__()


def test_role_session(client: FlaskClient, world: World) -> None:
    subject = sts_token(client, world.alice_key)
    role = exchange(client, subject, ADMIN_ARN, "ops").get_json()["access_token"]
    doc = answer(verify(client, role))
    assert doc["authenticated"] is True
    assert doc["identity"]["sessionName"] == "ops"
    assert doc["identity"]["canonicalArn"] == ADMIN_ARN
    assert doc["kubernetes"]["username"] == "admin:ops"
    assert doc["matchedRule"] == {"section": "mapRoles", "index": 0, "arn": ADMIN_ARN}


def test_cluster_id_narrows_the_audience(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    assert answer(verify(client, token, clusterID="prod"))["authenticated"] is True
    doc = refused(verify(client, token, clusterID="staging"), "wrong_audience")
    assert (
        doc["reason"]
        == "audience [prod] is not among the clusters accepted for this request (staging)"
    )
    by_query = client.get("/verify?clusterID=staging", headers={"Authorization": f"Bearer {token}"})
    assert refused(by_query, "wrong_audience")["reason"] == doc["reason"]


# --------------------------------------------------------------------------- refused


def test_expired(client: FlaskClient, world: World, clock: Clock) -> None:
    token = user_token(client, world.alice_key)
    exp = answer(verify(client, token))["token"]["expiresAt"]
    clock.advance(900 + 60)
    doc = refused(verify(client, token), "expired")
    assert doc["reason"] == f"token expired at {exp}"
    assert doc["hint"] == "get a new token"
    assert doc["token"]["verified"] is False and doc["token"]["aud"] == ["prod"]
    assert "identity" not in doc


def test_audience_not_served(
    client: FlaskClient, world: World, keyring: KeyRing, clock: Clock
) -> None:
    token = mint(
        _alice(world), keys=keyring.current(), issuer=ISSUER, audience="dev", now=clock.now
    ).token
    doc = refused(verify(client, token), "wrong_audience")
    assert doc["reason"] == "audience [dev] is not a cluster this server serves (prod, staging)"


def test_unknown_key_id(client: FlaskClient, world: World, clock: Clock) -> None:
    foreign = KeySet((generate_signing_key("ES256", now=int(clock.now) - 10),))
    token = mint(_alice(world), keys=foreign, issuer=ISSUER, audience="prod", now=clock.now).token
    doc = refused(verify(client, token), "unknown_kid")
    assert doc["reason"] == f"unknown key id {foreign.keys[0].kid}"
    assert doc["token"] == {
        "iss": ISSUER,
        "aud": ["prod"],
        "exp": doc["token"]["exp"],
        "expiresAt": doc["token"]["expiresAt"],
        "kid": foreign.keys[0].kid,
        "verified": False,
    }


def test_user_disabled(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    token = user_token(client, world.alice_key)
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    assert refused(verify(client, token), "disabled")["reason"] == "user alice is disabled"


def test_access_key_inactive(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    token = user_token(client, world.alice_key)
    key_id = world.alice_key.key.access_key_id
    app_store.update_access_key(key_id, "Inactive")
    doc = refused(verify(client, token), "disabled")
    assert doc["reason"] == f"access key {key_id} is inactive"


def test_no_mapping_rule_matched(client: FlaskClient, world: World) -> None:
    doc = refused(verify(client, user_token(client, world.bob_key)), "not_mapped")
    assert doc["reason"].startswith(f"no mapping rule matched {BOB_ARN}")
    assert doc["identity"]["arn"] == BOB_ARN  # verified: who it is, just not mapped
    assert doc["token"]["verified"] is True


def test_revoked(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    assert answer(verify(client, token))["authenticated"] is True
    client.post("/oauth2/revoke", data={"token": token})
    assert refused(verify(client, token), "revoked")["reason"].startswith("token revoked")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "e30.e30"])
def test_malformed(client: FlaskClient, token: str) -> None:
    doc = refused(verify(client, token), "malformed")
    assert doc["reason"].startswith("malformed token: ")


def test_no_algorithm(client: FlaskClient) -> None:
    doc = refused(verify(client, "e30.e30.e30"), "bad_algorithm")  # {}.{}.{}
    assert doc["reason"].startswith("algorithm refused: ")
    assert doc["token"]["verified"] is False


def test_nothing_is_cached(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    token = user_token(client, world.alice_key)
    assert answer(verify(client, token))["authenticated"] is True
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    refused(verify(client, token), "disabled")


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("request_kwargs", "fragment"),
    [
        ({"method": "GET"}, "no token"),
        ({"method": "POST", "json": {}}, "no token"),
        ({"method": "POST", "json": {"token": ""}}, "no token"),
        ({"method": "POST", "json": {"token": 7}}, '"token" must be a string'),
        ({"method": "POST", "data": "token=x"}, "must be JSON"),
        ({"method": "POST", "json": ["x"]}, "JSON object"),
        ({"method": "GET", "query_string": {"token": "x"}}, "in the URL"),
        ({"method": "GET", "headers": {"Authorization": "Basic eDp5"}}, "Bearer"),
        (
            {"method": "POST", "json": {"token": "x"}, "headers": {"Authorization": "Bearer y"}},
            "once",
        ),
        ({"method": "POST", "json": {"token": "x", "clusterID": "dev"}}, "'dev' is not served"),
        ({"method": "POST", "json": {"token": "x", "clusterID": 3}}, "clusterID"),
    ],
)
def test_bad_requests_are_400(
    client: FlaskClient, request_kwargs: dict[str, Any], fragment: str
) -> None:
    kwargs = dict(request_kwargs)
    method = kwargs.pop("method")
    response = client.open("/verify", method=method, **kwargs)
    assert response.status_code == 400, response.get_data()
    assert fragment in response.get_json()["error"]


def test_store_down_is_503(build: Callable[..., Flask], app_store: SqlStore, world: World) -> None:
    store = FlakyStore(app_store)
    client = build(store=store).test_client()
    token = user_token(client, world.alice_key)
    store.down = True
    response = verify(client, token)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_never_echoes_the_token(client: FlaskClient, world: World, clock: Clock) -> None:
    token = user_token(client, world.bob_key)
    bodies = [verify(client, token).get_data(as_text=True)]
    clock.advance(2000)
    bodies.append(verify(client, token).get_data(as_text=True))
    bodies.append(verify(client, token + "x").get_data(as_text=True))
    for body in bodies:
        assert token not in body and token.split(".")[2] not in body


def test_counted_by_outcome_and_reason(client: FlaskClient, world: World) -> None:
    def count(outcome: str, reason: str) -> float:
        return sample("authbridge_verify_total", outcome=outcome, reason=reason)

    before = (count("allowed", "ok"), count("denied", "not_mapped"), count("error", "no_token"))
    verify(client, user_token(client, world.alice_key))
    verify(client, user_token(client, world.bob_key))
    verify(client)
    after = (count("allowed", "ok"), count("denied", "not_mapped"), count("error", "no_token"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
