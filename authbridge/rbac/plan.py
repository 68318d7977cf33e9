"""``plan(desired, observed)``: the actions that make a cluster match the mapping (pure).

Compared fields (everything else on an observed object is left alone):

* the annotations authbridge writes (:data:`MANAGED_ANNOTATIONS`): the source
  entry, and on ServiceAccounts the two role-ARN annotations;
* ``roleRef`` and ``subjects`` of bindings (subjects as a set: order does not
  matter; a missing ``apiGroup`` is the one Kubernetes defaults to).

Ownership is the label ``app.kubernetes.io/managed-by: authbridge`` (so it is
never a difference): an observed object without it is not authbridge's. A
desired object whose name is taken by such an object is a :class:`PlanConflict`
(every such ref, at once): authbridge never updates or deletes it. Objects with
the label that the mapping no longer asks for are deleted only with ``prune``;
:func:`orphans` lists them otherwise ("would delete with --prune").

Actions:

``create``
    ``desired`` is the new object.
``update``
    in place (PUT): ``desired`` is the observed manifest with the managed fields
    set (labels and annotations others added are kept) and the observed
    ``resource_version``, so the adapter can send it as is, and a concurrent
    change fails with 409 instead of being overwritten.
``replace``
    ``roleRef`` is immutable, so a changed one means delete ``observed`` then
    create ``desired``. Binding names contain the ClusterRole, so a mapping
    entry that changes its ``clusterRole`` gives a new binding (create) and an
    orphan (delete with prune); replace is for an object at authbridge's name
    with another roleRef (e.g. a hand-made binding labelled to hand it over).
``delete``
    ``observed`` is removed (managed objects only, prune only).

Order = the order to execute them in: creates, updates and replaces of
ServiceAccounts, then of bindings (ClusterRoleBindings, then RoleBindings), so
new access exists before old access goes; then deletes of bindings, then of
ServiceAccounts. Within a step: by kind, namespace, name. Each action's
``changes`` reads like ``subjects: +Group authbridge:devs, -User bob`` or
``roleRef: ClusterRole edit -> ClusterRole view``.

:func:`apply_to` applies actions to a list of objects the way the API server
would, so tests (and the lockout guard) can check the state after a plan; a
second plan on that state is empty.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, Final

from authbridge.rbac.errors import PlanConflict, RbacError
from authbridge.rbac.model import (
    EKS_ROLE_ARN_ANNOTATION,
    ROLE_ARN_ANNOTATION,
    SOURCE_ANNOTATION,
    Action,
    KubeObject,
    ObjectRef,
)

__all__ = [
    "MANAGED_ANNOTATIONS",
    "apply_to",
    "describe_role_ref",
    "describe_subject",
    "orphans",
    "overlay",
    "plan",
]

MANAGED_ANNOTATIONS: Final = (SOURCE_ANNOTATION, ROLE_ARN_ANNOTATION, EKS_ROLE_ARN_ANNOTATION)
_RBAC_GROUP: Final = "rbac.authorization.k8s.io"
_KIND_RANK: Final = {"ClusterRoleBinding": 0, "RoleBinding": 1, "ServiceAccount": 2}

Subject = tuple[str, str, str, str]  # kind, apiGroup, name, namespace ("" when none)
RoleRef = tuple[str, str, str]  # apiGroup, kind, name


def plan(
    desired: Sequence[KubeObject], observed: Sequence[KubeObject], *, prune: bool
) -> list[Action]:
    """The actions turning ``observed`` into ``desired``; [] when they already match.

    Raises :class:`PlanConflict` when a desired name is taken by an unmanaged object.
    """
    wanted = _by_ref(desired, "desired")
    seen = {o.ref: o for o in observed}
    conflicts = [ref for ref in wanted if ref in seen and not seen[ref].managed]
    if conflicts:
        raise PlanConflict(conflicts)
    actions: list[Action] = []
    for ref, want in wanted.items():
        have = seen.get(ref)
        if have is None:
            actions.append(Action("create", ref, desired=want, changes=_diff({}, want.manifest)))
            continue
        changes = _diff(have.manifest, want.manifest)
        if not changes:
            continue
        if _role_ref(have.manifest) != _role_ref(want.manifest):
            actions.append(Action("replace", ref, desired=want, observed=have, changes=changes))
        else:
            merged = KubeObject(
                ref, overlay(have.manifest, want.manifest), resource_version=have.resource_version
            )
            actions.append(Action("update", ref, desired=merged, observed=have, changes=changes))
    if prune:
        for gone in orphans(desired, observed):
            actions.append(Action("delete", gone.ref, observed=gone, changes=(_why_gone(gone),)))
    return sorted(actions, key=_order)


def orphans(desired: Iterable[KubeObject], observed: Iterable[KubeObject]) -> list[KubeObject]:
    """Observed objects managed by authbridge that ``desired`` no longer has, in ref order."""
    wanted = {d.ref for d in desired}
    gone = [o for o in observed if o.managed and o.ref not in wanted]
    return sorted(gone, key=lambda o: _ref_key(o.ref))


def apply_to(observed: Sequence[KubeObject], actions: Iterable[Action]) -> list[KubeObject]:
    """``observed`` after ``actions``, as the API server would leave it (pure).

    Kept objects stay in place, created ones are appended; every object the
    actions wrote has ``resource_version`` None (the server picks it). Raises RbacError
    where the server would refuse: create of an existing ref, or update,
    replace or delete of a missing one.
    """
    state = {o.ref: o for o in observed}
    for action in actions:
        present = action.ref in state
        if present == (action.op == "create"):
            what = "already exists" if present else "does not exist"
            raise RbacError(f"cannot {action.op} {action.ref}: it {what}")
        if action.op == "delete":
            del state[action.ref]
            continue
        if action.desired is None:
            raise RbacError(f"cannot {action.op} {action.ref}: the action has no desired object")
        state[action.ref] = KubeObject(action.ref, copy.deepcopy(action.desired.manifest))
    return list(state.values())


def overlay(observed: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """``observed`` with the fields authbridge manages taken from ``desired`` (copies)."""
    out = copy.deepcopy(observed)
    meta = out.setdefault("metadata", {})
    want_meta = desired.get("metadata", {})
    labels = dict(meta.get("labels") or {})
    labels.update(want_meta.get("labels") or {})
    meta["labels"] = labels
    want_annotations = want_meta.get("annotations") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in MANAGED_ANNOTATIONS or k in want_annotations
    }
    annotations.update(want_annotations)
    meta["annotations"] = annotations
    for key, value in desired.items():
        if key not in ("apiVersion", "kind", "metadata"):
            out[key] = copy.deepcopy(value)
    return out


def describe_subject(subject: Subject) -> str:
    """``Group authbridge:devs``, ``User bob``, ``ServiceAccount ci/deployer``."""
    kind, _, name, namespace = subject
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def describe_role_ref(role_ref: RoleRef | None) -> str:
    """``ClusterRole edit`` (``none`` when missing)."""
    return "none" if role_ref is None else f"{role_ref[1]} {role_ref[2]}"


# -- comparison --------------------------------------------------------------------------


def _by_ref(objects: Sequence[KubeObject], what: str) -> dict[ObjectRef, KubeObject]:
    out: dict[ObjectRef, KubeObject] = {}
    for obj in objects:
        if obj.ref in out:
            raise RbacError(f"{what} objects name {obj.ref} twice")
        out[obj.ref] = obj
    return out


def _subjects(manifest: dict[str, Any]) -> set[Subject]:
    out: set[Subject] = set()
    for s in manifest.get("subjects") or ():
        kind = str(s.get("kind", ""))
        default_group = "" if kind == "ServiceAccount" else _RBAC_GROUP
        out.add(
            (
                kind,
                str(s.get("apiGroup") or default_group),
                str(s.get("name", "")),
                str(s.get("namespace") or ""),
            )
        )
    return out


def _role_ref(manifest: dict[str, Any]) -> RoleRef | None:
    ref = manifest.get("roleRef")
    if not ref:
        return None
    return (str(ref.get("apiGroup", "")), str(ref.get("kind", "")), str(ref.get("name", "")))


def _managed_annotations(manifest: dict[str, Any]) -> dict[str, str]:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return {k: str(annotations[k]) for k in MANAGED_ANNOTATIONS if k in annotations}


def _diff(have: dict[str, Any], want: dict[str, Any]) -> tuple[str, ...]:
    """What changes from ``have`` to ``want`` in the managed fields, one string per field."""
    changes: list[str] = []
    old, new = _managed_annotations(have), _managed_annotations(want)
    items = [
        f"{k}: {old[k]} -> {new[k]}" if k in old else f"+{k}: {new[k]}"
        for k in new
        if old.get(k) != new[k]
    ]
    items += [f"-{k}" for k in old if k not in new]
    if items:
        changes.append("annotations: " + ", ".join(items))
    if "roleRef" in want or "roleRef" in have:
        old_ref, new_ref = _role_ref(have), _role_ref(want)
        if old_ref != new_ref:
            shown = describe_role_ref(new_ref)
            if have:
                shown = f"{describe_role_ref(old_ref)} -> {shown}"
            changes.append(f"roleRef: {shown}")
    old_subjects, new_subjects = _subjects(have), _subjects(want)
    added = [f"+{describe_subject(s)}" for s in sorted(new_subjects - old_subjects)]
    removed = [f"-{describe_subject(s)}" for s in sorted(old_subjects - new_subjects)]
    if added or removed:
        changes.append("subjects: " + ", ".join(added + removed))
    return tuple(changes)


def _why_gone(obj: KubeObject) -> str:
    source = _managed_annotations(obj.manifest).get(SOURCE_ANNOTATION)
    return "not in the mapping" + (f" (was {source})" if source else "")


def _ref_key(ref: ObjectRef) -> tuple[int, str, str]:
    return (_KIND_RANK.get(ref.kind, 9), ref.namespace or "", ref.name)


def _order(action: Action) -> tuple[int, tuple[int, str, str]]:
    is_sa = action.ref.kind == "ServiceAccount"
    if action.op == "delete":
        step = 3 if is_sa else 2
    else:
        step = 0 if is_sa else 1
    return (step, _ref_key(action.ref))
