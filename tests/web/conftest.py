"""Fixtures chaining settings → store → keys → app → client (STYLE.md §9).

``app_store`` is SQLite only; modules that must run on every backend override
it with the parametrized ``store`` fixture from tests/conftest.py. The clock is
a :class:`~tests.web.helpers.Clock` that drives both token times and the
KeyRing's reload checks (at most one look at ``keys/`` per clock second).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authbridge.iam.credentials import Pepper
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.settings import Settings, load_settings
from authbridge.store import SqlStore, open_store
from authbridge.web import create_app
from tests.conftest import ACCOUNT
from tests.web.helpers import CLUSTERS, ISSUER, Clock, World, build_world


def make_settings(tmp_path: Path, **flags: Any) -> Settings:
    # An empty, valid mapping: readiness needs one loaded (tests needing rules write their own).
    mapping = tmp_path / "rbac" / "mapping.yaml"
    if not mapping.exists():
        mapping.parent.mkdir(parents=True, exist_ok=True)
        mapping.write_text("{}\n")
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "cluster_ids": CLUSTERS,
        "keys_dir": str(tmp_path / "keys"),
        "key_algorithm": "ES256",
    }
    values.update(flags)
    return load_settings(values, {}, None, cwd=tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock(float(int(time.time())))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app_store(tmp_path: Path, pepper: Pepper) -> Iterator[SqlStore]:
    """A SQLite store with the test account (modules override this with ``store``)."""
    s = open_store(f"sqlite:///{tmp_path}/web/authbridge.db", pepper=pepper)
    s.create_account(ACCOUNT)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def key_directory(settings: Settings, clock: Clock) -> KeyDirectory:
    directory = KeyDirectory(
        settings.keys_dir,
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
    )
    directory.init("ES256", now=clock.now - 3600)
    return directory


@pytest.fixture
def keyring(key_directory: KeyDirectory, clock: Clock) -> KeyRing:
    return KeyRing(key_directory, clock=clock)


@pytest.fixture
def world(app_store: SqlStore) -> World:
    return build_world(app_store)


@pytest.fixture
def make_app(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock, world: World
) -> Callable[..., Flask]:
    """Build an app; keyword arguments replace the defaults (settings, store, keys, clock)."""

    def make(**overrides: Any) -> Flask:
        parts: dict[str, Any] = {
            "settings": settings,
            "store": app_store,
            "keys": keyring,
            "clock": clock,
        }
        parts.update(overrides)
        return create_app(
            parts["settings"], store=parts["store"], keys=parts["keys"], clock=parts["clock"]
        )

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
