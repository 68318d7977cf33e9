"""Tests for authbridge.rbac.plan: plan(desired, observed, prune) → actions, and apply_to.

Covers, as one table of (desired, observed, prune) → exact actions (op, ref, changes):
* no-op when only unmanaged fields differ (server fields, others' labels and
  annotations, subject order, defaulted subject apiGroups);
* create (ServiceAccounts first), update of subjects / source / role ARN
  annotations, replace when roleRef changes (immutable), delete of managed
  orphans only with prune (deletes last, ServiceAccounts after bindings),
  unmanaged objects never touched;
and for every row: applying the actions and planning again gives [].
Also: unmanaged same-name objects are a PlanConflict naming every one; orphans();
update actions keep what others wrote and carry the resourceVersion; apply_to
refuses what the server would; end to end from a mapping: apply, second plan
empty, removing an entry prunes exactly its objects.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from authbridge.errors import AuthbridgeError
from authbridge.mapping import parse_mapping
from authbridge.rbac import (
    MANAGED_BY_LABEL,
    SOURCE_ANNOTATION,
    Action,
    KubeObject,
    ObjectRef,
    PlanConflict,
    RbacError,
    apply_to,
    desired_objects,
    orphans,
    plan,
)

RBAC = "rbac.authorization.k8s.io"
ARN = "arn:aws:iam::111122223333:role/ci-deployer"
ARN2 = "arn:aws:iam::111122223333:role/ci-deployer-v2"


def meta(name: str, ns: str | None, source: str | None, *, managed: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if ns:
        out["namespace"] = ns
    if managed:
        out["labels"] = {MANAGED_BY_LABEL: "authbridge"}
    if source:
        out["annotations"] = {SOURCE_ANNOTATION: source}
    return out


def grp(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def usr(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def crb(
    name: str,
    role: str,
    *subjects: dict[str, str],
    source: str | None = "bindings[0]",
    managed: bool = True,
) -> KubeObject:
    return KubeObject(
        ObjectRef("ClusterRoleBinding", name),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(name, None, source, managed=managed),
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": list(subjects),
        },
    )


def rb(
    ns: str,
    name: str,
    role: str,
    *subjects: dict[str, str],
    source: str | None = "bindings[1]",
    managed: bool = True,
) -> KubeObject:
    return KubeObject(
        ObjectRef("RoleBinding", name, ns),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": meta(name, ns, source, managed=managed),
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": list(subjects),
        },
    )


def sa(
    ns: str, name: str, arn: str = ARN, *, source: str = "serviceAccounts[0]", managed: bool = True
) -> KubeObject:
    metadata = meta(name, ns, source, managed=managed)
    metadata["annotations"].update(
        {"authbridge.dev/role-arn": arn, "eks.amazonaws.com/role-arn": arn}
    )
    return KubeObject(
        ObjectRef("ServiceAccount", name, ns),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
    )


def as_observed(obj: KubeObject, version: str = "42") -> KubeObject:
    """``obj`` as the API server returns it: server fields, others' labels and annotations."""
    manifest = copy.deepcopy(obj.manifest)
    m = manifest["metadata"]
    m.update(uid="0b6e-…", resourceVersion=version, creationTimestamp="2024-05-01T00:00:00Z")
    m.setdefault("labels", {})["team"] = "platform"
    m.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    if obj.ref.kind == "ServiceAccount":
        manifest["secrets"] = [{"name": "deployer-token"}]
    else:
        subjects = list(reversed(manifest["subjects"]))
        for s in subjects:
            if s["kind"] == "Group":
                s.pop("apiGroup")  # the server defaults it; same subject
        manifest["subjects"] = subjects
    return KubeObject(obj.ref, manifest, resource_version=version)


def with_annotation(obj: KubeObject, key: str, value: str) -> KubeObject:
    obj.manifest["metadata"]["annotations"][key] = value
    return obj


