"""Liveness and readiness.

Covers: /healthz is 200 "ok"; /readyz is 200 with each check listed when the
store answers and a key signs; 503 naming the failing check (by error code
only, never details) when the store is down or no key is active yet; a failed
key reload keeps the app ready on the last good keys and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from authbridge.errors import StoreUnavailable
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.store import SqlStore
from tests.web.helpers import Clock


def test_healthz(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_data() == b"ok"


def test_ready(make_app: Callable[..., Flask], app_store: SqlStore, keyring: KeyRing) -> None:
    response = make_app().test_client().get("/readyz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body == {
        "ready": True,
        "checks": {
            "store": {"ok": True, "schema_version": app_store.schema_version()},
            "keys": {
                "ok": True,
                "active_kid": keyring.current().keys[0].kid,
                "published_keys": 1,
            },
            "mapping": body["checks"]["mapping"],
        },
    }
    mapping = body["checks"]["mapping"]
    assert mapping["ok"] is True and len(mapping["digest"]) == 64


class _DownStore:
    partition = "aws"

    def schema_version(self) -> int:
        raise StoreUnavailable("cannot reach postgresql://admin:hunter2@db/iam")


def test_not_ready_when_the_store_is_down(make_app: Callable[..., Flask]) -> None:
    response = make_app(store=_DownStore()).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ready"] is False
    assert body["checks"]["store"] == {"ok": False, "error": "StoreUnavailable"}
    assert body["checks"]["keys"]["ok"] is True
    assert b"hunter2" not in response.get_data()


def test_not_ready_without_an_active_key(
    make_app: Callable[..., Flask], tmp_path: Path, clock: Clock
) -> None:
    future = KeyDirectory(tmp_path / "future-keys")
    future.init("ES256", now=clock.now + 3600)  # not active for an hour
    response = make_app(keys=KeyRing(future, clock=clock)).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["keys"] == {"ok": False, "error": "KeyStoreError"}


def test_a_failed_reload_keeps_the_last_good_keys(
    make_app: Callable[..., Flask], key_directory: KeyDirectory, clock: Clock
) -> None:
    client = make_app().test_client()
    key_directory.state_file.write_text("{half a file")
    clock.advance(1.5)
    response = client.get("/readyz")
    assert response.status_code == 200
    keys: dict[str, Any] = response.get_json()["checks"]["keys"]
    assert keys["ok"] is True
    assert keys["last_reload_failed"] is True
    assert client.get("/openid/v1/jwks").status_code == 200
