"""``authbridge.kube.KubeAdapter`` with the real kubernetes client against the fake API server.

Covers: kubeconfig loading (file, context, missing file, unknown context,
``auto``'s choice between KUBECONFIG and in-cluster); listing namespaces
across pages; ``observed``: the three label-selected lists, plus a get of
every desired name the lists did not show (an unmanaged object of that name
is returned, with its labels, so the planner can refuse it; an unrelated
one is not); list items get their kind/apiVersion back, managedFields are
dropped, resourceVersion moves to the KubeObject; create/replace/delete
round trip; replace keeps fields others set; stale resourceVersion on PUT and
on a DELETE precondition, and create of an existing name, are KubeConflict;
``dry_run`` sends dryRun=All and changes nothing; every failure is wrapped
into the KubeApiError subclass of its status with a message that names the
call and object and says what to do (401, 403, escalation 403, 404, 409, 422,
500, unreachable, timeout); a 404 from a server that is not Kubernetes (plain
text, discovery 404 too) is "not a Kubernetes API server", never an absent
object, while a kube-apiserver's 404 for an object still is (no discovery asked);
an error body counts as a Status exactly when it is one (property). And the
fake itself, over raw HTTP: Status bodies,
defaulting, validation, selectors, list shapes, create-on-update.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from authbridge.errors import ConfigError
from authbridge.kube import MANAGED_SELECTOR, KubeAdapter, _is_status
from authbridge.rbac.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, KubeObject, ObjectRef
from authbridge.rbac.policies import RECONCILER_RBAC_FILE, RECONCILER_ROLE, cluster_role_rules
from authbridge.rbac.reconcile import (
    KubeApiError,
    KubeConflict,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnauthorized,
    KubeUnavailable,
)
from tests.fakekube import FakeKube
from tests.serving import free_port
from tests.test_cli_rbac import not_kubernetes

RBAC = "rbac.authorization.k8s.io"
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def crb(name: str, role: str = "view", group: str = "devs", **labels: str) -> KubeObject:
    return KubeObject(
        ObjectRef("ClusterRoleBinding", name),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {**MANAGED, **labels}},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": group}],
        },
    )


def rb(namespace: str, name: str, role: str = "edit") -> KubeObject:
    return KubeObject(
        ObjectRef("RoleBinding", name, namespace),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED)},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        },
    )


def sa(namespace: str, name: str) -> KubeObject:
    return KubeObject(
        ObjectRef("ServiceAccount", name, namespace),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(MANAGED),
                "annotations": {"authbridge.dev/role-arn": "arn:aws:iam::111122223333:role/ci"},
            },
        },
    )


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=["default", "kube-system", "dev", "ci"]) as server:
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def adapter(kubeconfig: Path) -> Iterator[KubeAdapter]:
    a = KubeAdapter.from_kubeconfig(kubeconfig)
    try:
        yield a
    finally:
        a.close()


def expect(error: type[KubeApiError], call: Any, *says: str) -> KubeApiError:
    with pytest.raises(error) as info:
        call()
    line = str(info.value)
    assert "\n" not in line
    for text in says:
        assert text in line, (text, line)
    return info.value


# -- configuration --------------------------------------------------------------------------


def test_kubeconfig_context_and_source(fake: FakeKube, tmp_path: Path) -> None:
    path = fake.write_kubeconfig(tmp_path / "kc", context="other")
    a = KubeAdapter.from_kubeconfig(path, "other")
    assert a.server == fake.url
    assert str(path) in a.source and "context other" in a.source
    assert "default" in a.list_namespaces()
    a.close()


def test_kubeconfig_problems_are_config_errors(fake: FakeKube, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        KubeAdapter.from_kubeconfig(tmp_path / "nope")
    path = fake.write_kubeconfig(tmp_path / "kc")
    with pytest.raises(ConfigError, match="context nope") as info:
        KubeAdapter.from_kubeconfig(path, "nope")
    assert "--context" in str(info.value)
    garbage = tmp_path / "garbage"
    garbage.write_text("just: [a, list\n")
    with pytest.raises(ConfigError, match="cannot use"):
        KubeAdapter.from_kubeconfig(garbage)


def test_auto_prefers_flags_then_kubeconfig_env_then_in_cluster(
    fake: FakeKube, kubeconfig: Path
) -> None:
    a = KubeAdapter.auto(env={"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": "x"})
    assert a.server == fake.url
    a.close()
    a = KubeAdapter.auto(kubeconfig, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert a.server == fake.url
    a.close()
    # In a pod (no flags, no KUBECONFIG): the ServiceAccount; here it has no token file.
    with pytest.raises(ConfigError, match="in-cluster"):
        KubeAdapter.auto(
            env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        )


# -- reading ----------------------------------------------------------------------------------


def test_list_namespaces_follows_continue_tokens(fake: FakeKube, adapter: KubeAdapter) -> None:
    for i in range(1100):
        fake.add_namespace(f"ns-{i:04d}")
    names = adapter.list_namespaces()
    assert len(names) == 1104 and names == sorted(names)
    pages = [r for r in fake.requests if r.path == "/api/v1/namespaces"]
    assert len(pages) == 3
    assert [bool(r.query.get("continue")) for r in pages] == [False, True, True]
    assert all(r.query["limit"] == "500" for r in pages)


def test_observed_lists_managed_and_gets_each_desired_name_not_listed(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    fake.put(crb("managed").manifest)
    fake.put(rb("dev", "managed-rb").manifest)
    fake.put(sa("ci", "deployer").manifest)
    # Same name as a desired object, without the label: someone else's.
    taken = crb("taken").manifest
    taken["metadata"]["labels"] = {"team": "platform"}
    fake.put(taken)
    # Unrelated and unmanaged: never looked at.
    unrelated = crb("unrelated").manifest
    unrelated["metadata"]["labels"] = {}
    fake.put(unrelated)
    fake.clear_requests()

    desired = [crb("managed"), crb("taken"), crb("missing"), rb("ci", "new-rb")]
    seen = {o.ref: o for o in adapter.observed(desired)}

    assert set(seen) == {
        ObjectRef("ClusterRoleBinding", "managed"),
        ObjectRef("RoleBinding", "managed-rb", "dev"),
        ObjectRef("ServiceAccount", "deployer", "ci"),
        ObjectRef("ClusterRoleBinding", "taken"),
    }
    assert not seen[ObjectRef("ClusterRoleBinding", "taken")].managed
    assert seen[ObjectRef("ClusterRoleBinding", "managed")].managed
    for obj in seen.values():
        assert obj.manifest["kind"] == obj.ref.kind  # list items lack it; put back
        assert obj.manifest["apiVersion"] in ("v1", f"{RBAC}/v1")
        assert obj.resource_version and obj.resource_version.isdigit()
        assert "resourceVersion" not in obj.manifest["metadata"]
        assert "managedFields" not in obj.manifest["metadata"]
    lists = [r for r in fake.requests if r.verb == "list"]
    assert {r.path for r in lists} == {
        f"/apis/{RBAC}/v1/clusterrolebindings",
        f"/apis/{RBAC}/v1/rolebindings",
        "/api/v1/serviceaccounts",
    }
    assert all(r.query["labelSelector"] == MANAGED_SELECTOR for r in lists)
    gets = sorted((r.path, r.status) for r in fake.requests if r.verb == "get")
    assert gets == [
        (f"/apis/{RBAC}/v1/clusterrolebindings/missing", 404),
        (f"/apis/{RBAC}/v1/clusterrolebindings/taken", 200),
        (f"/apis/{RBAC}/v1/namespaces/ci/rolebindings/new-rb", 404),
    ]


def test_get_returns_none_for_a_missing_object(adapter: KubeAdapter) -> None:
    assert adapter.get(ObjectRef("ServiceAccount", "nobody", "dev")) is None


# -- writing ----------------------------------------------------------------------------------


def test_create_replace_delete_round_trip(fake: FakeKube, adapter: KubeAdapter) -> None:
    made = adapter.create(rb("dev", "x"))
    stored = fake.get("RoleBinding", "x", "dev")
    assert stored is not None and stored["metadata"]["labels"] == MANAGED
    assert made.resource_version == stored["metadata"]["resourceVersion"]
    assert stored["metadata"]["uid"] and stored["metadata"]["creationTimestamp"]

    changed = rb("dev", "x")
    changed.manifest["subjects"].append({"kind": "Group", "apiGroup": RBAC, "name": "ops"})
    updated = adapter.replace(changed, made.resource_version)
    assert int(updated.resource_version or 0) > int(made.resource_version or 0)
    stored = fake.get("RoleBinding", "x", "dev")
    assert stored is not None and len(stored["subjects"]) == 2

    adapter.delete(changed.ref, resource_version=updated.resource_version)
    assert fake.get("RoleBinding", "x", "dev") is None
    verbs = [(r.method, r.verb, r.status) for r in fake.requests]
    assert verbs == [("POST", "create", 201), ("PUT", "update", 200), ("DELETE", "delete", 200)]
    put = fake.requests[1]
    assert put.body["metadata"]["resourceVersion"] == made.resource_version
    delete = fake.requests[2]
    assert delete.body["preconditions"] == {"resourceVersion": updated.resource_version}


def test_replace_keeps_what_others_set(fake: FakeKube, adapter: KubeAdapter) -> None:
    account = sa("ci", "deployer").manifest
    account["metadata"]["labels"]["team"] = "ci"
    account["imagePullSecrets"] = [{"name": "registry"}]
    fake.put(account)
    (seen,) = adapter.observed([])
    seen.manifest["metadata"]["annotations"]["authbridge.dev/role-arn"] = "arn:new"
    adapter.replace(seen, seen.resource_version)
    stored = fake.get("ServiceAccount", "deployer", "ci")
    assert stored is not None
    assert stored["imagePullSecrets"] == [{"name": "registry"}]
    assert stored["metadata"]["labels"]["team"] == "ci"
    assert stored["metadata"]["annotations"]["authbridge.dev/role-arn"] == "arn:new"


def test_stale_versions_and_existing_names_are_conflicts(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    first = adapter.create(crb("x"))
    expect(
        KubeConflict,
        lambda: adapter.create(crb("x")),
        "ClusterRoleBinding x was created by someone else meanwhile",
        "already exists",
        "run apply again",
    )
    fake.put(crb("x", group="changed-by-hand").manifest)  # someone else: a new resourceVersion
    e = expect(
        KubeConflict,
        lambda: adapter.replace(crb("x"), first.resource_version),
        "ClusterRoleBinding x was changed by someone else meanwhile",
        "the object has been modified",
        "run apply again",
    )
    assert (e.status, e.reason, e.verb, e.ref) == (409, "Conflict", "update", crb("x").ref)
    expect(
        KubeConflict,
        lambda: adapter.delete(crb("x").ref, resource_version=first.resource_version),
        "changed by someone else meanwhile",
        "Precondition failed",
    )
    assert fake.get("ClusterRoleBinding", "x") is not None


def test_dry_run_checks_on_the_server_and_changes_nothing(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    existing = adapter.create(crb("existing"))
    before = fake.snapshot()
    fake.clear_requests()
    adapter.create(crb("new"), dry_run=True)
    adapter.create(rb("dev", "new"), dry_run=True)
    changed = crb("existing", group="other")
    adapter.replace(changed, existing.resource_version, dry_run=True)
    adapter.delete(existing.ref, resource_version=existing.resource_version, dry_run=True)
    assert fake.snapshot() == before
    assert [r.query.get("dryRun") for r in fake.requests] == ["All"] * 4
    assert all(r.status in (200, 201) for r in fake.requests)
    # The server still validates in a dry run: a namespace that does not exist.
    expect(KubeNotFound, lambda: adapter.create(rb("nope", "x"), dry_run=True), "nope")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "error", "says"),
    [
        (401, "Unauthorized", KubeUnauthorized, ["refused the credentials", "kubeconfig"]),
        (
            403,
            "Forbidden",
            KubeForbidden,
            [
                "lacks permission to create clusterrolebindings",
                "API group rbac.authorization.k8s.io",
                "ClusterRoleBinding x",
                "apply rbac/authbridge-rbac.yaml",
                "or run as a user who may",
            ],
        ),
        (404, "NotFound", KubeNotFound, ["ClusterRoleBinding x was not found", "run apply again"]),
        (409, "Conflict", KubeConflict, ["changed by someone else meanwhile", "run apply again"]),
        (422, "Invalid", KubeInvalid, ["refused to create ClusterRoleBinding x as invalid"]),
        (500, "InternalError", KubeUnavailable, ["failed to create", "500", "try again later"]),
        (503, "ServiceUnavailable", KubeUnavailable, ["503 ServiceUnavailable"]),
    ],
)
def test_api_errors_are_wrapped_with_what_to_do(
    fake: FakeKube,
    adapter: KubeAdapter,
    status: int,
    reason: str,
    error: type[KubeApiError],
    says: list[str],
) -> None:
    fake.fail_next("POST", "/clusterrolebindings$", status, reason=reason, message="from server")
    e = expect(error, lambda: adapter.create(crb("x")), *says, "from server")
    assert (e.status, e.reason, e.verb) == (status, reason, "create")
    assert e.group == RBAC and e.resource == "clusterrolebindings"
    assert isinstance(e.__cause__, Exception)  # raised from the client's exception
    assert fake.get("ClusterRoleBinding", "x") is None


def test_list_errors_name_the_list(fake: FakeKube, adapter: KubeAdapter) -> None:
    fake.fail_next("GET", "^/api/v1/serviceaccounts$", 403)
    e = expect(
        KubeForbidden,
        lambda: adapter.observed([]),
        "lacks permission to list serviceaccounts (API group core)",
        "ServiceAccounts labelled app.kubernetes.io/managed-by=authbridge in all namespaces",
    )
    assert e.ref is None


def test_a_404_from_a_server_that_is_not_kubernetes_is_never_taken_as_absent(
    tmp_path: Path,
) -> None:
    """get() maps a kube-apiserver's 404 to "no such object"; a web server's 404 is not one."""
    with not_kubernetes(tmp_path) as (kubeconfig, paths):
        adapter = KubeAdapter.from_kubeconfig(kubeconfig)
        try:
            e = expect(
                KubeUnavailable,
                lambda: adapter.get(ObjectRef("ClusterRoleBinding", "x", None)),
                "is not a Kubernetes API server (GET /api answered 404; get ClusterRoleBinding x"
                " answered 404)",
                "cluster.server",
            )
        finally:
            adapter.close()
    assert (e.status, e.reason, e.verb, e.resource) == (
        404,
        "NotKubernetes",
        "get",
        "clusterrolebindings",
    )
    assert paths == [f"/apis/{RBAC}/v1/clusterrolebindings/x", "/api/"]


def test_a_kubernetes_404_for_an_object_still_means_absent(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    assert adapter.get(ObjectRef("ClusterRoleBinding", "nope", None)) is None
    assert [r.path for r in fake.requests] == [
        f"/apis/{RBAC}/v1/clusterrolebindings/nope"
    ]  # no probe


@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(st.text(max_size=8), st.text(max_size=8)).map(json.dumps),
        st.none(),
    )
)
def test_an_error_body_is_a_status_only_when_it_is_one(body: str | None) -> None:
    e = ApiException(status=404, reason="Not Found")
    e.body = body
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    assert _is_status(e) == (isinstance(doc, dict) and doc.get("kind") == "Status")
    e.body = json.dumps({"kind": "Status", "code": 404, "message": body})
    assert _is_status(e)


def test_roleref_is_immutable_on_the_server(fake: FakeKube, adapter: KubeAdapter) -> None:
    made = adapter.create(crb("x", role="view"))
    expect(
        KubeInvalid,
        lambda: adapter.replace(crb("x", role="edit"), made.resource_version),
        "cannot change roleRef",
        "check the mapping entry",
    )


def test_escalation_refusal_names_the_role_and_the_fix(tmp_path: Path) -> None:
    rules = cluster_role_rules(RECONCILER_RBAC_FILE.read_text(), RECONCILER_ROLE)
    with FakeKube(rules=rules) as server:
        a = KubeAdapter.from_kubeconfig(server.write_kubeconfig(tmp_path / "kc"))
        a.create(crb("ok", role="view"))  # listed under the bind rule's resourceNames
        e = expect(
            KubeForbidden,
            lambda: a.create(crb("mine", role="my-own-role")),
            "may not bind ClusterRole my-own-role",
            "escalation check",
            "add my-own-role to the resourceNames of the bind rule",
            "rbac/authbridge-rbac.yaml",
        )
        assert e.status == 403
        a.close()


def test_unreachable_server(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "kc"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    a = KubeAdapter.from_kubeconfig(path)
    e = expect(
        KubeUnavailable,
        a.list_namespaces,
        f"cannot reach the API server at http://127.0.0.1:{port} to list namespaces",
        "check the server address",
    )
    assert e.status == 0
    a.close()


def test_every_call_has_a_timeout(fake: FakeKube, kubeconfig: Path) -> None:
    from kubernetes.config import new_client_from_config

    a = KubeAdapter(
        new_client_from_config(str(kubeconfig), persist_config=False), timeout=(1.0, 0.3)
    )
    fake.on_next("POST", "/clusterrolebindings$", lambda: time.sleep(0.8))
    started = time.monotonic()
    expect(KubeUnavailable, lambda: a.create(crb("slow")), "cannot reach", "create")
    assert time.monotonic() - started < 0.75
    # The server finished the create after the client gave up: the next run sees it.
    deadline = time.monotonic() + 5
    while fake.get("ClusterRoleBinding", "slow") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [o.ref.name for o in a.observed([])] == ["slow"]
    a.close()


# -- the fake itself: raw HTTP, the shapes the real API server answers with ------------------


def call(fake: FakeKube, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(fake.url + path, data=data, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback fake
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_fake_speaks_the_api_servers_shapes(fake: FakeKube) -> None:
    crbs = f"/apis/{RBAC}/v1/clusterrolebindings"
    body = crb("x").manifest
    status, made = call(fake, "POST", crbs, body)
    assert status == 201 and made["metadata"]["resourceVersion"].isdigit()
    status, err = call(fake, "POST", crbs, body)
    assert (status, err["kind"], err["reason"], err["code"]) == (
        409,
        "Status",
        "AlreadyExists",
        409,
    )
    assert err["details"] == {"name": "x", "group": RBAC, "kind": "clusterrolebindings"}
    status, err = call(fake, "GET", f"{crbs}/nope")
    assert (status, err["reason"], err["message"]) == (
        404,
        "NotFound",
        f'clusterrolebindings.{RBAC} "nope" not found',
    )
    with_version = crb("y").manifest
    with_version["metadata"]["resourceVersion"] = "5"
    assert call(fake, "POST", crbs, with_version)[0] == 500
    wrong_kind = dict(body, kind="RoleBinding")
    assert call(fake, "POST", crbs, wrong_kind)[1]["reason"] == "BadRequest"
    bad = crb("z").manifest
    bad["subjects"] = [{"kind": "ServiceAccount", "name": "sa"}]  # needs a namespace here
    status, err = call(fake, "POST", crbs, bad)
    assert (status, err["reason"]) == (422, "Invalid") and "subjects[0].namespace" in err["message"]
    # Defaulting: a Group subject without apiGroup gets the RBAC group.
    plain = crb("w").manifest
    del plain["subjects"][0]["apiGroup"]
    assert call(fake, "POST", crbs, plain)[1]["subjects"][0]["apiGroup"] == RBAC
    # Lists: no kind/apiVersion on items; selectors; a list resourceVersion.
    unlabelled = crb("u").manifest
    unlabelled["metadata"]["labels"] = {}
    call(fake, "POST", crbs, unlabelled)
    status, listed = call(fake, "GET", crbs)
    assert listed["kind"] == "ClusterRoleBindingList" and listed["metadata"]["resourceVersion"]
    assert all("kind" not in item for item in listed["items"])
    names = lambda q: [i["metadata"]["name"] for i in call(fake, "GET", crbs + q)[1]["items"]]  # noqa: E731
    assert names("?labelSelector=app.kubernetes.io/managed-by%3Dauthbridge") == ["w", "x"]
    assert names("?labelSelector=app.kubernetes.io/managed-by!%3Dauthbridge") == ["u"]
    assert names("?labelSelector=!app.kubernetes.io/managed-by") == ["u"]
    assert call(fake, "GET", crbs + "?labelSelector=a+in+(b)")[0] == 400
    # A namespaced create in a namespace that does not exist.
    in_nope = rb("nope", "r").manifest
    status, err = call(fake, "POST", f"/apis/{RBAC}/v1/namespaces/nope/rolebindings", in_nope)
    assert (status, err["message"]) == (404, 'namespaces "nope" not found')
    # dryRun values other than All are refused.
    assert call(fake, "POST", crbs + "?dryRun=Yes", crb("v").manifest)[0] == 400
    # PUT creates a missing binding (RBAC allows create-on-update), not a missing SA.
    assert call(fake, "PUT", f"{crbs}/new", crb("new").manifest)[0] == 201
    account = sa("ci", "nobody").manifest
    assert call(fake, "PUT", "/api/v1/namespaces/ci/serviceaccounts/nobody", account)[0] == 404
    attributes = [r.attributes for r in fake.requests[:3]]
    assert attributes == [(RBAC, "clusterrolebindings", v) for v in ("create", "create", "get")]


# -- the pod admission webhook's ServiceAccount lookup -------------------------------------------


def test_service_account_annotations_for_the_admission_webhook(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    from authbridge.kube import ServiceAccountAnnotations

    adapter.create(sa("ci", "deployer"))
    lookup = ServiceAccountAnnotations(adapter)
    assert lookup.annotations("ci", "deployer") == {
        "authbridge.dev/role-arn": "arn:aws:iam::111122223333:role/ci"
    }
    assert lookup.annotations("ci", "nobody") is None
