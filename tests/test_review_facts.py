"""review_token asks the store once per review (``Store.review_facts``), with the same verdicts.

Covers, on SQLite and PostgreSQL: a user mapped through its IAM groups
(``mapGroups``), a role session and an unmapped user each cost one store call,
and the Review is the one map_identity gives when it reads the user and its
groups itself; the refusals (revoked, disabled user, inactive and deleted
access key, deleted user, deleted role) keep their reason labels and details;
a role session's source (the sts token revoked, the source user disabled or
deleted, the source key inactive or deleted) is refused in the same read, with
its own detail; review_facts reads the source's facts (revocation, user
status, a key of that user only; an unknown source kind; a break-glass
session's own role);
map_identity with facts uses their groups and never the store, and refuses a
user ARN whose principal id is no user as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.iam.model import NewAccessKey, User
from authbridge.iam.oidc_provider import source_provider_keys
from authbridge.keys import KeySet, generate_signing_key
from authbridge.mapping.model import Identity
from authbridge.mapping.parse import parse_mapping
from authbridge.review import Review, map_identity, review_token
from authbridge.store import SqlStore
from authbridge.store.base import ReviewFacts
from authbridge.sts import IssuerPolicy, assume_role, get_session_token
from tests.conftest import ACCOUNT, CallRecorder

NOW = 1_800_000_000.0
POLICY = IssuerPolicy(
    issuer="https://authbridge.test/",
    cluster_ids=frozenset({"prod", "staging"}),
    default_lifetime=900,
    max_user_lifetime=3600,
    partition="aws",
)
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
MAPPING = parse_mapping(
    f"""
mapRoles:
  - rolearn: {ADMIN_ARN}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapGroups:
  - grouparn: arn:aws:iam::{ACCOUNT}:group/eng/Devs
    username: "dev:{{{{AccountID}}}}"
    groups: ["authbridge:devs"]
  - grouparn: arn:aws:iam::{ACCOUNT}:group/oncall
    groups: ["pager"]
