"""No token and no secret reaches any log line: canaries fed through every path.

One app (Flask's test client) with the audit log in a file, every logger
captured at DEBUG and the process's stdout and stderr captured at the file
descriptor. Driven through it, with canary secrets and canary tokens:

- ``/oauth2/token``, client_credentials: success (HTTP Basic and form
  credentials), a wrong canary secret (both ways), the access key id and the
  secret swapped (the real secret in ``client_id``), an unserved audience, a
  malformed Basic header, a repeated ``client_secret``, the secret in the URL,
  a body over the cap (413), then failures until 429;
- token exchange: success, a canary subject token, a forged (tampered)
  subject token, a wrong canary client secret, an untrusted role;
- ``/oauth2/introspect`` (active, canary, forged, wrong canary secret) and
  ``/oauth2/revoke`` (a token, a canary, a wrong canary secret);
- ``/authenticate``: allowed (a user, a cache hit, a role session), denied
  (canary, forged, revoked), 400 (not a TokenReview, a token that is not a
  string), 413, 401 without a client certificate;
- ``/verify``: allowed, a canary, a forged token in the body, the token in
  the URL, a Basic header, 413; and ``/metrics``;
- the admin API (its own test): CreateAccessKey with a token and with a key,
  canary secrets and tokens as credentials, as the action, a field name, a
  user name, a trust ARN, in an oversized and in a malformed body.

Then no captured text (log records with their tracebacks, the audit file,
stdout, stderr) holds a secret, a canary, or any 16 characters in a row of a
token; the audit file has exactly one JSON line per request to an audited
endpoint, with the access key id a client named only when it is one.

Then the same against a real ``authbridge serve`` (gunicorn, TLS, two
workers), with **secret-shaped** canaries (a fresh access-key-shaped secret,
the user's real secret, JWT-shaped forgeries) put where a message would
quote them: ``role_arn`` (the value, and a role name inside an ARN),
``role_session_name`` (a valid one: the "issued" log line names it),
``audience``, ``client_id``, ``duration_seconds``, ``grant_type``, a
repeated parameter's name, a subject token whose ``alg`` is the canary;
introspection and revocation of canaries; ``/verify`` with a forged token
whose ``kid`` is the canary, with the canary as ``clusterID`` and with a real
token whose session name is the canary; ``/authenticate`` with canary tokens;
and raw HTTP that gunicorn's parser refuses (a header line that is the
canary). Afterwards the server's whole output (the application log on
stderr, gunicorn's error log, the audit log on stdout) and every response
body hold no canary, no secret and no 16 characters of a token; and each
sink shows it did redact something. The one place the canary session name
does appear is the TokenReview verdict for its token: that is the
Kubernetes username (``admin:<session>``), an identity, not a message.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge.iam.credentials import Pepper, new_secret
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.store import SqlStore, open_store
from authbridge.web import create_app
from tests.conftest import ACCOUNT
from tests.serving import LiveServer, start_server
from tests.web.conftest import make_settings
from tests.web.helpers import JWT_TYPE, STS, TOKEN_EXCHANGE, Clock, World, basic, build_world

# Not shaped like an access-key secret (40 base64url characters), so the writer's
# guard cannot be what keeps it out: the records must never take it in.
CANARY_SECRET = "canary~secret~" + secrets.token_hex(16)
CANARY_TOKEN = "CanaryToken" + secrets.token_hex(20)
MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/team/alice
    username: alice
"""
PROD = {
    "authbridge.peer_cert": {
        "subject": ((("commonName", "prod-cp"),), (("organizationName", "prod"),))
    }
}
AUDITED = {
    "/oauth2/token": "token_issued",
    "/oauth2/introspect": "introspect",
    "/oauth2/revoke": "revoke",
    "/authenticate": "tokenreview",
    "/verify": "verify",
}


