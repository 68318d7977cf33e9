"""OIDC provider inputs (authbridge.iam.oidc_provider): URL, client ids, CA bundle, ARN.

Covers: the URLs of real issuers (GitHub, GitLab, EKS, a kube-apiserver with
a port and path) and their keys/ARNs; hostile URLs (http, userinfo, query,
fragment, dot segments, control characters, non-ASCII, IPv6, bad ports,
oversized) each refused naming ``Url``; client ids (folded, bounded, no
spaces or controls); CA bundles (certificates only, a private key refused,
garbage, oversized, too many); provider ARNs parsed back to their key, and
refused when not canonical; Hypothesis properties that arbitrary text gives
only InputError and that a parsed URL's key makes an ARN that parses back.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge import pki
from authbridge.errors import InputError, MalformedArn
from authbridge.iam import oidc_provider as op


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://token.actions.githubusercontent.com", "token.actions.githubusercontent.com"),
        ("https://gitlab.com", "gitlab.com"),
        (
            "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        ),
        ("https://127.0.0.1:6443", "127.0.0.1:6443"),
        ("https://Kube.Example:8443/issuer/", "kube.example:8443/issuer"),
        ("https://tenant.auth0.com/", "tenant.auth0.com"),
    ],
)
def test_real_issuer_urls(url: str, key: str) -> None:
    parsed = op.parse_url(url)
    assert parsed.key == key
    assert parsed.url.startswith("https://") and parsed.url.lower() == url.lower()
    arn = op.provider_arn("aws", "111122223333", parsed.key)
    assert op.parse_provider_arn(arn).key == key


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://issuer.example", "https://"),
        ("HTTPS://issuer.example", "https://"),
        ("file:///etc/passwd", "https://"),
        ("issuer.example", "not a URL"),
        ("", "empty"),
        ("https://", "no host"),
        ("https://user:pw@issuer.example", "user name or password"),
        ("https://issuer.example?x=1", "query or fragment"),
        ("https://issuer.example#frag", "query or fragment"),
        ("https://issuer.example/a/../b", "'..'"),
        ("https://issuer.example/a//b", "empty"),
        ("https://issuer.example/./b", "'.'"),
        ("https://issuer.example/a b", "refuses"),
        ("https://issuer.example/\x00", "printable"),
        ("https://issuer.example\r\nHost: evil", "printable"),
        ("https://ïssuer.example", "printable ASCII"),
        ("https://[::1]:443", "IPv6"),
        ("https://issuer.example:0", "port"),
        ("https://issuer.example:65536", "port"),
        ("https://issuer.example:08443", "port"),
        ("https://issuer.example:x", "port"),
        ("https://-bad-.example", "DNS name"),
        ("https://10.0.0", "DNS name"),
        ("https://issuer_example.com", "DNS name"),
        ("https://issuer.example/" + "a" * 300, "at most 255"),
        ("https://issuer.example/a\\b", "refuses"),
    ],
)
def test_hostile_urls_are_refused_naming_url(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        op.parse_url(url)
    assert caught.value.field == "Url"


def test_url_of_the_wrong_type_is_refused() -> None:
    for value in (None, 7, b"https://x", ["https://x"]):
        with pytest.raises(InputError, match="must be a string"):
            op.parse_url(value)


def test_client_ids_are_folded_and_checked() -> None:
    assert op.parse_client_ids(["sts.amazonaws.com", "authbridge", "authbridge"]) == (
        "sts.amazonaws.com",
        "authbridge",
    )
    assert op.parse_client_ids([]) == ()
    for bad, field, message in [
        ("authbridge", "ClientIDList", "list"),
        ([""], "ClientIDList[0]", "1 to 255"),
        (["a" * 256], "ClientIDList[0]", "1 to 255"),
        (["has space"], "ClientIDList[0]", "printable"),
        (["tab\t"], "ClientIDList[0]", "printable"),
        (["ok", "ünïcode"], "ClientIDList[1]", "printable"),
        ([7], "ClientIDList[0]", "string"),
        ([f"c{i}" for i in range(101)], "ClientIDList", "at most 100"),
    ]:
        with pytest.raises(InputError, match=message) as caught:
            op.parse_client_ids(bad)
        assert caught.value.field == field


def test_ca_bundle_is_certificates_only() -> None:
    ca = pki.new_ca("test")
    other = pki.new_ca("other")
    bundle = (ca.cert_pem + other.cert_pem).decode()
    parsed = op.parse_ca_bundle(bundle)
    assert len(op.ca_fingerprints(parsed)) == 2
    for bad, message in [
        (bundle + ca.key_pem.decode(), "private key"),
        ("not pem", "not a PEM bundle"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a PEM"),
        ("x" * (op.MAX_CA_BUNDLE + 1), "at most"),
        (ca.cert_pem.decode() * (op.MAX_CA_CERTIFICATES + 1), "at most 16"),
        ("é", "ASCII"),
        (None, "PEM text"),
    ]:
        with pytest.raises(InputError, match=message) as caught:
            op.parse_ca_bundle(bad)
        assert caught.value.field == "CaBundle"


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("arn:aws:iam::111122223333:oidc-provider/", "not an oidc-provider ARN"),
        ("arn:aws:iam::1111:oidc-provider/a.example", "not an oidc-provider ARN"),
        ("arn:aws:iam::111122223333:saml-provider/a", "not an oidc-provider ARN"),
        ("arn:aws:iam::111122223333:oidc-provider/A.example", "lowercase host"),
        ("arn:aws:iam::111122223333:oidc-provider/a.example/", "lowercase host"),
        ("arn:aws:iam::111122223333:oidc-provider/a.example/../b", "not valid"),
        ("arn:aws:iam::111122223333:oidc-provider/a.example?q", "not valid"),
        ("arn:aws:iam::111122223333:oidc-provider/" + "a" * 3000, "at most 2048"),
    ],
)
def test_malformed_provider_arns_are_refused(arn: str, message: str) -> None:
    with pytest.raises(MalformedArn, match=message):
        op.parse_provider_arn(arn)


@given(st.text(max_size=300))
def test_any_text_as_url_gives_only_input_error(text: str) -> None:
    try:
        parsed = op.parse_url(text)
    except InputError:
        return
    assert parsed.url.startswith("https://")
    assert op.parse_provider_arn(op.provider_arn("aws", "111122223333", parsed.key)).key == (
        parsed.key
    )
    assert op.parse_url(parsed.url) == parsed


@given(
    st.builds(
        lambda host, port, path: f"https://{host}{port}{path}",
        st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9]{0,8}){0,3}", fullmatch=True),
        st.sampled_from(["", ":443", ":6443"]),
        st.from_regex(r"(/[A-Za-z0-9._~-]{1,8}){0,3}/?", fullmatch=True),
    )
)
def test_well_formed_urls_round_trip(url: str) -> None:
    try:
        parsed = op.parse_url(url)
    except InputError as e:  # a generated '.' or '..' segment, or a trailing-hyphen label
        assert e.field == "Url"
        return
    assert op.parse_url(parsed.url) == parsed
    assert op.parse_provider_arn(op.provider_arn("aws", "111122223333", parsed.key)).key == (
        parsed.key
    )


@given(st.lists(st.text(max_size=20), max_size=8))
def test_any_client_ids_give_only_input_error(values: list[str]) -> None:
    try:
        ids = op.parse_client_ids(values)
    except InputError:
        return
    assert len(set(ids)) == len(ids)


@given(st.text(max_size=500))
def test_any_text_as_ca_bundle_gives_only_input_error(text: str) -> None:
    with pytest.raises(InputError):
        op.parse_ca_bundle(text)
