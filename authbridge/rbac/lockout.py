"""The lockout guard: never apply a plan that leaves nobody from the mapping as cluster-admin.

A *path to cluster-admin* is a subject of a ClusterRoleBinding whose roleRef is
one of :data:`CLUSTER_ADMIN_ROLES`, when the mapping can give that subject to
a token:

* a Group that a ``mapRoles``, ``mapUsers`` or ``mapGroups`` entry lists, or
  that one of its group templates can render to (each ``{{Variable}}`` stands
  for any non-empty text, ``{{AccountID}}`` for 12 digits);
* a User that a ``username`` (template) of those sections can render to, or
  the ARN of an IAM user or role of an account in ``mapAccounts``.

ServiceAccounts, RoleBindings (namespace-wide only) and subjects only
Kubernetes itself hands out (``system:masters`` …, unless the mapping maps
them) are not paths. Every ClusterRoleBinding counts, managed by authbridge or
not: pass them all in ``observed`` to let a hand-made binding keep the guard
quiet; with only the managed ones the guard is stricter, never weaker.

The state after the plan is computed with :func:`~authbridge.rbac.plan.plan`
and :func:`~authbridge.rbac.plan.apply_to`; when it has no path,
:func:`lockout_problem` says which entry would be the last one to go, or that
there was none to begin with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from authbridge.mapping import templates
from authbridge.mapping.model import Mapping
from authbridge.rbac.errors import LockoutRefused
from authbridge.rbac.model import SOURCE_ANNOTATION, KubeObject
from authbridge.rbac.plan import apply_to, plan

__all__ = [
    "CLUSTER_ADMIN_ROLES",
    "admin_paths",
    "check_lockout",
    "lockout_problem",
]

CLUSTER_ADMIN_ROLES: Final = frozenset({"cluster-admin", "authbridge:cluster-admin"})
_HINT: Final = "pass --allow-lockout"
_VARIABLE_PATTERNS: Final = {"AccountID": "[0-9]{12}"}
_MARK = re.compile("\0([A-Za-z]+)\0")
_ARN = re.compile(r"arn:[a-z0-9-]+:iam::([0-9]{12}):(?:user|role)/.+")


def lockout_problem(
    mapping: Mapping,
    desired: Sequence[KubeObject],
    observed: Sequence[KubeObject],
    *,
    prune: bool = True,
) -> str | None:
    """Why applying ``plan(desired, observed, prune=prune)`` would lock the mapping out, or None.

    ``prune`` defaults to True, the stricter answer; pass the value the apply uses.
    Raises :class:`~authbridge.rbac.errors.PlanConflict` as :func:`plan` does.
    """
    after = apply_to(observed, plan(desired, observed, prune=prune))
    if admin_paths(mapping, after):
        return None
    lost = sorted(admin_paths(mapping, observed), key=lambda path: _entry_order(path[0]))
    if lost:
        entries = ", ".join(_describe(obj, subject) for obj, subject in lost)
        one = len(lost) == 1
        it = "it" if one else "them"
        return (
            f"{entries} {'is the last path' if one else 'are the last paths'} to cluster-admin"
            f" for the identities in the mapping, and this plan removes {it}; keep {it}, bind"
            f" another group of the mapping to cluster-admin, or {_HINT}"
        )
    unmapped = [
        (obj, subject)
        for obj in after
        if _is_admin_binding(obj)
        for subject in _subjects(obj)
        if subject[0] in ("Group", "User")
    ]
    roles = " or ".join(sorted(CLUSTER_ADMIN_ROLES))
    if unmapped:
        entries = ", ".join(_describe(obj, f"{kind} {name}") for obj, (kind, name) in unmapped)
        one = len(unmapped) == 1
        return (
            f"no identity in the mapping is bound to {roles}: {entries}, but no mapRoles,"
            f" mapUsers or mapGroups entry gives {'that subject' if one else 'those subjects'};"
            f" map {'it' if one else 'one'}, or {_HINT}"
        )
    return (
        f"no identity in the mapping is bound to {roles}; add a bindings entry with"
        f" clusterRole: cluster-admin for a group the mapping gives, or {_HINT}"
    )


def check_lockout(
    mapping: Mapping,
    desired: Sequence[KubeObject],
    observed: Sequence[KubeObject],
    *,
    prune: bool,
    allow_lockout: bool,
) -> None:
    """Raise :class:`LockoutRefused` with :func:`lockout_problem`'s message unless allowed."""
    if allow_lockout:
        return
    problem = lockout_problem(mapping, desired, observed, prune=prune)
    if problem is not None:
        raise LockoutRefused(problem)


