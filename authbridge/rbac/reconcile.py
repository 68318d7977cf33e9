"""Reconcile a cluster with the mapping: plan against what is there, apply, and keep at it.

This module is the loop, not the cluster: it talks to the cluster only through
an :class:`Adapter` (``authbridge.kube.KubeAdapter`` in production, a fake API
server in tests), and imports neither the kubernetes client nor Flask.

* :func:`plan_cluster`: namespaces → desired objects → observed objects →
  :func:`~authbridge.rbac.plan.plan` (plus the orphans left alone without
  prune, the desired-state warnings and the lockout verdict);
* :func:`reconcile`: plan, refuse a lockout unless allowed, then execute the
  actions in plan order, reporting each; stops at the first API error. Every
  action is checked against the object as it was observed (update: PUT with its
  ``resourceVersion``; delete: a ``resourceVersion`` precondition), so a
  concurrent change is a 409, never overwritten. Whatever was done stays done
  and the next run re-observes and converges from there;
* :func:`watch`: :func:`reconcile` as a controller: at start, when the mapping
  file changes (the holder is polled every second) and every ``interval``
  seconds; after an API error it backs off (1 s, 2 s, 4 s … at most 60 s, plus
  up to 20 % jitter) and keeps going; a refusal (lockout, a name taken by an
  object authbridge does not own) waits for the next interval or mapping
  change. It never reconciles before a valid mapping was loaded (an empty
  mapping with prune would delete every managed object).

Execution of each action (``dry_run``: the server's ``dryRun=All`` on every write):

``create``   POST the desired object.
``update``   PUT the desired object (the observed one with the managed fields set)
             with the observed ``resourceVersion``.
``replace``  ``roleRef`` is immutable: DELETE (precondition: the observed
             ``resourceVersion``), then POST. In a dry run the POST meets the
             still existing object; its AlreadyExists means "would be created".
``delete``   DELETE with the observed ``resourceVersion`` as precondition; an object
             already gone counts as deleted.

Errors (the adapter raises the ``Kube*`` ones; all carry a message naming the
call and the object, and a hint saying what to do)::

    AuthbridgeError
    ├── ReconcileError                  the cluster cannot be reconciled now
    │   └── KubeApiError                an API call failed: .status .reason .verb .group
    │       │                           .resource .ref (None for lists)
    │       ├── KubeUnauthorized        401: the credentials were refused
    │       ├── KubeForbidden           403: the reconciler lacks a permission
    │       ├── KubeNotFound            404
    │       ├── KubeConflict            409: changed or created by someone else meanwhile
    │       ├── KubeInvalid             400/422: the server refused the object
    │       └── KubeUnavailable         unreachable, timeout, 5xx, 429, not a Kubernetes API server
    └── RbacError (authbridge.rbac.errors): PlanConflict, LockoutRefused, NameCollision
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from authbridge.errors import AuthbridgeError
from authbridge.mapping.model import Mapping
from authbridge.rbac.desired import desired_state
from authbridge.rbac.errors import LockoutRefused
from authbridge.rbac.lockout import lockout_problem
from authbridge.rbac.model import SOURCE_ANNOTATION, Action, KubeObject, ObjectRef
from authbridge.rbac.plan import orphans, plan

__all__ = [
    "Adapter",
    "KubeApiError",
    "KubeConflict",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnauthorized",
    "KubeUnavailable",
    "MappingSource",
    "Planned",
    "ReconcileError",
    "ReconcileResult",
    "backoff_delay",
    "describe_action",
    "describe_object",
    "done_line",
    "orphan_line",
    "plan_cluster",
    "reconcile",
    "watch",
]

MAX_BACKOFF: Final = 60.0  # seconds
JITTER: Final = 0.2  # up to +20 % on each back-off delay
POLL: Final = 1.0  # seconds between looks at the mapping holder


# -- errors -------------------------------------------------------------------------------------


class ReconcileError(AuthbridgeError):
    code = "ReconcileError"


class KubeApiError(ReconcileError):
    """A Kubernetes API call failed; ``str()`` names the call and object and says what to do."""

    code = "KubeApiError"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        verb: str = "",
        group: str = "",
        resource: str = "",
        ref: ObjectRef | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason
        self.verb = verb
        self.group = group
        self.resource = resource
        self.ref = ref

    def with_prefix(self, prefix: str) -> KubeApiError:
        """The same error (same class and fields), its message behind ``prefix``."""
        return type(self)(
            f"{prefix}{self.message}",
            status=self.status,
            reason=self.reason,
            verb=self.verb,
            group=self.group,
            resource=self.resource,
            ref=self.ref,
            hint=self.hint,
        )


class KubeUnauthorized(KubeApiError):
    code = "Unauthorized"


class KubeForbidden(KubeApiError):
    code = "Forbidden"


class KubeNotFound(KubeApiError):
    code = "NotFound"


class KubeConflict(KubeApiError):
    code = "Conflict"


class KubeInvalid(KubeApiError):
    code = "Invalid"


class KubeUnavailable(KubeApiError):
    code = "Unavailable"


# -- what the loop needs from the outside ---------------------------------------------------------


class Adapter(Protocol):
    """The cluster, as the reconciler sees it (``authbridge.kube.KubeAdapter`` implements it).

    Every method raises a :class:`KubeApiError` subclass on failure.
    """

    def list_namespaces(self) -> list[str]:
        """Every namespace's name."""
        ...

    def observed(self, desired: Sequence[KubeObject]) -> list[KubeObject]:
        """The managed objects, plus any object at a ``desired`` ref (managed or not)."""
        ...

    def create(self, obj: KubeObject, *, dry_run: bool = False) -> KubeObject: ...

    def replace(
        self, obj: KubeObject, resource_version: str | None, *, dry_run: bool = False
    ) -> KubeObject: ...

    def delete(
        self, ref: ObjectRef, *, resource_version: str | None = None, dry_run: bool = False
    ) -> None: ...


