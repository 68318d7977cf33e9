"""End to end: tokens signed with the server's real key whose claims no authbridge token holds.

A real ``authbridge serve`` (gunicorn, TLS, two workers, a client CA). The
test reads the signing key from the server's ``keys/`` (as only someone who
stole it, or a bug, could), takes a real token of alice and re-signs its
claims with one changed: ``sub`` or ``arn`` a lone surrogate (``"\\ud800"``,
which JSON can carry but UTF-8 cannot), a NUL in the session name, a nested
object as ``sub``, ``exp`` of 10**400. Before claim validation, the
surrogate gave ``/verify`` a JSON 500 and ``/authenticate`` gunicorn's HTML
500. Now each is refused with a reason: ``/verify`` 200 with
``reasonCode: invalid_claims`` and the claim named; ``/authenticate`` a 200
TokenReview denial; and the server log holds no traceback.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from authbridge.keys import KeyDirectory
from tests.serving import LiveServer, start_server
from tests.web.hostile import sign

MAPPING = "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/alice\n    username: alice\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(
        tmp_path_factory.mktemp("claims"),
        mapping=MAPPING,
        init_args="--apiserver-client prod-cp=prod",
    )
    try:
        yield next(served)
    finally:
        served.close()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def resigned(live: LiveServer, **changes: Any) -> str:
    """A real token of alice, its claims changed, signed again with the server's own key."""
    key = KeyDirectory(live.root / "keys").load().signing_key(time.time())
    return sign(key, {**claims_of(live.mint("prod")), **changes})


def post(live: LiveServer, path: str, body: Any, *, cert: bool = False) -> tuple[int, str, bytes]:
    context = live.ssl_context()
    if cert:
        tls = live.root / "keys" / "tls"
        context.load_cert_chain(
            str(tls / "apiserver-prod-cp.crt"), str(tls / "apiserver-prod-cp.key")
        )
    req = urllib.request.Request(  # noqa: S310 - the test server's https URL
        live.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_the_resigned_baseline_authenticates(live: LiveServer) -> None:
    token = resigned(live)
    status, _, body = post(live, "/verify", {"token": token})
    assert status == 200 and json.loads(body)["authenticated"] is True, body


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "\ud800"),
        ("arn", "\ud800"),
        ("arn", "arn:aws:iam::111122223333:user/\udfffalice"),
        ("principal_id", "\ud800"),
        ("session_name", "a\x00b"),
        ("sub", {"nested": ["object"]}),
        ("exp", 10**400),
    ],
    ids=repr,
)
def test_a_signed_claim_no_token_of_ours_holds_is_refused_with_a_reason_not_a_500(
    live: LiveServer, claim: str, value: Any
) -> None:
    token = resigned(live, **{claim: value})

    status, kind, body = post(live, "/verify", {"token": token})
    assert (status, kind) == (200, "application/json"), body
    answer = json.loads(body)
    assert answer["authenticated"] is False and answer["reasonCode"] == "invalid_claims"
    assert f"claim '{claim}'" in answer["reason"]

    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    status, kind, body = post(
        live, "/authenticate", {**review, "spec": {"token": token}}, cert=True
    )
    assert (status, kind) == (200, "application/json"), body
    assert json.loads(body)["status"] == {"authenticated": False, "error": "token refused"}

    log = live.log.read_text()
    assert "Traceback" not in log and "UnicodeEncodeError" not in log
