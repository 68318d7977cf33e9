"""Tests for rbac/access-policies.yaml, rbac/authbridge-rbac.yaml and authbridge.rbac.policies.

Covers:
* access-policies.yaml: the five ClusterRoles named after the EKS access
  policies, labelled managed-by authbridge, rules written out (no
  aggregationRule), every rule complete; cluster-admin is everything; view
  reads only and never secrets; admin-view is view plus reading secrets;
  view ⊂ edit ⊂ admin, only admin has roles/rolebindings, edit writes secrets
  as Kubernetes' edit does; none but cluster-admin reaches cluster-scoped
  RBAC, escalate or bind; each loads as a kubernetes client V1ClusterRole;
* authbridge-rbac.yaml: a ServiceAccount, ClusterRole and ClusterRoleBinding
  only, none with the managed-by label (prune can never remove them); the
  exact permissions, bind limited to the access policies and the built-ins;
  every action the planner produces needs only listed (group, resource, verb);
* unbindable() warns about ClusterRoles the reconciler may not bind.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from authbridge.mapping import load_mapping, parse_mapping
from authbridge.rbac import (
    ACCESS_POLICIES,
    BUILTIN_ROLES,
    MANAGED_BY_LABEL,
    RECONCILER_ROLE,
    KubeObject,
    ObjectRef,
    RbacError,
    apply_to,
    bindable_cluster_roles,
    desired_objects,
    plan,
    reconciler_permissions,
    unbindable,
)
from authbridge.rbac.policies import (
    ACCESS_POLICIES_FILE,
    RECONCILER_RBAC_FILE,
    Permission,
    parse_permissions,
)

REPO = Path(__file__).resolve().parent.parent
READ = {"get", "list", "watch"}
RBAC = "rbac.authorization.k8s.io"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def roles() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents(ACCESS_POLICIES_FILE)}


def grants(role: dict[str, Any]) -> Iterator[Permission]:
    for rule in role["rules"]:
        for group in rule.get("apiGroups", ()):
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    yield (group, resource, verb)


def perms(name: str) -> set[Permission]:
    return set(grants(roles()[name]))


# -- access policies ---------------------------------------------------------------------


def test_the_five_access_policies() -> None:
    assert ACCESS_POLICIES_FILE == REPO / "rbac" / "access-policies.yaml"
    docs = documents(ACCESS_POLICIES_FILE)
    assert [d["metadata"]["name"] for d in docs] == list(ACCESS_POLICIES.values())
    for doc in docs:
        assert doc["apiVersion"] == f"{RBAC}/v1"
        assert doc["kind"] == "ClusterRole"
        assert "aggregationRule" not in doc
        assert doc["metadata"]["labels"][MANAGED_BY_LABEL] == "authbridge"
        eks = doc["metadata"]["annotations"]["authbridge.dev/access-policy"]
        assert ACCESS_POLICIES[eks] == doc["metadata"]["name"]


@pytest.mark.parametrize("name", list(ACCESS_POLICIES.values()))
def test_every_rule_is_complete(name: str) -> None:
    rules = roles()[name]["rules"]
    assert rules
    for rule in rules:
        assert rule["verbs"] and len(set(rule["verbs"])) == len(rule["verbs"])
        if "nonResourceURLs" in rule:
            assert set(rule) == {"nonResourceURLs", "verbs"}
            continue
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for key in ("apiGroups", "resources"):
            assert rule[key] and len(set(rule[key])) == len(rule[key])
            assert all(isinstance(v, str) for v in rule[key])


@pytest.mark.parametrize("name", list(ACCESS_POLICIES.values()))
def test_loads_as_a_kubernetes_cluster_role(name: str) -> None:
    role = ApiClient().deserialize(json.dumps(roles()[name]), "V1ClusterRole", "application/json")
    assert role.metadata.name == name
    assert role.aggregation_rule is None
    assert len(role.rules) == len(roles()[name]["rules"])


def test_cluster_admin_is_everything() -> None:
    assert roles()["authbridge:cluster-admin"]["rules"] == [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ]


def test_view_reads_only_and_never_secrets() -> None:
    view = perms("authbridge:view")
    assert {verb for _, _, verb in view} == READ
    assert not [p for p in view if p[1] in ("secrets", "*") or p[0] == "*"]
    assert not [p for p in view if p[1] in ("pods/exec", "pods/attach", "serviceaccounts/token")]
    assert {("", "pods", "get"), ("apps", "deployments", "list"), ("", "pods/log", "get")} <= view


def test_admin_view_is_view_plus_reading_secrets() -> None:
    secrets = {("", "secrets", verb) for verb in READ}
    assert perms("authbridge:admin-view") == perms("authbridge:view") | secrets


def test_view_edit_admin_nest() -> None:
    view, edit, admin = (
        perms("authbridge:view"),
        perms("authbridge:edit"),
        perms("authbridge:admin"),
    )
    assert view < edit < admin
    assert admin - edit == {("authorization.k8s.io", "localsubjectaccessreviews", "create")} | {
        (RBAC, resource, verb)
        for resource in ("roles", "rolebindings")
        for verb in (*READ, "create", "update", "patch", "delete", "deletecollection")
    }
    # as Kubernetes' edit: secrets are read and written, pods exec'd, serviceaccounts impersonated
    assert {("", "secrets", "get"), ("", "secrets", "update"), ("", "pods/exec", "create")} <= edit
    assert ("", "serviceaccounts", "impersonate") in edit
    assert not [p for p in edit if p[0] == RBAC]


@pytest.mark.parametrize("name", ["authbridge:admin", "authbridge:edit", "authbridge:view"])
def test_no_cluster_scoped_power_below_cluster_admin(name: str) -> None:
    granted = perms(name)
    assert not [p for p in granted if "*" in p]
    assert not [p for p in granted if p[2] in ("escalate", "bind")]
    cluster_scoped = {"clusterroles", "clusterrolebindings", "nodes", "persistentvolumes"}
    assert not [p for p in granted if p[1] in cluster_scoped]
    assert not [p for p in granted if p[1] == "namespaces" and p[2] not in READ]
    assert "extensions" not in {p[0] for p in granted}  # not served since Kubernetes 1.22


# -- the reconciler's own RBAC -----------------------------------------------------------

EXPECTED_PERMISSIONS = (
    {("", "namespaces", "list")}
    | {
        (group, resource, verb)
        for group, resource in (
            ("", "serviceaccounts"),
            (RBAC, "clusterrolebindings"),
            (RBAC, "rolebindings"),
        )
        for verb in ("get", "list", "create", "update", "delete")
    }
    | {(RBAC, "clusterroles", "bind")}
)


def test_reconciler_objects() -> None:
    docs = documents(RECONCILER_RBAC_FILE)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "authbridge"),
        ("ClusterRole", RECONCILER_ROLE),
        ("ClusterRoleBinding", RECONCILER_ROLE),
    ]
    assert docs[0]["metadata"]["namespace"] == "authbridge"
    assert docs[2]["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": RECONCILER_ROLE}
    assert docs[2]["subjects"] == [
        {"kind": "ServiceAccount", "name": "authbridge", "namespace": "authbridge"}
    ]
    for doc in docs:
        # prune deletes only objects with this label: the reconciler's own access never has it
        assert MANAGED_BY_LABEL not in doc["metadata"].get("labels", {})
    client = ApiClient()
    for doc, model in zip(
        docs, ("V1ServiceAccount", "V1ClusterRole", "V1ClusterRoleBinding"), strict=True
    ):
        assert client.deserialize(json.dumps(doc), model, "application/json") is not None


def test_reconciler_permissions_are_exactly_these() -> None:
    assert reconciler_permissions() == EXPECTED_PERMISSIONS
    text = RECONCILER_RBAC_FILE.read_text(encoding="utf-8")
    assert parse_permissions(text) == EXPECTED_PERMISSIONS
    assert ("", "secrets", "get") not in reconciler_permissions()
    assert not [p for p in reconciler_permissions() if p[2] in ("watch", "patch", "escalate", "*")]


def test_bind_only_the_access_policies_and_the_built_ins() -> None:
    assert bindable_cluster_roles() == frozenset(ACCESS_POLICIES.values()) | set(BUILTIN_ROLES)


# What each planned action costs in API calls: (group, resource, verb) per call.
_RESOURCE = {
    "ClusterRoleBinding": (RBAC, "clusterrolebindings"),
    "RoleBinding": (RBAC, "rolebindings"),
    "ServiceAccount": ("", "serviceaccounts"),
}
_VERBS = {
    "create": ["create"],
    "update": ["get", "update"],
    "replace": ["delete", "create"],
    "delete": ["delete"],
}


def test_every_planned_action_needs_only_listed_permissions() -> None:
    m = parse_mapping(
        """\
