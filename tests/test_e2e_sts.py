"""End to end: the audience rule and source identities against the real `authbridge serve`.

The server runs under gunicorn (2 workers) with TLS and a client CA (`init
--apiserver-client prod-cp=prod --apiserver-client stg-cp=staging`); the
test plays the kube-apiserver (TokenReviews with that cluster's client
certificate), curl (`/verify`, `/oauth2/token`, `/oauth2/revoke` over HTTPS)
and kubectl (`authbridge token --role` in a fresh process).

Covers, each a named attack:
- the cross-cluster pivot: a staging token as `subject_token` of AssumeRole,
  no client authentication, for prod (another cluster) and for staging (the
  same one), is refused ``invalid_grant`` "a cluster token is not an STS
  credential" (and the staging token itself stays refused by prod's webhook);
- a subject token whose `aud` lists a cluster and the sts audience (signed
  with the server's own key) is refused by the token endpoint, the webhook and
  `/verify`;
- an sts token presented to `/authenticate` (both clusters) and `/verify`:
  refused;
- role chaining: a role session as `subject_token`: refused;
- source identity: role sessions (from an sts token, from the plugin, signed
  with the client's key) refused by `/authenticate` and `/verify` once their
  source user is disabled or deleted, their source key inactive or deleted,
  or the sts token they came from revoked, within the webhook's cache TTL;
  `/verify` and `authbridge verify` name the source.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authbridge.keys import KeyDirectory
from authbridge.tokens import Principal, mint
from tests.serving import ACCOUNT, LiveServer, start_server
from tests.test_e2e_webhook import MAPPING, Users, allowed, denied, review

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
CLUSTER_TOKEN = "a cluster token is not an STS credential"
WEBHOOK_BOUND = 15.0  # seconds: webhookCacheTTLSeconds (5) and generous slack


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    served = start_server(
        tmp_path_factory.mktemp("sts"),
        mapping=MAPPING,
        init_args="--apiserver-client prod-cp=prod --apiserver-client stg-cp=staging",
    )
    live = next(served)
    try:
        yield Users(live, {"alice": (live.access_key_id, live.secret)})
    finally:
        served.close()


# -- HTTP helpers --------------------------------------------------------------------------


def _basic(key: tuple[str, str]) -> dict[str, str]:
    raw = base64.b64encode(f"{key[0]}:{key[1]}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def post_token(
    live: LiveServer, form: dict[str, str], key: tuple[str, str] | None = None
) -> tuple[int, Any]:
    status, _, body = live.request(
        "/oauth2/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **(_basic(key) if key else {}),
        },
    )
    return status, json.loads(body)


def sts_audience(live: LiveServer) -> str:
    issuer = live.get_json("/.well-known/openid-configuration")["issuer"]
    assert isinstance(issuer, str)
    return issuer + "/sts"


def token_for(live: LiveServer, key: tuple[str, str], audience: str) -> str:
    status, body = post_token(live, {"grant_type": "client_credentials", "audience": audience}, key)
    assert status == 200, body
    token: str = body["access_token"]
    return token


def exchange(
    live: LiveServer,
    subject: str | None,
    *,
    audience: str = "prod",
    session: str = "s1",
    key: tuple[str, str] | None = None,
) -> tuple[int, Any]:
    form = {
        "grant_type": EXCHANGE,
        "audience": audience,
        "role_arn": live.role_arn,
        "role_session_name": session,
    }
    if subject is not None:
        form.update(subject_token=subject, subject_token_type=JWT_TYPE)
    return post_token(live, form, key)


def role_session(live: LiveServer, subject: str | None, **kw: Any) -> str:
    status, body = exchange(live, subject, **kw)
    assert status == 200, body
    token: str = body["access_token"]
    return token


def refused_grant(answer: tuple[int, Any], *fragments: str) -> None:
    status, body = answer
    assert status == 400, body
    assert body["error"] == "invalid_grant", body
    for fragment in fragments:
        assert fragment in body["error_description"], body


def verify(live: LiveServer, token: str) -> dict[str, Any]:
    status, _, body = live.request("/verify", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    doc: dict[str, Any] = json.loads(body)
    return doc


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def denied_within_the_bound(users: Users, token: str, client: str = "prod-cp") -> None:
    """The webhook refuses ``token`` once its positive cache (5 s) has let go."""
    deadline = time.monotonic() + WEBHOOK_BOUND
    while True:
        code, answer = review(users, token, client=client)
        if not answer["status"]["authenticated"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    denied(code, answer)


# -- the audience rule ---------------------------------------------------------------------


@pytest.mark.parametrize("into", ["prod", "staging"])
def test_staging_token_pivot_is_refused(users: Users, into: str) -> None:
    """The issue's attack: a staging bearer token, no client auth, AssumeRole for a cluster."""
    live = users.live
    staging = users.live.mint("staging")
    denied(*review(users, staging, client="prod-cp"))  # prod's webhook refuses it directly
    allowed(review(users, staging, client="stg-cp")[1])  # where it belongs, it works
    refused_grant(exchange(live, staging, audience=into), CLUSTER_TOKEN)


