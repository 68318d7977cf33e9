"""Access-entry conformance: the same tests on SQLite and PostgreSQL.

Covers: entries bound to the principal's unique id (a deleted and re-created
namesake does not inherit one, and must have the stale entry deleted first),
users and roles (a role's path may be left out), per-cluster isolation, policy
association and re-scoping, disassociation, delete cascading to policies, the
authentication mode (default, set, refused values) and the access version
bumped by every change and only by changes, in the transaction of the change
(a refused change leaves the version and the rows as they were).
"""

from __future__ import annotations

from typing import Any

import pytest

from authbridge.errors import EntityAlreadyExists, InputError, NoSuchEntity
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT

USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/team/Deploy"


def _principals(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Deploy", trust=[USER_ARN], path="/team/")


def test_entry_is_bound_to_the_unique_id(store: SqlStore) -> None:
    _principals(store)
    alice = store.get_user(ACCOUNT, "alice")
    entry = store.create_access_entry(
        "prod", USER_ARN, username="alice:{{AccessKeyID}}", groups=["devs", "devs", "ops"]
    )
    assert entry.principal_id == alice.user_id
    assert entry.groups == ("devs", "ops")
    assert store.get_access_entry("prod", f"arn:aws:iam::{ACCOUNT}:user/ALICE") == entry
    shown = entry.to_aws()
    assert shown["principalArn"] == USER_ARN and shown["clusterName"] == "prod"
    assert shown["kubernetesGroups"] == ["devs", "ops"] and shown["type"] == "STANDARD"
    assert shown["username"] == "alice:{{AccessKeyID}}"
    assert shown["accessEntryArn"].endswith(f"access-entry/prod/user/{alice.user_id}")


def test_recreated_namesake_does_not_inherit_the_entry(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    old = store.create_access_entry("prod", USER_ARN)
    store.delete_user(ACCOUNT, "alice")
    new_alice = store.create_user(ACCOUNT, "alice")
    assert new_alice.user_id != old.principal_id
    # The stale entry is still there, bound to the dead id ...
    assert store.get_access_entry("prod", USER_ARN).principal_id == old.principal_id
    # ... and a new one cannot be made until it is deleted.
    with pytest.raises(EntityAlreadyExists, match="deleted principal") as e:
        store.create_access_entry("prod", USER_ARN)
    assert "delete-entry" in str(e.value)
    store.delete_access_entry("prod", USER_ARN)
    fresh = store.create_access_entry("prod", USER_ARN)
    assert fresh.principal_id == new_alice.user_id


def test_role_entry_takes_the_role_path_and_refuses_sessions(store: SqlStore) -> None:
    _principals(store)
    role = store.get_role(ACCOUNT, "Deploy")
    entry = store.create_access_entry("prod", f"arn:aws:iam::{ACCOUNT}:role/deploy")
    assert entry.principal_id == role.role_id and entry.principal_arn == ROLE_ARN
    assert entry.username is None
    assert entry.to_aws()["username"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/{{{{SessionName}}}}"
    )
    with pytest.raises(InputError, match="principalArn.*assumed-role") as e:
        store.create_access_entry("dev", f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/sess")
    assert "role/<name>" in str(e.value)
    with pytest.raises(InputError, match="principalArn"):
        store.create_access_entry("dev", f"arn:aws:iam::{ACCOUNT}:group/devs")
    with pytest.raises(InputError, match="principalArn"):
        store.create_access_entry("dev", "not-an-arn")


def test_entry_needs_an_existing_principal(store: SqlStore) -> None:
    with pytest.raises(NoSuchEntity, match="user alice does not exist"):
        store.create_access_entry("prod", USER_ARN)
    assert store.list_access_entries() == []


def test_entries_are_per_cluster(store: SqlStore) -> None:
    _principals(store)
    store.create_access_entry("prod", USER_ARN)
    store.create_access_entry("dev", USER_ARN, groups=["x"])
    store.create_access_entry("dev", ROLE_ARN)
    assert [e.principal_arn for e in store.list_access_entries("dev")] == [ROLE_ARN, USER_ARN]
    assert [e.cluster_id for e in store.list_access_entries()] == ["dev", "dev", "prod"]
    assert store.get_access_entry("prod", USER_ARN).groups == ()
    with pytest.raises(EntityAlreadyExists, match="already has an access entry"):
        store.create_access_entry("prod", USER_ARN)
    with pytest.raises(NoSuchEntity, match="cluster staging has no access entry"):
        store.get_access_entry("staging", USER_ARN)


def test_bad_fields_are_named(store: SqlStore) -> None:
    _principals(store)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("bad id", {}, "clusterName"),
        ("prod", {"entry_type": "EC2"}, "type"),
        ("prod", {"username": ""}, "username"),
        ("prod", {"groups": [""]}, "kubernetesGroups"),
    ]
    for cluster, kwargs, field in cases:
        with pytest.raises(InputError) as e:
            store.create_access_entry(cluster, USER_ARN, **kwargs)
        assert e.value.field == field
    assert store.list_access_entries() == []
    assert store.access_version() == 0


def test_policies_associate_rescope_and_disassociate(store: SqlStore) -> None:
    _principals(store)
    store.create_access_entry("prod", USER_ARN)
    a = store.associate_access_policy("prod", USER_ARN, "view", scope="cluster")
    assert a.policy == "AmazonEKSViewPolicy" and a.cluster_role == "authbridge:view"
    b = store.associate_access_policy(
        "prod",
        USER_ARN,
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
        scope="namespace",
        namespaces=["team-*", "ci"],
    )
    assert b.to_aws()["accessScope"] == {"type": "namespace", "namespaces": ["team-*", "ci"]}
    # Associating again re-scopes (as EKS), keeping the first association time.
    c = store.associate_access_policy("prod", USER_ARN, "edit", scope="namespace", namespaces=["x"])
    assert c.associated_at == b.associated_at
    listed = store.list_associated_access_policies("prod", USER_ARN)
    assert [(p.policy, p.scope, p.namespaces) for p in listed] == [
        ("AmazonEKSEditPolicy", "namespace", ("x",)),
        ("AmazonEKSViewPolicy", "cluster", ()),
    ]
    store.disassociate_access_policy("prod", USER_ARN, "AmazonEKSViewPolicy")
    with pytest.raises(NoSuchEntity, match="is not associated"):
        store.disassociate_access_policy("prod", USER_ARN, "view")
    assert [p.policy for p in store.list_associated_access_policies("prod")] == [
        "AmazonEKSEditPolicy"
    ]


def test_policy_and_scope_errors_name_the_field(store: SqlStore) -> None:
    _principals(store)
    store.create_access_entry("prod", USER_ARN)
    cases = [
        (dict(policy="root", scope="cluster"), "policyArn"),
        (dict(policy="view", scope="cluster", namespaces=["a"]), "accessScope.namespaces"),
        (dict(policy="view", scope="namespace"), "accessScope.namespaces"),
        (dict(policy="view", scope="namespace", namespaces=["Bad_NS"]), "accessScope.namespaces"),
        (dict(policy="view", scope="account"), "accessScope.type"),
    ]
    before = store.access_version()
    for kwargs, field in cases:
        with pytest.raises(InputError) as e:
            store.associate_access_policy("prod", USER_ARN, **kwargs)  # type: ignore[arg-type]
        assert e.value.field == field, kwargs
    with pytest.raises(NoSuchEntity, match="no access entry"):
        store.associate_access_policy("prod", ROLE_ARN, "view", scope="cluster")
    assert store.access_version() == before
    assert store.list_associated_access_policies("prod") == []


def test_delete_entry_takes_its_policies(store: SqlStore) -> None:
    _principals(store)
    store.create_access_entry("prod", USER_ARN)
    store.associate_access_policy("prod", USER_ARN, "admin", scope="cluster")
    store.delete_access_entry("prod", USER_ARN)
    assert store.list_associated_access_policies() == []
    store.create_access_entry("prod", USER_ARN)
    assert store.list_associated_access_policies("prod", USER_ARN) == []
    with pytest.raises(NoSuchEntity):
        store.delete_access_entry("prod", ROLE_ARN)


def test_authentication_mode_default_and_set(store: SqlStore) -> None:
    assert store.get_authentication_mode("prod") == "API_AND_CONFIG_MAP"
    assert store.set_authentication_mode("prod", "API") == "API"
    assert store.get_authentication_mode("prod") == "API"
    assert store.get_authentication_mode("dev") == "API_AND_CONFIG_MAP"
    store.set_authentication_mode("prod", "CONFIG_MAP")
    assert store.get_authentication_mode("prod") == "CONFIG_MAP"
    with pytest.raises(InputError, match="authenticationMode") as e:
        store.set_authentication_mode("prod", "api")
    assert "API_AND_CONFIG_MAP" in str(e.value)
    assert store.get_authentication_mode("prod") == "CONFIG_MAP"


def test_every_change_bumps_the_access_version(store: SqlStore) -> None:
    _principals(store)
    seen = [store.access_version()]

    def bumped() -> None:
        now = store.access_version()
        assert now > seen[-1]
        seen.append(now)

    store.create_access_entry("prod", USER_ARN)
    bumped()
    store.associate_access_policy("prod", USER_ARN, "view", scope="cluster")
    bumped()
    store.associate_access_policy("prod", USER_ARN, "view", scope="namespace", namespaces=["a"])
    bumped()
    store.disassociate_access_policy("prod", USER_ARN, "view")
    bumped()
    store.set_authentication_mode("prod", "API")
    bumped()
    store.delete_access_entry("prod", USER_ARN)
    bumped()
    # Reads do not bump it; refused changes roll it back with the rest.
    store.list_access_entries()
    store.get_authentication_mode("prod")
    with pytest.raises(NoSuchEntity):
        store.delete_access_entry("prod", USER_ARN)
    with pytest.raises(NoSuchEntity):
        store.disassociate_access_policy("prod", ROLE_ARN, "view")
    assert store.access_version() == seen[-1]
