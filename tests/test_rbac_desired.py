"""Tests for authbridge.rbac.desired and authbridge.rbac.names: the mapping → RBAC objects.

Covers:
* the exact objects for a mapping with roles, users, groups, cluster-wide and
  namespaced bindings (exact names, ``*`` patterns, overlapping entries merged
  with both sources), and ServiceAccounts (own namespace, ``namespaces``
  patterns, no clusterRole), in the documented order;
* warnings for missing namespaces and patterns that match nothing; the
  offline mode (``namespaces=None``);
* names: the golden names (a contract with objects already in clusters),
  DNS-1123 validity, the hash suffix telling apart inputs that sanitize alike,
  truncation to 253 characters, stability (same input → same output, entry
  order does not change names);
* ``desired_objects`` is ``desired_state(...).objects``; the example
  ``rbac/mapping.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from authbridge.mapping import Mapping, load_mapping, parse_mapping
from authbridge.rbac import (
    EKS_ROLE_ARN_ANNOTATION,
    MANAGED_BY_LABEL,
    ROLE_ARN_ANNOTATION,
    SOURCE_ANNOTATION,
    KubeObject,
    ObjectRef,
    binding_name,
    desired_objects,
    desired_state,
)
from authbridge.rbac.desired import matches
from authbridge.rbac.model import Kind
from authbridge.rbac.names import sanitize

REPO = Path(__file__).resolve().parent.parent
RBAC = "rbac.authorization.k8s.io"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
NAMESPACES = ["ci", "default", "dev", "kube-system", "team-a", "team-b"]

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
    namespaces: ["dev", "team-*", "staging"]
  - group: "authbridge:oncall"
    clusterRole: authbridge:admin-view
    namespaces: ["prod-*"]
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["d*"]
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: edit
  - rolearn: arn:aws:iam::111122223333:role/reader
    namespace: dev
    name: reader
    clusterRole: view
    namespaces: ["team-*"]
  - rolearn: arn:aws:iam::111122223333:role/plain
    namespace: ci
    name: plain
  - rolearn: arn:aws:iam::111122223333:role/later
    namespace: staging
    name: later
    clusterRole: edit
"""

ADMINS_CRB = "authbridge-cluster-admin-authbridge-admins-fd8fe283"
ALICE_CRB = "authbridge-authbridge-view-alice-35186768"
DEVS_RB = "authbridge-edit-authbridge-devs-2411f851"
DEPLOYER_RB = "authbridge-edit-ci-deployer-21b6f183"
READER_RB = "authbridge-view-dev-reader-b1cc23da"


