"""The sign-in pages' flow state in the store (SQLite and PostgreSQL): save, load, expiry,
replacement, deletion, the id kept only as a digest, bounded input."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authbridge.errors import InputError
from authbridge.store import SqlStore
from authbridge.store.sql_flows import MAX_STATE_CHARS, flow_hash

NOW = 1_800_000_000.0


def test_a_flow_is_saved_loaded_replaced_and_deleted(store: SqlStore) -> None:
    fid = secrets.token_urlsafe(32)
    assert store.load_signin_flow(fid, NOW) is None
    store.save_signin_flow(fid, '{"a": 1}', expires_at=NOW + 600, now=NOW)
    assert store.load_signin_flow(fid, NOW + 1) == '{"a": 1}'
    store.save_signin_flow(fid, '{"a": 2}', expires_at=NOW + 900, now=NOW + 2)
    assert store.load_signin_flow(fid, NOW + 700) == '{"a": 2}'
    store.delete_signin_flow(fid)
    assert store.load_signin_flow(fid, NOW + 3) is None
    store.delete_signin_flow(fid)  # idempotent


def test_an_expired_flow_is_gone_and_purged_by_the_next_save(store: SqlStore) -> None:
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.save_signin_flow(old, "{}", expires_at=NOW + 10, now=NOW)
    assert store.load_signin_flow(old, NOW + 10) is None
    store.save_signin_flow(new, "{}", expires_at=NOW + 100, now=NOW + 20)
    with store._tx() as cur:
        rows = cur.execute("SELECT flow_hash FROM signin_flows")
    assert [r[0] for r in rows] == [flow_hash(new)]


def test_the_flow_id_is_stored_only_as_a_digest(store: SqlStore) -> None:
    fid = secrets.token_urlsafe(32)
    store.save_signin_flow(fid, "{}", expires_at=NOW + 100, now=NOW)
    with store._tx() as cur:
        rows = cur.execute("SELECT flow_hash, state FROM signin_flows")
    assert fid not in repr(rows)


def test_oversized_state_and_malformed_ids_are_refused(store: SqlStore) -> None:
    with pytest.raises(InputError, match="state"):
        store.save_signin_flow("x", "y" * (MAX_STATE_CHARS + 1), expires_at=NOW + 1, now=NOW)
    with pytest.raises(InputError, match="flow_id"):
        store.save_signin_flow("", "{}", expires_at=NOW + 1, now=NOW)
    assert store.load_signin_flow("", NOW) is None
    assert store.load_signin_flow("z" * 10_000, NOW) is None


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fid=st.text(max_size=200))
def test_any_flow_id_loads_as_none_or_state_never_raises(store: SqlStore, fid: str) -> None:
    assert store.load_signin_flow(fid, NOW) is None
    store.delete_signin_flow(fid)
