"""``authbridge apiserver-config`` through the real executable, after a real ``authbridge init``.

Covers:
- ``--mode jwt``: the YAML parses and passes the reference checks of
  tests/test_apiserver_config.py (field by field, for v1 and v1beta1), the CA
  inline is ``keys/tls/ca.crt`` byte for byte (or ``--ca-file``), audiences are
  the configured clusters (or ``--cluster-id``), the comment header names the
  flag and the limits; a warning on stderr while embedKubernetesClaims is off,
  none when on; ``-o json``; ``--forbid-system-prefix``;
- ``--mode webhook``: each kube-apiserver's kubeconfig path and flags, as init
  printed them; ``-o json``; ``--cluster-id`` picks;
- refusals are one line on stderr with exit code 1 (an unserved cluster id,
  an unreadable or non-PEM CA file, an http issuer, no kubeconfig, jwt-only
  options in webhook mode); a missing ``--mode`` is a usage error (2).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.serving import AUTHBRIDGE, clean_env, run_cli
from tests.test_apiserver_config import check_authentication_configuration

INIT = (
    "init --hostname authbridge.example.com --cluster-id prod --cluster-id staging"
    " --apiserver-client prod-cp=prod --apiserver-client stg-cp=staging"
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run(cwd: Path, args: str, **env: str) -> Result:
    proc = subprocess.run(
        [AUTHBRIDGE, *shlex.split(args)],
        cwd=cwd,
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def refused(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("authbridge: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where `authbridge init` ran once (read-only for the tests)."""
    path = tmp_path_factory.mktemp("apiserver-config")
    run_cli(path, INIT)
    return path


# --------------------------------------------------------------------------- jwt


def test_jwt_mode_prints_a_valid_authentication_configuration(root: Path) -> None:
    result = run(root, "apiserver-config --mode jwt")
    assert result.code == 0, result
    doc = yaml.safe_load(result.out)
    check_authentication_configuration(doc, api_version="apiserver.config.k8s.io/v1")
    issuer = doc["jwt"][0]["issuer"]
    assert issuer["url"] == "https://authbridge.example.com:8443"
    assert issuer["certificateAuthority"] == (root / "keys" / "tls" / "ca.crt").read_text()
    assert issuer["audiences"] == ["prod", "staging"]
    assert issuer["audienceMatchPolicy"] == "MatchAny"
    assert doc["jwt"][0]["claimMappings"]["username"] == {"claim": "k8s_username", "prefix": ""}
    header = result.out.split("apiVersion:")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    for fragment in ("--authentication-config=", "--oidc-*", "revocation", "frozen"):
        assert fragment in header, fragment
    # the server this config was made for does not embed the claims yet: say so
    assert "warning: embedKubernetesClaims is off" in result.err
    assert len(result.err.splitlines()) == 1


def test_jwt_mode_v1beta1_json_one_cluster_and_no_warning_when_on(root: Path) -> None:
    result = run(
        root,
        "apiserver-config --mode jwt --api-version v1beta1 --cluster-id staging -o json",
        AUTHBRIDGE_EMBED_KUBERNETES_CLAIMS="1",
    )
    assert result.code == 0 and result.err == "", result
    doc = json.loads(result.out)
    check_authentication_configuration(doc, api_version="apiserver.config.k8s.io/v1beta1")
    assert doc["jwt"][0]["issuer"]["audiences"] == ["staging"]
    assert "userValidationRules" not in doc["jwt"][0]


def test_jwt_mode_ca_file_and_system_prefix_rules(root: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    ca = (root / "keys" / "tls" / "ca.crt").read_bytes()
    bundle.write_bytes(ca + ca)
    result = run(
        root, f"-o json apiserver-config --mode jwt --ca-file {bundle} --forbid-system-prefix"
    )
    assert result.code == 0, result
    doc = json.loads(result.out)
    check_authentication_configuration(doc, api_version="apiserver.config.k8s.io/v1")
    assert doc["jwt"][0]["issuer"]["certificateAuthority"] == bundle.read_text()
    rules = [r["expression"] for r in doc["jwt"][0]["userValidationRules"]]
    assert rules == [
        "!user.username.startsWith('system:')",
        "user.groups.all(g, !g.startsWith('system:'))",
    ]


# --------------------------------------------------------------------------- webhook


def test_webhook_mode_prints_each_kubeconfig_and_its_flags(root: Path) -> None:
    init = json.loads(run_cli(root, f"-o json {INIT}"))  # a second run only reads
    result = run(root, "apiserver-config --mode webhook")
    assert result.code == 0 and result.err == "", result
    assert result.out.startswith("Webhook mode:")
    for client in init["ApiserverClients"]:
        # Where the file is here, and where the README has the control plane keep it.
        target = f"/etc/kubernetes/authbridge/{Path(client['Kubeconfig']).name}"
        assert client["ControlPlanePath"] == target
        assert f"copy {client['Kubeconfig']} (here) to {target} on its control plane" in result.out
        assert client["ApiserverFlags"][0] == f"--authentication-token-webhook-config-file={target}"
        for flag in client["ApiserverFlags"]:
            assert f"\n  {flag}\n" in result.out + "\n", flag
    doc = json.loads(run_cli(root, "apiserver-config --mode webhook -o json"))
    assert doc["Mode"] == "webhook"
    assert doc["ApiserverClients"] == init["ApiserverClients"]
    picked = yaml.safe_load(
        run_cli(root, "apiserver-config --mode webhook -o yaml --cluster-id staging")
    )
    assert [c["Name"] for c in picked["ApiserverClients"]] == ["stg-cp"]


# --------------------------------------------------------------------------- refusals


def test_refusals_are_one_line(root: Path, tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    http = {"AUTHBRIDGE_ISSUER": "http://authbridge.example.com"}
    http["AUTHBRIDGE_ALLOW_INSECURE_HTTP"] = "1"
    cases: list[tuple[Path, str, dict[str, str], tuple[str, ...]]] = [
        (
            root,
            "--mode jwt --cluster-id dev",
            {},
            ("--cluster-id: dev is not a cluster this authbridge issues for (prod, staging)",),
        ),
        (root, f"--mode jwt --ca-file {tmp_path}/none.pem", {}, ("cannot read", "pass --ca-file")),
        (root, f"--mode jwt --ca-file {not_pem}", {}, ("not PEM certificates",)),
        (root, "--mode jwt", http, ("not an https:// URL",)),
        (root, "--mode webhook --api-version v1", {}, ("--api-version: applies to --mode jwt",)),
        (root, "--mode webhook --cluster-id dev", {}, ("is for dev",)),
        (tmp_path, "--mode webhook", {}, ("no webhook kubeconfig in", "authbridge init")),
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda c: run(c[0], f"apiserver-config {c[1]}", **c[2]), cases))
    for case, result in zip(cases, results, strict=True):
        refused(result, *case[3])
    usage = run(root, "apiserver-config")
    assert usage.code == 2 and "--mode" in usage.err


def test_help_has_an_example(root: Path) -> None:
    out = run_cli(root, "apiserver-config --help")
    assert "authbridge apiserver-config --mode jwt" in out and "revocation" in out
