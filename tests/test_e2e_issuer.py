"""End to end: the real `authbridge serve` (gunicorn, 2 workers, TLS from `init`) and the
real `authbridge token` plugin, as kubectl would run it.

Covers: a token for a user and for an assumed role, printed as the
ExecCredential version KUBERNETES_EXEC_INFO asks for, verified with PyJWT
using nothing but the discovery document and JWKS fetched over HTTPS; the
plugin's cache answering a second call without the server; a revoked token
reported inactive by every worker at once; a key rotation on disk reaching
every worker without a restart; a refusal from the real server shown as one
line.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.serving import LiveServer, clean_env, start_server

EXEC_INFO_V1BETA1 = json.dumps(
    {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from start_server(tmp_path_factory.mktemp("live"))


def plugin(
    live: LiveServer, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `authbridge token` the way kubectl does: fresh process, env, no stdin."""
    return live.plugin(*args, home=home, **env)


def verify_like_an_oidc_consumer(live: LiveServer, token: str, audience: str) -> dict[str, Any]:
    """What any OIDC consumer does: discovery -> jwks_uri -> key by kid -> verify."""
    discovery = live.get_json("/.well-known/openid-configuration")
    assert discovery["issuer"] == live.url
    ctx = ssl.create_default_context(cafile=str(live.ca_file))
    jwks = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=ctx, cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=discovery["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    return claims


def test_user_token_from_the_plugin_verifies_from_discovery(
    live: LiveServer, tmp_path: Path
) -> None:
    proc = plugin(live, tmp_path, "--cluster-id", "prod", KUBERNETES_EXEC_INFO=EXEC_INFO_V1BETA1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    cred = json.loads(proc.stdout)
    assert cred["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert cred["kind"] == "ExecCredential"
    claims = verify_like_an_oidc_consumer(live, cred["status"]["token"], "prod")
    assert claims["sub"] == live.user_arn and claims["arn"] == live.user_arn
    assert claims["access_key_id"] == live.access_key_id
    assert claims["principal_id"].startswith("AIDA")
    expiry = cred["status"]["expirationTimestamp"]
    assert time.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ")
    assert _epoch(expiry) < claims["exp"]


def test_role_token_from_the_plugin_verifies_from_discovery(
    live: LiveServer, tmp_path: Path
) -> None:
    proc = plugin(
        live,
        tmp_path,
        "--cluster-id",
        "staging",
        "--role",
        live.role_arn,
        "--session-name",
        "ci-run-42",
    )
    assert proc.returncode == 0, proc.stderr
    cred = json.loads(proc.stdout)
    assert cred["apiVersion"] == "client.authentication.k8s.io/v1"  # no KUBERNETES_EXEC_INFO
    claims = verify_like_an_oidc_consumer(live, cred["status"]["token"], "staging")
    assert claims["sub"] == live.role_arn  # canonical: the role, with its path
    assert claims["arn"] == "arn:aws:sts::111122223333:assumed-role/Admin/ci-run-42"
    assert claims["session_name"] == "ci-run-42"
    assert claims["principal_id"].startswith("AROA") and claims["principal_id"].endswith(
        ":ci-run-42"
    )


def test_second_call_is_served_from_the_cache(live: LiveServer, tmp_path: Path) -> None:
    first = plugin(live, tmp_path, "--cluster-id", "prod")
    assert first.returncode == 0, first.stderr
    # Wrong credentials now: only a cache hit can still answer.
    wrong = (live.access_key_id, "wrong" * 8)
    second = live.plugin("--cluster-id", "prod", key=wrong, home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert (
        json.loads(second.stdout)["status"]["token"] == json.loads(first.stdout)["status"]["token"]
    )
    # …and without the cache, those credentials are refused by the server.
    uncached = live.plugin("--cluster-id", "prod", "--no-cache", key=wrong, home=tmp_path)
    assert uncached.returncode == 1 and "invalid_client" in uncached.stderr
    cache = list((tmp_path / ".kube" / "cache" / "authbridge").glob("*.json"))
    assert len(cache) == 1 and cache[0].stat().st_mode & 0o777 == 0o600


def test_refusal_from_the_real_server_is_one_line(live: LiveServer, tmp_path: Path) -> None:
    proc = plugin(live, tmp_path, "--cluster-id", "not-served")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("authbridge: ") and proc.stderr.count("\n") == 1
    assert "invalid_target" in proc.stderr
    assert live.secret not in proc.stderr


def _form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def _basic(live: LiveServer) -> dict[str, str]:
    import base64

    raw = f"{live.access_key_id}:{live.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_revocation_reaches_every_worker_at_once(live: LiveServer) -> None:
    status, _, body = live.request(
        "/oauth2/token",
        data=_form(grant_type="client_credentials", audience="prod"),
        headers=_basic(live),
    )
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, _, _ = live.request("/oauth2/revoke", data=_form(token=token))
    assert status == 200
    # Each request is a new connection, so the two workers both answer some of them.
    answers = set()
    for _ in range(12):
        status, _, body = live.request(
            "/oauth2/introspect", data=_form(token=token), headers=_basic(live)
        )
        answers.add((status, json.dumps(json.loads(body))))
    assert answers == {(200, '{"active": false}')}  # exactly that, from every worker


def test_key_rotation_reaches_every_worker_without_restart(live: LiveServer) -> None:
    before = {k["kid"] for k in live.get_json("/openid/v1/jwks")["keys"]}
    rotated = live.cli("-o json keys rotate", env=clean_env(AUTHBRIDGE_PREPUBLICATION_DELAY="0"))
    new_kid = json.loads(rotated)["Key"]["kid"]
    assert new_kid not in before
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = [{k["kid"] for k in live.get_json("/openid/v1/jwks")["keys"]} for _ in range(8)]
        if all(new_kid in s for s in seen):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"new key {new_kid} not published by every worker: {seen}")
    # …and new tokens are signed with it, by whichever worker answers.
    for _ in range(4):
        status, _, body = live.request(
            "/oauth2/token",
            data=_form(grant_type="client_credentials", audience="prod"),
            headers=_basic(live),
        )
        assert status == 200, body
        assert jwt.get_unverified_header(json.loads(body)["access_token"])["kid"] == new_kid


def _epoch(rfc3339: str) -> int:
    import calendar

    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))
