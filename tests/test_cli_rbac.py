"""``authbridge rbac …`` as real subprocesses, against the fake API server through a kubeconfig.

The fake enforces the reconciler's ClusterRole (rbac/authbridge-rbac.yaml), so
every command here also runs with least privilege.

Covers:
* render: YAML that ``yaml.safe_load_all`` reads back as exactly the planner's
  objects (byte-identical to ``render_yaml``), offline (no kubeconfig at all),
  ``--namespace`` resolving patterns, a warning on stderr for what cannot
  be placed; the real ``kubectl apply -f -`` (when installed) creates them in
  the fake, and ``plan`` then has nothing to do;
* the story: plan exits 2 with one line per change, ``--dry-run=server``
  changes nothing, apply reports each action, plan then exits 0 (also
  ``-o json``); removing an entry: plan lists "would delete with --prune"
  (exit 0), ``apply --prune`` deletes exactly its objects and never an object
  without the managed-by label;
* refusals, one line on stderr and exit 1: the lockout guard (naming the
  entry; ``--allow-lockout`` applies), a name taken by an unmanaged object, an
  API error mid-apply (stdout keeps what was done; a re-run converges), an
  unreachable server, a missing mapping file; a URL that is not a Kubernetes
  API server (404 to the list and to discovery, over real TLS) is named so,
  with the kubeconfig and cluster.server to check, never "deleted meanwhile"
  (plan, apply, apply --dry-run=server); a kube-apiserver that does not serve
  a resource says so; an invalid mapping prints the ``mapping check`` report
  (several lines) and touches no cluster;
* ``-o json``: render prints a v1 List, plan and apply one document each;
* watch: reconciles at start and on a mapping change, stops on SIGTERM with exit 0;
* importing the CLI loads neither the kubernetes client nor the RBAC code.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from authbridge import pki
from authbridge.kube import KubeAdapter
from authbridge.rbac.desired import desired_state
from authbridge.rbac.policies import (
    RECONCILER_RBAC_FILE,
    RECONCILER_ROLE,
    cluster_role_rules,
    reconciler_permissions,
)
from authbridge.rbac.reconcile import reconcile
from authbridge.rbac.render import apply_manifest, render_yaml
from tests.fakekube import FakeKube
from tests.test_cli import AUTHBRIDGE, Cli, clean_env
from tests.test_kube_reconcile import (
    ADMINS,
    CRB_ADMINS,
    DEVS,
    HEAD,
    MAPPING,
    NAMESPACES,
    RB_DEPLOYER,
    RB_DEVS,
    SERVICE_ACCOUNTS,
    everything,
    mapping,
    unmanaged,
)

RBAC = "rbac.authorization.k8s.io"
RULES = cluster_role_rules(RECONCILER_RBAC_FILE.read_text(encoding="utf-8"), RECONCILER_ROLE)
ALL = {
    f"ClusterRoleBinding {CRB_ADMINS}",
    f"RoleBinding dev/{RB_DEVS}",
    f"RoleBinding team-a/{RB_DEVS}",
    "ServiceAccount ci/deployer",
    f"RoleBinding ci/{RB_DEPLOYER}",
}


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(namespaces=NAMESPACES, rules=RULES) as server:
        yield server


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    out = {
        k: v
        for k, v in clean_env(HOME=str(tmp_path)).items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    }
    out.update(extra)
    return out


@pytest.fixture
def cli(tmp_path: Path, kube: FakeKube) -> Cli:
    """The CLI in ``tmp_path`` with rbac/mapping.yaml (the default) and KUBECONFIG at the fake."""
    (tmp_path / "rbac").mkdir()
    write_mapping(tmp_path, MAPPING)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    return Cli(tmp_path, env(tmp_path, KUBECONFIG=str(kubeconfig)))


def write_mapping(cwd: Path, text: str) -> None:
    tmp = cwd / "rbac" / "mapping.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(cwd / "rbac" / "mapping.yaml")


# -- render ---------------------------------------------------------------------------------------


def test_render_is_yaml_for_kubectl_apply(tmp_path: Path) -> None:
    (tmp_path / "rbac").mkdir()
    write_mapping(tmp_path, MAPPING)
    offline = Cli(tmp_path, env(tmp_path, KUBECONFIG=str(tmp_path / "no-such-kubeconfig")))

    out = offline.run("rbac render")
    assert out.rc == 0, out
    state = desired_state(mapping(), None)
    assert out.out == render_yaml(state.objects)
    docs = list(yaml.safe_load_all(out.out))
    assert docs == [apply_manifest(o.manifest) for o in state.objects]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ClusterRoleBinding", CRB_ADMINS),
        ("RoleBinding", RB_DEVS),  # dev: named exactly, taken as existing
        ("ServiceAccount", "deployer"),
        ("RoleBinding", RB_DEPLOYER),
    ]
    for doc in docs:
        assert doc["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "authbridge"}
        assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    assert out.err == (
        "authbridge: warning: bindings[1].namespaces[1]: the pattern team-* needs the"
        " cluster's namespaces to resolve; it is left out\n"
    )

    scoped = offline.run(
        ["rbac", "render", "--namespace", "dev", "--namespace", "team-x", "--mapping",
         "rbac/mapping.yaml"]
    )  # fmt: skip
    assert scoped.rc == 0, scoped
    placed = {(d["kind"], d["metadata"].get("namespace")) for d in yaml.safe_load_all(scoped.out)}
    assert placed == {
        ("ClusterRoleBinding", None),
        ("RoleBinding", "dev"),
        ("RoleBinding", "team-x"),
    }
    assert "serviceAccounts[0].namespace: namespace ci does not exist" in scoped.err

    listed = offline.run("rbac render -o json")
    assert listed.rc == 0, listed
    assert json.loads(listed.out) == {"apiVersion": "v1", "kind": "List", "items": docs}


def test_render_output_is_what_kubectl_applies_and_then_plan_is_empty(
    cli: Cli, kube: FakeKube
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    namespaces = [arg for ns in NAMESPACES for arg in ("--namespace", ns)]
    rendered = cli.run(["rbac", "render", *namespaces])
    assert rendered.rc == 0 and rendered.err == "", rendered
    applied = subprocess.run(
        # --validate=false: the fake serves discovery but no OpenAPI documents.
        [kubectl, "apply", "--validate=false", "-f", "-"],
        input=rendered.out,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count(" created") == 5
    assert everything(kube) == ALL
    assert cli.ok("rbac plan --prune").out.startswith("No changes")


# -- the story ------------------------------------------------------------------------------------


def test_plan_apply_plan_prune(cli: Cli, kube: FakeKube) -> None:
    pending = cli.run("rbac plan")
    assert pending.rc == 2 and pending.err == "", pending
    lines = pending.out.splitlines()
    assert lines[0] == (
        "+ ServiceAccount ci/deployer (serviceAccounts[0]: role"
        " arn:aws:iam::111122223333:role/ci-deployer)"
    )
    assert lines[1] == (
        f"+ ClusterRoleBinding {CRB_ADMINS} (bindings[0]: Group authbridge:admins ->"
        " ClusterRole cluster-admin)"
    )
    assert lines[-1] == "Plan: 5 to create, 0 to update, 0 to replace, 0 to delete."
    assert everything(kube) == set()

    dry = cli.ok("rbac apply --dry-run=server")
    assert dry.out.count("(server dry run)") == 5
    assert dry.out.splitlines()[-1].startswith("server dry run: 5 changes (5 created)")
    assert everything(kube) == set()
    assert {r.query.get("dryRun") for r in kube.requests if r.verb == "create"} == {"All"}

    applied = cli.ok("rbac apply")
    assert applied.out.splitlines() == [
        line.replace("+ ", "+ created ", 1) for line in lines[:-1]
    ] + ["applied 5 changes (5 created)"]
    assert everything(kube) == ALL

    doc = json.loads(cli.ok("rbac plan --prune -o json").out)
    assert doc == {
        "changes": [],
        "keptWithoutPrune": [],
        "lockout": None,
        "warnings": [],
        "desiredObjects": 5,
    }

    # An entry goes; an unmanaged object shares a name with one of its objects.
    twin = kube.get("RoleBinding", RB_DEVS, "dev")
    assert twin is not None
    twin["metadata"]["namespace"] = "default"
    kube.put(unmanaged(twin))
    write_mapping(cli.cwd, HEAD + "bindings:\n" + ADMINS + SERVICE_ACCOUNTS)
    kept = cli.ok("rbac plan")
    assert kept.out.splitlines() == [
        f"  RoleBinding dev/{RB_DEVS}: not in the mapping (was bindings[1]); would delete"
        " with --prune",
        f"  RoleBinding team-a/{RB_DEVS}: not in the mapping (was bindings[1]); would delete"
        " with --prune",
        "No changes: the cluster matches the mapping (3 objects).",
    ]
    pruned = cli.ok("rbac apply --prune")
    assert pruned.out.splitlines() == [
        f"- deleted RoleBinding dev/{RB_DEVS}: not in the mapping (was bindings[1])",
        f"- deleted RoleBinding team-a/{RB_DEVS}: not in the mapping (was bindings[1])",
        "applied 2 changes (2 deleted)",
    ]
    assert everything(kube) == ALL - {
        f"RoleBinding dev/{RB_DEVS}",
        f"RoleBinding team-a/{RB_DEVS}",
    } | {f"RoleBinding default/{RB_DEVS}"}

    assert not [r for r in kube.requests if r.status == 403]
    assert kube.used() <= reconciler_permissions()


# -- refusals -------------------------------------------------------------------------------------


def seed(kube: FakeKube, tmp_path: Path) -> None:
    """Apply MAPPING in-process (quicker than one more subprocess)."""
    adapter = KubeAdapter.from_kubeconfig(kube.write_kubeconfig(tmp_path / "seed-kubeconfig"))
    try:
        reconcile(adapter, mapping())
    finally:
        adapter.close()
    assert everything(kube) == ALL


def test_lockout_is_refused_in_one_line_naming_the_entry(
    cli: Cli, kube: FakeKube, tmp_path: Path
) -> None:
    seed(kube, tmp_path)
    write_mapping(cli.cwd, HEAD + "bindings:\n" + DEVS + SERVICE_ACCOUNTS)
    before = kube.snapshot()
    line = cli.fails(
        "rbac apply --prune",
        "bindings[0] (Group authbridge:admins -> cluster-admin",
        "is the last path to cluster-admin",
        "--allow-lockout",
    )
    assert CRB_ADMINS in line
    assert kube.snapshot() == before
    allowed = cli.ok("rbac apply --prune --allow-lockout")
    assert f"- deleted ClusterRoleBinding {CRB_ADMINS}" in allowed.out
    assert allowed.out.startswith("warning: --allow-lockout given: bindings[0]")
    assert kube.get("ClusterRoleBinding", CRB_ADMINS) is None


def test_a_name_taken_by_an_unmanaged_object_is_refused(cli: Cli, kube: FakeKube) -> None:
    kube.put(
        unmanaged(
            {
                "kind": "ServiceAccount",
                "metadata": {"name": "deployer", "namespace": "ci"},
            }
        )
    )
    cli.fails(
        "rbac apply",
        "ServiceAccount ci/deployer exists but is not managed by authbridge",
        "label it app.kubernetes.io/managed-by=authbridge",
    )
    assert everything(kube) == {"ServiceAccount ci/deployer"}


def test_an_api_error_mid_apply_is_one_line_and_a_rerun_converges(cli: Cli, kube: FakeKube) -> None:
    kube.fail_next("POST", "/clusterrolebindings$", 403, message="nope")
    r = cli.run("rbac apply")
    assert r.rc == 1, r
    assert r.out.splitlines() == [
        "+ created ServiceAccount ci/deployer (serviceAccounts[0]: role"
        " arn:aws:iam::111122223333:role/ci-deployer)"
    ]
    assert r.err.count("\n") == 1 and r.err.startswith("authbridge: stopped after 1 of 5 changes:")
    assert "lacks permission to create clusterrolebindings" in r.err
    assert "apply rbac/authbridge-rbac.yaml" in r.err
    again = json.loads(cli.ok("rbac apply -o json").out)
    assert again["summary"] == "applied 4 changes (4 created)" and again["dryRun"] is False
    assert [(d["op"], d["kind"]) for d in again["done"]] == [
        ("create", "ClusterRoleBinding"),
        ("create", "RoleBinding"),
        ("create", "RoleBinding"),
        ("create", "RoleBinding"),
    ]
    assert everything(kube) == ALL


def test_unreachable_cluster_and_missing_mapping(
    cli: Cli, tmp_path: Path, refused_port: int
) -> None:
    cli.fails("rbac plan --mapping nope.yaml", "mapping file nope.yaml does not exist", "--mapping")
    dead = tmp_path / "dead-kubeconfig"
    text = (tmp_path / "kubeconfig").read_text()
    server = f"http://127.0.0.1:{refused_port}"
    dead.write_text(text.replace(text.split("server: ")[1].split()[0], server))
    cli.fails(
        f"rbac plan --kubeconfig {dead}",
        f"cannot reach the API server at {server} to list namespaces",
    )


class _NotFound(BaseHTTPRequestHandler):
    """What a web server that is not a kube-apiserver answers: 404, Go's plain text."""

    paths: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.paths.append(self.path)
        data = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def not_kubernetes(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """An HTTPS server on 127.0.0.1 answering 404 to everything (real TLS, its own CA),
    and a kubeconfig pointing at it; yields the kubeconfig and the paths requested."""
    ca = pki.new_ca("not-kubernetes CA")
    leaf = pki.issue_server_cert(ca, hostnames=["localhost"], ips=["127.0.0.1"])
    for name, data in (
        ("ca.crt", ca.cert_pem),
        ("tls.crt", leaf.cert_pem),
        ("tls.key", leaf.key_pem),
    ):
        (tmp_path / name).write_bytes(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    paths: list[str] = []

    class Handler(_NotFound):
        pass

    Handler.paths = paths
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    kubeconfig = tmp_path / "web-kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "web",
                        "cluster": {
                            "server": f"https://127.0.0.1:{httpd.server_address[1]}",
                            "certificate-authority": str(tmp_path / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "web", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "web", "context": {"cluster": "web", "user": "web"}}],
                "current-context": "web",
            }
        )
    )
    try:
        yield kubeconfig, paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_server_that_is_not_kubernetes_is_named_so_not_deleted_meanwhile(
    cli: Cli, tmp_path: Path
) -> None:
    with not_kubernetes(tmp_path) as (kubeconfig, paths):
        for command in ("plan", "apply", "apply --prune --dry-run=server"):
            line = cli.fails(
                f"rbac {command} --kubeconfig {kubeconfig}",
                f"({kubeconfig}) is not a Kubernetes API server (GET /api answered 404;"
                " list namespaces answered 404)",
                "check the kubeconfig's cluster.server",
                "--kubeconfig/--context",
            )
            assert "deleted meanwhile" not in line and "run apply again" not in line
            assert line.startswith("https://127.0.0.1:")
    assert paths[:2] == ["/api/v1/namespaces?limit=500", "/api/"]  # the list, then discovery
    assert len(paths) == 6  # nothing else was tried


