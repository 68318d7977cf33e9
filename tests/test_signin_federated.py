"""The pure parts of a federated sign-in: the role session name, and routing an exchange.

:func:`authbridge.signin.federated.session_name_for` always gives a name STS
accepts (2-64 characters of ``[\\w+=,.@-]``), stable for the same person;
:func:`authbridge.signin.federated.looks_federated` only routes (the exchange
verifies everything) and never raises on hostile input.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.signin.federated import looks_federated, session_name_for

STS_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


def test_the_session_name_is_the_user_name_then_the_email_then_the_sub() -> None:
    assert session_name_for({"preferred_username": "alice", "email": "a@x", "sub": "1"}) == "alice"
    assert session_name_for({"email": "alice@example.com", "sub": "1"}) == "alice@example.com"
    assert session_name_for({"sub": "00u-alice"}) == "00u-alice"


def test_characters_sts_refuses_are_replaced_and_long_names_cut() -> None:
    assert session_name_for({"preferred_username": "Ali Cé/../x"}) == "Ali-C--..-x"
    assert session_name_for({"preferred_username": "a" * 200}) == "a" * 64


def test_a_name_too_short_falls_back_to_a_stable_digest_of_sub() -> None:
    assert session_name_for({"preferred_username": "x", "sub": "00u-1"}) == "00u-1"
    assert session_name_for({"preferred_username": "", "email": 7, "sub": "é"}).startswith("fed-")
    assert session_name_for({"sub": "é"}) == session_name_for({"sub": "é"})
    assert session_name_for({"sub": "é"}) != session_name_for({"sub": "è"})


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["preferred_username", "email", "sub", "name"]),
        st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.text(max_size=5))),
    )
)
def test_property_any_claims_give_a_name_sts_accepts(claims: dict[str, Any]) -> None:
    assert STS_NAME.fullmatch(session_name_for(claims))


def _jwt(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{body}.c2ln"


def test_only_a_token_with_a_sid_and_a_providers_source_is_routed_as_federated() -> None:
    source = "arn:aws:iam::111122223333:oidc-provider/idp.example.com:00u-alice"
    assert looks_federated(_jwt({"sid": "s", "source_identity": source}))
    assert not looks_federated(_jwt({"source_identity": source}))  # a web identity session
    assert not looks_federated(_jwt({"sid": "s", "source_identity": "AIDAEXAMPLE"}))  # a user's
    for hostile in (
        "",
        "a.b",
        "a.b.c",
        "a.%%%.c",
        _jwt([1, 2]),
        _jwt("x"),
        "a." + "A" * 20000 + ".c",
    ):
        assert not looks_federated(hostile)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_property_routing_never_raises(text: str) -> None:
    assert looks_federated(text) in (True, False)
    assert looks_federated(f"x.{text}.y") in (True, False)