DEVS = grp("authbridge:devs")
ADMINS = grp("authbridge:admins")
BOB = usr("bob")
DEPLOYER = {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}

A_CRB = crb("authbridge-cluster-admin-admins-00000001", "cluster-admin", ADMINS)
E_CRB = crb("authbridge-edit-devs-00000002", "edit", DEVS, BOB, source="bindings[1]")
D_RB = rb("dev", "authbridge-edit-devs-00000003", "edit", DEVS)
S_SA = sa("ci", "deployer")
S_RB = rb(
    "ci", "authbridge-edit-ci-deployer-00000004", "edit", DEPLOYER, source="serviceAccounts[0]"
)
ALL = [A_CRB, E_CRB, D_RB, S_SA, S_RB]

ExpectedAction = tuple[str, ObjectRef, tuple[str, ...]]

ROWS: list[tuple[str, list[KubeObject], list[KubeObject], bool, list[ExpectedAction]]] = [
    ("nothing", [], [], True, []),
    (
        "no-op: only unmanaged fields differ",
        ALL,
        [as_observed(o) for o in ALL],
        True,
        [],
    ),
    (
        "create everything: ServiceAccounts first, then bindings by kind, namespace, name",
        ALL,
        [],
        False,
        [
            (
                "create",
                S_SA.ref,
                (
                    "annotations: +authbridge.dev/source: serviceAccounts[0],"
                    f" +authbridge.dev/role-arn: {ARN}, +eks.amazonaws.com/role-arn: {ARN}",
                ),
            ),
            (
                "create",
                A_CRB.ref,
                (
                    "annotations: +authbridge.dev/source: bindings[0]",
                    "roleRef: ClusterRole cluster-admin",
                    "subjects: +Group authbridge:admins",
                ),
            ),
            (
                "create",
                E_CRB.ref,
                (
                    "annotations: +authbridge.dev/source: bindings[1]",
                    "roleRef: ClusterRole edit",
                    "subjects: +Group authbridge:devs, +User bob",
                ),
            ),
            (
                "create",
                S_RB.ref,
                (
                    "annotations: +authbridge.dev/source: serviceAccounts[0]",
                    "roleRef: ClusterRole edit",
                    "subjects: +ServiceAccount ci/deployer",
                ),
            ),
            (
                "create",
                D_RB.ref,
                (
                    "annotations: +authbridge.dev/source: bindings[1]",
                    "roleRef: ClusterRole edit",
                    "subjects: +Group authbridge:devs",
                ),
            ),
        ],
    ),
    (
        "update subjects",
        [crb("e", "edit", DEVS, usr("carol"))],
        [as_observed(crb("e", "edit", BOB, DEVS))],
        True,
        [("update", ObjectRef("ClusterRoleBinding", "e"), ("subjects: +User carol, -User bob",))],
    ),
    (
        "update the source annotation when entries move",
        [crb("a", "cluster-admin", ADMINS, source="bindings[3]")],
        [as_observed(crb("a", "cluster-admin", ADMINS, source="bindings[0]"))],
        False,
        [
            (
                "update",
                ObjectRef("ClusterRoleBinding", "a"),
                ("annotations: authbridge.dev/source: bindings[0] -> bindings[3]",),
            )
        ],
    ),
    (
        "update a ServiceAccount's role ARN",
        [sa("ci", "deployer", ARN2)],
        [as_observed(sa("ci", "deployer", ARN))],
        True,
        [
            (
                "update",
                ObjectRef("ServiceAccount", "deployer", "ci"),
                (
                    f"annotations: authbridge.dev/role-arn: {ARN} -> {ARN2},"
                    f" eks.amazonaws.com/role-arn: {ARN} -> {ARN2}",
                ),
            )
        ],
    ),
    (
        "update removes a managed annotation the object should not have",
        [crb("e", "edit", DEVS)],
        [as_observed(with_annotation(crb("e", "edit", DEVS), "authbridge.dev/role-arn", ARN))],
        True,
        [
            (
                "update",
                ObjectRef("ClusterRoleBinding", "e"),
                ("annotations: -authbridge.dev/role-arn",),
            )
        ],
    ),
    (
        "replace when roleRef changes (immutable), with the other changes listed",
        [rb("dev", "d", "view", DEVS, BOB)],
        [as_observed(rb("dev", "d", "edit", DEVS))],
        True,
        [
            (
                "replace",
                ObjectRef("RoleBinding", "d", "dev"),
                ("roleRef: ClusterRole edit -> ClusterRole view", "subjects: +User bob"),
            )
        ],
    ),
    (
        "prune deletes managed orphans only, bindings before ServiceAccounts, last",
        [A_CRB],
        [
            as_observed(o)
            for o in [
                S_SA,
                A_CRB,
                crb("hand-made", "cluster-admin", BOB, source=None, managed=False),
                E_CRB,
                sa("ci", "builder", managed=False),
                S_RB,
                rb("dev", "theirs", "edit", DEVS, managed=False),
            ]
        ],
        True,
        [
            ("delete", E_CRB.ref, ("not in the mapping (was bindings[1])",)),
            ("delete", S_RB.ref, ("not in the mapping (was serviceAccounts[0])",)),
            ("delete", S_SA.ref, ("not in the mapping (was serviceAccounts[0])",)),
        ],
    ),
    (
        "without prune nothing is deleted",
        [A_CRB],
        [as_observed(o) for o in ALL],
        False,
        [],
    ),
    (
        "mixed: new access before old access goes",
        [S_SA, crb("v", "view", DEVS), E_CRB],
        [as_observed(o) for o in [A_CRB, crb("v", "edit", DEVS), E_CRB, S_RB]],
        True,
        [
            (
                "create",
                S_SA.ref,
                (
                    "annotations: +authbridge.dev/source: serviceAccounts[0],"
                    f" +authbridge.dev/role-arn: {ARN}, +eks.amazonaws.com/role-arn: {ARN}",
                ),
            ),
            (
                "replace",
                ObjectRef("ClusterRoleBinding", "v"),
                ("roleRef: ClusterRole edit -> ClusterRole view",),
            ),
            ("delete", A_CRB.ref, ("not in the mapping (was bindings[0])",)),
            ("delete", S_RB.ref, ("not in the mapping (was serviceAccounts[0])",)),
        ],
    ),
]


