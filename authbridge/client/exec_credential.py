"""The kubectl exec credential contract (client-go ``client.authentication.k8s.io``).

client-go runs the plugin with ``KUBERNETES_EXEC_INFO`` holding an
``ExecCredential`` (``apiVersion``, ``kind``, ``spec.interactive``, and
``spec.cluster`` when the kubeconfig says ``provideClusterInfo: true``). It
decodes the plugin's stdout with the group/version of the kubeconfig's
``exec.apiVersion`` and refuses an answer of any other version ("exec plugin is
configured to use API version …, plugin returned version …"), so we answer in
the version we were asked in. It needs ``status.token``, and re-runs the plugin
once ``status.expirationTimestamp`` (RFC 3339) has passed.

We set ``expirationTimestamp`` :data:`REFRESH_MARGIN` seconds before the
token's ``exp`` (never in the past), so kubectl asks for a new token while the
old one is still accepted and a request never meets a token about to expire.
Pure: values in, values out. The parsing and the document are in
:mod:`authbridge.client.fastpath` (standard library only, for the cached path
that runs before click loads); this module gives them their types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict, get_args

from authbridge.client.fastpath import (
    API_V1,
    API_V1BETA1,
    EXEC_INFO_ENV,
    KIND,
    REFRESH_MARGIN,
    exec_credential_document,
    expiration,
    read_exec_info,
    rfc3339,
)

__all__ = [
    "API_V1",
    "API_V1BETA1",
    "API_VERSIONS",
    "EXEC_INFO_ENV",
    "KIND",
    "REFRESH_MARGIN",
    "ApiVersion",
    "ExecCredential",
    "ExecCredentialSpec",
    "ExecCredentialStatus",
    "ExecInfo",
    "build",
    "expiration",
    "parse_exec_info",
    "rfc3339",
]

ApiVersion = Literal["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
API_VERSIONS: tuple[ApiVersion, ...] = get_args(ApiVersion)  # (API_V1, API_V1BETA1)


class ExecCredentialSpec(TypedDict):
    """What client-go tells the plugin (we echo ``interactive`` only)."""

    interactive: NotRequired[bool]


class ExecCredentialStatus(TypedDict):
    token: str
    expirationTimestamp: str  # RFC 3339, UTC: 2026-11-22T00:15:00Z


class ExecCredential(TypedDict):
    apiVersion: ApiVersion
    kind: Literal["ExecCredential"]
    spec: ExecCredentialSpec
    status: ExecCredentialStatus


@dataclass(frozen=True)
class ExecInfo:
    """What ``KUBERNETES_EXEC_INFO`` asked for; ``warning`` says why we fell back to v1."""

    api_version: ApiVersion = API_V1
    interactive: bool | None = None
    warning: str | None = None


def parse_exec_info(raw: str | None) -> ExecInfo:
    """The version to answer in: the one client-go sent, else v1 (with a warning if garbled).

    Absent (run by hand, or by an old client) is v1 without a warning.
    """
    api_version, interactive, warning = read_exec_info(raw)
    return ExecInfo(api_version=api_version, interactive=interactive, warning=warning)


def build(info: ExecInfo, token: str, expires_at: int, now: float) -> ExecCredential:
    """The ``ExecCredential`` for ``token`` (``exp`` = ``expires_at``) in ``info``'s version."""
    return exec_credential_document(info.api_version, info.interactive, token, expires_at, now)