def test_subject_token_naming_a_cluster_and_sts_is_refused(users: Users) -> None:
    live = users.live
    sts = sts_audience(live)
    user = claims_of(live.mint("prod"))
    # Signed with the server's own key, as no request to it can mint: only aud is wrong.
    keys = KeyDirectory(live.root / "keys").load()
    mixed = mint(
        Principal(
            arn=user["arn"],
            canonical_arn=user["sub"],
            account_id=ACCOUNT,
            principal_id=user["principal_id"],
            access_key_id=user["access_key_id"],
        ),
        keys=keys,
        issuer=live.url,
        audience=["prod", sts],
    ).token
    refused_grant(exchange(live, mixed), CLUSTER_TOKEN)
    denied(*review(users, mixed, client="prod-cp"))
    doc = verify(live, mixed)
    assert doc["authenticated"] is False and doc["reasonCode"] == "wrong_audience"
    # And the request that would mint one is no request: audience given twice.
    status, _, body = live.request(
        "/oauth2/token",
        data=f"grant_type=client_credentials&audience=prod&audience={urllib.parse.quote(sts)}".encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **_basic(users.keys["alice"]),
        },
    )
    assert status == 400 and json.loads(body)["error"] == "invalid_request"


def test_sts_token_is_refused_by_authenticate_and_verify(users: Users) -> None:
    live = users.live
    sts_token = token_for(live, users.keys["alice"], sts_audience(live))
    assert claims_of(sts_token)["aud"] == sts_audience(live)
    for client in ("prod-cp", "stg-cp"):
        denied(*review(users, sts_token, client=client))
    doc = verify(live, sts_token)
    assert doc["authenticated"] is False and doc["reasonCode"] == "wrong_audience"
    # What it is for: a subject token.
    assert claims_of(role_session(live, sts_token))["aud"] == "prod"


def test_role_chaining_is_refused(users: Users) -> None:
    live = users.live
    session = role_session(live, token_for(live, users.keys["alice"], sts_audience(live)))
    refused_grant(exchange(live, session, session="s2"), CLUSTER_TOKEN)


