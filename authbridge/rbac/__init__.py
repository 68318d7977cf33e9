"""RBAC from the mapping: desired objects, plan(desired, observed), lockout guard (pure).

INTERFACE (shared by the pure planner and the kube adapter / CLI):

    desired_objects(mapping, namespaces) -> list[KubeObject]
    plan(desired, observed, *, prune) -> list[Action]       second plan after apply: []
    lockout_problem(mapping, desired, observed) -> str | None
    render_yaml(objects) -> str                              multi-document, kubectl-apply-able

and around it:

    desired_state(mapping, namespaces) -> DesiredState       .objects, .warnings
    orphans(desired, observed) -> list[KubeObject]           what --prune would delete
    apply_to(observed, actions) -> list[KubeObject]          the state after the actions (pure)
    check_lockout(..., prune=, allow_lockout=)               raises LockoutRefused
    reconciler_permissions() -> set[(apiGroup, resource, verb)]   rbac/authbridge-rbac.yaml

Modules: ``model`` (the values), ``names`` (object names), ``desired``
(mapping → objects), ``plan`` (diff, ownership, order, apply_to), ``lockout``
(the cluster-admin guard), ``render`` (YAML), ``policies`` (the shipped
ClusterRoles and the reconciler's own RBAC), ``errors``.
"""

from authbridge.rbac.desired import DesiredState, desired_objects, desired_state
from authbridge.rbac.errors import LockoutRefused, NameCollision, PlanConflict, RbacError
from authbridge.rbac.lockout import (
    CLUSTER_ADMIN_ROLES,
    admin_paths,
    check_lockout,
    lockout_problem,
)
from authbridge.rbac.model import (
    EKS_ROLE_ARN_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    ROLE_ARN_ANNOTATION,
    SOURCE_ANNOTATION,
    Action,
    KubeObject,
    ObjectRef,
)
from authbridge.rbac.names import binding_name
from authbridge.rbac.plan import apply_to, orphans, overlay, plan
from authbridge.rbac.policies import (
    ACCESS_POLICIES,
    BUILTIN_ROLES,
    RECONCILER_ROLE,
    bindable_cluster_roles,
    reconciler_permissions,
    unbindable,
)
from authbridge.rbac.render import apply_manifest, render_yaml

__all__ = [
    "ACCESS_POLICIES",
    "BUILTIN_ROLES",
    "CLUSTER_ADMIN_ROLES",
    "EKS_ROLE_ARN_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "RECONCILER_ROLE",
    "ROLE_ARN_ANNOTATION",
    "SOURCE_ANNOTATION",
    "Action",
    "DesiredState",
    "KubeObject",
    "LockoutRefused",
    "NameCollision",
    "ObjectRef",
    "PlanConflict",
    "RbacError",
    "admin_paths",
    "apply_manifest",
    "apply_to",
    "bindable_cluster_roles",
    "binding_name",
    "check_lockout",
    "desired_objects",
    "desired_state",
    "lockout_problem",
    "orphans",
    "overlay",
    "plan",
    "reconciler_permissions",
    "render_yaml",
    "unbindable",
]