bindings:
  - group: "authbridge:admins"
    clusterRole: cluster-admin
  - group: "authbridge:devs"
    clusterRole: authbridge:edit
    namespaces: ["dev", "team-*"]
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: view
""",
        "m",
    )
    namespaces = ["ci", "dev", "team-a"]
    desired = desired_objects(m, namespaces)
    stale = KubeObject(
        ObjectRef("ClusterRoleBinding", desired[0].ref.name),
        {**desired[0].manifest, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "x"}},
    )
    observed = [stale, *apply_to([], plan(desired[1:], [], prune=False))]
    (account,) = [o for o in observed if o.ref.kind == "ServiceAccount"]
    account.manifest["metadata"]["annotations"]["authbridge.dev/role-arn"] = "old"
    gone = copy.deepcopy(desired[1].manifest)
    gone["metadata"]["name"] = "gone"
    observed.append(KubeObject(ObjectRef("RoleBinding", "gone", "dev"), gone))
    actions = plan(desired, observed, prune=True)
    assert {a.op for a in actions} == {"replace", "update", "delete"}
    needed = {("", "namespaces", "list")}
    for kind in _RESOURCE:
        needed |= {(*_RESOURCE[kind], "list"), (*_RESOURCE[kind], "get")}
    for action in actions:
        needed |= {(*_RESOURCE[action.ref.kind], verb) for verb in _VERBS[action.op]}
    needed |= {(RBAC, "clusterroles", "bind")}  # the escalation check on binding a role
    assert needed <= reconciler_permissions()
    roles_bound = {o.manifest["roleRef"]["name"] for o in desired if "roleRef" in o.manifest}
    assert roles_bound <= bindable_cluster_roles()


def test_a_bind_rule_without_resource_names_binds_anything(tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(
        "kind: ClusterRole\nmetadata: {name: authbridge:reconciler}\nrules:\n"
        "  - {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], verbs: [bind]}\n",
        encoding="utf-8",
    )
    assert bindable_cluster_roles(path) == {"*"}
    assert reconciler_permissions(path) == {(RBAC, "clusterroles", "bind")}
    with pytest.raises(RbacError, match="no ClusterRole other in the given YAML"):
        parse_permissions(path.read_text(encoding="utf-8"), "other")


def test_the_example_mapping_binds_only_bindable_roles() -> None:
    example = load_mapping(REPO / "rbac" / "mapping.yaml")
    assert unbindable(example, bindable_cluster_roles()) == []


def test_unbindable_names_the_entries() -> None:
    m = parse_mapping(
        """\
bindings:
  - group: g
    clusterRole: view
  - group: g
    clusterRole: my-own-role
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/r
    namespace: ci
    name: sa
    clusterRole: other-role
  - rolearn: arn:aws:iam::111122223333:role/s
    namespace: ci
    name: plain
""",
        "m",
    )
    assert unbindable(m, bindable_cluster_roles()) == [
        "bindings[1].clusterRole: the reconciler may not bind my-own-role; add it to the"
        " resourceNames of the bind rule of ClusterRole authbridge:reconciler"
        " (rbac/authbridge-rbac.yaml)",
        "serviceAccounts[0].clusterRole: the reconciler may not bind other-role; add it to the"
        " resourceNames of the bind rule of ClusterRole authbridge:reconciler"
        " (rbac/authbridge-rbac.yaml)",
    ]
    assert unbindable(m, {"*"}) == []
