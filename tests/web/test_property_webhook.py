"""TokenReview bodies: whatever is posted to /authenticate, a 200 verdict, a 400 or a 413.

Hypothesis properties, through Flask's test client (the WSGI fast path,
:class:`~authbridge.web.webhook.FastPath`, which create_app installs), the
Flask view behind it, and :func:`~authbridge.web.webhook.answer_review`
called directly with a WSGI environ:

- any bytes, and any JSON value (lone surrogates, NUL, huge numbers, deep
  nesting, long and secret-shaped strings);
- mutations of a valid TokenReview of alice: a field (``apiVersion``,
  ``kind``, ``spec``, ``spec.token``, ``spec.audiences``, ``metadata``,
  ``status``, an unknown one) replaced by any JSON value or removed, the
  token cut, extended or replaced, the body over 64 KiB.

Each answer is exactly the status the documented rules give (413 over the
cap; 400 unless the body is a TokenReview: an object of a known
``apiVersion``, ``kind: TokenReview``, ``spec.token`` a string, well-formed
``spec.audiences``; else 200, whatever the token: empty, 20 KiB, garbage),
with a JSON body: a 200 is a TokenReview whose ``status.authenticated`` is
a bool (and only the unchanged token of alice authenticates); a 400 and a
413 carry ``error``. Both entry points answer alike. Nothing secret-shaped that
was sent comes back.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client, EnvironBuilder

from authbridge import audit
from authbridge.web.review import API_VERSIONS, MAX_AUDIENCE_LENGTH, MAX_AUDIENCES
from authbridge.web.webhook import FastPath, Webhook, answer_review
from tests.web.hostile import (
    JSON_VALUES,
    PROD_CERT,
    SECRET_SHAPED,
    STRINGS,
    Env,
    build_env,
    deep,
    dumps,
)

FIELDS = ("apiVersion", "kind", "spec", "metadata", "status", "unknown")
SPEC_FIELDS = ("token", "audiences", "unknown")
OVER_THE_CAP = 64 * 1024 + 1


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    built = build_env(tmp_path_factory.mktemp("webhook"))
    try:
        yield built
    finally:
        built.store.close()


def valid(env: Env, version: str = API_VERSIONS[0]) -> dict[str, Any]:
    return {
        "apiVersion": version,
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": None},
        "spec": {"token": env.token, "audiences": ["https://kubernetes.default.svc"]},
        "status": {"user": {}},
    }


@st.composite
def mutated(draw: st.DrawFn, env: Env) -> bytes:
    """A valid TokenReview of alice, changed in one to three places."""
    doc = valid(env, draw(st.sampled_from(API_VERSIONS)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(("top", "spec", "token")))
        if where == "top":
            name = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()):
                doc.pop(name, None)
            else:
                doc[name] = draw(JSON_VALUES)
        elif where == "spec" and isinstance(doc.get("spec"), dict):
            name = draw(st.sampled_from(SPEC_FIELDS))
            if draw(st.booleans()):
                doc["spec"].pop(name, None)
            else:
                doc["spec"][name] = draw(
                    st.one_of(JSON_VALUES, st.lists(STRINGS, max_size=70), st.just(deep(500)))
                )
        elif where == "token" and isinstance(doc.get("spec"), dict):
            doc["spec"]["token"] = draw(
                st.one_of(
                    st.integers(0, len(env.token)).map(lambda n: env.token[:n]),
                    STRINGS.map(lambda s: env.token + s),
                    SECRET_SHAPED,
                    st.just("x" * (20 * 1024)),
                    st.just(""),
                )
            )
    return dumps(doc)


BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(dumps),
    st.just(b"x" * OVER_THE_CAP),
    st.just(b"[" * 100_000),
)


def expected_status(sent: bytes) -> int:
    """What the documented rules (authbridge.web.review) say the answer's status is."""
    if len(sent) > OVER_THE_CAP - 1:
        return 413
    try:
        doc = json.loads(sent)
    except (ValueError, RecursionError):
        return 400
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("apiVersion") not in API_VERSIONS
        or doc.get("kind") != "TokenReview"
        or not isinstance(spec, dict)
        or not isinstance(spec.get("token"), str)
    ):
        return 400
    audiences = spec.get("audiences")
    audiences = [] if audiences is None else audiences
    if (
        not isinstance(audiences, list)
        or len(audiences) > MAX_AUDIENCES
        or not all(isinstance(a, str) and len(a) <= MAX_AUDIENCE_LENGTH for a in audiences)
    ):
        return 400
    return 200  # a TokenReview that parses: a verdict, whatever its token


def check(env: Env, sent: bytes, status: int, body: Any) -> None:
    assert status == expected_status(sent), (status, body)
    assert isinstance(body, dict)
    if status == 200:
        assert body["kind"] == "TokenReview" and body["apiVersion"] in API_VERSIONS
        assert isinstance(body["status"]["authenticated"], bool)
        if body["status"]["authenticated"]:
            assert dumps(env.token) in sent  # only alice's real token authenticates
    else:
        assert isinstance(body["error"], str) and body["error"]
        assert not audit.looks_secret(body["error"])


def both_entry_points(env: Env, data: bytes) -> None:
    fast_path = env.app.wsgi_app
    assert isinstance(fast_path, FastPath)
    answers = []
    for client in (env.client, Client(fast_path.next)):
        response = client.post(
            "/authenticate", data=data, content_type="application/json", environ_base=PROD_CERT
        )
        assert response.mimetype == "application/json"
        body = response.get_json()
        check(env, data, response.status_code, body)
        answers.append((response.status_code, body))
    assert answers[0] == answers[1]


@settings(max_examples=100)
@given(data=BODIES)
def test_any_body_is_a_verdict_a_400_or_a_413(env: Env, data: bytes) -> None:
    both_entry_points(env, data)


@settings(max_examples=150)
@given(data=st.data())
def test_any_mutation_of_a_valid_review_is_a_verdict_a_400_or_a_413(
    env: Env, data: st.DataObject
) -> None:
    both_entry_points(env, data.draw(mutated(env)))


@settings(max_examples=100)
@given(data=st.data())
def test_answer_review_itself_answers_any_body_with_json(env: Env, data: st.DataObject) -> None:
    sent = data.draw(st.one_of(BODIES, mutated(env)))
    environ = EnvironBuilder(
        path="/authenticate",
        method="POST",
        input_stream=io.BytesIO(sent),
        content_length=len(sent),
        content_type="application/json",
        environ_base=PROD_CERT,
    ).get_environ()
    status, text, headers = answer_review(Webhook.of(env.app), environ)
    check(env, sent, status, json.loads(text))
    assert text.isascii() and headers == []
