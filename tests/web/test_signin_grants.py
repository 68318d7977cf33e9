"""The sign-in grants at the token endpoint, over Flask's test client, on every backend.

Covers:
- ``POST /oauth2/device_authorization``: the RFC 8628 §3.2 answer (no-store);
  an unknown client_id and a client secret are invalid_client (401); the
  parameters in the URL, repeated, or a body too large are refused; every
  request is charged to the client address (429 with Retry-After past the limit);
- the device_code grant: authorization_pending, slow_down with the interval
  growing, access_denied, expired_token (clock), one redemption; the answer's
  members and the access token's claims (sts audience, sid, amr, mfa,
  source_identity);
- the authorization_code grant: PKCE verifier missing or wrong and a
  redirect_uri that differs are invalid_grant; code reuse is invalid_grant and
  revokes the session the first redemption made (its access token is refused
  by the token exchange, its refresh token by the refresh grant);
- the refresh_token grant: rotation; reuse revokes the family (the newest
  refresh token and the access tokens' sid die, at the token endpoint and in
  the webhook and /verify); idle and absolute expiry on the injected clock;
- unknown client_id on each grant (401), a secret sent by the public client,
  ``audience`` on these grants, duplicated and oversized form parameters;
- ``/oauth2/revoke`` with a refresh token ends its session;
- the token exchange without role_arn: the user's own token for a cluster or
  the admin audience, never the sts audience, carrying sid, amr, mfa and
  source_identity, no longer than the session; with role_arn the role session
  carries them too; revoke-sessions kills both within the bound;
- discovery lists the endpoint, grants, S256 and response type ``code``;
- no audit line or log record holds a refresh token, code, device code or
  access token;
- a Hypothesis property test: any form for the three grants answers only
  their documented errors, never repeating a value sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from authbridge import signin
from authbridge.settings import Settings
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import (
    ISSUER,
    JWT_TYPE,
    NO_STORE,
    STS,
    TOKEN_EXCHANGE,
    Clock,
    World,
    assert_error,
    claims_of,
    key_auth,
)
from tests.web.test_webhook import MAPPING, PROD, review, write_mapping

CLI = "authbridge-cli"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
VERIFIER = "k" * 50
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)
REDIRECT = "http://127.0.0.1:49152/callback"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"


@pytest.fixture
def app_store(store: SqlStore) -> SqlStore:
    return store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = make_settings(
        tmp_path,
        webhook_cache_ttl=0,
        failed_auth_per_address_per_minute=1000,
        client_ca_file="tls/ca.crt",
    )
    write_mapping(s.mapping_file, MAPPING)
    return s


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    caplog.set_level(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "authbridge.audit"]

    return lines


def _token(client: FlaskClient, **form: str) -> TestResponse:
    return client.post("/oauth2/token", data=form)


def _ok(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    assert response.status_code == 200, body
    for name, value in NO_STORE.items():
        assert response.headers.get(name) == value
    return body


def _device(client: FlaskClient) -> dict[str, Any]:
    return _ok(client.post("/oauth2/device_authorization", data={"client_id": CLI}))


def _poll(client: FlaskClient, device_code: str) -> TestResponse:
    return _token(client, grant_type=DEVICE, device_code=device_code, client_id=CLI)


def _approved_session(
    client: FlaskClient, store: SqlStore, world: World, clock: Clock, *, mfa: bool = False
) -> dict[str, Any]:
    started = _device(client)
    signin.approve_device(
        store, started["user_code"], user_id=world.alice.user_id, mfa=mfa, now=clock()
    )
    return _ok(_poll(client, started["device_code"]))


def _code(store: SqlStore, world: World, clock: Clock) -> str:
    request = signin.validate_authorize_request(
        {
            "client_id": CLI,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
    )
    return signin.issue_authorization_code(
        store, request, user_id=world.alice.user_id, mfa=True, now=clock()
    )


def _redeem(client: FlaskClient, code: str, **over: str) -> TestResponse:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "client_id": CLI,
    } | over
    return _token(client, **{k: v for k, v in form.items() if v != "<absent>"})


def _refresh(client: FlaskClient, refresh_token: str) -> TestResponse:
    return _token(client, grant_type="refresh_token", refresh_token=refresh_token, client_id=CLI)


def _exchange(
    client: FlaskClient, subject: str, audience: str = "prod", **extra: str
) -> TestResponse:
    return _token(
        client,
        grant_type=TOKEN_EXCHANGE,
        subject_token=subject,
        subject_token_type=JWT_TYPE,
        audience=audience,
        **extra,
    )


# --------------------------------------------------------------------------- device authorization


def test_device_authorization_answer(client: FlaskClient) -> None:
    body = _device(client)
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert (body["expires_in"], body["interval"]) == (600, 5)
    assert len(body["user_code"]) == 9 and body["user_code"][4] == "-"


def test_device_authorization_unknown_client_is_invalid_client(client: FlaskClient) -> None:
    for form in ({"client_id": "other"}, {}):
        response = client.post("/oauth2/device_authorization", data=form)
        assert_error(response, 401, "invalid_client", "authbridge-cli")
        assert response.headers["WWW-Authenticate"]
    with_secret = {"client_id": CLI, "client_secret": "s"}
    assert_error(
        client.post("/oauth2/device_authorization", data=with_secret), 401, "invalid_client"
    )


def test_device_authorization_refuses_malformed_requests(client: FlaskClient) -> None:
    assert_error(
        client.post("/oauth2/device_authorization?client_id=authbridge-cli"), 400, "invalid_request"
    )
    repeated = "client_id=authbridge-cli&client_id=authbridge-cli"
    response = client.post(
        "/oauth2/device_authorization",
        data=repeated,
        content_type="application/x-www-form-urlencoded",
    )
    assert_error(response, 400, "invalid_request", "repeated")
    big = {"client_id": CLI, "scope": "s" * 300}
    assert_error(client.post("/oauth2/device_authorization", data=big), 400, "invalid_scope")


def test_device_authorization_is_rate_limited_per_address(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    limited = make_settings(tmp_path, failed_auth_per_address_per_minute=2, workers=1)
    client = make_app(settings=limited).test_client()
    env = {"REMOTE_ADDR": "198.51.100.7"}
    for _ in range(2):
        _ok(client.post("/oauth2/device_authorization", data={"client_id": CLI}, environ_base=env))
    response = client.post(
        "/oauth2/device_authorization", data={"client_id": CLI}, environ_base=env
    )
    assert_error(response, 429, "too_many_requests")
    assert int(response.headers["Retry-After"]) >= 1
    other = {"REMOTE_ADDR": "198.51.100.8"}
    _ok(client.post("/oauth2/device_authorization", data={"client_id": CLI}, environ_base=other))


# --------------------------------------------------------------------------- device code grant


def test_device_code_grant_end_to_end(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    started = _device(client)
    assert_error(_poll(client, started["device_code"]), 400, "authorization_pending")
    clock.advance(5)
    signin.approve_device(
        app_store, started["user_code"], user_id=world.alice.user_id, mfa=True, now=clock()
    )
    body = _ok(_poll(client, started["device_code"]))
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token_expires_in"] == 7200
    claims = claims_of(body["access_token"])
    assert claims["aud"] == STS and claims["sub"] == world.alice.arn
    assert claims["source_identity"] == world.alice.user_id
    assert claims["amr"] == ["pwd", "mfa"] and claims["mfa"] is True and claims["sid"]
    clock.advance(5)
    assert_error(_poll(client, started["device_code"]), 400, "invalid_grant")


def test_device_polling_faster_than_interval_is_slow_down(
    client: FlaskClient, clock: Clock
) -> None:
    started = _device(client)
    assert_error(_poll(client, started["device_code"]), 400, "authorization_pending")
    clock.advance(2)
    assert_error(_poll(client, started["device_code"]), 400, "slow_down", "every 10 seconds")
    clock.advance(5)  # the old interval is no longer enough
    assert_error(_poll(client, started["device_code"]), 400, "slow_down", "every 15 seconds")
    clock.advance(15)
    assert_error(_poll(client, started["device_code"]), 400, "authorization_pending")


def test_device_code_expired_token(client: FlaskClient, clock: Clock) -> None:
    started = _device(client)
    clock.advance(600)
    assert_error(_poll(client, started["device_code"]), 400, "expired_token")


def test_device_code_access_denied(client: FlaskClient, app_store: SqlStore, clock: Clock) -> None:
    started = _device(client)
    signin.deny_device(app_store, started["user_code"], clock())
    assert_error(_poll(client, started["device_code"]), 400, "access_denied")


def test_cross_user_device_approval_is_refused(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    started = _device(client)
    signin.approve_device(
        app_store, started["user_code"], user_id=world.alice.user_id, mfa=False, now=clock()
    )
    with pytest.raises(signin.DeviceCodeError):
        signin.approve_device(
            app_store, started["user_code"], user_id=world.bob.user_id, mfa=False, now=clock()
        )
    body = _ok(_poll(client, started["device_code"]))
    assert claims_of(body["access_token"])["sub"] == world.alice.arn


# --------------------------------------------------------------------------- authorization code


def test_authorization_code_grant(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    body = _ok(_redeem(client, _code(app_store, world, clock)))
    claims = claims_of(body["access_token"])
    assert claims["aud"] == STS and claims["amr"] == ["pwd", "mfa"] and claims["mfa"] is True


@pytest.mark.parametrize("verifier", ["<absent>", "", "x" * 50, CHALLENGE, "short"])
def test_pkce_missing_or_wrong_verifier_is_invalid_grant(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock, verifier: str
) -> None:
    code = _code(app_store, world, clock)
    assert_error(_redeem(client, code, code_verifier=verifier), 400, "invalid_grant")


@pytest.mark.parametrize(
    "uri", ["<absent>", "http://127.0.0.1:49153/callback", "http://[::1]:49152/callback"]
)
def test_redirect_uri_must_equal_the_authorization_requests(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock, uri: str
) -> None:
    code = _code(app_store, world, clock)
    assert_error(_redeem(client, code, redirect_uri=uri), 400, "invalid_grant", "redirect_uri")
    _ok(_redeem(client, code))


def test_code_reuse_is_refused_and_revokes_its_session(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    code = _code(app_store, world, clock)
    first = _ok(_redeem(client, code))
    assert_error(_redeem(client, code), 400, "invalid_grant", "already used")
    assert_error(_exchange(client, first["access_token"]), 400, "invalid_grant", "session")
    assert_error(_refresh(client, first["refresh_token"]), 400, "invalid_grant")


# --------------------------------------------------------------------------- refresh tokens


def test_refresh_rotates(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    first = _approved_session(client, app_store, world, clock)
    clock.advance(600)
    second = _ok(_refresh(client, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["access_token"])["sid"] == claims_of(first["access_token"])["sid"]


def test_refresh_token_reuse_revokes_the_family(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    first = _approved_session(client, app_store, world, clock)
    cluster = _ok(_exchange(client, first["access_token"]))["access_token"]
    assert review(client, cluster, cert=PROD).get_json()["status"]["authenticated"] is True
    clock.advance(60)
    second = _ok(_refresh(client, first["refresh_token"]))
    clock.advance(60)
    assert_error(_refresh(client, first["refresh_token"]), 400, "invalid_grant", "already used")
    assert_error(
        _refresh(client, second["refresh_token"]),
        400,
        "invalid_grant",
        "the sign-in session has ended; run authbridge login",
    )
    for token in (first["access_token"], second["access_token"]):
        assert_error(_exchange(client, token), 400, "invalid_grant")
    status = review(client, cluster, cert=PROD).get_json()["status"]
    assert status["authenticated"] is False
    verified = client.post("/verify", json={"token": cluster, "clusterID": "prod"}).get_json()
    assert verified["authenticated"] is False and verified["reasonCode"] == "revoked"


def test_idle_session_expiry(
    make_app: Callable[..., Flask], app_store: SqlStore, world: World, clock: Clock, tmp_path: Path
) -> None:
    client = make_app(settings=make_settings(tmp_path, session_idle_seconds=900)).test_client()
    first = _approved_session(client, app_store, world, clock)
    clock.advance(899)
    second = _ok(_refresh(client, first["refresh_token"]))
    clock.advance(900)
    assert_error(
        _refresh(client, second["refresh_token"]), 400, "invalid_grant", "run authbridge login"
    )


def test_absolute_session_expiry(
    make_app: Callable[..., Flask], app_store: SqlStore, world: World, clock: Clock, tmp_path: Path
) -> None:
    short = make_settings(tmp_path, session_max_seconds=1000, session_idle_seconds=900)
    client = make_app(settings=short).test_client()
    body = _approved_session(client, app_store, world, clock)
    clock.advance(800)
    body = _ok(_refresh(client, body["refresh_token"]))
    assert body["expires_in"] == 200 and body["refresh_token_expires_in"] == 200
    # A token exchanged from it lives no longer than the session either.
    own = _ok(_exchange(client, body["access_token"]))
    assert own["expires_in"] == 200
    clock.advance(200)
    assert_error(
        _refresh(client, body["refresh_token"]), 400, "invalid_grant", "run authbridge login"
    )


# --------------------------------------------------------------------------- malformed requests


@pytest.mark.parametrize("grant", [DEVICE, "authorization_code", "refresh_token"])
def test_unknown_client_id_is_invalid_client(client: FlaskClient, grant: str) -> None:
    form = {"grant_type": grant, "device_code": "d", "code": "c", "refresh_token": "r"}
    for client_id in ("other", ""):
        response = _token(client, **form, client_id=client_id)
        assert_error(response, 401, "invalid_client")
    response = _token(client, **form, client_id=CLI, client_secret="x")
    assert_error(response, 401, "invalid_client", "public")


def test_audience_is_not_accepted_on_the_signin_grants(client: FlaskClient) -> None:
    response = _token(
        client, grant_type="refresh_token", refresh_token="r", client_id=CLI, audience="prod"
    )
    assert_error(response, 400, "invalid_request", "audience")


def test_oversized_and_duplicated_form_params_are_refused(client: FlaskClient) -> None:
    data = "grant_type=refresh_token&client_id=authbridge-cli&refresh_token=a&refresh_token=b"
    response = client.post(
        "/oauth2/token", data=data, content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 400, "invalid_request", "repeated")
    huge = {"grant_type": "refresh_token", "client_id": CLI, "refresh_token": "r" * 100_000}
    assert client.post("/oauth2/token", data=huge).status_code == 413
    in_url = client.post("/oauth2/token?refresh_token=r", data={"grant_type": "refresh_token"})
    assert_error(in_url, 400, "invalid_request", "body")
    assert_error(
        _token(client, grant_type=DEVICE, client_id=CLI), 400, "invalid_request", "device_code"
    )


def test_revoking_a_refresh_token_ends_its_session(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    body = _approved_session(client, app_store, world, clock)
    response = client.post(
        "/oauth2/revoke",
        data={"token": body["refresh_token"], "token_type_hint": "refresh_token", "client_id": CLI},
    )
    assert response.status_code == 200 and response.get_data() == b""
    assert_error(_refresh(client, body["refresh_token"]), 400, "invalid_grant")
    assert_error(_exchange(client, body["access_token"]), 400, "invalid_grant")
    assert client.post("/oauth2/revoke", data={"token": "nothing"}).status_code == 200


# --------------------------------------------------------------------------- token exchange


def test_exchange_without_role_arn_gives_the_users_own_token(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    body = _approved_session(client, app_store, world, clock, mfa=True)
    sid = claims_of(body["access_token"])["sid"]
    own = _ok(_exchange(client, body["access_token"]))
    claims = claims_of(own["access_token"])
    assert claims["aud"] == "prod" and claims["sub"] == world.alice.arn
    assert claims["principal_id"] == world.alice.user_id == claims["source_identity"]
    assert (claims["sid"], claims["amr"], claims["mfa"]) == (sid, ["pwd", "mfa"], True)
    assert own["issued_token_type"] == JWT_TYPE
    admin = claims_of(
        _ok(_exchange(client, body["access_token"], f"{ISSUER}/admin"))["access_token"]
    )
    assert admin["aud"] == f"{ISSUER}/admin" and admin["mfa"] is True
    assert_error(_exchange(client, body["access_token"], STS), 400, "invalid_target")
    # A cluster token is never a subject token, with or without a role.
    assert_error(_exchange(client, own["access_token"]), 400, "invalid_grant", "cluster token")


def test_role_sessions_from_a_signin_session_carry_it(
    client: FlaskClient, app_store: SqlStore, world: World, clock: Clock
) -> None:
    body = _approved_session(client, app_store, world, clock)
    role = _ok(
        _exchange(client, body["access_token"], role_arn=ADMIN_ROLE, role_session_name="alice")
    )
    claims = claims_of(role["access_token"])
    assert claims["sid"] == claims_of(body["access_token"])["sid"]
    assert claims["amr"] == ["pwd"] and claims["mfa"] is False
    assert claims["source_identity"] == world.alice.user_id
    assert review(client, role["access_token"], cert=PROD).get_json()["status"]["authenticated"]
    signin.end_user_sessions(app_store, ACCOUNT, "alice", clock())
    assert not review(client, role["access_token"], cert=PROD).get_json()["status"]["authenticated"]


def test_a_plain_sts_token_exchanges_for_its_own_cluster_token(
    client: FlaskClient, world: World
) -> None:
    sts = _ok(
        client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "audience": STS},
            headers=key_auth(world.alice_key),
        )
    )["access_token"]
    claims = claims_of(_ok(_exchange(client, sts))["access_token"])
    assert claims["access_key_id"] == world.alice_key.key.access_key_id and "sid" not in claims


# --------------------------------------------------------------------------- discovery, audit


def test_discovery_lists_the_signin_endpoints(client: FlaskClient) -> None:
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["device_authorization_endpoint"] == f"{ISSUER}/oauth2/device_authorization"
    assert {DEVICE, "authorization_code", "refresh_token"} <= set(doc["grant_types_supported"])
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert "none" in doc["token_endpoint_auth_methods_supported"]


def test_no_secret_code_or_refresh_token_in_any_log_line(
    client: FlaskClient,
    app_store: SqlStore,
    world: World,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    audit: Callable[[], list[dict[str, Any]]],
) -> None:
    started = _device(client)
    _poll(client, started["device_code"])
    signin.approve_device(
        app_store, started["user_code"], user_id=world.alice.user_id, mfa=False, now=clock()
    )
    body = _ok(_poll(client, started["device_code"]))
    code = _code(app_store, world, clock)
    _ok(_redeem(client, code))
    _redeem(client, code)  # reuse
    clock.advance(10)
    second = _ok(_refresh(client, body["refresh_token"]))
    _refresh(client, body["refresh_token"])  # reuse
    client.post("/oauth2/revoke", data={"token": second["refresh_token"]})
    secrets = [
        started["device_code"],
        code,
        body["refresh_token"],
        second["refresh_token"],
        body["access_token"],
        VERIFIER,
    ]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in text
    lines = audit()
    grants = {line.get("grant") for line in lines if line["event"] == "token_issued"}
    assert {"device_code", "authorization_code", "refresh_token"} <= grants
    issued = [ln for ln in lines if ln["event"] == "token_issued" and ln["outcome"] == "allowed"]
    assert all(ln.get("sid") for ln in issued)
    assert any(ln["event"] == "device_authorization" for ln in lines)
    revoked = [ln for ln in lines if ln["event"] == "revoke"]
    assert revoked[-1]["reason"] == "revoked" and revoked[-1]["sid"]
    for line in lines:
        for secret in secrets:
            assert secret not in json.dumps(line)


_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "too_many_requests",
}


@hypothesis_settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grant=st.sampled_from([DEVICE, "authorization_code", "refresh_token"]),
    client_id=st.sampled_from([CLI, "", "AKIAIOSFODNN7EXAMPLE", "authbridge-CLI"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "device_code",
                "code",
                "redirect_uri",
                "code_verifier",
                "refresh_token",
                "scope",
                "audience",
                "client_secret",
                "x",
            ]
        ),
        st.text(max_size=200),
        max_size=6,
    ),
)
def test_signin_grants_answer_only_documented_errors_property(
    client: FlaskClient, grant: str, client_id: str, fields: dict[str, str]
) -> None:
    response = _token(client, grant_type=grant, client_id=client_id, **fields)
    body = response.get_json()
    assert response.status_code in (400, 401, 429), body
    assert body["error"] in _ERRORS, body
    for value in fields.values():
        if len(value) >= 12:
            assert value not in body.get("error_description", "")
