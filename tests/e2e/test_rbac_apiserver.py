"""End to end with a real kube-apiserver: `authbridge rbac apply` as the reconciler itself.

Runs only with AUTHBRIDGE_E2E_APISERVER and AUTHBRIDGE_E2E_ETCD (see conftest);
the two tests that need the built-in view and edit to grant anything also need
AUTHBRIDGE_E2E_CONTROLLER_MANAGER (kube-controller-manager aggregates them) and
are skipped, saying so, without it. Their unit twins against the fake API server
are in tests/test_kube_least_privilege.py.

As the cluster admin, once: the namespaces, ``rbac/access-policies.yaml`` and
``rbac/authbridge-rbac.yaml`` (the ServiceAccount authbridge/authbridge, the
ClusterRole authbridge:reconciler and its binding). Then a TokenRequest mints a
token for that ServiceAccount, and every ``authbridge rbac`` command runs as a
subprocess with a kubeconfig holding only that token: never as an admin, so
the real API server (authorizer and escalation check) proves that the
reconciler's RBAC is enough.

Covers: apply creates the objects (a second plan is empty, exit 0); with the
SubjectAccessReview API, alice (the user and groups the webhook gives her
token, read with SelfSubjectReview) may do exactly what her bindings grant:
view in dev, edit in team-a (a pattern), nothing in default, no secrets in dev,
nothing cluster-wide; her own token gets the same answers from the API
(SelfSubjectAccessReview and real requests: 200 / 403); an assumed Admin role
session is cluster-admin; the reconciler itself cannot read secrets (it is not
an admin); ``apply --prune`` after an entry is removed deletes exactly that
entry's objects (alice then loses edit in team-a) and leaves the reconciler's
own, unlabelled RBAC alone; dropping the admins entry is refused, naming it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from authbridge.rbac.policies import ACCESS_POLICIES_FILE, RECONCILER_RBAC_FILE
from tests.e2e.conftest import E2E_MAPPING, Cluster
from tests.e2e.test_webhook_apiserver import token
from tests.serving import AUTHBRIDGE, clean_env

RBAC = "rbac.authorization.k8s.io"
RECONCILER = "system:serviceaccount:authbridge:authbridge"

TEAM_EDIT = """\
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["team-*"]
"""
SERVICE_ACCOUNTS = """\
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: edit
"""
# E2E_MAPPING ends in its bindings list: admins -> cluster-admin, devs -> view in dev.
FULL = E2E_MAPPING + TEAM_EDIT + SERVICE_ACCOUNTS
WITHOUT_TEAM_EDIT = E2E_MAPPING + SERVICE_ACCOUNTS
WITHOUT_ADMINS = FULL.replace(
    '  - group: "authbridge:admins"\n    clusterRole: cluster-admin\n', ""
)

_COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "ClusterRole": f"/apis/{RBAC}/v1/clusterroles",
    "ClusterRoleBinding": f"/apis/{RBAC}/v1/clusterrolebindings",
}


def admin_create(cluster: Cluster, doc: dict[str, Any]) -> None:
    path = _COLLECTIONS[doc["kind"]].format(namespace=doc["metadata"].get("namespace"))
    status, body = cluster.call("POST", path, doc)
    assert status in (201, 409), (doc["kind"], doc["metadata"]["name"], body)  # 409: made before


@dataclass
class Reconciler:
    """Runs `authbridge rbac …` as the reconciler's ServiceAccount, in its own directory."""

    root: Path
    kubeconfig: Path
    mapping: Path

    def use(self, text: str) -> None:
        tmp = self.mapping.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.mapping)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                AUTHBRIDGE,
                "rbac",
                *args,
                "--kubeconfig",
                str(self.kubeconfig),
                "--mapping",
                str(self.mapping),
            ],
            cwd=self.root,
            env=clean_env(HOME=str(self.root)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def reconciler(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reconciler]:
    for name in ("authbridge", "dev", "team-a", "ci"):
        admin_create(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for file in (ACCESS_POLICIES_FILE, RECONCILER_RBAC_FILE):
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if doc:
                admin_create(cluster, doc)
    status, body = cluster.call(
        "POST",
        "/api/v1/namespaces/authbridge/serviceaccounts/authbridge/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    assert status == 201, body
    sa_token = body["status"]["token"]
    root = tmp_path_factory.mktemp("reconciler")
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": cluster.url,
                            "certificate-authority": str(cluster.ca_file),
                        },
                    }
                ],
                "users": [{"name": "reconciler", "user": {"token": sa_token}}],
                "contexts": [
                    {"name": "reconciler", "context": {"cluster": "e2e", "user": "reconciler"}}
                ],
                "current-context": "reconciler",
            }
        )
    )
    kubeconfig.chmod(0o600)
    r = Reconciler(root, kubeconfig, root / "mapping.yaml")
    r.use(FULL)
    # Who the kubeconfig speaks for: the ServiceAccount, not an admin.
    status, body = cluster.call(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=sa_token,
    )
    assert status in (200, 201), body
    assert body["status"]["userInfo"]["username"] == RECONCILER
    yield r


