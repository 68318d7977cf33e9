"""The reconciler needs exactly what ``rbac/authbridge-rbac.yaml`` grants, and nothing more.

The fake API server here enforces the rules of ClusterRole
``authbridge:reconciler`` (as the RBAC authorizer would, including the
escalation check's ``bind`` on every ClusterRole a binding references) and
records every request's ``(apiGroup, resource, verb)``.

Covers: render makes no API call; plan, apply (create), an in-place update,
a replace (delete + create), a server dry run, prune and a watch run all
succeed under those rules, and everything they used is in
``reconciler_permissions()``; the adapter's declared ``VERBS`` are exactly the
request verbs used (so the list in ``authbridge/kube.py``'s docstring and the
YAML cannot drift apart); every ClusterRole bound is one the reconciler may
bind; and with a permission taken away the reconciler stops with a 403 that
names the missing verb and resource and points at the file.

And what the bindings it makes grant, through the fake's RBAC authorizer over
the built-in ClusterRoles as kube-controller-manager aggregates them (the unit
twins of the two end-to-end tests in tests/e2e/test_rbac_apiserver.py, same
mapping, same table): alice may exactly view in dev and edit in team-a; the
assumed Admin session is cluster-admin; the deployer ServiceAccount edits ci
only; the reconciler (its own rbac/authbridge-rbac.yaml, stored) binds but is
no admin; prune takes away exactly the removed entry's access. Without the
aggregation controller (a bare kube-apiserver) view and edit grant nothing, as
the first end-to-end run against one found.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from authbridge.kube import VERBS, KubeAdapter
from authbridge.mapping import MappingHolder
from authbridge.rbac.desired import desired_objects
from authbridge.rbac.policies import (
    RECONCILER_RBAC_FILE,
    RECONCILER_ROLE,
    bindable_cluster_roles,
    cluster_role_rules,
    reconciler_permissions,
)
from authbridge.rbac.reconcile import KubeForbidden, plan_cluster, reconcile, watch
from authbridge.rbac.render import render_yaml
from tests.e2e.test_rbac_apiserver import ALICE, FULL, RECONCILER, WITHOUT_TEAM_EDIT
from tests.fakekube import FakeKube
from tests.test_kube_reconcile import (
    ADMINS,
    CRB_ADMINS,
    DEVS,
    HEAD,
    MAPPING,
    NAMESPACES,
    RB_DEVS,
    mapping,
)

RBAC_GROUP = "rbac.authorization.k8s.io"
RULES = cluster_role_rules(RECONCILER_RBAC_FILE.read_text(encoding="utf-8"), RECONCILER_ROLE)


def start(tmp_path: Path, rules: list[dict[str, Any]]) -> tuple[FakeKube, KubeAdapter]:
    fake = FakeKube(namespaces=NAMESPACES, rules=rules).start()
    return fake, KubeAdapter.from_kubeconfig(fake.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKube, KubeAdapter]]:
    fake, adapter = start(tmp_path, RULES)
    try:
        yield fake, adapter
    finally:
        adapter.close()
        fake.stop()


def test_the_adapter_declares_only_permitted_verbs() -> None:
    assert VERBS <= reconciler_permissions()


def test_every_call_of_every_command_is_permitted(
    cluster: tuple[FakeKube, KubeAdapter], tmp_path: Path
) -> None:
    fake, adapter = cluster
    # render: no cluster at all.
    assert render_yaml(desired_objects(mapping(), None))
    assert fake.requests == []

    plan_cluster(adapter, mapping(), prune=True)  # plan
    reconcile(adapter, mapping(), dry_run=True)  # apply --dry-run=server
    reconcile(adapter, mapping())  # apply: creates
    # An in-place update and a replace.
    edited = fake.get("RoleBinding", RB_DEVS, "dev")
    assert edited is not None
    edited["subjects"].append(
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "x"}
    )
    fake.put(edited)
    wrong = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert wrong is not None
    fake.remove("ClusterRoleBinding", CRB_ADMINS)
    wrong["roleRef"]["name"] = "view"
    fake.put(wrong)
    account = fake.get("ServiceAccount", "deployer", "ci")
    assert account is not None
    account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = "arn:changed"
    fake.put(account)
    done = reconcile(adapter, mapping())
    assert sorted(a.op for a in done.done) == ["replace", "update", "update"]
    edited = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert edited is not None
    edited["subjects"].append(
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "x"}
    )
    fake.put(edited)
    assert [a.op for a in reconcile(adapter, mapping()).done] == ["update"]
    # prune (the serviceAccounts entry goes: a ServiceAccount and a RoleBinding deleted).
    smaller = HEAD + "bindings:\n" + ADMINS + DEVS
    assert len(reconcile(adapter, mapping(smaller), prune=True).done) == 2
    # watch: one round, then stop.
    file = tmp_path / "mapping.yaml"
    file.write_text(MAPPING)
    stop = threading.Event()
    watch(adapter, MappingHolder(file), stop=stop, prune=True, sleep=lambda _: stop.set())
    assert fake.get("ServiceAccount", "deployer", "ci") is not None

    assert not [r for r in fake.requests if r.status == 403]
    used = fake.used()
    assert used <= reconciler_permissions(), used - reconciler_permissions()
    requested = {a for r in fake.requests if (a := r.attributes) is not None}
    assert requested == set(VERBS)  # all of them exercised, and nothing else
    bound = {name for _, _, _, name in fake.checks}
    assert bound == {"cluster-admin", "edit"}
    assert bound <= bindable_cluster_roles()


@pytest.mark.parametrize(
    ("resource", "verb", "says"),
    [
        ("rolebindings", "delete", "lacks permission to delete rolebindings"),
        ("namespaces", "list", "lacks permission to list namespaces (API group core)"),
        ("serviceaccounts", "get", "lacks permission to get serviceaccounts"),
    ],
)
def test_a_missing_permission_is_named_with_the_fix(
    tmp_path: Path, resource: str, verb: str, says: str
) -> None:
    fewer = []
    for rule in RULES:
        rule = dict(rule)
        if resource in rule.get("resources", ()):
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        fewer.append(rule)
    fake, adapter = start(tmp_path, fewer)
    try:
        if verb == "delete":
            reconcile(adapter, mapping())
            smaller = HEAD + "bindings:\n" + ADMINS
            run = lambda: reconcile(adapter, mapping(smaller), prune=True)  # noqa: E731
        else:
            run = lambda: reconcile(adapter, mapping())  # noqa: E731
        with pytest.raises(KubeForbidden) as info:
            run()
        line = str(info.value)
        assert says in line
        assert "rbac/authbridge-rbac.yaml" in line and "run as a user who may" in line
        assert f'cannot {verb} resource "{resource}"' in line  # the server's own words
    finally:
        adapter.close()
        fake.stop()


# -- what the bindings grant (the unit twins of tests/e2e/test_rbac_apiserver.py) -----------------

ALICE_GROUPS = ["authbridge:devs", "system:authenticated"]
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:authbridge", "system:authenticated"]


@pytest.fixture
def applied(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FakeKube, KubeAdapter]]:
    """A cluster with the reconciler's own RBAC stored, and the e2e mapping applied as it."""
    aggregation = getattr(request, "param", True)
    fake = FakeKube(
        namespaces=[*NAMESPACES, "authbridge"], rules=RULES, aggregation=aggregation
    ).start()
    for doc in yaml.safe_load_all(RECONCILER_RBAC_FILE.read_text(encoding="utf-8")):
        if doc:
            fake.put(doc)  # as the cluster admin applies it
    adapter = KubeAdapter.from_kubeconfig(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        result = reconcile(adapter, mapping(FULL), prune=True)
        assert len(result.done) == 5
        assert plan_cluster(adapter, mapping(FULL), prune=True).actions == ()
        yield fake, adapter
    finally:
        adapter.close()
        fake.stop()


def test_apply_as_the_reconciler_grants_exactly_what_the_mapping_says(
    applied: tuple[FakeKube, KubeAdapter],
) -> None:
    fake, _ = applied
    for attributes, allowed in ALICE:
        assert fake.allowed("alice", ALICE_GROUPS, **attributes) == allowed, attributes
    admin = ("admin:e2e-rbac", ["authbridge:admins", "system:authenticated"])
    assert fake.allowed(*admin, verb="delete", resource="namespaces")
    assert fake.allowed(*admin, namespace="kube-system", verb="get", resource="secrets")
    deployer = ("system:serviceaccount:ci:deployer", ["system:serviceaccounts"])
    assert fake.allowed(*deployer, namespace="ci", verb="create", resource="pods")
    assert not fake.allowed(*deployer, namespace="dev", verb="get", resource="pods")
    # The reconciler binds, but is no admin itself.
    assert not fake.allowed(RECONCILER, SA_GROUPS, namespace="dev", verb="get", resource="secrets")
    assert not fake.allowed(RECONCILER, SA_GROUPS, verb="delete", resource="namespaces")
    assert fake.allowed(
        RECONCILER, SA_GROUPS, verb="list", group=RBAC_GROUP, resource="rolebindings"
    )


def test_prune_removes_exactly_the_removed_entry(applied: tuple[FakeKube, KubeAdapter]) -> None:
    fake, adapter = applied
    deploy = {"namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments"}
    assert fake.allowed("alice", ALICE_GROUPS, **deploy)
    kept = plan_cluster(adapter, mapping(WITHOUT_TEAM_EDIT), prune=False)
    assert kept.actions == () and len(kept.orphans) == 1
    pruned = reconcile(adapter, mapping(WITHOUT_TEAM_EDIT), prune=True)
    assert [(a.op, str(a.ref)) for a in pruned.done] == [
        ("delete", "RoleBinding team-a/authbridge-edit-authbridge-devs-2411f851")
    ]
    assert not fake.allowed("alice", ALICE_GROUPS, **deploy)
    assert fake.allowed("alice", ALICE_GROUPS, namespace="dev", verb="get", resource="pods")
    assert fake.get("ClusterRoleBinding", RECONCILER_ROLE) is not None  # unlabelled: kept


@pytest.mark.parametrize("applied", [False], indirect=True)
def test_without_the_aggregation_controller_view_and_edit_grant_nothing(
    applied: tuple[FakeKube, KubeAdapter],
) -> None:
    """The first end-to-end run (a bare kube-apiserver): the bindings exist, the roles are empty."""
    fake, _ = applied
    bound = {
        (o["metadata"]["namespace"], o["roleRef"]["name"]) for o in fake.objects("RoleBinding")
    }
    assert {("dev", "view"), ("team-a", "edit")} <= bound
    assert not fake.allowed("alice", ALICE_GROUPS, namespace="dev", verb="get", resource="pods")
    assert not fake.allowed(
        "alice",
        ALICE_GROUPS,
        namespace="team-a",
        verb="create",
        group="apps",
        resource="deployments",
    )
    admin = ("admin:e2e-rbac", ["authbridge:admins"])
    assert fake.allowed(
        *admin, verb="delete", resource="namespaces"
    )  # cluster-admin is no aggregate
