"""The access explorer (pure core): who an IAM principal is in each cluster and what RBAC
lets it do, and which IAM principals reach a permission.

Modules: ``rbac`` (the kube-apiserver's RBAC authorizer over plain values, live or
rendered), ``core`` (the two answers over a :class:`Snapshot`), ``load`` (a snapshot
from the store, the mapping and each cluster's RBAC). The CLI (``authbridge access
explain``) and the console call the same functions; every answer has ``to_json()``
(docs/reference.md, "Access explorer").
"""

from authbridge.explain.core import (
    SESSION_PLACEHOLDER,
    IamSnapshot,
    PermissionAnswer,
    PrincipalAnswer,
    Snapshot,
    explain_permission,
    explain_principal,
    permission_request,
)
from authbridge.explain.rbac import Rbac, Request, rbac_from_objects, rendered_rbac

__all__ = [
    "SESSION_PLACEHOLDER",
    "IamSnapshot",
    "PermissionAnswer",
    "PrincipalAnswer",
    "Rbac",
    "Request",
    "Snapshot",
    "explain_permission",
    "explain_principal",
    "permission_request",
    "rbac_from_objects",
    "rendered_rbac",
]
