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
Pure: values in, values out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict, get_args

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
API_V1: ApiVersion = "client.authentication.k8s.io/v1"
API_V1BETA1: ApiVersion = "client.authentication.k8s.io/v1beta1"
API_VERSIONS: tuple[ApiVersion, ...] = get_args(ApiVersion)
KIND: Literal["ExecCredential"] = "ExecCredential"
EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
REFRESH_MARGIN = 60  # seconds before the token's exp that kubectl is told to refresh
# spec.cluster may carry the cluster's CA bundle; far more than that is not client-go.
_MAX_EXEC_INFO = 1024 * 1024


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
    if raw is None or not raw.strip():
        return ExecInfo()
    fallback = f"answering in {API_V1}"
    if len(raw) > _MAX_EXEC_INFO:
        return ExecInfo(warning=f"{EXEC_INFO_ENV} is too large to be client-go's; {fallback}")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return ExecInfo(warning=f"{EXEC_INFO_ENV} is not JSON; {fallback}")
    if not isinstance(doc, dict):
        return ExecInfo(warning=f"{EXEC_INFO_ENV} is not a JSON object; {fallback}")
    version = doc.get("apiVersion")
    if version not in API_VERSIONS:
        shown = repr(version)[:80] if isinstance(version, str) else "missing"
        return ExecInfo(
            warning=f"{EXEC_INFO_ENV} asks for apiVersion {shown}, which authbridge does not"
            f" speak; {fallback} (set exec.apiVersion to {API_V1} in the kubeconfig)"
        )
    spec = doc.get("spec")
    interactive = spec.get("interactive") if isinstance(spec, dict) else None
    return ExecInfo(
        api_version=API_V1 if version == API_V1 else API_V1BETA1,
        interactive=interactive if isinstance(interactive, bool) else None,
    )


def rfc3339(ts: int) -> str:
    """Epoch seconds as RFC 3339 UTC with a ``Z``, the form metav1.Time marshals to."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def expiration(expires_at: int, now: float) -> int:
    """When kubectl should refresh: :data:`REFRESH_MARGIN` before ``exp``, never in the past."""
    return max(expires_at - REFRESH_MARGIN, min(int(now) + 1, expires_at))


def build(info: ExecInfo, token: str, expires_at: int, now: float) -> ExecCredential:
    """The ``ExecCredential`` for ``token`` (``exp`` = ``expires_at``) in ``info``'s version."""
    spec: ExecCredentialSpec = {}
    if info.interactive is not None:
        spec["interactive"] = info.interactive
    return {
        "apiVersion": info.api_version,
        "kind": KIND,
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expiration(expires_at, now))},
    }
