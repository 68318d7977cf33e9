"""The admin API through a real ``authbridge serve`` (gunicorn, TLS, two workers), as curl would.

Set up through the real CLI (tests/serving.py), then over HTTPS: an access
key lists users (HTTP Basic) once its user has AdministratorAccess (the
CLI's ``attach-user-policy``, break-glass on the store); a token for the
admin audience from the token endpoint creates an access key, and the new
key works at once, in whichever worker answers; a cluster token is refused;
a user without policies is denied; every answer is JSON with ``no-store``
and a request id; the audit lines on the server's stdout name the calls.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ACCOUNT, LiveServer, start_server

ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from start_server(tmp_path_factory.mktemp("admin-api"))


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def api(
    server: LiveServer, surface: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    status, got, raw = server.request(
        f"/api/{surface}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    assert got["Content-Type"] == "application/json"
    assert got["Cache-Control"] == "no-store" and got["x-amzn-RequestId"]
    return status, got, json.loads(raw)


def token(server: LiveServer, key: tuple[str, str], audience: str) -> str:
    status, _, raw = server.request(
        "/oauth2/token",
        data=urllib.parse.urlencode(
            {"grant_type": "client_credentials", "audience": audience}
        ).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **basic(*key)},
    )
    assert status == 200, raw
    access_token: str = json.loads(raw)["access_token"]
    return access_token


def test_the_admin_api_over_https(server: LiveServer) -> None:
    alice = (server.access_key_id, server.secret)
    issuer = server.get_json("/.well-known/openid-configuration")["issuer"]
    admin_audience = issuer.rstrip("/") + "/admin"

    status, _, body = api(server, "iam", {"Action": "ListUsers"}, basic(*alice))
    assert status == 403 and body["Error"]["Code"] == "AccessDenied", body
    server.cli(f"iam attach-user-policy --user-name alice --policy-arn {ADMINISTRATOR}")

    status, _, body = api(server, "iam", {"Action": "ListUsers"}, basic(*alice))
    assert status == 200, body
    assert [u["UserName"] for u in body["Users"]] == ["alice"]

    bearer = {"Authorization": f"Bearer {token(server, alice, admin_audience)}"}
    status, _, body = api(server, "iam", {"Action": "CreateUser", "UserName": "bob"}, bearer)
    assert status == 200 and body["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/bob", body
    status, _, body = api(server, "iam", {"Action": "CreateAccessKey", "UserName": "bob"}, bearer)
    assert status == 200, body
    bob = (body["AccessKey"]["AccessKeyId"], body["AccessKey"]["SecretAccessKey"])
    # bob's key works at once, in every worker: and bob has no policy, so he is denied.
    for _ in range(4):
        status, _, body = api(server, "iam", {"Action": "ListUsers"}, basic(*bob))
        assert status == 403 and "no identity-based policy allows" in body["Error"]["Message"]

    cluster = {"Authorization": f"Bearer {token(server, alice, 'prod')}"}
    status, got, body = api(server, "iam", {"Action": "ListUsers"}, cluster)
    assert status == 401 and body["Error"]["Code"] == "InvalidClientTokenId"
    assert "a cluster token is not an admin credential" in body["Error"]["Message"]
    request_id = got["x-amzn-RequestId"]

    status, _, body = api(server, "keys", {"Action": "ListSigningKeys"}, bearer)
    assert status == 200 and body["Keys"][0]["state"] == "active", body
    status, _, body = api(server, "access", {"Action": "ListAccessPolicies"}, bearer)
    assert status == 200 and body["accessPolicies"], body

    status, _, raw = server.request(
        "/api/iam", data=b"{nope", headers={"Content-Type": "application/json", **bearer}
    )
    assert status == 400 and json.loads(raw)["Error"]["Code"] == "ValidationError"

    lines = [json.loads(x) for x in _log_lines(server.log) if '"admin_call"' in x]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id[request_id]["outcome"] == "denied"
    assert by_id[request_id]["reason"] == "InvalidClientTokenId"
    created = [line for line in lines if line.get("action") == "iam:CreateAccessKey"]
    assert created[0]["outcome"] == "allowed"
    assert created[0]["targets"] == [f"arn:aws:iam::{ACCOUNT}:user/bob"]
    assert bob[1] not in server.log.read_text()


def _log_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("{")]
