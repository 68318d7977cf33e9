"""TOTP (authbridge.iam.totp): RFC 6238 vectors, skew, single use, enabling with two codes.

Covers: RFC 4226 Appendix D (HOTP) and RFC 6238 Appendix B (the SHA-1
column, 8 digits) vectors; 160-bit secrets as unpadded base32; the
``otpauth://`` URI; ±1 step accepted, ±2 refused; a code is not accepted
for a step at or before the last used one (replay); two consecutive codes
enable, two equal or non-consecutive ones do not; the code parser refuses
malformed, hostile and oversized input with an InputError that does not
repeat it (Hypothesis property).
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError
from authbridge.iam import totp

RFC_SECRET = b"12345678901234567890"

# RFC 6238 Appendix B, mode SHA1: (time, TOTP with 8 digits).
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
# RFC 4226 Appendix D: HOTP of counters 0..9, 6 digits.
RFC4226 = ["755224", "287082", "359152", "969429", "338314"]
RFC4226 += ["254676", "287922", "162583", "399871", "520489"]


@pytest.mark.parametrize(("now", "expected"), RFC6238_SHA1)
def test_rfc6238_appendix_b_sha1(now: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, now, digits=8) == expected
    # The six-digit code is the low six digits of the same value.
    assert totp.code_at(RFC_SECRET, now) == expected[-6:]


@pytest.mark.parametrize("counter", range(10))
def test_rfc4226_appendix_d(counter: int) -> None:
    assert totp.hotp(RFC_SECRET, counter) == RFC4226[counter]


def test_step_boundaries() -> None:
    assert totp.step_at(0) == 0 and totp.step_at(29.99) == 0 and totp.step_at(30) == 1
    assert totp.step_at(59) == 1


def test_secrets_are_160_bits_in_unpadded_base32() -> None:
    secret = totp.new_secret()
    assert len(secret) == 20
    text = totp.base32_secret(secret)
    assert len(text) == 32 and "=" not in text
    assert base64.b32decode(text) == secret
    assert totp.new_secret() != secret


def test_otpauth_uri() -> None:
    uri = totp.otpauth_uri(RFC_SECRET, issuer="authbridge", account_name="alice phone")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert parts.path == "/authbridge:alice%20phone"
    query = parse_qs(parts.query)
    assert query["secret"] == [totp.base32_secret(RFC_SECRET)]
    assert query["issuer"] == ["authbridge"]
    assert query["digits"] == ["6"] and query["period"] == ["30"] and query["algorithm"] == ["SHA1"]


NOW = 1_700_000_000.0


def test_one_step_of_skew_either_side_and_no_more() -> None:
    step = totp.step_at(NOW)
    for offset in (-1, 0, 1):
        code = totp.hotp(RFC_SECRET, step + offset)
        assert totp.match(RFC_SECRET, code, NOW, last_used_step=None) == step + offset
    for offset in (-2, 2, 10):
        code = totp.hotp(RFC_SECRET, step + offset)
        if code not in {totp.hotp(RFC_SECRET, step + o) for o in (-1, 0, 1)}:
            assert totp.match(RFC_SECRET, code, NOW, last_used_step=None) is None


def test_totp_replay_a_code_is_accepted_once() -> None:
    """Attack: a code seen over a shoulder or in a phishing proxy is used again."""
    code = totp.code_at(RFC_SECRET, NOW)
    step = totp.match(RFC_SECRET, code, NOW, last_used_step=None)
    assert step == totp.step_at(NOW)
    assert totp.match(RFC_SECRET, code, NOW, last_used_step=step) is None
    assert totp.match(RFC_SECRET, code, NOW + 29, last_used_step=step) is None
    # An older code inside the window is refused too once a later one was used.
    older = totp.hotp(RFC_SECRET, step - 1)
    assert totp.match(RFC_SECRET, older, NOW, last_used_step=step) is None
    # The next step's code still works.
    later = totp.hotp(RFC_SECRET, step + 1)
    assert totp.match(RFC_SECRET, later, NOW + 30, last_used_step=step) == step + 1


def test_a_wrong_code_matches_nothing() -> None:
    right = {totp.hotp(RFC_SECRET, totp.step_at(NOW) + o) for o in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "123456") if c not in right)
    assert totp.match(RFC_SECRET, wrong, NOW, last_used_step=None) is None


def test_enabling_needs_two_consecutive_codes() -> None:
    step = totp.step_at(NOW)
    c1, c2 = totp.hotp(RFC_SECRET, step - 1), totp.hotp(RFC_SECRET, step)
    assert totp.match_consecutive(RFC_SECRET, c1, c2, NOW) == step
    # Typed a step late, or with the phone a step ahead: still within the window.
    assert totp.match_consecutive(RFC_SECRET, c2, totp.hotp(RFC_SECRET, step + 1), NOW) == step + 1
    # The same code twice, reversed, or a gap between them: refused.
    assert totp.match_consecutive(RFC_SECRET, c2, c2, NOW) is None
    assert totp.match_consecutive(RFC_SECRET, c2, c1, NOW) is None
    assert totp.match_consecutive(RFC_SECRET, c1, totp.hotp(RFC_SECRET, step + 1), NOW) is None
    # Two consecutive codes from long ago: refused (not the device's clock now).
    old1, old2 = totp.hotp(RFC_SECRET, step - 10), totp.hotp(RFC_SECRET, step - 9)
    assert totp.match_consecutive(RFC_SECRET, old1, old2, NOW) is None


@pytest.mark.parametrize("text", ["123456", " 123456 ", "123 456", "000000"])
def test_parse_code_accepts_six_digits(text: str) -> None:
    assert totp.parse_code(text) == text.strip().replace(" ", "")


@pytest.mark.parametrize(
    "text",
    ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12\n3456", "-12345", "1" * 10_000, "hunter2pw"],
)
def test_parse_code_refuses_malformed_input_without_echoing_it(text: str) -> None:
    with pytest.raises(InputError) as err:
        totp.parse_code(text, "AuthenticationCode1")
    assert err.value.field == "AuthenticationCode1"
    if len(text) >= 5:
        assert text not in str(err.value)


@given(st.text(max_size=64))
def test_parse_code_property(text: str) -> None:
    """Only InputError comes out, and whatever passes is exactly six ASCII digits."""
    try:
        code = totp.parse_code(text)
    except InputError as err:
        assert err.field == "AuthenticationCode"
        if len(text) >= 6:
            assert text not in str(err)
    else:
        assert len(code) == 6 and all("0" <= c <= "9" for c in code)


@given(secret=st.binary(min_size=1, max_size=64), now=st.floats(0, 2**40), code=st.text(max_size=8))
def test_match_property(secret: bytes, now: float, code: str) -> None:
    step = totp.match(secret, code, now, last_used_step=None)
    assert step is None or abs(step - totp.step_at(now)) <= 1
