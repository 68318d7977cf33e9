"""Sign-in sessions of federated subjects (sign-in through an upstream IdP), on each backend.

A browser session made for a federated subject records the subject in the same
transaction; device codes and authorization codes approved by it give CLI
sessions of it; refresh tokens rotate as a user's do (and two presentations at
once give one rotation, on PostgreSQL too: the row lock skips the outer join's
nullable side); ``end_role_signin_sessions`` ends the sessions working as a
role; the review reads the session as the token's (its source is
``<provider ARN>:<sub>``); claims over 16 KiB are refused before anything is
written, and a subject nothing names any more is forgotten with old codes.
"""

from __future__ import annotations

import pytest

from authbridge.errors import InputError, NoSuchEntity
from authbridge.iam import sessions
from authbridge.iam.sessions import (
    AuthorizationCodeRecord,
    FederatedSubject,
    GrantResult,
    SessionLifetimes,
)
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT
from tests.test_store_sessions import _race

NOW = 1_800_000_000.0
LIFE = SessionLifetimes()
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com"


@pytest.fixture
def subject(store: SqlStore) -> FederatedSubject:
    role = store.create_role(ACCOUNT, "Platform", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    return FederatedSubject(
        subject_id="fed-1",
        account_id=ACCOUNT,
        provider_arn=PROVIDER,
        sub="00u-alice",
        role_arn=role.arn,
        role_id=role.role_id,
        session_name="alice",
        claims={"sub": "00u-alice", "groups": ["platform"]},
    )


def _browser(store: SqlStore, subject: FederatedSubject, sid: str = "b1") -> None:
    store.create_browser_session(
        session_id=sid,
        secret_hash=f"cookie-{sid}",
        user_id=None,
        client_id=sessions.CLI_CLIENT_ID,
        mfa=False,
        address="127.0.0.1",
        now=NOW,
        lifetimes=LIFE,
        federated=subject,
    )


def test_a_browser_session_of_a_federated_subject_names_the_role_session(
    store: SqlStore, subject: FederatedSubject
) -> None:
    _browser(store, subject)
    found = store.browser_session("cookie-b1", NOW + 1)
    assert found is not None and found.federated == subject
    assert found.user_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/Platform/alice"
    assert found.user_id == f"{subject.role_id}:alice" and found.user_name == "alice"
    assert found.mfa is False
    assert store.get_federated_subject("fed-1") == subject
    record = store.get_signin_session("b1")
    assert record is not None and record.user_id is None and record.federated_id == "fed-1"


def test_claims_over_16_kib_are_refused_and_nothing_is_written(
    store: SqlStore, subject: FederatedSubject
) -> None:
    big = FederatedSubject(**{**subject.__dict__, "claims": {"x": "y" * 20000}})
    with pytest.raises(InputError, match="claims"):
        _browser(store, big)
    assert store.get_federated_subject("fed-1") is None
    assert store.get_signin_session("b1") is None


def test_a_device_approved_by_a_federated_subject_gives_its_cli_session(
    store: SqlStore, subject: FederatedSubject
) -> None:
    _browser(store, subject)
    assert store.create_device_authorization(
        device_hash="d1",
        user_code="BCDFGHJK",
        client_id=sessions.CLI_CLIENT_ID,
        scope="",
        now=NOW,
        expires_in=600,
        interval=5,
    )
    # Both a user and a subject, or an unknown subject: refused.
    assert (
        store.decide_device(
            "BCDFGHJK", approve=True, user_id="AIDAX", mfa=False, now=NOW, federated_id="fed-1"
        )
        == "unknown"
    )
    assert (
        store.decide_device(
            "BCDFGHJK", approve=True, user_id=None, mfa=False, now=NOW, federated_id="fed-9"
        )
        == "unknown"
    )
    assert (
        store.decide_device(
            "BCDFGHJK", approve=True, user_id=None, mfa=False, now=NOW, federated_id="fed-1"
        )
        == "ok"
    )
    result = store.poll_device(
        "d1",
        client_id=sessions.CLI_CLIENT_ID,
        now=NOW + 6,
        session_id="c1",
        refresh_hash="r1",
        lifetimes=LIFE,
    )
    assert result.outcome == "issued" and result.session is not None
    assert result.session.user_id is None and result.session.federated_id == "fed-1"


def test_an_authorization_code_of_a_federated_subject_and_its_refresh_race(
    store: SqlStore, subject: FederatedSubject
) -> None:
    _browser(store, subject)
    store.create_authorization_code(
        "code1",
        AuthorizationCodeRecord(
            client_id=sessions.CLI_CLIENT_ID,
            redirect_uri="http://127.0.0.1:5000/callback",
            code_challenge="c" * 43,
            scope="",
            user_id=None,
            mfa=False,
            expires_at=int(NOW) + 60,
            federated_id="fed-1",
        ),
        NOW,
    )
    redeemed = store.redeem_authorization_code(
        "code1",
        accept=lambda record: record.federated_id == "fed-1" and record.user_id is None,
        now=NOW + 1,
        session_id="c1",
        refresh_hash="r1",
        lifetimes=LIFE,
    )
    assert redeemed.outcome == "issued"
    assert redeemed.session is not None and redeemed.session.federated_id == "fed-1"

    def rotate(i: int) -> GrantResult:
        return store.rotate_refresh_token(
            "r1", client_id=sessions.CLI_CLIENT_ID, new_hash=f"r2-{i}", now=NOW + 2
        )

    assert _race(4, rotate).count("issued") == 1


def test_ending_a_roles_sessions_ends_only_the_federated_sessions_working_as_it(
    store: SqlStore, subject: FederatedSubject
) -> None:
    other_role = store.create_role(ACCOUNT, "Dev", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    other = FederatedSubject(
        **{
            **subject.__dict__,
            "subject_id": "fed-2",
            "role_arn": other_role.arn,
            "role_id": other_role.role_id,
        }
    )
    _browser(store, subject, "b1")
    _browser(store, other, "b2")
    assert store.end_role_signin_sessions(ACCOUNT, "platform", "revoked", NOW + 1) == 1
    assert store.browser_session("cookie-b1", NOW + 2) is None
    assert store.browser_session("cookie-b2", NOW + 2) is not None
    assert store.end_role_signin_sessions(ACCOUNT, "Platform", "revoked", NOW + 3) == 0
    with pytest.raises(NoSuchEntity):
        store.end_role_signin_sessions(ACCOUNT, "Nobody", "revoked", NOW)


def test_the_review_reads_a_federated_session_as_its_source_identitys(
    store: SqlStore, subject: FederatedSubject
) -> None:
    store.create_open_id_connect_provider(ACCOUNT, "https://idp.example.com", ["authbridge"])
    _browser(store, subject)
    principal = f"{subject.role_id}:alice"
    live = store.review_facts(
        "j", principal, source_identity=subject.source_identity, session_id="b1"
    )
    assert not live.session_ended and live.refusal is None
    # The same session id claimed by another identity of the provider: ended.
    other = f"{PROVIDER}:00u-mallory"
    assert store.review_facts("j", principal, source_identity=other, session_id="b1").session_ended
    store.end_signin_session("b1", "logout", NOW + 1)
    ended = store.review_facts(
        "j", principal, source_identity=subject.source_identity, session_id="b1"
    )
    assert ended.session_ended


def test_a_subject_nothing_names_is_forgotten_with_old_sessions(
    store: SqlStore, subject: FederatedSubject
) -> None:
    _browser(store, subject)
    later = NOW + LIFE.max_seconds + sessions.FORGET_EXPIRED_SECONDS + 10
    store.create_device_authorization(  # any insert purges what is long over
        device_hash="d9",
        user_code="ZZZZZZZZ",
        client_id=sessions.CLI_CLIENT_ID,
        scope="",
        now=later,
        expires_in=600,
        interval=5,
    )
    assert store.get_signin_session("b1") is None
    assert store.get_federated_subject("fed-1") is None
