"""The kube adapter: the only module that imports the kubernetes client.

:class:`KubeAdapter` implements :class:`authbridge.rbac.reconcile.Adapter` with
the official ``kubernetes`` client: it lists namespaces, observes the objects
authbridge manages, and creates, replaces and deletes them. It translates and
nothing more; what to do is decided by :mod:`authbridge.rbac`.

REST calls it makes (the verbs ``rbac/authbridge-rbac.yaml`` must grant)::

    list    namespaces                                     (core)
    list    serviceaccounts, all namespaces, labelSelector (core)
    get     serviceaccounts                                (core)       desired names not listed
    create, update, delete  serviceaccounts                (core)
    list    clusterrolebindings, labelSelector             (rbac.authorization.k8s.io)
    list    rolebindings, all namespaces, labelSelector    (rbac.authorization.k8s.io)
    get, create, update, delete  clusterrolebindings, rolebindings

``authbridge access explain`` against a live cluster (:meth:`KubeAdapter.rbac_objects`)
reads, as whoever runs it (not the reconciler; :data:`EXPLAIN_VERBS`)::

    list    clusterroles, roles, clusterrolebindings, rolebindings   (rbac.authorization.k8s.io)

:class:`SecretSlot` (the first administrator's credential, authbridge.first_admin)
makes two more, on one Secret only (``resourceNames`` in deploy/bootstrap-admin.yaml)::

    get, update  secrets/<name> in the pod's namespace            (core)

Creating or updating a binding also needs ``bind`` on the ClusterRole it
references (the API server's escalation check), unless the caller holds the
role's permissions itself.

Observed objects are the server's JSON (``_preload_content=False``: no model
round trip that could drop fields) with ``kind``/``apiVersion`` filled in
(list items lack them), ``metadata.managedFields`` dropped, and
``metadata.resourceVersion`` moved to :attr:`KubeObject.resource_version`.
Everything else is kept, so an update (a PUT of the whole object) keeps the
fields, labels and annotations others set; the planner compares only the
fields authbridge manages.

Every call has a timeout (5 s to connect, 30 s to read), and every failure
becomes a :class:`~authbridge.rbac.reconcile.KubeApiError` subclass (raised
``from`` the client's exception) whose message names the call and the object
and says what to do. A 404 that no kube-apiserver gives (on a list, or
without a ``kind: Status`` body) is checked with discovery (GET /api): a
server that does not answer it like one is "not a Kubernetes API server"
(:class:`~authbridge.rbac.reconcile.KubeUnavailable`, reason NotKubernetes,
naming the kubeconfig's cluster.server), never "deleted meanwhile"; a
kube-apiserver that answers it but not the list "does not serve" that
resource (:class:`~authbridge.rbac.reconcile.KubeNotFound`, reason NotServed).
Writes pass ``dryRun=All`` when asked (``--dry-run=server``): the server checks
everything and stores nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import urllib3
import yaml
from kubernetes import client as _client
from kubernetes import config as _config
from kubernetes.client.exceptions import ApiException

from authbridge.errors import ConfigError
from authbridge.rbac.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, Kind, KubeObject, ObjectRef
from authbridge.rbac.reconcile import (
    KubeApiError,
    KubeConflict,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnauthorized,
    KubeUnavailable,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXPLAIN_VERBS",
    "KubeAdapter",
    "MANAGED_SELECTOR",
    "SECRET_VERBS",
    "SecretSlot",
    "VERBS",
]

DEFAULT_TIMEOUT: Final = (5.0, 30.0)  # (connect, read) seconds, on every call
PAGE_SIZE: Final = 500
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
DRY_RUN_ALL: Final = "All"
RBAC_GROUP: Final = "rbac.authorization.k8s.io"
IN_CLUSTER_ENV: Final = "KUBERNETES_SERVICE_HOST"
KUBECONFIG_ENV: Final = "KUBECONFIG"

# The client is partly typed (pydantic models, untyped config loaders): use it as Any.
client: Any = _client
config: Any = _config

_PERMISSION_HINT: Final = (
    "apply rbac/authbridge-rbac.yaml (the reconciler's ClusterRole and binding),"
    " or run as a user who may"
)
_AGAIN_HINT: Final = "run apply again: it re-reads the cluster and converges"
_NOT_KUBERNETES_HINT: Final = (
    "check the kubeconfig's cluster.server (`authbridge kubeconfig --server` writes it),"
    " or pass --kubeconfig/--context naming the cluster's kube-apiserver"
)
# How the API server words a refused escalation (pkg/registry/rbac/validation).
_ESCALATION: Final = "attempting to grant RBAC permissions not currently held"
_MAX_SERVER_MESSAGE: Final = 400


@dataclass(frozen=True)
class _Kind:
    """How one kind maps onto the client: API group, plural, and the method names."""

    kind: Kind
    group: str  # "" = core
    plural: str
    namespaced: bool
    api: str  # "core" or "rbac"
    list_all: str
    read: str
    create: str
    replace: str
    delete: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


_KINDS: Final[dict[str, _Kind]] = {
    k.kind: k
    for k in (
        _Kind(
            "ClusterRoleBinding",
            RBAC_GROUP,
            "clusterrolebindings",
            False,
            "rbac",
            list_all="list_cluster_role_binding",
            read="read_cluster_role_binding",
            create="create_cluster_role_binding",
            replace="replace_cluster_role_binding",
            delete="delete_cluster_role_binding",
        ),
        _Kind(
            "RoleBinding",
            RBAC_GROUP,
            "rolebindings",
            True,
            "rbac",
            list_all="list_role_binding_for_all_namespaces",
            read="read_namespaced_role_binding",
            create="create_namespaced_role_binding",
            replace="replace_namespaced_role_binding",
            delete="delete_namespaced_role_binding",
        ),
        _Kind(
            "ServiceAccount",
            "",
            "serviceaccounts",
            True,
            "core",
            list_all="list_service_account_for_all_namespaces",
            read="read_namespaced_service_account",
            create="create_namespaced_service_account",
            replace="replace_namespaced_service_account",
            delete="delete_namespaced_service_account",
        ),
    )
}

# Every (apiGroup, resource, verb) a method of KubeAdapter may send; the
# least-privilege test holds this equal to what the fake API server records.
VERBS: Final = frozenset(
    {("", "namespaces", "list")}
    | {(k.group, k.plural, v) for k in _KINDS.values() for v in ("list", "get")}
    | {(k.group, k.plural, v) for k in _KINDS.values() for v in ("create", "update", "delete")}
)


# What KubeAdapter.rbac_objects lists for `authbridge access explain`: read-only and
# not the reconciler's (rbac/authbridge-rbac.yaml grants it none of the role lists);
# whoever explains against a live cluster needs these.
EXPLAIN_VERBS: Final = frozenset(
    (RBAC_GROUP, plural, "list")
    for plural in ("clusterroles", "roles", "clusterrolebindings", "rolebindings")
)
_RBAC_LISTS: Final = (
    ("ClusterRole", "clusterroles", "list_cluster_role", False),
    ("Role", "roles", "list_role_for_all_namespaces", True),
    ("ClusterRoleBinding", "clusterrolebindings", "list_cluster_role_binding", False),
    ("RoleBinding", "rolebindings", "list_role_binding_for_all_namespaces", True),
)


# What SecretSlot sends, and all the server's Role grants (on one resourceName).
SECRET_VERBS: Final = frozenset({("", "secrets", "get"), ("", "secrets", "update")})
# Where the kubelet puts the pod's namespace, beside its ServiceAccount token.
NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class KubeAdapter:
    """The cluster, through the kubernetes client (see the module docstring)."""

    def __init__(
        self,
        api_client: Any,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        source: str = "",
    ) -> None:
        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._rbac = client.RbacAuthorizationV1Api(api_client)
        self._timeout = timeout
        self.server = str(api_client.configuration.host)
        self.source = source or self.server  # for messages: where the config came from

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, context: str | None = None
    ) -> KubeAdapter:
        """From a kubeconfig file (``None``: ``$KUBECONFIG``, else ``~/.kube/config``)."""
        cfg = _configuration()
        shown = str(path) if path is not None else "the default kubeconfig"
        # KUBECONFIG may list several files (os.pathsep-separated); the client merges them.
        if path is not None and not any(Path(p).is_file() for p in str(path).split(os.pathsep)):
            raise ConfigError(
                f"kubeconfig {path} does not exist or is not a file",
                hint="pass --kubeconfig FILE (or set KUBECONFIG) naming an existing kubeconfig",
            )
        try:
            config.load_kube_config(
                config_file=str(path) if path is not None else None,
                context=context,
                client_configuration=cfg,
                # Never write refreshed credentials back into the person's kubeconfig.
                persist_config=False,
            )
        except (
            config.ConfigException,
            yaml.YAMLError,
            OSError,
            ValueError,
            TypeError,
            KeyError,
        ) as e:
            what = f" (context {context})" if context else ""
            raise ConfigError(
                f"cannot use {shown}{what}: {_one_line(str(e)) or type(e).__name__}",
                hint="pass --kubeconfig FILE (or set KUBECONFIG) and --context NAME"
                " naming a working cluster entry",
            ) from e
        where = f"{shown}" + (f", context {context}" if context else "")
        return cls(client.ApiClient(cfg), source=f"{cfg.host} ({where})")

    @classmethod
    def in_cluster(cls) -> KubeAdapter:
        """From the pod's ServiceAccount (token, CA and ``KUBERNETES_SERVICE_*``)."""
        cfg = _configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except (config.ConfigException, OSError) as e:
            raise ConfigError(
                f"cannot use the in-cluster configuration: {_one_line(str(e))}",
                hint="run inside a pod with a ServiceAccount token mounted, or pass --kubeconfig",
            ) from e
        return cls(client.ApiClient(cfg), source=f"{cfg.host} (in-cluster ServiceAccount)")

    @classmethod
    def auto(
        cls,
        path: str | Path | None = None,
        context: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> KubeAdapter:
        """``--kubeconfig``/``--context`` when given; else ``$KUBECONFIG`` when set; else
        in-cluster when ``KUBERNETES_SERVICE_HOST`` is set (in a pod); else ``~/.kube/config``."""
        env = os.environ if env is None else env
        if path is None and env.get(KUBECONFIG_ENV):
            path = env[KUBECONFIG_ENV]
        elif path is None and context is None and env.get(IN_CLUSTER_ENV):
            return cls.in_cluster()
        return cls.from_kubeconfig(path, context)

    def close(self) -> None:
        self._client.close()

    # -- reading ------------------------------------------------------------------------------
    def list_namespaces(self) -> list[str]:
        """The names of every namespace (paged)."""
        items = self._list(
            "list", "", "namespaces", "namespaces", self._core.list_namespace, selector=None
        )
        return sorted(str(item["metadata"]["name"]) for item in items)

    def observed(self, desired: Sequence[KubeObject]) -> list[KubeObject]:
        """Every object labelled managed-by authbridge, plus each ``desired`` ref that
        exists without the label (so the planner can refuse to touch it)."""
        found: dict[ObjectRef, KubeObject] = {}
        for spec in _KINDS.values():
            items = self._list(
                "list",
                spec.group,
                spec.plural,
                f"{spec.kind}s labelled {MANAGED_SELECTOR}"
                + (" in all namespaces" if spec.namespaced else ""),
                getattr(self._api(spec), spec.list_all),
                selector=MANAGED_SELECTOR,
            )
            for item in items:
                obj = _to_object(spec, item)
                found[obj.ref] = obj
        for want in desired:
            if want.ref not in found:
                got = self.get(want.ref)
                if got is not None:
                    found[got.ref] = got
        return list(found.values())

    def rbac_objects(self) -> list[dict[str, Any]]:
        """Every ClusterRole, Role, ClusterRoleBinding and RoleBinding (all namespaces, paged),
        as the server's JSON with ``kind`` and ``apiVersion`` filled in: what the RBAC
        authorizer decides from (:mod:`authbridge.explain`). Read-only (:data:`EXPLAIN_VERBS`)."""
        found: list[dict[str, Any]] = []
        for kind, plural, method, namespaced in _RBAC_LISTS:
            items = self._list(
                "list",
                RBAC_GROUP,
                plural,
                f"{plural}" + (" in all namespaces" if namespaced else ""),
                getattr(self._rbac, method),
                selector=None,
            )
            for item in items:
                found.append({**item, "kind": kind, "apiVersion": f"{RBAC_GROUP}/v1"})
        return found

    def get(self, ref: ObjectRef) -> KubeObject | None:
        """The object at ``ref``, or None when there is none."""
        spec = _KINDS[ref.kind]
        try:
            doc = self._call(
                "get", spec, ref, getattr(self._api(spec), spec.read), **_where(spec, ref)
            )
        except KubeNotFound:
            return None
        return _to_object(spec, doc)

    # -- writing ------------------------------------------------------------------------------
    def create(self, obj: KubeObject, *, dry_run: bool = False) -> KubeObject:
        """POST ``obj.manifest`` (409 AlreadyExists → :class:`KubeConflict`)."""
        spec = _KINDS[obj.ref.kind]
        body = _body(spec, obj, resource_version=None)
        kwargs: dict[str, Any] = {"body": body}
        if spec.namespaced:
            kwargs["namespace"] = obj.ref.namespace
        doc = self._call(
            "create",
            spec,
            obj.ref,
            getattr(self._api(spec), spec.create),
            dry_run=DRY_RUN_ALL if dry_run else None,
            role=_role(obj),
            **kwargs,
        )
        return _to_object(spec, doc)

    def replace(
        self, obj: KubeObject, resource_version: str | None, *, dry_run: bool = False
    ) -> KubeObject:
        """PUT ``obj.manifest`` with ``metadata.resourceVersion`` (stale → :class:`KubeConflict`).

        ``resource_version`` None is an unconditional update (avoid it: it overwrites
        whatever changed meanwhile).
        """
        spec = _KINDS[obj.ref.kind]
        body = _body(spec, obj, resource_version=resource_version)
        doc = self._call(
            "update",
            spec,
            obj.ref,
            getattr(self._api(spec), spec.replace),
            dry_run=DRY_RUN_ALL if dry_run else None,
            role=_role(obj),
            body=body,
            **_where(spec, obj.ref),
        )
        return _to_object(spec, doc)

    def delete(
        self,
        ref: ObjectRef,
        *,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> None:
        """DELETE ``ref``; with ``resource_version`` only if the object is still that version
        (a precondition: changed meanwhile → :class:`KubeConflict`)."""
        spec = _KINDS[ref.kind]
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        self._call(
            "delete",
            spec,
            ref,
            getattr(self._api(spec), spec.delete),
            dry_run=DRY_RUN_ALL if dry_run else None,
            body=options,
            **_where(spec, ref),
        )

    # -- plumbing -----------------------------------------------------------------------------
    def _api(self, spec: _Kind) -> Any:
        return self._core if spec.api == "core" else self._rbac

    def _list(
        self,
        verb: str,
        group: str,
        plural: str,
        what: str,
        method: Callable[..., Any],
        *,
        selector: str | None,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE}
            if selector is not None:
                kwargs["label_selector"] = selector
            if token:
                kwargs["_continue"] = token
            doc = self._send(verb, group, plural, what, None, method, **kwargs)
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                return items

    def _call(
        self,
        verb: str,
        spec: _Kind,
        ref: ObjectRef,
        method: Callable[..., Any],
        *,
        dry_run: str | None = None,
        role: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if dry_run is not None:
            kwargs["dry_run"] = dry_run
        return self._send(verb, spec.group, spec.plural, str(ref), ref, method, role=role, **kwargs)

    def _send(
        self,
        verb: str,
        group: str,
        plural: str,
        what: str,
        ref: ObjectRef | None,
        method: Callable[..., Any],
        *,
        role: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One call: raw JSON in and out; every failure wrapped (see the module docstring).

        ``role``: the ClusterRole a written binding references, to name it when the
        API server's escalation check refuses the write."""
        try:
            response = method(_preload_content=False, _request_timeout=self._timeout, **kwargs)
            try:
                raw = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            if e.status == 404 and (ref is None or not _is_status(e)):
                missing = self._not_served(e, verb, group, plural, what, ref)
                if missing is not None:
                    raise missing from e
            raise _api_error(e, verb, group, plural, what, ref, self.server, role) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeUnavailable(
                f"cannot reach the API server at {self.server} to {verb} {what}:"
                f" {_one_line(str(e)) or type(e).__name__}",
                status=0,
                reason="Unreachable",
                verb=verb,
                group=group,
                resource=plural,
                ref=ref,
                hint="check the server address in the kubeconfig and that the cluster is up;"
                " apply converges from where it stopped",
            ) from e
        try:
            doc = json.loads(raw or b"{}")
        except ValueError as e:
            raise KubeUnavailable(
                f"the API server at {self.server} answered {verb} {what} with something that is"
                " not JSON",
                status=0,
                reason="BadResponse",
                verb=verb,
                group=group,
                resource=plural,
                ref=ref,
                hint="check that the kubeconfig points at a kube-apiserver",
            ) from e
        if not isinstance(doc, dict):
            raise KubeUnavailable(
                f"the API server at {self.server} answered {verb} {what} with a JSON {type(doc)}",
                status=0,
                reason="BadResponse",
                verb=verb,
                group=group,
                resource=plural,
                ref=ref,
                hint="check that the kubeconfig points at a kube-apiserver",
            )
        return doc

    def _not_served(
        self,
        e: ApiException,
        verb: str,
        group: str,
        plural: str,
        what: str,
        ref: ObjectRef | None,
    ) -> KubeApiError | None:
        """The error for a 404 no kube-apiserver gives about an object: on a list (a
        collection it serves is never missing) or without a ``kind: Status`` body.

        Asks discovery (GET /api, which every kube-apiserver answers with APIVersions, or
        refuses with a Status) whether this is a Kubernetes API server at all; None when
        it is and ``ref`` names an object (then the 404 means what it says)."""
        probe = self._probe_discovery()
        fields: dict[str, Any] = {
            "status": 404,
            "verb": verb,
            "group": group,
            "resource": plural,
            "ref": ref,
        }
        if probe is None:
            if ref is not None:
                return None
            _, message = _status(e)
            said = f": {message}" if message else ""
            return KubeNotFound(
                f"the API server at {self.server} does not serve {plural} (API group"
                f" {group or 'core'}): {verb} {what} answered 404{said}",
                reason="NotServed",
                hint="check that the kubeconfig's cluster.server is the kube-apiserver itself,"
                " not a URL below it or a proxy in front of it",
                **fields,
            )
        return KubeUnavailable(
            f"{self.source} is not a Kubernetes API server (GET /api answered {probe};"
            f" {verb} {what} answered 404)",
            reason="NotKubernetes",
            hint=_NOT_KUBERNETES_HINT,
            **fields,
        )

    def _probe_discovery(self) -> str | None:
        """None when GET /api answers like a kube-apiserver; else what it answered."""
        try:
            response = client.CoreApi(self._client).get_api_versions(
                _preload_content=False, _request_timeout=self._timeout
            )
            try:
                raw = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            status = int(e.status or 0)
            # Discovery refused (credentials, RBAC) in a Status body: a kube-apiserver.
            return None if status in (401, 403) and _is_status(e) else str(status)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            return f"nothing: {_one_line(str(e)) or type(e).__name__}"
        try:
            doc = json.loads(raw or b"null")
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("kind") == "APIVersions":
            return None
        return "200 with no APIVersions document"


def _configuration() -> Any:
    cfg = client.Configuration()
    # Retry a refused connection (nothing was sent), and once a read error of an
    # idempotent call (GET, PUT, DELETE: a dropped keep-alive connection); urllib3
    # never retries a POST after sending it. Status codes are answers, not retried.
    # Quick (0.1 s, 0.2 s): a longer outage is the watch loop's back-off to handle.
    cfg.retries = urllib3.Retry(
        total=3, connect=2, read=1, redirect=0, status=0, backoff_factor=0.1
    )
    return cfg


def _role(obj: KubeObject) -> str | None:
    ref = obj.manifest.get("roleRef")
    return str(ref.get("name")) if isinstance(ref, dict) and ref.get("name") else None


def _where(spec: _Kind, ref: ObjectRef) -> dict[str, str]:
    out = {"name": ref.name}
    if spec.namespaced:
        out["namespace"] = ref.namespace or ""
    return out


def _body(spec: _Kind, obj: KubeObject, *, resource_version: str | None) -> dict[str, Any]:
    """The JSON to send: the manifest, with kind/apiVersion/name/namespace from the ref."""
    body: dict[str, Any] = json.loads(json.dumps(obj.manifest))  # a deep, plain-JSON copy
    body["apiVersion"], body["kind"] = spec.api_version, spec.kind
    meta = body.setdefault("metadata", {})
    meta["name"] = obj.ref.name
    if spec.namespaced:
        meta["namespace"] = obj.ref.namespace
    else:
        meta.pop("namespace", None)
    meta.pop("managedFields", None)
    if resource_version is None:
        meta.pop("resourceVersion", None)
    else:
        meta["resourceVersion"] = resource_version
    return body


def _to_object(spec: _Kind, doc: Mapping[str, Any]) -> KubeObject:
    manifest: dict[str, Any] = {"apiVersion": spec.api_version, "kind": spec.kind}
    manifest.update((k, v) for k, v in doc.items() if k not in ("apiVersion", "kind"))
    meta = dict(manifest.get("metadata") or {})
    meta.pop("managedFields", None)
    version = meta.pop("resourceVersion", None)
    manifest["metadata"] = meta
    manifest.pop("status", None)
    ref = ObjectRef(spec.kind, str(meta.get("name", "")), meta.get("namespace") or None)
    return KubeObject(ref, manifest, resource_version=None if version is None else str(version))


def _status(e: ApiException) -> tuple[str, str]:
    """``(reason, message)`` from the Status body of an API error (or the HTTP reason);
    the message on one line, not shortened."""
    reason, message = str(e.reason or ""), ""
    try:
        body = json.loads(e.body) if e.body else None
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
    elif isinstance(e.body, str):
        message = e.body[:300]
    return reason, _one_line(message)


def _is_status(e: ApiException) -> bool:
    """Whether the error's body is a ``kind: Status`` document (as every kube-apiserver error)."""
    try:
        body = json.loads(e.body) if e.body else None
    except (TypeError, ValueError):
        return False
    return isinstance(body, dict) and body.get("kind") == "Status"


def _api_error(
    e: ApiException,
    verb: str,
    group: str,
    plural: str,
    what: str,
    ref: ObjectRef | None,
    server: str,
    role: str | None = None,
) -> KubeApiError:
    status = int(e.status or 0)
    reason, message = _status(e)
    shown = message
    if len(shown) > _MAX_SERVER_MESSAGE:  # an escalation refusal lists every rule of the role
        shown = shown[: _MAX_SERVER_MESSAGE - 1] + "…"
    said = f": {shown}" if shown else ""
    fields: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "verb": verb,
        "group": group,
        "resource": plural,
        "ref": ref,
    }
    api_group = group or "core"
    if status == 0:
        return KubeUnavailable(
            f"cannot reach the API server at {server} to {verb} {what}: {_one_line(reason)}",
            hint="check the kubeconfig (server address, CA) and that the cluster is up",
            **fields,
        )
    if status == 401:
        return KubeUnauthorized(
            f"the API server at {server} refused the credentials (401 Unauthorized) on {verb}"
            f" {what}{said}",
            hint="check the kubeconfig's user (an expired token?) or the pod's ServiceAccount",
            **fields,
        )
    if status == 403 and role is not None and _ESCALATION in message:
        return KubeForbidden(
            f"the reconciler may not bind ClusterRole {role}: {verb} {what} was refused by"
            " Kubernetes' escalation check (binding a role one does not hold needs `bind` on it)",
            hint=f"add {role} to the resourceNames of the bind rule of ClusterRole"
            " authbridge:reconciler in rbac/authbridge-rbac.yaml and apply that file, or run"
            " as a user who may",
            **fields,
        )
    if status == 403:
        return KubeForbidden(
            f"the reconciler lacks permission to {verb} {plural} (API group {api_group}) for"
            f" {what}{said}",
            hint=_PERMISSION_HINT,
            **fields,
        )
    if status == 404:
        return KubeNotFound(
            f"{what} was not found on {verb}{said}",
            hint="it (or its namespace) was deleted meanwhile; " + _AGAIN_HINT,
            **fields,
        )
    if status == 409 and reason == "AlreadyExists":
        return KubeConflict(
            f"{what} was created by someone else meanwhile{said}",
            hint=_AGAIN_HINT + " (plan refuses, naming it, if it is not authbridge's)",
            **fields,
        )
    if status == 409:
        return KubeConflict(
            f"{what} was changed by someone else meanwhile ({verb} refused: {reason or 'Conflict'})"
            f"{said}",
            hint=_AGAIN_HINT,
            **fields,
        )
    if status in (400, 422):
        return KubeInvalid(
            f"the API server refused to {verb} {what} as invalid ({status} {reason}){said}",
            hint="check the mapping entry it comes from (`authbridge rbac render` shows the"
            " object)",
            **fields,
        )
    return KubeUnavailable(
        f"the API server at {server} failed to {verb} {what} ({status} {reason}){said}",
        hint="try again later; apply converges from where it stopped",
        **fields,
    )


class SecretSlot:
    """One Secret that the manifests create empty and authbridge fills once.

    A Role cannot limit ``create`` to a name (the name is not known when a
    create is authorized), so the server is granted no ``create`` at all:
    ``kubectl apply -k deploy/`` makes the Secret, with no data, and the
    server may only ``get`` and ``update`` that one name. :meth:`fill` reads
    it and PUTs the data with the ``resourceVersion`` it read, so a change
    made meanwhile is a 409 Conflict, never overwritten.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self._client = api_client
        self._core = client.CoreV1Api(api_client)
        self._timeout = timeout
        self.namespace, self.name = namespace, name
        self.server = str(api_client.configuration.host)

    def __str__(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    @classmethod
    def auto(
        cls,
        ref: str,
        *,
        env: Mapping[str, str] | None = None,
        namespace_file: Path = NAMESPACE_FILE,
    ) -> SecretSlot:
        """``NAME`` (in the pod's own namespace) or ``NAMESPACE/NAME``.

        The API server and credentials as :meth:`KubeAdapter.auto` finds them:
        ``$KUBECONFIG`` when set, else the pod's ServiceAccount in a pod.
        """
        namespace, _, name = ref.rpartition("/")
        if not namespace:
            try:
                namespace = namespace_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(
                    f"bootstrapSecret {ref}: cannot read the pod's namespace from"
                    f" {namespace_file}: {e.strerror}",
                    hint="give it as NAMESPACE/NAME, or mount the ServiceAccount token"
                    " (automountServiceAccountToken: true)",
                ) from None
        adapter = KubeAdapter.auto(env=env)
        return cls(adapter._client, namespace, name, timeout=adapter._timeout)

    def close(self) -> None:
        self._client.close()

    def fill(self, data: Mapping[str, str]) -> None:
        """Put ``data`` (string values) into the Secret, keeping its labels and annotations.

        What it held before is replaced: the caller fills it only while the
        store has no account, when anything in it is stale.
        """
        current = self._send("get", self._core.read_namespaced_secret)
        meta = current.get("metadata") or {}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": meta.get("resourceVersion"),
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
            },
            "type": current.get("type") or "Opaque",
            "data": {
                key: base64.b64encode(value.encode()).decode("ascii") for key, value in data.items()
            },
        }
        self._send("update", self._core.replace_namespaced_secret, body=body)

    def _send(self, verb: str, method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """One call; failures become ConfigError naming the Secret and the fix, never its data."""
        try:
            response = method(
                self.name,
                self.namespace,
                _preload_content=False,
                _request_timeout=self._timeout,
                **kwargs,
            )
            try:
                raw = response.data
            finally:
                response.release_conn()
        except ApiException as e:
            reason, message = _status(e)
            status = int(e.status or 0)
            hints = {
                403: "apply deploy/bootstrap-admin.yaml (get and update on this Secret only)",
                404: "`kubectl apply -k deploy/` creates it, empty (deploy/bootstrap-admin.yaml)",
                409: "another writer changed it meanwhile; the next start tries again",
            }
            raise ConfigError(
                f"cannot {verb} {self} for the first administrator ({status} {reason}):"
                f" {message[:_MAX_SERVER_MESSAGE]}",
                hint=hints.get(status, "check the API server and try again"),
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ConfigError(
                f"cannot reach the API server at {self.server} to {verb} {self}:"
                f" {_one_line(str(e)) or type(e).__name__}",
                hint="check the pod's network policy (egress to the API server) and try again",
            ) from None
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ConfigError(
                f"the API server at {self.server} answered {verb} {self} with no JSON object"
            )
        return doc


class ServiceAccountAnnotations:
    """The pod admission webhook's ServiceAccount lookup (``web.mutate.ServiceAccounts``).

    ``get serviceaccounts`` through a :class:`KubeAdapter` (the verb the
    reconciler already has); a missing ServiceAccount is None, any other
    failure the adapter's :class:`~authbridge.rbac.reconcile.KubeApiError`.
    """

    def __init__(self, adapter: KubeAdapter) -> None:
        self._adapter = adapter

    def annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        found = self._adapter.get(ObjectRef("ServiceAccount", name, namespace))
        if found is None:
            return None
        metadata = found.manifest.get("metadata")
        raw = metadata.get("annotations") if isinstance(metadata, dict) else None
        if not isinstance(raw, dict):
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
