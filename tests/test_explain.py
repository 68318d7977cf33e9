"""The access explorer's core (authbridge.explain): RBAC resolution, identities, trust, answers.

Covers: the RBAC decision table-tested against the fake API server's RBAC
authorizer (tests/fakekube.py: ClusterRoles aggregated by its controller, Roles,
ClusterRoleBindings vs RoleBindings, wildcards in verbs/resources/apiGroups,
subresources ``pods/log`` and ``*/status``, resourceNames, User, Group and
ServiceAccount subjects, ``system:authenticated``, a binding to a missing role),
with the objects read through the real kube adapter (``rbac_objects``), and
hand-written expectations beside it; aggregation computed for rendered RBAC and
taken as stored for a live cluster (a bare apiserver: admin/edit/view grant
nothing); by principal, the identity is exactly ``review.map_identity``'s on a
real store (users, groups, roles, access entries with policies, a disabled user,
another cluster's mapping file); trust agrees with ``authbridge.sts``'s check for
every user and role; by permission, the principals reported are exactly those
the fake authorizer allows, with the binding, access entry, IAM group and trust
path that got them there; session-specific User subjects; system:masters;
rendered RBAC says so and names unresolved roles; and the input checks
(named refusals, and a Hypothesis property: only InputError comes out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError, MalformedArn, NoSuchEntity
from authbridge.explain import (
    SESSION_PLACEHOLDER,
    explain_permission,
    explain_principal,
    load,
    permission_request,
)
from authbridge.explain.rbac import Request, Rule, rbac_from_objects, rendered_rbac
from authbridge.iam.access import AccessSnapshot
from authbridge.kube import EXPLAIN_VERBS, KubeAdapter
from authbridge.mapping.parse import parse_mapping
from authbridge.review import identity_of, map_identity
from authbridge.store import SqlStore
from authbridge.sts import IssuerPolicy, trust_decision
from authbridge.tokens import Principal
from tests.conftest import ACCOUNT
from tests.fakekube import RBAC_GROUP, FakeKube

RBAC_V1 = f"{RBAC_GROUP}/v1"


def cluster_role(name: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    meta = {"name": name, **extra.pop("metadata", {})}
    return {"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": meta, "rules": rules, **extra}


def role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_V1,
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules,
    }


def binding(
    name: str,
    role_name: str,
    subjects: list[dict[str, Any]],
    *,
    namespace: str | None = None,
    role_kind: str = "ClusterRole",
    source: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if source is not None:
        meta["annotations"] = {"authbridge.dev/source": source}
        meta["labels"] = {"app.kubernetes.io/managed-by": "authbridge"}
    return {
        "apiVersion": RBAC_V1,
        "kind": "RoleBinding" if namespace is not None else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": RBAC_GROUP, "name": name}


def rule(verbs: list[str], groups: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources, **extra}


# A cluster with one of everything the authorizer distinguishes.
OBJECTS: list[dict[str, Any]] = [
    cluster_role("pods-reader", [rule(["get", "list"], [""], ["pods"])]),
    cluster_role("logs", [rule(["get"], [""], ["pods/log"])]),
    cluster_role("any-status", [rule(["get"], ["*"], ["*/status"])]),
    cluster_role("app-config", [rule(["get"], [""], ["configmaps"], resourceNames=["app"])]),
    cluster_role("apps-all", [rule(["*"], ["apps"], ["*"])]),
    cluster_role(
        "ops",
        [],
        aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"example.com/ops": "true"}}]},
    ),
    cluster_role(
        "ops-deployments",
        [rule(["delete"], ["apps"], ["deployments"])],
        metadata={"labels": {"example.com/ops": "true"}},
    ),
    role("dev", "secret-reader", [rule(["get"], [""], ["secrets"])]),
    binding("readers", "pods-reader", [group("readers")]),
    binding("alice-logs", "logs", [user("alice")], namespace="dev"),
    binding("status-for-all", "any-status", [group("system:authenticated")], namespace="prod"),
    binding("config", "app-config", [group("cfg")], namespace="dev"),
    binding("deployer", "apps-all", [user("deployer")]),
    binding("ops", "ops", [group("ops")]),
    binding("secrets", "secret-reader", [group("secrets")], namespace="dev", role_kind="Role"),
    binding("viewers", "view", [group("viewers")], namespace="team-a"),
    binding(
        "builder",
        "pods-reader",
        [{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}],
        namespace="dev",
    ),
    binding("ghost", "no-such-role", [group("readers")], namespace="dev"),
]

WHO = [
    ("alice", []),
    ("bob", ["readers"]),
    ("carol", ["cfg"]),
    ("deployer", []),
    ("dave", ["ops"]),
    ("erin", ["secrets"]),
    ("frank", ["viewers"]),
    ("system:serviceaccount:ci:builder", []),
    ("nobody", []),
]


def req(
    verb: str, resource: str, group: str = "", ns: str | None = None, name: str | None = None
) -> Request:
    return Request(verb, resource, group, ns, name)


REQUESTS = [
    req("get", "pods", ns="dev"),
    req("list", "pods"),
    req("delete", "pods", ns="dev"),
    req("get", "pods/log", ns="dev"),
    req("get", "pods/log", ns="prod"),
    req("get", "pods/status", ns="prod"),
    req("get", "deployments/status", "apps", ns="prod"),
    req("get", "pods/status", ns="dev"),
    req("get", "configmaps", ns="dev"),
    req("get", "configmaps", ns="dev", name="app"),
    req("get", "configmaps", ns="dev", name="other"),
    req("create", "deployments", "apps", ns="prod"),
    req("delete", "deployments", "apps", ns="prod"),
    req("delete", "deployments", "apps"),
    req("get", "deployments/scale", "apps", ns="dev"),
    req("get", "secrets", ns="dev"),
    req("get", "secrets", ns="prod"),
    req("get", "pods", ns="team-a"),
    req("get", "pods", "apps", ns="dev"),
]

# Hand-written: who may, beyond what the fake says (both must agree).
EXPECTED = {
    ("alice", req("get", "pods/log", ns="dev")): True,
    ("alice", req("get", "pods/log", ns="prod")): False,  # a RoleBinding in dev only
    ("alice", req("get", "pods", ns="dev")): False,  # pods/log is not pods
    ("bob", req("list", "pods")): True,  # ClusterRoleBinding: cluster-wide
    ("bob", req("delete", "pods", ns="dev")): False,
    ("nobody", req("get", "pods/status", ns="prod")): True,  # system:authenticated
    ("nobody", req("get", "deployments/status", "apps", ns="prod")): True,  # */status, *
    ("nobody", req("get", "pods/status", ns="dev")): False,
    ("carol", req("get", "configmaps", ns="dev")): False,  # resourceNames: no name asked
    ("carol", req("get", "configmaps", ns="dev", name="app")): True,
    ("carol", req("get", "configmaps", ns="dev", name="other")): False,
    ("deployer", req("create", "deployments", "apps", ns="prod")): True,  # * verbs, * resources
    ("deployer", req("get", "deployments/scale", "apps", ns="dev")): True,  # * covers subresources
    ("deployer", req("get", "pods", "apps", ns="dev")): True,  # apps/pods: resource *
    ("dave", req("delete", "deployments", "apps")): True,  # aggregated into ops
    ("erin", req("get", "secrets", ns="dev")): True,  # a Role
    ("erin", req("get", "secrets", ns="prod")): False,
    ("system:serviceaccount:ci:builder", req("get", "pods", ns="dev")): True,
    ("bob", req("get", "pods", ns="dev")): True,  # via the ClusterRoleBinding, not the ghost
}


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=("default", "dev", "prod", "team-a", "ci")) as kube:
        for doc in OBJECTS:
            kube.put(doc)
        yield kube


@pytest.fixture
def live(fake: FakeKube, tmp_path: Any) -> Any:
    adapter = KubeAdapter.from_kubeconfig(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        objects = adapter.rbac_objects()
    finally:
        adapter.close()
    return rbac_from_objects(objects, source="cluster", where=adapter.source)


def test_the_decision_matches_the_fake_authorizer_for_every_subject_and_request(
    fake: FakeKube, live: Any
) -> None:
    for username, groups in WHO:
        effective = [*groups, "system:authenticated"]
        for r in REQUESTS:
            expected = fake.allowed(
                username,
                effective,
                verb=r.verb,
                resource=r.resource,
                group=r.api_group,
                namespace=r.namespace,
                name=r.name,
            )
            assert live.allows(username, effective, r) is expected, (username, r)
            if (username, r) in EXPECTED:
                assert expected is EXPECTED[(username, r)], (username, r)


def test_the_adapter_lists_only_what_explain_verbs_declares(fake: FakeKube, live: Any) -> None:
    used = {a for a in fake.used() if a[2] == "list"}
    assert used == set(EXPLAIN_VERBS)
    assert {b.name for b in live.bindings} >= {"readers", "secrets", "ghost"}
    assert ("dev", "secret-reader") in live.roles


def test_a_live_cluster_aggregation_is_what_the_controller_stored(tmp_path: Any) -> None:
    with FakeKube(namespaces=("dev",), aggregation=False) as bare:
        bare.put(binding("viewers", "view", [group("viewers")], namespace="dev"))
        adapter = KubeAdapter.from_kubeconfig(bare.write_kubeconfig(tmp_path / "kc"))
        try:
            rbac = rbac_from_objects(adapter.rbac_objects(), source="cluster", where="bare")
        finally:
            adapter.close()
        r = req("get", "pods", ns="dev")
        # No controller: view holds no rules, so it grants nothing, as on the apiserver.
        assert not bare.allowed("u", ["viewers"], verb="get", resource="pods", namespace="dev")
        assert not rbac.allows("u", ["viewers"], r)
        assert rbac.cluster_roles["view"].aggregated_from == ("system:aggregate-to-view",)


def test_rendered_rbac_aggregates_itself_and_reports_roles_only_the_cluster_knows() -> None:
    objects = [o for o in OBJECTS if o["kind"] == "ClusterRole"]
    rbac = rbac_from_objects(
        [*objects, binding("ops", "ops", [group("ops")])],
        source="rendered",
        where="test",
        aggregate=True,
    )
    assert rbac.allows("dave", ["ops"], req("delete", "deployments", "apps"))
    assert rbac.cluster_roles["ops"].aggregated_from == ("ops-deployments",)
    mapping = parse_mapping(
        """
