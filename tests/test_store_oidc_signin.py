"""Sign-in configuration of OIDC providers and migration 9, on SQLite and PostgreSQL.

Covers: a provider's sign-in configuration put (created, then replaced whole),
got (None when there is none), deleted (NoSuchEntity when there is none, or
no provider), deleted with its provider (the foreign key's cascade), listed
across accounts for the login page; a provider of another account is not
found; the sealed secret comes back as it went in and never in a repr; the
CHECK that a sealed secret comes with its KEK id. Migration 9: the rows of
sessions, refresh tokens, authorization codes and device codes that a real
version-8 store wrote survive unchanged, their indexes and the refresh
tokens' foreign key are still there, and the new CHECKs hold (a session or
code has exactly one of user and federated subject, a device code at most
one).
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from authbridge.errors import DeleteConflict, NoSuchEntity
from authbridge.iam.credentials import Pepper
from authbridge.iam.sessions import SessionLifetimes
from authbridge.store import SqlStore, open_store
from authbridge.store.migrations import LATEST_VERSION, MIGRATIONS
from tests.conftest import ACCOUNT, OTHER_ACCOUNT

URL = "https://idp.example.com"
ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com"
NOW = 1_800_000_000.0
# What a broken constraint raises from a raw statement, on either backend.
INTEGRITY = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)


@pytest.fixture
def provider(store: SqlStore) -> str:
    return store.create_open_id_connect_provider(ACCOUNT, URL, ["authbridge-signin"]).arn


def _put(store: SqlStore, arn: str = ARN, **kw: object) -> object:
    values: dict[str, object] = {
        "display_name": "Example SSO",
        "client_id": "authbridge-signin",
        "scopes": ("openid", "groups"),
        "sealed_secret": None,
        "kek_id": None,
        "now": NOW,
    }
    values.update(kw)
    return store.put_open_id_connect_provider_sign_in(ACCOUNT, arn, **values)  # type: ignore[arg-type]


def test_sign_in_configuration_is_put_got_replaced_and_deleted(
    store: SqlStore, provider: str
) -> None:
    assert store.get_open_id_connect_provider_sign_in(ACCOUNT, provider) is None
    made = _put(store)
    got = store.get_open_id_connect_provider_sign_in(ACCOUNT, provider)
    assert got == made
    assert got is not None and got.scopes == ("openid", "groups") and not got.client_secret_set
    replaced = _put(store, display_name="Corp", sealed_secret="v1.sealed", kek_id="kid1")
    got = store.get_open_id_connect_provider_sign_in(ACCOUNT, provider)
    assert got == replaced and got is not None
    assert got.display_name == "Corp" and got.sealed_secret == "v1.sealed" and got.client_secret_set
    assert "v1.sealed" not in repr(got)
    store.delete_open_id_connect_provider_sign_in(ACCOUNT, provider)
    assert store.get_open_id_connect_provider_sign_in(ACCOUNT, provider) is None
    with pytest.raises(NoSuchEntity, match="not a sign-in provider"):
        store.delete_open_id_connect_provider_sign_in(ACCOUNT, provider)


def test_the_sign_in_client_id_cannot_be_removed_from_the_client_id_list(
    store: SqlStore, provider: str
) -> None:
    store.add_client_id_to_open_id_connect_provider(ACCOUNT, provider, "other")
    _put(store)
    with pytest.raises(DeleteConflict, match="delete-open-id-connect-provider-sign-in"):
        store.remove_client_id_from_open_id_connect_provider(ACCOUNT, provider, "authbridge-signin")
    kept = store.get_open_id_connect_provider(ACCOUNT, provider)
    assert kept.client_ids == ("authbridge-signin", "other")
    store.remove_client_id_from_open_id_connect_provider(ACCOUNT, provider, "other")  # unused
    store.delete_open_id_connect_provider_sign_in(ACCOUNT, provider)
    store.remove_client_id_from_open_id_connect_provider(ACCOUNT, provider, "authbridge-signin")
    assert store.get_open_id_connect_provider(ACCOUNT, provider).client_ids == ()


def test_deleting_the_provider_deletes_its_sign_in_configuration(
    store: SqlStore, provider: str
) -> None:
    _put(store)
    assert len(store.list_sign_in_providers()) == 1
    store.delete_open_id_connect_provider(ACCOUNT, provider)
    assert store.list_sign_in_providers() == []
    with store._db.transaction(write=False) as cur:
        assert cur.execute("SELECT COUNT(*) FROM iam_oidc_signin")[0][0] == 0
    again = store.create_open_id_connect_provider(ACCOUNT, URL, ["authbridge-signin"])
    assert store.get_open_id_connect_provider_sign_in(ACCOUNT, again.arn) is None


def test_sign_in_of_an_unknown_or_foreign_provider_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NoSuchEntity):
        _put(store)
    with pytest.raises(NoSuchEntity):
        store.get_open_id_connect_provider_sign_in(ACCOUNT, ARN)
    store.create_account(OTHER_ACCOUNT)
    other = store.create_open_id_connect_provider(OTHER_ACCOUNT, URL, ["authbridge-signin"])
    with pytest.raises(NoSuchEntity):
        store.get_open_id_connect_provider_sign_in(ACCOUNT, other.arn)
    with pytest.raises(NoSuchEntity):
        store.delete_open_id_connect_provider_sign_in(ACCOUNT, other.arn)


def test_sign_in_providers_are_listed_across_accounts(store: SqlStore, provider: str) -> None:
    store.create_account(OTHER_ACCOUNT)
    other = store.create_open_id_connect_provider(OTHER_ACCOUNT, URL, ["x"])
    store.create_open_id_connect_provider(ACCOUNT, "https://plain.example", ["x"])
    _put(store)
    store.put_open_id_connect_provider_sign_in(
        OTHER_ACCOUNT,
        other.arn,
        display_name="Other",
        client_id="x",
        scopes=("openid",),
        sealed_secret=None,
        kek_id=None,
        now=NOW,
    )
    listed = store.list_sign_in_providers()
    assert [(p.arn, c.display_name) for p, c in listed] == [
        (ARN, "Example SSO"),
        (other.arn, "Other"),
    ]
    assert all(p.arn == c.provider_arn for p, c in listed)


def test_a_sealed_secret_without_its_kek_id_is_refused(store: SqlStore, provider: str) -> None:
    with pytest.raises(ValueError, match="KEK"):
        _put(store, sealed_secret="v1.x")
    with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO iam_oidc_signin (account_id, provider_key, display_name, client_id,"
            " scopes, sealed_secret, kek_id, updated_at)"
            " VALUES (?, 'idp.example.com', 'x', 'x', '[]', 'v1.x', NULL, 0)",
            (ACCOUNT,),
        )


# -- migration 9 ----------------------------------------------------------------------

_OLD_COLUMNS = {
    "signin_sessions": "session_id, user_id, kind, client_id, mfa, secret_hash, address,"
    " created_at, last_used_at, expires_at, idle_seconds, ended_at, end_reason",
    "signin_refresh_tokens": "token_hash, session_id, issued_at, rotated_at",
    "signin_authorization_codes": "code_hash, client_id, redirect_uri, code_challenge, scope,"
    " user_id, mfa, created_at, expires_at, redeemed_at, session_id",
    "signin_device_codes": "device_hash, user_code, client_id, scope, created_at, expires_at,"
    " interval_seconds, last_poll_at, status, user_id, mfa, decided_at, session_id",
}
_INDEXES = (
    "signin_sessions_user",
    "signin_sessions_expires",
    "signin_refresh_tokens_session",
    "signin_authorization_codes_expires",
    "signin_device_codes_expires",
)


def _rows(store: SqlStore) -> dict[str, list[tuple[object, ...]]]:
    with store._db.transaction(write=False) as cur:
        return {
            table: sorted(
                (tuple(r) for r in cur.execute(f"SELECT {cols} FROM {table}")),  # noqa: S608 - fixed names
                key=repr,
            )
            for table, cols in _OLD_COLUMNS.items()
        }


def _indexes(store: SqlStore) -> set[str]:
    with store._db.transaction(write=False) as cur:
        if store._db.dialect == "sqlite":
            rows = cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            rows = cur.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
    return {r[0] for r in rows}


def _version_8_rows(store: SqlStore) -> None:
    """Rows of every kind, as version 8's code wrote them (its columns, by plain SQL: the
    store's code now writes version 9's)."""
    alice = store.create_user(ACCOUNT, "alice").user_id
    now, life = int(NOW), SessionLifetimes()
    end, idle = now + life.max_seconds, life.idle_seconds
    rows = [
        (
            "INSERT INTO signin_sessions (session_id, user_id, kind, client_id, mfa, secret_hash,"
            " address, created_at, last_used_at, expires_at, idle_seconds, ended_at, end_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("s-cli", alice, "cli", "authbridge-cli", 1, None, None, now, now, end, idle)
                + (None, None),
                ("s-web", alice, "browser", "authbridge-web", 1, "cookie-1", "192.0.2.1", now)
                + (now, end, idle, now + 1, "logout"),
            ],
        ),
        (
            "INSERT INTO signin_refresh_tokens (token_hash, session_id, issued_at, rotated_at)"
            " VALUES (?, ?, ?, ?)",
            [("r-1", "s-cli", now, None)],
        ),
        (
            "INSERT INTO signin_authorization_codes (code_hash, client_id, redirect_uri,"
            " code_challenge, scope, user_id, mfa, created_at, expires_at, redeemed_at,"
            " session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("code-1", "authbridge-cli", "http://127.0.0.1:1/cb", "x" * 43, "openid", alice)
                + (1, now, now + 60, now, "s-cli"),
                ("code-2", "authbridge-cli", "http://127.0.0.1:1/cb", "y" * 43, "", alice)
                + (0, now, now + 60, None, None),
            ],
        ),
        (
            "INSERT INTO signin_device_codes (device_hash, user_code, client_id, scope,"
            " created_at, expires_at, interval_seconds, status, user_id, mfa, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("dev-1", "ABCDEFGH", "authbridge-cli", "", now, now + 600, 5, "approved")
                + (alice, 0, now),
                ("dev-2", "HGFEDCBA", "authbridge-cli", "", now, now + 600, 5, "pending")
                + (None, 0, None),
            ],
        ),
    ]
    with store._db.transaction(write=True) as cur:
        for statement, values in rows:
            for value in values:
                cur.execute(statement, value)


def test_rows_of_migration_8_survive_migration_9_unchanged(
    empty_dsn: str, pepper: Pepper, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authbridge.store import sql

    monkeypatch.setattr(sql, "MIGRATIONS", MIGRATIONS[:8])
    monkeypatch.setattr(sql, "LATEST_VERSION", 8)
    old = open_store(empty_dsn, pepper=pepper)
    assert old.schema_version() == 8
    old.create_account(ACCOUNT)
    _version_8_rows(old)
    before = _rows(old)
    assert all(before.values()), before
    indexes_before = _indexes(old)
    old.close()
    monkeypatch.undo()

    store = open_store(empty_dsn, pepper=pepper)
    try:
        assert store.schema_version() == LATEST_VERSION == 9
        assert _rows(store) == before
        assert set(_INDEXES) <= indexes_before
        assert set(_INDEXES) | {"signin_sessions_federated"} <= _indexes(store)
        # The refresh tokens still reference the (rebuilt) sessions table.
        with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
            cur.execute(
                "INSERT INTO signin_refresh_tokens (token_hash, session_id, issued_at)"
                " VALUES ('r-x', 'no-such-session', 0)"
            )
        # And the service still reads what it wrote before the upgrade.
        assert store.get_signin_session("s-cli") is not None
        assert store.browser_session("cookie-1", NOW + 2) is None  # ended before the upgrade
    finally:
        store.close()


def _subject(store: SqlStore) -> str:
    with store._db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO signin_federated_subjects (subject_id, account_id, provider_arn, sub,"
            " role_arn, role_id, session_name, claims, created_at)"
            " VALUES ('f-1', ?, ?, 'u1', 'arn:aws:iam::111122223333:role/Dev',"
            " 'AROAEXAMPLEEXAMPLE01', 'alice', '{}', 0)",
            (ACCOUNT, ARN),
        )
    return "f-1"


_SESSION = (
    "INSERT INTO signin_sessions (session_id, user_id, federated_id, kind, client_id, mfa,"
    " created_at, last_used_at, expires_at, idle_seconds)"
    " VALUES (?, ?, ?, 'cli', 'c', 0, 0, 0, 1, 1)"
)


def test_a_session_has_exactly_one_of_user_and_federated_subject(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice").user_id
    fed = _subject(store)
    with store._db.transaction(write=True) as cur:
        cur.execute(_SESSION, ("s-user", alice, None))
        cur.execute(_SESSION, ("s-fed", None, fed))
    for user_id, federated_id in ((None, None), (alice, fed)):
        with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
            cur.execute(_SESSION, ("s-bad", user_id, federated_id))
    with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
        cur.execute(_SESSION, ("s-ghost", None, "no-such-subject"))


def test_an_authorization_code_has_exactly_one_subject_and_a_device_code_at_most_one(
    store: SqlStore,
) -> None:
    alice = store.create_user(ACCOUNT, "alice").user_id
    fed = _subject(store)
    code = (
        "INSERT INTO signin_authorization_codes (code_hash, client_id, redirect_uri,"
        " code_challenge, scope, user_id, federated_id, mfa, created_at, expires_at)"
        " VALUES (?, 'c', 'http://127.0.0.1/cb', 'x', '', ?, ?, 0, 0, 1)"
    )
    device = (
        "INSERT INTO signin_device_codes (device_hash, user_code, client_id, scope, created_at,"
        " expires_at, interval_seconds, status, user_id, federated_id)"
        " VALUES (?, ?, 'c', '', 0, 1, 5, 'pending', ?, ?)"
    )
    with store._db.transaction(write=True) as cur:
        cur.execute(code, ("c-fed", None, fed))
        cur.execute(device, ("d-none", "AAAAAAAA", None, None))
        cur.execute(device, ("d-fed", "BBBBBBBB", None, fed))
    for user_id, federated_id in ((None, None), (alice, fed)):
        with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
            cur.execute(code, ("c-bad", user_id, federated_id))
    with pytest.raises(INTEGRITY), store._db.transaction(write=True) as cur:
        cur.execute(device, ("d-both", "CCCCCCCC", alice, fed))
