"""The container image and the Kubernetes manifests, checked without a runtime or a cluster.

Covers:

* every YAML document in ``deploy/`` and ``rbac/authbridge-rbac.yaml`` is a known
  API object that the ``kubernetes`` client's models deserialize and serialize back
  unchanged (the models drop fields they do not know, so a typo such as
  ``readOnlyRootFileSystem`` shows as a difference); ``kustomization.yaml`` lists
  every manifest and ``kubectl kustomize`` renders it (when kubectl is installed);
* both Deployments: non-root uid/gid 10001, read-only root filesystem, no privilege
  escalation, all capabilities dropped, seccomp RuntimeDefault, resources, an
  in-memory ``/tmp``, one image at the project's version, only real settings as
  ``AUTHBRIDGE_*`` variables, no Service links;
* the server: 2 replicas spread over nodes and zones, probes on ``/healthz`` and
  ``/readyz``, the DSN from a Secret (no literal DSN anywhere), Secrets mounted with
  a mode authbridge accepts, a Kubernetes API token that may only get and update
  the one (empty) Secret authbridge-bootstrap-admin, named by its setting, and egress
  to the API server for it (the first administrator), the signing keys in the store
  under the mounted KEK (the keys Secret holds only the KEK and the pepper, as the
  README's command makes it), the mapping ConfigMap optional (a server without it
  becomes ready once it appears); the reconciler: the
  ServiceAccount of ``rbac/authbridge-rbac.yaml``, no keys, no ``--prune``, the
  mapping as a flag; both containers' args name a real command and its options;
* the PodDisruptionBudget, Service and NetworkPolicies select what they should, and
  only the kube-apiserver and Prometheus may reach the server;
* the Dockerfile (stages, user, healthcheck, entrypoint, no compiler in the final
  stage) and ``.dockerignore`` (evaluated with Docker's matching rules);
* the files a kubelet mounts (links through ``..data``, mode 0440) as authbridge
  reads them: keys, KEK and pepper load, a Secret update reaches the key ring, and (an
  expected failure until settings stop resolving links) paths survive an update.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from authbridge.iam.credentials import load_or_create_pepper
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.mapping import MappingHolder
from authbridge.settings import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RBAC_FILE = ROOT / "rbac" / "authbridge-rbac.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

NAMESPACE = "authbridge"
UID = GID = 10001
SERVER, RECONCILER = "authbridge", "authbridge-reconciler"
SETTING_ENV = frozenset(env_name(f.name) for f in fields(Settings))

# (apiVersion, kind) -> kubernetes client model; anything else in deploy/ is an error.
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("v1", "Secret"): "V1Secret",
}
BOOTSTRAP_SECRET = "authbridge-bootstrap-admin"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


# --------------------------------------------------------------------------- loading


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def objects() -> tuple[dict[str, Any], ...]:
    return tuple(d for p in manifest_files() for d in _docs(p))


def find(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/, found {len(found)}"
    return found[0]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] == kind]


def pod_spec(deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = find("Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: str) -> dict[str, str]:
    labels: dict[str, str] = find("Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels only: extend this if a manifest uses expressions)."""
    assert not selector.get("matchExpressions"), "teach matches() about matchExpressions"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def container(deployment: str) -> dict[str, Any]:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, f"{deployment}: one container expected"
    c: dict[str, Any] = containers[0]
    return c


