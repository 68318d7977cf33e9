"""review_token asks the store once per review (``Store.review_facts``), with the same verdicts.

Covers, on SQLite and PostgreSQL: a user mapped through its IAM groups
(``mapGroups``), a role session and an unmapped user each cost one store call,
and the Review is the one map_identity gives when it reads the user and its
groups itself; the refusals (revoked, disabled user, inactive and deleted
access key, deleted user, deleted role) keep their reason labels and details;
map_identity with facts uses their groups and never the store, and refuses a
user ARN whose principal id is no user as before.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from authbridge.iam.model import NewAccessKey, User
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


def user_token(store: SqlStore, keys: KeySet, key: NewAccessKey) -> str:
    return get_session_token(
        store,
        keys,
        POLICY,
        access_key_id=key.key.access_key_id,
        secret=key.secret_access_key,
        audience="prod",
        duration=None,
        now=NOW,
    ).token


def role_token(store: SqlStore, keys: KeySet, key: NewAccessKey) -> str:
    return assume_role(
        store,
        keys,
        POLICY,
        subject_token=user_token(store, keys, key),
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
    return replace(mapped, expires_at=got.expires_at, token=got.token)


def test_a_user_mapped_by_its_groups_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = user_token(store, keys, alice[1])
    counting = CountingStore(store)
    got = review(counting, keys, token)
    assert counting.calls == ["review_facts"]
    assert got.authenticated and got.reason == "ok"
    assert got.user is not None
    assert (got.user.username, got.user.groups) == (f"dev:{ACCOUNT}", ("authbridge:devs", "pager"))
    assert [(r.section, r.index) for r in got.rules] == [("mapGroups", 0), ("mapGroups", 1)]
    assert got == as_map_identity_reads_it(store, got)


def test_a_role_session_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = role_token(store, keys, alice[1])
    counting = CountingStore(store)
    got = review(counting, keys, token)
    assert counting.calls == ["review_facts"]
    assert got.user is not None and got.user.username == "admin:alice"
    assert got == as_map_identity_reads_it(store, got)


def test_an_unmapped_user_is_one_store_read(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    for group in ("devs", "oncall"):
        store.remove_user_from_group(ACCOUNT, group, "alice")
    token = user_token(store, keys, alice[1])
    counting = CountingStore(store)
    got = review(counting, keys, token)
    assert counting.calls == ["review_facts"]
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
    counting = CountingStore(store)

    def mapped(facts: ReviewFacts) -> Review:
        return map_identity(
            identity, ("prod",), store=counting, policy=POLICY, mapping=MAPPING, facts=facts
        )

    only_oncall = mapped(
        ReviewFacts(False, None, "Alice", (f"arn:aws:iam::{ACCOUNT}:group/oncall",))
    )
    assert only_oncall.user is not None and only_oncall.user.groups == ("pager",)
    # A user ARN whose principal id is no user: refused as when the user was deleted.
    gone = mapped(ReviewFacts(False, None, None, ()))
    assert (gone.reason, gone.detail) == ("disabled", f"{user.arn} no longer exists")
    assert counting.calls == []
