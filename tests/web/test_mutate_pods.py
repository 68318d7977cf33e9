"""``POST /mutate/pods``: AdmissionReview v1 fixtures, the JSONPatch applied, hostile bodies.

The ServiceAccount lookup is the real :class:`authbridge.kube.ServiceAccountAnnotations`
over the fake API server (tests/fakekube.py) where it matters, and a mapping
of annotations elsewhere; the patch the webhook answers is applied (RFC 6902
``add``) to the pod to check the result, and applied again to check idempotency.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authbridge.keys import KeyRing
from authbridge.kube import KubeAdapter, ServiceAccountAnnotations
from authbridge.rbac.model import KubeObject, ObjectRef
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.web import create_app
from authbridge.web.mutate import MOUNT_PATH, VOLUME_NAME, ServiceAccounts
from tests.fakekube import FakeKube
from tests.web.helpers import ISSUER, Clock

ROLE = "arn:aws:iam::111122223333:role/ci/Deployer"
TOKEN_FILE = f"{MOUNT_PATH}/token"


class Annotations:
    """ServiceAccount annotations by (namespace, name); ``broken`` makes every read fail."""

    def __init__(self, accounts: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self.accounts = dict(accounts)
        self.broken = False
        self.reads: list[tuple[str, str]] = []

    def annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads.append((namespace, name))
        if self.broken:
            raise ConnectionError("the API server cannot be reached")
        return self.accounts.get((namespace, name))


@pytest.fixture
def accounts() -> Annotations:
    return Annotations(
        {
            ("ci", "deployer"): {"authbridge.dev/role-arn": ROLE},
            ("ci", "eks"): {
                "eks.amazonaws.com/role-arn": ROLE,
                "eks.amazonaws.com/token-expiration": "3600",
                "eks.amazonaws.com/audience": "sts.amazonaws.com",
            },
            ("ci", "plain"): {"team": "a"},
            ("ci", "bad-expiry"): {
                "authbridge.dev/role-arn": ROLE,
                "authbridge.dev/token-expiration": "60",
            },
            ("ci", "bad-role"): {"authbridge.dev/role-arn": "arn:aws:iam::1:user/x"},
        }
    )


def build(
    settings: Settings,
    app_store: SqlStore,
    keyring: KeyRing,
    clock: Clock,
    lookup: ServiceAccounts | None,
) -> Flask:
    return create_app(settings, store=app_store, keys=keyring, clock=clock, service_accounts=lookup)


@pytest.fixture
def app(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock, accounts: Annotations
) -> Flask:
    return build(settings, app_store, keyring, clock, accounts)


def pod(service_account: str | None = "deployer", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.example/app:1"}],
        **spec,
    }
    if service_account is not None:
        body["serviceAccountName"] = service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "deployer-", "namespace": "ci"},
        "spec": body,
    }


def review(obj: Any, *, dry_run: bool = False, operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "ci",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def post(client: FlaskClient, doc: Any) -> dict[str, Any]:
    response = client.post("/mutate/pods", data=json.dumps(doc), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    answer: dict[str, Any] = body["response"]
    assert answer["uid"] == doc["request"]["uid"]
    assert answer["allowed"] is True
    return answer


def _pointer(doc: Any, path: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, parts[-1]


def apply_patch(obj: dict[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 6902 ``add`` operations, strictly: the parent must exist, ``-`` appends."""
    if "patch" not in answer:
        return obj
    assert answer["patchType"] == "JSONPatch"
    out = copy.deepcopy(obj)
    for op in json.loads(base64.b64decode(answer["patch"])):
        assert op["op"] == "add", op
        parent, last = _pointer(out, op["path"])
        if isinstance(parent, list):
            assert last == "-", op
            parent.append(op["value"])
        else:
            assert last not in parent, op  # never replaces what is there
            parent[last] = op["value"]
    return out


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# --------------------------------------------------------------------------- mutation