def env_of(deployment: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


def mounts_of(deployment: str) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there."""
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
    return {m["mountPath"]: volumes[m["name"]] for m in container(deployment)["volumeMounts"]}


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


@dataclass
class _Response:
    """What older clients' ``ApiClient.deserialize`` reads: a response with ``data``."""

    data: str


def round_trip(doc: dict[str, Any]) -> Any:
    """``doc`` deserialized into its kubernetes model and serialized back."""
    from kubernetes.client import ApiClient

    model = MODELS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    assert model, f"unknown kind {doc.get('apiVersion')}/{doc.get('kind')}: add it to MODELS"
    with ApiClient() as api:
        text = json.dumps(doc)
        if "response_text" in inspect.signature(api.deserialize).parameters:
            obj = api.deserialize(text, model, "application/json")  # newer clients
        else:
            obj = api.deserialize(_Response(text), model)
        assert type(obj).__name__ == model
        return api.sanitize_for_serialization(obj)


# --------------------------------------------------------------------------- API objects


@pytest.mark.parametrize(
    "path",
    [*manifest_files(), RBAC_FILE],
    ids=lambda p: str(Path(p).relative_to(ROOT)),
)
def test_every_document_is_a_known_api_object_with_only_known_fields(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is not written yet")
    docs = _docs(path)
    assert docs, f"{path} has no documents"
    for doc in docs:
        where = f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert round_trip(doc) == doc, f"{where}: a field the Kubernetes API does not know"
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], where
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, where
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "authbridge", where


def test_no_secret_and_no_literal_dsn_in_any_manifest() -> None:
    # Secrets are made with kubectl from local files (README); the one exception is
    # the empty Secret the first server fills with the first administrator's key.
    (secret,) = of_kind("Secret")
    assert secret["metadata"]["name"] == BOOTSTRAP_SECRET
    assert "data" not in secret and "stringData" not in secret
    for path in manifest_files():
        text = path.read_text()
        assert not re.search(r"postgres(ql)?://|sqlite://", text), f"a literal DSN in {path}"


def test_kustomization_lists_every_manifest_and_pins_the_image() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())
    (image,) = kustomization["images"]
    assert image["name"] == "authbridge" and image["newTag"] == project_version()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (for kustomize)")
def test_kustomize_renders_every_object_with_the_registry_image() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True
    ).stdout
    rendered = [d for d in yaml.safe_load_all(out) if d]

    def names(docs: Any) -> list[tuple[str, str]]:
        return sorted((o["kind"], o["metadata"]["name"]) for o in docs)

    assert names(rendered) == names(objects())
    newname = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["images"][0]["newName"]
    images = {
        c["image"]
        for o in rendered
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{newname}:{project_version()}"}


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = find("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --------------------------------------------------------------------------- both Deployments


@pytest.mark.parametrize("deployment", [SERVER, RECONCILER])
def test_pods_run_non_root_with_a_read_only_root_and_nothing_extra(deployment: str) -> None:
    spec = pod_spec(deployment)
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert (pod_sc["runAsUser"], pod_sc["runAsGroup"], pod_sc["fsGroup"]) == (UID, GID, GID)
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), key
    assert spec["enableServiceLinks"] is False, "Service links add AUTHBRIDGE_* variables"
    assert all("hostPath" not in v for v in spec.get("volumes", []))
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not sc.get("privileged")
        assert sc.get("runAsUser", UID) == UID
        for what in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][what]), f"{c['name']}: {what}"


@pytest.mark.parametrize("deployment", [SERVER, RECONCILER])
def test_only_tmp_is_writable_and_it_is_an_emptydir(deployment: str) -> None:
    mounts = container(deployment)["volumeMounts"]
    writable = [m["mountPath"] for m in mounts if not m.get("readOnly")]
    assert writable == ["/tmp"]
    assert "emptyDir" in mounts_of(deployment)["/tmp"]


@pytest.mark.parametrize("deployment", [SERVER, RECONCILER])
def test_every_environment_variable_is_a_real_setting(deployment: str) -> None:
    names = set(env_of(deployment))
    assert names <= SETTING_ENV, f"not settings: {sorted(names - SETTING_ENV)}"
    assert not container(deployment).get("envFrom"), "name each variable: see configmap.yaml"
    config = find("ConfigMap", "authbridge-config")["data"]
    for e in env_of(deployment).values():
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["name"] == "authbridge-config" and ref["key"] in config, e["name"]
            assert not ref.get("optional"), f"{e['name']}: a missing key must stop the pod"


@pytest.mark.parametrize("deployment", [SERVER, RECONCILER])
def test_container_args_are_an_authbridge_command_and_its_options(deployment: str) -> None:
    import click

    from authbridge.cli.main import main

    command: click.Command = main
    args = list(container(deployment)["args"])
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        command = command.commands[args.pop(0)]
    assert not isinstance(command, click.Group), f"{deployment}: {args} names no command"
    options = {o for p in command.params for o in p.opts}
    assert {a for a in args if a.startswith("-")} <= options, f"{deployment}: {args}"


def test_both_deployments_run_the_project_image() -> None:
    images = {container(d)["image"] for d in (SERVER, RECONCILER)}
    assert images == {f"authbridge:{project_version()}"}


# --------------------------------------------------------------------------- the server