bindings:
  - group: devs
    clusterRole: view
    namespaces: [dev]
  - group: admins
    clusterRole: cluster-admin
""",
        "<t>",
    )
    rendered = rendered_rbac(mapping, why="offline")
    assert rendered.source == "rendered" and rendered.notes[0] == "offline"
    assert rendered.allows("a", ["admins"], req("delete", "nodes"))
    assert not rendered.allows("d", ["devs"], req("get", "pods", ns="dev"))  # view: unknown


def test_rule_matching_edge_cases() -> None:
    star = Rule(("*",), ("*",), ("*",))
    assert star.allows(req("escalate", "clusterroles", RBAC_GROUP))
    assert star.allows(req("get", "pods/exec", ns="x"))
    sub = Rule(("get",), ("",), ("*/log",))
    assert sub.allows(req("get", "pods/log")) and not sub.allows(req("get", "pods"))
    assert not sub.allows(req("get", "pods/logs"))
    urls = Rule(("get",), (), (), non_resource_urls=("/healthz",))
    assert not urls.allows(req("get", "healthz"))
    named = Rule(("get",), ("",), ("secrets",), resource_names=("a",))
    assert named.covers(req("get", "secrets")) and not named.allows(req("get", "secrets"))
    assert named.to_json()["resourceNames"] == ["a"]


# --------------------------------------------------------------------------- with a store

MAPPING = f"""
clusterID: prod
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
    groups: ["admins"]
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: alice
mapGroups:
  - grouparn: arn:aws:iam::{ACCOUNT}:group/devs
    groups: [readers, "dev-{{{{AccountID}}}}"]