def test_a_kubernetes_server_without_the_resource_says_it_does_not_serve_it(
    cli: Cli, kube: FakeKube
) -> None:
    kube.fail_next(
        "GET",
        f"^/apis/{RBAC}/v1/clusterrolebindings$",
        404,
        message="the server could not find the requested resource",
    )
    line = cli.fails(
        "rbac plan",
        f"does not serve clusterrolebindings (API group {RBAC}): list ClusterRoleBindings"
        " labelled app.kubernetes.io/managed-by=authbridge answered 404: the server could not"
        " find the requested resource",
        "not a URL below it or a proxy in front of it",
    )
    assert "deleted meanwhile" not in line and "not a Kubernetes API server" not in line
    assert kube.requests[-1].path == "/api/"  # discovery was asked, and answered


def test_invalid_mapping_is_reported_like_mapping_check(cli: Cli, kube: FakeKube) -> None:
    write_mapping(cli.cwd, "bindings:\n  - group: devs\nfoo: 1\n")
    r = cli.run("rbac apply --prune")
    assert r.rc == 1 and r.out == "", r
    lines = r.err.splitlines()
    path = cli.cwd / "rbac" / "mapping.yaml"  # the setting's default, resolved
    assert lines[0] == f"authbridge: {path} is invalid (2 problems):"
    assert len(lines) == 3 and all(line.startswith(f"  {path}: ") for line in lines[1:])
    assert kube.requests == []
    check = cli.run("mapping check")
    assert check.rc == 1 and check.err == r.err


