"""POST /authenticate: the TokenReview webhook, through Flask's test client.

Covers:
- v1 and v1beta1 requests answered in kind (apiVersion, kind);
- field by field: a mapped user (mapUsers + mapGroups), an assumed role
  (templates, session name, role ARN with path), an account-mapped principal,
  and refusals (unmapped, revoked, disabled user, a token for staging sent by
  a prod certificate, expired, garbage): HTTP 200, ``authenticated: false``, the
  short generic error, no user; the precise reason only in the audit log;
- status.audiences = spec.audiences ∩ token aud: spec.audiences absent,
  disjoint (the kube-apiserver's own audience: left out), overlapping;
- 400 for bodies that are not a TokenReview, 413 over 64 KiB, 405 for GET; an
  empty or oversized (20 KiB) spec.token is a 200 denial, not a 400;
- client certificates: 401 without one when a client CA is configured, 403
  for a certificate of no served cluster, several clusters in one
  certificate; without a client CA every caller is served and a warning is
  logged once;
- a mapping with clusterID applies only to tokens for that cluster; no
  mapping file loaded refuses everyone and says so;
- the cache: hits counted, keyed by spec.audiences too, dropped on a mapping
  reload, never outliving the TTL or the token's exp, refusals never cached,
  off with TTL 0;
- 503 with Retry-After when the store is down (the kube-apiserver retries);
- no log record at any level holds the token or any 16 characters of it, nor
  a canary token, for
  valid, invalid and malformed requests;
- a latency histogram sample per outcome, and the reason counter;
- the client certificate read from gunicorn's TLS socket; no header can forge one;
- answers are ASCII JSON (a lone surrogate is an escape), and an answer the fast
  path cannot encode is the app's JSON 500, not gunicorn's HTML one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge.keys import KeyDirectory, KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.web import create_app, metrics
from authbridge.web.peer import PeerCert, client_certificate
from authbridge.web.webhook import NO_CLIENT_CA_WARNING, REFUSED
from tests.conftest import ACCOUNT, OTHER_ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import Clock, FlakyStore, World, exchange, sts_token, user_token

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/team/alice"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
DEVS_ARN = f"arn:aws:iam::{ACCOUNT}:group/devs"
API_AUDIENCE = "https://kubernetes.default.svc"  # what a kube-apiserver sends by default
MAPPING = f"""\
mapRoles:
  - rolearn: {ADMIN_ARN}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: {ALICE_ARN}
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: {DEVS_ARN}
    groups: ["authbridge:oncall"]
mapAccounts: ["{OTHER_ACCOUNT}"]
"""
V1 = "authentication.k8s.io/v1"


def peer(common_name: str = "prod-cp", *organizations: str) -> dict[str, Any]:
    """environ_base carrying a verified client certificate (authbridge.web.peer)."""
    orgs = organizations or ("prod",)
    subject = ((("commonName", common_name),), *((("organizationName", o),) for o in orgs))
    return {"authbridge.peer_cert": {"subject": subject}}


PROD = peer("prod-cp", "prod")
STAGING = peer("stg-cp", "staging")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A client CA is configured (the file is not read by the app, only by serve)."""
    return make_settings(tmp_path, client_ca_file="tls/ca.crt")


def write_mapping(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomically, as the holder expects


@pytest.fixture
def holder(settings: Settings, clock: Clock) -> MappingHolder:
    write_mapping(settings.mapping_file, MAPPING)
    return MappingHolder(settings.mapping_file, clock=clock)


@pytest.fixture
def build(
    settings: Settings,
    app_store: SqlStore,
    keyring: KeyRing,
    clock: Clock,
    world: World,
    holder: MappingHolder,
) -> Callable[..., Flask]:
    """create_app with the test parts; keyword arguments replace them."""

    def make(**overrides: Any) -> Flask:
        parts: dict[str, Any] = {
            "settings": settings,
            "store": app_store,
            "keys": keyring,
            "clock": clock,
            "mapping": holder,
        }
        parts.update(overrides)
        settings_ = parts.pop("settings")
        return create_app(settings_, **parts)

    return make


@pytest.fixture
def client(build: Callable[..., Flask]) -> FlaskClient:
    return build().test_client()


@pytest.fixture
def audit_records(caplog: pytest.LogCaptureFixture) -> Callable[[], list[dict[str, Any]]]:
    caplog.set_level(logging.INFO, logger="authbridge.audit")

    def records() -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "authbridge.audit"]

    return records


