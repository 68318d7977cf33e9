"""End to end with a real kube-apiserver: authbridge tokens through the webhook.

Runs only with AUTHBRIDGE_E2E_APISERVER and AUTHBRIDGE_E2E_ETCD (see conftest).
Covers, through the SelfSubjectReview API (what `kubectl auth whoami` calls):
a mapped user and an assumed role are seen with their mapped username, uid,
groups (plus system:authenticated) and extra; a token for another cluster, an
unmapped user's, a revoked one and garbage are all 401 Unauthorized.
"""

from __future__ import annotations

import json
import time
import urllib.parse

from tests.e2e.conftest import Cluster


def token(cluster: Cluster, audience: str, *extra: str) -> str:
    return cluster.authbridge.mint(audience, *extra)


def test_mapped_user_is_seen_by_the_apiserver(cluster: Cluster) -> None:
    status, body = cluster.whoami(token(cluster, "prod"))
    assert status in (200, 201), body
    info = body["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["uid"].startswith("authbridge:111122223333:AIDA")
    assert "authbridge:devs" in info["groups"] and "system:authenticated" in info["groups"]
    assert info["extra"]["arn"] == [cluster.authbridge.user_arn]


def test_assumed_role_is_seen_with_its_session(cluster: Cluster) -> None:
    role = cluster.authbridge.role_arn
    status, body = cluster.whoami(
        token(cluster, "prod", "--role", role, "--session-name", "e2e-run")
    )
    assert status in (200, 201), body
    info = body["status"]["userInfo"]
    assert info["username"] == "admin:e2e-run"
    assert "authbridge:admins" in info["groups"]
    assert info["extra"]["sessionName"] == ["e2e-run"]


def test_token_for_another_cluster_is_unauthorized(cluster: Cluster) -> None:
    status, _ = cluster.whoami(token(cluster, "staging"))
    assert status == 401


def test_garbage_is_unauthorized(cluster: Cluster) -> None:
    status, _ = cluster.whoami("not-a-token")
    assert status == 401


def test_revoked_token_stops_working(cluster: Cluster) -> None:
    tok = token(cluster, "prod")
    assert cluster.whoami(tok)[0] in (200, 201)
    status, _, _ = cluster.authbridge.request(
        "/oauth2/revoke", data=urllib.parse.urlencode({"token": tok}).encode()
    )
    assert status == 200
    # The bound: authbridge's webhook cache (5 s) + the apiserver's cache (1 s here).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if cluster.whoami(tok)[0] == 401:
            return
        time.sleep(0.5)
    raise AssertionError("revoked token still accepted after 15 s")


def test_unmapped_user_is_unauthorized(cluster: Cluster) -> None:
    live = cluster.authbridge
    live.cli("iam create-user --user-name mallory")
    key = json.loads(live.cli("-o json iam create-access-key --user-name mallory"))["AccessKey"]
    tok = live.mint("prod", key=(key["AccessKeyId"], key["SecretAccessKey"]))
    assert cluster.whoami(tok)[0] == 401
