"""GET /metrics and what feeds it, through Flask's test client (one process).

Covers:
- /metrics: 200 without credentials, the Prometheus text content type,
  ``Cache-Control: no-store``, every family of the issue present;
- tokens issued by grant; token-endpoint failures by grant and RFC 6749
  error code, including refusals raised before the view (413) and junk
  grant types (``other``); introspection and revocation results;
- /verify: the counter by reason and a latency sample per request;
- mapping reloads counted per holder: the load at start, a refused file, a
  good file again; ``authbridge_mapping_info{digest}``, the age, and
  ``last_reload_failed`` while the last good mapping serves;
- signing keys by state, and the age of each published key (a rotation
  shows a pending key; a retired key has no age series);
- the store: every protocol call timed by operation; ``StoreUnavailable``
  counted as an error, regular answers (wrong secret, not found) not;
  non-protocol attributes pass through; wrapping is done once;
- label values never carry what a caller sent;
- multiprocess set-up: ``enable_multiprocess`` refuses once values exist;
  ``authbridge serve``'s directory is private and a given one is emptied;
  an unwritable audit log stops ``serve`` with one line.
"""

from __future__ import annotations

import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from authbridge.errors import ConfigError, NoSuchEntity
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.web import create_app, metrics, server
from tests.conftest import ACCOUNT
from tests.web.helpers import (
    TOKEN_EXCHANGE,
    Clock,
    FlakyStore,
    World,
    basic,
    exchange,
    key_auth,
    session_token,
    sts_token,
    user_token,
)

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/team/alice"
MAPPING = f"""\
mapUsers:
  - userarn: {ALICE_ARN}
    username: alice
"""
FAMILIES = {
    "authbridge_tokenreview",  # _total: the parser drops the suffix of counters
    "authbridge_tokenreview_duration_seconds",
    "authbridge_tokenreview_cache",
    "authbridge_verify",
    "authbridge_verify_duration_seconds",
    "authbridge_tokens_issued",
    "authbridge_token_endpoint_failures",
    "authbridge_introspection",
    "authbridge_revocation",
    "authbridge_mapping_reloads",
    "authbridge_mapping_info",
    "authbridge_mapping_age_seconds",
    "authbridge_mapping_last_reload_failed",
    "authbridge_signing_keys",
    "authbridge_signing_key_age_seconds",
    "authbridge_store_operation_duration_seconds",
    "authbridge_store_errors",
}