"""


def world(store: SqlStore) -> dict[str, Any]:
    alice = store.create_user(ACCOUNT, "alice")
    bob = store.create_user(ACCOUNT, "bob")
    carol = store.create_user(ACCOUNT, "carol")
    dora = store.create_user(ACCOUNT, "dora")
    devs = store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    store.add_user_to_group(ACCOUNT, "devs", "carol")
    admin = store.create_role(ACCOUNT, "Admin", path="/platform/", trust=[devs.arn])
    deploy = store.create_role(ACCOUNT, "Deploy", trust=[bob.arn, f"arn:aws:iam::{ACCOUNT}:root"])
    store.create_access_entry("prod", bob.arn, username="bob", groups=["bobs"])
    store.associate_access_policy(
        "prod", bob.arn, "AmazonEKSEditPolicy", scope="namespace", namespaces=["dev"]
    )
    store.set_user_enabled(ACCOUNT, "dora", False)
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "dora": dora,
        "devs": devs,
        "admin": admin,
        "deploy": deploy,
    }


def snap(store: SqlStore, rbac_of: Any = None, clusters: tuple[str, ...] = ("prod", "dev")) -> Any:
    return load.snapshot(
        iam=load.iam_from_store(store, "aws"),
        mapping=parse_mapping(MAPPING, "mapping.yaml"),
        access=store.access_snapshot(),
        clusters=clusters,
        rbac_of=rbac_of,
    )


def policy(clusters: tuple[str, ...] = ("prod", "dev")) -> IssuerPolicy:
    return IssuerPolicy(
        issuer="https://authbridge.example",
        cluster_ids=frozenset(clusters),
        partition="aws",
        default_lifetime=900,
        max_user_lifetime=3600,
    )


def test_by_principal_gives_exactly_what_map_identity_gives(store: SqlStore) -> None:
    w = world(store)
    snapshot = snap(store)
    mapping = parse_mapping(MAPPING, "mapping.yaml")
    for name in ("alice", "bob", "carol"):
        u = w[name]
        answer = explain_principal(snapshot, u.arn)
        principal = Principal(
            arn=u.arn, canonical_arn=u.arn, account_id=ACCOUNT, principal_id=u.user_id
        )
        for cluster in answer.clusters:
            review = map_identity(
                identity_of(principal),
                (cluster.cluster_id,),
                store=store,
                policy=policy(),
                mapping=mapping,
            )
            assert cluster.review.user == review.user, (name, cluster.cluster_id)
            assert cluster.review.rules == review.rules
            assert cluster.review.reason == review.reason
            assert cluster.review.detail == review.detail
    bob = explain_principal(snapshot, w["bob"].arn).to_json()
    prod = bob["clusters"][0]
    assert prod["matchedRule"]["section"] == "accessEntry"
    assert prod["kubernetes"]["username"] == "bob"
    assert "system:authenticated" in prod["kubernetes"]["effectiveGroups"]
    dev = bob["clusters"][1]
    # The file is prod's: bob, without an entry in dev, is refused there (as /verify says).
    assert dev["authenticated"] is False and "is for cluster prod" in dev["reason"]


def test_a_disabled_user_is_refused_and_assumes_nothing(store: SqlStore) -> None:
    w = world(store)
    answer = explain_principal(snap(store), w["dora"].arn).to_json()
    assert answer["principal"]["enabled"] is False
    assert answer["assumableRoles"] == []
    assert all(c["reasonCode"] == "disabled" and not c["grants"] for c in answer["clusters"])


def test_trust_agrees_with_the_token_endpoint_check(store: SqlStore) -> None:
    w = world(store)
    snapshot = snap(store)
    for name in ("alice", "bob", "carol"):
        u = w[name]
        group_ids = {g.group_id for g in store.list_groups_for_user(ACCOUNT, u.name)}
        mine = {t.role_arn for t in explain_principal(snapshot, u.arn).trust}
        theirs = {
            r.arn
            for r in store.list_roles(ACCOUNT)
            if trust_decision(r.trust_policy, u, group_ids, mfa=True, now=time.time()).allowed
        }
        assert mine == theirs, name
    admin = explain_principal(snapshot, w["admin"].arn).to_json()
    assert [u["userArn"] for u in admin["assumableBy"]] == [w["alice"].arn, w["carol"].arn]
    assert admin["assumableBy"][0]["trust"] == {"type": "group", "arn": w["devs"].arn}
    deploy = explain_principal(snapshot, w["deploy"].arn).to_json()
    by = {u["userArn"]: u["trust"]["type"] for u in deploy["assumableBy"]}
    assert by == {w["alice"].arn: "account", w["bob"].arn: "user", w["carol"].arn: "account"}


def test_a_role_is_explained_as_a_templated_session_or_as_one_session(store: SqlStore) -> None:
    w = world(store)
    snapshot = snap(store, clusters=("prod",))
    role = explain_principal(snapshot, w["admin"].arn).to_json()
    assert role["principal"]["sessionName"] == SESSION_PLACEHOLDER
    assert role["clusters"][0]["kubernetes"]["username"] == "admin:{{SessionName}}"
    pathless = explain_principal(snapshot, f"arn:aws:iam::{ACCOUNT}:role/Admin").to_json()
    assert pathless["principal"]["arn"] == w["admin"].arn
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/jane"
    one = explain_principal(snapshot, session).to_json()
    assert one["clusters"][0]["kubernetes"]["username"] == "admin:jane"


def test_by_permission_reports_exactly_whom_the_authorizer_allows(
    store: SqlStore, tmp_path: Any
) -> None:
    w = world(store)
    mapping = parse_mapping(MAPPING, "mapping.yaml")
    access = store.access_snapshot()
    rendered = load.rendered_for(mapping, access, "prod", why="t", namespaces=["dev", "prod"])
    with FakeKube(namespaces=("dev", "prod")) as kube:
        for doc in OBJECTS + _manifests(rendered):
            kube.put(doc)
        kube.put(binding("jane-only", "apps-all", [user("admin:jane")]))
        adapter = KubeAdapter.from_kubeconfig(kube.write_kubeconfig(tmp_path / "kc"))
        try:
            live = rbac_from_objects(adapter.rbac_objects(), source="cluster", where="fake")
        finally:
            adapter.close()
        snapshot = snap(store, rbac_of=lambda c: live, clusters=("prod",))
        more = [req("delete", "pods", ns="dev"), req("patch", "deployments", "apps", ns="dev")]
        for r in REQUESTS + more:
            answer = explain_permission(snapshot, r)
            reached = {p.arn for p in answer.clusters[0].principals if p.allowed}
            expected = set()
            for arn, username, groups in _identities(snapshot):
                if kube.allowed(
                    username,
                    [*groups, "system:authenticated"],
                    verb=r.verb,
                    resource=r.resource,
                    group=r.api_group,
                    namespace=r.namespace,
                    name=r.name,
                ):
                    expected.add(arn)
            assert reached == expected, r
    doc = explain_permission(snapshot, req("delete", "pods", ns="dev")).to_json()
    bob = next(p for p in doc["clusters"][0]["principals"] if p["arn"] == w["bob"].arn)
    entry = bob["grants"][0]["binding"]["accessEntry"]
    assert entry == {"principalArn": w["bob"].arn, "policy": "AmazonEKSEditPolicy"}
    doc = explain_permission(snapshot, req("create", "deployments", "apps", ns="dev")).to_json()
    admin = next(p for p in doc["clusters"][0]["principals"] if p["arn"] == w["admin"].arn)
    assert admin["grants"][0]["sessionName"] == "jane"
    assert [u["userArn"] for u in admin["assumableBy"]] == [w["alice"].arn, w["carol"].arn]
    assert {"arn": w["devs"].arn, "via": f"trusted by role {w['admin'].arn}"} in doc["clusters"][0][
        "iamGroups"
    ]
    listing = explain_permission(snapshot, req("list", "pods")).to_json()
    carol = next(p for p in listing["clusters"][0]["principals"] if p["arn"] == w["carol"].arn)
    assert carol["grants"][0]["iamGroup"] == w["devs"].arn  # mapGroups gave "readers"
    json.dumps(listing)  # plain JSON all the way down


def _manifests(rbac: Any) -> list[dict[str, Any]]:
    out = []
    for b in rbac.bindings:
        doc = binding(
            b.name,
            b.role_name,
            [
                s.to_json() | ({"apiGroup": RBAC_GROUP} if s.kind != "ServiceAccount" else {})
                for s in b.subjects
            ],
            namespace=b.namespace,
            source=b.source,
        )
        out.append(doc)
    for r in rbac.cluster_roles.values():
        if r.name.startswith("authbridge:"):
            out.append(cluster_role(r.name, [x.to_json() for x in r.rules]))
    return out


def _identities(snapshot: Any) -> Iterator[tuple[str, str, list[str]]]:
    """Every principal's Kubernetes user; a role also as its session jane (the one session
    a User subject names), which counts for the role."""
    asked = [(u.arn, u.arn) for u in snapshot.iam.users]
    for r in snapshot.iam.roles:
        asked += [(r.arn, r.arn), (r.arn, f"arn:aws:sts::{ACCOUNT}:assumed-role/{r.name}/jane")]
    for arn, asking in asked:
        c = explain_principal(snapshot, asking, clusters=["prod"]).clusters[0]
        if c.review.user is not None:
            yield arn, c.review.user.username, list(c.review.user.groups)


def test_system_masters_is_allowed_everything(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice")
    mapping = parse_mapping(
        f"""