class MappingSource(Protocol):
    """What :func:`watch` reads the mapping from (``authbridge.mapping.holder.MappingHolder``)."""

    version: int
    ready: bool
    last_error: str | None

    def current(self) -> Mapping: ...


Report = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# -- plan against the cluster -------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A plan made against a cluster, and what it was made from."""

    namespaces: tuple[str, ...]
    desired: tuple[KubeObject, ...]
    observed: tuple[KubeObject, ...]
    actions: tuple[Action, ...]
    orphans: tuple[KubeObject, ...]  # managed, no longer wanted, kept (no prune)
    warnings: tuple[str, ...]  # e.g. a namespace in the mapping that does not exist
    lockout: str | None  # why applying would lock the mapping out; None when it would not
    prune: bool


def plan_cluster(adapter: Adapter, mapping: Mapping, *, prune: bool) -> Planned:
    """Observe the cluster and plan (read-only). Raises PlanConflict and KubeApiError.

    ``lockout`` is computed only when there is something to do: a plan that
    changes nothing cannot lock anybody out.
    """
    namespaces = adapter.list_namespaces()
    state = desired_state(mapping, namespaces)
    desired = list(state.objects)
    observed = adapter.observed(desired)
    actions = plan(desired, observed, prune=prune)
    kept = [] if prune else orphans(desired, observed)
    problem = lockout_problem(mapping, desired, observed, prune=prune) if actions else None
    return Planned(
        namespaces=tuple(namespaces),
        desired=tuple(desired),
        observed=tuple(observed),
        actions=tuple(actions),
        orphans=tuple(kept),
        warnings=tuple(state.warnings),
        lockout=problem,
        prune=prune,
    )


# -- apply --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileResult:
    planned: Planned
    done: tuple[Action, ...]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return bool(self.done)

    def summary(self) -> str:
        """One line: what was done (or would be, in a dry run)."""
        if not self.planned.actions:
            return f"no changes: the cluster matches the mapping ({_objects(self.planned)})"
        counts: dict[str, int] = {}
        for action in self.done:
            counts[action.op] = counts.get(action.op, 0) + 1
        words = {
            "create": "created",
            "update": "updated",
            "replace": "replaced",
            "delete": "deleted",
        }
        parts = ", ".join(f"{counts[op]} {words[op]}" for op in words if op in counts)
        n = len(self.done)
        head = f"{n} change{'' if n == 1 else 's'} ({parts})"
        if self.dry_run:
            return f"server dry run: {head} accepted by the API server; nothing was changed"
        return f"applied {head}"


def _objects(planned: Planned) -> str:
    n = len(planned.desired)
    return f"{n} object{'' if n == 1 else 's'}"


def reconcile(
    adapter: Adapter,
    mapping: Mapping,
    *,
    prune: bool = False,
    dry_run: bool = False,
    allow_lockout: bool = False,
    report: Report = _quiet,
    warn: Report | None = None,
) -> ReconcileResult:
    """Make the cluster match ``mapping`` (see the module docstring); report each action.

    Raises PlanConflict (nothing done), LockoutRefused (nothing done) and
    KubeApiError (the actions before it are done; its message says how many).
    ``warn`` gets the desired-state warnings (default: ``report``).
    """
    planned = plan_cluster(adapter, mapping, prune=prune)
    for warning in planned.warnings:
        (warn or report)(f"warning: {warning}")
    if planned.lockout is not None and not allow_lockout:
        raise LockoutRefused(planned.lockout)
    if planned.lockout is not None:
        report(f"warning: --allow-lockout given: {planned.lockout}")
    done: list[Action] = []
    total = len(planned.actions)
    for action in planned.actions:
        try:
            note = _execute(adapter, action, dry_run=dry_run)
        except KubeApiError as e:
            stopped = f"stopped after {len(done)} of {total} changes: " if total > 1 else ""
            raise e.with_prefix(stopped) from e
        done.append(action)
        report(done_line(action, dry_run=dry_run) + note)
    return ReconcileResult(planned, tuple(done), dry_run)


