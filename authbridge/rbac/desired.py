"""Desired state: the RBAC objects a mapping asks for in a cluster with given namespaces.

* Each ``bindings`` entry without ``namespaces`` → one ClusterRoleBinding; with
  ``namespaces`` → one RoleBinding (roleRef: the ClusterRole) in each existing
  namespace that an item names exactly or matches as a pattern. Patterns use
  ``*`` only (any run of characters, possibly empty); nothing else is special.
* Each ``serviceAccounts`` entry → a ServiceAccount annotated with its role ARN
  (:data:`ROLE_ARN_ANNOTATION`, and :data:`EKS_ROLE_ARN_ANNOTATION` so workloads
  written for EKS keep working), and, when it has a ``clusterRole``, a
  RoleBinding of that role to it in its own namespace, or in each namespace
  its ``namespaces`` resolves to.
* **One object per entry, not merged by role.** Two entries binding the same
  ClusterRole give two bindings, so each object's :data:`SOURCE_ANNOTATION`
  names exactly the entry it came from, and removing an entry removes exactly
  the objects that only it asked for. Two entries that ask for the very same
  object (same kind, role, subject and namespace: e.g. ``namespaces: [dev,
  "d*"]`` and a second entry for ``dev``) give one object whose source
  annotation lists both (``bindings[1], bindings[3]``).
* Objects go only into namespaces that exist: an exact namespace that does not
  exist, or a pattern that matches none, is a warning, not an object (it appears
  on the first run after the namespace is created). Pass ``namespaces=None``
  when the cluster is not known (``rbac render`` offline): exact names are then
  taken as existing and patterns are left out, each with a warning.
* Every object carries ``app.kubernetes.io/managed-by: authbridge``.

The order is the mapping's: bindings entries first (namespaces sorted within an
entry), then each ServiceAccount followed by its RoleBindings. Names: see
:mod:`authbridge.rbac.names`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

from authbridge.mapping.model import Binding, Mapping, ServiceAccountRule
from authbridge.rbac.errors import NameCollision
from authbridge.rbac.model import (
    EKS_ROLE_ARN_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    ROLE_ARN_ANNOTATION,
    SOURCE_ANNOTATION,
    Kind,
    KubeObject,
    ObjectRef,
)
from authbridge.rbac.names import binding_name

__all__ = [
    "RBAC_API_GROUP",
    "RBAC_API_VERSION",
    "DesiredState",
    "desired_objects",
    "desired_state",
    "matches",
]

RBAC_API_GROUP: Final = "rbac.authorization.k8s.io"
RBAC_API_VERSION: Final = f"{RBAC_API_GROUP}/v1"
SOURCE_SEPARATOR: Final = ", "


@dataclass(frozen=True)
class DesiredState:
    """The objects a mapping asks for, and what could not be placed (and why)."""

    objects: tuple[KubeObject, ...]
    warnings: tuple[str, ...] = ()


def desired_objects(mapping: Mapping, namespaces: Collection[str] | None) -> list[KubeObject]:
    """The objects of :func:`desired_state`, in its order."""
    return list(desired_state(mapping, namespaces).objects)


def desired_state(mapping: Mapping, namespaces: Collection[str] | None) -> DesiredState:
    """What ``mapping`` asks for in a cluster whose namespaces are ``namespaces``.

    ``None`` means the namespaces are unknown (see the module docstring).
    """
    builder = _Builder(namespaces)
    for i, binding in enumerate(mapping.bindings):
        builder.binding(binding.source or f"bindings[{i}]", binding)
    for i, sa in enumerate(mapping.service_accounts):
        builder.service_account(f"serviceAccounts[{i}]", sa)
    return DesiredState(tuple(builder.objects.values()), tuple(builder.warnings))


def matches(pattern: str, namespace: str) -> bool:
    """Whether ``namespace`` is ``pattern``, where ``*`` stands for any run of characters."""
    return _pattern(pattern).fullmatch(namespace) is not None


def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _metadata(name: str, source: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    meta["annotations"] = {SOURCE_ANNOTATION: source}
    return meta


def _subject(kind: str, name: str, namespace: str | None = None) -> dict[str, str]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace or ""}
    return {"kind": kind, "apiGroup": RBAC_API_GROUP, "name": name}


class _Builder:
    def __init__(self, namespaces: Collection[str] | None) -> None:
        self.namespaces = None if namespaces is None else sorted(set(namespaces))
        self.objects: dict[ObjectRef, KubeObject] = {}
        self.warnings: list[str] = []

    def add(self, obj: KubeObject) -> None:
        first = self.objects.get(obj.ref)
        if first is None:
            self.objects[obj.ref] = obj
            return
        mine = {k: v for k, v in obj.manifest.items() if k != "metadata"}
        theirs = {k: v for k, v in first.manifest.items() if k != "metadata"}
        first_source = first.manifest["metadata"]["annotations"][SOURCE_ANNOTATION]
        source = obj.manifest["metadata"]["annotations"][SOURCE_ANNOTATION]
        if mine != theirs:  # pragma: no cover - needs a sha256 prefix collision
            raise NameCollision(
                f"{source} and {first_source} both give {obj.ref} with different contents",
                hint="change one of the two entries (e.g. its clusterRole spelling)",
            )
        if source not in first_source.split(SOURCE_SEPARATOR):
            first.manifest["metadata"]["annotations"][SOURCE_ANNOTATION] = (
                first_source + SOURCE_SEPARATOR + source
            )

    def exists(self, where: str, namespace: str, what: str) -> bool:
        if self.namespaces is None or namespace in self.namespaces:
            return True
        self.warnings.append(
            f"{where}: namespace {namespace} does not exist; {what} is made once it does"
        )
        return False

    def resolve(self, where: str, items: Iterable[str], what: str) -> list[str]:
        """The existing namespaces that ``items`` (names or ``*`` patterns) name, sorted."""
        found: set[str] = set()
        for j, item in enumerate(items):
            item_where = f"{where}.namespaces[{j}]"
            if "*" not in item:
                if self.exists(item_where, item, what):
                    found.add(item)
                continue
            if self.namespaces is None:
                self.warnings.append(
                    f"{item_where}: the pattern {item} needs the cluster's namespaces to"
                    " resolve; it is left out"
                )
                continue
            hits = [ns for ns in self.namespaces if matches(item, ns)]
            if not hits:
                self.warnings.append(f"{item_where}: the pattern {item} matches no namespace")
            found.update(hits)
        return sorted(found)

    def role_binding(
        self,
        source: str,
        namespace: str | None,
        cluster_role: str,
        subject: dict[str, str],
    ) -> KubeObject:
        kind: Kind = "ClusterRoleBinding" if namespace is None else "RoleBinding"
        subject_name = subject["name"]
        if subject["kind"] == "ServiceAccount":
            subject_name = f"{subject['namespace']}/{subject['name']}"
        name = binding_name(kind, cluster_role, subject["kind"], subject_name)
        manifest = {
            "apiVersion": RBAC_API_VERSION,
            "kind": kind,
            "metadata": _metadata(name, source, namespace),
            "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": cluster_role},
            "subjects": [subject],
        }
        return KubeObject(ObjectRef(kind, name, namespace), manifest)

    def binding(self, where: str, binding: Binding) -> None:
        # The parser guarantees exactly one of group and user.
        if binding.group is not None:
            subject = _subject("Group", binding.group)
        else:
            subject = _subject("User", binding.user or "")
        if not binding.namespaces:
            self.add(self.role_binding(where, None, binding.cluster_role, subject))
            return
        what = f"the RoleBinding to {binding.cluster_role}"
        for namespace in self.resolve(where, binding.namespaces, what):
            self.add(self.role_binding(where, namespace, binding.cluster_role, subject))

    def service_account(self, where: str, sa: ServiceAccountRule) -> None:
        ref = ObjectRef("ServiceAccount", sa.name, sa.namespace)
        own_binding = sa.cluster_role is not None and not sa.namespaces
        what = f"{ref}" + (f" with its RoleBinding to {sa.cluster_role}" if own_binding else "")
        if self.exists(f"{where}.namespace", sa.namespace, what):
            meta = _metadata(sa.name, where, sa.namespace)
            meta["annotations"][ROLE_ARN_ANNOTATION] = sa.rolearn
            meta["annotations"][EKS_ROLE_ARN_ANNOTATION] = sa.rolearn
            manifest = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
            self.add(KubeObject(ref, manifest))
            targets = [sa.namespace] if own_binding else []
        else:
            targets = []
        if sa.cluster_role is None:
            return
        if sa.namespaces:
            what = f"the RoleBinding of {sa.namespace}/{sa.name} to {sa.cluster_role}"
            targets = self.resolve(where, sa.namespaces, what)
        subject = _subject("ServiceAccount", sa.name, sa.namespace)
        for namespace in targets:
            self.add(self.role_binding(where, namespace, sa.cluster_role, subject))
