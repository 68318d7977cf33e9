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
  the URL, a Basic header, 413; and ``/metrics``.

Then no captured text (log records with their tracebacks, the audit file,
stdout, stderr) holds a secret, a canary, or any 16 characters in a row of a
token; the audit file has exactly one JSON line per request to an audited
endpoint, with the access key id a client named only when it is one.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge.iam.credentials import Pepper
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.store import SqlStore, open_store
from authbridge.web import create_app
from tests.conftest import ACCOUNT
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
