"""Access entries at review time: the rule order with the mapping file, on both backends.

Covers: the table of authenticationMode x (entry, file rule) (pure
``resolve_access``); through ``review_token`` on a real store: an entry wins
over the file, a role session matches its role's entry (default username:
the session ARN), API mode refuses a principal the file maps, CONFIG_MAP
ignores entries, a re-created namesake does not inherit the entry, a change
takes effect in the same store object without a restart (the access version
read with the facts).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authbridge.iam.access import AccessEntry, AuthenticationMode
from authbridge.iam.model import NewAccessKey, User
from authbridge.keys import KeySet, generate_signing_key
from authbridge.mapping.model import Identity
from authbridge.mapping.parse import parse_mapping
from authbridge.mapping.resolve import resolve_access
from authbridge.review import Review, review_token
from authbridge.store import SqlStore
from authbridge.sts import assume_role
from tests.conftest import ACCOUNT
from tests.test_review_facts import NOW, POLICY, user_token

USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/Deploy"
MAPPING = parse_mapping(
    f"""
mapUsers:
  - userarn: {USER_ARN}
    username: file-alice
    groups: [file-group]
""",
    "mapping.yaml",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# -- the rule order (pure) ----------------------------------------------------------------

_ALICE = Identity(
    arn=USER_ARN, canonical_arn=USER_ARN, account_id=ACCOUNT, principal_id="AIDAALICE"
)
_BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"
_BOB = Identity(arn=_BOB_ARN, canonical_arn=_BOB_ARN, account_id=ACCOUNT, principal_id="AIDABOB")


def _entry(arn: str, pid: str) -> AccessEntry:
    return AccessEntry("prod", pid, arn, "entry-{{AccountID}}", ("e",), "STANDARD", T0, T0)


@pytest.mark.parametrize(
    ("mode", "identity", "has_entry", "expected"),
    [
        # alice: named by the file; bob: not.  expected: username, or None (refused)
        ("CONFIG_MAP", _ALICE, True, "file-alice"),
        ("CONFIG_MAP", _ALICE, False, "file-alice"),
        ("CONFIG_MAP", _BOB, True, None),
        ("CONFIG_MAP", _BOB, False, None),
        ("API_AND_CONFIG_MAP", _ALICE, True, f"entry-{ACCOUNT}"),  # the entry wins
        ("API_AND_CONFIG_MAP", _ALICE, False, "file-alice"),
        ("API_AND_CONFIG_MAP", _BOB, True, f"entry-{ACCOUNT}"),
        ("API_AND_CONFIG_MAP", _BOB, False, None),
        ("API", _ALICE, True, f"entry-{ACCOUNT}"),
        ("API", _ALICE, False, None),  # the file is not used
        ("API", _BOB, True, f"entry-{ACCOUNT}"),
        ("API", _BOB, False, None),
    ],
)
def test_rule_order_by_authentication_mode(
    mode: AuthenticationMode, identity: Identity, has_entry: bool, expected: str | None
) -> None:
    entry = _entry(identity.arn, identity.principal_id) if has_entry else None
    got = resolve_access(MAPPING, identity, (), mode=mode, entry=entry)
    assert (got.user.username if got.user else None) == expected, got
    if got.user is not None:
        from_entry = expected != "file-alice"
        assert [r.section for r in got.rules] == ["accessEntry" if from_entry else "mapUsers"]
        # Nothing is merged: the groups are the deciding rule's alone.
        assert got.user.groups == (("e",) if from_entry else ("file-group",))
    elif mode == "API":
        assert got.reason is not None and "authenticationMode is API" in got.reason


# -- through review_token, on a real store ------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet((generate_signing_key("RS256", now=int(NOW) - 3600),), max_token_lifetime=43200)


@pytest.fixture
def alice(store: SqlStore) -> tuple[User, NewAccessKey]:
    user = store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Deploy", trust=[user.arn])
    return user, store.create_access_key(ACCOUNT, "alice")


def _review(store: SqlStore, keys: KeySet, token: str) -> Review:
    return review_token(
        token, store=store, keys=keys, policy=POLICY, mapping=MAPPING, clusters=["prod"], now=NOW
    )


def _username(review: Review) -> str | None:
    return review.user.username if review.user is not None else None


def test_entry_wins_over_the_file_and_changes_apply_at_once(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    token = user_token(store, keys, alice[1])
    assert _username(_review(store, keys, token)) == "file-alice"
    store.create_access_entry("prod", USER_ARN, username="entry:{{AccessKeyID}}", groups=["g"])
    got = _review(store, keys, token)  # the same store object: no restart
    assert _username(got) == f"entry:{alice[1].key.access_key_id}"
    assert got.user is not None and got.user.groups == ("g",)
    assert [(r.section, r.arn) for r in got.rules] == [("accessEntry", USER_ARN)]
    store.set_authentication_mode("prod", "CONFIG_MAP")
    assert _username(_review(store, keys, token)) == "file-alice"
    store.set_authentication_mode("prod", "API")
    assert _username(_review(store, keys, token)) == f"entry:{alice[1].key.access_key_id}"
    store.delete_access_entry("prod", USER_ARN)
    refused = _review(store, keys, token)
    assert refused.reason == "not_mapped" and refused.detail is not None
    assert "no access entry matched" in refused.detail
    assert refused.hint is not None and "access create-entry" in refused.hint


def test_entries_are_those_of_the_token_cluster(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    store.create_access_entry("staging", USER_ARN, username="staging-alice")
    store.set_authentication_mode("staging", "API")
    token = user_token(store, keys, alice[1])
    assert _username(_review(store, keys, token)) == "file-alice"


def test_role_session_matches_its_role_entry(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    store.create_access_entry("prod", ROLE_ARN, groups=["deployers"])
    session = assume_role(
        store,
        keys,
        POLICY,
        subject_token=user_token(store, keys, alice[1], POLICY.sts_audience),
        role_arn=ROLE_ARN,
        session_name="ci@build",
        audience="prod",
        duration=None,
        now=NOW,
    ).token
    got = _review(store, keys, session)
    assert _username(got) == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/ci-build"
    assert got.user is not None and got.user.groups == ("deployers",)


def test_recreated_namesake_does_not_inherit_the_entry_at_review(
    store: SqlStore, keys: KeySet, alice: tuple[User, NewAccessKey]
) -> None:
    store.create_access_entry("prod", USER_ARN, username="entry-alice")
    store.set_authentication_mode("prod", "API")
    store.delete_user(ACCOUNT, "alice", force=True)
    store.create_user(ACCOUNT, "alice")
    new_key = store.create_access_key(ACCOUNT, "alice")
    got = _review(store, keys, user_token(store, keys, new_key))
    assert got.authenticated is False and got.reason == "not_mapped", got