def stored(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


class Delta:
    """Counter changes since creation (the registry is shared by every test)."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.series = series
        self.before = [stored(name, **labels) for name, labels in series]

    def __call__(self) -> list[float]:
        return [stored(n, **lb) - b for (n, lb), b in zip(self.series, self.before, strict=True)]


@pytest.fixture
def holder(settings: Settings, clock: Clock) -> MappingHolder:
    settings.mapping_file.write_text(MAPPING)
    return MappingHolder(settings.mapping_file, check_interval=0)


@pytest.fixture
def app(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock, holder: MappingHolder
) -> Flask:
    return create_app(settings, store=app_store, keys=keyring, clock=clock, mapping=holder)


# --------------------------------------------------------------------------- the endpoint


def test_metrics_are_served_without_credentials(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert response.headers["Cache-Control"] == "no-store"
    names = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert names >= FAMILIES, FAMILIES - names


# --------------------------------------------------------------------------- token endpoint


def test_tokens_issued_and_failures(client: FlaskClient, world: World) -> None:
    failure = "authbridge_token_endpoint_failures_total"
    delta = Delta(
        ("authbridge_tokens_issued_total", {"grant": "client_credentials"}),
        ("authbridge_tokens_issued_total", {"grant": "token_exchange"}),
        (failure, {"grant": "client_credentials", "error": "invalid_client"}),
        (failure, {"grant": "client_credentials", "error": "invalid_target"}),
        (failure, {"grant": "token_exchange", "error": "invalid_grant"}),
        (failure, {"grant": "other", "error": "unsupported_grant_type"}),
        (failure, {"grant": "other", "error": "invalid_request"}),
    )
    subject = sts_token(client, world.alice_key)
    user_token(client, world.bob_key)
    assert exchange(client, subject, world.admin.arn).status_code == 200
    key_id = world.alice_key.key.access_key_id
    wrong = basic(key_id, "not-the-secret")
    for _ in range(2):
        assert session_token_with(client, wrong).status_code == 401
    assert session_token(client, world.alice_key, "no-such-cluster").status_code == 400
    assert exchange(client, "not-a-token", world.admin.arn).status_code == 400
    junk = {"grant_type": "password", "audience": "prod"}
    assert client.post("/oauth2/token", data=junk).status_code == 400
    assert client.post("/oauth2/token", data={"audience": "prod"}).status_code == 400
    big = {"grant_type": "client_credentials", "audience": "x" * 70_000}
    assert client.post("/oauth2/token", data=big).status_code == 413  # before the view
    assert delta() == [2, 1, 2, 1, 1, 1, 2]


def session_token_with(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "audience": "prod"},
        headers=headers,
    )


def test_introspection_and_revocation_results(client: FlaskClient, world: World) -> None:
    delta = Delta(
        *(("authbridge_introspection_total", {"result": r}) for r in ("active", "inactive")),
        ("authbridge_introspection_total", {"result": "refused"}),
        *(("authbridge_revocation_total", {"result": r}) for r in ("revoked", "not_revocable")),
        ("authbridge_revocation_total", {"result": "refused"}),
    )
    token = user_token(client, world.alice_key)
    auth = key_auth(world.bob_key)
    assert client.post("/oauth2/introspect", data={"token": token}, headers=auth).get_json()[
        "active"
    ]
    client.post("/oauth2/introspect", data={"token": "garbage"}, headers=auth)
    client.post("/oauth2/introspect", data={"token": token})  # no client: 401
    assert client.post("/oauth2/revoke", data={"token": token}).status_code == 200
    assert client.post("/oauth2/revoke", data={"token": "garbage"}).status_code == 200
    client.post("/oauth2/revoke", data={"token": token}, headers=basic("AKIA", "x"))
    assert delta() == [1, 1, 1, 1, 1, 1]


# --------------------------------------------------------------------------- /verify


def test_verify_counts_and_latency(client: FlaskClient, world: World) -> None:
    delta = Delta(
        ("authbridge_verify_total", {"outcome": "allowed", "reason": "ok"}),
        ("authbridge_verify_total", {"outcome": "denied", "reason": "malformed"}),
        ("authbridge_verify_total", {"outcome": "error", "reason": "no_token"}),
        *(
            ("authbridge_verify_duration_seconds_count", {"outcome": o})
            for o in ("allowed", "denied", "error")
        ),
    )
    token = user_token(client, world.alice_key)
    assert client.get("/verify", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    client.get("/verify", headers={"Authorization": "Bearer garbage"})
    assert client.get("/verify").status_code == 400
    assert delta() == [1, 1, 1, 1, 1, 1]


# --------------------------------------------------------------------------- mapping


def test_mapping_reloads_and_state(
    client: FlaskClient, holder: MappingHolder, settings: Settings, world: World
) -> None:
    # The holder loaded at start, before it was observed: the app counted that load.
    assert holder.version == 1
    delta = Delta(
        ("authbridge_mapping_reloads_total", {"result": "success"}),
        ("authbridge_mapping_reloads_total", {"result": "failure"}),
    )
    first = scrape(client)
    digest = holder.current().digest
    assert first[("authbridge_mapping_info", (("digest", digest),))] == 1
    assert 0 <= first[("authbridge_mapping_age_seconds", ())] < 60
    assert first[("authbridge_mapping_last_reload_failed", ())] == 0

    settings.mapping_file.write_text("mapUsers: [oops\n")  # refused: the last good one serves
    failed = scrape(client)
    assert failed[("authbridge_mapping_last_reload_failed", ())] == 1
    assert failed[("authbridge_mapping_info", (("digest", digest),))] == 1
    scrape(client)  # the same bad file is one failure, not one per look
    assert delta() == [0, 1]

    settings.mapping_file.write_text(MAPPING + "mapAccounts: []\n")
    token = user_token(client, world.alice_key)
    client.get("/verify", headers={"Authorization": f"Bearer {token}"})  # reloads on a request
    after = scrape(client)
    assert after[("authbridge_mapping_last_reload_failed", ())] == 0
    infos = [k for k in after if k[0] == "authbridge_mapping_info"]
    assert infos == [("authbridge_mapping_info", (("digest", holder.current().digest),))]
    assert holder.current().digest != digest
    assert delta() == [1, 1]


def test_observe_mapping_counts_each_change_once(settings: Settings) -> None:
    settings.mapping_file.unlink()
    holder = MappingHolder(settings.mapping_file, check_interval=0)
    delta = Delta(
        ("authbridge_mapping_reloads_total", {"result": "success"}),
        ("authbridge_mapping_reloads_total", {"result": "failure"}),
    )
    metrics.observe_mapping(holder)  # missing file: a failure
    metrics.observe_mapping(holder)
    settings.mapping_file.write_text(MAPPING)
    holder.current()
    metrics.observe_mapping(holder)
    settings.mapping_file.write_text("{")
    holder.current()
    metrics.observe_mapping(holder)
    settings.mapping_file.write_text(MAPPING)  # the same good bytes again
    holder.current()
    metrics.observe_mapping(holder)
    assert delta() == [2, 2]


# --------------------------------------------------------------------------- signing keys


def test_signing_keys_by_state_and_age(
    client: FlaskClient, key_directory: KeyDirectory, clock: Clock
) -> None:
    before = scrape(client)
    assert before[("authbridge_signing_keys", (("state", "active"),))] == 1
    assert before[("authbridge_signing_keys", (("state", "pending"),))] == 0
    ages = {k: v for k, v in before.items() if k[0] == "authbridge_signing_key_age_seconds"}
    assert list(ages.values()) == [3600]  # made an hour before the test clock

    new = key_directory.rotate(now=clock.now)
    clock.advance(2)  # the key ring looks at keys/ again
    after = scrape(client)
    assert after[("authbridge_signing_keys", (("state", "pending"),))] == 1
    pending_age = ("authbridge_signing_key_age_seconds", (("kid", new.kid), ("state", "pending")))
    assert after[pending_age] == 2


def test_a_retired_key_has_no_age_series(
    client: FlaskClient, key_directory: KeyDirectory, clock: Clock
) -> None:
    old = key_directory.load().signing_key(clock.now)
    key_directory.rotate(now=clock.now - 1200)  # active 600 s ago
    key_directory.retire(old.kid, now=clock.now)
    clock.advance(2)
    samples = scrape(client)
    assert samples[("authbridge_signing_keys", (("state", "retired"),))] == 1
    aged = [k for k in samples if k[0] == "authbridge_signing_key_age_seconds"]
    assert len(aged) == 1 and old.kid not in str(aged)


# --------------------------------------------------------------------------- the store


def test_store_calls_are_timed_and_failures_counted(
    make_app: Callable[..., Flask], app_store: SqlStore, world: World
) -> None:
    store = FlakyStore(app_store)
    client = make_app(store=store).test_client()
    op = "authenticate_access_key"
    delta = Delta(
        ("authbridge_store_operation_duration_seconds_count", {"operation": op}),
        ("authbridge_store_errors_total", {"operation": op}),
    )

    def all_errors() -> float:
        return sum(
            stored("authbridge_store_errors_total", operation=o) for o in metrics._OPERATIONS
        )

    errors_before = all_errors()
    token = user_token(client, world.alice_key)
    session_token_with(client, basic(world.alice_key.key.access_key_id, "wrong"))  # an answer
    client.get("/verify", headers={"Authorization": f"Bearer {token}"})
    store.down = True
    assert session_token(client, world.alice_key).status_code == 503
    assert client.get("/verify", headers={"Authorization": f"Bearer {token}"}).status_code == 503
    assert delta() == [3, 1]
    assert all_errors() - errors_before == 2  # each 503 is one failed call


def test_timed_store_passes_the_rest_through(app_store: SqlStore) -> None:
    timed = metrics.instrument_store(app_store)
    assert metrics.instrument_store(timed) is timed
    assert timed.partition == app_store.partition
    before = stored("authbridge_store_errors_total", operation="get_user")
    with pytest.raises(NoSuchEntity):
        timed.get_user(ACCOUNT, "nobody")
    assert stored("authbridge_store_errors_total", operation="get_user") == before
    assert "TimedStore(" in repr(timed)


# --------------------------------------------------------------------------- labels


def test_label_values_never_carry_what_a_caller_sent(client: FlaskClient, world: World) -> None:
    canary = "CanaryLabel7"
    junk = {"grant_type": canary, "audience": canary}
    client.post("/oauth2/token", data=junk, headers=basic(canary, canary))
    client.post("/oauth2/token", data={"grant_type": TOKEN_EXCHANGE, "subject_token": canary})
    client.get("/verify", headers={"Authorization": f"Bearer {canary}"})
    client.post("/verify", json={"token": canary, "clusterID": canary})
    client.post("/oauth2/introspect", data={"token": canary}, headers=basic(canary, canary))
    text = client.get("/metrics").get_data(as_text=True)
    assert canary not in text


# --------------------------------------------------------------------------- serve's set-up


def test_multiprocess_mode_refuses_once_values_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.observe_review("allowed", "ok", 0.001)  # a value now exists in this process
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "/nonexistent")
    with pytest.raises(RuntimeError, match="before multiprocess mode"):
        metrics.enable_multiprocess()
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    with pytest.raises(RuntimeError, match="is not set"):
        metrics.enable_multiprocess()


def test_serve_makes_a_private_metrics_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    switched: list[bool] = []
    monkeypatch.setattr(metrics, "enable_multiprocess", lambda: switched.append(True))
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = server.metrics_directory()
    assert made is not None and made.parent == tmp_path
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert server.os.environ[metrics.MULTIPROC_ENV] == str(made)

    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(given))
    assert server.metrics_directory() is None
    assert [p.name for p in given.iterdir()] == ["keep.txt"]
    assert switched == [True, True]


def test_an_unwritable_audit_log_stops_serve(tmp_path: Path) -> None:
    from tests.web.conftest import make_settings

    settings = make_settings(tmp_path, audit_log=str(tmp_path / "no-such-dir" / "audit.log"))
    with pytest.raises(ConfigError, match="cannot open the audit log"):
        server.check_audit_log(settings)
    server.check_audit_log(make_settings(tmp_path))  # stdout: nothing to check