class Session:
    """The test client, counting requests to audited endpoints by event."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.events: dict[str, int] = {}

    def _count(self, path: str) -> None:
        event = AUDITED.get(path.partition("?")[0])
        if event is not None:
            self.events[event] = self.events.get(event, 0) + 1

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        self._count(path)
        return self.client.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        self._count(path)
        return self.client.get(path, **kwargs)

    def token(self, data: dict[str, str], headers: dict[str, str] | None = None) -> TestResponse:
        return self.post("/oauth2/token", data=data, headers=headers or {})

    def review(self, token: Any, cert: dict[str, Any] | None = PROD) -> TestResponse:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
        return self.post(
            "/authenticate", json={**body, "spec": {"token": token}}, environ_base=cert or {}
        )


@pytest.fixture
def world_and_client(tmp_path: Path, pepper: Pepper) -> Iterator[tuple[World, Session, Path]]:
    audit_file = tmp_path / "audit.log"
    settings = make_settings(tmp_path, audit_log=str(audit_file), client_ca_file="tls/ca.crt")
    settings.mapping_file.write_text(MAPPING)
    clock = Clock(float(int(time.time())))
    store: SqlStore = open_store(f"sqlite:///{tmp_path}/authbridge.db", pepper=pepper)
    store.create_account(ACCOUNT)
    world = build_world(store)
    directory = KeyDirectory(settings.keys_dir, prepublication_delay=600)
    directory.init("ES256", now=clock.now - 3600)
    app = create_app(
        settings,
        store=store,
        keys=KeyRing(directory, clock=clock),
        clock=clock,
        mapping=MappingHolder(settings.mapping_file),
    )
    try:
        yield world, Session(app.test_client()), audit_file
    finally:
        store.close()


def form_auth(key_id: str, secret: str) -> dict[str, str]:
    return {"client_id": key_id, "client_secret": secret}


def test_no_token_or_secret_reaches_any_log(
    world_and_client: tuple[World, Session, Path],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    world, s, audit_file = world_and_client
    caplog.set_level(logging.DEBUG)  # every logger, every level
    alice_id, alice_secret = world.alice_key.key.access_key_id, world.alice_key.secret_access_key
    bob_id, bob_secret = world.bob_key.key.access_key_id, world.bob_key.secret_access_key
    cc = {"grant_type": "client_credentials", "audience": "prod"}

    # -- /oauth2/token: client_credentials
    t_alice = s.token(cc, basic(alice_id, alice_secret)).get_json()["access_token"]
    t_bob = s.token({**cc, **form_auth(bob_id, bob_secret)}).get_json()["access_token"]
    assert s.token(cc, basic(alice_id, CANARY_SECRET)).status_code == 401
    assert s.token({**cc, **form_auth(alice_id, CANARY_SECRET)}).status_code == 401
    assert s.token(cc, basic(alice_secret, alice_id)).status_code == 401  # swapped
    assert s.token({**cc, **form_auth(CANARY_SECRET, alice_secret)}).status_code == 401
    assert s.token({**cc, "audience": "nope"}, basic(alice_id, alice_secret)).status_code == 400
    raw = base64.b64encode(CANARY_SECRET.encode()).decode()
    assert s.token(cc, {"Authorization": f"Basic {raw}"}).status_code == 401
    repeated = f"grant_type=client_credentials&client_secret={CANARY_SECRET}&client_secret=x"
    s.post(
        "/oauth2/token",
        data=repeated,
        content_type="application/x-www-form-urlencoded",
    )
    assert s.post(f"/oauth2/token?client_secret={CANARY_SECRET}", data=cc).status_code == 400
    big = {**cc, **form_auth(alice_id, CANARY_SECRET), "pad": "x" * 70_000}
    assert s.token(big).status_code == 413

    # -- token exchange
    head, payload, _sig = t_alice.split(".")
    forged = f"{head}.{payload}.{CANARY_TOKEN}"
    xchg = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token_type": JWT_TYPE,
        "audience": "prod",
        "role_arn": world.admin.arn,
        "role_session_name": "canary-run",
    }
    sts_cc = {**cc, "audience": STS}
    s_alice = s.token(sts_cc, basic(alice_id, alice_secret)).get_json()["access_token"]
    s_bob = s.token(sts_cc, basic(bob_id, bob_secret)).get_json()["access_token"]
    role = s.token({**xchg, "subject_token": s_alice})
    assert role.status_code == 200, role.get_json()
    t_role = role.get_json()["access_token"]
    assert s.token({**xchg, "subject_token": t_alice}).status_code == 400  # a cluster token
    assert s.token({**xchg, "subject_token": CANARY_TOKEN}).status_code == 400
    assert s.token({**xchg, "subject_token": forged}).status_code == 400
    wrong_client = {**xchg, "subject_token": s_alice, **form_auth(alice_id, CANARY_SECRET)}
    assert s.token(wrong_client).status_code == 401
    assert s.token({**xchg, "subject_token": s_bob}).status_code == 400  # Admin trusts alice

    # -- introspection, revocation
    bob = basic(bob_id, bob_secret)
    for token in (t_alice, CANARY_TOKEN, forged):
        s.post("/oauth2/introspect", data={"token": token}, headers=bob)
    s.post("/oauth2/introspect", data={"token": t_alice}, headers=basic(bob_id, CANARY_SECRET))
    t_revoked = s.token(cc, basic(alice_id, alice_secret)).get_json()["access_token"]
    assert s.post("/oauth2/revoke", data={"token": t_revoked}).status_code == 200
    assert s.post("/oauth2/revoke", data={"token": CANARY_TOKEN}).status_code == 200
    s.post("/oauth2/revoke", data={"token": t_bob}, headers=basic(bob_id, CANARY_SECRET))

    # -- the webhook
    for token in (t_alice, t_alice, t_role):
        assert s.review(token).get_json()["status"]["authenticated"] is True
    for token in (CANARY_TOKEN, forged, t_revoked):
        assert s.review(token).get_json()["status"]["authenticated"] is False
    s.post("/authenticate", data="{" + CANARY_TOKEN, environ_base=PROD)
    s.review([CANARY_TOKEN])
    assert s.review(CANARY_TOKEN + "x" * 70_000).status_code == 413
    assert s.review(t_alice, cert=None).status_code == 401

    # -- /verify
    s.get("/verify", headers={"Authorization": f"Bearer {t_alice}"})
    s.get("/verify", headers={"Authorization": f"Bearer {CANARY_TOKEN}"})
    s.post("/verify", json={"token": forged})
    assert s.get(f"/verify?token={CANARY_TOKEN}").status_code == 400
    assert s.get("/verify", headers={"Authorization": f"Basic {raw}"}).status_code == 400
    assert s.post("/verify", json={"token": CANARY_TOKEN, "pad": "x" * 70_000}).status_code == 413
    assert s.get("/metrics").status_code == 200

    # -- failed client authentication until refused outright (429)
    for _ in range(100):
        if s.token(cc, basic(bob_id, CANARY_SECRET)).status_code == 429:
            break
    else:
        pytest.fail("never 429")

    # -- nothing anywhere
    captured = capfd.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "audit": audit_file.read_text()}
    for i, record in enumerate(caplog.records):
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        texts[f"{record.name}#{i}"] = text
    needles = {CANARY_SECRET, CANARY_TOKEN, alice_secret, bob_secret}
    for token in (t_alice, t_bob, s_alice, s_bob, t_role, t_revoked, forged):
        needles.update(token[i : i + 16] for i in range(len(token) - 15))
    leaks = {where: [n[:8] for n in needles if n in text] for where, text in texts.items()}
    assert not {where: found for where, found in leaks.items() if found}
    assert len(caplog.records) > 50

    # -- one audit line per audited request, with the principal when known
    lines = [json.loads(text) for text in audit_file.read_text().splitlines()]
    counted: dict[str, int] = {}
    for line in lines:
        counted[line["event"]] = counted.get(line["event"], 0) + 1
    assert counted == s.events
    assert not [line for line in lines if "redacted" in line]  # nothing for the guard to do
    issued = [line for line in lines if line["event"] == "token_issued"]
    wrong = [line for line in issued if line["reason"] == "invalid_client"]
    assert {line["access_key_id"] for line in wrong} == {alice_id, bob_id, None}
    assert issued[0]["outcome"] == "allowed" and issued[0]["arn"] == world.alice.arn
    assert any(
        line["grant"] == "token_exchange"
        and line["outcome"] == "allowed"
        and line["source_arn"] == world.alice.arn
        and line["session"] == "canary-run"
        for line in issued
    )


def test_no_secret_of_the_admin_api_reaches_any_log(
    world_and_client: tuple[World, Session, Path],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The admin API: CreateAccessKey's secret is in its answer only; canaries nowhere."""
    world, s, audit_file = world_and_client
    caplog.set_level(logging.DEBUG)
    bob_id, bob_secret = world.bob_key.key.access_key_id, world.bob_key.secret_access_key
    shaped = new_secret()
    store = s.client.application.extensions["authbridge"].store
    store.attach_policy(ACCOUNT, "user", "bob", "arn:aws:iam::aws:policy/AdministratorAccess")
    cc = {"grant_type": "client_credentials", "audience": "https://authbridge.test/admin"}
    admin_token = s.token(cc, basic(bob_id, bob_secret)).get_json()["access_token"]
    as_bob = {"Authorization": f"Bearer {admin_token}"}

    def api(body: Any, headers: dict[str, str], **kwargs: Any) -> TestResponse:
        return s.client.post("/api/iam", json=body, headers=headers, **kwargs)

    created = api({"Action": "CreateAccessKey", "UserName": "alice"}, as_bob)
    assert created.status_code == 200, created.get_json()
    new_secret_value = created.get_json()["AccessKey"]["SecretAccessKey"]
    with_key = api({"Action": "CreateAccessKey", "UserName": "bob"}, basic(bob_id, bob_secret))
    assert with_key.status_code == 200
    key_secret = with_key.get_json()["AccessKey"]["SecretAccessKey"]
    refused = [
        api({"Action": "ListUsers"}, basic(bob_id, CANARY_SECRET)),
        api({"Action": "ListUsers"}, basic(CANARY_SECRET, bob_secret)),
        api({"Action": "ListUsers"}, {"Authorization": f"Bearer {CANARY_TOKEN}"}),
        api({"Action": "ListUsers"}, {"Authorization": f"Basic {CANARY_SECRET}"}),
        api({"Action": CANARY_SECRET}, as_bob),
        api({"Action": "ListUsers", CANARY_SECRET: 1}, as_bob),
        api({"Action": "GetUser", "UserName": CANARY_SECRET}, as_bob),
        api({"Action": "GetUser", "UserName": new_secret_value}, as_bob),
        # A value the store quotes (an ARN's piece) is redacted when it is secret-shaped.
        api({"Action": "CreateRole", "RoleName": "R", "Trust": [shaped]}, as_bob),
        api(
            {"Action": "CreateRole", "RoleName": "R", "Trust": [f"arn:aws:iam::1:{shaped}"]}, as_bob
        ),
        api({"Action": "ListUsers", "PathPrefix": CANARY_SECRET + "x" * 70_000}, as_bob),
        s.client.post(
            "/api/iam",
            data=b'{"Action": "ListUsers", "' + CANARY_SECRET.encode() + b'": 1, "x": 1, "x": 2}',
            content_type="application/json",
            headers=as_bob,
        ),
    ]
    assert all(r.status_code >= 400 for r in refused)
    for r in refused:
        text = r.get_data(as_text=True)
        assert not {CANARY_SECRET, CANARY_TOKEN, bob_secret, shaped} & {text, *text.split('"')}
        assert CANARY_SECRET not in text and shaped not in text

    captured = capfd.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "audit": audit_file.read_text()}
    for i, record in enumerate(caplog.records):
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        texts[f"{record.name}#{i}"] = text
    needles = {CANARY_SECRET, CANARY_TOKEN, bob_secret, new_secret_value, key_secret, shaped}
    needles.update(admin_token[i : i + 16] for i in range(len(admin_token) - 15))
    leaks = {where: [n[:8] for n in needles if n in text] for where, text in texts.items()}
    assert not {where: found for where, found in leaks.items() if found}
    calls = [
        json.loads(line)
        for line in audit_file.read_text().splitlines()
        if json.loads(line)["event"] == "admin_call"
    ]
    assert len(calls) == 2 + len(refused)
    assert [c["outcome"] for c in calls[:2]] == ["allowed", "allowed"]
    assert calls[0]["action"] == "iam:CreateAccessKey" and calls[0]["targets"] == [world.alice.arn]


