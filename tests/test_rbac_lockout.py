"""Tests for authbridge.rbac.lockout: never leave the mapping without a cluster-admin.

Covers:
* removing the last cluster-admin binding (prune) is refused, naming the entry;
  without prune the binding stays and nothing is refused;
* a roleRef change away from cluster-admin (replace) is a removal too;
* another path remaining: a second binding, authbridge:cluster-admin, a
  hand-made (unmanaged) binding of a mapped group;
* what counts as mapped: literal groups, group and username templates
  (variables as wildcards, {{AccountID}} 12 digits), mapGroups, mapAccounts
  ARNs; what does not: system:masters, RoleBindings, other roles;
* the other messages: nothing was bound before, or a binding whose subject the
  mapping no longer gives;
* check_lockout raises LockoutRefused unless --allow-lockout.
"""

from __future__ import annotations

import pytest

from authbridge.mapping import Mapping, parse_mapping
from authbridge.rbac import (
    KubeObject,
    LockoutRefused,
    apply_to,
    check_lockout,
    desired_objects,
    lockout_problem,
    plan,
)
from authbridge.rbac.lockout import admin_paths

NS = ["dev"]
ROLES = """\
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{SessionName}}"
    groups: ["authbridge:admins", "team-{{SessionName}}-admins", "acct-{{AccountID}}"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: arn:aws:iam::111122223333:group/oncall
    username: "oncall-{{AccessKeyID}}"
    groups: ["authbridge:oncall"]
mapAccounts: ["444455556666"]
"""
ADMINS = """\
  - group: "authbridge:admins"
    clusterRole: cluster-admin
"""
DEVS = """\
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["dev"]
"""
ADMINS_CRB = "authbridge-cluster-admin-authbridge-admins-fd8fe283"


def mapping(*bindings: str, roles: str = ROLES) -> Mapping:
    return parse_mapping(roles + "bindings:\n" + "".join(bindings), "m")


def applied(m: Mapping) -> list[KubeObject]:
    """The cluster after applying ``m`` to an empty one."""
    desired = desired_objects(m, NS)
    return apply_to([], plan(desired, [], prune=True))


def problem(before: Mapping, after: Mapping, *, prune: bool = True) -> str | None:
    observed = applied(before)
    return lockout_problem(after, desired_objects(after, NS), observed, prune=prune)


def test_removing_the_last_cluster_admin_binding_names_it() -> None:
    assert problem(mapping(ADMINS, DEVS), mapping(DEVS)) == (
        f"bindings[0] (Group authbridge:admins -> cluster-admin, ClusterRoleBinding {ADMINS_CRB})"
        " is the last path to cluster-admin for the identities in the mapping, and this plan"
        " removes it; keep it, bind another group of the mapping to cluster-admin, or pass"
        " --allow-lockout"
    )


def test_without_prune_the_binding_stays() -> None:
    assert problem(mapping(ADMINS, DEVS), mapping(DEVS), prune=False) is None


def test_changing_the_role_away_from_cluster_admin_is_a_removal() -> None:
    to_view = ADMINS.replace("cluster-admin", "view")
    # the name has the role in it, so this is a new binding and a delete of the old one:
    # without prune the old one stays, with prune it goes
    assert problem(mapping(DEVS, ADMINS), mapping(DEVS, to_view), prune=False) is None
    message = problem(mapping(DEVS, ADMINS), mapping(DEVS, to_view), prune=True)
    assert message is not None
    assert message.startswith("bindings[1] (Group authbridge:admins -> cluster-admin,")


def test_several_lost_paths_are_all_named() -> None:
    both = ADMINS + "  - user: alice\n    clusterRole: authbridge:cluster-admin\n"
    message = problem(mapping(both), mapping(DEVS))
    assert message is not None
    assert message.startswith("bindings[0] (Group authbridge:admins -> cluster-admin, ")
    assert "bindings[1] (User alice -> authbridge:cluster-admin, " in message
    assert "are the last paths to cluster-admin" in message
    assert "removes them; keep them," in message