def _execute(adapter: Adapter, action: Action, *, dry_run: bool) -> str:
    """Carry out one action; returns a note for its report line ("" mostly)."""
    if action.op == "create":
        assert action.desired is not None  # noqa: S101 - plan() always sets it for create
        adapter.create(action.desired, dry_run=dry_run)
        return ""
    if action.op == "update":
        assert action.desired is not None  # noqa: S101 - plan() always sets it for update
        version = action.desired.resource_version or _version(action.observed)
        adapter.replace(action.desired, version, dry_run=dry_run)
        return ""
    if action.op == "replace":
        assert action.desired is not None  # noqa: S101 - plan() always sets it for replace
        note = _delete(adapter, action, dry_run=dry_run)
        fresh = replace(action.desired, resource_version=None)
        try:
            adapter.create(_without_server_fields(fresh), dry_run=dry_run)
        except KubeConflict as e:
            # In a dry run the delete did not happen, so the object is still there.
            if not (dry_run and e.reason == "AlreadyExists"):
                raise
        return note
    return _delete(adapter, action, dry_run=dry_run)


def _delete(adapter: Adapter, action: Action, *, dry_run: bool) -> str:
    try:
        adapter.delete(action.ref, resource_version=_version(action.observed), dry_run=dry_run)
    except KubeNotFound:
        return " (it was already gone)"
    return ""


def _version(obj: KubeObject | None) -> str | None:
    return None if obj is None else obj.resource_version


def _without_server_fields(obj: KubeObject) -> KubeObject:
    """``obj`` without what the server set on the object it replaces (uid, timestamps …)."""
    manifest = dict(obj.manifest)
    meta = dict(manifest.get("metadata") or {})
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        meta.pop(key, None)
    manifest["metadata"] = meta
    return KubeObject(obj.ref, manifest)


# -- how actions read ---------------------------------------------------------------------------

_SIGNS: Final = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
_DONE: Final = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
}


def describe_object(obj: KubeObject) -> str:
    """``bindings[0]: Group authbridge:admins -> ClusterRole cluster-admin``, or for a
    ServiceAccount ``serviceAccounts[0]: role arn:aws:iam::…:role/ci``."""
    manifest = obj.manifest
    meta = manifest.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    source = annotations.get(SOURCE_ANNOTATION)
    if "roleRef" in manifest:
        subjects = ", ".join(_subject(s) for s in manifest.get("subjects") or ()) or "no subjects"
        ref = manifest.get("roleRef") or {}
        what = f"{subjects} -> {ref.get('kind', '?')} {ref.get('name', '?')}"
    else:
        arns = sorted({str(v) for k, v in annotations.items() if k.endswith("/role-arn")})
        what = f"role {arns[0]}" if arns else obj.ref.kind
    return f"{source}: {what}" if source else what


def _subject(s: dict[str, Any]) -> str:
    kind, name = s.get("kind", "?"), s.get("name", "?")
    return f"{kind} {s['namespace']}/{name}" if s.get("namespace") else f"{kind} {name}"


def _changes(action: Action) -> str:
    return "; ".join(action.changes)


def describe_action(action: Action) -> str:
    """A plan line: ``+ ClusterRoleBinding x (bindings[0]: Group g -> ClusterRole c)``,
    ``~ RoleBinding dev/x: subjects: +Group a``, ``-/+ … (roleRef cannot change: delete and
    create)``, ``- RoleBinding dev/x: not in the mapping (was bindings[1])``."""
    sign = _SIGNS[action.op]
    if action.op == "create":
        assert action.desired is not None  # noqa: S101 - plan() always sets it for create
        return f"{sign} {action.ref} ({describe_object(action.desired)})"
    line = f"{sign} {action.ref}: {_changes(action)}"
    if action.op == "replace":
        line += " (roleRef cannot change: delete, then create)"
    return line


