"""RBAC from the mapping: desired objects, plan(desired, observed), lockout guard (pure).

INTERFACE (shared by the pure planner and the kube adapter / CLI):

    desired_objects(mapping, namespaces) -> list[KubeObject]
    plan(desired, observed, *, prune) -> list[Action]       second plan after apply: []
    lockout_problem(mapping, desired, observed) -> str | None
    render_yaml(objects) -> str                              multi-document, kubectl-apply-able
"""

from authbridge.rbac.model import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_ANNOTATION,
    Action,
    KubeObject,
    ObjectRef,
)

__all__ = [
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "SOURCE_ANNOTATION",
    "Action",
    "KubeObject",
    "ObjectRef",
]