def test_a_pod_of_an_annotated_service_account_gets_the_token_and_the_environment(
    client: FlaskClient,
) -> None:
    original = pod(
        initContainers=[{"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    answer = post(client, review(original))
    mutated = apply_patch(original, answer)
    volume = mutated["spec"]["volumes"][-1]
    assert volume == {
        "name": VOLUME_NAME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "authbridge",
                        "expirationSeconds": 86400,
                        "path": "token",
                    }
                }
            ]
        },
    }
    assert mutated["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}
    for container in [*mutated["spec"]["initContainers"], *mutated["spec"]["containers"]]:
        assert {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True} in container[
            "volumeMounts"
        ]
        env = env_of(container)
        assert env["AUTHBRIDGE_ROLE_ARN"] == ROLE
        assert env["AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_FILE
        assert env["AUTHBRIDGE_ENDPOINT"] == ISSUER
    assert env_of(mutated["spec"]["initContainers"][0])["A"] == "1"


def test_eks_annotations_set_expiry_and_audience(client: FlaskClient) -> None:
    original = pod("eks")
    mutated = apply_patch(original, post(client, review(original)))
    source = mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}


def test_an_expiry_out_of_range_uses_the_default_with_a_warning(client: FlaskClient) -> None:
    original = pod("bad-expiry")
    answer = post(client, review(original))
    mutated = apply_patch(original, answer)
    source = mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert source["expirationSeconds"] == 86400
    assert any("token-expiration" in w for w in answer["warnings"])


def test_a_role_annotation_that_is_no_role_arn_is_not_injected(client: FlaskClient) -> None:
    answer = post(client, review(pod("bad-role")))
    assert "patch" not in answer
    assert any("not a role ARN" in w for w in answer["warnings"])


@pytest.mark.parametrize("account", ["plain", "nobody", None])
def test_other_pods_are_allowed_unchanged(client: FlaskClient, account: str | None) -> None:
    answer = post(client, review(pod(account)))
    assert set(answer) == {"uid", "allowed"}


def test_the_default_service_account_is_looked_up(
    client: FlaskClient, accounts: Annotations
) -> None:
    post(client, review(pod(None)))
    assert accounts.reads == [("ci", "default")]


def test_an_already_mutated_pod_is_left_alone(client: FlaskClient) -> None:
    original = pod()
    once = apply_patch(original, post(client, review(original)))
    again = post(client, review(once))
    assert "patch" not in again
    assert apply_patch(once, again) == once


def test_an_existing_volume_of_the_same_name_is_kept(client: FlaskClient) -> None:
    theirs = {"name": VOLUME_NAME, "secret": {"secretName": "mine"}}
    original = pod(volumes=[theirs])
    mutated = apply_patch(original, post(client, review(original)))
    assert mutated["spec"]["volumes"] == [theirs]
    # The containers still get the mount of that name and the environment.
    assert env_of(mutated["spec"]["containers"][0])["AUTHBRIDGE_ROLE_ARN"] == ROLE


def test_a_container_keeps_its_own_variables_and_mounts(client: FlaskClient) -> None:
    original = pod(
        containers=[
            {
                "name": "app",
                "env": [{"name": "AUTHBRIDGE_ROLE_ARN", "value": "arn:aws:iam::1:role/mine"}],
                "volumeMounts": [{"name": "x", "mountPath": MOUNT_PATH}],
            }
        ]
    )
    mutated = apply_patch(original, post(client, review(original)))
    container = mutated["spec"]["containers"][0]
    assert env_of(container)["AUTHBRIDGE_ROLE_ARN"] == "arn:aws:iam::1:role/mine"
    assert container["volumeMounts"] == [{"name": "x", "mountPath": MOUNT_PATH}]
    assert env_of(container)["AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE"] == TOKEN_FILE


def test_a_dry_run_gets_the_same_answer(client: FlaskClient) -> None:
    assert post(client, review(pod(), dry_run=True)) == post(client, review(pod()))


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_other_operations_are_allowed_unchanged(client: FlaskClient, operation: str) -> None:
    assert set(post(client, review(pod(), operation=operation))) == {"uid", "allowed"}


def test_a_failing_service_account_lookup_admits_the_pod_with_a_warning(
    client: FlaskClient, accounts: Annotations
) -> None:
    accounts.broken = True
    answer = post(client, review(pod()))
    assert "patch" not in answer
    assert answer["warnings"] == [
        "authbridge: ServiceAccount ci/deployer could not be read; the pod is admitted"
        " without web identity"
    ]


def test_without_a_lookup_pods_are_admitted_with_a_warning(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock
) -> None:
    client = build(settings, app_store, keyring, clock, None).test_client()
    answer = post(client, review(pod()))
    assert "patch" not in answer and "no ServiceAccount lookup" in answer["warnings"][0]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=["default", "ci"]) as server:
        yield server


def test_through_the_kube_adapter_against_the_fake_api_server(
    tmp_path: Path,
    fake: FakeKube,
    settings: Settings,
    app_store: SqlStore,
    keyring: KeyRing,
    clock: Clock,
) -> None:
    adapter = KubeAdapter.from_kubeconfig(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        adapter.create(
            KubeObject(
                ObjectRef("ServiceAccount", "deployer", "ci"),
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {
                        "name": "deployer",
                        "namespace": "ci",
                        "annotations": {"eks.amazonaws.com/role-arn": ROLE},
                    },
                },
            )
        )
        lookup = ServiceAccountAnnotations(adapter)
        client = build(settings, app_store, keyring, clock, lookup).test_client()
        mutated = apply_patch(pod(), post(client, review(pod())))
        assert env_of(mutated["spec"]["containers"][0])["AUTHBRIDGE_ROLE_ARN"] == ROLE
        assert "patch" not in post(client, review(pod("nobody")))
    finally:
        adapter.close()