def done_line(action: Action, *, dry_run: bool = False) -> str:
    """An apply line: ``+ created ClusterRoleBinding x (…)``, ``~ updated …: …``, …"""
    sign, verb = _SIGNS[action.op], _DONE[action.op]
    if action.op == "create":
        assert action.desired is not None  # noqa: S101 - plan() always sets it for create
        line = f"{sign} {verb} {action.ref} ({describe_object(action.desired)})"
    else:
        line = f"{sign} {verb} {action.ref}: {_changes(action)}"
    return line + (" (server dry run)" if dry_run else "")


def orphan_line(obj: KubeObject) -> str:
    """A managed object the mapping no longer asks for, kept because prune is off."""
    annotations = (obj.manifest.get("metadata") or {}).get("annotations") or {}
    source = annotations.get(SOURCE_ANNOTATION)
    was = f" (was {source})" if source else ""
    return f"  {obj.ref}: not in the mapping{was}; would delete with --prune"


# -- watch --------------------------------------------------------------------------------------


def backoff_delay(failures: int, jitter: float) -> float:
    """Seconds to wait after ``failures`` (≥ 1) failed runs in a row; ``jitter`` in [0, 1)."""
    base = min(MAX_BACKOFF, 2.0 ** min(failures - 1, 16))
    return min(MAX_BACKOFF, base * (1.0 + JITTER * jitter))


@dataclass
class _WatchState:
    version: int | None = None  # mapping version last reconciled
    due: float = 0.0  # clock time of the next periodic run
    failures: int = 0  # API errors in a row
    in_sync: bool = False
    mapping_error: str | None = None
    waiting_reported: bool = False
    warnings: set[str] = field(default_factory=set)


def watch(
    adapter: Adapter,
    holder: MappingSource,
    *,
    stop: threading.Event,
    interval: float = 60.0,
    prune: bool = False,
    allow_lockout: bool = False,
    report: Report = _quiet,
    sleep: Callable[[float], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
    poll: float = POLL,
) -> None:
    """Reconcile until ``stop`` is set (see the module docstring).

    ``sleep`` (default: ``stop.wait``, which returns early when ``stop`` is set),
    ``clock`` and ``jitter`` are injectable for tests.
    """
    wait: Callable[[float], Any] = sleep if sleep is not None else stop.wait
    st = _WatchState(due=clock())
    while not stop.is_set():
        mapping = holder.current()
        if holder.last_error != st.mapping_error:
            st.mapping_error = holder.last_error
            if holder.last_error:
                report(f"mapping: {holder.last_error}")
        if not holder.ready:
            if not st.waiting_reported:
                report("waiting for a valid mapping file; nothing is reconciled until then")
                st.waiting_reported = True
            wait(poll)
            continue
        changed = holder.version != st.version
        if changed or clock() >= st.due:
            if changed and st.version is not None:
                report(f"mapping changed (version {holder.version}); reconciling")
            st.version = holder.version
            _watch_once(adapter, mapping, st, prune, allow_lockout, report, clock, jitter, interval)
        if stop.is_set():
            break
        wait(max(0.0, min(poll, st.due - clock())))


def _watch_once(
    adapter: Adapter,
    mapping: Mapping,
    st: _WatchState,
    prune: bool,
    allow_lockout: bool,
    report: Report,
    clock: Callable[[], float],
    jitter: Callable[[], float],
    interval: float,
) -> None:
    warnings: set[str] = set()

    def warn(line: str) -> None:
        warnings.add(line)
        if line not in st.warnings:  # each warning once while it lasts
            report(line)

    try:
        result = reconcile(
            adapter,
            mapping,
            prune=prune,
            allow_lockout=allow_lockout,
            report=report,
            warn=warn,
        )
    except KubeApiError as e:
        st.failures += 1
        delay = backoff_delay(st.failures, jitter())
        st.in_sync = False
        report(f"error: {e} (failure {st.failures} in a row; retrying in {delay:.1f}s)")
        st.due = clock() + delay
        return
    except AuthbridgeError as e:
        # A refusal (lockout, a name taken by an unmanaged object): retrying sooner
        # cannot help; the next interval or a mapping change may.
        st.failures = 0
        st.in_sync = False
        report(f"refused: {e} (retrying in {interval:g}s or when the mapping changes)")
        st.due = clock() + interval
        return
    except Exception as e:  # a controller keeps running; the line says what broke
        st.failures += 1
        delay = backoff_delay(st.failures, jitter())
        st.in_sync = False
        report(
            f"error: internal error ({type(e).__name__}: {e}) (failure {st.failures} in a row;"
            f" retrying in {delay:.1f}s)"
        )
        st.due = clock() + delay
        return
    st.warnings = warnings
    st.failures = 0
    st.due = clock() + interval
    if result.changed or not st.in_sync:
        report(result.summary())
    st.in_sync = True