@pytest.mark.parametrize(
    "other",
    [
        '  - group: "authbridge:oncall"\n    clusterRole: cluster-admin\n',
        "  - user: alice\n    clusterRole: authbridge:cluster-admin\n",
        '  - group: "team-alice-admins"\n    clusterRole: cluster-admin\n',
        '  - group: "acct-111122223333"\n    clusterRole: cluster-admin\n',
        '  - user: "admin:alice-example.com"\n    clusterRole: cluster-admin\n',
        '  - user: "oncall-AKIAIOSFODNN7EXAMPLE"\n    clusterRole: cluster-admin\n',
        '  - user: "arn:aws:iam::444455556666:role/Any"\n    clusterRole: cluster-admin\n',
    ],
    ids=[
        "mapGroups group",
        "authbridge:cluster-admin for a mapUsers user",
        "templated group",
        "AccountID template",
        "templated username",
        "mapGroups username template",
        "mapAccounts ARN",
    ],
)
def test_another_path_remains(other: str) -> None:
    assert problem(mapping(ADMINS, other), mapping(other)) is None


@pytest.mark.parametrize(
    "other",
    [
        '  - group: "team--admins"\n    clusterRole: cluster-admin\n',
        '  - group: "acct-1"\n    clusterRole: cluster-admin\n',
        '  - group: "authbridge:admins-x"\n    clusterRole: cluster-admin\n',
        '  - user: "bob"\n    clusterRole: cluster-admin\n',
        '  - user: "arn:aws:iam::111122223333:user/bob"\n    clusterRole: cluster-admin\n',
        '  - group: "authbridge:devs"\n    clusterRole: cluster-admin\n    namespaces: ["dev"]\n',
        '  - group: "authbridge:devs"\n    clusterRole: admin\n',
        "  - group: system:masters\n    clusterRole: cluster-admin\n"
        "    allowReservedPrefixes: true\n",
    ],
    ids=[
        "{{SessionName}} is never empty",
        "{{AccountID}} is 12 digits",
        "a literal group is the whole name",
        "unmapped user",
        "account not in mapAccounts",
        "RoleBinding",
        "not a cluster-admin role",
        "system:masters",
    ],
)
def test_not_a_path(other: str) -> None:
    message = problem(mapping(ADMINS, other), mapping(other))
    assert message is not None
    assert message.startswith("bindings[0] (Group authbridge:admins -> cluster-admin")


def test_a_hand_made_binding_of_a_mapped_group_counts() -> None:
    observed = applied(mapping(ADMINS))
    other = mapping(ADMINS.replace("authbridge:admins", "authbridge:oncall"))
    hand_made = desired_objects(other, NS)[0]
    del hand_made.manifest["metadata"]["labels"]
    assert not hand_made.managed
    observed.append(hand_made)
    assert lockout_problem(mapping(DEVS), desired_objects(mapping(DEVS), NS), observed) is None
    assert [s for _, s in admin_paths(mapping(DEVS), observed)] == [
        "Group authbridge:admins",
        "Group authbridge:oncall",
    ]


def test_nothing_bound_before_or_after() -> None:
    assert problem(mapping(DEVS), mapping(DEVS)) == (
        "no identity in the mapping is bound to authbridge:cluster-admin or cluster-admin; add"
        " a bindings entry with clusterRole: cluster-admin for a group the mapping gives, or"
        " pass --allow-lockout"
    )


def test_a_binding_whose_group_the_mapping_no_longer_gives() -> None:
    without_group = ROLES.replace('"authbridge:admins", ', "")
    assert problem(mapping(ADMINS), mapping(ADMINS, roles=without_group)) == (
        "no identity in the mapping is bound to authbridge:cluster-admin or cluster-admin:"
        f" bindings[0] (Group authbridge:admins -> cluster-admin, ClusterRoleBinding {ADMINS_CRB}),"
        " but no mapRoles, mapUsers or mapGroups entry gives that subject; map it, or pass"
        " --allow-lockout"
    )


def test_first_apply_with_a_cluster_admin_binding_is_fine() -> None:
    m = mapping(ADMINS, DEVS)
    assert lockout_problem(m, desired_objects(m, NS), []) is None


def test_check_lockout_raises_unless_allowed() -> None:
    observed = applied(mapping(ADMINS, DEVS))
    after = mapping(DEVS)
    desired = desired_objects(after, NS)
    with pytest.raises(LockoutRefused, match=r"^bindings\[0\] \(Group authbridge:admins") as caught:
        check_lockout(after, desired, observed, prune=True, allow_lockout=False)
    assert caught.value.code == "LockoutRefused"
    check_lockout(after, desired, observed, prune=True, allow_lockout=True)
    check_lockout(after, desired, observed, prune=False, allow_lockout=False)
