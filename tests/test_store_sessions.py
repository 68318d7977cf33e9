"""Sign-in sessions in the store (migration 6), on SQLite and PostgreSQL.

Covers: the schema is at least version 6 with the four tables; review_facts
says session_ended for an ended session, a session of another user, an
unknown one, and not for a live one or a token without sid, in the one
statement it always was; two concurrent redemptions of one authorization
code, one device code and one refresh token (threads, each its own
connection): exactly one wins, and for the refresh token the loser's reuse
ends the family; expired codes and long-over sessions are purged by the
next insert; ending sessions is idempotent; a deleted user's rows go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from authbridge.iam import sessions
from authbridge.iam.sessions import AuthorizationCodeRecord, GrantResult, SessionLifetimes
from authbridge.store import SqlStore
from authbridge.store.migrations import LATEST_VERSION
from tests.conftest import ACCOUNT, CallRecorder

NOW = 1_800_000_000.0
LIFE = SessionLifetimes()


@pytest.fixture
def alice(store: SqlStore) -> str:
    return store.create_user(ACCOUNT, "alice").user_id


def _code(store: SqlStore, user_id: str, code_hash: str = "c1", now: float = NOW) -> None:
    store.create_authorization_code(
        code_hash,
        AuthorizationCodeRecord(
            "authbridge-cli",
            "http://127.0.0.1:1/callback",
            "x" * 43,
            "",
            user_id,
            False,
            int(now) + 60,
        ),
        now,
    )


def _redeem(store: SqlStore, code_hash: str, sid: str, now: float = NOW) -> GrantResult:
    return store.redeem_authorization_code(
        code_hash,
        accept=lambda r: True,
        now=now,
        session_id=sid,
        refresh_hash="r-" + sid,
        lifetimes=LIFE,
    )


def test_schema_has_the_session_tables(store: SqlStore) -> None:
    assert LATEST_VERSION >= 6 and store.schema_version() == LATEST_VERSION
    with store._tx() as cur:
        for table in (
            "signin_sessions",
            "signin_refresh_tokens",
            "signin_authorization_codes",
            "signin_device_codes",
        ):
            assert cur.execute(f"SELECT COUNT(*) FROM {table}")[0][0] == 0  # noqa: S608


def test_review_facts_reads_the_session_in_the_same_statement(store: SqlStore, alice: str) -> None:
    bob = store.create_user(ACCOUNT, "bob").user_id
    assert _redeem(store, "none", "s0").outcome == "invalid"
    _code(store, alice)
    assert _redeem(store, "c1", "s1").outcome == "issued"
    live = store.review_facts("j", alice, session_id="s1")
    assert not live.session_ended and not live.revoked
    assert not store.review_facts("j", alice).session_ended  # no sid: nothing to say
    assert store.review_facts("j", alice, session_id="nope").session_ended
    assert store.review_facts("j", bob, session_id="s1").session_ended  # not bob's session
    assert store.end_signin_session("s1", "logout", NOW + 1)
    assert not store.end_signin_session("s1", "logout", NOW + 2)
    assert store.review_facts("j", alice, session_id="s1").session_ended
    # Still one statement (one driver query) for all of it.
    recorder = CallRecorder(store._db)
    store._db = recorder  # type: ignore[assignment]
    try:
        store.review_facts("j", alice, session_id="s1")
    finally:
        store._db = recorder.inner
    assert recorder.calls == ["query"]


def _race(n: int, work: Callable[[int], GrantResult]) -> list[str]:
    results: list[str] = [""] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i).outcome

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def test_concurrent_code_redemptions_give_one_session(store: SqlStore, alice: str) -> None:
    _code(store, alice)
    outcomes = _race(4, lambda i: _redeem(store, "c1", f"s{i}"))
    assert outcomes.count("issued") == 1 and outcomes.count("reused") == 3
    # The losers presented a used code: the winner's session is ended.
    with store._tx() as cur:
        assert cur.execute("SELECT COUNT(*) FROM signin_sessions WHERE ended_at IS NULL")[0][0] == 0


def test_concurrent_device_polls_redeem_once(store: SqlStore, alice: str) -> None:
    assert store.create_device_authorization(
        device_hash="d1",
        user_code="BCDFGHJK",
        client_id="authbridge-cli",
        scope="",
        now=NOW,
        expires_in=600,
        interval=5,
    )
    assert not store.create_device_authorization(
        device_hash="d2",
        user_code="BCDFGHJK",
        client_id="authbridge-cli",
        scope="",
        now=NOW,
        expires_in=600,
        interval=5,
    )
    assert store.decide_device("BCDFGHJK", approve=True, user_id=alice, mfa=True, now=NOW) == "ok"
    assert store.decide_device("BCDFGHJK", approve=False, user_id=None, mfa=False, now=NOW) == (
        "decided"
    )
    outcomes = _race(
        4,
        lambda i: store.poll_device(
            "d1",
            client_id="authbridge-cli",
            now=NOW + 1,
            session_id=f"s{i}",
            refresh_hash=f"r{i}",
            lifetimes=LIFE,
        ),
    )
    assert outcomes.count("issued") == 1 and outcomes.count("invalid") == 3
    other_client = store.poll_device(
        "d1", client_id="x", now=NOW + 2, session_id="z", refresh_hash="z", lifetimes=LIFE
    )
    assert other_client.outcome == "invalid"


def test_concurrent_refreshes_rotate_once_and_reuse_ends_the_family(
    store: SqlStore, alice: str
) -> None:
    _code(store, alice)
    assert _redeem(store, "c1", "s1").outcome == "issued"
    outcomes = _race(
        3,
        lambda i: store.rotate_refresh_token(
            "r-s1", client_id="authbridge-cli", new_hash=f"n{i}", now=NOW + 10
        ),
    )
    assert outcomes == ["issued", "reused", "reused"]
    assert store.get_signin_session("s1") is None  # ended


def test_expired_codes_and_old_sessions_are_purged(store: SqlStore, alice: str) -> None:
    _code(store, alice, "old", now=NOW)
    _redeem(store, "old", "s-old")
    store.create_device_authorization(
        device_hash="d-old",
        user_code="BBBBBBBB",
        client_id="authbridge-cli",
        scope="",
        now=NOW,
        expires_in=600,
        interval=5,
    )
    later = NOW + LIFE.max_seconds + sessions.FORGET_EXPIRED_SECONDS + 1
    _code(store, alice, "new", now=later)
    with store._tx() as cur:
        assert cur.execute("SELECT code_hash FROM signin_authorization_codes") == [("new",)]
        assert cur.execute("SELECT COUNT(*) FROM signin_device_codes")[0][0] == 0
        assert cur.execute("SELECT COUNT(*) FROM signin_sessions")[0][0] == 0
        assert cur.execute("SELECT COUNT(*) FROM signin_refresh_tokens")[0][0] == 0


def test_deleting_a_user_deletes_its_session_rows(store: SqlStore, alice: str) -> None:
    _code(store, alice)
    _redeem(store, "c1", "s1")
    _code(store, alice, "c2")
    store.delete_user(ACCOUNT, "alice")
    with store._tx() as cur:
        for table in ("signin_sessions", "signin_refresh_tokens", "signin_authorization_codes"):
            assert cur.execute(f"SELECT COUNT(*) FROM {table}")[0][0] == 0  # noqa: S608
    assert store.review_facts("j", alice, session_id="s1").session_ended


def test_end_user_signin_sessions_counts_open_ones(store: SqlStore, alice: str) -> None:
    _code(store, alice)
    _redeem(store, "c1", "s1")
    store.create_browser_session(
        session_id="b1",
        secret_hash="h",
        user_id=alice,
        client_id="authbridge-cli",
        mfa=False,
        address=None,
        now=NOW,
        lifetimes=LIFE,
    )
    assert store.end_user_signin_sessions(ACCOUNT, "alice", "revoked", NOW + 1) == 2
    assert store.end_user_signin_sessions(ACCOUNT, "alice", "revoked", NOW + 2) == 0