def test_server_has_two_replicas_spread_over_nodes_and_zones() -> None:
    deployment = find("Deployment", SERVER)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spread = {
        t["topologyKey"]: t
        for t in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    }
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for t in spread.values():
        assert matches(t["labelSelector"], pod_labels(SERVER))


def test_server_probes_healthz_and_readyz_over_https_on_its_port() -> None:
    c = container(SERVER)
    (port,) = c["ports"]
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        get = c[probe]["httpGet"]
        assert (get["path"], get["scheme"]) == (path, "HTTPS"), probe
        assert get["port"] in (port["name"], port["containerPort"]), probe
    bind = env_of(SERVER)["AUTHBRIDGE_BIND"]["value"]
    assert bind.rpartition(":")[2] == str(port["containerPort"]) == "8443"
    assert c["args"] == ["serve"] and "command" not in c


def test_server_token_may_only_get_and_update_the_bootstrap_secret() -> None:
    """Least privilege: one Role, one rule, one Secret name, the verbs SecretSlot sends.

    Not ``create``: RBAC cannot limit a create to a name, so the Secret is made
    (empty) by the manifests instead.
    """
    from authbridge.kube import SECRET_VERBS

    spec = pod_spec(SERVER)
    account_name = spec["serviceAccountName"]
    assert account_name != "authbridge"  # not the reconciler's account
    assert spec["automountServiceAccountToken"] is True  # for this pod only:
    assert find("ServiceAccount", account_name)["automountServiceAccountToken"] is False
    assert env_of(SERVER)["AUTHBRIDGE_BOOTSTRAP_SECRET"]["value"] == BOOTSTRAP_SECRET

    def binds_server(binding: dict[str, Any]) -> bool:
        return any(
            s["kind"] == "ServiceAccount"
            and s["name"] == account_name
            and s.get("namespace", binding["metadata"].get("namespace")) == NAMESPACE
            for s in binding.get("subjects") or []
        )

    rbac_file = _docs(RBAC_FILE) if RBAC_FILE.exists() else []
    cluster_bindings = [d for d in [*objects(), *rbac_file] if d["kind"] == "ClusterRoleBinding"]
    assert not [b for b in cluster_bindings if binds_server(b)], "no cluster-wide grant"
    (binding,) = [b for b in of_kind("RoleBinding") if binds_server(b)]
    assert binding["roleRef"]["kind"] == "Role"
    role = find("Role", binding["roleRef"]["name"])
    assert (
        role["metadata"]["namespace"]
        == NAMESPACE
        == find("Secret", BOOTSTRAP_SECRET)["metadata"]["namespace"]
    )
    (rule,) = role["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": [BOOTSTRAP_SECRET],
        "verbs": sorted(verb for _, _, verb in SECRET_VERBS),
    }


def test_server_dsn_comes_from_a_secret() -> None:
    store = env_of(SERVER)["AUTHBRIDGE_STORE"]
    assert "value" not in store
    assert store["valueFrom"]["secretKeyRef"] == {"name": "authbridge-store", "key": "dsn"}
    for deployment in (SERVER, RECONCILER):
        for e in env_of(deployment).values():
            assert not re.match(r"(postgres(ql)?|sqlite)://", str(e.get("value", ""))), e


def test_server_files_are_where_the_settings_say() -> None:
    env = {k: e.get("value") for k, e in env_of(SERVER).items()}
    mounts = mounts_of(SERVER)
    assert mounts[env["AUTHBRIDGE_KEYS_DIR"]]["secret"]["secretName"] == "authbridge-keys"
    for name in (
        "AUTHBRIDGE_TLS_CERT_FILE",
        "AUTHBRIDGE_TLS_KEY_FILE",
        "AUTHBRIDGE_CLIENT_CA_FILE",
    ):
        assert mounts[str(Path(env[name]).parent)]["secret"]["secretName"] == "authbridge-tls"
    mapping = Path(env["AUTHBRIDGE_MAPPING_FILE"])
    assert mounts[str(mapping.parent)]["configMap"]["name"] == "authbridge-mapping"
    assert all("subPath" not in m for m in container(SERVER)["volumeMounts"]), (
        "the kubelet never updates subPath mounts"
    )