def test_the_plugin_role_flow_uses_an_sts_token(users: Users, tmp_path: Path) -> None:
    live = users.live
    proc = live.plugin("--cluster-id", "prod", "--role", live.role_arn, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    token = json.loads(proc.stdout)["status"]["token"]
    user = allowed(review(users, token)[1])
    assert user["username"] == f"admin:{live.access_key_id}"
    doc = verify(live, token)
    assert doc["identity"]["sourceIdentity"] == claims_of(live.mint("prod"))["principal_id"]
    assert doc["identity"]["sourceAccessKeyId"] == live.access_key_id
    assert doc["identity"]["sourceJti"]  # the sts token's, cached beside the role token
    cached = [
        json.loads(p.read_text())["token"] for p in (tmp_path / ".kube/cache/authbridge").iterdir()
    ]
    assert sorted(claims_of(t)["aud"] for t in cached) == sorted(["prod", sts_audience(live)])
    # `authbridge verify` says where the session started, in words too.
    text = live.cli(["verify", "--endpoint", live.url, "--ca-file", str(live.ca_file), token])
    source = doc["identity"]["sourceIdentity"]
    assert re.search(rf"^SourceIdentity +{source}$", text, re.M), text
    assert re.search(rf"^SourceAccessKeyId +{live.access_key_id}$", text, re.M), text


# -- source identity: a role session ends with what it came from -----------------------------


@dataclass
class Source:
    name: str
    key: tuple[str, str]
    user_id: str
    sts_token: str
    sessions: dict[str, str]  # how it was minted -> role session token


def _source(users: Users, name: str, tmp_path: Path) -> Source:
    """A user in group admins (trusted by Admin) and its role sessions, each allowed now."""
    live = users.live
    acct = f"--account-id {ACCOUNT}"
    user = json.loads(live.cli(f"-o json {acct} iam create-user --user-name {name}"))["User"]
    live.cli(f"{acct} iam add-user-to-group --group-name admins --user-name {name}")
    created = json.loads(live.cli(f"-o json {acct} iam create-access-key --user-name {name}"))
    key = (created["AccessKey"]["AccessKeyId"], created["AccessKey"]["SecretAccessKey"])
    sts_token = token_for(live, key, sts_audience(live))
    proc = live.plugin(
        "--cluster-id", "prod", "--role", live.role_arn, "--token-only", key=key, home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    sessions = {
        "sts token": role_session(live, sts_token, session=f"{name}-sts"),
        "client key": role_session(live, None, session=f"{name}-key", key=key),
        "plugin": proc.stdout.strip(),
    }
    for how, token in sessions.items():
        allowed(review(users, token)[1])  # and now in the webhook's positive cache
        doc = verify(users.live, token)
        assert doc["authenticated"] is True, (how, doc)
        assert doc["identity"]["sourceIdentity"] == user["UserId"], how
    return Source(name, key, user["UserId"], sts_token, sessions)


def _revoke(users: Users, source: Source) -> None:
    status, _, _ = users.live.request(
        "/oauth2/revoke", data=urllib.parse.urlencode({"token": source.sts_token}).encode()
    )
    assert status == 200


def _cli(argv: str) -> Callable[[Users, Source], None]:
    def change(users: Users, source: Source) -> None:
        users.live.cli(
            argv.format(acct=f"--account-id {ACCOUNT}", name=source.name, key=source.key[0])
        )

    return change


CASES: dict[str, tuple[Callable[[Users, Source], None], str, str, tuple[str, ...]]] = {
    # case: (change, reasonCode, a fragment of the reason, the sessions it ends)
    "user-disabled": (
        _cli("{acct} iam update-user --user-name {name} --disable"),
        "disabled",
        "which this session started from, is disabled",
        ("sts token", "client key", "plugin"),
    ),
    "user-deleted": (
        _cli("{acct} iam delete-user --user-name {name} --force"),
        "disabled",
        "which this session started from, no longer exists",
        ("sts token", "client key", "plugin"),
    ),
    "key-inactive": (
        _cli("iam update-access-key --access-key-id {key} --status Inactive"),
        "disabled",
        "is inactive",
        ("sts token", "client key", "plugin"),
    ),
    "key-deleted": (
        _cli("iam delete-access-key --access-key-id {key}"),
        "disabled",
        "no longer exists",
        ("sts token", "client key", "plugin"),
    ),
    "source-token-revoked": (
        _revoke,
        "revoked",
        "the token this session was minted from has been revoked",
        ("sts token",),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_source_identity_ends_role_sessions(users: Users, case: str, tmp_path: Path) -> None:
    change, reason_code, fragment, ended = CASES[case]
    source = _source(users, f"src-{case}", tmp_path)
    change(users, source)
    for how, token in source.sessions.items():
        doc = verify(users.live, token)
        if how not in ended:  # revoking the sts token ends only what was minted from it
            assert doc["authenticated"] is True, (how, doc)
            allowed(review(users, token)[1])
            continue
        assert doc["authenticated"] is False, (how, doc)
        assert doc["reasonCode"] == reason_code, (how, doc)
        assert fragment in doc["reason"], (how, doc)
        denied_within_the_bound(users, token)
