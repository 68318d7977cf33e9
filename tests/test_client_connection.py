"""authbridge.client.connection: each failure below HTTP, in both clients' words.

Covers: an untrusted certificate (no CA file, a wrong CA file, a host name the
certificate does not name), other TLS errors, a refused connection, a timeout, a
host that does not resolve, a connection closed without an answer, anything else;
a CA file missing or holding no certificate; the issuer client's and the admin API
client's wordings (the endpoint as a flag or
as the profile's), which their own tests check end to end.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path

import pytest

from authbridge.client.admin_api import _WORDS as ADMIN
from authbridge.client.connection import BadCaFile, explain, tls_context
from authbridge.client.issuer import _WORDS as ISSUER

WHERE = "https://authbridge.example.com:8443"


def _explain(reason: object, words: object = ISSUER, ca_file: str | None = None) -> tuple[str, str]:
    return explain(reason, where=WHERE, timeout=2.5, ca_file=ca_file, words=words)  # type: ignore[arg-type]


def _cert_error(message: str) -> ssl.SSLCertVerificationError:
    e = ssl.SSLCertVerificationError(1, message)
    e.verify_message = message
    return e


def test_an_untrusted_certificate_says_how_to_name_the_ca() -> None:
    message, hint = _explain(_cert_error("self-signed certificate"))
    assert message == f"TLS verification of {WHERE} failed: self-signed certificate"
    assert hint.startswith("the server's certificate is not trusted by this system; pass --ca-file")
    _, hint = _explain(_cert_error("self-signed certificate"), ca_file="/etc/ca.pem")
    assert hint == "check that /etc/ca.pem is the CA that signed the server's certificate"
    _, hint = _explain(_cert_error("Hostname mismatch"), ADMIN, ca_file="/etc/ca.pem")
    assert hint == "use the host name the server's certificate is issued for in the endpoint"


@pytest.mark.parametrize(
    ("reason", "issuer", "admin"),
    [
        (
            ConnectionRefusedError(111, "Connection refused"),
            "cannot connect to the issuer at {w}: connection refused",
            "cannot connect to the admin API at {w}: connection refused",
        ),
        (
            TimeoutError("timed out"),
            "the issuer at {w} did not answer within 2.5 s",
            "the admin API at {w} did not answer within 2.5 s",
        ),
        (
            socket.gaierror(-2, "Name or service not known"),
            "cannot resolve the host of {w}: Name or service not known",
            "cannot resolve the host of {w}: Name or service not known",
        ),
        (
            http.client.RemoteDisconnected("closed"),
            "the issuer at {w} closed the connection without a valid answer",
            "the admin API at {w} closed the connection without a valid answer",
        ),
        (
            OSError(113, "No route to host"),
            "cannot reach the issuer at {w}: No route to host",
            "cannot reach the admin API at {w}: No route to host",
        ),
    ],
)
def test_each_failure_in_each_clients_words(reason: object, issuer: str, admin: str) -> None:
    message, hint = _explain(reason, ISSUER)
    assert message == issuer.format(w=WHERE)
    assert "--endpoint" in hint
    message, hint = _explain(reason, ADMIN)
    assert message == admin.format(w=WHERE)
    assert "endpoint" in hint


def test_other_tls_errors_say_to_check_the_url() -> None:
    message, hint = _explain(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    assert message.startswith(f"TLS with {WHERE} failed:")
    assert hint == "check that --endpoint is the https URL of the authbridge server"


def test_a_ca_file_that_is_missing_or_no_certificate_is_refused_with_a_hint(
    tmp_path: Path,
) -> None:
    with pytest.raises(BadCaFile) as missing:
        tls_context(str(tmp_path / "nope.pem"), "pass --ca-file")
    assert missing.value.message.startswith(f"cannot read CA file {tmp_path / 'nope.pem'}: ")
    assert missing.value.hint == "pass --ca-file"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(BadCaFile) as unusable:
        tls_context(str(garbage), "pass --ca-file")
    assert unusable.value.message == f"CA file {garbage} holds no usable PEM certificate"
    assert unusable.value.hint.startswith("pass --ca-file, naming the CA bundle")
    assert tls_context(None, "unused").verify_mode == ssl.CERT_REQUIRED