def test_server_keeps_its_signing_keys_in_the_store_under_the_mounted_kek() -> None:
    env = {k: e.get("value") for k, e in env_of(SERVER).items()}
    settings = load_settings({}, {k: v for k, v in env.items() if v is not None}, None)
    assert settings.key_source == "store"
    assert settings.kek_file is not None and settings.kek_file.name == "kek"
    keys_mount = mounts_of(SERVER)[str(settings.kek_file.parent)]
    assert keys_mount["secret"]["secretName"] == "authbridge-keys"
    assert settings.pepper_file.parent == settings.kek_file.parent
    assert "AUTHBRIDGE_KEK" not in env, "the KEK comes from the mounted Secret, not a variable"


def test_readme_puts_only_the_kek_and_the_pepper_in_the_keys_secret() -> None:
    readme = (DEPLOY / "README.md").read_text()
    commands = re.findall(r"create secret generic authbridge-keys(.*?)--dry-run", readme, re.S)
    assert len(commands) == 1, "one command makes the keys Secret"
    files = re.findall(r"--from-file=(\S+)", commands[0])
    names = sorted(f.split("=")[0] if "=" in f else Path(f).name for f in files)
    assert names == ["access-key-pepper", "kek"], files
    assert ".pem" not in commands[0] and "signing-keys.json" not in commands[0]


def test_the_mapping_configmap_is_optional_for_the_server_only() -> None:
    # The server starts without it (and is not ready until it exists); the reconciler
    # has nothing to do without a mapping and refuses to start, so it waits for it.
    server = mounts_of(SERVER)["/etc/authbridge/mapping"]["configMap"]
    assert server["name"] == "authbridge-mapping" and server["optional"] is True
    reconciler = mounts_of(RECONCILER)["/etc/authbridge/mapping"]["configMap"]
    assert reconciler["name"] == "authbridge-mapping" and not reconciler.get("optional")


@pytest.mark.parametrize("deployment", [SERVER, RECONCILER])
def test_secrets_are_mounted_with_a_mode_authbridge_accepts(deployment: str) -> None:
    # authbridge refuses private keys and the pepper when they are group-writable or
    # other users can read them; the files are root-owned, so the process (uid 10001)
    # reads them through the group: fsGroup 10001 and group-read.
    spec = pod_spec(deployment)
    for volume in spec.get("volumes", []):
        secret = volume.get("secret")
        if secret is None:
            continue
        modes = [secret["defaultMode"]] + [
            i["mode"] for i in secret.get("items", []) if "mode" in i
        ]
        for mode in modes:
            assert mode & 0o037 == 0, f"{volume['name']}: mode {mode:04o} is refused"
            assert mode & 0o040, f"{volume['name']}: mode {mode:04o} is unreadable by the group"
        assert spec["securityContext"]["fsGroup"] == GID


# --------------------------------------------------------------------------- the reconciler


def test_reconciler_runs_as_the_rbac_service_account_without_keys_or_prune() -> None:
    deployment = find("Deployment", RECONCILER)
    spec = pod_spec(RECONCILER)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "never two reconcilers"
    assert spec["serviceAccountName"] == "authbridge"
    assert spec["automountServiceAccountToken"] is True
    args = container(RECONCILER)["args"]
    assert args[:2] == ["rbac", "watch"] and "--prune" not in args
    assert all("secret" not in v for v in spec["volumes"]), "the reconciler needs no keys"
    mapping = Path(args[args.index("--mapping") + 1])
    assert mounts_of(RECONCILER)[str(mapping.parent)]["configMap"]["name"] == "authbridge-mapping"
    assert not matches(find("Deployment", SERVER)["spec"]["selector"], pod_labels(RECONCILER))
    assert not matches(deployment["spec"]["selector"], pod_labels(SERVER))


def test_reconciler_service_account_is_the_one_rbac_grants() -> None:
    if not RBAC_FILE.exists():
        pytest.skip("rbac/authbridge-rbac.yaml is not written yet")
    rbac = _docs(RBAC_FILE)
    accounts = [d for d in rbac if d["kind"] == "ServiceAccount"]
    assert [(a["metadata"]["namespace"], a["metadata"]["name"]) for a in accounts] == [
        (NAMESPACE, pod_spec(RECONCILER)["serviceAccountName"])
    ]
    (binding,) = [d for d in rbac if d["kind"] == "ClusterRoleBinding"]
    assert {"kind": "ServiceAccount", "name": "authbridge", "namespace": NAMESPACE} in binding[
        "subjects"
    ]
    # The server's own account gets nothing from it.
    assert all(s["name"] != pod_spec(SERVER)["serviceAccountName"] for s in binding["subjects"])