""",
    "mapping.yaml",
)


@contextmanager
def driver_calls(store: SqlStore) -> Iterator[list[str]]:
    """The driver methods ``store`` calls inside the block: ``["query"]`` is one round trip.

    Access entries come from the store object's snapshot, re-read only when the
    access version review_facts reads with the facts changes (warm it first).
    """
    real = store._db
    driver = CallRecorder(real)
    store._db = driver
    try:
        yield driver.calls
    finally:
        store._db = real


class CountingStore(CallRecorder):
    """The real store, recording the name of every method called on it."""

    def __init__(self, inner: SqlStore) -> None:
        super().__init__(inner)
        self.partition = inner.partition


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet((generate_signing_key("RS256", now=int(NOW) - 3600),), max_token_lifetime=43200)


@pytest.fixture
def alice(store: SqlStore) -> tuple[User, NewAccessKey]:
    user = store.create_user(ACCOUNT, "Alice", path="/team/")
    store.create_group(ACCOUNT, "Devs", path="/eng/")
    store.create_group(ACCOUNT, "oncall")
    store.create_group(ACCOUNT, "unmapped")
    for group in ("devs", "ONCALL", "unmapped"):
        store.add_user_to_group(ACCOUNT, group, "alice")
    store.create_role(ACCOUNT, "Admin", trust=[user.arn], path="/platform/")
    return user, store.create_access_key(ACCOUNT, "alice")


def user_token(store: SqlStore, keys: KeySet, key: NewAccessKey, audience: str = "prod") -> str:
    return get_session_token(
        store,
        keys,
        POLICY,
        access_key_id=key.key.access_key_id,
        secret=key.secret_access_key,
        audience=audience,
        duration=None,
        now=NOW,
    ).token


def role_token(store: SqlStore, keys: KeySet, key: NewAccessKey, subject: str | None = None) -> str:
    return assume_role(
        store,
        keys,
        POLICY,
        subject_token=subject or user_token(store, keys, key, POLICY.sts_audience),
        role_arn=ADMIN_ARN,
        session_name="alice",
        audience="prod",
        duration=None,
        now=NOW,
    ).token


def review(store: Any, keys: KeySet, token: str) -> Review:
    return review_token(
        token, store=store, keys=keys, policy=POLICY, mapping=MAPPING, clusters=["prod"], now=NOW
    )


def as_map_identity_reads_it(store: SqlStore, got: Review) -> Review:
    """``got`` as map_identity makes it reading the user and its groups itself."""
    assert got.identity is not None
    mapped = map_identity(got.identity, got.clusters, store=store, policy=POLICY, mapping=MAPPING)
    return replace(
        mapped,
        expires_at=got.expires_at,
        token=got.token,
        source_identity=got.source_identity,
        source_access_key_id=got.source_access_key_id,
        source_jti=got.source_jti,
    )


def test_a_user_mapped_by_its_groups_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = user_token(store, keys, alice[1])
    store.access_snapshot()
    with driver_calls(store) as calls:
        got = review(store, keys, token)
    assert calls == ["query"]
    assert got.authenticated and got.reason == "ok"
    assert got.user is not None
    assert (got.user.username, got.user.groups) == (f"dev:{ACCOUNT}", ("authbridge:devs", "pager"))
    assert [(r.section, r.index) for r in got.rules] == [("mapGroups", 0), ("mapGroups", 1)]
    assert got == as_map_identity_reads_it(store, got)


def test_a_role_session_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = role_token(store, keys, alice[1])
    store.access_snapshot()
    with driver_calls(store) as calls:
        got = review(store, keys, token)
    assert calls == ["query"]  # the source's status in the same read
    assert got.user is not None and got.user.username == "admin:alice"
    assert got.source_identity == alice[0].user_id
    assert got.source_access_key_id == alice[1].key.access_key_id
    assert got.source_jti is not None
    assert got == as_map_identity_reads_it(store, got)


def test_an_unmapped_user_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    for group in ("devs", "oncall"):
        store.remove_user_from_group(ACCOUNT, group, "alice")
    token = user_token(store, keys, alice[1])
    store.access_snapshot()
    with driver_calls(store) as calls:
        got = review(store, keys, token)
    assert calls == ["query"]
    assert (got.authenticated, got.reason) == (False, "not_mapped")
    assert got.detail is not None and got.detail.startswith(
        f"no mapping rule matched {alice[0].arn}"
    )
    assert got == as_map_identity_reads_it(store, got)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _revoke(store: SqlStore, token: str, user: User, key: NewAccessKey) -> None:
    claims = claims_of(token)
    store.revoke_token(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))


Change = Callable[[SqlStore, str, User, NewAccessKey], None]
REFUSALS: list[tuple[str, Change, str, Callable[[str, User, NewAccessKey], str]]] = [
    ("revoked", _revoke, "revoked", lambda t, u, k: f"token revoked (jti {claims_of(t)['jti']})"),
    (
        "user-disabled",
        lambda s, t, u, k: s.set_user_enabled(ACCOUNT, "alice", False),
        "disabled",
        lambda t, u, k: "user Alice is disabled",
    ),
    (
        "key-inactive",
        lambda s, t, u, k: s.update_access_key(k.key.access_key_id, "Inactive"),
        "disabled",
        lambda t, u, k: f"access key {k.key.access_key_id} is inactive",
    ),
    (
        "key-deleted",
        lambda s, t, u, k: s.delete_access_key(k.key.access_key_id),
        "disabled",
        lambda t, u, k: f"access key {k.key.access_key_id} no longer exists",
    ),
    (
        "user-deleted",
        lambda s, t, u, k: s.delete_user(ACCOUNT, "alice", force=True),
        "disabled",
        lambda t, u, k: f"{u.arn} no longer exists",
    ),
]


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [pytest.param(c, r, d, id=name) for name, c, r, d in REFUSALS],
)
def test_user_refusals_keep_their_reasons_and_details(
    store: SqlStore,
    keys: KeySet,
    alice: tuple[User, NewAccessKey],
    change: Change,
    reason: str,
    detail: Callable[[str, User, NewAccessKey], str],
) -> None:
    user, key = alice
    token = user_token(store, keys, key)
    change(store, token, user, key)
    got = review(store, keys, token)
    assert (got.authenticated, got.reason, got.detail) == (False, reason, detail(token, user, key))
    assert got.identity is None and got.token is not None and not got.token.verified


def test_a_deleted_role_refuses_its_sessions(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = role_token(store, keys, alice[1])
    store.delete_role(ACCOUNT, "Admin")
    got = review(store, keys, token)
    assert (got.reason, got.detail) == ("disabled", f"{ADMIN_ARN} no longer exists")


def test_map_identity_takes_the_groups_from_the_facts(
    store: SqlStore, alice: tuple[User, NewAccessKey]
) -> None:
    user, key = alice
    identity = Identity(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=ACCOUNT,
        principal_id=user.user_id,
        access_key_id=key.key.access_key_id,
    )
    version = store.access_snapshot().version

    def mapped(facts: ReviewFacts) -> Review:
        facts = replace(facts, access_version=version)  # as review_facts reads it
        return map_identity(
            identity, ("prod",), store=store, policy=POLICY, mapping=MAPPING, facts=facts
        )

    with driver_calls(store) as calls:
        only_oncall = mapped(
            ReviewFacts(False, None, "Alice", (f"arn:aws:iam::{ACCOUNT}:group/oncall",))
        )
        assert only_oncall.user is not None and only_oncall.user.groups == ("pager",)
        # A user ARN whose principal id is no user: refused as when the user was deleted.
        gone = mapped(ReviewFacts(False, None, None, ()))
        assert (gone.reason, gone.detail) == ("disabled", f"{user.arn} no longer exists")
    assert calls == []


def _revoke_source(store: SqlStore, token: str, user: User, key: NewAccessKey) -> None:
    store.revoke_token(claims_of(token)["source_jti"], datetime.fromtimestamp(NOW + 900, UTC))


SOURCE_REFUSALS: list[tuple[str, Change, str, Callable[[str, User, NewAccessKey], str]]] = [
    (
        "source-token-revoked",
        _revoke_source,
        "revoked",
        lambda t, u, k: (
            "the token this session was minted from has been revoked"
            f" (jti {claims_of(t)['source_jti']})"
        ),
    ),
    (
        "source-user-disabled",
        lambda s, t, u, k: s.set_user_enabled(ACCOUNT, "alice", False),
        "disabled",
        lambda t, u, k: "user Alice, which this session started from, is disabled",
    ),
    (
        "source-user-deleted",
        lambda s, t, u, k: s.delete_user(ACCOUNT, "alice", force=True),
        "disabled",
        lambda t, u, k: f"{u.user_id}, which this session started from, no longer exists",
    ),
    (
        "source-key-inactive",
        lambda s, t, u, k: s.update_access_key(k.key.access_key_id, "Inactive"),
        "disabled",
        lambda t, u, k: f"access key {k.key.access_key_id} is inactive",
    ),
    (
        "source-key-deleted",
        lambda s, t, u, k: s.delete_access_key(k.key.access_key_id),
        "disabled",
        lambda t, u, k: f"access key {k.key.access_key_id} no longer exists",
    ),
]


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [pytest.param(c, r, d, id=name) for name, c, r, d in SOURCE_REFUSALS],
)
def test_role_session_source_refusals(
    store: SqlStore,
    keys: KeySet,
    alice: tuple[User, NewAccessKey],
    change: Change,
    reason: str,
    detail: Callable[[str, User, NewAccessKey], str],
) -> None:
    user, key = alice
    token = role_token(store, keys, key)
    assert review(store, keys, token).authenticated
    change(store, token, user, key)
    counting = CountingStore(store)
    got = review(counting, keys, token)
    assert counting.calls[0] == "review_facts"  # the verdict: the rest only words it
    assert (got.authenticated, got.reason, got.detail) == (False, reason, detail(token, user, key))


def test_review_facts_reads_the_source(store: SqlStore, alice: tuple[User, NewAccessKey]) -> None:
    user, key = alice
    role = store.get_role(ACCOUNT, "Admin")
    key_id = key.key.access_key_id
    session = f"{role.role_id}:s"

    def facts(**kw: Any) -> ReviewFacts:
        return store.review_facts("jti-1", session, key_id, source_identity=user.user_id, **kw)

    assert facts() == ReviewFacts(False, None, None, (), False, "Alice")
    store.revoke_token("jti-0", datetime.fromtimestamp(NOW + 900, UTC))
    assert facts(source_jti="jti-0").source_revoked
    assert not facts(source_jti="jti-2").source_revoked
    store.set_user_enabled(ACCOUNT, "alice", False)
    assert facts().refusal == "source_user_disabled"
    store.set_user_enabled(ACCOUNT, "alice", True)
    # The key must be the source user's: another user's key is no key of this session.
    bob = store.create_user(ACCOUNT, "bob")
    bob_key = store.create_access_key(ACCOUNT, "bob").key.access_key_id
    assert (
        store.review_facts("j", session, bob_key, source_identity=user.user_id).refusal
        == "access_key_deleted"
    )
    assert store.review_facts("j", session, None, source_identity=bob.user_id).refusal is None
    # Not a user id, and not the role itself: no source authbridge knows.
    for unknown in ("AIDANOSUCHUSER000000", "arn:aws:iam::111122223333:oidc-provider/x:sub"):
        assert (
            store.review_facts("j", session, None, source_identity=unknown).refusal
            == "source_deleted"
        )
    # A break-glass session names its own role: checked as the role.
    assert store.review_facts("j", session, None, source_identity=role.role_id).refusal is None
    store.delete_role(ACCOUNT, "Admin")
    assert (
        store.review_facts("j", session, None, source_identity=role.role_id).refusal
        == "principal_deleted"
    )


def test_review_facts_of_a_web_identity_session_check_its_provider(
    store: SqlStore, alice: tuple[User, NewAccessKey]
) -> None:
    """A web identity session's source is ``<provider ARN>:<sub>``: no IAM user is looked
    for, the provider must still be registered (authbridge.web_identity)."""
    role = store.get_role(ACCOUNT, "Admin")
    session = f"{role.role_id}:ci"
    provider = store.create_open_id_connect_provider(
        ACCOUNT, "https://kube.example:8443/tenant", ["authbridge"]
    )
    source = f"{provider.arn}:system:serviceaccount:ci:deployer"
    got = store.review_facts("j", session, None, source_identity=source)
    assert (got.refusal, got.source_user_name) == (None, None)
    # Another account's provider of the same URL is not this session's source.
    other = source.replace(ACCOUNT, "444455556666", 1)
    assert store.review_facts("j", session, None, source_identity=other).refusal == (
        "source_deleted"
    )
    store.delete_open_id_connect_provider(ACCOUNT, provider.arn)
    assert store.review_facts("j", session, None, source_identity=source).refusal == (
        "source_deleted"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "arn:aws:iam::111122223333:oidc-provider/kube.example:system:serviceaccount:a:b",
            ("111122223333", ("kube.example",)),
        ),
        (
            "arn:aws:iam::111122223333:oidc-provider/kube.example/t/x:repo:o/r:ref:main",
            ("111122223333", ("kube.example/t/x",)),
        ),
        (
            "arn:aws:iam::111122223333:oidc-provider/127.0.0.1:8443:system:serviceaccount:a:b",
            ("111122223333", ("127.0.0.1:8443", "127.0.0.1")),
        ),
        (
            "arn:aws:iam::111122223333:oidc-provider/h.example:8443/p:sub",
            ("111122223333", ("h.example:8443/p", "h.example")),
        ),
        ("arn:aws:iam::111122223333:oidc-provider/nosub", None),
        ("AIDAEXAMPLEUSER00000", None),
        ("arn:aws:iam::111122223333:role/x:sub", None),
    ],
)
def test_web_identity_sources_name_their_provider(
    source: str, expected: tuple[str, tuple[str, ...]] | None
) -> None:
    assert source_provider_keys(source) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_source_identity_parses_or_is_none(text: str) -> None:
    got = source_provider_keys(text)
    assert got is None or (len(got[0]) == 12 and all(got[1]))
