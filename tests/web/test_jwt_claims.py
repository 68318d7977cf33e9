"""``embedKubernetesClaims``: tokens from /oauth2/token carry the user the webhook would answer.

Covers:
- with the setting on, client_credentials and token-exchange tokens carry
  ``k8s_username`` / ``k8s_groups`` / ``k8s_uid`` equal to what
  ``/authenticate`` answers for the same token and cluster, and a kube-apiserver
  configured by ``authbridge apiserver-config --mode jwt`` (simulated by
  tests.test_apiserver_config.apiserver_user) sees that same user and the
  webhook's extra values;
- a mapping with ``clusterID`` only applies to tokens for that audience;
- an unmapped role session is refused (``invalid_grant``, the generic reason on
  the wire, the precise one in the log); an unmapped user gets a token without
  k8s claims, which still works as the subject token of AssumeRole and which
  the JWT-mode configuration refuses;
- group membership is frozen at mint time (the webhook reads it per request);
- with the setting off (the default), no k8s claims, and unmapped principals
  get tokens as before;
- the setting from the config file and from AUTHBRIDGE_EMBED_KUBERNETES_CLAIMS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge import pki
from authbridge.apiserver_config import KUBE_CLAIMS, authentication_configuration
from authbridge.errors import ConfigError
from authbridge.keys import KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.settings import Settings, load_settings
from authbridge.store import SqlStore
from authbridge.web import create_app
from tests.conftest import ACCOUNT
from tests.test_apiserver_config import WEBHOOK_EXTRA_KEYS, apiserver_user
from tests.web.conftest import make_settings
from tests.web.helpers import (
    CLUSTERS,
    ISSUER,
    Clock,
    World,
    assert_error,
    claims_of,
    exchange,
    session_token,
    sts_token,
    user_token,
)

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/team/alice"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
DEVS_ARN = f"arn:aws:iam::{ACCOUNT}:group/devs"
BOB_ONLY_ARN = f"arn:aws:iam::{ACCOUNT}:role/BobOnly"
MAPPING = f"""\
mapRoles:
  - rolearn: {ADMIN_ARN}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
  - rolearn: {BOB_ONLY_ARN}
    username: "bob-role:{{{{SessionName}}}}"
    groups: ["authbridge:bob"]
mapUsers:
  - userarn: {ALICE_ARN}
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: {DEVS_ARN}
    groups: ["authbridge:oncall"]