# -- watch ----------------------------------------------------------------------------------------


def test_watch_reconciles_on_change_and_stops_on_sigterm(cli: Cli, kube: FakeKube) -> None:
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        [str(AUTHBRIDGE), "rbac", "watch", "--prune", "--interval", "30"],
        cwd=cli.cwd,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        out, err = proc.stdout, proc.stderr
        assert out is not None and err is not None
        reader = threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True)
        reader.start()

        def wait_for(text: str, timeout: float = 20) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    if proc.poll() is not None:
                        break
                    continue
                seen.append(line)
                if text in line:
                    return
            raise AssertionError(f"no {text!r} in {seen}")

        try:
            wait_for("applied 5 changes (5 created)")
            assert everything(kube) == ALL
            write_mapping(cli.cwd, HEAD + "bindings:\n" + ADMINS + SERVICE_ACCOUNTS)
            wait_for("mapping changed (version 2); reconciling")
            wait_for("applied 2 changes (2 deleted)")
            proc.send_signal(signal.SIGTERM)
            wait_for("stopped")
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)
        assert err.read() == ""
    assert "received SIGTERM; stopping" in "".join(seen)
    assert all(line[:4].isdigit() and line[19] == "Z" for line in seen)  # timestamped
    assert everything(kube) == ALL - {f"RoleBinding dev/{RB_DEVS}", f"RoleBinding team-a/{RB_DEVS}"}


# -- imports --------------------------------------------------------------------------------------


def test_importing_the_cli_loads_no_kubernetes_client() -> None:
    code = (
        "import sys, authbridge.cli.main\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'kubernetes'"
        " or m.startswith(('authbridge.kube', 'authbridge.rbac'))]\n"
        "print(bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.stdout.strip() == "[]"
