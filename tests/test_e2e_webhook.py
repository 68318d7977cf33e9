"""End to end: playing the kube-apiserver against the real `authbridge serve`.

The server runs under gunicorn with TLS and a client CA, set up by `authbridge
init --apiserver-client prod-cp=prod --apiserver-client stg-cp=staging`. The
test POSTs TokenReviews exactly as a kube-apiserver does, presenting the
client certificate init made for it, in v1 and v1beta1, and checks every
answer field by field: a mapped user, an assumed role, an account-mapped
principal, an unmapped one, a revoked token, a disabled user, a token for
the other cluster. A call without a client certificate is refused.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.serving import LiveServer, start_server

OTHER_ACCOUNT = "444455556666"
MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs", "team-{{{{AccountID}}}}"]
  - userarn: arn:aws:iam::111122223333:user/dave
    username: dave
mapAccounts: ["{OTHER_ACCOUNT}"]
"""
API_AUDIENCES = ["https://kubernetes.default.svc"]  # what a kube-apiserver sends by default


@dataclass
class Users:
    live: LiveServer
    keys: dict[str, tuple[str, str]]  # name -> (access key id, secret)


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    served = start_server(
        tmp_path_factory.mktemp("webhook"),
        mapping=MAPPING,
        init_args="--apiserver-client prod-cp=prod --apiserver-client stg-cp=staging",
    )
    live = next(served)
    keys = {"alice": (live.access_key_id, live.secret)}
    live.cli("iam create-user --user-name dave")
    live.cli("iam create-user --user-name mallory")  # before a second account exists
    live.cli(f"iam create-account --account-id {OTHER_ACCOUNT}")
    live.cli(f"--account-id {OTHER_ACCOUNT} iam create-user --user-name carol")
    for name, account in (("dave", None), ("mallory", None), ("carol", OTHER_ACCOUNT)):
        prefix = f"--account-id {account} " if account else "--account-id 111122223333 "
        key = json.loads(live.cli(f"-o json {prefix}iam create-access-key --user-name {name}"))
        keys[name] = (key["AccessKey"]["AccessKeyId"], key["AccessKey"]["SecretAccessKey"])
    try:
        yield Users(live, keys)
    finally:
        served.close()


def mint(users: Users, name: str, cluster: str, *extra: str) -> str:
    return users.live.mint(cluster, *extra, key=users.keys[name])


def review(
    users: Users,
    token: str,
    *,
    client: str | None = "prod-cp",
    version: str = "v1",
    audiences: list[str] | None = None,
) -> tuple[int, Any]:
    """POST a TokenReview the way the kube-apiserver's webhook client does."""
    live = users.live
    ctx = ssl.create_default_context(cafile=str(live.ca_file))
    if client is not None:
        tls = live.root / "keys" / "tls"
        ctx.load_cert_chain(
            str(tls / f"apiserver-{client}.crt"), str(tls / f"apiserver-{client}.key")
        )
    body = {
        "apiVersion": f"authentication.k8s.io/{version}",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": API_AUDIENCES if audiences is None else audiences},
    }
    req = urllib.request.Request(  # noqa: S310 - the test server's https URL
        live.url + "/authenticate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def allowed(answer: Any, version: str = "v1") -> dict[str, Any]:
    assert answer["apiVersion"] == f"authentication.k8s.io/{version}"
    assert answer["kind"] == "TokenReview"
    status = answer["status"]
    assert status["authenticated"] is True, status
    assert "error" not in status or not status["error"]
    user: dict[str, Any] = status["user"]
    assert set(user) <= {"username", "uid", "groups", "extra"}
    return user


def denied(code: int, answer: Any, version: str = "v1") -> None:
    assert code == 200, answer  # every verdict is HTTP 200
    assert answer["apiVersion"] == f"authentication.k8s.io/{version}"
    assert answer["kind"] == "TokenReview"
    status = answer["status"]
    assert status["authenticated"] is False
    assert "user" not in status or not status["user"]
    assert status["error"] and len(status["error"]) < 100  # short and generic


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_mapped_user(users: Users, version: str) -> None:
    token = mint(users, "alice", "prod")
    code, answer = review(users, token, version=version)
    assert code == 200
    user = allowed(answer, version)
    assert user["username"] == "alice"
    assert user["uid"].startswith("authbridge:111122223333:AIDA")
    assert user["groups"] == ["authbridge:devs", "team-111122223333"]
    arn = users.live.user_arn
    assert user["extra"]["arn"] == [arn] and user["extra"]["canonicalArn"] == [arn]
    assert user["extra"]["accessKeyId"] == [users.keys["alice"][0]]
    assert user["extra"]["principalId"] == [user["uid"].removeprefix("authbridge:111122223333:")]
    # The kube-apiserver's own audience is not the cluster id: the intersection is empty.
    assert not answer["status"].get("audiences")


def test_status_audiences_is_the_intersection(users: Users) -> None:
    token = mint(users, "alice", "prod")
    _, answer = review(users, token, audiences=["prod", "https://kubernetes.default.svc"])
    assert answer["status"]["audiences"] == ["prod"]


def test_assumed_role(users: Users) -> None:
    token = mint(
        users, "alice", "prod", "--role", users.live.role_arn, "--session-name", "bob@example.com"
    )
    _, answer = review(users, token)
    user = allowed(answer)
    assert user["username"] == "admin:bob-example.com"  # {{SessionName}}: @ -> -
    assert user["groups"] == ["authbridge:admins"]
    assert user["extra"]["sessionName"] == ["bob@example.com"]
    assert user["extra"]["canonicalArn"] == [users.live.role_arn]
    assert user["extra"]["arn"] == ["arn:aws:sts::111122223333:assumed-role/Admin/bob@example.com"]
    assert user["uid"].endswith(":bob@example.com")


def test_account_mapped_principal(users: Users) -> None:
    _, answer = review(users, mint(users, "carol", "prod"))
    user = allowed(answer)
    carol = f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol"
    assert user["username"] == carol
    assert not user.get("groups")


def test_unmapped_principal(users: Users) -> None:
    denied(*review(users, mint(users, "mallory", "prod")))


def test_revoked_token(users: Users) -> None:
    token = mint(users, "alice", "prod")
    status, _, _ = users.live.request(
        "/oauth2/revoke", data=urllib.parse.urlencode({"token": token}).encode()
    )
    assert status == 200
    denied(*review(users, token))


def test_disabled_user(users: Users) -> None:
    token = mint(users, "dave", "prod")
    allowed(review(users, token)[1])
    users.live.cli("--account-id 111122223333 iam update-user --user-name dave --disable")
    try:
        # Disabling must win over the webhook's positive cache within its TTL (5 s).
        import time

        deadline = time.monotonic() + 10
        while True:
            code, answer = review(users, token)
            if not answer["status"]["authenticated"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        denied(code, answer)
    finally:
        users.live.cli("--account-id 111122223333 iam update-user --user-name dave --enable")


def test_token_for_the_other_cluster(users: Users) -> None:
    staging = mint(users, "alice", "staging")
    denied(*review(users, staging, client="prod-cp"))  # a staging token on prod
    allowed(review(users, staging, client="stg-cp")[1])  # fine on staging


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_garbage_token_is_a_verdict(users: Users, version: str) -> None:
    denied(*review(users, "not-a-token", version=version), version=version)


def test_call_without_client_certificate_is_refused(users: Users) -> None:
    code, answer = review(users, mint(users, "alice", "prod"), client=None)
    assert code in (401, 403), answer
    assert "authenticated" not in json.dumps(answer)
