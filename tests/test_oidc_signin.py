"""The sign-in configuration parsers and the federated session name (authbridge.iam.oidc_signin).

Covers: display names (bounds, unprintable, padded, not a string); scopes
(default, openid put first, duplicates folded, RFC 6749 §3.3 characters, too
many, too long, hostile values); client secrets (bounds, characters, never in
a message or a repr); the client id must be in the provider's ClientIDList
(the error names the command that adds it); the session name
(preferred_username, else email, else sub, reduced, 2-64 characters, the
hashed fallback). Hypothesis: every parser raises only InputError and what it
returns obeys its rules; every session name is 2-64 characters of
``[\\w+=,.@-]``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.errors import InputError
from authbridge.iam import oidc_signin
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.iam.oidc_signin import (
    DEFAULT_SCOPES,
    check_client_id,
    parse_client_secret,
    parse_display_name,
    parse_scopes,
    session_name,
)

PROVIDER = OidcProvider(
    arn="arn:aws:iam::111122223333:oidc-provider/idp.example.com",
    account_id="111122223333",
    url="https://idp.example.com",
    key="idp.example.com",
    client_ids=("authbridge-signin", "other"),
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")


@pytest.mark.parametrize("name", ["Example SSO", "x", "Ä" * 64, "Corp (EU)"])
def test_display_names_are_accepted(name: str) -> None:
    assert parse_display_name(name) == name


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "1 to 64"),
        ("x" * 65, "1 to 64"),
        ("a\nb", "printable"),
        ("a\x00b", "printable"),
        ("\u202eevil", "printable"),
        (" padded", "space"),
        ("padded ", "space"),
        (None, "string"),
        (["x"], "string"),
    ],
)
def test_bad_display_names_are_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_display_name(value)
    assert caught.value.field == "DisplayName"


def test_scopes_default_and_openid_is_added_first() -> None:
    assert parse_scopes(None) == DEFAULT_SCOPES == ("openid", "profile", "email")
    assert parse_scopes([]) == DEFAULT_SCOPES
    assert parse_scopes(["groups"]) == ("openid", "groups")
    assert parse_scopes(["groups", "openid", "groups"]) == ("groups", "openid")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("openid profile", "Scopes"),  # one string, not a list
        (["ok", ""], "Scopes[1]"),
        (["has space"], "Scopes[0]"),
        (['quo"te'], "Scopes[0]"),
        (["back\\slash"], "Scopes[0]"),
        (["\x7f"], "Scopes[0]"),
        (["ünicode"], "Scopes[0]"),
        (["x" * 129], "Scopes[0]"),
        ([1], "Scopes[0]"),
        ([f"s{i}" for i in range(21)], "Scopes"),
        ([f"s{i}" for i in range(20)], "Scopes"),  # openid would make 21
        ({"openid": 1}, "Scopes"),
    ],
)
def test_hostile_or_oversized_scopes_are_refused(value: object, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_scopes(value)
    assert caught.value.field == field


def test_a_client_secret_is_never_in_a_message_or_a_repr() -> None:
    secret = parse_client_secret("s3cr3t-VALUE_1234")
    assert secret.reveal() == "s3cr3t-VALUE_1234"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret)
    for bad in ("s3cr3t\n", " s3cr3t", "s3cr3t\x00x", "s3cr3t\u00e9", "x" * 1025, ""):
        with pytest.raises(InputError) as caught:
            parse_client_secret(bad)
        assert "s3cr3t" not in str(caught.value) and "s3cr3t" not in repr(caught.value)
        assert caught.value.field == "ClientSecret"


def test_the_client_id_must_be_in_the_client_id_list() -> None:
    assert check_client_id(PROVIDER, "authbridge-signin") == "authbridge-signin"
    with pytest.raises(InputError, match="add-client-id-to-open-id-connect-provider") as caught:
        check_client_id(PROVIDER, "stranger")
    assert caught.value.field == "ClientID"
    assert "not in the ClientIDList" in str(caught.value)


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"preferred_username": "alice", "email": "a@x", "sub": "1"}, "alice"),
        ({"email": "alice@example.com", "sub": "1"}, "alice@example.com"),
        ({"sub": "00u1abcd"}, "00u1abcd"),
        ({"preferred_username": "Ål ice/δ", "sub": "1"}, "lice"),
        ({"preferred_username": "é", "email": "b@c", "sub": "x"}, "b@c"),  # too short: next
        ({"preferred_username": "x" * 100, "sub": "1"}, "x" * 64),
        ({"preferred_username": 7, "email": ["a"], "sub": "s1"}, "s1"),
    ],
)
def test_session_name_takes_the_first_usable_claim(claims: dict[str, Any], name: str) -> None:
    assert session_name(claims) == name


def test_session_name_without_a_usable_claim_is_a_hash_of_sub() -> None:
    name = session_name({"sub": "ü"})
    assert re.fullmatch(r"fed-[0-9a-f]{16}", name)
    assert name == session_name({"sub": "ü", "email": "?"})
    assert name != session_name({"sub": "ö"})


def test_redirect_uri_is_under_the_issuer() -> None:
    assert (
        oidc_signin.redirect_uri("https://auth.example/")
        == "https://auth.example/login/upstream/callback"
    )


_ANY = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=200),
    st.lists(st.one_of(st.text(max_size=140), st.integers()), max_size=25),
)


@settings(max_examples=60, deadline=None)
@given(_ANY)
def test_property_scopes_parse_or_input_error(value: object) -> None:
    try:
        scopes = parse_scopes(value)
    except InputError:
        return
    assert scopes[0] == "openid" or "openid" in scopes
    assert 1 <= len(scopes) <= 20 and len(set(scopes)) == len(scopes)
    assert all(_SCOPE.fullmatch(s) for s in scopes)


@settings(max_examples=60, deadline=None)
@given(_ANY)
def test_property_display_name_parses_or_input_error(value: object) -> None:
    try:
        name = parse_display_name(value)
    except InputError:
        return
    assert 1 <= len(name) <= 64 and name.isprintable() and name == name.strip()


@settings(max_examples=60, deadline=None)
@given(st.one_of(_ANY, st.text(alphabet=st.characters(codec="ascii"), min_size=8, max_size=40)))
def test_property_client_secret_parses_or_input_error_without_echoing_it(value: object) -> None:
    try:
        secret = parse_client_secret(value)
    except InputError as e:
        if isinstance(value, str) and len(value) >= 8:
            assert value not in str(e)
        return
    assert isinstance(value, str) and value not in repr(secret)


_CLAIM = st.one_of(st.none(), st.integers(), st.text(max_size=120), st.lists(st.text(max_size=5)))


@settings(max_examples=80, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: _CLAIM for k in oidc_signin.SESSION_NAME_CLAIMS}))
def test_property_session_name_is_2_to_64_allowed_characters(claims: dict[str, Any]) -> None:
    assert _SESSION_NAME.fullmatch(session_name(claims))