"""
PROD_CERT = {
    "authbridge.peer_cert": {
        "subject": ((("commonName", "prod-cp"),), (("organizationName", "prod"),))
    }
}
STAGING_CERT = {
    "authbridge.peer_cert": {
        "subject": ((("commonName", "stg-cp"),), (("organizationName", "staging"),))
    }
}
CERTS = {"prod": PROD_CERT, "staging": STAGING_CERT}


# --------------------------------------------------------------------------- fixtures


def write_mapping(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, client_ca_file="tls/ca.crt", embed_kubernetes_claims=True)


@pytest.fixture
def build(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock, world: World
) -> Callable[..., Flask]:
    """An app over the test parts with ``mapping_text`` as rbac/mapping.yaml."""

    def make(mapping_text: str = MAPPING, **overrides: Any) -> Flask:
        current = overrides.pop("settings", settings)
        write_mapping(current.mapping_file, mapping_text)
        holder = MappingHolder(current.mapping_file, clock=clock)
        return create_app(current, store=app_store, keys=keyring, clock=clock, mapping=holder)

    return make


@pytest.fixture
def client(build: Callable[..., Flask]) -> FlaskClient:
    return build().test_client()


@pytest.fixture(scope="module")
def jwt_config() -> dict[str, Any]:
    """What `authbridge apiserver-config --mode jwt` gives a kube-apiserver of these clusters."""
    return authentication_configuration(
        issuer=ISSUER, ca_pem=pki.new_ca().cert_pem, audiences=list(CLUSTERS)
    )


def webhook_user(client: FlaskClient, token: str, cluster: str = "prod") -> dict[str, Any]:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    response = client.post("/authenticate", json=body, environ_base=CERTS[cluster])
    assert response.status_code == 200
    status = response.get_json()["status"]
    assert status["authenticated"] is True, status
    user: dict[str, Any] = status["user"]
    return user


def token_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["access_token"]
    return token


def assert_same_user(
    client: FlaskClient, token: str, jwt_config: dict[str, Any], cluster: str = "prod"
) -> dict[str, Any]:
    """The token's k8s claims, the webhook's answer and a JWT-mode kube-apiserver agree."""
    claims = claims_of(token)
    answered = webhook_user(client, token, cluster)
    assert claims["k8s_username"] == answered["username"]
    assert claims["k8s_groups"] == answered["groups"]
    assert claims["k8s_uid"] == answered["uid"]
    seen = apiserver_user(jwt_config, claims)
    assert seen is not None
    assert (seen["username"], seen["uid"], seen["groups"]) == (
        answered["username"],
        answered["uid"],
        answered["groups"],
    )
    assert seen["extra"] == {
        key: answered["extra"][name]
        for key, name in WEBHOOK_EXTRA_KEYS.items()
        if answered["extra"][name] != [""]
    }
    return claims


# --------------------------------------------------------------------------- both grants


def test_client_credentials_token_carries_the_webhooks_user(
    client: FlaskClient, world: World, jwt_config: dict[str, Any]
) -> None:
    claims = assert_same_user(client, user_token(client, world.alice_key), jwt_config)
    assert claims["k8s_username"] == "alice"
    assert claims["k8s_groups"] == ["authbridge:devs", "authbridge:oncall"]
    assert claims["k8s_uid"] == f"authbridge:{ACCOUNT}:{world.alice.user_id}"
    # the rest of the token is as ever
    assert claims["sub"] == claims["arn"] == ALICE_ARN
    assert claims["access_key_id"] == world.alice_key.key.access_key_id
    assert claims["principal_id"] == world.alice.user_id and claims["account"] == ACCOUNT


def test_token_exchange_token_carries_the_webhooks_user(
    client: FlaskClient, world: World, jwt_config: dict[str, Any]
) -> None:
    subject = sts_token(client, world.alice_key)
    token = token_of(exchange(client, subject, ADMIN_ARN, "alice@example.com"))
    claims = assert_same_user(client, token, jwt_config)
    assert claims["k8s_username"] == "admin:alice-example.com"
    assert claims["k8s_groups"] == ["authbridge:admins"]
    assert claims["k8s_uid"] == f"authbridge:{ACCOUNT}:{world.admin.role_id}:alice@example.com"
    assert claims["session_name"] == "alice@example.com"


def test_each_audience_gets_its_own_claims(
    client: FlaskClient, world: World, jwt_config: dict[str, Any]
) -> None:
    for cluster in CLUSTERS:
        token = user_token(client, world.alice_key, cluster)
        assert claims_of(token)["aud"] == cluster
        assert_same_user(client, token, jwt_config, cluster)


# --------------------------------------------------------------------------- clusterID


def test_a_mapping_with_cluster_id_applies_only_to_that_audience(
    build: Callable[..., Flask],
    world: World,
    jwt_config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = build("clusterID: prod\n" + MAPPING).test_client()
    prod = user_token(client, world.alice_key, "prod")
    assert_same_user(client, prod, jwt_config, "prod")
    # staging: the user gets a token without k8s claims, the role session none at all
    staging = user_token(client, world.alice_key, "staging")
    assert not set(KUBE_CLAIMS) & set(claims_of(staging))
    assert apiserver_user(jwt_config, claims_of(staging)) is None
    caplog.set_level(logging.INFO, logger="authbridge.web.oauth")
    subject = sts_token(client, world.alice_key)
    refused = exchange(client, subject, ADMIN_ARN, audience="staging")
    assert_error(
        refused,
        400,
        "invalid_grant",
        f"no mapping rule maps {ADMIN_ARN} for cluster staging;"
        " the kube-apiserver could not map this token",
    )
    assert "is for cluster prod" in caplog.text  # the precise reason, for the operator
    assert "is for cluster prod" not in refused.get_data(as_text=True)
    token_of(exchange(client, subject, ADMIN_ARN, audience="prod"))


# --------------------------------------------------------------------------- unmapped


def test_an_unmapped_role_session_is_refused(
    build: Callable[..., Flask], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = build(
        MAPPING.replace(BOB_ONLY_ARN, f"arn:aws:iam::{ACCOUNT}:role/Other")
    ).test_client()
    caplog.set_level(logging.INFO, logger="authbridge.web.oauth")
    subject = sts_token(client, world.bob_key)
    response = exchange(client, subject, BOB_ONLY_ARN, "bob")
    body = assert_error(response, 400, "invalid_grant", f"no mapping rule maps {BOB_ONLY_ARN}")
    assert "authbridge mapping check" in body["error_description"]
    assert "mapRoles/mapUsers/mapGroups/mapAccounts" in caplog.text


def test_an_unmapped_user_gets_a_token_without_k8s_claims_good_for_assume_role(
    client: FlaskClient, world: World, jwt_config: dict[str, Any]
) -> None:
    bob = user_token(client, world.bob_key)  # bob is in no mapping rule
    claims = claims_of(bob)
    assert not set(KUBE_CLAIMS) & set(claims)
    assert apiserver_user(jwt_config, claims) is None  # refused by claimValidationRules
    # ... and the webhook refuses it too: same verdict in both modes
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": bob}}
    status = client.post("/authenticate", json=body, environ_base=PROD_CERT).get_json()["status"]
    assert status["authenticated"] is False
    # bob only assumes a role, which is mapped: the EKS way
    role = token_of(exchange(client, sts_token(client, world.bob_key), BOB_ONLY_ARN, "bob"))
    assert claims_of(role)["k8s_username"] == "bob-role:bob"
    assert_same_user(client, role, jwt_config)


# --------------------------------------------------------------------------- limits of JWT mode


def test_group_membership_is_frozen_at_mint_time(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    token = user_token(client, world.alice_key)
    app_store.remove_user_from_group(ACCOUNT, "devs", "alice")
    assert claims_of(token)["k8s_groups"] == ["authbridge:devs", "authbridge:oncall"]
    assert webhook_user(client, token)["groups"] == ["authbridge:devs"]  # read per request
    assert claims_of(user_token(client, world.alice_key))["k8s_groups"] == ["authbridge:devs"]


# --------------------------------------------------------------------------- setting off


def test_with_the_setting_off_tokens_carry_no_k8s_claims(
    build: Callable[..., Flask], tmp_path: Path, world: World
) -> None:
    off = make_settings(tmp_path, client_ca_file="tls/ca.crt")
    assert off.embed_kubernetes_claims is False
    client = build(settings=off).test_client()
    alice = user_token(client, world.alice_key)
    role = token_of(exchange(client, sts_token(client, world.alice_key), ADMIN_ARN))
    bob = user_token(client, world.bob_key)
    bob_only = f"arn:aws:iam::{ACCOUNT}:role/BobOnly"
    unmapped_role = exchange(client, sts_token(client, world.bob_key), bob_only, "bob")
    for token in (alice, role, bob, token_of(unmapped_role)):
        assert not set(KUBE_CLAIMS) & set(claims_of(token))
    assert session_token(client, world.bob_key, "staging").status_code == 200


def test_the_setting_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "authbridge.yaml"
    config.write_text("embedKubernetesClaims: true\n")
    assert load_settings({}, {}, config, cwd=tmp_path).embed_kubernetes_claims is True
    env = {"AUTHBRIDGE_EMBED_KUBERNETES_CLAIMS": "0"}
    assert load_settings({}, env, config, cwd=tmp_path).embed_kubernetes_claims is False
    assert load_settings({}, {}, None, cwd=tmp_path).embed_kubernetes_claims is False
    config.write_text("embedKubernetesClaims: maybe\n")
    with pytest.raises(ConfigError, match="embedKubernetesClaims must be true or false"):
        load_settings({}, {}, config, cwd=tmp_path)
