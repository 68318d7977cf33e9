"""The ExecCredential kubectl reads, and the version ``KUBERNETES_EXEC_INFO`` asks for.

Covers: absent (v1, silent), v1 and v1beta1 (answered in kind, ``interactive``
echoed), and v1 with a warning for garbage JSON, a non-object, a missing or
unknown apiVersion (v1alpha1, which client-go dropped), an oversized value;
the document's exact shape; ``expirationTimestamp`` in RFC 3339 UTC, 60 s
before exp and never in the past.
"""

from __future__ import annotations

import json
import re

import pytest

from authbridge.client.exec_credential import (
    API_V1,
    API_V1BETA1,
    ExecInfo,
    build,
    expiration,
    parse_exec_info,
    rfc3339,
)

NOW = 1_800_000_000


def info_json(api_version: object, interactive: object = False) -> str:
    return json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": interactive}}
    )


def test_absent_is_v1_without_warning() -> None:
    assert parse_exec_info(None) == ExecInfo(API_V1, None, None)
    assert parse_exec_info("  ") == ExecInfo(API_V1, None, None)


@pytest.mark.parametrize("version", [API_V1, API_V1BETA1])
@pytest.mark.parametrize("interactive", [True, False])
def test_known_versions_are_answered_in_kind(version: str, interactive: bool) -> None:
    info = parse_exec_info(info_json(version, interactive))
    assert info == ExecInfo(version, interactive, None)


def test_client_go_shape_with_cluster_info() -> None:
    raw = json.dumps(
        {
            "kind": "ExecCredential",
            "apiVersion": API_V1BETA1,
            "spec": {
                "cluster": {
                    "server": "https://10.0.0.1:6443",
                    "certificate-authority-data": "QQ==",
                },
                "interactive": True,
            },
        }
    )
    assert parse_exec_info(raw) == ExecInfo(API_V1BETA1, True, None)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('"v1"', "is not a JSON object"),
        ("[" * 100_000, "is not JSON"),
        (json.dumps({"kind": "ExecCredential"}), "apiVersion missing"),
        (info_json("client.authentication.k8s.io/v1alpha1"), "v1alpha1"),
        (info_json("v1"), "'v1', which authbridge does not speak"),
        (info_json(7), "apiVersion missing"),
        ("{" + " " * (1024 * 1024) + "}", "too large"),
    ],
)
def test_garbled_or_unknown_is_v1_with_a_warning(raw: str, says: str) -> None:
    info = parse_exec_info(raw)
    assert info.api_version == API_V1 and info.interactive is None
    assert info.warning is not None and says in info.warning
    assert info.warning.startswith("KUBERNETES_EXEC_INFO ")
    assert f"answering in {API_V1}" in info.warning


def test_interactive_of_the_wrong_type_is_dropped() -> None:
    assert parse_exec_info(info_json(API_V1, "yes")).interactive is None
    assert parse_exec_info(json.dumps({"apiVersion": API_V1, "spec": 3})).interactive is None


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_795_306_500) == "2026-11-22T00:15:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rfc3339(NOW))


def test_expiration_is_sixty_seconds_early_but_never_past() -> None:
    assert expiration(NOW + 900, NOW) == NOW + 840
    assert expiration(NOW + 61, NOW) == NOW + 1
    assert expiration(NOW + 30, NOW + 0.5) == NOW + 1  # a short token: now, not the past
    assert expiration(NOW + 1, NOW) == NOW + 1
    for lifetime in range(1, 200):
        exp = expiration(NOW + lifetime, NOW)
        assert NOW < exp <= NOW + lifetime


def test_document_shape() -> None:
    doc = build(ExecInfo(API_V1BETA1, False), "tok", NOW + 900, NOW)
    assert doc == {
        "apiVersion": API_V1BETA1,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
        "status": {"token": "tok", "expirationTimestamp": rfc3339(NOW + 840)},
    }
    assert build(ExecInfo(), "tok", NOW + 900, NOW)["spec"] == {}
    assert json.loads(json.dumps(doc)) == doc