def admin_paths(mapping: Mapping, objects: Iterable[KubeObject]) -> list[tuple[KubeObject, str]]:
    """The paths to cluster-admin in ``objects``: (ClusterRoleBinding, ``"Group g"``) pairs."""
    groups, users = _producers(mapping)
    out: list[tuple[KubeObject, str]] = []
    for obj in objects:
        if not _is_admin_binding(obj):
            continue
        for kind, name in _subjects(obj):
            if kind == "Group" and any(p.fullmatch(name) for p in groups):
                out.append((obj, f"Group {name}"))
            elif kind == "User" and (
                any(p.fullmatch(name) for p in users) or _mapped_account_arn(mapping, name)
            ):
                out.append((obj, f"User {name}"))
    return out


def _is_admin_binding(obj: KubeObject) -> bool:
    if obj.ref.kind != "ClusterRoleBinding":
        return False
    role_ref = obj.manifest.get("roleRef") or {}
    return role_ref.get("kind") == "ClusterRole" and role_ref.get("name") in CLUSTER_ADMIN_ROLES


def _subjects(obj: KubeObject) -> list[tuple[str, str]]:
    return [
        (str(s.get("kind", "")), str(s.get("name", "")))
        for s in obj.manifest.get("subjects") or ()
        if s.get("apiGroup") in (None, "", "rbac.authorization.k8s.io")
    ]


def _describe(obj: KubeObject, shown: str) -> str:
    """``bindings[0] (Group authbridge:admins -> cluster-admin, ClusterRoleBinding x)``."""
    annotations = obj.manifest.get("metadata", {}).get("annotations") or {}
    source = annotations.get(SOURCE_ANNOTATION) if obj.managed else None
    role = (obj.manifest.get("roleRef") or {}).get("name")
    detail = f"{shown} -> {role}, {obj.ref}"
    return f"{source} ({detail})" if source else f"{obj.ref} ({shown} -> {role})"


def _entry_order(obj: KubeObject) -> tuple[list[str | int], str, str, str]:
    """Sort key: by source entry (``bindings[2]`` before ``bindings[10]``), then by ref."""
    source = (obj.manifest.get("metadata", {}).get("annotations") or {}).get(SOURCE_ANNOTATION)
    natural: list[str | int] = [
        int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(source or "~"))
    ]
    return (natural, obj.ref.kind, obj.ref.namespace or "", obj.ref.name)


def _producers(mapping: Mapping) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
    """Patterns for every group and every username the mapping can give."""
    groups: list[str] = []
    users: list[str] = []
    for rule in mapping.map_roles:
        users.append(rule.username)
        groups.extend(rule.groups)
    for user_rule in mapping.map_users:
        users.append(user_rule.username)
        groups.extend(user_rule.groups)
    for group_rule in mapping.map_groups:
        if group_rule.username is not None:
            users.append(group_rule.username)
        groups.extend(group_rule.groups)
    return [_template_pattern(t) for t in groups], [_template_pattern(t) for t in users]


def _template_pattern(template: str) -> re.Pattern[str]:
    """A regex for every rendering of ``template``: literal text, variables as wildcards."""
    marked = templates.render(template, {v: f"\0{v}\0" for v in templates.VARIABLES})
    parts = _MARK.split(marked)  # literal, variable, literal, variable, …, literal
    regex = "".join(
        re.escape(part) if i % 2 == 0 else _VARIABLE_PATTERNS.get(part, ".+")
        for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


def _mapped_account_arn(mapping: Mapping, username: str) -> bool:
    match = _ARN.fullmatch(username)
    return match is not None and match.group(1) in mapping.map_accounts
