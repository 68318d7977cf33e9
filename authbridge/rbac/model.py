"""Kubernetes objects as plain values, and the actions that reconcile them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["ClusterRoleBinding", "RoleBinding", "ServiceAccount"]
Op = Literal["create", "update", "replace", "delete"]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "authbridge"
SOURCE_ANNOTATION = "authbridge.dev/source"  # the mapping entry an object came from
ROLE_ARN_ANNOTATION = "authbridge.dev/role-arn"
EKS_ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: Kind
    name: str
    namespace: str | None = None  # None for cluster-scoped kinds

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class KubeObject:
    """A manifest (``apiVersion``, ``kind``, ``metadata``, ``roleRef``, ``subjects`` …).

    ``manifest`` holds only the fields authbridge manages; an observed object
    also carries its ``resource_version`` (for optimistic concurrency on update).
    """

    ref: ObjectRef
    manifest: dict[str, Any] = field(hash=False, compare=False)
    resource_version: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.manifest.get("metadata", {}).get("labels") or {})

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


@dataclass(frozen=True)
class Action:
    """One change: create, update (in place), replace (delete + create: roleRef is
    immutable), or delete (only managed objects, only with prune)."""

    op: Op
    ref: ObjectRef
    desired: KubeObject | None = None
    observed: KubeObject | None = None
    # human-readable: "subjects: +Group dev-team", "roleRef: ClusterRole edit -> ClusterRole view"
    changes: tuple[str, ...] = ()