def summary(actions: list[Action]) -> list[ExpectedAction]:
    return [(a.op, a.ref, a.changes) for a in actions]


@pytest.mark.parametrize(
    ("desired", "observed", "prune", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan_table(
    desired: list[KubeObject],
    observed: list[KubeObject],
    prune: bool,
    expected: list[ExpectedAction],
) -> None:
    assert summary(plan(desired, observed, prune=prune)) == expected


@pytest.mark.parametrize(
    ("desired", "observed", "prune"), [r[1:4] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_second_plan_after_apply_is_empty(
    desired: list[KubeObject], observed: list[KubeObject], prune: bool
) -> None:
    after = apply_to(observed, plan(desired, observed, prune=prune))
    assert plan(desired, after, prune=prune) == []
    # what is left over without prune is exactly what prune would delete
    pruning = plan(desired, after, prune=True)
    assert [(a.op, a.ref) for a in pruning] == [("delete", o.ref) for o in orphans(desired, after)]


def test_plan_is_pure() -> None:
    desired = [E_CRB, S_SA]
    observed = [
        as_observed(crb(E_CRB.ref.name, "edit", BOB)),
        as_observed(sa("ci", "deployer", ARN2)),
    ]
    before = copy.deepcopy([(o.ref, o.manifest) for o in [*desired, *observed]])
    first = plan(desired, observed, prune=True)
    apply_to(observed, first)
    assert [(o.ref, o.manifest) for o in [*desired, *observed]] == before
    assert summary(plan(desired, observed, prune=True)) == summary(first)


def test_update_keeps_what_others_wrote_and_carries_the_resource_version() -> None:
    observed = as_observed(crb("e", "edit", BOB), version="7")
    (action,) = plan([crb("e", "edit", DEVS, source="bindings[2]")], [observed], prune=False)
    assert action.op == "update"
    assert action.observed is observed
    assert action.desired is not None
    assert action.desired.resource_version == "7"
    m = action.desired.manifest
    assert m["metadata"]["labels"] == {MANAGED_BY_LABEL: "authbridge", "team": "platform"}
    assert m["metadata"]["annotations"] == {
        SOURCE_ANNOTATION: "bindings[2]",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    assert m["metadata"]["uid"] == "0b6e-…"
    assert m["subjects"] == [DEVS]
    assert observed.manifest["subjects"] == [{"kind": "User", "apiGroup": RBAC, "name": "bob"}]


def test_update_of_a_service_account_keeps_its_secrets() -> None:
    (action,) = plan([sa("ci", "deployer", ARN2)], [as_observed(sa("ci", "deployer"))], prune=True)
    assert action.desired is not None
    assert action.desired.manifest["secrets"] == [{"name": "deployer-token"}]


def test_replace_carries_both_objects() -> None:
    observed = as_observed(crb("v", "edit", DEVS))
    want = crb("v", "view", DEVS)
    (action,) = plan([want], [observed], prune=False)
    assert (action.op, action.desired, action.observed) == ("replace", want, observed)


def test_unmanaged_objects_with_a_desired_name_are_a_conflict_listing_every_one() -> None:
    observed = [
        as_observed(crb(A_CRB.ref.name, "cluster-admin", ADMINS, managed=False)),
        as_observed(sa("ci", "deployer", managed=False)),
        as_observed(E_CRB),  # managed: fine
    ]
    with pytest.raises(PlanConflict) as caught:
        plan(ALL, observed, prune=True)
    err = caught.value
    assert isinstance(err, AuthbridgeError)
    assert err.refs == [A_CRB.ref, S_SA.ref]
    assert str(err) == (
        f"ClusterRoleBinding {A_CRB.ref.name}, ServiceAccount ci/deployer exist but are not"
        " managed by authbridge (no label app.kubernetes.io/managed-by=authbridge); delete"
        " them, label them app.kubernetes.io/managed-by=authbridge to hand them over to"
        " authbridge, or choose another name in the mapping"
    )


def test_a_label_with_another_value_is_not_ours() -> None:
    other = crb("e", "edit", DEVS, managed=False)
    other.manifest["metadata"]["labels"] = {MANAGED_BY_LABEL: "helm"}
    with pytest.raises(PlanConflict, match="ClusterRoleBinding e exists but is not managed"):
        plan([crb("e", "edit", DEVS)], [other], prune=True)
    assert orphans([], [other]) == []


def test_orphans_are_what_prune_would_delete() -> None:
    observed = [as_observed(o) for o in ALL] + [crb("x", "view", BOB, managed=False)]
    assert [o.ref for o in orphans([A_CRB], observed)] == [E_CRB.ref, S_RB.ref, D_RB.ref, S_SA.ref]
    deletes = [a.ref for a in plan([A_CRB], observed, prune=True)]
    assert sorted(deletes) == sorted(o.ref for o in orphans([A_CRB], observed))


def test_duplicate_desired_refs_are_refused() -> None:
    with pytest.raises(RbacError, match="desired objects name ClusterRoleBinding a twice"):
        plan([crb("a", "view", DEVS), crb("a", "edit", DEVS)], [], prune=False)


@pytest.mark.parametrize(
    ("observed", "action", "message"),
    [
        ([A_CRB], Action("create", A_CRB.ref, desired=A_CRB), "cannot create .* already exists"),
        ([], Action("update", A_CRB.ref, desired=A_CRB), "cannot update .* does not exist"),
        ([], Action("replace", A_CRB.ref, desired=A_CRB), "cannot replace .* does not exist"),
        ([], Action("delete", A_CRB.ref, observed=A_CRB), "cannot delete .* does not exist"),
        ([], Action("create", A_CRB.ref), "has no desired object"),
    ],
)
def test_apply_to_refuses_what_the_server_would(
    observed: list[KubeObject], action: Action, message: str
) -> None:
    with pytest.raises(RbacError, match=message):
        apply_to(observed, [action])


def test_apply_to_keeps_order_and_appends_creates() -> None:
    observed = [as_observed(A_CRB), as_observed(crb("v", "edit", DEVS)), as_observed(E_CRB)]
    desired = [crb("v", "view", DEVS), E_CRB, S_SA]
    after = apply_to(observed, plan(desired, observed, prune=True))
    assert [o.ref for o in after] == [ObjectRef("ClusterRoleBinding", "v"), E_CRB.ref, S_SA.ref]
    assert after[0].manifest["roleRef"]["name"] == "view"


# -- end to end from a mapping ---------------------------------------------------------------

MAPPING = """\
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{SessionName}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: arn:aws:iam::111122223333:group/oncall
    groups: ["authbridge:oncall"]
bindings:
  - group: "authbridge:admins"
    clusterRole: cluster-admin
  - user: alice
    clusterRole: authbridge:view
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["dev", "team-*"]
  - group: "authbridge:oncall"
    clusterRole: authbridge:admin-view
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: edit
"""
NAMESPACES = ["ci", "dev", "team-a", "team-b", "kube-system"]


def test_end_to_end_apply_then_second_plan_empty_then_prune_one_entry() -> None:
    cluster = [
        crb("cluster-admin", "cluster-admin", grp("system:masters"), source=None, managed=False),
        rb("dev", "hand-made", "view", BOB, source=None, managed=False),
    ]
    desired = desired_objects(parse_mapping(MAPPING, "m"), NAMESPACES)
    first = plan(desired, cluster, prune=True)
    assert [(a.op, a.ref.kind, a.ref.namespace) for a in first] == [
        ("create", "ServiceAccount", "ci"),
        ("create", "ClusterRoleBinding", None),
        ("create", "ClusterRoleBinding", None),
        ("create", "ClusterRoleBinding", None),
        ("create", "RoleBinding", "ci"),
        ("create", "RoleBinding", "dev"),
        ("create", "RoleBinding", "team-a"),
        ("create", "RoleBinding", "team-b"),
    ]
    cluster = apply_to(cluster, first)
    assert plan(desired, cluster, prune=True) == []

    # remove bindings[2] (devs, edit in dev and team-*): exactly its three RoleBindings go
    smaller = MAPPING.replace(
        '  - group: "authbridge:devs"\n    clusterRole: edit\n    namespaces: ["dev", "team-*"]\n',
        "",
    )
    assert smaller != MAPPING
    desired2 = desired_objects(parse_mapping(smaller, "m"), NAMESPACES)
    second = plan(desired2, cluster, prune=True)
    deletes = [a for a in second if a.op == "delete"]
    assert {a.ref.namespace for a in deletes} == {"dev", "team-a", "team-b"}
    assert all(a.changes == ("not in the mapping (was bindings[2])",) for a in deletes)
    # the oncall binding moved from bindings[3] to bindings[2]: only its annotation changes
    assert [(a.op, a.changes) for a in second if a.op != "delete"] == [
        ("update", ("annotations: authbridge.dev/source: bindings[3] -> bindings[2]",))
    ]
    cluster = apply_to(cluster, second)
    assert plan(desired2, cluster, prune=True) == []
    names = {o.ref.name for o in cluster}
    assert {"cluster-admin", "hand-made"} <= names  # never an object without the label

    # without --prune the RoleBindings stay, reported as orphans
    kept = apply_to(cluster, plan([], cluster, prune=False))
    assert len(kept) == len(cluster)
    assert {o.ref for o in orphans([], kept)} == {o.ref for o in cluster if o.managed}
