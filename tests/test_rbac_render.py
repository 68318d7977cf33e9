"""Tests for authbridge.rbac.render: the YAML that ``authbridge rbac render`` prints.

Covers:
* the documents parse back to exactly the desired manifests, one per object,
  each starting with ``---``; no objects → "";
* key order: apiVersion, kind, metadata (name, namespace, labels, annotations), rest;
* observed objects lose every server-side field (status, resourceVersion, uid,
  creationTimestamp, managedFields, generation) and keep what a client sets;
* names that YAML would otherwise read as booleans, numbers or null stay strings;
* every document is a valid RoleBinding / ClusterRoleBinding / ServiceAccount for
  the kubernetes client's models (tests only: the package never imports it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from authbridge.mapping import parse_mapping
from authbridge.rbac import KubeObject, ObjectRef, desired_objects, render_yaml
from authbridge.rbac.render import apply_manifest

MAPPING = """\
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
bindings:
  - group: "authbridge:admins"
    clusterRole: cluster-admin
  - user: alice
    clusterRole: authbridge:view
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["dev", "team-*"]
  - group: "true"
    clusterRole: view
  - group: "0123"
    clusterRole: view
  - group: "null"
    clusterRole: view
  - group: "a: b #c"
    clusterRole: view
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: edit
"""
NAMESPACES = ["ci", "dev", "team-a"]
MODELS = {
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "RoleBinding": "V1RoleBinding",
    "ServiceAccount": "V1ServiceAccount",
}


@pytest.fixture
def objects() -> list[KubeObject]:
    return desired_objects(parse_mapping(MAPPING, "m"), NAMESPACES)


def test_parses_back_to_the_same_manifests(objects: list[KubeObject]) -> None:
    text = render_yaml(objects)
    assert list(yaml.safe_load_all(text)) == [o.manifest for o in objects]
    assert text.startswith("---\n")
    assert text.count("---\n") == len(objects) == 10


def test_key_order(objects: list[KubeObject]) -> None:
    for doc in yaml.safe_load_all(render_yaml(objects)):
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        order = ["name", "namespace", "labels", "annotations"]
        assert list(doc["metadata"]) == [k for k in order if k in doc["metadata"]]
        if doc["kind"] != "ServiceAccount":
            assert list(doc) == ["apiVersion", "kind", "metadata", "roleRef", "subjects"]


def test_strings_that_look_like_other_types_stay_strings(objects: list[KubeObject]) -> None:
    groups = [
        doc["subjects"][0]["name"]
        for doc in yaml.safe_load_all(render_yaml(objects))
        if doc["kind"] == "ClusterRoleBinding"
    ]
    assert groups[-4:] == ["true", "0123", "null", "a: b #c"]


def test_no_objects_no_documents() -> None:
    assert render_yaml([]) == ""


def test_server_fields_are_left_out() -> None:
    observed = KubeObject(
        ObjectRef("ServiceAccount", "deployer", "ci"),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "deployer",
                "namespace": "ci",
                "uid": "1f0c",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2024-05-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}],
                "labels": {"app.kubernetes.io/managed-by": "authbridge"},
                "annotations": {},
            },
            "secrets": [{"name": "deployer-token"}],
            "status": {"x": 1},
        },
        resource_version="42",
    )
    (doc,) = yaml.safe_load_all(render_yaml([observed]))
    assert doc == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "deployer",
            "namespace": "ci",
            "labels": {"app.kubernetes.io/managed-by": "authbridge"},
        },
        "secrets": [{"name": "deployer-token"}],
    }
    assert "status" in observed.manifest  # the input is not changed


def test_apply_manifest_orders_keys() -> None:
    shuffled: dict[str, Any] = {
        "subjects": [],
        "metadata": {"annotations": {"a": "b"}, "name": "n"},
        "kind": "ClusterRoleBinding",
        "roleRef": {},
        "apiVersion": "rbac.authorization.k8s.io/v1",
    }
    assert list(apply_manifest(shuffled)) == [
        "apiVersion",
        "kind",
        "metadata",
        "subjects",
        "roleRef",
    ]
    assert list(apply_manifest(shuffled)["metadata"]) == ["name", "annotations"]


def test_every_document_is_a_valid_kubernetes_object(objects: list[KubeObject]) -> None:
    client = ApiClient()
    for doc in yaml.safe_load_all(render_yaml(objects)):
        model = client.deserialize(json.dumps(doc), MODELS[doc["kind"]], "application/json")
        assert model.metadata.name == doc["metadata"]["name"]
        # every field is one the model knows (unknown ones would be dropped here)
        back = client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]  # untyped lib
        assert back == doc