mapUsers:
  - userarn: {alice.arn}
    username: alice
    groups: ["system:masters"]
    allowReservedPrefixes: true
""",
        "m",
    )
    access = store.access_snapshot()
    snapshot = load.snapshot(
        iam=load.iam_from_store(store, "aws"),
        mapping=mapping,
        access=access,
        clusters=["prod"],
    )
    doc = explain_permission(snapshot, req("delete", "nodes")).to_json()
    (p,) = doc["clusters"][0]["principals"]
    assert p["privileged"] is True and p["access"] == "allowed" and p["grants"] == []
    assert explain_principal(snapshot, alice.arn).to_json()["clusters"][0]["privileged"]


def test_rendered_answers_say_so_and_list_unresolved_roles(store: SqlStore) -> None:
    w = world(store)
    mapping = parse_mapping(
        MAPPING + "bindings:\n  - group: readers\n    clusterRole: view\n    namespaces: [dev]\n",
        "mapping.yaml",
    )
    snapshot = load.snapshot(
        iam=load.iam_from_store(store, "aws"),
        mapping=mapping,
        access=store.access_snapshot(),
        clusters=["prod"],
    )
    doc = explain_permission(snapshot, req("get", "pods", ns="dev")).to_json()
    c = doc["clusters"][0]
    assert c["rbac"]["source"] == "rendered"
    assert "was not asked" in c["rbac"]["notes"][0]
    assert c["unresolved"][0]["binding"]["roleRef"]["name"] == "view"
    assert "not known without the cluster" in c["unresolved"][0]["reason"]
    alice = explain_principal(snapshot, w["alice"].arn).to_json()["clusters"][0]
    assert alice["unresolved"][0]["subject"] == {"kind": "Group", "name": "readers"}


# --------------------------------------------------------------------------- input checks

EMPTY = load.snapshot(
    iam=load.IamSnapshot("aws", (), {}, ()),
    mapping=parse_mapping("mapAccounts: []\n", "m"),
    access=AccessSnapshot(version=0, modes={}, entries={}),
    clusters=["prod"],
)


@pytest.mark.parametrize(
    ("arn", "error", "says"),
    [
        ("not-an-arn", MalformedArn, "arn"),
        (f"arn:aws:iam::{ACCOUNT}:group/devs", MalformedArn, "group ARN"),
        (f"arn:aws:iam::{ACCOUNT}:user/ghost", NoSuchEntity, "no IAM user"),
        (f"arn:aws:iam::{ACCOUNT}:role/Ghost", NoSuchEntity, "no IAM role"),
        ("arn:aws:iam::" + "1" * 5000, MalformedArn, "2048"),
    ],
)
def test_bad_principal_arns_are_refused(arn: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        explain_principal(EMPTY, arn)


def test_an_unknown_cluster_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="clusterId: 'staging' is not a cluster"):
        explain_permission(EMPTY, req("get", "pods"), clusters=["staging"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"verb": "GET", "resource": "pods"}, "verb"),
        ({"verb": "get pods", "resource": "pods"}, "verb"),
        ({"verb": "", "resource": "pods"}, "verb"),
        ({"verb": "get", "resource": "Pods"}, "resource"),
        ({"verb": "get", "resource": "pods/log/x"}, "resource"),
        ({"verb": "get", "resource": "/log"}, "resource"),
        ({"verb": "get", "resource": "pods", "api_group": "Apps"}, "apiGroup"),
        ({"verb": "get", "resource": "pods", "namespace": "Dev"}, "namespace"),
        ({"verb": "get", "resource": "pods", "namespace": "-x"}, "namespace"),
        ({"verb": "get", "resource": "pods", "namespace": "a" * 64}, "namespace"),
        ({"verb": "get", "resource": "pods", "name": "a/b"}, "name"),
        ({"verb": "get", "resource": "pods", "name": ".."}, "name"),
        ({"verb": "get", "resource": "p" * 10_000}, "resource"),
        ({"verb": "get", "resource": "pods", "name": "x\x1b[2J"}, "name"),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    verb, resource = kwargs.pop("verb"), kwargs.pop("resource")
    with pytest.raises(InputError) as caught:
        permission_request(verb, resource, **kwargs)
    assert caught.value.field == field
    assert "\x1b" not in str(caught.value)


def test_kubectl_style_resource_dot_group() -> None:
    assert permission_request("get", "deployments.apps") == Request("get", "deployments", "apps")
    assert permission_request("get", "deployments.apps/scale").resource == "deployments/scale"
    assert permission_request("*", "*", api_group="*").verb == "*"


@given(
    verb=st.text(max_size=40),
    resource=st.text(max_size=60),
    api_group=st.text(max_size=40),
    namespace=st.none() | st.text(max_size=70),
    name=st.none() | st.text(max_size=60),
)
def test_permission_request_raises_only_input_error(
    verb: str, resource: str, api_group: str, namespace: str | None, name: str | None
) -> None:
    try:
        r = permission_request(verb, resource, api_group=api_group, namespace=namespace, name=name)
    except InputError as e:
        assert e.field in {"verb", "resource", "apiGroup", "namespace", "name"}
        return
    assert isinstance(r, Request)
    answer = explain_permission(EMPTY, r)  # a valid request is always answerable
    assert answer.clusters[0].principals == ()


@given(
    arn=st.text(max_size=120)
    | st.from_regex(r"arn:aws:(iam|sts)::\d{12}:[a-z-]+/[\w/]{0,20}", fullmatch=True)
)
def test_principal_arns_raise_only_documented_errors(arn: str) -> None:
    with pytest.raises((MalformedArn, NoSuchEntity)):
        explain_principal(EMPTY, arn)


# --------------------------------------------------------------------------- what a cluster lists


def test_the_adapter_reads_every_page(tmp_path: Any) -> None:
    with FakeKube(namespaces=("dev",)) as kube:
        for i in range(520):  # more than one page of 500
            kube.put(binding(f"b{i:03d}", "view", [group(f"g{i}")], namespace="dev"))
        adapter = KubeAdapter.from_kubeconfig(kube.write_kubeconfig(tmp_path / "kc"))
        try:
            docs = adapter.rbac_objects()
        finally:
            adapter.close()
    rbac = rbac_from_objects(docs, source="cluster", where="fake")
    assert len([b for b in rbac.bindings if b.kind == "RoleBinding"]) == 520
    assert {d["kind"] for d in docs} == {"ClusterRole", "RoleBinding"}
    assert all(d["apiVersion"] == RBAC_V1 for d in docs)


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {"a": ""}, False),
        ({}, {"a": "1"}, False),  # an empty selector aggregates nothing
    ],
)
def test_aggregation_selectors(
    selector: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    docs = [
        cluster_role("parent", [], aggregationRule={"clusterRoleSelectors": [selector]}),
        cluster_role("child", [rule(["get"], [""], ["pods"])], metadata={"labels": labels}),
    ]
    rbac = rbac_from_objects(docs, source="rendered", where="t", aggregate=True)
    assert (rbac.cluster_roles["parent"].aggregated_from == ("child",)) is selected
    assert bool(rbac.cluster_roles["parent"].rules) is selected


def test_aggregation_reaches_a_fixed_point_through_chains() -> None:
    docs = [
        cluster_role(
            "top", [], aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to": "top"}}]}
        ),
        cluster_role(
            "middle",
            [],
            metadata={"labels": {"to": "top"}},
            aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"to": "middle"}}]},
        ),
        cluster_role(
            "leaf", [rule(["get"], [""], ["pods"])], metadata={"labels": {"to": "middle"}}
        ),
    ]
    rbac = rbac_from_objects(docs, source="rendered", where="t", aggregate=True)
    assert rbac.allows("u", ["g"], req("get", "pods")) is False  # nobody bound
    assert rbac.cluster_roles["top"].rules == rbac.cluster_roles["leaf"].rules


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_KINDS = st.sampled_from(["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "Pod", None])


@given(
    docs=st.lists(
        st.fixed_dictionaries(
            {
                "kind": _KINDS,
                "metadata": _JSON | st.fixed_dictionaries({"name": _JSON, "namespace": _JSON}),
                "rules": _JSON,
                "roleRef": _JSON,
                "subjects": _JSON,
                "aggregationRule": _JSON,
            }
        ),
        max_size=6,
    )
)
def test_hostile_objects_from_a_cluster_are_skipped_never_fatal(docs: list[dict[str, Any]]) -> None:
    """A cluster's JSON is outside input: objects of the wrong shape are left out, and what
    is kept still answers every question."""
    rbac = rbac_from_objects(docs, source="cluster", where="t")
    rbac_from_objects(docs, source="rendered", where="t", aggregate=True)
    for r in (req("get", "pods", ns="dev"), req("delete", "nodes")):
        rbac.allows("u", ["g", "system:authenticated"], r)
    json.dumps([b.to_json() for b in rbac.bindings])


def test_names_from_a_cluster_cannot_drive_the_terminal() -> None:
    from authbridge.cli.access_explain import permission_text, principal_text

    evil = "x\x1b]0;pwned\x07\nforged line"
    rbac = rbac_from_objects(
        [
            cluster_role(evil, [rule(["get"], [""], [evil])]),
            binding(evil, evil, [group(evil)], source=evil),
        ],
        source="cluster",
        where=evil,
        notes=[evil],
    )
    u = _bench_user()
    mapping = parse_mapping(
        f"mapUsers:\n  - userarn: {u.arn}\n    username: alice\n    groups: [g]\n", "m"
    )
    snapshot = load.snapshot(
        iam=load.IamSnapshot("aws", (u,), {}, ()),
        mapping=mapping,
        access=AccessSnapshot(version=0, modes={}, entries={}),
        clusters=["prod"],
        rbac_of=lambda _c: rbac_from_objects(
            [
                cluster_role(evil, [rule(["get"], [""], ["pods"])]),
                binding(evil, evil, [group("g")], source=evil),
            ],
            source="cluster",
            where=evil,
            notes=[evil],
        ),
    )
    for text in (
        principal_text(explain_principal(snapshot, u.arn).to_json()),
        permission_text(explain_permission(snapshot, req("get", "pods")).to_json()),
    ):
        assert "\x1b" not in text and "\x07" not in text and "\nforged line" not in text
        assert "\\x1b" in text
    assert rbac.bindings[0].name == evil  # the value itself is kept; only display escapes


def _bench_user() -> Any:
    from datetime import UTC, datetime

    from authbridge.iam.model import User

    t0 = datetime(2026, 12, 4, tzinfo=UTC)
    return User(
        "AIDA00000000000000001",
        ACCOUNT,
        "alice",
        "/",
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        True,
        t0,
    )


def test_a_user_subject_naming_one_session_of_an_entry_role_is_that_session_only(
    store: SqlStore,
) -> None:
    deploy = store.create_role(ACCOUNT, "Deploy", trust=[f"arn:aws:iam::{ACCOUNT}:root"])
    store.create_access_entry("prod", deploy.arn)  # EKS's default username: the session ARN
    session_user = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/ci-run.7"
    live = rbac_from_objects(
        [
            cluster_role("deployers", [rule(["patch"], ["apps"], ["deployments"])]),
            binding("one-run", "deployers", [user(session_user)], namespace="dev"),
            # A name the pattern must not take: another role's session, and a path below it.
            binding("other", "deployers", [user(f"arn:aws:sts::{ACCOUNT}:assumed-role/X/ci")]),
            binding("deeper", "deployers", [user(session_user + "/x")]),
        ],
        source="cluster",
        where="t",
    )
    snapshot = snap(store, rbac_of=lambda c: live, clusters=("prod",))
    doc = explain_permission(snapshot, req("patch", "deployments", "apps", ns="dev")).to_json()
    (p,) = doc["clusters"][0]["principals"]
    assert p["arn"] == deploy.arn and p["kubernetes"]["username"].endswith("/{{SessionName}}")
    assert [(g["binding"]["name"], g["sessionName"]) for g in p["grants"]] == [
        ("one-run", "ci-run.7")
    ]
    grants = explain_principal(snapshot, deploy.arn).to_json()["clusters"][0]["grants"]
    assert [g["binding"]["name"] for g in grants] == ["one-run"]
    one = explain_principal(snapshot, session_user).to_json()["clusters"][0]
    assert one["kubernetes"]["username"] == session_user and "sessionName" not in one["grants"][0]


def test_trust_documents_deny_and_mfa_conditions_decide_as_the_token_endpoint(
    store: SqlStore,
) -> None:
    """A Deny statement takes a user out, an MFA condition is said, as AssumeRole decides."""
    w = world(store)
    devs, alice, carol = w["devs"], w["alice"], w["carol"]
    store.create_role(
        ACCOUNT,
        "Guarded",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": devs.arn},
                    "Action": "sts:AssumeRole",
                    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
                },
                {"Effect": "Deny", "Principal": {"AWS": carol.arn}, "Action": "sts:AssumeRole"},
            ],
        },
    )
    snapshot = snap(store)
    guarded = f"arn:aws:iam::{ACCOUNT}:role/Guarded"
    paths = {t.role_arn: t for t in explain_principal(snapshot, alice.arn).trust}
    assert paths[guarded].trust_json() == {"type": "group", "arn": devs.arn, "mfaRequired": True}
    assert guarded not in {t.role_arn for t in explain_principal(snapshot, carol.arn).trust}
    role = explain_principal(snapshot, guarded).to_json()
    assert [u["userArn"] for u in role["assumableBy"]] == [alice.arn]
    group_ids = {g.group_id for g in store.list_groups_for_user(ACCOUNT, "alice")}
    role_obj = store.get_role(ACCOUNT, "Guarded")
    assert not trust_decision(
        role_obj.trust_policy, alice, group_ids, mfa=False, now=time.time()
    ).allowed
    assert trust_decision(
        role_obj.trust_policy, alice, group_ids, mfa=True, now=time.time()
    ).allowed
