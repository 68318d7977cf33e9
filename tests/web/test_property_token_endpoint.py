"""Token-endpoint forms: any form is a 200 or a 4xx OAuth error, and nothing secret comes back.

Hypothesis properties over ``POST /oauth2/token`` (and ``/oauth2/introspect``,
``/oauth2/revoke``), through Flask's test client. A form starts as a valid
client_credentials or token-exchange request of alice and gets up to five
fields (the grant's own, the client's, unknown ones) set to a good value,
removed, repeated, or replaced by hostile bytes: any UTF-8 text, invalid
UTF-8 (a lone surrogate's encoding, ``%FF``), NUL and controls, long
values, and secret-shaped ones (a fresh access-key-shaped secret, alice's
real secret, a real token); perhaps with an HTTP Basic header (good,
hostile, malformed) or a parameter in the URL.

Each answer is a 200 (the token response; introspection's JSON; an empty
revocation) or a 4xx whose body is exactly an RFC 6749 §5.2 error with a
documented code and ``Cache-Control: no-store``; never a 5xx. No error
description holds anything secret-shaped, and no answer holds alice's
secret or a secret-shaped value that was sent (an issued token is the only
JWT an answer carries).

Named: a secret late in a long value, where a message quotes only the first
48-64 characters (a role name over 64 characters, a subject token's
``alg``) or /verify the first 200 (an unverified ``kid``), is redacted
before the value is cut: no 12 characters of it come back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from authbridge import audit
from tests.web.helpers import JWT_TYPE, TOKEN_EXCHANGE, basic
from tests.web.hostile import ANY_CHAR, SECRET_SHAPED, Env, b64url, build_env, dumps

NAMES = (
    "grant_type", "client_id", "client_secret", "audience", "role_arn", "role_session_name",
    "subject_token", "subject_token_type", "requested_token_type", "duration_seconds",
    "actor_token", "scope", "resource", "token", "token_type_hint", "unknown",
)  # fmt: skip
# RFC 6749 §5.2, RFC 8693 §2.2.2 (invalid_target), RFC 7009 §2.2.1, and authbridge's
# too_many_requests (authbridge.web.errors); HTTP-level refusals (405, 413, 431).
CODES = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_target", "unsupported_token_type",
    "too_many_requests", "method_not_allowed",
}  # fmt: skip
ENDPOINTS = ("/oauth2/token", "/oauth2/token", "/oauth2/introspect", "/oauth2/revoke")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # Limits high enough that the good credentials keep working through every example.
    built = build_env(
        tmp_path_factory.mktemp("forms"),
        failed_auth_per_key_per_minute=10_000,
        failed_auth_per_address_per_minute=100_000,
    )
    try:
        yield built
    finally:
        built.store.close()


def good_values(env: Env) -> dict[str, list[str]]:
    key = env.world.alice_key
    return {
        "grant_type": ["client_credentials", TOKEN_EXCHANGE],
        "client_id": [key.key.access_key_id],
        "client_secret": [key.secret_access_key],
        "audience": ["prod", "staging"],
        "role_arn": [env.world.admin.arn, env.world.dev.arn],
        "role_session_name": ["a-session"],
        "subject_token": [env.sts_token],
        "subject_token_type": [JWT_TYPE],
        "duration_seconds": ["900", "3600"],
        "token": [env.spare_token],
    }


HOSTILE = st.one_of(
    st.text(ANY_CHAR, max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),
    SECRET_SHAPED.map(str.encode),
    st.sampled_from([b"", b"\x00", b"\xed\xa0\x80", b"\xff", b"arn:aws:iam::", b"=&%"]),
    st.integers(500, 3000).map(lambda n: b"x" * n),
)


@st.composite
def forms(draw: st.DrawFn, env: Env) -> tuple[str, bytes, dict[str, str], list[bytes]]:
    """(path, body, headers, the values sent) for one request."""
    good = good_values(env)
    path = draw(st.sampled_from(ENDPOINTS))
    exchange = draw(st.booleans())
    fields: dict[str, list[bytes]] = {
        "grant_type": [(TOKEN_EXCHANGE if exchange else "client_credentials").encode()],
        "audience": [b"prod"],
    }
    if path != "/oauth2/token":
        fields = {"token": [env.spare_token.encode()]}  # alice's must stay unrevoked
    elif exchange:
        for name in ("subject_token", "subject_token_type", "role_arn", "role_session_name"):
            fields[name] = [good[name][0].encode()]
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.one_of(st.sampled_from(NAMES), HOSTILE))
        label = name if isinstance(name, str) else name.decode("utf-8", "replace")
        action = draw(st.sampled_from(("good", "hostile", "hostile", "remove", "repeat")))
        key = name.encode() if isinstance(name, str) else name
        if action == "good" and label in good:
            fields[label] = [draw(st.sampled_from(good[label])).encode()]
        elif action == "remove":
            fields.pop(label, None)
        elif action == "repeat":
            fields.setdefault(label, [b"x"]).append(draw(HOSTILE))
        else:
            fields[key.decode("utf-8", "surrogateescape")] = [draw(HOSTILE)]
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(("none", "none", "good", "hostile", "garbage")))
    key_pair = env.world.alice_key
    if auth == "good":
        headers = basic(key_pair.key.access_key_id, key_pair.secret_access_key)
        fields.pop("client_secret", None)
    elif auth == "hostile":
        who = draw(SECRET_SHAPED)
        headers = basic(who, draw(st.sampled_from([key_pair.secret_access_key, who])))
        fields.pop("client_secret", None)
    elif auth == "garbage":
        headers = {"Authorization": draw(st.sampled_from(["Basic", "Basic !!", "Bearer x", ""]))}
    sent: list[bytes] = []
    pairs = []
    for name, values in fields.items():
        raw_name = name.encode("utf-8", "surrogateescape")
        for value in values:
            sent += [raw_name, value]
            pairs.append(f"{quote_from_bytes(raw_name)}={quote_from_bytes(value)}")
    if draw(st.integers(0, 9)) == 0:
        path += "?client_secret=" + quote_from_bytes(draw(HOSTILE))
    return path, "&".join(pairs).encode("ascii"), headers, sent


_ERROR_CODE = re.compile(r"[a-z_]+")


def check(env: Env, path: str, response: Any, sent: list[bytes]) -> None:
    status = response.status_code
    text = response.get_data(as_text=True)
    code = (response.get_json(silent=True) or {}).get("error", "")
    event(f"{path.partition('?')[0]} {status} {code}")
    assert status < 500, (status, text)
    assert env.world.alice_key.secret_access_key not in text
    for value in sent:
        shown = value.decode("utf-8", "replace")
        if audit.looks_secret(shown) and shown not in (env.token, env.sts_token):
            assert shown not in text, (shown, text)
    if status == 200:
        if path == "/oauth2/revoke":
            assert text == ""
        else:
            body = response.get_json()
            assert isinstance(body, dict)
            assert "access_token" in body if path == "/oauth2/token" else "active" in body
        return
    assert 400 <= status < 500
    body = response.get_json()
    assert isinstance(body, dict) and set(body) <= {"error", "error_description"}, text
    assert body["error"] in CODES, body
    description = body.get("error_description", "")
    assert isinstance(description, str) and not audit.looks_secret(description), body
    assert response.headers["Cache-Control"] == "no-store"


@settings(max_examples=150)
@given(data=st.data())
def test_any_form_is_a_200_or_a_4xx_oauth_error_echoing_no_secret(
    env: Env, data: st.DataObject
) -> None:
    path, body, headers, sent = data.draw(forms(env))
    response = env.client.post(
        path, data=body, headers=headers, content_type="application/x-www-form-urlencoded"
    )
    check(env, path, response, sent)


@settings(max_examples=50)
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", ""]
))  # fmt: skip
def test_any_body_bytes_are_a_200_or_a_4xx_oauth_error(
    env: Env, body: bytes, content_type: str
) -> None:
    response = env.client.post("/oauth2/token", data=body, content_type=content_type)
    check(env, "/oauth2/token", response, [body])


def test_a_secret_cut_short_by_a_quote_limit_is_still_withheld(env: Env) -> None:
    # Messages quote at most 48-64 characters of a value. Cut first, a secret late in
    # a long value lost its last characters, no longer looked like a secret and was
    # quoted nearly whole; it is redacted before it is cut.
    secret = env.world.alice_key.secret_access_key
    head = {"alg": "k" * 20 + ":" + secret, "kid": "k", "typ": "JWT"}
    subject = ".".join([b64url(dumps(head)), *env.sts_token.split(".")[1:]])
    cases = {
        # a role name over 64 characters: quoted, cut at 64
        "role_arn": f"arn:aws:iam::{env.world.alice.account_id}:role/{'a' * 30}:{secret}",
        "subject_token": subject,
    }
    for field, value in cases.items():
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": env.sts_token,
            "subject_token_type": JWT_TYPE,
            "audience": "prod",
            "role_arn": env.world.admin.arn,
            "role_session_name": "a-session",
            field: value,
        }
        response = env.client.post("/oauth2/token", data=form)
        text = response.get_data(as_text=True)
        assert response.status_code == 400 and "[redacted]" in text, text
        assert not [secret[i : i + 12] for i in range(29) if secret[i : i + 12] in text], text
    # /verify shows at most 200 characters of what an unverified token says (its kid).
    head = {"alg": "ES256", "kid": "k" * 180 + ":" + secret, "typ": "JWT"}
    forged = ".".join([b64url(dumps(head)), *env.token.split(".")[1:]])
    text = env.client.post("/verify", json={"token": forged}).get_data(as_text=True)
    assert "[redacted]" in text, text
    assert not [secret[i : i + 12] for i in range(29) if secret[i : i + 12] in text], text