def meta(name: str, source: str, namespace: str | None = None, **extra: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if namespace:
        out["namespace"] = namespace
    out["labels"] = {MANAGED_BY_LABEL: "authbridge"}
    out["annotations"] = {SOURCE_ANNOTATION: source, **extra}
    return out


def binding(
    kind: Kind, name: str, role: str, subject: dict[str, str], source: str, ns: str | None = None
) -> tuple[ObjectRef, dict[str, Any]]:
    manifest = {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": meta(name, source, ns),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
    return ObjectRef(kind, name, ns), manifest


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def service_account(ns: str, name: str, arn: str, source: str) -> tuple[ObjectRef, dict[str, Any]]:
    metadata = meta(name, source, ns)
    metadata["annotations"].update({ROLE_ARN_ANNOTATION: arn, EKS_ROLE_ARN_ANNOTATION: arn})
    manifest = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    return ObjectRef("ServiceAccount", name, ns), manifest


def sa_subject(ns: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


EXPECTED = [
    binding(
        "ClusterRoleBinding", ADMINS_CRB, "cluster-admin", group("authbridge:admins"), "bindings[0]"
    ),
    binding(
        "ClusterRoleBinding",
        ALICE_CRB,
        "authbridge:view",
        {"kind": "User", "apiGroup": RBAC, "name": "alice"},
        "bindings[1]",
    ),
    # dev is named by bindings[2] and matched by bindings[4]'s "d*": one object, both sources
    binding(
        "RoleBinding", DEVS_RB, "edit", group("authbridge:devs"), "bindings[2], bindings[4]", "dev"
    ),
    binding("RoleBinding", DEVS_RB, "edit", group("authbridge:devs"), "bindings[2]", "team-a"),
    binding("RoleBinding", DEVS_RB, "edit", group("authbridge:devs"), "bindings[2]", "team-b"),
    binding("RoleBinding", DEVS_RB, "edit", group("authbridge:devs"), "bindings[4]", "default"),
    service_account(
        "ci", "deployer", "arn:aws:iam::111122223333:role/ci-deployer", "serviceAccounts[0]"
    ),
    binding(
        "RoleBinding", DEPLOYER_RB, "edit", sa_subject("ci", "deployer"), "serviceAccounts[0]", "ci"
    ),
    service_account("dev", "reader", "arn:aws:iam::111122223333:role/reader", "serviceAccounts[1]"),
    binding(
        "RoleBinding",
        READER_RB,
        "view",
        sa_subject("dev", "reader"),
        "serviceAccounts[1]",
        "team-a",
    ),
    binding(
        "RoleBinding",
        READER_RB,
        "view",
        sa_subject("dev", "reader"),
        "serviceAccounts[1]",
        "team-b",
    ),
    service_account("ci", "plain", "arn:aws:iam::111122223333:role/plain", "serviceAccounts[2]"),
]

EXPECTED_WARNINGS = [
    "bindings[2].namespaces[2]: namespace staging does not exist; the RoleBinding to edit is"
    " made once it does",
    "bindings[3].namespaces[0]: the pattern prod-* matches no namespace",
    "serviceAccounts[3].namespace: namespace staging does not exist; ServiceAccount"
    " staging/later with its RoleBinding to edit is made once it does",
]


def mapping(text: str = MAPPING) -> Mapping:
    return parse_mapping(text, "mapping.yaml")


def as_pairs(objects: list[KubeObject] | tuple[KubeObject, ...]) -> list[tuple[ObjectRef, Any]]:
    return [(o.ref, o.manifest) for o in objects]


def test_exact_objects_and_warnings() -> None:
    state = desired_state(mapping(), NAMESPACES)
    assert as_pairs(state.objects) == EXPECTED
    assert list(state.warnings) == EXPECTED_WARNINGS


def test_desired_objects_is_the_state_objects() -> None:
    assert desired_objects(mapping(), NAMESPACES) == list(
        desired_state(mapping(), NAMESPACES).objects
    )


def test_same_input_same_output_whatever_the_namespace_order() -> None:
    first = as_pairs(desired_objects(mapping(), NAMESPACES))
    again = as_pairs(desired_objects(mapping(), list(reversed(NAMESPACES)) + ["dev"]))
    assert first == again


def test_entry_order_changes_sources_not_names() -> None:
    swapped = MAPPING.replace(
        '  - group: "authbridge:admins"\n    clusterRole: cluster-admin\n'
        "  - user: alice\n    clusterRole: authbridge:view\n",
        "  - user: alice\n    clusterRole: authbridge:view\n"
        '  - group: "authbridge:admins"\n    clusterRole: cluster-admin\n',
    )
    assert swapped != MAPPING
    before = {o.ref for o in desired_objects(mapping(), NAMESPACES)}
    after = desired_objects(mapping(swapped), NAMESPACES)
    assert {o.ref for o in after} == before
    sources = {o.ref.name: o.manifest["metadata"]["annotations"][SOURCE_ANNOTATION] for o in after}
    assert sources[ADMINS_CRB] == "bindings[1]"
    assert sources[ALICE_CRB] == "bindings[0]"


def test_unknown_namespaces_keep_exact_names_and_skip_patterns() -> None:
    state = desired_state(mapping(), None)
    refs = [o.ref for o in state.objects]
    assert ObjectRef("RoleBinding", DEVS_RB, "staging") in refs  # exact names are taken
    assert ObjectRef("ServiceAccount", "later", "staging") in refs
    assert not [r for r in refs if r.namespace and r.namespace.startswith("team-")]
    assert [w for w in state.warnings if "pattern" in w] == [
        "bindings[2].namespaces[1]: the pattern team-* needs the cluster's namespaces to"
        " resolve; it is left out",
        "bindings[3].namespaces[0]: the pattern prod-* needs the cluster's namespaces to"
        " resolve; it is left out",
        "bindings[4].namespaces[0]: the pattern d* needs the cluster's namespaces to resolve;"
        " it is left out",
        "serviceAccounts[1].namespaces[0]: the pattern team-* needs the cluster's namespaces"
        " to resolve; it is left out",
    ]


def test_empty_mapping_wants_nothing() -> None:
    assert desired_state(parse_mapping("{}", "m"), NAMESPACES).objects == ()


def test_example_mapping() -> None:
    m = load_mapping(REPO / "rbac" / "mapping.yaml")
    refs = [o.ref for o in desired_objects(m, ["dev", "team-x", "other"])]
    assert refs == [
        ObjectRef("ClusterRoleBinding", ADMINS_CRB),
        ObjectRef("RoleBinding", DEVS_RB, "dev"),
        ObjectRef("RoleBinding", DEVS_RB, "team-x"),
    ]


@pytest.mark.parametrize(
    ("pattern", "namespace", "expected"),
    [
        ("dev", "dev", True),
        ("dev", "dev2", False),
        ("team-*", "team-a", True),
        ("team-*", "team-", True),
        ("team-*", "xteam-a", False),
        ("*-prod", "eu-prod", True),
        ("*", "anything", True),
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxbyy", False),
        ("a.b", "axb", False),  # only * is special
    ],
)
def test_pattern_matching(pattern: str, namespace: str, expected: bool) -> None:
    assert matches(pattern, namespace) is expected


# -- names -----------------------------------------------------------------------------


def test_every_name_is_a_valid_dns_subdomain() -> None:
    for obj in desired_objects(mapping(), NAMESPACES):
        assert len(obj.ref.name) <= 253
        assert DNS_SUBDOMAIN.fullmatch(obj.ref.name), obj.ref.name
        assert obj.manifest["metadata"]["name"] == obj.ref.name


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # inputs whose readable parts are the same once sanitized
        (
            ("ClusterRoleBinding", "edit", "Group", "Devs"),
            ("ClusterRoleBinding", "edit", "Group", "devs"),
        ),
        (
            ("ClusterRoleBinding", "edit", "Group", "a:b"),
            ("ClusterRoleBinding", "edit", "Group", "a.b"),
        ),
        (
            ("ClusterRoleBinding", "edit", "Group", "bob"),
            ("ClusterRoleBinding", "edit", "User", "bob"),
        ),
        (("ClusterRoleBinding", "a-b", "Group", "c"), ("ClusterRoleBinding", "a", "Group", "b-c")),
        (("ClusterRoleBinding", "view", "Group", "x"), ("RoleBinding", "view", "Group", "x")),
    ],
)
def test_hash_suffix_separates_inputs_that_sanitize_alike(
    first: tuple[str, str, str, str], second: tuple[str, str, str, str]
) -> None:
    a, b = binding_name(*first), binding_name(*second)
    assert a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]  # same readable part
    assert a != b


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ClusterRoleBinding", "cluster-admin", "Group", "authbridge:admins"), ADMINS_CRB),
        (("RoleBinding", "edit", "ServiceAccount", "ci/deployer"), DEPLOYER_RB),
        (
            ("ClusterRoleBinding", "view", "User", "Alice@Example.COM"),
            "authbridge-view-alice-example-com-e3dabe1a",
        ),
        (("ClusterRoleBinding", "view", "Group", "::"), "authbridge-view-afcc422a"),
    ],
)
def test_golden_names(args: tuple[str, str, str, str], expected: str) -> None:
    """Changing a name deletes and re-creates the binding in every cluster: keep them."""
    assert binding_name(*args) == expected


def test_long_names_are_cut_to_253_with_the_hash_kept() -> None:
    long_group = "g" * 240 + ":" + "h" * 12
    name = binding_name("ClusterRoleBinding", "authbridge:admin-view", "Group", long_group)
    other = binding_name("ClusterRoleBinding", "authbridge:admin-view", "Group", long_group + "x")
    assert len(name) == 253
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert name.startswith("authbridge-authbridge-admin-view-ggg")
    assert re.fullmatch(r".*-[0-9a-f]{8}", name)
    assert name != other  # cut to the same readable part, told apart by the hash


def test_cut_never_leaves_a_dash_before_the_hash() -> None:
    for n in range(200, 260):
        name = binding_name("ClusterRoleBinding", "view", "Group", "a" * n + "-" * 5 + "b" * 5)
        assert len(name) <= 253
        assert "--" not in name
        assert DNS_SUBDOMAIN.fullmatch(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("authbridge:admins", "authbridge-admins"),
        ("Team.A_b", "team-a-b"),
        ("--x--", "x"),
        ("ÄÖ", ""),
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    assert sanitize(text) == expected
