"""The web identity token parser (authbridge.web_identity): malformed and hostile input.

Every input is either parsed or refused with :class:`WebIdentityRefused` and a
reason code, never another exception (the token endpoint would answer 500).
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge import web_identity
from authbridge.tokens import MAX_TOKEN_SIZE
from authbridge.web_identity import WebIdentityRefused, peek_issuer


def b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_reason(token: str) -> str:
    with pytest.raises(WebIdentityRefused) as refused:
        web_identity._parse(token)  # noqa: SLF001 - the parser under test
    assert token not in refused.value.message or len(token) < 8
    return refused.value.reason


GOOD_HEADER = {"alg": "RS256", "kid": "k1"}
DUPLICATE = b'{"sub": "a", "sub": "b"}'
GOOD_CLAIMS = {"iss": "https://issuer.example", "sub": "s", "aud": "a", "exp": 2, "iat": 1}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        ("a.b", "malformed"),
        ("a.b.c.d", "malformed"),
        (".b.c", "malformed"),
        ("!!!.b.c", "malformed"),
        (f"{b64([1])}.{b64(GOOD_CLAIMS)}.sig", "malformed"),
        (f"{b64(GOOD_HEADER)}.{b64(b'not json')}.sig", "malformed"),
        (f"{b64(GOOD_HEADER)}.{b64('a string')}.sig", "malformed"),
        (f"{b64({**GOOD_HEADER, 'crit': ['exp']})}.{b64(GOOD_CLAIMS)}.sig", "malformed"),
        (f"{b64({**GOOD_HEADER, 'typ': 'JWE'})}.{b64(GOOD_CLAIMS)}.sig", "malformed"),
        (f"{b64({'alg': 'none'})}.{b64(GOOD_CLAIMS)}.", "algorithm"),
        (f"{b64({'alg': 'HS256'})}.{b64(GOOD_CLAIMS)}.sig", "algorithm"),
        (f"{b64({'alg': ['RS256']})}.{b64(GOOD_CLAIMS)}.sig", "algorithm"),
        (f"{b64(GOOD_HEADER)}.{b64(DUPLICATE)}.sig", "malformed"),
        ("x" * (MAX_TOKEN_SIZE + 1), "malformed"),
        (f"{b64(GOOD_HEADER)}.{b64(b'[' * 100000)}.sig"[: MAX_TOKEN_SIZE - 1], "malformed"),
    ],
)
def test_malformed_and_hostile_tokens_are_refused(token: str, reason: str) -> None:
    assert parse_reason(token) == reason


def test_deeply_nested_payload_is_refused_not_crashed() -> None:
    nested = b"[" * 5000 + b"]" * 5000
    assert parse_reason(f"{b64(GOOD_HEADER)}.{b64(nested)}.sig") == "malformed"


def test_a_good_token_parses_and_its_issuer_is_peeked() -> None:
    token = f"{b64(GOOD_HEADER)}.{b64(GOOD_CLAIMS)}.sig"
    parsed = web_identity._parse(token)  # noqa: SLF001
    assert parsed.claims == GOOD_CLAIMS
    assert peek_issuer(token) == "https://issuer.example"
    assert peek_issuer("not a jwt") is None
    assert peek_issuer(f"{b64(GOOD_HEADER)}.{b64({'iss': 5})}.s") is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=400),
        st.builds(
            lambda h, c, s: f"{b64(h)}.{b64(c)}.{s}",
            st.dictionaries(st.text(max_size=8), st.none() | st.text(max_size=8), max_size=4),
            st.dictionaries(
                st.text(max_size=8),
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                max_size=6,
            ),
            st.text(alphabet="abcXYZ-_019", max_size=20),
        ),
    )
)
def test_any_input_parses_or_is_refused_with_a_reason(token: str) -> None:
    try:
        web_identity._parse(token)  # noqa: SLF001
    except WebIdentityRefused as refused:
        assert refused.reason in {"malformed", "algorithm"}
    iss = peek_issuer(token)
    assert iss is None or isinstance(iss, str)
