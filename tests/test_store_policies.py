"""IAM policy conformance: the same tests on SQLite and PostgreSQL.

Covers every policy method of the store: managed policies (ARN, PolicyId,
paths, case-insensitive names, the shipped AWS managed ones, list scopes),
versions (five at most, ids never reused, the default neither deletable nor
lost), inline policies of users, groups and roles (replace, the per-principal
size quota), attachments (ten at most, idempotent, counts, other accounts'
policies refused), tags on users and roles (50 at most, case-insensitive
keys, ``aws:`` reserved), delete conflicts naming what to remove (and
``force``), a re-created namesake inheriting nothing, ``principal_policies``
for users (with groups), roles, role sessions and groups in one statement,
malformed documents refused before anything is written, and transactions: a
write failing half-way leaves nothing behind; writers racing for the last
attachment or version slots (threads, each with its own connection) never
pass a limit together.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
)
from authbridge.iam import policy
from authbridge.iam.credentials import Pepper
from authbridge.store import SqlStore, open_store
from tests.conftest import ACCOUNT, OTHER_ACCOUNT, CallRecorder
from tests.test_store_concurrency import _dsn_of

USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ops/Deployer"
GROUP = f"arn:aws:iam::{ACCOUNT}:group/devs"
READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def doc(action: str = "iam:GetUser", effect: str = "Allow", sid: str | None = None) -> str:
    statement: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": "*"}
    if sid:
        statement["Sid"] = sid
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def policy_arn(name: str, path: str = "/", account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:policy{path}{name}"


def _principals(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.create_group(ACCOUNT, "devs")
    store.create_role(ACCOUNT, "Deployer", trust=[USER], path="/ops/")


# -- managed policies -------------------------------------------------------------------


def test_create_get_list_delete_policy(store: SqlStore) -> None:
    created = store.create_policy(ACCOUNT, "ReadIam", doc(), path="/team/", description="read IAM")
    assert created.policy_id.startswith("ANPA") and len(created.policy_id) == 21
    assert created.arn == policy_arn("ReadIam", "/team/")
    shown = created.to_aws()
    assert shown["DefaultVersionId"] == "v1" and shown["AttachmentCount"] == 0
    assert shown["IsAttachable"] is True and shown["Description"] == "read IAM"
    assert shown["PermissionsBoundaryUsageCount"] == 0
    assert store.get_policy(ACCOUNT, created.arn) == created
    local = store.list_policies(ACCOUNT, scope="Local")
    assert local == [created]
    assert store.list_policies(ACCOUNT, scope="Local", path_prefix="/other/") == []
    store.delete_policy(ACCOUNT, created.arn)
    with pytest.raises(NoSuchEntity, match="does not exist"):
        store.get_policy(ACCOUNT, created.arn)
    assert store.list_policies(ACCOUNT, scope="Local") == []


def test_policy_names_are_unique_case_insensitively_whatever_the_path(store: SqlStore) -> None:
    store.create_policy(ACCOUNT, "ReadIam", doc())
    with pytest.raises(EntityAlreadyExists, match="case-insensitive"):
        store.create_policy(ACCOUNT, "readiam", doc(), path="/elsewhere/")
    # The ARN must name the path the policy has, and its exact name.
    with pytest.raises(NoSuchEntity):
        store.get_policy(ACCOUNT, policy_arn("ReadIam", "/elsewhere/"))
    with pytest.raises(NoSuchEntity):
        store.get_policy(ACCOUNT, policy_arn("READIAM"))


def test_policy_ids_are_never_reused(store: SqlStore) -> None:
    first = store.create_policy(ACCOUNT, "P", doc())
    store.delete_policy(ACCOUNT, first.arn)
    second = store.create_policy(ACCOUNT, "P", doc())
    assert second.policy_id != first.policy_id and second.arn == first.arn


def test_aws_managed_policies_are_listed_and_read_only(store: SqlStore) -> None:
    aws = store.list_policies(ACCOUNT, scope="AWS")
    assert [p.name for p in aws] == sorted(policy.AWS_MANAGED_POLICIES, key=str.lower)
    assert all(p.arn == policy.aws_managed_arn("aws", p.name) for p in aws)
    got = store.get_policy(ACCOUNT, READ_ONLY)
    assert got.aws_managed and got.default_version_id == "v1"
    # The same stable id in every store, and a document to read.
    assert got.policy_id.startswith("ANPA") and got in aws
    version = store.get_policy_version(ACCOUNT, READ_ONLY, "v1")
    assert version.is_default and policy.parse_policy(dict(version.document))
    with pytest.raises(InputError, match="cannot be deleted"):
        store.delete_policy(ACCOUNT, READ_ONLY)
    with pytest.raises(InputError, match="new versions"):
        store.create_policy_version(ACCOUNT, READ_ONLY, doc())
    with pytest.raises(NoSuchEntity, match="ships"):
        store.get_policy(ACCOUNT, "arn:aws:iam::aws:policy/PowerUserAccess")


def test_list_scopes_and_only_attached(store: SqlStore) -> None:
    _principals(store)
    mine = store.create_policy(ACCOUNT, "Mine", doc())
    store.create_policy(ACCOUNT, "Unused", doc())
    store.attach_policy(ACCOUNT, "user", "alice", READ_ONLY)
    store.attach_policy(ACCOUNT, "group", "devs", mine.arn)
    store.attach_policy(ACCOUNT, "role", "Deployer", mine.arn)
    every = store.list_policies(ACCOUNT)
    assert {p.name for p in every} == {*policy.AWS_MANAGED_POLICIES, "Mine", "Unused"}
    assert [p.name.lower() for p in every] == sorted(p.name.lower() for p in every)
    attached = store.list_policies(ACCOUNT, only_attached=True)
    assert [(p.name, p.attachment_count) for p in attached] == [
        ("IAMReadOnlyAccess", 1),
        ("Mine", 2),
    ]
    assert store.list_policies(ACCOUNT, scope="Local", only_attached=True) == [attached[1]]
    with pytest.raises(InputError, match="All, AWS or Local"):
        store.list_policies(ACCOUNT, scope="Everything")


def test_policies_are_per_account(store: SqlStore) -> None:
    store.create_account(OTHER_ACCOUNT)
    theirs = store.create_policy(OTHER_ACCOUNT, "Theirs", doc())
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity, match=f"not in account {ACCOUNT}"):
        store.get_policy(ACCOUNT, theirs.arn)
    with pytest.raises(NoSuchEntity, match=f"not in account {ACCOUNT}"):
        store.attach_policy(ACCOUNT, "user", "alice", theirs.arn)
    assert store.list_policies(ACCOUNT, scope="Local") == []
    # The other account's own attachment counts stay its own.
    store.attach_policy(ACCOUNT, "user", "alice", READ_ONLY)
    assert store.get_policy(OTHER_ACCOUNT, READ_ONLY).attachment_count == 0


def test_bad_fields_are_named(store: SqlStore) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "PolicyName"),
        ({"name": "x" * 129}, "PolicyName"),
        ({"name": "bad name"}, "PolicyName"),
        ({"path": "team"}, "Path"),
        ({"description": "x" * 1001}, "Description"),
        ({"description": "a\x1bb"}, "Description"),
    ]
    for change, field in cases:
        args: dict[str, Any] = {"name": "P", "path": "/", "description": ""} | change
        with pytest.raises(InputError) as e:
            store.create_policy(
                ACCOUNT, args["name"], doc(), path=args["path"], description=args["description"]
            )
        assert e.value.field == field, (change, e.value)
    for arn in (
        "",
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::1111:policy/P",
        "arn:aws-cn:iam::111122223333:policy/P",
        "arn:aws:iam::111122223333:policy/a//P",
        "arn:aws:iam::111122223333:policy/" + "x" * 3000,
    ):
        with pytest.raises(InputError) as e:
            store.get_policy(ACCOUNT, arn)
        assert e.value.field == "PolicyArn", arn
    assert store.list_policies(ACCOUNT, scope="Local") == []


def test_malformed_document_is_refused_before_anything_is_written(store: SqlStore) -> None:
    bad = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"},
                {"Sid": "Two", "Effect": "Allow", "Action": "iam:GetUser", "Resourc": "*"},
            ],
        }
    )
    with pytest.raises(MalformedPolicyDocument) as e:
        store.create_policy(ACCOUNT, "P", bad)
    assert "Statement[1]" in e.value.field
    assert store.list_policies(ACCOUNT, scope="Local") == []
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(MalformedPolicyDocument):
        store.put_inline_policy(ACCOUNT, "user", "alice", "P", "{not json")
    assert store.list_inline_policies(ACCOUNT, "user", "alice") == []
    # The size quota of the kind: a managed policy holds more than a user's inline one.
    big = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": f"iam:Get{n}" + "x" * 60, "Resource": "*"}
                for n in range(40)
            ],
        }
    )
    assert 2048 < sum(not c.isspace() for c in big) < 6144
    store.create_policy(ACCOUNT, "Big", big)
    with pytest.raises(MalformedPolicyDocument):
        store.put_inline_policy(ACCOUNT, "user", "alice", "Big", big)


# -- versions ---------------------------------------------------------------------------


def test_versions_up_to_five_ids_never_reused(store: SqlStore) -> None:
    p = store.create_policy(ACCOUNT, "P", doc("iam:GetUser"))
    for n in range(2, 6):
        v = store.create_policy_version(ACCOUNT, p.arn, doc(f"iam:Get{n}"))
        assert v.version_id == f"v{n}" and not v.is_default
    with pytest.raises(LimitExceeded, match="5 versions") as e:
        store.create_policy_version(ACCOUNT, p.arn, doc())
    assert "delete-policy-version" in str(e.value)
    assert [v.version_id for v in store.list_policy_versions(ACCOUNT, p.arn)] == [
        "v5",
        "v4",
        "v3",
        "v2",
        "v1",
    ]
    store.delete_policy_version(ACCOUNT, p.arn, "v2")
    v6 = store.create_policy_version(ACCOUNT, p.arn, doc("iam:Get6"), set_as_default=True)
    assert v6.version_id == "v6" and v6.is_default
    assert store.get_policy(ACCOUNT, p.arn).default_version_id == "v6"
    got = store.get_policy_version(ACCOUNT, p.arn, "v6")
    assert got.is_default and got.document["Statement"][0]["Action"] == "iam:Get6"
    assert not store.get_policy_version(ACCOUNT, p.arn, "v1").is_default
    with pytest.raises(NoSuchEntity, match="no version v2"):
        store.get_policy_version(ACCOUNT, p.arn, "v2")


def test_default_version_cannot_be_deleted(store: SqlStore) -> None:
    p = store.create_policy(ACCOUNT, "P", doc())
    with pytest.raises(DeleteConflict, match="default version") as e:
        store.delete_policy_version(ACCOUNT, p.arn, "v1")
    assert "set-default-policy-version" in str(e.value)
    store.create_policy_version(ACCOUNT, p.arn, doc("iam:ListUsers"))
    store.set_default_policy_version(ACCOUNT, p.arn, "v2")
    store.delete_policy_version(ACCOUNT, p.arn, "v1")
    assert [v.version_id for v in store.list_policy_versions(ACCOUNT, p.arn)] == ["v2"]
    with pytest.raises(NoSuchEntity):
        store.set_default_policy_version(ACCOUNT, p.arn, "v1")
    with pytest.raises(NoSuchEntity):
        store.delete_policy_version(ACCOUNT, p.arn, "v9")
    for bad in ("1", "v0", "V1", "v", "v1.x", "v" + "9" * 20):
        with pytest.raises(InputError) as e:
            store.get_policy_version(ACCOUNT, p.arn, bad)
        assert e.value.field == "VersionId", bad


def test_policy_with_versions_deletes_whole(store: SqlStore) -> None:
    p = store.create_policy(ACCOUNT, "P", doc())
    store.create_policy_version(ACCOUNT, p.arn, doc("iam:ListUsers"))
    store.delete_policy(ACCOUNT, p.arn)
    again = store.create_policy(ACCOUNT, "P", doc("iam:ListRoles"))
    versions = store.list_policy_versions(ACCOUNT, again.arn)
    assert [v.version_id for v in versions] == ["v1"]
    assert versions[0].document["Statement"][0]["Action"] == "iam:ListRoles"


# -- inline policies --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_inline_policies_of_each_kind(store: SqlStore, kind: str) -> None:
    _principals(store)
    name = {"user": "alice", "group": "devs", "role": "Deployer"}[kind]
    put = store.put_inline_policy(ACCOUNT, kind, name, "Ops", doc("iam:GetUser"))
    field = {"user": "UserName", "group": "GroupName", "role": "RoleName"}[kind]
    assert put.to_aws() == {
        field: name,
        "PolicyName": "Ops",
        "PolicyDocument": json.loads(doc("iam:GetUser")),
    }
    assert store.get_inline_policy(ACCOUNT, kind, name, "ops") == put
    # Put again replaces, under the name as now written.
    store.put_inline_policy(ACCOUNT, kind, name, "OPS", doc("iam:ListUsers"))
    store.put_inline_policy(ACCOUNT, kind, name, "Alpha", doc())
    assert store.list_inline_policies(ACCOUNT, kind, name) == ["Alpha", "OPS"]
    got = store.get_inline_policy(ACCOUNT, kind, name, "Ops")
    assert got.name == "OPS" and got.document["Statement"][0]["Action"] == "iam:ListUsers"
    store.delete_inline_policy(ACCOUNT, kind, name, "ops")
    assert store.list_inline_policies(ACCOUNT, kind, name) == ["Alpha"]
    with pytest.raises(NoSuchEntity, match="no inline policy named Ops") as e:
        store.delete_inline_policy(ACCOUNT, kind, name, "Ops")
    assert f"list-{kind}-policies" in str(e.value)
    with pytest.raises(NoSuchEntity):
        store.get_inline_policy(ACCOUNT, kind, name, "Ops")
    with pytest.raises(NoSuchEntity):
        store.list_inline_policies(ACCOUNT, kind, "nobody")


def test_inline_policies_share_the_principal_size_quota(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")

    def sized(n: int) -> str:
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": f"iam:Get{i}" + "x" * 40, "Resource": "*"}
                    for i in range(n)
                ],
            }
        )

    one = sized(8)
    size = sum(not c.isspace() for c in one)
    assert 2048 / 3 < size < 2048 / 2  # whitespace is not counted
    store.put_inline_policy(ACCOUNT, "user", "alice", "A", one)
    store.put_inline_policy(ACCOUNT, "user", "alice", "B", one)
    with pytest.raises(LimitExceeded, match="2048") as e:
        store.put_inline_policy(ACCOUNT, "user", "alice", "C", one)
    assert "attach a managed policy" in str(e.value)
    assert store.list_inline_policies(ACCOUNT, "user", "alice") == ["A", "B"]
    # Replacing one counts the new text instead of the old, not on top of it.
    store.put_inline_policy(ACCOUNT, "user", "alice", "B", one)


def test_bad_kinds_and_names_are_named(store: SqlStore) -> None:
    _principals(store)
    with pytest.raises(InputError) as e:
        store.put_inline_policy(ACCOUNT, "account", "alice", "P", doc())
    assert e.value.field == "PrincipalKind"
    with pytest.raises(InputError) as e:
        store.put_inline_policy(ACCOUNT, "user", "alice", "bad/name", doc())
    assert e.value.field == "PolicyName"
    with pytest.raises(InputError) as e:
        store.tag_principal(ACCOUNT, "group", "devs", {"a": "b"})
    assert e.value.field == "PrincipalKind"


# -- attachments ------------------------------------------------------------------------


def test_attach_detach_count_and_idempotence(store: SqlStore) -> None:
    _principals(store)
    p = store.create_policy(ACCOUNT, "Mine", doc(), path="/team/")
    store.attach_policy(ACCOUNT, "user", "alice", p.arn)
    store.attach_policy(ACCOUNT, "user", "ALICE", p.arn)  # again: nothing changes
    store.attach_policy(ACCOUNT, "user", "alice", READ_ONLY)
    store.attach_policy(ACCOUNT, "group", "devs", p.arn)
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 2
    attached = store.list_attached_policies(ACCOUNT, "user", "alice")
    assert [a.to_aws() for a in attached] == [
        {"PolicyName": "IAMReadOnlyAccess", "PolicyArn": READ_ONLY},
        {"PolicyName": "Mine", "PolicyArn": p.arn},
    ]
    assert store.list_attached_policies(ACCOUNT, "user", "alice", path_prefix="/team/") == [
        attached[1]
    ]
    store.detach_policy(ACCOUNT, "user", "alice", p.arn)
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 1
    with pytest.raises(NoSuchEntity, match="is not attached") as e:
        store.detach_policy(ACCOUNT, "user", "alice", p.arn)
    assert "list-attached-user-policies" in str(e.value)
    with pytest.raises(NoSuchEntity):
        store.attach_policy(ACCOUNT, "role", "Deployer", policy_arn("Missing"))
    with pytest.raises(NoSuchEntity):
        store.attach_policy(ACCOUNT, "role", "Nobody", p.arn)
    assert store.list_attached_policies(ACCOUNT, "role", "Deployer") == []


def test_at_most_ten_attached_policies(store: SqlStore) -> None:
    store.create_role(ACCOUNT, "Deployer", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    arns = [store.create_policy(ACCOUNT, f"P{n}", doc()).arn for n in range(9)]
    for arn in [*arns, ADMIN]:
        store.attach_policy(ACCOUNT, "role", "Deployer", arn)
    extra = store.create_policy(ACCOUNT, "Extra", doc()).arn
    with pytest.raises(LimitExceeded, match="10 managed policies") as e:
        store.attach_policy(ACCOUNT, "role", "Deployer", extra)
    assert "detach-role-policy" in str(e.value)
    store.attach_policy(ACCOUNT, "role", "Deployer", ADMIN)  # already attached: fine
    assert len(store.list_attached_policies(ACCOUNT, "role", "Deployer")) == 10
    assert store.get_policy(ACCOUNT, extra).attachment_count == 0


# -- delete conflicts and namesakes -----------------------------------------------------


def test_attached_policy_cannot_be_deleted(store: SqlStore) -> None:
    _principals(store)
    p = store.create_policy(ACCOUNT, "Mine", doc())
    for kind, name in (("role", "Deployer"), ("user", "alice"), ("group", "devs")):
        store.attach_policy(ACCOUNT, kind, name, p.arn)
    with pytest.raises(DeleteConflict) as e:
        store.delete_policy(ACCOUNT, p.arn)
    assert "attached to user alice, group devs, role Deployer" in e.value.message
    assert "detach" in str(e.value)
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 3


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_principal_holding_policies_cannot_be_deleted(store: SqlStore, kind: str) -> None:
    _principals(store)
    name = {"user": "alice", "group": "devs", "role": "Deployer"}[kind]
    p = store.create_policy(ACCOUNT, "Mine", doc())
    store.put_inline_policy(ACCOUNT, kind, name, "Inline", doc())
    store.attach_policy(ACCOUNT, kind, name, p.arn)
    store.attach_policy(ACCOUNT, kind, name, READ_ONLY)
    delete = {
        "user": store.delete_user,
        "group": store.delete_group,
        "role": store.delete_role,
    }[kind]
    with pytest.raises(DeleteConflict) as e:
        delete(ACCOUNT, name)
    assert "inline policies Inline" in e.value.message
    assert "attached policies IAMReadOnlyAccess, Mine" in e.value.message
    assert store.list_inline_policies(ACCOUNT, kind, name) == ["Inline"]
    store.delete_inline_policy(ACCOUNT, kind, name, "Inline")
    store.detach_policy(ACCOUNT, kind, name, p.arn)
    with pytest.raises(DeleteConflict, match="IAMReadOnlyAccess"):
        delete(ACCOUNT, name)
    store.detach_policy(ACCOUNT, kind, name, READ_ONLY)
    delete(ACCOUNT, name)
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 0


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_recreated_namesake_inherits_no_policies(store: SqlStore, kind: str) -> None:
    _principals(store)
    name = {"user": "alice", "group": "devs", "role": "Deployer"}[kind]
    arn = {"user": USER, "group": GROUP, "role": ROLE}[kind]
    p = store.create_policy(ACCOUNT, "Mine", doc())
    store.put_inline_policy(ACCOUNT, kind, name, "Inline", doc())
    store.attach_policy(ACCOUNT, kind, name, p.arn)
    store.attach_policy(ACCOUNT, kind, name, ADMIN)
    assert len(store.principal_policies(ACCOUNT, arn)) == 3
    if kind == "user":
        store.delete_user(ACCOUNT, name, force=True)
        store.create_user(ACCOUNT, name)
    elif kind == "group":
        store.delete_group(ACCOUNT, name, force=True)
        store.create_group(ACCOUNT, name)
    else:
        store.delete_role(ACCOUNT, name, force=True)
        store.create_role(ACCOUNT, name, trust=[USER], path="/ops/")
    assert store.list_inline_policies(ACCOUNT, kind, name) == []
    assert store.list_attached_policies(ACCOUNT, kind, name) == []
    assert store.principal_policies(ACCOUNT, arn) == []
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 0
    assert store.get_policy(ACCOUNT, ADMIN).attachment_count == 0
    store.delete_policy(ACCOUNT, p.arn)


# -- tags -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "role"])
def test_tags_of_users_and_roles(store: SqlStore, kind: str) -> None:
    _principals(store)
    name = "alice" if kind == "user" else "Deployer"
    assert store.list_principal_tags(ACCOUNT, kind, name) == {}
    assert store.tag_principal(ACCOUNT, kind, name, {"team": "a", "env": "prod"}) == {
        "env": "prod",
        "team": "a",
    }
    # A key that differs only in case replaces the old tag.
    store.tag_principal(ACCOUNT, kind, name, {"Team": "b"})
    assert store.list_principal_tags(ACCOUNT, kind, name) == {"Team": "b", "env": "prod"}
    arn = USER if kind == "user" else ROLE
    assert store.principal_tags(ACCOUNT, arn) == {"Team": "b", "env": "prod"}
    assert store.untag_principal(ACCOUNT, kind, name, ["TEAM", "absent"]) == {"env": "prod"}
    if kind == "user":
        assert store.get_user(ACCOUNT, name).tags == {"env": "prod"}
    with pytest.raises(InputError, match="reserved prefix aws:"):
        store.tag_principal(ACCOUNT, kind, name, {"aws:team": "x"})
    with pytest.raises(InputError):
        store.tag_principal(ACCOUNT, kind, name, {"bad\nkey": "x"})
    with pytest.raises(InputError):
        store.tag_principal(ACCOUNT, kind, name, {"k": "v" * 257})
    with pytest.raises(InputError, match="at least one"):
        store.tag_principal(ACCOUNT, kind, name, {})
    with pytest.raises(InputError, match="at least one"):
        store.untag_principal(ACCOUNT, kind, name, [])
    with pytest.raises(NoSuchEntity):
        store.tag_principal(ACCOUNT, kind, "nobody", {"a": "b"})
    assert store.list_principal_tags(ACCOUNT, kind, name) == {"env": "prod"}


def test_at_most_fifty_tags(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.tag_principal(ACCOUNT, "user", "alice", {f"k{n}": "v" for n in range(49)})
    with pytest.raises(LimitExceeded, match="51 tags") as e:
        store.tag_principal(ACCOUNT, "user", "alice", {"x": "1", "y": "2"})
    assert "untag-user" in str(e.value)
    assert len(store.list_principal_tags(ACCOUNT, "user", "alice")) == 49
    store.tag_principal(ACCOUNT, "user", "alice", {"k0": "new", "x": "1"})  # 50 exactly
    assert len(store.list_principal_tags(ACCOUNT, "user", "alice")) == 50


def test_group_principal_tags_are_empty(store: SqlStore) -> None:
    store.create_group(ACCOUNT, "devs")
    assert store.principal_tags(ACCOUNT, GROUP) == {}
    with pytest.raises(NoSuchEntity):
        store.principal_tags(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:group/nobody")


# -- what applies to a principal ---------------------------------------------------------


def _story(store: SqlStore) -> None:
    """alice: an inline Deny and AdministratorAccess; her groups devs and ops: theirs."""
    _principals(store)
    store.create_group(ACCOUNT, "ops")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    store.add_user_to_group(ACCOUNT, "ops", "alice")
    mine = store.create_policy(ACCOUNT, "Mine", doc("iam:ListRoles"), path="/team/")
    store.put_inline_policy(ACCOUNT, "user", "alice", "NoDelete", doc("iam:DeleteUser", "Deny"))
    store.attach_policy(ACCOUNT, "user", "alice", ADMIN)
    store.put_inline_policy(ACCOUNT, "group", "devs", "Read", doc("iam:GetUser", sid="Read"))
    store.attach_policy(ACCOUNT, "group", "devs", mine.arn)
    store.put_inline_policy(ACCOUNT, "group", "ops", "Read", doc("iam:GetRole"))
    store.put_inline_policy(ACCOUNT, "role", "Deployer", "Deploy", doc("eks:DescribeCluster"))
    store.attach_policy(ACCOUNT, "role", "Deployer", READ_ONLY)


def test_principal_policies_of_a_user_include_its_groups(store: SqlStore) -> None:
    _story(store)
    found = store.principal_policies(ACCOUNT, USER)
    assert [(p.policy_id, p.policy_type) for p in found] == [
        ("user/alice/NoDelete", "user"),
        (ADMIN, "aws-managed"),
        ("group/devs/Read", "group"),
        (policy_arn("Mine", "/team/"), "managed"),
        ("group/ops/Read", "group"),
    ]
    assert found[1].document == policy.AWS_MANAGED_POLICIES["AdministratorAccess"]
    assert found[0].document == policy.parse_policy(doc("iam:DeleteUser", "Deny"), kind="user")
    # Evaluated, they decide as IAM would: the inline Deny wins over Administrator.
    request = policy.Request("iam:DeleteUser", "*", {})
    decision = policy.evaluate(found, request)
    assert decision.decision == "explicitDeny"
    assert decision.statements[0].policy_id == "user/alice/NoDelete"


def test_principal_policies_of_roles_sessions_and_groups(store: SqlStore) -> None:
    _story(store)
    role = [(p.policy_id, p.policy_type) for p in store.principal_policies(ACCOUNT, ROLE)]
    assert role == [("role/Deployer/Deploy", "role"), (READ_ONLY, "aws-managed")]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/alice@example.com"
    assert [(p.policy_id, p.policy_type) for p in store.principal_policies(ACCOUNT, session)] == (
        role
    )
    group = [p.policy_id for p in store.principal_policies(ACCOUNT, GROUP)]
    assert group == ["group/devs/Read", policy_arn("Mine", "/team/")]
    store.create_user(ACCOUNT, "bob")
    assert store.principal_policies(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/bob") == []


def test_principal_policies_follow_the_default_version(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    p = store.create_policy(ACCOUNT, "Mine", doc("iam:ListRoles"))
    store.attach_policy(ACCOUNT, "user", "alice", p.arn)
    store.create_policy_version(ACCOUNT, p.arn, doc("iam:ListUsers"))
    (before,) = store.principal_policies(ACCOUNT, USER)
    assert before.document.statements[0].actions == ("iam:ListRoles",)
    store.set_default_policy_version(ACCOUNT, p.arn, "v2")
    (after,) = store.principal_policies(ACCOUNT, USER)
    assert after.document.statements[0].actions == ("iam:ListUsers",)


def test_principal_policies_is_one_statement(store: SqlStore) -> None:
    _story(store)
    for n in range(5):
        store.create_group(ACCOUNT, f"g{n}")
        store.add_user_to_group(ACCOUNT, f"g{n}", "alice")
        store.put_inline_policy(ACCOUNT, "group", f"g{n}", "P", doc())
    real = store._db
    recorder = CallRecorder(real)
    store._db = recorder  # type: ignore[assignment]  # records, then delegates
    try:
        found = store.principal_policies(ACCOUNT, USER)
    finally:
        store._db = real
    assert len(found) == 10
    assert recorder.calls == ["query"]  # one statement, no transaction around it


def test_principal_policies_refusals(store: SqlStore) -> None:
    _principals(store)
    store.create_account(OTHER_ACCOUNT)
    with pytest.raises(NoSuchEntity, match="user nobody does not exist"):
        store.principal_policies(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/nobody")
    with pytest.raises(NoSuchEntity, match="has path /ops/"):
        store.principal_policies(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/Deployer")
    with pytest.raises(NoSuchEntity, match=f"not in account {OTHER_ACCOUNT}"):
        store.principal_policies(OTHER_ACCOUNT, USER)
    for arn in (
        "not an arn",
        f"arn:aws:iam::{ACCOUNT}:root",
        f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
        f"arn:aws-cn:iam::{ACCOUNT}:user/alice",
    ):
        with pytest.raises(InputError) as e:
            store.principal_policies(ACCOUNT, arn)
        assert e.value.field == "PolicySourceArn", arn


# -- transactions -----------------------------------------------------------------------


class _FailingCursor:
    def __init__(self, inner: Any, needle: str) -> None:
        self._inner, self._needle = inner, needle

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._needle in sql:
            raise RuntimeError(f"injected failure at {self._needle}")
        return list(self._inner.execute(sql, params))

    @property
    def rowcount(self) -> int:
        return int(self._inner.rowcount)


class _FailOn:
    """The real driver, whose transactions fail at the first statement holding ``needle``."""

    def __init__(self, inner: Any, needle: str) -> None:
        self._inner, self._needle = inner, needle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_FailingCursor]:
        with self._inner.transaction(write=write) as cur:
            yield _FailingCursor(cur, self._needle)


@contextmanager
def _failing(store: SqlStore, needle: str) -> Iterator[None]:
    real = store._db
    store._db = _FailOn(real, needle)  # type: ignore[assignment]  # delegates but for needle
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            yield
    finally:
        store._db = real


def test_a_write_failing_half_way_leaves_nothing(store: SqlStore) -> None:
    _principals(store)
    with _failing(store, "INSERT INTO iam_policy_versions"):
        store.create_policy(ACCOUNT, "P", doc())
    assert store.list_policies(ACCOUNT, scope="Local") == []

    p = store.create_policy(ACCOUNT, "P", doc())
    with _failing(store, "UPDATE iam_policies SET next_version"):
        store.create_policy_version(ACCOUNT, p.arn, doc("iam:ListUsers"), set_as_default=True)
    assert [v.version_id for v in store.list_policy_versions(ACCOUNT, p.arn)] == ["v1"]

    store.attach_policy(ACCOUNT, "user", "alice", p.arn)
    store.put_inline_policy(ACCOUNT, "user", "alice", "Inline", doc())
    with _failing(store, "DELETE FROM iam_users"):
        store.delete_user(ACCOUNT, "alice", force=True)
    assert store.list_inline_policies(ACCOUNT, "user", "alice") == ["Inline"]
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 1

    store.detach_policy(ACCOUNT, "user", "alice", p.arn)
    with _failing(store, "DELETE FROM iam_policies"):
        store.delete_policy(ACCOUNT, p.arn)
    assert [v.version_id for v in store.list_policy_versions(ACCOUNT, p.arn)] == ["v1"]

    store.tag_principal(ACCOUNT, "role", "Deployer", {"a": "1"})
    with _failing(store, "UPDATE iam_roles SET tags"):
        store.untag_principal(ACCOUNT, "role", "Deployer", ["a"])
    assert store.list_principal_tags(ACCOUNT, "role", "Deployer") == {"a": "1"}


def test_refused_writes_change_nothing(store: SqlStore) -> None:
    _principals(store)
    p = store.create_policy(ACCOUNT, "P", doc())
    store.put_inline_policy(ACCOUNT, "group", "devs", "G", doc())
    store.attach_policy(ACCOUNT, "group", "devs", p.arn)
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    with pytest.raises(DeleteConflict, match="members"):
        store.delete_group(ACCOUNT, "devs")
    store.remove_user_from_group(ACCOUNT, "devs", "alice")
    with pytest.raises(DeleteConflict, match="inline policies G and attached policies P"):
        store.delete_group(ACCOUNT, "devs")
    assert store.list_inline_policies(ACCOUNT, "group", "devs") == ["G"]
    assert [a.arn for a in store.list_attached_policies(ACCOUNT, "group", "devs")] == [p.arn]
    store.delete_group(ACCOUNT, "devs", force=True)
    assert store.get_policy(ACCOUNT, p.arn).attachment_count == 0


# -- races ------------------------------------------------------------------------------


def _race(store: SqlStore, pepper: Pepper, n: int, attempt: Callable[[SqlStore, int], None]) -> int:
    """Run ``attempt(own_store, i)`` in ``n`` threads at once, each with its own store."""
    dsn = _dsn_of(store)
    stores = [open_store(dsn, pepper=pepper) for _ in range(n)]
    start = threading.Barrier(n)

    def run(i: int) -> bool:
        start.wait(30)
        try:
            attempt(stores[i], i)
        except LimitExceeded:
            return False
        return True

    try:
        with ThreadPoolExecutor(n) as pool:
            return sum(pool.map(run, range(n)))
    finally:
        for s in stores:
            s.close()


def test_racing_attachments_keep_the_limit(store: SqlStore, pepper: Pepper) -> None:
    store.create_role(ACCOUNT, "Deployer", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    arns = [store.create_policy(ACCOUNT, f"P{n}", doc()).arn for n in range(14)]
    for arn in arns[:6]:
        store.attach_policy(ACCOUNT, "role", "Deployer", arn)

    def attach(s: SqlStore, i: int) -> None:
        s.attach_policy(ACCOUNT, "role", "Deployer", arns[6 + i])

    assert _race(store, pepper, 8, attach) == 4
    assert len(store.list_attached_policies(ACCOUNT, "role", "Deployer")) == 10


def test_racing_versions_keep_the_limit_and_distinct_ids(store: SqlStore, pepper: Pepper) -> None:
    p = store.create_policy(ACCOUNT, "P", doc())

    def version(s: SqlStore, i: int) -> None:
        s.create_policy_version(ACCOUNT, p.arn, doc(f"iam:Get{i}"))

    assert _race(store, pepper, 6, version) == 4
    ids = [v.version_id for v in store.list_policy_versions(ACCOUNT, p.arn)]
    assert ids == ["v5", "v4", "v3", "v2", "v1"]