# --------------------------------------------------------------------------- a real server

LIVE_MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: alice
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forged_header(token: str, **header: str) -> str:
    """``token`` with another JOSE header (and so a signature that cannot verify)."""
    _head, payload, signature = token.split(".")
    return f"{b64url(json.dumps(header).encode())}.{payload}.{signature}"


class Live:
    """Requests to the real server, every response body kept for the final check."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.bodies: list[str] = []
        tls = live.root / "keys" / "tls"
        self.with_cert = live.ssl_context()
        self.with_cert.load_cert_chain(
            str(tls / "apiserver-prod-cp.crt"), str(tls / "apiserver-prod-cp.key")
        )

    def call(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        cert: bool = False,
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.live.url + path, data=data, headers=headers or {})  # noqa: S310
        context = self.with_cert if cert else self.live.ssl_context()
        try:
            with urllib.request.urlopen(req, context=context, timeout=10) as resp:  # noqa: S310
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8")
        self.bodies.append(text)
        return status, json.loads(text) if text.strip() else None

    def form(self, path: str, fields: dict[str, str] | str, **headers: str) -> tuple[int, Any]:
        body = fields if isinstance(fields, str) else urllib.parse.urlencode(fields)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.call(path, body.encode(), headers)

    def review(self, token: str) -> tuple[int, Any]:
        doc = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
        body = json.dumps({**doc, "spec": {"token": token}}).encode()
        return self.call("/authenticate", body, {"Content-Type": "application/json"}, cert=True)

    def raw(self, request: bytes) -> str:
        """Bytes straight to the server (what urllib would refuse to send); the answer."""
        host, _, port = self.live.url.removeprefix("https://").partition(":")
        with socket.create_connection((host, int(port)), timeout=10) as plain:
            context = self.live.ssl_context()
            with context.wrap_socket(plain, server_hostname=host) as conn:
                conn.sendall(request)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
        text = answer.decode("latin-1")
        self.bodies.append(text)
        return text


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(
        tmp_path_factory.mktemp("canary"),
        mapping=LIVE_MAPPING,
        init_args="--apiserver-client prod-cp=prod",
    )
    try:
        yield next(served)
    finally:
        served.close()


def test_no_secret_shaped_value_reaches_any_sink_of_a_real_server(
    live_server: LiveServer,
) -> None:
    live = Live(live_server)
    key_id, secret = live_server.access_key_id, live_server.secret
    canary = new_secret()  # shaped exactly like an access-key secret
    auth = {"Authorization": basic(key_id, secret)["Authorization"]}
    cc = {"grant_type": "client_credentials", "audience": "prod"}

    status, body = live.form("/oauth2/token", cc, **auth)
    assert status == 200, body
    t_alice = body["access_token"]
    status, body = live.form("/oauth2/token", {**cc, "audience": live_server.url + "/sts"}, **auth)
    assert status == 200, body
    s_alice = body["access_token"]  # what AssumeRole takes: a token for the sts audience
    forged_kid = forged_header(t_alice, alg="ES256", kid=canary, typ="JWT")
    forged_alg = forged_header(t_alice, alg=canary, kid="k", typ="JWT")
    xchg = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token_type": JWT_TYPE,
        "subject_token": s_alice,
        "audience": "prod",
        "role_arn": live_server.role_arn,
        "role_session_name": "canary-run",
    }

    # -- the token endpoint: a canary in every field a message might quote
    refusals: list[tuple[dict[str, str] | str, dict[str, str], int, str]] = [
        ({**xchg, "role_arn": canary}, {}, 400, "role_arn"),  # the case
        ({**xchg, "role_arn": secret}, {}, 400, "role_arn"),  # the real secret, pasted
        ({**xchg, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/{canary}"}, {}, 400, "role"),
        ({**xchg, "role_session_name": canary + "!"}, {}, 400, "role_session_name"),
        ({**xchg, "audience": canary}, {}, 400, ""),
        ({**xchg, "duration_seconds": canary}, {}, 400, "duration_seconds"),
        ({**xchg, "subject_token": forged_alg}, {}, 400, "subject_token"),
        ({**xchg, "subject_token": forged_kid}, {}, 400, "subject_token"),
        ({**xchg, "subject_token": canary}, {}, 400, "subject_token"),
        ({**xchg, "client_id": key_id, "client_secret": canary}, {}, 401, ""),
        ({**cc, "client_id": canary, "client_secret": secret}, {}, 401, ""),
        ({**cc, "client_id": secret, "client_secret": key_id}, {}, 401, ""),  # swapped
        ({**cc, "audience": canary}, auth, 400, ""),
        ({**cc, "grant_type": canary}, auth, 400, "grant_type"),
        (f"grant_type=client_credentials&{canary}=1&{canary}=2", auth, 400, "repeated"),
    ]
    for fields, headers, expected, named in refusals:
        status, body = live.form("/oauth2/token", fields, **headers)
        assert status == expected, (fields, body)
        assert named in body.get("error_description", ""), body
    # A valid but secret-shaped session name: issued, and named in the "issued" log line.
    status, body = live.form("/oauth2/token", {**xchg, "role_session_name": canary})
    assert status == 200, body
    t_canary_session = body["access_token"]

    # -- introspection, revocation
    for token in (canary, forged_kid):
        assert live.form("/oauth2/introspect", {"token": token}, **auth) == (200, {"active": False})
        assert live.form("/oauth2/revoke", {"token": token})[0] == 200
    assert live.form("/oauth2/introspect", {"token": t_alice}, **basic(canary, secret))[0] == 401

    # -- /verify
    status, body = live.call("/verify", headers={"Authorization": f"Bearer {forged_kid}"})
    assert status == 200 and body["reasonCode"] == "unknown_kid", body
    assert "[redacted]" in body["reason"] and body["token"]["kid"] == "[redacted]"
    status, body = live.call(
        "/verify?clusterID=" + canary, headers={"Authorization": f"Bearer {t_alice}"}
    )
    assert status == 400 and "[redacted]" in body["error"], body
    status, body = live.call("/verify", headers={"Authorization": f"Bearer {t_canary_session}"})
    assert status == 200 and body["authenticated"] is True, body
    assert body["identity"]["sessionName"] == "[redacted]"

    # -- /authenticate
    for token in (canary, forged_kid, forged_alg, secret):
        status, body = live.review(token)
        assert status == 200 and body["status"]["authenticated"] is False, body
    bodies_so_far = len(live.bodies)
    status, verdict = live.review(t_canary_session)  # the one answer that must name it
    assert verdict["status"]["user"]["username"] == f"admin:{canary}"
    del live.bodies[bodies_so_far:]

    # -- what gunicorn's parser refuses: it quotes the line in its log and its page
    page = live.raw(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{canary}\r\n\r\n".encode())
    assert page.startswith("HTTP/1.1 400") and "[redacted]" in page

    # -- nothing anywhere
    time.sleep(0.5)  # the workers' last lines reach the log
    output = live_server.log.read_text()
    needles = {canary, secret}
    for token in (t_alice, s_alice, t_canary_session, forged_kid, forged_alg):
        needles.update(token[i : i + 16] for i in range(len(token) - 15))
    assert not [n[:8] for n in needles if n in output]
    for text in live.bodies:
        assert canary not in text and secret not in text, text

    # -- each sink did meet a canary and redacted it
    lines = output.splitlines()
    app_log = [x for x in lines if x[:2] == "20" and " authbridge." in x]
    gunicorn_log = [x for x in lines if x.startswith("[")]
    audit_lines = [json.loads(x) for x in lines if x.startswith('{"time"')]
    assert any("role_arn" in x and "[redacted]" in x for x in app_log), app_log
    assert any("issued token-exchange" in x and "/[redacted]" in x for x in app_log), app_log
    assert any("Invalid request" in x and "[redacted]" in x for x in gunicorn_log), gunicorn_log
    assert any("redacted" in x for x in audit_lines)


def test_gunicorns_error_log_goes_through_the_redacting_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # serve gives gunicorn RedactingLogger: whatever gunicorn itself logs (it quotes
    # refused request lines and headers, and tracebacks) is redacted on its handlers.
    from authbridge.web.server import AuthbridgeServer, RedactingLogger

    server = AuthbridgeServer(make_settings(tmp_path), tls=False)
    assert server.cfg.logger_class is RedactingLogger
    secret = new_secret()
    logger = RedactingLogger(server.cfg)
    logger.warning("Invalid request from ip=127.0.0.1: Invalid HTTP Header: %r", secret)
    try:
        raise RuntimeError(f"while handling {secret}")
    except RuntimeError:
        logger.exception("Error handling request")
    logger.setup(server.cfg)  # a reload (SIGHUP) makes new handlers: redacted too
    logger.info("after a reload: %s", secret)
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("[redacted]") == 3 and "RuntimeError: while handling [redacted]" in err
