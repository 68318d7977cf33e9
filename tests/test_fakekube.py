"""The fake API server's RBAC model (tests/fakekube.py): bootstrap ClusterRoles, aggregation,
and the authorizer behind :meth:`FakeKube.allowed`.

A real cluster's built-in ``admin``/``edit``/``view`` are aggregated by
kube-controller-manager's clusterrole-aggregation controller; a bare
kube-apiserver leaves their rules empty, so ``view`` grants nothing. The fake
models both, so the unit suite sees what the end-to-end suite saw.

Covers: the seeded roles and their labels are a real cluster's (admin ⊇ edit ⊇
view, view without secrets); without the controller view/edit/admin grant
nothing; a ClusterRole created with an aggregate-to-view label reaches view,
edit and admin (the chain), and its update, relabelling and deletion are
followed; rules a client writes to an aggregated role are overwritten (the PUT's
answer still shows them, the next GET does not, with a newer resourceVersion);
a custom aggregationRule with matchExpressions; ClusterRole validation (422);
authbridge's own access-policy ClusterRoles are not aggregated and do not change
when another ClusterRole is labelled aggregate-to-view, while view does; the
authorizer: a ClusterRoleBinding grants everywhere, a RoleBinding only in its
namespace, ServiceAccount subjects (namespace defaulted from the RoleBinding),
resourceNames and ``*/sub`` subresource rules. Secrets as the core strategy keeps
them: create (409 AlreadyExists again), ``stringData`` merged into ``data`` and not
stored, ``type`` defaulted and immutable, data not base64 (400), a bad key and more
than 1 MiB (422), ``immutable: true`` freezing data, PUT of a missing Secret 404, a
stale resourceVersion 409 Conflict.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from authbridge.rbac.policies import ACCESS_POLICIES_FILE
from tests.fakekube import (
    AGGREGATE_TO,
    AGGREGATE_TO_EDIT_RULES,
    AGGREGATE_TO_VIEW_RULES,
    FakeKube,
)

RBAC = "rbac.authorization.k8s.io"
ROLES = f"/apis/{RBAC}/v1/clusterroles"
ALICE = ("alice", ["authbridge:devs", "system:authenticated"])


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=["default", "dev", "ci"]) as server:
        yield server


def call(fake: FakeKube, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One JSON request over HTTP, as any client would send it."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - the fake's http://127.0.0.1 URL
        fake.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def bind(fake: FakeKube, role: str, namespace: str | None, **subject: str) -> None:
    """A binding of ``role`` to one subject, stored directly (as another client would)."""
    subject.setdefault("kind", "User")
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta: dict[str, Any] = {"name": f"{role}-{subject['name']}".replace(":", "-")}
    if namespace:
        meta["namespace"] = namespace
    fake.put(
        {
            "kind": kind,
            "metadata": meta,
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [subject],
        }
    )


def widget_role(name: str = "widgets-view", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}],
    }


def may(fake: FakeKube, who: tuple[str, list[str]], **attributes: str) -> bool:
    return fake.allowed(who[0], who[1], **attributes)


# -- the bootstrap roles and the aggregation controller ------------------------------------------


def test_builtin_roles_are_aggregated_like_a_real_cluster(fake: FakeKube) -> None:
    view, edit, admin = (fake.role_rules(r) for r in ("view", "edit", "admin"))
    assert view == AGGREGATE_TO_VIEW_RULES
    # edit's selector matches system:aggregate-to-edit, then view (by name).
    assert edit == AGGREGATE_TO_EDIT_RULES + [r for r in view if r not in AGGREGATE_TO_EDIT_RULES]
    assert all(r in admin for r in edit) and len(admin) > len(edit)
    for name in ("admin", "edit", "view"):
        role = fake.get("ClusterRole", name)
        assert role is not None
        assert role["aggregationRule"]["clusterRoleSelectors"] == [
            {"matchLabels": {AGGREGATE_TO + name: "true"}}
        ]
    assert fake.names("ClusterRole") >= {
        "cluster-admin",
        "system:aggregate-to-admin",
        "system:aggregate-to-edit",
        "system:aggregate-to-view",
    }

    bind(fake, "view", "dev", name="alice")
    assert may(fake, ALICE, namespace="dev", verb="get", resource="pods")
    assert may(fake, ALICE, namespace="dev", verb="get", resource="pods/log")
    assert may(fake, ALICE, namespace="dev", verb="list", group="apps", resource="deployments")
    assert not may(fake, ALICE, namespace="dev", verb="create", resource="pods")
    assert not may(fake, ALICE, namespace="dev", verb="get", resource="secrets")
    bind(fake, "admin", "ci", name="alice")
    assert may(fake, ALICE, namespace="ci", verb="get", resource="secrets")
    assert may(fake, ALICE, namespace="ci", verb="create", group=RBAC, resource="rolebindings")


def test_without_the_controller_view_edit_and_admin_grant_nothing() -> None:
    """A bare kube-apiserver, as the end-to-end run without kube-controller-manager saw it."""
    with FakeKube(namespaces=["dev"], aggregation=False) as bare:
        assert [bare.role_rules(r) for r in ("view", "edit", "admin")] == [[], [], []]
        assert bare.role_rules("system:aggregate-to-view") == AGGREGATE_TO_VIEW_RULES
        bind(bare, "view", "dev", name="alice")
        bind(bare, "edit", "dev", name="alice")
        assert not may(bare, ALICE, namespace="dev", verb="get", resource="pods")
        assert not may(bare, ALICE, namespace="dev", verb="create", resource="pods")


def test_a_labelled_clusterrole_is_aggregated_through_the_chain_and_followed(
    fake: FakeKube,
) -> None:
    widget = widget_role(**{AGGREGATE_TO + "view": "true"})
    rule = widget["rules"][0]
    status, _ = call(fake, "POST", ROLES, widget)
    assert status == 201
    for name in ("view", "edit", "admin"):
        assert rule in fake.role_rules(name), name
    bind(fake, "admin", "ci", name="alice")
    assert may(fake, ALICE, namespace="ci", verb="get", group="example.com", resource="widgets")

    # An update reaches every aggregated role.
    status, current = call(fake, "GET", f"{ROLES}/widgets-view")
    current["rules"][0]["verbs"] = ["get", "list"]
    assert call(fake, "PUT", f"{ROLES}/widgets-view", current)[0] == 200
    assert may(fake, ALICE, namespace="ci", verb="list", group="example.com", resource="widgets")
    assert rule not in fake.role_rules("view")

    # Relabelled aggregate-to-admin: admin keeps it, edit and view lose it.
    status, current = call(fake, "GET", f"{ROLES}/widgets-view")
    current["metadata"]["labels"] = {AGGREGATE_TO + "admin": "true"}
    assert call(fake, "PUT", f"{ROLES}/widgets-view", current)[0] == 200
    assert current["rules"][0] in fake.role_rules("admin")
    assert current["rules"][0] not in fake.role_rules("edit")
    assert fake.role_rules("view") == AGGREGATE_TO_VIEW_RULES

    assert call(fake, "DELETE", f"{ROLES}/widgets-view")[0] == 200
    assert current["rules"][0] not in fake.role_rules("admin")
    assert not may(fake, ALICE, namespace="ci", verb="get", group="example.com", resource="widgets")


def test_rules_a_client_writes_to_an_aggregated_role_are_overwritten(fake: FakeKube) -> None:
    status, view = call(fake, "GET", f"{ROLES}/view")
    assert status == 200
    view["rules"] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    status, answer = call(fake, "PUT", f"{ROLES}/view", view)
    assert status == 200 and answer["rules"] == view["rules"]  # the write itself succeeded
    status, after = call(fake, "GET", f"{ROLES}/view")
    assert after["rules"] == AGGREGATE_TO_VIEW_RULES  # ... and the controller undid it
    assert int(after["metadata"]["resourceVersion"]) > int(answer["metadata"]["resourceVersion"])
    bind(fake, "view", "dev", name="alice")
    assert not may(fake, ALICE, namespace="dev", verb="delete", resource="namespaces")
    # A PUT based on the version the client saw is now stale.
    assert call(fake, "PUT", f"{ROLES}/view", answer)[0] == 409


def test_a_custom_aggregation_rule_with_match_expressions(fake: FakeKube) -> None:
    custom = {
        "kind": "ClusterRole",
        "metadata": {"name": "widgets-all"},
        "aggregationRule": {
            "clusterRoleSelectors": [
                {"matchExpressions": [{"key": "example.com/widgets", "operator": "Exists"}]},
                {"matchLabels": {"tier": "gold"}},
            ]
        },
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    assert call(fake, "POST", ROLES, custom)[0] == 201
    assert fake.role_rules("widgets-all") == []  # its own rules are not kept
    a = widget_role("a", **{"example.com/widgets": "x"})
    b = widget_role("b", tier="gold")
    b["rules"] = [{"apiGroups": ["example.com"], "resources": ["gadgets"], "verbs": ["list"]}]
    c = widget_role("c", tier="silver")
    c["rules"] = [{"apiGroups": ["example.com"], "resources": ["secrets"], "verbs": ["*"]}]
    for role in (a, b, c):
        assert call(fake, "POST", ROLES, role)[0] == 201
    assert fake.role_rules("widgets-all") == a["rules"] + b["rules"]  # selector order, once each


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}, "rules[0].verbs: Required"),
        ({"rules": [{"resources": ["pods"], "verbs": ["get"]}]}, "rules[0].apiGroups: Required"),
        (
            {"rules": [{"nonResourceURLs": ["/x"], "resources": ["pods"], "verbs": ["get"]}]},
            "cannot apply to both regular resources and non-resource URLs",
        ),
        ({"aggregationRule": {"clusterRoleSelectors": []}}, "at least one clusterRoleSelector"),
        (
            {
                "aggregationRule": {
                    "clusterRoleSelectors": [
                        {"matchExpressions": [{"key": "k", "operator": "Near"}]}
                    ]
                }
            },
            'operator: Invalid value: "Near"',
        ),
    ],
)
def test_an_invalid_clusterrole_is_422(fake: FakeKube, change: dict[str, Any], says: str) -> None:
    role = widget_role("bad")
    role.update(change)
    status, body = call(fake, "POST", ROLES, role)
    assert status == 422 and body["reason"] == "Invalid", body
    assert says in body["message"]
    assert fake.get("ClusterRole", "bad") is None


def test_authbridge_access_policies_are_not_aggregated(fake: FakeKube) -> None:
    """rbac/access-policies.yaml writes its rules out: labelling another ClusterRole
    aggregate-to-view changes the built-in view, never authbridge:view."""
    for doc in yaml.safe_load_all(ACCESS_POLICIES_FILE.read_text(encoding="utf-8")):
        if doc:
            assert call(fake, "POST", ROLES, doc)[0] == 201
            assert "aggregationRule" not in doc
            assert not any(k.startswith(AGGREGATE_TO) for k in doc["metadata"]["labels"])
    ours = fake.role_rules("authbridge:view")
    assert call(fake, "POST", ROLES, widget_role(**{AGGREGATE_TO + "view": "true"}))[0] == 201
    assert fake.role_rules("authbridge:view") == ours
    assert len(fake.role_rules("view")) == len(AGGREGATE_TO_VIEW_RULES) + 1


# -- the authorizer -------------------------------------------------------------------------------


def test_the_authorizer_scopes_bindings_like_rbac(fake: FakeKube) -> None:
    bind(fake, "view", None, kind="Group", name="readers")
    reader = ("bob", ["readers"])
    assert may(fake, reader, namespace="ci", verb="get", resource="pods")  # everywhere
    assert may(fake, reader, verb="list", resource="namespaces")  # and cluster-wide
    assert not may(fake, ("bob", ["writers"]), namespace="ci", verb="get", resource="pods")

    bind(fake, "edit", "dev", kind="ServiceAccount", name="deployer")  # namespace from the binding
    deployer = ("system:serviceaccount:dev:deployer", ["system:serviceaccounts"])
    assert may(fake, deployer, namespace="dev", verb="create", resource="pods")
    assert not may(fake, deployer, namespace="ci", verb="create", resource="pods")
    assert not may(fake, deployer, verb="create", resource="pods")  # a RoleBinding: no cluster
    other = ("system:serviceaccount:ci:deployer", ["system:serviceaccounts"])
    assert not may(fake, other, namespace="dev", verb="create", resource="pods")

    fake.put(
        {
            "kind": "ClusterRole",
            "metadata": {"name": "one-map"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["settings"],
                    "verbs": ["get"],
                },
                {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]},
            ],
        }
    )
    bind(fake, "one-map", "ci", name="carol")
    carol = ("carol", [])
    assert may(fake, carol, namespace="ci", verb="get", resource="configmaps", name="settings")
    assert not may(fake, carol, namespace="ci", verb="get", resource="configmaps", name="other")
    assert not may(fake, carol, namespace="ci", verb="list", resource="configmaps")
    assert may(fake, carol, namespace="ci", verb="get", resource="pods/status")
    assert not may(fake, carol, namespace="ci", verb="get", resource="pods")


# -- Secrets ---------------------------------------------------------------------------------

SECRETS = "/api/v1/namespaces/dev/secrets"


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_secret_create_merges_string_data_and_a_second_create_is_409(fake: FakeKube) -> None:
    body = {"metadata": {"name": "s"}, "data": {"a": _b64("1")}, "stringData": {"b": "2"}}
    status, made = call(fake, "POST", SECRETS, body)
    assert status == 201, made
    assert made["type"] == "Opaque" and "stringData" not in made
    assert made["data"] == {"a": _b64("1"), "b": _b64("2")}
    status, again = call(fake, "POST", SECRETS, body)
    assert (status, again["reason"]) == (409, "AlreadyExists")
    assert again["message"] == 'secrets "s" already exists'
    status, got = call(fake, "GET", f"{SECRETS}/s")
    assert status == 200 and got["data"] == made["data"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"data": {"a": "not base64!"}}, 400, "illegal base64 data"),
        ({"data": {"bad key": _b64("x")}}, 422, "a valid config key"),
        ({"stringData": {"big": "x" * (1024 * 1024 + 1)}}, 422, "Too long"),
    ],
)
def test_an_invalid_secret_is_refused(
    fake: FakeKube, body: dict[str, Any], status: int, says: str
) -> None:
    got_status, got = call(fake, "POST", SECRETS, {"metadata": {"name": "s"}, **body})
    assert got_status == status and says in got["message"], got
    assert fake.get("Secret", "s", "dev") is None


def test_secret_updates_keep_type_respect_immutable_and_need_the_object(
    fake: FakeKube,
) -> None:
    status, _ = call(fake, "PUT", f"{SECRETS}/s", {"metadata": {"name": "s"}})
    assert status == 404  # no create on update for Secrets
    _, made = call(fake, "POST", SECRETS, {"metadata": {"name": "s"}, "type": "Opaque"})
    version = made["metadata"]["resourceVersion"]
    changed = {"metadata": {"name": "s", "resourceVersion": version}, "type": "kubernetes.io/tls"}
    status, got = call(fake, "PUT", f"{SECRETS}/s", changed)
    assert status == 422 and "type: Invalid value: field is immutable" in got["message"]
    frozen = {
        "metadata": {"name": "s", "resourceVersion": version},
        "data": {"a": _b64("1")},
        "immutable": True,
    }
    status, got = call(fake, "PUT", f"{SECRETS}/s", frozen)
    assert status == 200, got
    stale = {**frozen, "data": {"a": _b64("2")}}
    status, got = call(fake, "PUT", f"{SECRETS}/s", stale)
    assert (status, got["reason"]) == (409, "Conflict")
    latest = {**stale, "metadata": {"name": "s", "resourceVersion": got_version(fake)}}
    status, got = call(fake, "PUT", f"{SECRETS}/s", latest)
    assert status == 422 and "field is immutable when `immutable` is set" in got["message"]


def got_version(fake: FakeKube) -> str:
    secret = fake.get("Secret", "s", "dev")
    assert secret is not None
    version: str = secret["metadata"]["resourceVersion"]
    return version