def sar(cluster: Cluster, user: str, groups: list[str], **attributes: str) -> bool:
    """SubjectAccessReview, asked as the admin: may ``user`` in ``groups`` do that?"""
    status, body = cluster.call(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
        },
    )
    assert status == 201, body
    return bool(body["status"].get("allowed"))


def ssar(cluster: Cluster, bearer: str, **attributes: str) -> bool:
    """SelfSubjectAccessReview with ``bearer``: may the token's user do that?"""
    status, body = cluster.call(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
        token=bearer,
    )
    assert status == 201, body
    return bool(body["status"].get("allowed"))


def eventually(check: Callable[[], Any], expected: Any, timeout: float = 15) -> None:
    """The RBAC authorizer reads bindings through an informer: allow it a moment."""
    deadline = time.monotonic() + timeout
    got = check()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        got = check()
    assert got == expected


def whoami(cluster: Cluster, bearer: str) -> tuple[str, list[str]]:
    status, body = cluster.whoami(bearer)
    assert status in (200, 201), body
    info = body["status"]["userInfo"]
    return info["username"], list(info["groups"])


# What alice's bindings grant, and what they must not: (attributes, allowed).
ALICE = [
    ({"namespace": "dev", "verb": "get", "resource": "pods"}, True),
    ({"namespace": "dev", "verb": "list", "resource": "configmaps"}, True),
    ({"namespace": "dev", "verb": "create", "resource": "pods"}, False),  # view only
    ({"namespace": "dev", "verb": "get", "resource": "secrets"}, False),  # view has no secrets
    ({"namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments"}, True),
    ({"namespace": "default", "verb": "get", "resource": "pods"}, False),
    ({"namespace": "ci", "verb": "get", "resource": "pods"}, False),
    ({"verb": "delete", "resource": "namespaces"}, False),
    ({"verb": "list", "resource": "nodes"}, False),
    ({"verb": "create", "group": RBAC, "resource": "clusterrolebindings"}, False),
]


