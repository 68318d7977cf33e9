"""The token endpoint client's pure parts: what it sends and how it reads the answers.

Covers HTTP Basic client credentials form-urlencoded before base64 (RFC 6749
§2.3.1, with ``:``, ``+``, ``%`` and spaces), the unverified ``exp`` read,
RFC 6749 §5.1 answers (expires_in relative to the send time, the JWT exp as a
fallback, case-insensitive Bearer, each malformed answer refused), RFC 6749
§5.2 refusals with the hint for each error code (never trusting a hostile
``error``), the issuer URL read from a discovery document and the sts
audience made of it (each malformed document refused; a Hypothesis property:
any bytes give an issuer URL or IssuerError, nothing else), and the
transport's refusals before any request (http, an unreadable or non-PEM CA
file). The HTTPS round trips are in
``tests/test_cli_token.py``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge import sts
from authbridge.client.errors import IssuerError, IssuerRefused
from authbridge.client.issuer import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_TOKEN_EXCHANGE,
    Issuer,
    basic_authorization,
    jwt_exp,
    parse_discovery,
    parse_refusal,
    parse_success,
    sts_audience,
)

NOW = 1_800_000_000.4
ENDPOINT = "https://issuer.example.com"


def b64url(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def jwt(claims: object) -> str:
    return f"{b64url({'alg': 'RS256', 'typ': 'JWT'})}.{b64url(claims)}.c2ln"


def body(**doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("AKIAABCDEFGHIJKLMNOP", "abc-DEF_123"),
        ("id:with:colons", "p@ss w%rd+/=:"),
        ("ünï", "çödé"),
    ],
)
def test_basic_auth_form_urlencodes_each_part(client_id: str, secret: str) -> None:
    header = basic_authorization(client_id, secret)
    assert header.startswith("Basic ")
    raw = base64.b64decode(header.removeprefix("Basic ")).decode()
    encoded_id, sep, encoded_secret = raw.partition(":")
    assert sep and ":" not in encoded_id
    assert (unquote_plus(encoded_id), unquote_plus(encoded_secret)) == (client_id, secret)


def test_jwt_exp() -> None:
    assert jwt_exp(jwt({"exp": 1_800_000_900})) == 1_800_000_900
    assert jwt_exp(jwt({"exp": 1_800_000_900.7})) == 1_800_000_900
    for bad in (jwt({"exp": True}), jwt({"exp": "1"}), jwt([1]), "a.b", "a.!!!.c", "x"):
        assert jwt_exp(bad) is None


def test_success_uses_expires_in_from_the_send_time() -> None:
    token = jwt({"exp": 1})  # a skewed server clock does not matter
    issued = parse_success(
        body(access_token=token, token_type="Bearer", expires_in=900), NOW, ENDPOINT
    )
    assert (issued.token, issued.expires_at) == (token, int(NOW + 900))
    assert token not in repr(issued)


def test_success_without_expires_in_reads_the_jwt() -> None:
    token = jwt({"exp": int(NOW) + 600})
    issued = parse_success(body(access_token=token, token_type="bearer"), NOW, ENDPOINT)
    assert issued.expires_at == int(NOW) + 600


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"<html>hello</html>", "is not JSON"),
        (b"[]", "non-object"),
        (body(token_type="Bearer", expires_in=900), "without a usable access_token"),
        (body(access_token="", token_type="Bearer", expires_in=900), "usable access_token"),
        (body(access_token="a b", token_type="Bearer", expires_in=900), "usable access_token"),
        (body(access_token=7, token_type="Bearer", expires_in=900), "usable access_token"),
        (body(access_token="t", token_type="MAC", expires_in=900), "not Bearer"),
        (body(access_token="t", expires_in=900), "not Bearer"),
        (body(access_token="t", token_type="Bearer", expires_in=-5), "expires_in -5"),
        (body(access_token="t", token_type="Bearer"), "did not say when the token expires"),
        (
            body(access_token=jwt({"exp": int(NOW) - 1}), token_type="Bearer"),
            "already expired",
        ),
    ],
)
def test_bad_success_answers_are_refused(raw: bytes, says: str) -> None:
    with pytest.raises(IssuerError) as e:
        parse_success(raw, NOW, ENDPOINT)
    assert says in str(e.value) and ENDPOINT in str(e.value)


@pytest.mark.parametrize(
    ("error", "grant", "hint"),
    [
        ("invalid_client", GRANT_CLIENT_CREDENTIALS, "check the access key id and secret"),
        ("invalid_target", GRANT_CLIENT_CREDENTIALS, "check --cluster-id"),
        ("invalid_request", GRANT_CLIENT_CREDENTIALS, "check --cluster-id, --role"),
        ("invalid_grant", GRANT_TOKEN_EXCHANGE, "check that --role names a role that trusts"),
        ("invalid_grant", GRANT_CLIENT_CREDENTIALS, "the access key or its user"),
        ("unsupported_grant_type", GRANT_CLIENT_CREDENTIALS, "check that --endpoint"),
        ("made_up", GRANT_CLIENT_CREDENTIALS, "ask the authbridge administrator"),
    ],
)
def test_refusals_say_what_to_do(error: str, grant: str, hint: str) -> None:
    refusal = parse_refusal(400, body(error=error, error_description="nope"), grant)
    assert isinstance(refusal, IssuerRefused)
    assert (refusal.error, refusal.description, refusal.status) == (error, "nope", 400)
    assert str(refusal).startswith(f"the issuer refused: {error}: nope; ")
    assert hint in str(refusal)


def test_refusal_without_description_and_with_a_long_one() -> None:
    refusal = parse_refusal(401, body(error="invalid_client"), GRANT_CLIENT_CREDENTIALS)
    assert refusal is not None and str(refusal).startswith("the issuer refused: invalid_client; ")
    long = parse_refusal(400, body(error="x", error_description="d" * 5000), "g")
    assert long is not None and len(long.description) == 300


@pytest.mark.parametrize(
    "raw",
    [b"", b"<html>", b"[]", body(error=7), body(error='bad"quote'), body(error="a\nb"), body()],
)
def test_not_an_oauth_error_is_no_refusal(raw: bytes) -> None:
    assert parse_refusal(400, raw, GRANT_CLIENT_CREDENTIALS) is None


def test_http_is_refused_before_any_request() -> None:
    with pytest.raises(IssuerError, match="not https"):
        Issuer("http://issuer.example.com")


def test_ca_file_must_exist_and_hold_pem(tmp_path: Path) -> None:
    with pytest.raises(IssuerError, match="cannot read CA file .*--ca-file"):
        Issuer(ENDPOINT, ca_file=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(IssuerError, match="holds no usable PEM certificate"):
        Issuer(ENDPOINT, ca_file=str(garbage))


# -- discovery: the issuer URL, and the sts audience made of it ------------------------------


@pytest.mark.parametrize(
    "issuer", ["https://authbridge.example.com", "https://a.example/", "https://h:8443/prefix"]
)
def test_sts_audience_is_the_servers(issuer: str) -> None:
    assert parse_discovery(body(issuer=issuer, jwks_uri="x"), ENDPOINT) == issuer
    assert sts_audience(issuer) == sts.sts_audience(issuer)  # the server's own rule


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>",
        b"[]",
        body(),
        body(issuer=7),
        body(issuer="ftp://x"),
        body(issuer="https://x\n"),
        body(issuer="https://" + "a" * 3000),
    ],
)
def test_bad_discovery_documents_are_refused(raw: bytes) -> None:
    with pytest.raises(IssuerError, match="no usable discovery document"):
        parse_discovery(raw, ENDPOINT)


@given(st.one_of(st.binary(max_size=300), st.builds(lambda v: body(issuer=v), st.text())))
def test_discovery_parsing_gives_an_issuer_or_issuer_error(raw: bytes) -> None:
    try:
        issuer = parse_discovery(raw, ENDPOINT)
    except IssuerError:
        return
    assert issuer.startswith(("https://", "http://")) and issuer.isprintable()
