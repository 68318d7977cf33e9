"""The upstream sign-in's request and callback parsing (authbridge.signin.upstream).

Covers: a new attempt's state, nonce and PKCE verifier (32 random bytes
each, base64url; the verifier 43 characters; its S256 challenge as RFC 7636
Appendix B computes it) never in a repr; the authorization URL keeps the
endpoint's own query, adds every parameter once (ours win over a namesake),
drops a fragment; the callback: code and state, or the IdP's error (with its
description), each at most once, bounded, of RFC 6749 Appendix A's
characters; missing, repeated, oversized and hostile values refused naming
the parameter and never echoing it; the state compared in constant time
(another browser's state does not match). Hypothesis: any query gives a
Callback or a CallbackInvalid.
"""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.signin.upstream import (
    Attempt,
    Callback,
    CallbackInvalid,
    authorization_url,
    challenge_for,
    new_attempt,
    parse_callback,
    state_matches,
)

ARN = "arn:aws:iam::111122223333:oidc-provider/idp.example.com"


def test_rfc_7636_appendix_b_challenge() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_new_attempt_is_random_and_never_in_a_repr() -> None:
    one, two = new_attempt(ARN, now=100), new_attempt(ARN, now=100)
    assert len({one.state, two.state, one.nonce, two.nonce}) == 4
    assert len(one.state) == len(one.nonce) == len(one.code_verifier) == 43
    for secret in (one.state, one.nonce, one.code_verifier):
        assert secret not in repr(one)


def test_authorization_url_keeps_the_endpoints_query_and_adds_ours_once() -> None:
    attempt = new_attempt(ARN, now=0)
    url = authorization_url(
        "https://idp.example.com/oauth2/v1/authorize?tenant=acme&state=theirs#frag",
        attempt,
        client_id="authbridge-signin",
        redirect_uri="https://auth.example/login/upstream/callback",
        scopes=("openid", "groups"),
    )
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        "https",
        "idp.example.com",
        "/oauth2/v1/authorize",
        "",
    )
    query = urllib.parse.parse_qs(parts.query)
    assert query == {
        "tenant": ["acme"],
        "response_type": ["code"],
        "client_id": ["authbridge-signin"],
        "redirect_uri": ["https://auth.example/login/upstream/callback"],
        "scope": ["openid groups"],
        "state": [attempt.state],
        "nonce": [attempt.nonce],
        "code_challenge": [attempt.code_challenge],
        "code_challenge_method": ["S256"],
    }
    assert attempt.code_verifier not in url


def test_callback_with_code_and_state() -> None:
    got = parse_callback({"code": ["abc"], "state": ["s1"], "iss": ["https://idp"]})
    assert got == Callback(state="s1", code="abc")
    assert "abc" not in repr(got)


def test_callback_with_the_idps_error() -> None:
    got = parse_callback(
        {"error": ["access_denied"], "error_description": ["User said no"], "state": ["s"]}
    )
    assert (got.error, got.error_description, got.code) == ("access_denied", "User said no", None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": ["s"]}, "code"),
        ({"code": ["c"]}, "state"),
        ({"code": ["c", "d"], "state": ["s"]}, "code"),
        ({"code": ["c"], "state": ["s", "t"]}, "state"),
        ({"code": ["x" * 2049], "state": ["s"]}, "code"),
        ({"code": ["c"], "state": ["s" * 129]}, "state"),
        ({"code": ["c\n"], "state": ["s"]}, "code"),
        ({"code": ["c"], "state": ["<script>\u00e9"]}, "state"),
        ({"code": [""], "state": ["s"]}, "code"),
        ({"error": ['bad"quote']}, "error"),
        ({"error": ["x" * 65]}, "error"),
        ({"error": ["access_denied"], "error_description": ["\x00"]}, "error_description"),
    ],
)
def test_malformed_hostile_or_oversized_callbacks_are_refused(
    query: dict[str, list[str]], field: str
) -> None:
    with pytest.raises(CallbackInvalid) as caught:
        parse_callback(query)
    assert caught.value.field == field
    for values in query.values():
        for value in values:
            if len(value) > 3:
                assert value not in str(caught.value)


def test_state_from_another_browser_login_csrf_is_refused() -> None:
    mine = new_attempt(ARN, now=0)
    theirs = new_attempt(ARN, now=0)
    assert state_matches(mine, mine.state)
    assert not state_matches(mine, theirs.state)
    assert not state_matches(mine, None)
    assert not state_matches(mine, mine.state + "x")


_VALUES = st.lists(st.text(max_size=150), min_size=0, max_size=3)


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["code", "state", "error", "error_description", "other"]), _VALUES
    )
)
def test_property_callback_parses_or_callback_invalid(query: dict[str, list[str]]) -> None:
    try:
        got = parse_callback(query)
    except CallbackInvalid:
        return
    assert (got.code is None) != (got.error is None)
    if got.code is not None:
        assert got.state is not None and len(got.code) <= 2048


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=60))
def test_property_state_matches_only_itself(other: str) -> None:
    attempt = Attempt(ARN, state="s" * 43, nonce="n", code_verifier="v" * 43, started_at=0)
    assert state_matches(attempt, other) == (other == "s" * 43)