@pytest.mark.usefixtures("aggregated_roles")
def test_apply_as_the_reconciler_grants_exactly_what_the_mapping_says(
    cluster: Cluster, reconciler: Reconciler
) -> None:
    pending = reconciler.run("plan")
    assert pending.returncode == 2, pending

    applied = reconciler.run("apply", "--prune")
    assert applied.returncode == 0, applied
    assert applied.stderr == ""
    assert (
        "+ created ClusterRoleBinding authbridge-cluster-admin-authbridge-admins-" in applied.stdout
    )
    assert applied.stdout.count("+ created ") == 5  # CRB, RB dev, RB team-a, SA, its RB in ci
    again = reconciler.run("plan", "--prune")
    assert again.returncode == 0, again
    assert again.stdout.startswith("No changes: the cluster matches the mapping")

    alice = token(cluster, "prod")
    user, groups = whoami(cluster, alice)
    assert user == "alice" and "authbridge:devs" in groups
    for attributes, allowed in ALICE:
        eventually(lambda a=attributes: sar(cluster, user, groups, **a), allowed)
        assert ssar(cluster, alice, **attributes) == allowed, attributes
    # Real requests with alice's token.
    assert cluster.call("GET", "/api/v1/namespaces/dev/pods", token=alice)[0] == 200
    assert cluster.call("GET", "/api/v1/namespaces/default/pods", token=alice)[0] == 403
    assert cluster.call("GET", "/api/v1/namespaces/dev/secrets", token=alice)[0] == 403

    admin = token(
        cluster, "prod", "--role", cluster.authbridge.role_arn, "--session-name", "e2e-rbac"
    )
    admin_user, admin_groups = whoami(cluster, admin)
    assert admin_user == "admin:e2e-rbac"
    eventually(
        lambda: sar(cluster, admin_user, admin_groups, verb="delete", resource="namespaces"), True
    )
    assert ssar(cluster, admin, namespace="kube-system", verb="get", resource="secrets")

    # The ServiceAccount twin of the ci-deployer role, and its RoleBinding.
    status, body = cluster.call("GET", "/api/v1/namespaces/ci/serviceaccounts/deployer")
    assert status == 200, body
    assert body["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/ci-deployer"
    )
    deployer = ("system:serviceaccount:ci:deployer", ["system:serviceaccounts"])
    eventually(
        lambda: sar(cluster, *deployer, namespace="ci", verb="create", resource="pods"), True
    )
    assert not sar(cluster, *deployer, namespace="dev", verb="get", resource="pods")

    # The reconciler binds, but is no admin itself.
    sa_groups = ["system:serviceaccounts", "system:serviceaccounts:authbridge"]
    assert not sar(cluster, RECONCILER, sa_groups, namespace="dev", verb="get", resource="secrets")
    assert not sar(cluster, RECONCILER, sa_groups, verb="delete", resource="namespaces")
    assert sar(cluster, RECONCILER, sa_groups, verb="list", group=RBAC, resource="rolebindings")


@pytest.mark.usefixtures("aggregated_roles")
def test_prune_removes_exactly_the_removed_entry(cluster: Cluster, reconciler: Reconciler) -> None:
    reconciler.use(FULL)
    assert reconciler.run("apply").returncode == 0
    alice = token(cluster, "prod")
    user, groups = whoami(cluster, alice)
    deploy = {"namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments"}
    eventually(lambda: sar(cluster, user, groups, **deploy), True)

    reconciler.use(WITHOUT_TEAM_EDIT)
    kept = reconciler.run("plan")
    assert kept.returncode == 0, kept
    assert "would delete with --prune" in kept.stdout
    pruned = reconciler.run("apply", "--prune")
    assert pruned.returncode == 0, pruned
    deleted = [line for line in pruned.stdout.splitlines() if line.startswith("- deleted")]
    assert len(deleted) == 1 and "RoleBinding team-a/authbridge-edit-authbridge-devs-" in deleted[0]
    eventually(lambda: sar(cluster, user, groups, **deploy), False)
    assert sar(cluster, user, groups, namespace="dev", verb="get", resource="pods")
    # The reconciler's own RBAC carries no managed-by label: never pruned.
    status, _ = cluster.call("GET", f"/apis/{RBAC}/v1/clusterrolebindings/authbridge:reconciler")
    assert status == 200


def test_removing_the_last_cluster_admin_entry_is_refused(
    cluster: Cluster, reconciler: Reconciler
) -> None:
    reconciler.use(FULL)
    assert reconciler.run("apply").returncode == 0
    reconciler.use(WITHOUT_ADMINS)
    refused = reconciler.run("apply", "--prune")
    assert refused.returncode == 1, refused
    assert refused.stderr.count("\n") == 1
    assert "bindings[0]" in refused.stderr and "--allow-lockout" in refused.stderr
    status, body = cluster.call("GET", f"/apis/{RBAC}/v1/clusterrolebindings")
    assert status == 200
    names = [item["metadata"]["name"] for item in body["items"]]
    assert any(n.startswith("authbridge-cluster-admin-authbridge-admins-") for n in names)
    reconciler.use(FULL)
