"""The ClusterRoles authbridge ships (``rbac/access-policies.yaml``) and the RBAC it needs
itself (``rbac/authbridge-rbac.yaml``), read back for checks.

``reconciler_permissions()`` is the least-privilege contract of the kube
adapter: every API call it makes must be one of these (apiGroup, resource,
verb) triples. ``bindable_cluster_roles()`` is what the reconciler may bind
(Kubernetes' escalation check needs ``bind`` on a ClusterRole the reconciler
does not hold), and :func:`unbindable` says which mapping entries name others.

The files live in the repository's ``rbac/`` directory; the functions take a
path or text for other copies.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, Final

import yaml

from authbridge.iam.access import POLICY_CLUSTER_ROLES
from authbridge.mapping.model import Mapping
from authbridge.rbac.errors import RbacError

__all__ = [
    "ACCESS_POLICIES",
    "ACCESS_POLICIES_FILE",
    "BUILTIN_ROLES",
    "RBAC_DIR",
    "RECONCILER_RBAC_FILE",
    "RECONCILER_ROLE",
    "Permission",
    "bindable_cluster_roles",
    "cluster_role_rules",
    "parse_permissions",
    "reconciler_permissions",
    "unbindable",
]

RBAC_DIR: Final = Path(__file__).resolve().parents[2] / "rbac"
ACCESS_POLICIES_FILE: Final = RBAC_DIR / "access-policies.yaml"
RECONCILER_RBAC_FILE: Final = RBAC_DIR / "authbridge-rbac.yaml"
RECONCILER_ROLE: Final = "authbridge:reconciler"
# EKS access policy -> authbridge ClusterRole (rbac/access-policies.yaml); access
# entries name the same policies.
ACCESS_POLICIES: Final = POLICY_CLUSTER_ROLES
BUILTIN_ROLES: Final = ("cluster-admin", "admin", "edit", "view")

Permission = tuple[str, str, str]  # apiGroup ("" for the core group), resource, verb


def cluster_role_rules(text: str, name: str) -> list[dict[str, Any]]:
    """The ``rules`` of the ClusterRole ``name`` in the YAML documents ``text``."""
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "ClusterRole":
            if (doc.get("metadata") or {}).get("name") == name:
                return list(doc.get("rules") or [])
    raise RbacError(f"no ClusterRole {name} in the given YAML")


def parse_permissions(text: str, role: str = RECONCILER_ROLE) -> set[Permission]:
    """Every (apiGroup, resource, verb) that ClusterRole ``role`` in ``text`` grants.

    Rules restricted by ``resourceNames`` count too (``clusterroles``/``bind``).
    """
    return {
        (group, resource, verb)
        for rule in cluster_role_rules(text, role)
        for group in rule.get("apiGroups") or ()
        for resource in rule.get("resources") or ()
        for verb in rule.get("verbs") or ()
    }


def reconciler_permissions(path: Path = RECONCILER_RBAC_FILE) -> set[Permission]:
    """:func:`parse_permissions` of ``rbac/authbridge-rbac.yaml``."""
    return parse_permissions(path.read_text(encoding="utf-8"))


def bindable_cluster_roles(path: Path = RECONCILER_RBAC_FILE) -> frozenset[str]:
    """The ClusterRoles the reconciler may bind (``*`` if a bind rule names none)."""
    names: set[str] = set()
    for rule in cluster_role_rules(path.read_text(encoding="utf-8"), RECONCILER_ROLE):
        if "bind" in (rule.get("verbs") or ()) and "clusterroles" in (rule.get("resources") or ()):
            names.update(rule.get("resourceNames") or ["*"])
    return frozenset(names)


def unbindable(mapping: Mapping, bindable: Collection[str]) -> list[str]:
    """One warning per mapping entry whose ClusterRole the reconciler may not bind."""
    if "*" in bindable:
        return []
    entries = [(f"bindings[{i}]", b.cluster_role) for i, b in enumerate(mapping.bindings)]
    entries += [
        (f"serviceAccounts[{i}]", sa.cluster_role)
        for i, sa in enumerate(mapping.service_accounts)
        if sa.cluster_role is not None
    ]
    return [
        f"{where}.clusterRole: the reconciler may not bind {role}; add it to the resourceNames"
        f" of the bind rule of ClusterRole {RECONCILER_ROLE} (rbac/authbridge-rbac.yaml)"
        for where, role in entries
        if role not in bindable
    ]