# --------------------------------------------------------------------------- around the server


def test_pdb_and_service_select_the_server_pods_only() -> None:
    pdb = find("PodDisruptionBudget", "authbridge")
    assert matches(pdb["spec"]["selector"], pod_labels(SERVER))
    assert not matches(pdb["spec"]["selector"], pod_labels(RECONCILER))
    assert pdb["spec"]["minAvailable"] == 1 < find("Deployment", SERVER)["spec"]["replicas"]

    service = find("Service", "authbridge")
    selector = {"matchLabels": service["spec"]["selector"]}
    assert matches(selector, pod_labels(SERVER))
    assert not matches(selector, pod_labels(RECONCILER))
    (port,) = service["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in container(SERVER)["ports"]}
    assert port["port"] == 443 and port["targetPort"] in named


def _policies_for(deployment: str) -> list[dict[str, Any]]:
    found = [
        p
        for p in of_kind("NetworkPolicy")
        if matches(p["spec"]["podSelector"], pod_labels(deployment))
    ]
    assert found, f"no NetworkPolicy selects {deployment}"
    return found


def _peers(
    policies: list[dict[str, Any]], direction: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(rule, peer) for each ingress ("from") or egress ("to") peer; no peers means anyone."""
    field = "from" if direction == "ingress" else "to"
    for policy in policies:
        for rule in policy["spec"].get(direction, []):
            for peer in rule.get(field) or [{}]:
                yield rule, peer


def test_only_the_apiserver_and_prometheus_reach_the_server() -> None:
    policies = _policies_for(SERVER)
    assert all("Ingress" in p["spec"]["policyTypes"] for p in policies)
    allowed = {json.dumps(peer, sort_keys=True) for _, peer in _peers(policies, "ingress")}
    apiserver_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"component": "kube-apiserver"}},
    }
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    cidrs = [p["ipBlock"] for _, p in _peers(policies, "ingress") if "ipBlock" in p]
    assert len(cidrs) == 1 and "except" not in cidrs[0]
    assert cidrs[0]["cidr"] not in ("0.0.0.0/0", "::/0")
    expected = {
        json.dumps(p, sort_keys=True) for p in (apiserver_pods, prometheus, {"ipBlock": cidrs[0]})
    }
    assert allowed == expected
    for rule, _ in _peers(policies, "ingress"):
        assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}]


def test_the_reconciler_accepts_no_connections() -> None:
    policies = _policies_for(RECONCILER)
    assert all("Ingress" in p["spec"]["policyTypes"] for p in policies)
    assert not list(_peers(policies, "ingress"))


@pytest.mark.parametrize(
    ("deployment", "ports"), [(SERVER, {53, 5432, 443, 6443}), (RECONCILER, {53, 443, 6443})]
)
def test_egress_is_limited_to_dns_and_what_each_part_calls(
    deployment: str, ports: set[int]
) -> None:
    policies = _policies_for(deployment)
    assert all("Egress" in p["spec"]["policyTypes"] for p in policies)
    used = set()
    for rule, _ in _peers(policies, "egress"):
        assert rule.get("ports"), "an egress rule without ports allows every port"
        used |= {p["port"] for p in rule["ports"]}
    assert used == ports


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped, as Docker does."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def dockerfile_stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and the instructions of each stage (FROM first)."""
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args, stages


def test_dockerfile_is_multi_stage_on_one_slim_python_base() -> None:
    args, stages = dockerfile_stages()
    assert len(stages) >= 2
    bases = set()
    for stage in stages:
        image = stage[0][1].split()[0]
        bases.add(re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image))
    (base,) = bases  # the venv's interpreter link needs the same base in every stage
    assert re.fullmatch(r"python:3\.11-slim-\w+", base), base


def test_final_stage_runs_authbridge_serve_as_10001_from_the_venv_only() -> None:
    _, stages = dockerfile_stages()
    final = stages[-1]
    last = {keyword: rest for keyword, rest in final}  # the last of each instruction wins
    assert last["USER"] == f"{UID}:{GID}"
    assert json.loads(last["ENTRYPOINT"]) == ["authbridge"]
    assert json.loads(last["CMD"]) == ["serve"]
    assert last["WORKDIR"] == "/var/lib/authbridge"
    assert last["EXPOSE"] == "8443"
    assert "/tmp" in json.loads(last["VOLUME"])
    copies = [rest for keyword, rest in final if keyword in ("COPY", "ADD")]
    assert copies and all(c.startswith("--from=builder ") for c in copies), copies
    text = " ".join(rest for _, rest in final).lower()
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get install", "curl", "wget"):
        assert tool not in text, f"{tool!r} in the final stage"


def test_final_stage_environment() -> None:
    _, stages = dockerfile_stages()
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    for keyword, rest in stages[-1]:
        target = env if keyword == "ENV" else labels if keyword == "LABEL" else None
        if target is not None:
            target.update(item.split("=", 1) for item in shlex.split(rest))
    assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/authbridge/bin:")
    assert {k for k in env if k.startswith("AUTHBRIDGE_")} <= SETTING_ENV
    assert env["AUTHBRIDGE_KEYS_DIR"] == "/etc/authbridge/keys"
    assert env["AUTHBRIDGE_BIND"] == "0.0.0.0:8443"
    args = {rest.partition("=")[0]: rest.partition("=")[2] for k, rest in stages[-1] if k == "ARG"}
    assert args["VERSION"] == project_version()
    assert labels["org.opencontainers.image.version"] == "${VERSION}"


def test_healthcheck_probes_healthz_over_loopback_without_curl() -> None:
    _, stages = dockerfile_stages()
    (check,) = [rest for keyword, rest in stages[-1] if keyword == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<HEALTHCHECK>", "exec")
    assert "https://127.0.0.1:" in argv[2] and "/healthz" in argv[2]


def test_builder_installs_wheels_only_without_a_pip_cache() -> None:
    _, stages = dockerfile_stages()
    runs = " ".join(rest for keyword, rest in stages[0] if keyword == "RUN")
    assert "--only-binary=:all:" in runs and "--no-cache-dir" in runs
    assert "/opt/authbridge" in runs


# --------------------------------------------------------------------------- .dockerignore


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) per line; ``**`` any directories, ``*`` and ``?`` within one."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip("/"))
        rx = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern):
            rx += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, token if token.startswith("[") else re.escape(token)
            )
        rules.append((negate, re.compile(rx)))
    return rules


