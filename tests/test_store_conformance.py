"""IAM store conformance: the same tests on SQLite and PostgreSQL.

Covers: migrations (fresh, idempotent, too-new schema), accounts, users
(case-insensitive names, paths, tags, enable/disable, delete conflicts and
--force), groups and membership, roles with trust stored by unique id (deleted
and re-created principals), access keys (secret shown once, only a keyed hash
stored, two-key limit, status, last used, constant-time refusal for every bad
case), the principal check used by token verification, revocation with
purge, and review_facts (one read per token review): the same answers as the
four reads it replaces for revoked and unknown jtis, disabled, deleted and
re-created users, inactive, deleted and foreign access keys, live and deleted
roles, users in no, one and several groups (names in any case, paths), the
store's partition, all in one statement; get_role runs the same statements
whether or not the role or its account exists. Every refusal is checked for its
error class and a message that names the thing and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidCredentials,
    InvalidTrust,
    KeyStoreError,
    LimitExceeded,
    NoSuchEntity,
    SchemaTooNew,
)
from authbridge.iam.credentials import Pepper
from authbridge.store import SqlStore, open_store
from authbridge.store.base import ReviewFacts
from authbridge.store.migrations import LATEST_VERSION
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, CallRecorder

# -- migrations --------------------------------------------------------------------


def test_fresh_store_is_migrated_to_latest(empty_dsn: str, pepper: Pepper) -> None:
    s = open_store(empty_dsn, pepper=pepper, migrate=False)
    try:
        assert s.schema_version() == 0
        assert s.migrate() == LATEST_VERSION
        assert s.migrate() == LATEST_VERSION  # idempotent
        assert s.schema_version() == LATEST_VERSION
    finally:
        s.close()


def test_schema_newer_than_code_is_refused(empty_dsn: str, pepper: Pepper) -> None:
    s = open_store(empty_dsn, pepper=pepper)
    with s._db.transaction(write=True) as cur:
        cur.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (LATEST_VERSION + 1, "from the future", 0),
        )
    s.close()
    with pytest.raises(SchemaTooNew, match="upgrade authbridge"):
        open_store(empty_dsn, pepper=pepper)


# -- accounts ------------------------------------------------------------------------


def test_accounts(store: SqlStore) -> None:
    store.create_account(OTHER_ACCOUNT, alias="staging")
    assert [a.account_id for a in store.list_accounts()] == [ACCOUNT, OTHER_ACCOUNT]
    assert store.get_account(OTHER_ACCOUNT).alias == "staging"
    with pytest.raises(EntityAlreadyExists):
        store.create_account(ACCOUNT)
    with pytest.raises(InputError, match="12 digits"):
        store.create_account("1234")
    with pytest.raises(InputError, match="AccountAlias"):
        store.create_account("999999999999", alias="Bad Alias")
    with pytest.raises(NoSuchEntity, match="create-account"):
        store.get_account("999999999999")


def test_user_in_missing_account_is_refused(store: SqlStore) -> None:
    with pytest.raises(NoSuchEntity, match="account 999999999999 does not exist"):
        store.create_user("999999999999", "alice")


# -- users ---------------------------------------------------------------------------


def test_create_and_get_user(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice", path="/team/", tags={"team": "platform"})
    assert u.user_id.startswith("AIDA") and len(u.user_id) == 21
    assert u.arn == f"arn:aws:iam::{ACCOUNT}:user/team/alice"
    assert u.enabled and u.tags == {"team": "platform"}
    assert store.get_user(ACCOUNT, "ALICE") == u  # names are case-insensitive
    assert store.get_user_by_id(u.user_id) == u
    assert u.to_aws()["UserName"] == "alice"


def test_user_names_are_unique_case_insensitively(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(EntityAlreadyExists, match="case-insensitive"):
        store.create_user(ACCOUNT, "Alice")
    # the same name in another account is a different user
    store.create_account(OTHER_ACCOUNT)
    assert store.create_user(OTHER_ACCOUNT, "alice").account_id == OTHER_ACCOUNT


@pytest.mark.parametrize(
    ("name", "path", "field"),
    [
        ("", "/", "UserName"),
        ("a" * 65, "/", "UserName"),
        ("al ice", "/", "UserName"),
        ("alice/x", "/", "UserName"),
        ("ålice", "/", "UserName"),
        ("alice", "team", "Path"),
        ("alice", "/team", "Path"),
        ("alice", "//", "Path"),
        ("alice", "/te am/", "Path"),
        ("alice", "/" + "a" * 511 + "/", "Path"),
    ],
)
def test_invalid_user_names_and_paths(store: SqlStore, name: str, path: str, field: str) -> None:
    with pytest.raises(InputError) as e:
        store.create_user(ACCOUNT, name, path=path)
    assert e.value.field == field
    assert store.list_users(ACCOUNT) == []  # nothing half-written


def test_list_users_by_path_prefix(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "bob", path="/ops/")
    store.create_user(ACCOUNT, "alice", path="/team/")
    store.create_user(ACCOUNT, "carol", path="/team/sub/")
    assert [u.name for u in store.list_users(ACCOUNT)] == ["alice", "bob", "carol"]
    assert [u.name for u in store.list_users(ACCOUNT, "/team/")] == ["alice", "carol"]


def test_disable_and_enable_user(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    assert not store.set_user_enabled(ACCOUNT, "alice", False).enabled
    assert not store.get_user(ACCOUNT, "alice").enabled
    assert store.set_user_enabled(ACCOUNT, "alice", True).enabled


def test_invalid_tags(store: SqlStore) -> None:
    with pytest.raises(InputError, match="reserved prefix"):
        store.create_user(ACCOUNT, "alice", tags={"aws:x": "y"})
    with pytest.raises(InputError, match="at most 50"):
        store.create_user(ACCOUNT, "alice", tags={f"k{i}": "v" for i in range(51)})


def test_delete_user_with_keys_or_groups_needs_force(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    key = store.create_access_key(ACCOUNT, "alice").key
    with pytest.raises(DeleteConflict) as e:
        store.delete_user(ACCOUNT, "alice")
    assert key.access_key_id in str(e.value) and "devs" in str(e.value)
    assert "--force" in str(e.value)
    assert store.get_user(ACCOUNT, "alice")  # untouched
    store.delete_user(ACCOUNT, "alice", force=True)
    with pytest.raises(NoSuchEntity):
        store.get_user(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity):
        store.get_access_key(key.access_key_id)
    assert store.list_group_members(ACCOUNT, "devs") == []


def test_recreated_user_is_a_new_principal(store: SqlStore) -> None:
    old = store.create_user(ACCOUNT, "alice")
    store.delete_user(ACCOUNT, "alice")
    new = store.create_user(ACCOUNT, "alice")
    assert new.arn == old.arn and new.user_id != old.user_id
    assert store.check_principal(old.user_id) == "principal_deleted"
    assert store.check_principal(new.user_id) is None


# -- groups --------------------------------------------------------------------------


def test_groups_and_membership(store: SqlStore) -> None:
    g = store.create_group(ACCOUNT, "devs", path="/eng/")
    assert g.group_id.startswith("AGPA") and g.arn == f"arn:aws:iam::{ACCOUNT}:group/eng/devs"
    store.create_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "bob")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    store.add_user_to_group(ACCOUNT, "DEVS", "bob")
    store.add_user_to_group(ACCOUNT, "devs", "alice")  # idempotent, as in IAM
    assert [u.name for u in store.list_group_members(ACCOUNT, "devs")] == ["alice", "bob"]
    assert [x.name for x in store.list_groups_for_user(ACCOUNT, "alice")] == ["devs"]
    store.remove_user_from_group(ACCOUNT, "devs", "bob")
    with pytest.raises(NoSuchEntity, match="not a member"):
        store.remove_user_from_group(ACCOUNT, "devs", "bob")
    with pytest.raises(EntityAlreadyExists):
        store.create_group(ACCOUNT, "Devs")


def test_membership_refuses_dangling_references(store: SqlStore) -> None:
    store.create_group(ACCOUNT, "devs")
    with pytest.raises(NoSuchEntity, match="user ghost"):
        store.add_user_to_group(ACCOUNT, "devs", "ghost")
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity, match="group ghosts"):
        store.add_user_to_group(ACCOUNT, "ghosts", "alice")


def test_delete_group_with_members_needs_force(store: SqlStore) -> None:
    store.create_group(ACCOUNT, "devs")
    store.create_user(ACCOUNT, "alice")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    with pytest.raises(DeleteConflict, match="alice"):
        store.delete_group(ACCOUNT, "devs")
    store.delete_group(ACCOUNT, "devs", force=True)
    assert store.list_groups(ACCOUNT) == []
    assert store.list_groups_for_user(ACCOUNT, "alice") == []


# -- roles ---------------------------------------------------------------------------


def test_role_trusting_user_group_and_root(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice", path="/team/")
    g = store.create_group(ACCOUNT, "admins")
    root = f"arn:aws:iam::{ACCOUNT}:root"
    r = store.create_role(
        ACCOUNT,
        "Admin",
        path="/platform/",
        trust=[u.arn, g.arn, root, u.arn],
        max_session_duration=7200,
        description="cluster admins",
    )
    assert r.role_id.startswith("AROA")
    assert r.arn == f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
    assert [t.arn for t in r.trust] == [u.arn, g.arn, root]  # duplicates folded
    assert [(t.kind, t.principal_id) for t in r.trust] == [
        ("user", u.user_id),
        ("group", g.group_id),
        ("root", ACCOUNT),
    ]
    assert r.max_session_duration == 7200
    assert store.get_role(ACCOUNT, "admin") == r
    assert store.get_role_by_id(r.role_id) == r
    assert [x.name for x in store.list_roles(ACCOUNT, "/platform/")] == ["Admin"]


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        ([f"arn:aws:iam::{ACCOUNT}:user/ghost"], "no user ghost"),
        ([f"arn:aws:iam::{ACCOUNT}:group/ghosts"], "no group ghosts"),
        (["arn:aws:iam::999999999999:root"], "account 999999999999 does not exist"),
        ([f"arn:aws:iam::{ACCOUNT}:role/Other"], "may trust users, groups"),
        ([f"arn:aws-cn:iam::{ACCOUNT}:root"], "partition aws-cn"),
        (["not-an-arn"], "not a principal ARN"),
        ([f"arn:aws:iam::{ACCOUNT}:user/other/alice"], "has path /"),
    ],
)
def test_role_trust_must_name_existing_principals(
    store: SqlStore, trust: list[str], message: str
) -> None:
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(InvalidTrust, match=message):
        store.create_role(ACCOUNT, "Admin", trust=trust)
    assert store.list_roles(ACCOUNT) == []


def test_role_needs_trust_and_a_valid_duration(store: SqlStore) -> None:
    with pytest.raises(InputError, match="at least one"):
        store.create_role(ACCOUNT, "Admin", trust=[])
    root = f"arn:aws:iam::{ACCOUNT}:root"
    for bad in (899, 43201):
        with pytest.raises(InputError, match="between 900 and 43200"):
            store.create_role(ACCOUNT, "Admin", trust=[root], max_session_duration=bad)
    store.create_role(ACCOUNT, "Admin", trust=[root])
    with pytest.raises(EntityAlreadyExists):
        store.create_role(ACCOUNT, "ADMIN", trust=[root])


def test_trust_in_deleted_user_does_not_pass_to_namesake(store: SqlStore) -> None:
    old = store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Admin", trust=[old.arn])
    store.delete_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "alice")
    role = store.get_role(ACCOUNT, "Admin")
    # IAM shows the deleted principal's unique id, which matches nobody new.
    assert [t.arn for t in role.trust] == [old.user_id]
    assert role.trust[0].principal_id == old.user_id


def test_update_trust_and_delete_role(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Admin", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    assert [t.arn for t in store.update_role_trust(ACCOUNT, "Admin", [u.arn]).trust] == [u.arn]
    with pytest.raises(InvalidTrust):
        store.update_role_trust(ACCOUNT, "Admin", [f"arn:aws:iam::{ACCOUNT}:user/ghost"])
    assert [t.arn for t in store.get_role(ACCOUNT, "Admin").trust] == [u.arn]  # unchanged
    role_id = store.get_role(ACCOUNT, "Admin").role_id
    store.delete_role(ACCOUNT, "Admin")
    assert store.check_principal(f"{role_id}:session") == "principal_deleted"
    with pytest.raises(NoSuchEntity, match="list-roles"):
        store.get_role(ACCOUNT, "Admin")


# -- access keys -----------------------------------------------------------------------


def test_access_key_secret_is_shown_once_and_stored_only_hashed(
    store: SqlStore, pepper: Pepper
) -> None:
    store.create_user(ACCOUNT, "alice")
    new = store.create_access_key(ACCOUNT, "alice")
    secret = new.secret_access_key
    key_id = new.key.access_key_id
    assert key_id.startswith("AKIA") and len(key_id) == 20
    assert len(secret) >= 27  # >= 160 bits in url-safe base64
    assert secret not in repr(new)
    assert new.to_aws()["SecretAccessKey"] == secret
    # Nowhere in the database: not the secret, not an unkeyed hash of it.
    import hashlib

    with store._db.transaction(write=False) as cur:
        dump = repr(cur.execute("SELECT * FROM iam_access_keys"))
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() not in dump
    assert pepper.hash_secret(secret) in dump  # the keyed hash is what is kept
    # Later reads never carry it.
    assert "SecretAccessKey" not in store.get_access_key(key_id).to_aws()
    assert secret not in repr(store.list_access_keys(ACCOUNT, "alice"))


def test_authenticate_access_key(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    new = store.create_access_key(ACCOUNT, "alice")
    key, user = store.authenticate_access_key(new.key.access_key_id, new.secret_access_key)
    assert user == u and key.access_key_id == new.key.access_key_id
    assert key.last_used_at is not None
    assert store.get_access_key(key.access_key_id).last_used_at is not None


def test_bad_credentials_are_refused_alike(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    new = store.create_access_key(ACCOUNT, "alice")
    kid, secret = new.key.access_key_id, new.secret_access_key
    messages = set()
    for key_id, sec in [
        (kid, secret + "x"),  # wrong secret
        (kid, ""),  # empty secret
        ("AKIA" + "A" * 16, secret),  # unknown id
        ("not-a-key-id", secret),  # malformed id
    ]:
        with pytest.raises(InvalidCredentials) as e:
            store.authenticate_access_key(key_id, sec)
        messages.add(str(e.value))
        assert secret not in str(e.value)
    store.update_access_key(kid, "Inactive")
    with pytest.raises(InvalidCredentials) as e:
        store.authenticate_access_key(kid, secret)
    messages.add(str(e.value))
    store.update_access_key(kid, "Active")
    store.set_user_enabled(ACCOUNT, "alice", False)
    with pytest.raises(InvalidCredentials) as e:
        store.authenticate_access_key(kid, secret)
    messages.add(str(e.value))
    assert len(messages) == 1  # no oracle: every refusal reads the same


def test_key_hashed_under_another_pepper_is_reported(store: SqlStore, backend: str) -> None:
    store.create_user(ACCOUNT, "alice")
    new = store.create_access_key(ACCOUNT, "alice")
    other = SqlStore(store._db, pepper=Pepper.generate())
    with pytest.raises(KeyStoreError, match="pepper"):
        other.authenticate_access_key(new.key.access_key_id, new.secret_access_key)


def test_at_most_two_access_keys(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    a = store.create_access_key(ACCOUNT, "alice").key
    b = store.create_access_key(ACCOUNT, "alice").key
    with pytest.raises(LimitExceeded, match="delete-access-key"):
        store.create_access_key(ACCOUNT, "alice")
    listed = {k.access_key_id for k in store.list_access_keys(ACCOUNT, "alice")}
    assert listed == {a.access_key_id, b.access_key_id}
    store.delete_access_key(a.access_key_id)
    store.create_access_key(ACCOUNT, "alice")


def test_update_and_delete_access_key(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    assert store.update_access_key(key_id, "Inactive").status == "Inactive"
    with pytest.raises(InputError, match="Active or Inactive"):
        store.update_access_key(key_id, "Disabled")  # type: ignore[arg-type]
    store.delete_access_key(key_id)
    with pytest.raises(NoSuchEntity, match="list-access-keys"):
        store.delete_access_key(key_id)
    with pytest.raises(NoSuchEntity):
        store.get_access_key("x" * 5000)  # hostile id: refused, not echoed whole


# -- principal check (token verification hook) --------------------------------------


def test_check_principal(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    assert store.check_principal(u.user_id, key_id) is None
    store.update_access_key(key_id, "Inactive")
    assert store.check_principal(u.user_id, key_id) == "access_key_inactive"
    store.delete_access_key(key_id)
    assert store.check_principal(u.user_id, key_id) == "access_key_deleted"
    assert store.check_principal(u.user_id) is None
    store.set_user_enabled(ACCOUNT, "alice", False)
    assert store.check_principal(u.user_id) == "user_disabled"
    role = store.create_role(ACCOUNT, "Admin", trust=[u.arn])
    assert store.check_principal(f"{role.role_id}:alice") is None
    assert store.check_principal("AIDA" + "Z" * 17) == "principal_deleted"
    assert store.check_principal("something-else") == "principal_deleted"
    # a key of another user does not vouch for this one
    bob = store.create_user(ACCOUNT, "bob")
    bob_key = store.create_access_key(ACCOUNT, "bob").key.access_key_id
    store.set_user_enabled(ACCOUNT, "alice", True)
    assert store.check_principal(u.user_id, bob_key) == "access_key_deleted"
    assert store.check_principal(bob.user_id, bob_key) is None


# -- revocation ------------------------------------------------------------------------


def test_revocation_and_purge(store: SqlStore) -> None:
    now = datetime.now(UTC)
    store.revoke_token("jti-1", now + timedelta(minutes=15))
    store.revoke_token("jti-1", now + timedelta(minutes=15))  # idempotent
    store.revoke_token("jti-old", now - timedelta(minutes=1))
    assert store.is_token_revoked("jti-1") and store.is_token_revoked("jti-old")
    assert not store.is_token_revoked("jti-2")
    assert store.purge_revoked_tokens(now) == 1
    assert store.is_token_revoked("jti-1") and not store.is_token_revoked("jti-old")
    with pytest.raises(InputError):
        store.revoke_token("", now)


# -- review facts (one read per token review) ---------------------------------------------


def facts(
    store: SqlStore, jti: str, principal_id: str, access_key_id: str | None = None
) -> ReviewFacts:
    """``review_facts``, checked against the four reads it stands for."""
    got = store.review_facts(jti, principal_id, access_key_id)
    assert got.revoked is store.is_token_revoked(jti)
    assert got.refusal == store.check_principal(principal_id, access_key_id)
    try:
        user = store.get_user_by_id(principal_id)
    except NoSuchEntity:
        assert (got.user_name, got.group_arns) == (None, ())
    else:
        groups = store.list_groups_for_user(user.account_id, user.name)
        assert (got.user_name, got.group_arns) == (user.name, tuple(g.arn for g in groups))
    return got


def test_review_facts_revocation(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    now = datetime.now(UTC)
    store.revoke_token("jti-1", now + timedelta(minutes=15))
    store.revoke_token("jti-old", now - timedelta(minutes=1))
    assert facts(store, "jti-1", u.user_id).revoked is True
    assert facts(store, "jti-2", u.user_id).revoked is False  # unknown jti
    assert facts(store, "JTI-1", u.user_id).revoked is False  # jtis compare exactly
    assert facts(store, "jti-1", "AIDA" + "Z" * 17).revoked is True  # whoever the principal
    assert facts(store, "jti-old", u.user_id).revoked is True  # until purged
    store.purge_revoked_tokens(now)
    assert facts(store, "jti-old", u.user_id).revoked is False
    assert facts(store, "", u.user_id).revoked is False
    assert facts(store, "x" * 5000, u.user_id).revoked is False


def test_review_facts_user_and_access_key_status(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    assert facts(store, "j", u.user_id, key_id) == ReviewFacts(False, None, "alice", ())
    assert facts(store, "j", u.user_id).refusal is None  # a token not minted from a key
    store.update_access_key(key_id, "Inactive")
    assert facts(store, "j", u.user_id, key_id).refusal == "access_key_inactive"
    assert facts(store, "j", u.user_id).refusal is None
    store.set_user_enabled(ACCOUNT, "ALICE", False)
    disabled = facts(store, "j", u.user_id, key_id)
    assert disabled.refusal == "user_disabled"  # before the key's own status
    assert disabled.user_name == "alice"
    store.set_user_enabled(ACCOUNT, "alice", True)
    store.delete_access_key(key_id)
    assert facts(store, "j", u.user_id, key_id).refusal == "access_key_deleted"
    assert facts(store, "j", u.user_id, "AKIA" + "Z" * 16).refusal == "access_key_deleted"
    # A key of another user does not vouch for this one.
    store.create_user(ACCOUNT, "bob")
    bob_key = store.create_access_key(ACCOUNT, "bob").key.access_key_id
    assert facts(store, "j", u.user_id, bob_key).refusal == "access_key_deleted"


def test_review_facts_deleted_and_recreated_user(store: SqlStore) -> None:
    old = store.create_user(ACCOUNT, "alice")
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    store.delete_user(ACCOUNT, "alice", force=True)
    assert facts(store, "j", old.user_id, key_id) == ReviewFacts(False, "principal_deleted")
    new = store.create_user(ACCOUNT, "alice")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    # The same ARN, another principal: the old token's facts stay those of nobody.
    assert facts(store, "j", old.user_id).refusal == "principal_deleted"
    assert facts(store, "j", old.user_id).group_arns == ()
    assert facts(store, "j", new.user_id).group_arns == (f"arn:aws:iam::{ACCOUNT}:group/devs",)


def test_review_facts_role_sessions(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "alice")
    role = store.create_role(ACCOUNT, "Admin", trust=[u.arn], path="/platform/")
    session = f"{role.role_id}:alice@example.com"
    assert facts(store, "j", session) == ReviewFacts(False, None, None, ())
    assert facts(store, "j", role.role_id).refusal is None
    # A role session carries no access key; one named anyway changes nothing, as before.
    assert facts(store, "j", session, "AKIA" + "Z" * 16).refusal is None
    store.delete_role(ACCOUNT, "admin")
    assert facts(store, "j", session).refusal == "principal_deleted"
    for odd in ("AROA" + "Z" * 17 + ":s", "AIDA" + "Z" * 17, "something-else", "", "x" * 5000):
        assert facts(store, "j", odd) == ReviewFacts(False, "principal_deleted")


def test_review_facts_groups(store: SqlStore) -> None:
    u = store.create_user(ACCOUNT, "Alice")
    other = store.create_user(ACCOUNT, "bob")
    assert facts(store, "j", u.user_id) == ReviewFacts(False, None, "Alice", ())
    store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "DEVS", "alice")  # names in any case
    assert facts(store, "j", u.user_id).group_arns == (f"arn:aws:iam::{ACCOUNT}:group/devs",)
    store.create_group(ACCOUNT, "beta", path="/eng/")
    store.create_group(ACCOUNT, "Alpha")
    store.create_group(ACCOUNT, "CHARLIE", path="/ops/x/")
    store.create_group(ACCOUNT, "zeta")  # bob's only
    for group in ("beta", "alpha", "Charlie"):
        store.add_user_to_group(ACCOUNT, group, "ALICE")
    store.add_user_to_group(ACCOUNT, "zeta", "bob")
    # By name, case-insensitively, as list_groups_for_user; paths in the ARNs.
    assert facts(store, "j", u.user_id).group_arns == (
        f"arn:aws:iam::{ACCOUNT}:group/Alpha",
        f"arn:aws:iam::{ACCOUNT}:group/eng/beta",
        f"arn:aws:iam::{ACCOUNT}:group/ops/x/CHARLIE",
        f"arn:aws:iam::{ACCOUNT}:group/devs",
    )
    assert facts(store, "j", other.user_id).group_arns == (f"arn:aws:iam::{ACCOUNT}:group/zeta",)
    store.remove_user_from_group(ACCOUNT, "Beta", "alice")
    store.delete_group(ACCOUNT, "alpha", force=True)
    assert facts(store, "j", u.user_id).group_arns == (
        f"arn:aws:iam::{ACCOUNT}:group/ops/x/CHARLIE",
        f"arn:aws:iam::{ACCOUNT}:group/devs",
    )
    # Disabled or with a refused key, the user's groups are still reported.
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    store.update_access_key(key_id, "Inactive")
    assert len(facts(store, "j", u.user_id, key_id).group_arns) == 2


def test_review_facts_group_arns_use_the_store_partition(empty_dsn: str, pepper: Pepper) -> None:
    s = open_store(empty_dsn, pepper=pepper, partition="aws-cn")
    try:
        s.create_account(ACCOUNT)
        u = s.create_user(ACCOUNT, "alice")
        s.create_group(ACCOUNT, "devs", path="/eng/")
        s.add_user_to_group(ACCOUNT, "devs", "alice")
        assert facts(s, "j", u.user_id).group_arns == (f"arn:aws-cn:iam::{ACCOUNT}:group/eng/devs",)
    finally:
        s.close()


_CountingDriver = CallRecorder  # the store's driver, recording which methods are called


def test_review_facts_is_one_statement(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    u = store.create_user(ACCOUNT, "alice")
    key_id = store.create_access_key(ACCOUNT, "alice").key.access_key_id
    for group in ("a", "b", "c"):
        store.create_group(ACCOUNT, group)
        store.add_user_to_group(ACCOUNT, group, "alice")
    driver = _CountingDriver(store._db)
    monkeypatch.setattr(store, "_db", driver)
    assert len(store.review_facts("j", u.user_id, key_id).group_arns) == 3
    # No BEGIN/COMMIT around it: on PostgreSQL, one round trip.
    assert driver.calls == ["query"]


class _StatementRecorder:
    """The store's driver, recording the SQL of every statement run in a transaction."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Any]:
        with self.inner.transaction(write=write) as cur:
            statements = self.statements

            class Cursor:
                def execute(self, sql: str, params: Any = ()) -> Any:
                    statements.append(sql)
                    return cur.execute(sql, params)

                def __getattr__(self, name: str) -> Any:
                    return getattr(cur, name)

            yield Cursor()


def test_get_role_runs_the_same_statements_whether_or_not_the_role_exists(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Role existence timing (sts.assume_role): a missing role, or account, must not
    # answer faster than a role that exists, so the same statements run for each.
    store.create_role(ACCOUNT, "Admin", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    driver = _StatementRecorder(store._db)
    monkeypatch.setattr(store, "_db", driver)
    ran = []
    for account, name in ((ACCOUNT, "Admin"), (ACCOUNT, "Ghost"), (OTHER_ACCOUNT, "Admin")):
        driver.statements.clear()
        try:
            store.get_role(account, name)
        except NoSuchEntity:
            pass
        ran.append(list(driver.statements))
    assert ran[0] == ran[1] == ran[2]
    assert len(ran[0]) == 3
