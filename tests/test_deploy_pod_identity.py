"""deploy/pod-identity/: the pod admission webhook's configuration and RBAC, and its TLS wiring.

Checked without a cluster: each document is a known API object the kubernetes
client's models read back unchanged; the webhook calls the path
:mod:`authbridge.web.mutate` serves, on the Service deploy/ has, with v1 reviews,
no side effects, a short timeout, ``failurePolicy: Ignore``, never for
authbridge's own namespace or kube-system; the RBAC is ``get serviceaccounts``
for the server's ServiceAccount only; and deploy/README.md's command fills
``caBundle`` with the CA that ``authbridge init`` writes, so the kube-apiserver
trusts the serving certificate ``init`` issued for ``authbridge.authbridge.svc``.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from authbridge.web.mutate import MUTATE_PATH
from tests.serving import run_cli

ROOT = Path(__file__).resolve().parent.parent
POD_IDENTITY = ROOT / "deploy" / "pod-identity"
MODELS = {
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): (
        "V1MutatingWebhookConfiguration"
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}


@dataclass
class _Response:
    data: str


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((POD_IDENTITY / name).read_text()) if d]


def round_trip(doc: dict[str, Any]) -> Any:
    from kubernetes.client import ApiClient

    model = MODELS[(doc["apiVersion"], doc["kind"])]
    with ApiClient() as api:
        text = json.dumps(doc)
        if "response_text" in inspect.signature(api.deserialize).parameters:
            obj = api.deserialize(text, model, "application/json")
        else:
            obj = api.deserialize(_Response(text), model)
        return api.sanitize_for_serialization(obj)


def webhook() -> dict[str, Any]:
    (config,) = docs("mutatingwebhook.yaml")
    (hook,) = config["webhooks"]
    return dict(hook)


@pytest.mark.parametrize("name", ["mutatingwebhook.yaml", "rbac.yaml"])
def test_every_document_is_a_known_api_object_with_only_known_fields(name: str) -> None:
    for doc in docs(name):
        assert round_trip(doc) == doc, f"{name}: {doc['kind']}: a field the API does not know"
        assert "namespace" not in doc["metadata"]  # all cluster-scoped
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "authbridge"


def test_the_webhook_calls_the_mutate_path_on_the_authbridge_service() -> None:
    hook = webhook()
    (service,) = [
        d for d in yaml.safe_load_all((ROOT / "deploy" / "service.yaml").read_text()) if d
    ]
    assert hook["clientConfig"]["service"] == {
        "namespace": service["metadata"]["namespace"],
        "name": service["metadata"]["name"],
        "path": MUTATE_PATH,
        "port": service["spec"]["ports"][0]["port"],
    }
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["sideEffects"] == "None"
    assert hook["failurePolicy"] == "Ignore"
    assert 1 <= hook["timeoutSeconds"] <= 10
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE"] and rule["resources"] == ["pods"]


def test_the_webhook_never_selects_authbridge_or_kube_system() -> None:
    (expression,) = webhook()["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert set(expression["values"]) == {"authbridge", "kube-system"}


def test_rbac_is_get_serviceaccounts_for_the_server_only() -> None:
    role, binding = docs("rbac.yaml")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    deployment = yaml.safe_load((ROOT / "deploy" / "deployment.yaml").read_text())
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "authbridge"}
    ]


def test_the_readme_command_fills_the_ca_bundle_init_wrote(tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "README.md").read_text()
    section = text[text.index("## Pod identity (IRSA)") :]
    (block,) = re.findall(r"^```sh\n(.*?)^```", section[: section.index("\n## ", 1)], re.M | re.S)
    joined = re.sub(r"\\\n\s*", " ", block)
    (command,) = [line for line in joined.splitlines() if line.startswith("sed ")]
    command = command.replace("| kubectl apply -f -", "").replace(
        "deploy/pod-identity/", f"{POD_IDENTITY}/"
    )
    run_cli(
        tmp_path,
        "init --dir keys --no-admin --issuer https://authbridge.example.com"
        " --hostname authbridge.authbridge.svc --cluster-id prod",
    )
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    (config,) = [d for d in yaml.safe_load_all(out) if d]
    bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
    assert bundle == (tmp_path / "keys" / "tls" / "ca.crt").read_bytes()
    # The CA signed the serving certificate, which names the Service.
    ca = x509.load_pem_x509_certificate(bundle)
    server = x509.load_pem_x509_certificate((tmp_path / "keys" / "tls" / "server.crt").read_bytes())
    assert server.issuer == ca.subject
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "authbridge.authbridge.svc" in names.get_values_for_type(x509.DNSName)