def ignored(path: str) -> bool:
    """Docker's rule: a path is out when it or a parent matches; the last matching line wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for negate, rx in _dockerignore_rules():
        if any(rx.fullmatch(c) for c in candidates):
            out = not negate
    return out


@pytest.mark.parametrize(
    "path",
    [
        "keys/signing-keys.json",
        "keys/access-key-pepper",
        "keys/tls/server.key",
        "data/authbridge.db",
        ".venv/bin/python",
        ".git/HEAD",
        "authbridge/__pycache__/settings.cpython-311.pyc",
        "authbridge/stray.pem",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/content",
        ".import_linter_cache/x",
        "authbridge.egg-info/PKG-INFO",
        "tests/test_deploy.py",
        "deploy/deployment.yaml",
    ],
)
def test_dockerignore_keeps_secrets_data_and_caches_out(path: str) -> None:
    assert ignored(path)


def test_dockerignore_names_secrets_data_and_caches_even_behind_the_allowlist() -> None:
    # Listed after the allowlist, so a later "!something" cannot let them back in.
    lines = DOCKERIGNORE.read_text().splitlines()
    after = lines[lines.index("*") + 1 :]
    for entry in (".git", ".venv", "keys", "data", "**/__pycache__", ".pytest_cache"):
        assert entry in after, entry


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    copied = [
        src
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    ]
    assert copied
    for src in copied:
        assert not ignored(src), src
    for path in ("authbridge/settings.py", "authbridge/py.typed", "authbridge/web/server.py"):
        assert not ignored(path), path


# --------------------------------------------------------------------------- mounted files


def kubelet_volume(mount: Path, files: dict[str, bytes], mode: int, version: str) -> None:
    """Write ``files`` into ``mount`` the way the kubelet's atomic writer does.

    Each update is a new hidden directory; ``..data`` links to it, and every
    file is a link through ``..data``. The previous directory is removed.
    """
    mount.mkdir(exist_ok=True)
    new = mount / f"..{version}"
    new.mkdir()
    for name, data in files.items():
        (new / name).write_bytes(data)
        (new / name).chmod(mode)
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    tmp = mount / "..data_tmp"
    tmp.symlink_to(new.name)
    os.replace(tmp, mount / "..data")
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    if old:
        shutil.rmtree(mount / old)


def key_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.startswith(".")}


def test_a_mounted_keys_secret_with_mode_0440_loads_and_updates(tmp_path: Path) -> None:
    source = KeyDirectory(tmp_path / "keys")
    source.init("ES256")
    load_or_create_pepper(source.path / "access-key-pepper")
    mount = tmp_path / "mount"
    kubelet_volume(mount, key_files(source.path), 0o440, "2026_01_01_00_00_00.1")

    ring = KeyRing(KeyDirectory(mount), check_interval=0)
    load_or_create_pepper(mount / "access-key-pepper", create=False)
    assert len(ring.current().keys) == 1

    source.rotate()  # `authbridge keys rotate`, then the Secret is replaced
    kubelet_volume(mount, key_files(source.path), 0o440, "2026_01_01_00_10_00.2")
    assert len(ring.current().keys) == 2 and ring.last_error is None


def test_a_mounted_kek_and_pepper_with_mode_0440_open_the_store_keys(tmp_path: Path) -> None:
    from authbridge.keys import KEK_BYTES, Kek, StoreKeys, load_kek
    from authbridge.store import open_store

    source = tmp_path / "keys"
    source.mkdir()
    pepper = load_or_create_pepper(source / "access-key-pepper")
    raw = os.urandom(KEK_BYTES)
    kek = Kek(raw, "test")
    (source / "kek").write_bytes(base64.b64encode(raw) + b"\n")
    store = open_store(f"sqlite:///{tmp_path}/data/authbridge.db", pepper=pepper)
    try:
        made = StoreKeys(store, kek).init("ES256")
        mount = tmp_path / "mount"
        kubelet_volume(mount, key_files(source), 0o440, "2026_01_01_00_00_00.1")
        mounted = load_kek(mount / "kek", None)  # through ..data, group-readable
        load_or_create_pepper(mount / "access-key-pepper", create=False)
        assert [k.kid for k in StoreKeys(store, mounted).load().keys] == [made.kid]
    finally:
        store.close()


def test_a_server_without_the_mapping_configmap_becomes_ready_when_it_appears(
    tmp_path: Path,
) -> None:
    mount = tmp_path / "mapping"  # the optional volume: an empty directory at first
    mount.mkdir()
    holder = MappingHolder(mount / "mapping.yaml", check_interval=0)
    assert not holder.ready and "does not exist" in str(holder.last_error)
    kubelet_volume(mount, {"mapping.yaml": b"mapAccounts: ['111122223333']\n"}, 0o444, "1")
    holder.current()
    assert holder.ready and holder.version == 1


def test_a_mapping_path_used_as_given_follows_configmap_updates(tmp_path: Path) -> None:
    # What the reconciler does with `--mapping /etc/authbridge/mapping/mapping.yaml`.
    mount = tmp_path / "mapping"
    kubelet_volume(mount, {"mapping.yaml": b"mapAccounts: ['111122223333']\n"}, 0o444, "1")
    holder = MappingHolder(mount / "mapping.yaml", check_interval=0)
    assert holder.ready and holder.version == 1
    kubelet_volume(mount, {"mapping.yaml": b"mapAccounts: ['444455556666']\n"}, 0o444, "2")
    holder.current()
    assert holder.version == 2 and holder.last_error is None


def test_setting_paths_survive_a_kubelet_update(tmp_path: Path) -> None:
    mount = tmp_path / "mapping"
    kubelet_volume(mount, {"mapping.yaml": b"mapRoles: []\n"}, 0o444, "2026_01_01_00_00_00.1")
    settings = load_settings({}, {"AUTHBRIDGE_MAPPING_FILE": str(mount / "mapping.yaml")}, None)
    kubelet_volume(mount, {"mapping.yaml": b"mapUsers: []\n"}, 0o444, "2026_01_01_00_10_00.2")
    assert settings.mapping_file.read_bytes() == b"mapUsers: []\n"
