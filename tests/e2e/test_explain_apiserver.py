"""End to end with a real kube-apiserver: the access explorer against ``kubectl auth can-i``.

Runs only with AUTHBRIDGE_E2E_APISERVER and AUTHBRIDGE_E2E_ETCD (see conftest), and
a ``kubectl`` (``AUTHBRIDGE_E2E_KUBECTL``, else the one on PATH); skipped, saying
which, otherwise.

As the cluster admin: the objects of the unit table (tests/test_explain.py: Roles,
ClusterRoles, one of them aggregated, ClusterRoleBindings and RoleBindings with
User, Group and ServiceAccount subjects, ``system:authenticated``, a binding to a
missing role), every name, namespace and subject prefixed ``explain-`` so no other
e2e module's answers change. Then the explorer reads the cluster through the kube
adapter, as ``authbridge access explain --kubeconfig`` does, and for every subject
and request of the table its decision must be ``kubectl auth can-i … --as USER
--as-group G``'s (the real RBAC authorizer, through impersonation, which adds
``system:authenticated`` as a token's authentication does). Without
kube-controller-manager the aggregated role holds no rules on the server, and the
explorer, which takes stored rules as the authorizer does, agrees either way.
And by permission over IAM principals mapped to those users: exactly the ones
``can-i`` allows.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from authbridge.explain import explain_permission, load
from authbridge.explain.core import IamSnapshot
from authbridge.explain.rbac import Request, rbac_from_objects
from authbridge.iam.access import AccessSnapshot
from authbridge.iam.model import User
from authbridge.kube import KubeAdapter
from authbridge.mapping.parse import parse_mapping
from tests.e2e.conftest import Cluster
from tests.fakekube import FakeKube
from tests.test_explain import OBJECTS, REQUESTS, WHO

KUBECTL_ENV = "AUTHBRIDGE_E2E_KUBECTL"
# kubectl auth can-i resolves TYPE through discovery, and a type the server does not
# serve (pods in the apps group) falls back to the whole argument as a core resource
# ("pods.apps"): the question would not be the one asked. The unit table keeps it.
E2E_REQUESTS = [r for r in REQUESTS if (r.api_group, r.resource) != ("apps", "pods")]
PREFIX = "explain-"
RBAC = "rbac.authorization.k8s.io"
ACCOUNT = "111122223333"
T0 = datetime(2026, 12, 4, tzinfo=UTC)


def _kubectl() -> str:
    path = os.environ.get(KUBECTL_ENV) or shutil.which("kubectl")
    if not path:
        pytest.skip(f"needs kubectl: set {KUBECTL_ENV} or put kubectl on PATH")
    return path


def _name(value: str) -> str:
    return value if value.startswith("system:") else PREFIX + value


def _ns(namespace: str | None) -> str | None:
    return None if namespace is None else PREFIX + namespace


def _prefixed(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    meta = out["metadata"]
    meta["name"] = PREFIX + meta["name"]
    if "namespace" in meta:
        meta["namespace"] = _ns(meta["namespace"])
    labels = meta.get("labels") or {}
    meta["labels"] = {
        k.replace("example.com/", "explain.example.com/"): v for k, v in labels.items()
    }
    aggregation = out.get("aggregationRule")
    if aggregation:
        for s in aggregation["clusterRoleSelectors"]:
            s["matchLabels"] = {
                k.replace("example.com/", "explain.example.com/"): v
                for k, v in s["matchLabels"].items()
            }
    ref = out.get("roleRef")
    if ref and ref["name"] != "view":
        ref["name"] = PREFIX + ref["name"]
    for s in out.get("subjects") or []:
        if s["kind"] == "ServiceAccount":
            s["namespace"] = PREFIX + s["namespace"]
            s["name"] = PREFIX + s["name"]
        else:
            s["name"] = _name(s["name"])
    return out


def _who(username: str) -> str:
    if username.startswith("system:serviceaccount:"):
        _, _, ns, name = username.split(":")
        return f"system:serviceaccount:{PREFIX}{ns}:{PREFIX}{name}"
    return _name(username)


def _request(r: Request) -> Request:
    return Request(r.verb, r.resource, r.api_group, _ns(r.namespace), r.name)


def _path(doc: dict[str, Any]) -> str:
    kind = doc["kind"]
    ns = doc["metadata"].get("namespace")
    if kind == "Namespace":
        return "/api/v1/namespaces"
    plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind) or (
        "clusterrolebindings" if kind == "ClusterRoleBinding" else "rolebindings"
    )
    where = f"/namespaces/{ns}" if ns else ""
    return f"/apis/{RBAC}/v1{where}/{plural}"


def _create(cluster: Cluster, doc: dict[str, Any]) -> None:
    status, body = cluster.call("POST", _path(doc), doc)
    assert status in (201, 409), (doc["metadata"], body)


def can_i_args(
    kubectl: str, kubeconfig: Path, username: str, groups: list[str], r: Request
) -> list[str]:
    """``kubectl auth can-i`` for ``r``: ``deployments.apps``, ``--subresource``, a name as
    ``TYPE/NAME``, ``--all-namespaces`` for a cluster-wide question, every group named."""
    resource = r.resource.partition("/")[0] + (f".{r.api_group}" if r.api_group else "")
    target = f"{resource}/{r.name}" if r.name else resource
    args = [kubectl, "--kubeconfig", str(kubeconfig), "auth", "can-i", r.verb, target]
    if "/" in r.resource:
        args += ["--subresource", r.resource.partition("/")[2]]
    args += ["-n", r.namespace] if r.namespace else ["--all-namespaces"]
    args += ["--as", username]
    # system:authenticated named, as a token's authentication adds it: groups given, so
    # impersonation adds nothing of its own (a ServiceAccount's system:serviceaccounts…).
    for g in dict.fromkeys([*groups, "system:authenticated"]):
        args += ["--as-group", g]
    return args


def can_i(kubectl: str, kubeconfig: Path, username: str, groups: list[str], r: Request) -> bool:
    proc = subprocess.run(
        can_i_args(kubectl, kubeconfig, username, groups, r),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    # "no" may carry the authorizer's reason or evaluation error: "no - RBAC: role … not found".
    answer = proc.stdout.strip().split(" - ", 1)[0]
    assert answer in ("yes", "no") and proc.returncode == (0 if answer == "yes" else 1), proc
    return answer == "yes"


# -- without the binaries: the harness itself -----------------------------------------------


def _stored(kube: FakeKube) -> Any:
    kinds = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")
    docs = [o for k in kinds for o in kube.objects(k)]
    return rbac_from_objects(docs, source="cluster", where=kube.url)


def test_the_prefixed_table_means_what_the_unit_table_means() -> None:
    """The e2e table is the unit table renamed: the same decisions, in the fake too."""
    namespaces = ("dev", "prod", "team-a", "ci")
    with (
        FakeKube(namespaces=[PREFIX + n for n in namespaces]) as renamed,
        FakeKube(namespaces=namespaces) as plain,
    ):
        for doc in OBJECTS:
            renamed.put(_prefixed(doc))  # valid by the API server's rules, as the fake has them
            plain.put(doc)
        mine, theirs = _stored(renamed), _stored(plain)
        for username, groups in WHO:
            who, names = _who(username), [*(_name(g) for g in groups), "system:authenticated"]
            for r in REQUESTS:
                decision = mine.allows(who, names, _request(r))
                assert decision is theirs.allows(username, [*groups, "system:authenticated"], r)
                assert decision is renamed.allowed(
                    who,
                    names,
                    verb=r.verb,
                    resource=r.resource,
                    group=r.api_group,
                    namespace=_ns(r.namespace),
                    name=r.name,
                )


def test_can_i_command_lines() -> None:
    kc = Path("/k")
    assert can_i_args("kubectl", kc, "u", ["g"], Request("get", "pods/log", "", "dev"))[3:] == [
        "auth",
        "can-i",
        "get",
        "pods",
        "--subresource",
        "log",
        "-n",
        "dev",
        "--as",
        "u",
        "--as-group",
        "g",
        "--as-group",
        "system:authenticated",
    ]
    args = can_i_args("kubectl", kc, "u", [], Request("delete", "deployments", "apps"))
    assert args[6:9] == ["deployments.apps", "--all-namespaces", "--as"]
    named = can_i_args("kubectl", kc, "u", [], Request("get", "configmaps", "", "x", "app"))
    assert named[6] == "configmaps/app"


@pytest.fixture(scope="module")
def setup(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Any]:
    kubectl = _kubectl()
    for ns in ("dev", "prod", "team-a", "ci"):
        _create(
            cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PREFIX + ns}}
        )
    for doc in OBJECTS:
        _create(cluster, _prefixed(doc))
    kubeconfig = cluster.write_admin_kubeconfig(
        tmp_path_factory.mktemp("explain") / "admin.kubeconfig"
    )
    # The RBAC authorizer reads through an informer: wait for the last object to count.
    probe = _request(Request("get", "pods", "", "dev"))
    deadline = time.monotonic() + 30
    while not can_i(kubectl, kubeconfig, _who("system:serviceaccount:ci:builder"), [], probe):
        assert time.monotonic() < deadline, "the bindings never took effect"
        time.sleep(0.5)
    adapter = KubeAdapter.from_kubeconfig(kubeconfig)
    try:
        live = rbac_from_objects(adapter.rbac_objects(), source="cluster", where=adapter.source)
    finally:
        adapter.close()
    return kubectl, kubeconfig, live


def test_every_decision_is_kubectl_auth_can_i(setup: tuple[str, Path, Any]) -> None:
    kubectl, kubeconfig, live = setup
    for username, groups in WHO:
        who, names = _who(username), [_name(g) for g in groups]
        for r in E2E_REQUESTS:
            asked = _request(r)
            expected = can_i(kubectl, kubeconfig, who, names, asked)
            mine = live.allows(who, [*names, "system:authenticated"], asked)
            assert mine is expected, (who, names, asked)


def test_by_permission_names_exactly_the_principals_can_i_allows(
    setup: tuple[str, Path, Any],
) -> None:
    kubectl, kubeconfig, live = setup
    users = [
        User(f"AIDA{i:017d}", ACCOUNT, n, "/", f"arn:aws:iam::{ACCOUNT}:user/{n}", True, T0)
        for i, (n, _) in enumerate(WHO)
        if not n.startswith("system:")
    ]
    mapping = parse_mapping(
        "mapUsers:\n"
        + "".join(
            f"  - userarn: arn:aws:iam::{ACCOUNT}:user/{n}\n    username: {_name(n)}\n"
            f"    groups: [{', '.join(_name(g) for g in gs)}]\n"
            for n, gs in WHO
            if not n.startswith("system:")
        ),
        "e2e",
    )
    snapshot = load.snapshot(
        iam=IamSnapshot("aws", tuple(users), {}, ()),
        mapping=mapping,
        access=AccessSnapshot(0, {"prod": "CONFIG_MAP"}, {}),
        clusters=["prod"],
        rbac_of=lambda _c: live,
    )
    groups_of = dict(WHO)
    for r in E2E_REQUESTS:
        asked = _request(r)
        answer = explain_permission(snapshot, asked)
        reached = {p.arn for p in answer.clusters[0].principals if p.allowed}
        expected = {
            u.arn
            for u in users
            if can_i(
                kubectl, kubeconfig, _name(u.name), [_name(g) for g in groups_of[u.name]], asked
            )
        }
        assert reached == expected, asked