def review(
    client: FlaskClient,
    token: Any,
    *,
    version: str = V1,
    audiences: list[str] | None = None,
    cert: dict[str, Any] | None = PROD,
) -> TestResponse:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    body = {"apiVersion": version, "kind": "TokenReview", "spec": spec}
    return client.post("/authenticate", json=body, environ_base=cert or {})


def allowed(response: TestResponse, version: str = V1) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data()
    body = response.get_json()
    assert body["apiVersion"] == version and body["kind"] == "TokenReview"
    status = body["status"]
    assert status["authenticated"] is True, status
    assert "error" not in status
    user: dict[str, Any] = status["user"]
    assert set(user) == {"username", "uid", "groups", "extra"}
    return status


def denied(response: TestResponse, version: str = V1) -> None:
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "apiVersion": version,
        "kind": "TokenReview",
        "status": {"authenticated": False, "error": REFUSED},
    }


def last_decision(records: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    decisions = [r for r in records() if r["event"] == "tokenreview"]
    assert decisions
    return decisions[-1]


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def carol_key(app_store: SqlStore) -> Any:
    app_store.create_account(OTHER_ACCOUNT)
    app_store.create_user(OTHER_ACCOUNT, "carol")
    return app_store.create_access_key(OTHER_ACCOUNT, "carol")


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("version", [V1, "authentication.k8s.io/v1beta1"])
def test_answered_in_the_version_received(client: FlaskClient, world: World, version: str) -> None:
    token = user_token(client, world.alice_key)
    allowed(review(client, token, version=version), version)
    denied(review(client, "garbage", version=version), version)


def test_mapped_user(
    client: FlaskClient, world: World, audit_records: Callable[[], list[dict[str, Any]]]
) -> None:
    token = user_token(client, world.alice_key)
    response = review(client, token, audiences=[API_AUDIENCE])
    status = allowed(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert set(status) == {"authenticated", "user"}  # no audiences: see the audiences tests
    key_id = world.alice_key.key.access_key_id
    assert status["user"] == {
        "username": "alice",
        "uid": f"authbridge:{ACCOUNT}:{world.alice.user_id}",
        # mapUsers first, then every mapGroups entry of the user's IAM groups
        "groups": ["authbridge:devs", "authbridge:oncall"],
        "extra": {
            "arn": [ALICE_ARN],
            "canonicalArn": [ALICE_ARN],
            "sessionName": [""],
            "accessKeyId": [key_id],
            "principalId": [world.alice.user_id],
        },
    }
    record = last_decision(audit_records)
    assert record["outcome"] == "allowed" and record["reason"] == "ok"
    assert record["caller"] == "prod-cp" and record["clusters"] == ["prod"]
    assert record["arn"] == ALICE_ARN and record["principal_id"] == world.alice.user_id
    assert record["access_key_id"] == key_id and record["session"] is None
    assert record["username"] == "alice"
    assert record["groups"] == ["authbridge:devs", "authbridge:oncall"]
    assert record["cache_hit"] is False
    assert len(record["request_id"]) == 36 and record["time"].endswith("Z")


def test_assumed_role(client: FlaskClient, world: World) -> None:
    subject = sts_token(client, world.alice_key)
    minted = exchange(client, subject, ADMIN_ARN, "alice@example.com")
    assert minted.status_code == 200, minted.get_json()
    status = allowed(review(client, minted.get_json()["access_token"]))
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice@example.com"
    principal_id = f"{world.admin.role_id}:alice@example.com"
    assert status["user"] == {
        "username": "admin:alice-example.com",  # {{SessionName}}: @ becomes -
        "uid": f"authbridge:{ACCOUNT}:{principal_id}",
        "groups": ["authbridge:admins"],
        "extra": {
            "arn": [session_arn],
            "canonicalArn": [ADMIN_ARN],
            "sessionName": ["alice@example.com"],
            "accessKeyId": [""],
            "principalId": [principal_id],
        },
    }


def test_account_mapped_principal(client: FlaskClient, carol_key: Any) -> None:
    token = user_token(client, carol_key)
    user = allowed(review(client, token))["user"]
    carol = f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol"
    assert user["username"] == carol
    assert user["groups"] == []
    assert user["uid"] == f"authbridge:{OTHER_ACCOUNT}:{carol_key.key.user_id}"


def test_unmapped_principal(
    client: FlaskClient, world: World, audit_records: Callable[[], list[dict[str, Any]]]
) -> None:
    denied(review(client, user_token(client, world.bob_key)))
    record = last_decision(audit_records)
    assert record["outcome"] == "denied" and record["reason"] == "not_mapped"
    assert BOB_ARN in record["detail"]
    assert record["arn"] == BOB_ARN and record["username"] is None


def test_revoked_token(
    client: FlaskClient, world: World, audit_records: Callable[[], list[dict[str, Any]]]
) -> None:
    token = user_token(client, world.alice_key)
    assert client.post("/oauth2/revoke", data={"token": token}).status_code == 200
    denied(review(client, token))
    assert last_decision(audit_records)["reason"] == "revoked"


def test_disabled_user(
    client: FlaskClient,
    world: World,
    app_store: SqlStore,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    token = user_token(client, world.alice_key)
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    denied(review(client, token))
    record = last_decision(audit_records)
    assert record["reason"] == "disabled"
    assert record["detail"] == "user alice is disabled"


def test_a_staging_token_on_a_prod_certificate(
    client: FlaskClient, world: World, audit_records: Callable[[], list[dict[str, Any]]]
) -> None:
    staging = user_token(client, world.alice_key, audience="staging")
    denied(review(client, staging, cert=PROD))
    record = last_decision(audit_records)
    assert record["reason"] == "wrong_audience"
    assert "[staging]" in record["detail"]
    allowed(review(client, staging, cert=STAGING))


def test_a_certificate_for_two_clusters_serves_both(client: FlaskClient, world: World) -> None:
    both = peer("shared-cp", "prod", "staging")
    for cluster in ("prod", "staging"):
        allowed(review(client, user_token(client, world.alice_key, audience=cluster), cert=both))


def test_expired(
    client: FlaskClient,
    world: World,
    clock: Clock,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    token = user_token(client, world.alice_key)
    clock.advance(900 + 60)  # lifetime plus the leeway
    denied(review(client, token))
    record = last_decision(audit_records)
    assert record["reason"] == "expired"
    assert record["detail"].startswith("token expired at 20") and record["detail"].endswith("Z")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 9000], ids=len)
def test_garbage_tokens_are_verdicts(client: FlaskClient, token: str) -> None:
    denied(review(client, token))


# --------------------------------------------------------------------------- audiences


def test_status_audiences(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    # spec.audiences absent: nothing to intersect, the field is left out
    assert "audiences" not in allowed(review(client, token))
    # disjoint (the kube-apiserver's own audience): left out, so the kube-apiserver
    # takes the token as valid for its implicit audiences
    assert "audiences" not in allowed(review(client, token, audiences=[API_AUDIENCE]))
    assert "audiences" not in allowed(review(client, token, audiences=[]))
    # overlapping: the intersection, in spec order, each once
    status = allowed(review(client, token, audiences=[API_AUDIENCE, "prod", "prod"]))
    assert status["audiences"] == ["prod"]


def test_spec_audiences_never_widen_what_a_token_is_for(client: FlaskClient, world: World) -> None:
    staging = user_token(client, world.alice_key, audience="staging")
    # naming staging in spec.audiences does not make a prod certificate accept it
    denied(review(client, staging, audiences=["staging", "prod"], cert=PROD))


# --------------------------------------------------------------------------- bad requests


def _post(client: FlaskClient, data: bytes | str, cert: dict[str, Any] = PROD) -> TestResponse:
    return client.post(
        "/authenticate", data=data, content_type="application/json", environ_base=cert
    )


def _doc(**changes: Any) -> str:
    doc: dict[str, Any] = {"apiVersion": V1, "kind": "TokenReview", "spec": {"token": "x"}}
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[]", "not a JSON object"),
        (_doc(kind="SubjectAccessReview"), "kind"),
        (_doc(apiVersion="authentication.k8s.io/v2"), "apiVersion"),
        (_doc(apiVersion=None), "apiVersion"),
        (_doc(spec=None), "spec"),
        (_doc(spec={}), "spec.token"),
        (_doc(spec={"token": 42}), "spec.token"),
        (_doc(spec={"token": "x", "audiences": "prod"}), "spec.audiences"),
        (_doc(spec={"token": "x", "audiences": [1]}), "spec.audiences"),
    ],
)
def test_not_a_token_review_is_400(client: FlaskClient, body: str | bytes, fragment: str) -> None:
    response = _post(client, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("not a TokenReview") and fragment in error
    assert "authenticated" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("token", "reason", "detail"),
    [
        ("", "no_token", "spec.token is empty"),
        ("x" * (20 * 1024), "malformed", "spec.token is longer than 16384 characters"),
    ],
    ids=["empty", "20 KiB"],
)
def test_an_empty_or_oversized_token_is_a_200_denial_not_a_400(
    client: FlaskClient,
    token: str,
    reason: str,
    detail: str,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    # A TokenReview that parses gets a verdict: the kube-apiserver caches a 200
    # denial, while a 400 is an error it does not cache (and logs as a webhook failure).
    before = sample("authbridge_tokenreview_total", outcome="denied", reason=reason)
    denied(review(client, token))
    record = last_decision(audit_records)
    assert (record["outcome"], record["reason"], record["detail"]) == ("denied", reason, detail)
    assert sample("authbridge_tokenreview_total", outcome="denied", reason=reason) == before + 1


def test_unknown_fields_are_ignored(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    body = {
        "apiVersion": V1,
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": token, "audiences": None, "future": True},
        "status": {"user": {}},
    }
    allowed(_post(client, json.dumps(body)))


def test_body_over_64_kib_is_413(client: FlaskClient) -> None:
    response = _post(client, _doc(spec={"token": "x" * (65 * 1024)}))
    assert response.status_code == 413


def test_get_is_405(client: FlaskClient) -> None:
    assert client.get("/authenticate", environ_base=PROD).status_code == 405


# --------------------------------------------------------------------------- callers


def test_no_client_certificate_is_401(client: FlaskClient, world: World) -> None:
    response = review(client, user_token(client, world.alice_key), cert=None)
    assert response.status_code == 401
    assert response.get_json() == {"error": "client certificate required"}


def test_a_certificate_of_no_served_cluster_is_403(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    for cert in (peer("dev-cp", "dev"), {"authbridge.peer_cert": {}}, peer("x", "")):
        response = review(client, token, cert=cert)
        assert response.status_code in (401, 403)
    response = review(client, token, cert=peer("dev-cp", "dev"))
    assert response.status_code == 403
    assert "dev-cp" in response.get_json()["error"]


def test_without_a_client_ca_every_caller_is_served(
    build: Callable[..., Flask],
    tmp_path: Path,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = build(settings=make_settings(tmp_path)).test_client()
    caplog.set_level(logging.WARNING, logger="authbridge.web.webhook")
    for cluster in ("prod", "staging"):
        token = user_token(client, world.alice_key, audience=cluster)
        allowed(review(client, token, cert=None))
    warnings = [r for r in caplog.records if r.getMessage() == NO_CLIENT_CA_WARNING]
    assert len(warnings) == 1  # once per worker (app)


# --------------------------------------------------------------------------- mapping


def test_a_mapping_for_one_cluster_refuses_tokens_for_another(
    settings: Settings,
    build: Callable[..., Flask],
    clock: Clock,
    world: World,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    write_mapping(settings.mapping_file, "clusterID: prod\n" + MAPPING)
    client = build(mapping=MappingHolder(settings.mapping_file, clock=clock)).test_client()
    allowed(review(client, user_token(client, world.alice_key, "prod"), cert=PROD))
    denied(review(client, user_token(client, world.alice_key, "staging"), cert=STAGING))
    record = last_decision(audit_records)
    assert record["reason"] == "not_mapped"
    assert "is for cluster prod" in record["detail"]


def test_no_mapping_file_refuses_everyone_and_says_why(
    settings: Settings,
    build: Callable[..., Flask],
    clock: Clock,
    world: World,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    missing = settings.mapping_file.with_name("absent.yaml")
    client = build(mapping=MappingHolder(missing, clock=clock)).test_client()
    denied(review(client, user_token(client, world.alice_key)))
    assert "no mapping file is loaded" in last_decision(audit_records)["detail"]
    # Ready all the same: without a mapping file, access entries alone decide.
    assert client.get("/readyz").get_json()["checks"]["mapping"] == {"ok": True, "absent": True}
    # A file that is there but never loaded (invalid from the start) is not ready.
    missing.write_text("mapRoles: [oops\n")
    clock.advance(10)
    assert client.get("/readyz").get_json()["checks"]["mapping"] == {
        "ok": False,
        "error": "MappingNotLoaded",
    }


# --------------------------------------------------------------------------- cache


def _cache(result: str) -> float:
    return sample("authbridge_tokenreview_cache_total", result=result)


def test_cache_hits_are_counted(
    client: FlaskClient, world: World, audit_records: Callable[[], list[dict[str, Any]]]
) -> None:
    token = user_token(client, world.alice_key)
    hits, misses = _cache("hit"), _cache("miss")
    first = allowed(review(client, token))
    assert last_decision(audit_records)["cache_hit"] is False
    second = allowed(review(client, token))
    assert second == first
    assert last_decision(audit_records)["cache_hit"] is True
    assert (_cache("hit") - hits, _cache("miss") - misses) == (1, 1)
    # spec.audiences and the caller's clusters are part of the key
    assert allowed(review(client, token, audiences=["prod"]))["audiences"] == ["prod"]
    assert _cache("miss") - misses == 2


def test_cache_is_dropped_on_a_mapping_reload(
    client: FlaskClient, world: World, settings: Settings, clock: Clock
) -> None:
    token = user_token(client, world.alice_key)
    assert allowed(review(client, token))["user"]["username"] == "alice"
    write_mapping(settings.mapping_file, MAPPING.replace("username: alice", "username: alice2"))
    clock.advance(1.5)  # past the holder's check interval, well within the cache TTL
    hits = _cache("hit")
    assert allowed(review(client, token))["user"]["username"] == "alice2"
    assert _cache("hit") == hits


def test_cache_is_dropped_when_the_key_set_changes(
    client: FlaskClient, world: World, key_directory: KeyDirectory, clock: Clock
) -> None:
    # A retired (or, in the store, revoked) signing key ends its tokens' cached verdicts
    # too: the cache follows the key set as it follows the mapping, not only its TTL.
    token = user_token(client, world.alice_key)
    old = key_directory.load().signing_key(int(clock.now))
    allowed(review(client, token))
    key_directory.rotate(now=clock.now - 1800)  # the successor is active by now
    key_directory.retire(old.kid, now=clock.now)
    clock.advance(1.5)  # past the key ring's check interval, well within the cache TTL
    denied(review(client, token))


def test_cache_never_outlives_its_ttl(
    client: FlaskClient, world: World, app_store: SqlStore, clock: Clock, settings: Settings
) -> None:
    assert settings.webhook_cache_ttl == 5
    token = user_token(client, world.alice_key)
    allowed(review(client, token))
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    clock.advance(4)
    allowed(review(client, token))  # within the documented revocation bound
    clock.advance(1)
    denied(review(client, token))


def test_cache_never_outlives_the_token(
    build: Callable[..., Flask], tmp_path: Path, world: World, clock: Clock
) -> None:
    settings = make_settings(tmp_path, client_ca_file="tls/ca.crt", webhook_cache_ttl=300)
    client = build(settings=settings).test_client()
    token = user_token(client, world.alice_key)  # 900 s
    clock.advance(800)
    allowed(review(client, token))  # cached until exp (in 100 s), not for the 300 s TTL
    clock.advance(99)
    hits, misses = _cache("hit"), _cache("miss")
    allowed(review(client, token))
    assert _cache("hit") - hits == 1
    clock.advance(2)  # past exp: the verifier's 60 s leeway still accepts it, the cache not
    allowed(review(client, token))
    assert _cache("miss") - misses == 1


def test_refusals_are_never_cached(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    token = user_token(client, world.alice_key)
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    denied(review(client, token))
    app_store.set_user_enabled(ACCOUNT, "alice", True)
    allowed(review(client, token))


def test_ttl_zero_turns_the_cache_off(
    build: Callable[..., Flask], tmp_path: Path, world: World, app_store: SqlStore
) -> None:
    settings = make_settings(tmp_path, client_ca_file="tls/ca.crt", webhook_cache_ttl=0)
    client = build(settings=settings).test_client()
    token = user_token(client, world.alice_key)
    hits, misses = _cache("hit"), _cache("miss")
    allowed(review(client, token))
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    denied(review(client, token))
    assert (_cache("hit"), _cache("miss")) == (hits, misses)


# --------------------------------------------------------------------------- failures


def test_store_down_is_503_with_retry_after(
    build: Callable[..., Flask],
    app_store: SqlStore,
    world: World,
    audit_records: Callable[[], list[dict[str, Any]]],
) -> None:
    store = FlakyStore(app_store)
    client = build(store=store).test_client()
    token = user_token(client, world.alice_key)
    store.down = True
    errors = sample("authbridge_tokenreview_total", outcome="error", reason="store_unavailable")
    response = review(client, token)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "the IAM store is unavailable; retry shortly"}
    assert b"hunter2" not in response.get_data()
    assert (
        sample("authbridge_tokenreview_total", outcome="error", reason="store_unavailable")
        == errors + 1
    )
    assert last_decision(audit_records)["outcome"] == "error"


# --------------------------------------------------------------------------- logs, metrics


def test_no_log_record_holds_the_token(
    build: Callable[..., Flask],
    world: World,
    app_store: SqlStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    store = FlakyStore(app_store)
    client = build(store=store).test_client()
    canary = "CANARY" + "Q" * 40
    valid = user_token(client, world.alice_key)
    unmapped = user_token(client, world.bob_key)
    head, payload, _signature = valid.split(".")
    forged = f"{head}.{payload}.{canary}"
    # Any 16 characters in a row of a token count as a part of it.
    parts = {"CANARY"}
    for token in (valid, unmapped):
        parts.update(token[i : i + 16] for i in range(len(token) - 15))
    caplog.clear()

    allowed(review(client, valid))
    allowed(review(client, valid))  # a cache hit
    denied(review(client, unmapped))
    denied(review(client, forged))
    denied(review(client, canary))
    denied(review(client, f"{canary}.{canary}.{canary}"))
    _post(client, json.dumps({"apiVersion": V1, "kind": "Nope", "spec": {"token": canary}}))
    _post(
        client, json.dumps({"apiVersion": V1, "kind": "TokenReview", "spec": {"token": [canary]}})
    )
    _post(client, "{" + canary)
    review(client, valid, cert=None)
    review(client, valid, cert=peer("dev-cp", "dev"))
    client.get("/verify", headers={"Authorization": f"Bearer {forged}"})
    client.post("/verify", json={"token": canary})
    store.down = True
    review(client, valid)
    client.get("/verify", headers={"Authorization": f"Bearer {valid}"})

    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        leaked = [part for part in parts if part in text]
        assert not leaked, (record.name, record.levelname, leaked[:3])


def test_a_latency_sample_per_outcome(
    build: Callable[..., Flask], app_store: SqlStore, world: World
) -> None:
    store = FlakyStore(app_store)
    client = build(store=store).test_client()
    token = user_token(client, world.alice_key)

    def count(outcome: str) -> float:
        return sample("authbridge_tokenreview_duration_seconds_count", outcome=outcome)

    before = {o: count(o) for o in metrics.OUTCOMES}
    allowed(review(client, token))
    denied(review(client, "garbage"))
    _post(client, "not json")
    store.down = True
    assert review(client, token, audiences=["prod"]).status_code == 503  # not in the cache
    after = {o: count(o) for o in metrics.OUTCOMES}
    assert {o: after[o] - before[o] for o in metrics.OUTCOMES} == {
        "allowed": 1,
        "denied": 1,
        "error": 2,
    }
    assert sample("authbridge_tokenreview_total", outcome="denied", reason="malformed") >= 1


def test_role_session_of_an_unmapped_role_is_refused(client: FlaskClient, world: World) -> None:
    subject = sts_token(client, world.alice_key)
    minted = exchange(client, subject, world.dev.arn, "dev-session")
    assert minted.status_code == 200
    denied(review(client, minted.get_json()["access_token"]))


# --------------------------------------------------------------------------- peer


class _Socket:
    def __init__(self, cert: Any = None, error: Exception | None = None) -> None:
        self.cert, self.error = cert, error

    def getpeercert(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.cert


def test_client_certificate_from_the_gunicorn_socket() -> None:
    subject = ((("commonName", "prod-cp"),), (("organizationName", "prod"),))
    found = client_certificate({"gunicorn.socket": _Socket({"subject": subject})})
    assert found == PeerCert("prod-cp", ("prod",))
    for sock in (_Socket(None), _Socket({}), _Socket(error=ValueError()), object()):
        assert client_certificate({"gunicorn.socket": sock}) is None
    assert client_certificate({}) is None


def test_no_header_stands_in_for_a_certificate(client: FlaskClient, world: World) -> None:
    token = user_token(client, world.alice_key)
    body = {"apiVersion": V1, "kind": "TokenReview", "spec": {"token": token}}
    forged = {"authbridge.peer_cert": "O=prod", "Authbridge-Peer-Cert": "O=prod"}
    response = client.post("/authenticate", json=body, headers=forged)
    assert response.status_code == 401


# --------------------------------------------------------------------------- the fast path


def test_the_fast_path_and_the_flask_view_answer_alike(
    build: Callable[..., Flask], app_store: SqlStore, world: World
) -> None:
    # create_app answers POST /authenticate without Flask (webhook.FastPath); the Flask
    # view (what an app without it runs) must give the same status, headers and body.
    from werkzeug.test import Client

    from authbridge.web.webhook import FastPath

    store = FlakyStore(app_store)
    app = build(store=store)
    fast_path = app.wsgi_app
    assert isinstance(fast_path, FastPath)
    clients = {"fast path": app.test_client(), "flask view": Client(fast_path.next)}
    token = user_token(clients["fast path"], world.alice_key)
    cases: list[tuple[str, dict[str, Any]]] = [
        (json.dumps({"apiVersion": V1, "kind": "TokenReview", "spec": {"token": t}}), cert)
        for t in (token, "garbage", "", "x" * (20 * 1024))
        for cert in (PROD, STAGING, {})
    ]
    cases += [
        (json.dumps({"apiVersion": "v0", "kind": "TokenReview", "spec": {"token": token}}), PROD),
        ("[1, 2", PROD),
        ("x" * 70_000, PROD),
    ]
    for down in (False, True):
        store.down = down
        for data, cert in cases:
            answers = {}
            for name, client in clients.items():
                r = client.post(
                    "/authenticate", data=data, content_type="application/json", environ_base=cert
                )
                answers[name] = (
                    r.status_code,
                    r.headers.get("Content-Type"),
                    r.headers.get("Cache-Control"),
                    r.headers.get("Retry-After"),
                    r.get_json(),
                )
            assert answers["fast path"] == answers["flask view"], (data[:80], cert, down)


def test_other_methods_on_authenticate_still_get_flasks_405(client: FlaskClient) -> None:
    response = client.get("/authenticate")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_an_unexpected_failure_on_the_fast_path_is_a_logged_500(
    build: Callable[..., Flask],
    world: World,
    audit_records: Callable[[], list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from authbridge.web import webhook

    client = build().test_client()
    token = user_token(client, world.alice_key)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(webhook, "review_token", broken)
    response = review(client, token)
    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"
    assert response.headers["Cache-Control"] == "no-store"
    assert any("request failed: KeyError" in r.getMessage() for r in caplog.records)
    assert last_decision(audit_records)["reason"] == metrics.INTERNAL


def test_answers_are_ascii_json_so_no_value_can_fail_to_encode(
    build: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lone surrogate cannot be written as UTF-8: were one ever to reach an answer
    # (claim validation keeps them out of tokens), it must be an escape, never a 500.
    from authbridge.web import webhook

    assert webhook.dumps({"username": "\ud800é"}) == '{"username": "\\ud800\\u00e9"}'
    assert webhook.json_response({"reason": "\udfff"}).get_data() == b'{"reason": "\\udfff"}'

    # And should the fast path meet an answer it cannot encode, the client gets the
    # app's JSON 500, not the server's HTML one.
    client = build().test_client()
    monkeypatch.setattr(webhook, "answer_review", lambda hook, environ: (200, "\ud800", []))
    response = review(client, "x")
    assert response.status_code == 500 and response.get_json()["error"] == "server_error"


def test_cache_is_dropped_when_access_entries_change(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    # An access entry made (or deleted) after a verdict was cached must not wait for the
    # TTL once any review of this worker has seen the new access version.
    token = user_token(client, world.alice_key)
    assert allowed(review(client, token))["user"]["username"] == "alice"
    app_store.create_access_entry("prod", world.alice.arn, username="alice-entry")
    denied(review(client, user_token(client, world.bob_key)))  # a miss: reads the version
    assert allowed(review(client, token))["user"]["username"] == "alice-entry"
    app_store.delete_access_entry("prod", world.alice.arn)
    denied(review(client, user_token(client, world.bob_key)))
    assert allowed(review(client, token))["user"]["username"] == "alice"


def test_access_entry_change_reaches_a_cached_verdict_within_the_ttl(
    client: FlaskClient, world: World, app_store: SqlStore, clock: Clock, settings: Settings
) -> None:
    token = user_token(client, world.alice_key)
    allowed(review(client, token))
    app_store.set_authentication_mode("prod", "API")  # alice has no entry: refused
    clock.advance(settings.webhook_cache_ttl - 1)
    allowed(review(client, token))  # within the documented revocation bound
    clock.advance(1)
    denied(review(client, token))