# --------------------------------------------------------------------------- hostile bodies


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "must be a JSON AdmissionReview"),
        (b"[]", "must be a JSON object"),
        (json.dumps({**review(pod()), "apiVersion": "admission.k8s.io/v1beta1"}), "apiVersion"),
        (json.dumps({**review(pod()), "kind": "TokenReview"}), "kind AdmissionReview"),
        (json.dumps({**review(pod()), "request": []}), "request must be an object"),
        (
            json.dumps({**review(pod()), "request": {**review(pod())["request"], "uid": ""}}),
            "request.uid",
        ),
        (
            json.dumps({**review(pod()), "request": {**review(pod())["request"], "uid": 5}}),
            "request.uid",
        ),
        (
            json.dumps({**review(pod()), "request": {**review(pod())["request"], "object": 5}}),
            "request.object",
        ),
        (
            json.dumps({**review(pod()), "request": {**review(pod())["request"], "dryRun": "yes"}}),
            "request.dryRun",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "apiVersion": "x", "kind": "AdmissionReview"}',
            "appears twice",
        ),
        (b"[" * 60000, "must be a JSON AdmissionReview"),
    ],
)
def test_malformed_reviews_are_refused_naming_the_field(
    client: FlaskClient, body: bytes | str, says: str
) -> None:
    response = client.post("/mutate/pods", data=body, content_type="application/json")
    assert response.status_code == 400
    assert says in response.get_json()["error"]


def test_oversized_review_is_refused(client: FlaskClient, settings: Settings) -> None:
    big = review(pod(containers=[{"name": "a", "image": "x" * settings.max_request_bytes}]))
    response = client.post("/mutate/pods", data=json.dumps(big), content_type="application/json")
    assert response.status_code == 413


def test_a_review_that_is_not_json_content_is_refused(client: FlaskClient) -> None:
    response = client.post(
        "/mutate/pods", data=json.dumps(review(pod())), content_type="text/plain"
    )
    assert response.status_code == 415


def test_hostile_pod_shapes_are_admitted_unchanged_not_crashed(client: FlaskClient) -> None:
    for spec in (
        {"serviceAccountName": "deployer", "containers": "nope"},
        {"serviceAccountName": "deployer", "containers": [5, None, {"env": "x"}]},
        {"serviceAccountName": ["deployer"]},
        {"serviceAccountName": "Deployer/../x"},
    ):
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec}
        answer = post(client, review(obj))
        assert answer["allowed"] is True


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_container = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=5)},
    optional={
        "env": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["A", "AUTHBRIDGE_ROLE_ARN", "AUTHBRIDGE_ENDPOINT"])}
            ),
            max_size=3,
        ),
        "volumeMounts": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["x", VOLUME_NAME]),
                    "mountPath": st.sampled_from(["/x", MOUNT_PATH]),
                }
            ),
            max_size=2,
        ),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    containers=st.lists(_container, max_size=3),
    init=st.none() | st.lists(_container, max_size=2),
    volumes=st.none()
    | st.lists(st.sampled_from([{"name": "x"}, {"name": VOLUME_NAME}]), max_size=2),
)
def test_property_the_patch_applies_and_a_second_review_adds_nothing(
    client: FlaskClient, containers: list[Any], init: list[Any] | None, volumes: list[Any] | None
) -> None:
    spec: dict[str, Any] = {"containers": containers}
    if init is not None:
        spec["initContainers"] = init
    if volumes is not None:
        spec["volumes"] = volumes
    original = pod(**spec)
    mutated = apply_patch(original, post(client, review(original)))
    names = [v.get("name") for v in mutated["spec"].get("volumes", [])]
    assert VOLUME_NAME in names or not (containers or init)
    for container in [*mutated["spec"].get("initContainers", []), *mutated["spec"]["containers"]]:
        assert "AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE" in env_of(container)
    assert "patch" not in post(client, review(mutated))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_json)
def test_property_any_json_body_is_answered_200_or_400(client: FlaskClient, body: Any) -> None:
    for doc in (body, {**review(pod()), "request": body}):
        response = client.post(
            "/mutate/pods", data=json.dumps(doc), content_type="application/json"
        )
        assert response.status_code in (200, 400)
