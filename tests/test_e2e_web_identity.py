"""``authbridge token --web-identity-token-file`` against a real ``authbridge serve``.

The test OIDC issuer (tests/oidc_issuer.py) plays the kube-apiserver: it is
registered as an OIDC provider through the CLI, a role trusts its
service-account ``deployer`` in namespace ``ci`` with a trust policy document,
and the plugin, in a fresh process with no access key, exchanges the token in
a file for a role session over https: by flags and by the environment the
admission webhook injects (AUTHBRIDGE_ROLE_ARN, AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE,
AUTHBRIDGE_ENDPOINT). The file is re-read on every mint (the kubelet rotates it);
the minted token is cached like every other.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from authbridge.client import fastpath
from tests.oidc_issuer import TestIssuer, running_issuer
from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, clean_env, start_server

SUB = "system:serviceaccount:ci:deployer"


@dataclass(frozen=True)
class World:
    live: LiveServer
    issuer: TestIssuer
    provider_arn: str
    role_arn: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("webidentity")
    issuer_dir = root / "issuer"
    issuer_dir.mkdir()
    with running_issuer(issuer_dir) as issuer:
        served = start_server(root / "server", workers=1)
        live = next(served)
        try:
            ca = root / "issuer-ca.pem"
            ca.write_text(issuer.ca_pem)
            provider = json.loads(
                live.cli(
                    f"-o json iam create-open-id-connect-provider --url {issuer.url}"
                    f" --client-id-list authbridge --ca-file {ca}"
                )
            )
            provider_arn = provider["OpenIDConnectProviderArn"]
            key = provider_arn.split(":oidc-provider/", 1)[1]
            trust = root / "trust.json"
            trust.write_text(
                json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": provider_arn},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {
                                    "StringEquals": {f"{key}:aud": "authbridge", f"{key}:sub": SUB}
                                },
                            }
                        ],
                    }
                )
            )
            role = json.loads(
                live.cli(
                    "-o json iam create-role --role-name Deployer"
                    f" --assume-role-policy-document file://{trust}"
                )
            )["Role"]
            yield World(live, issuer, provider_arn, role["Arn"])
        finally:
            served.close()


def plugin(world: World, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`authbridge token` as kubectl runs it in a pod: no credentials file, no access key."""
    return subprocess.run(
        [AUTHBRIDGE, "token", *args],
        cwd=home,
        env=clean_env(HOME=str(home), **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def pod_env(world: World, token_file: Path) -> dict[str, str]:
    return {
        "AUTHBRIDGE_ROLE_ARN": world.role_arn,
        "AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AUTHBRIDGE_ENDPOINT": world.live.url,
        "AUTHBRIDGE_CA_FILE": str(world.live.ca_file),
        "AUTHBRIDGE_CLUSTER_ID": "prod",
    }


def test_token_file_and_role_flags_give_a_role_session(world: World, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(world.issuer.kube_token() + "\n")
    proc = plugin(
        world,
        tmp_path,
        "--cluster-id",
        "prod",
        "--endpoint",
        world.live.url,
        "--ca-file",
        str(world.live.ca_file),
        "--web-identity-token-file",
        str(token_file),
        "--role",
        world.role_arn,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    claims = claims_of(doc["status"]["token"])
    assert claims["sub"] == world.role_arn
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/authbridge-web-identity"
    assert claims["source_identity"] == f"{world.provider_arn}:{SUB}"
    assert claims["aud"] == "prod"


def test_pod_environment_mints_caches_and_rereads_the_rotated_file(
    world: World, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(world.issuer.kube_token())
    env = pod_env(world, token_file)
    first = plugin(world, tmp_path, "--token-only", **env)
    assert first.returncode == 0, first.stderr
    # The stdlib fast path finds the entry the click command wrote (one cache key).
    answer = fastpath.cached_output({**env, "HOME": str(tmp_path)}, time.time(), token_only=True)
    assert answer == first.stdout
    # Cached: the same token, the file not even read (a garbled file does not matter).
    token_file.write_text("rotating…")
    again = plugin(world, tmp_path, "--token-only", **env)
    assert (again.returncode, again.stdout) == (0, first.stdout)
    # Not cached: the file is read now, so a garbled one is refused naming the file ...
    garbled = plugin(world, tmp_path, "--token-only", "--no-cache", **env)
    assert garbled.returncode == 1
    assert str(token_file) in garbled.stderr and "rotating" not in garbled.stderr
    # ... and the kubelet's next token works.
    token_file.write_text(world.issuer.kube_token(pod="deployer-new"))
    fresh = plugin(world, tmp_path, "--token-only", "--no-cache", **env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout != first.stdout


def test_another_service_account_is_refused_with_the_condition(
    world: World, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(world.issuer.kube_token(name="intruder"))
    proc = plugin(world, tmp_path, "--no-cache", **pod_env(world, token_file))
    assert proc.returncode == 1
    assert "invalid_grant" in proc.stderr
    assert "system:serviceaccount:ci:intruder" in proc.stderr
    assert token_file.read_text().split(".")[1] not in proc.stderr


@pytest.mark.parametrize(
    ("extra", "env_drop", "says"),
    [
        ((), "AUTHBRIDGE_ROLE_ARN", "--role (or AUTHBRIDGE_ROLE_ARN) is required"),
        ((), "AUTHBRIDGE_ENDPOINT", "--endpoint (or AUTHBRIDGE_ENDPOINT) is required"),
        (("--profile", "x"), None, "--profile and --principal do not apply"),
        (("--role", "arn:aws:iam::1:role/x"), None, "is not a role ARN"),
    ],
)
def test_usage_errors(
    world: World, tmp_path: Path, extra: tuple[str, ...], env_drop: str | None, says: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(world.issuer.kube_token())
    env = pod_env(world, token_file)
    if env_drop:
        env.pop(env_drop)
    proc = plugin(world, tmp_path, *extra, **env)
    assert proc.returncode != 0
    assert says in proc.stderr, proc.stderr


def test_missing_token_file_names_it(world: World, tmp_path: Path) -> None:
    env = pod_env(world, tmp_path / "nope")
    proc = plugin(world, tmp_path, "--no-cache", **env)
    assert proc.returncode == 1
    assert f"web identity token file {tmp_path / 'nope'} does not exist" in proc.stderr
