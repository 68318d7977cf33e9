"""An in-process fake of the Kubernetes API endpoints authbridge's reconciler uses.

A real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, a free port, in a
thread) speaking the same JSON shapes as a kube-apiserver, so the REAL
``kubernetes`` client (in-process through :mod:`authbridge.kube`, or in an
``authbridge rbac …`` subprocess through :meth:`FakeKube.write_kubeconfig`)
talks to it unchanged. No patches: this is the "fake Kubernetes API with the
same surface as the adapter" of STYLE.md §9.

Served (everything else is 404 NotFound, as for an unknown resource)::

    /api/v1/namespaces[/{name}]                           list, get, create
    /api/v1/serviceaccounts                               list (all namespaces)
    /api/v1/namespaces/{ns}/serviceaccounts[/{name}]      list, get, create, update, delete
    /api/v1/namespaces/{ns}/secrets[/{name}]              list, get, create, update, delete
    /apis/rbac.authorization.k8s.io/v1/clusterroles[/{name}]
    /apis/rbac.authorization.k8s.io/v1/clusterrolebindings[/{name}]
                                                          list, get, create, update, delete
    /apis/rbac.authorization.k8s.io/v1/rolebindings       list (all namespaces)
    /apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings[/{name}]
                                                          list, get, create, update, delete
    /apis/rbac.authorization.k8s.io/v1/roles              list (all namespaces)
    /apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles[/{name}]
                                                          list, get, create, update, delete
    /api, /apis, /api/v1, /apis/rbac.authorization.k8s.io/v1
                                                          discovery (for kubectl; no OpenAPI)

Kubernetes semantics kept (each one something a reconciler can get wrong):

* errors are ``kind: Status`` bodies with the real ``reason``, ``code`` and
  message wording: 404 NotFound, 409 AlreadyExists (create of an existing
  name), 409 Conflict (PUT with a stale ``metadata.resourceVersion``, DELETE
  with a failed ``preconditions.resourceVersion``), 422 Invalid (validation;
  ``roleRef`` changed on PUT: roleRef is immutable), 400 BadRequest (kind,
  name or namespace of the body disagreeing with the URL; unknown
  ``dryRun`` value; a label selector this fake does not understand), 500 for a
  ``resourceVersion`` set on create ("resourceVersion should not be set on
  objects to be created", as etcd3 storage says), 404 ``namespaces "x" not
  found`` for a namespaced create in a missing namespace;
* one global, monotonic ``resourceVersion`` (as etcd's revision), set on
  every write, plus ``uid`` and ``creationTimestamp`` on create, kept on update;
* v1 defaulting of subjects (``apiGroup`` of User/Group subjects) and RBAC
  validation of subjects and roleRef; PUT of a missing binding creates it
  (RBAC strategies allow create-on-update), of a missing ServiceAccount is 404;
* ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, comma = and);
  ``limit``/``continue`` paging; list items carry no ``kind``/``apiVersion``
  (the real server leaves them out of list items too);
* ``dryRun=All`` on POST/PUT/DELETE: everything is checked, nothing stored;
* Secrets as the core strategy keeps them: ``data`` values must be base64 (400
  BadRequest otherwise, as JSON decoding into ``[]byte`` fails), keys
  ``[-._a-zA-Z0-9]+`` and at most 1 MiB in all (422 Invalid), ``stringData``
  merged into ``data`` and never stored, ``type`` defaulted to ``Opaque`` and
  immutable, ``immutable: true`` freezing ``data`` (422 Invalid); PUT of a
  missing Secret is 404 (no create on update);
* the bootstrap ClusterRoles a kube-apiserver seeds (:func:`bootstrap_cluster_roles`):
  ``cluster-admin``, and ``admin``/``edit``/``view`` with an ``aggregationRule`` and
  no rules of their own, plus the ``system:aggregate-to-{admin,edit,view}`` roles
  labelled ``rbac.authorization.k8s.io/aggregate-to-*: "true"`` that hold the rules
  (edit is labelled aggregate-to-admin, view aggregate-to-edit); ClusterRole
  validation (verbs required; resources with apiGroups, or nonResourceURLs, not both;
  a valid ``clusterRoleSelectors`` label selector), the same rules for Roles, which
  a RoleBinding may reference in its own namespace;
* kube-controller-manager's clusterrole-aggregation controller: an aggregated
  ClusterRole's rules are the union of the rules of the ClusterRoles its selectors
  match, kept current on every create, update and delete of a ClusterRole (also
  through :meth:`FakeKube.put`/:meth:`FakeKube.remove`); rules a client writes to an
  aggregated role are overwritten right after its write (the answer to that PUT
  still shows them, as the real server's does). Synchronous, not eventual.
  ``FakeKube(aggregation=False)`` is a bare kube-apiserver without the controller:
  admin, edit and view then grant nothing, as in a cluster where it never ran.

Test controls: :meth:`FakeKube.fail_next` (answer the next matching request
with an error status, e.g. 409/403/500 in the middle of an apply),
:meth:`FakeKube.on_next` (run a callback just before a request is served,
e.g. to change an object "meanwhile"), and ``rules`` (PolicyRules, as in a
ClusterRole): when given, every request is authorized against them like the
RBAC authorizer does (403 Forbidden with the real message otherwise), and
creating or updating a binding also needs ``bind`` on the role it references,
as the API server's escalation check does for a subject that does not hold
the role's permissions itself (ClusterRole writes get no escalation check
here: authbridge never writes ClusterRoles).

:meth:`FakeKube.role_rules` reads a ClusterRole's current rules;
:meth:`FakeKube.allowed` answers as a SubjectAccessReview would for any user and
groups: the RBAC authorizer over the stored bindings and ClusterRoles (not
``rules``, which stand for the reconciler's own permissions). So a test can apply
the mapping as the reconciler and then ask what a mapped user may do.

Every request is recorded in :attr:`FakeKube.requests` with its RBAC
attributes ``(apiGroup, resource, verb)`` (get, list, watch, create, update,
patch, delete, deletecollection), and every ``bind`` check in
:attr:`FakeKube.checks`, so tests can compare what was used with what the
reconciler's ClusterRole grants.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_VERSION = f"{RBAC_GROUP}/v1"


@dataclass(frozen=True)
class Resource:
    """One REST resource the fake serves."""

    name: str  # plural, as in URLs and RBAC rules
    group: str  # "" for the core group
    kind: str
    namespaced: bool
    create_on_update: bool  # PUT of a missing object creates it

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        """How messages name the resource: ``clusterrolebindings.rbac.authorization.k8s.io``."""
        return f"{self.name}.{self.group}" if self.group else self.name


NAMESPACES = Resource("namespaces", "", "Namespace", namespaced=False, create_on_update=False)
SERVICE_ACCOUNTS = Resource(
    "serviceaccounts", "", "ServiceAccount", namespaced=True, create_on_update=False
)
SECRETS = Resource("secrets", "", "Secret", namespaced=True, create_on_update=False)
CLUSTER_ROLES = Resource(
    "clusterroles", RBAC_GROUP, "ClusterRole", namespaced=False, create_on_update=True
)
CLUSTER_ROLE_BINDINGS = Resource(
    "clusterrolebindings", RBAC_GROUP, "ClusterRoleBinding", namespaced=False, create_on_update=True
)
ROLE_BINDINGS = Resource(
    "rolebindings", RBAC_GROUP, "RoleBinding", namespaced=True, create_on_update=True
)
ROLES = Resource("roles", RBAC_GROUP, "Role", namespaced=True, create_on_update=True)
RESOURCES = {
    r.kind: r
    for r in (
        NAMESPACES,
        SERVICE_ACCOUNTS,
        SECRETS,
        CLUSTER_ROLES,
        CLUSTER_ROLE_BINDINGS,
        ROLE_BINDINGS,
        ROLES,
    )
}
_BY_PATH = {(r.group, r.name): r for r in RESOURCES.values()}

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Request:
    """One request as the RBAC authorizer sees it, and what the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    api_group: str | None  # None: not a resource path (404)
    resource: str | None
    verb: str | None
    namespace: str | None
    name: str | None
    status: int
    body: Any = None

    @property
    def attributes(self) -> tuple[str, str, str] | None:
        """``(apiGroup, resource, verb)``, or None for a path that is not a resource."""
        if self.api_group is None or self.resource is None or self.verb is None:
            return None
        return (self.api_group, self.resource, self.verb)


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    reason: str
    message: str
    times: int


@dataclass
class _Hook:
    method: str
    path: re.Pattern[str]
    callback: Callable[[], None]


class ApiError(Exception):
    """Answered as a ``kind: Status`` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            doc["details"] = self.details
        return doc


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- validation (the parts of k8s.io/apimachinery + pkg/apis/rbac/validation that matter) ----

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def _name_problems(resource: Resource, name: str) -> list[str]:
    if not name:
        return ["metadata.name: Required value: name or generateName is required"]
    if resource in (CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS, ROLES):
        # RBAC names are path segment names (ValidatePathSegmentName).
        if name in (".", "..") or "/" in name or "%" in name:
            return [f"metadata.name: Invalid value: \"{name}\": may not contain '/' or '%'"]
        return []
    pattern, limit = (_DNS_LABEL, 63) if resource is NAMESPACES else (_DNS_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.fullmatch(name):
        return [f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 name is required']
    return []


def _label_problems(labels: Any) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return ["metadata.labels: Invalid value: must be a map of strings"]
    problems = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            not isinstance(key, str)
            or not name
            or len(name) > 63
            or not _LABEL_NAME.fullmatch(name)
            or (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix))
        ):
            problems.append(f'metadata.labels: Invalid value: "{key}": name part must be valid')
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            problems.append(f'metadata.labels: Invalid value: "{value}": a valid label value')
    return problems


def _default_subjects(obj: dict[str, Any]) -> None:
    """SetDefaults_Subject: User/Group subjects get the RBAC apiGroup when it is empty."""
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup"):
            if subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = RBAC_GROUP
            else:
                subject.pop("apiGroup", None)


def _binding_problems(resource: Resource, obj: dict[str, Any]) -> list[str]:
    problems = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return ["roleRef: Required value"]
    if ref.get("apiGroup") != RBAC_GROUP:
        problems.append(f'roleRef.apiGroup: Unsupported value: "{ref.get("apiGroup", "")}"')
    kinds = ("ClusterRole",) if resource is CLUSTER_ROLE_BINDINGS else ("Role", "ClusterRole")
    if ref.get("kind") not in kinds:
        problems.append(f'roleRef.kind: Unsupported value: "{ref.get("kind", "")}"')
    if not ref.get("name"):
        problems.append("roleRef.name: Required value")
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        return [*problems, "subjects: Invalid value: must be a list"]
    for i, subject in enumerate(subjects):
        where = f"subjects[{i}]"
        if not isinstance(subject, dict):
            problems.append(f"{where}: Invalid value: must be an object")
            continue
        kind, name = subject.get("kind"), subject.get("name")
        if not name:
            problems.append(f"{where}.name: Required value")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                problems.append(f'{where}.apiGroup: Unsupported value: "{subject["apiGroup"]}"')
            if name and not _DNS_SUBDOMAIN.fullmatch(str(name)):
                problems.append(f'{where}.name: Invalid value: "{name}"')
            if not subject.get("namespace") and resource is CLUSTER_ROLE_BINDINGS:
                problems.append(f"{where}.namespace: Required value")
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != RBAC_GROUP:
                problems.append(f'{where}.apiGroup: Unsupported value: "{subject.get("apiGroup")}"')
        else:
            problems.append(f'{where}.kind: Unsupported value: "{kind}"')
    return problems


_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_SECRET_BYTES = 1024 * 1024


def _secret_problems(obj: dict[str, Any]) -> list[str]:
    """ValidateSecret, after the JSON decoding of ``data`` (400 when a value is not base64)
    and the ``stringData`` merge of the Secret strategy; ``obj`` is normalized in place."""
    data = obj.get("data") or {}
    string_data = obj.pop("stringData", None) or {}
    if not isinstance(data, dict) or not isinstance(string_data, dict):
        raise ApiError(400, "BadRequest", "data and stringData must be objects")
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True)
        except ValueError:
            raise ApiError(400, "BadRequest", f"illegal base64 data in data[{key}]") from None
    for key, value in string_data.items():
        decoded[key] = str(value).encode()
    problems = [
        f"data[{key}]: Invalid value: {key!r}: a valid config key must consist of alphanumeric"
        " characters, '-', '_' or '.'"
        for key in decoded
        if len(key) > 253 or not _SECRET_KEY.fullmatch(key)
    ]
    if sum(len(v) for v in decoded.values()) > MAX_SECRET_BYTES:
        problems.append(f"data: Too long: must have at most {MAX_SECRET_BYTES} bytes")
    if decoded:
        obj["data"] = {k: base64.b64encode(v).decode("ascii") for k, v in decoded.items()}
    else:
        obj.pop("data", None)
    obj["type"] = obj.get("type") or "Opaque"
    return problems


def _check_secret_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    """ValidateSecretUpdate: ``type`` never changes; ``immutable`` freezes data and itself."""
    name = old["metadata"]["name"]
    problems = []
    if new.get("type") != old.get("type"):
        problems.append("type: Invalid value: field is immutable")
    if old.get("immutable") is True:
        if (new.get("data") or {}) != (old.get("data") or {}):
            problems.append("data: Forbidden: field is immutable when `immutable` is set")
        if new.get("immutable") is not True:
            problems.append("immutable: Forbidden: field is immutable when `immutable` is set")
    if problems:
        raise ApiError(
            422,
            "Invalid",
            f'Secret "{name}" is invalid: {", ".join(problems)}',
            {"name": name, "kind": "Secret"},
        )


def _role_problems(obj: dict[str, Any]) -> list[str]:
    """ValidateClusterRole: every rule needs verbs and either resources (with apiGroups) or
    nonResourceURLs, never both; an aggregationRule needs a valid clusterRoleSelector."""
    problems = []
    rules = obj.get("rules") or []
    if not isinstance(rules, list):
        return ["rules: Invalid value: must be a list"]
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append(f"{where}: Invalid value: must be an object")
            continue
        if not rule.get("verbs"):
            problems.append(f"{where}.verbs: Required value: verbs must contain at least one value")
        if rule.get("nonResourceURLs"):
            if rule.get("apiGroups") or rule.get("resources"):
                problems.append(
                    f"{where}.nonResourceURLs: Invalid value: rules cannot apply to both regular"
                    " resources and non-resource URLs"
                )
            continue
        if not rule.get("apiGroups"):
            problems.append(
                f"{where}.apiGroups: Required value: resource rules must supply at least one api"
                " group"
            )
        if not rule.get("resources"):
            problems.append(
                f"{where}.resources: Required value: resource rules must supply at least one"
                " resource"
            )
    aggregation = obj.get("aggregationRule")
    if aggregation is not None:
        selectors = aggregation.get("clusterRoleSelectors") if isinstance(aggregation, dict) else 0
        if not isinstance(selectors, list) or not selectors:
            problems.append(
                "aggregationRule.clusterRoleSelectors: Required value: at least one"
                " clusterRoleSelector required if aggregationRule is non-nil"
            )
        else:
            for i, selector in enumerate(selectors):
                try:
                    _label_selector(selector)
                except ValueError as e:
                    problems.append(
                        f"aggregationRule.clusterRoleSelectors[{i}]: Invalid value: {e}"
                    )
    return problems


def _label_selector(selector: Any) -> Callable[[dict[str, str]], bool]:
    """A metav1.LabelSelector (matchLabels and matchExpressions: In, NotIn, Exists,
    DoesNotExist; all ANDed) as a predicate on labels; ValueError when malformed."""
    if not isinstance(selector, dict):
        raise ValueError("a label selector must be an object")
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise ValueError("matchLabels must be a map of strings")
    terms: list[tuple[str, str, list[str]]] = [
        ("In", str(k), [str(v)]) for k, v in match_labels.items()
    ]
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            raise ValueError("a matchExpressions entry must be an object")
        key, op = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if not key or not isinstance(values, list):
            raise ValueError("a matchExpressions entry needs a key and a list of values")
        if op in ("In", "NotIn") and not values:
            raise ValueError(f"values: Required value: for 'in', 'notin' operators ({key})")
        if op in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"values: Forbidden: for 'exists', 'doesnotexist' operators ({key})")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f'operator: Invalid value: "{op}": not a valid selector operator')
        terms.append((str(op), str(key), [str(v) for v in values]))

    def matches(labels: dict[str, str]) -> bool:
        for op, key, values in terms:
            ok = {
                "In": key in labels and labels[key] in values,
                "NotIn": labels.get(key) not in values,
                "Exists": key in labels,
                "DoesNotExist": key not in labels,
            }[op]
            if not ok:
                return False
        return True

    return matches


def _selector(text: str) -> Callable[[dict[str, str]], bool]:
    """A label selector (equality-based, plus existence) as a predicate on labels."""
    tests: list[Callable[[dict[str, str]], bool]] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)", term)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        m = re.fullmatch(r"(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)", term)
        if not m:
            raise ApiError(
                400, "BadRequest", f"unable to parse requirement: found '{term}', expected: key"
            )
        negate, key = m.groups()
        if negate:
            tests.append(lambda labels, k=key: k not in labels)
        else:
            tests.append(lambda labels, k=key: k in labels)
    return lambda labels: all(t(labels) for t in tests)


# -- authorization (the RBAC authorizer's rule matching) ----------------------------------------


def _rule_allows(
    rule: dict[str, Any], group: str, resource: str, verb: str, name: str | None
) -> bool:
    """RuleAllows: ``resource`` may name a subresource (``pods/log``), which a rule's
    ``*/log`` matches too."""

    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    resources = rule.get("resources") or []
    _, slash, sub = resource.partition("/")
    resource_ok = has("resources", resource) or bool(slash and f"*/{sub}" in resources)
    if not (has("apiGroups", group) and resource_ok and has("verbs", verb)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _subject_matches(
    subject: dict[str, Any], user: str, groups: Iterable[str], binding_namespace: str | None
) -> bool:
    """appliesToUser: a ServiceAccount subject without a namespace is in the binding's."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user
    if kind == "Group":
        return name in set(groups)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user == f"system:serviceaccount:{namespace}:{name}"
    return False


# -- the bootstrap ClusterRoles (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go) -----

AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(verbs: list[str], group: str, *resources: str) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}


# What the built-in view, edit and admin aggregate, as kube-apiserver v1.30+ seeds it.
AGGREGATE_TO_VIEW_RULES: list[dict[str, Any]] = [
    _rule(
        _READ,
        "",
        "pods",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "configmaps",
    ),
    _rule(
        _READ,
        "",
        "limitranges",
        "resourcequotas",
        "bindings",
        "events",
        "pods/status",
        "resourcequotas/status",
        "namespaces/status",
        "replicationcontrollers/status",
        "pods/log",
    ),
    _rule(_READ, "", "namespaces"),
    _rule(_READ, "discovery.k8s.io", "endpointslices"),
    _rule(
        _READ,
        "apps",
        "controllerrevisions",
        "statefulsets",
        "statefulsets/status",
        "statefulsets/scale",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/status",
        "deployments/scale",
        "replicasets",
        "replicasets/status",
        "replicasets/scale",
    ),
    _rule(_READ, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    _rule(_READ, "batch", "jobs", "cronjobs", "cronjobs/status", "jobs/status"),
    _rule(_READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
    _rule(_READ, "networking.k8s.io", "networkpolicies", "ingresses", "ingresses/status"),
]
AGGREGATE_TO_EDIT_RULES: list[dict[str, Any]] = [
    _rule(
        _READ,
        "",
        "pods/attach",
        "pods/proxy",
        "pods/exec",
        "pods/portforward",
        "secrets",
        "services/proxy",
    ),
    _rule(["impersonate"], "", "serviceaccounts"),
    _rule(_WRITE, "", "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
    _rule(["create"], "", "pods/eviction"),
    _rule(
        _WRITE,
        "",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/proxy",
        "persistentvolumeclaims",
        "configmaps",
        "secrets",
        "events",
    ),
    _rule(["create"], "", "serviceaccounts/token"),
    _rule(
        _WRITE,
        "apps",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
        "deployments",
        "deployments/scale",
        "deployments/rollback",
        "replicasets",
        "replicasets/scale",
    ),
    _rule(_WRITE, "autoscaling", "horizontalpodautoscalers"),
    _rule(_WRITE, "batch", "jobs", "cronjobs"),
    _rule(_WRITE, "policy", "poddisruptionbudgets"),
    _rule(_WRITE, "networking.k8s.io", "networkpolicies", "ingresses"),
    _rule([*_READ, *_WRITE], "coordination.k8s.io", "leases"),
]
AGGREGATE_TO_ADMIN_RULES: list[dict[str, Any]] = [
    _rule(["create"], "authorization.k8s.io", "localsubjectaccessreviews"),
    _rule([*_READ, *_WRITE], RBAC_GROUP, "rolebindings", "roles"),
]


def _bootstrap_role(
    name: str,
    rules: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    aggregates: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": copy.deepcopy(rules),
    }
    if aggregates is not None:
        doc["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregates: "true"}}]
        }
    return doc


def bootstrap_cluster_roles() -> list[dict[str, Any]]:
    """cluster-admin, and the aggregated admin / edit / view with the ``system:aggregate-to-*``
    roles they select, as kube-apiserver creates them: admin, edit and view with empty rules
    (the aggregation controller of kube-controller-manager fills them), edit labelled
    aggregate-to-admin and view aggregate-to-edit, so admin ⊇ edit ⊇ view."""
    return [
        _bootstrap_role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _bootstrap_role("admin", [], aggregates="admin"),
        _bootstrap_role("edit", [], labels={AGGREGATE_TO + "admin": "true"}, aggregates="edit"),
        _bootstrap_role("view", [], labels={AGGREGATE_TO + "edit": "true"}, aggregates="view"),
        _bootstrap_role(
            "system:aggregate-to-admin",
            AGGREGATE_TO_ADMIN_RULES,
            labels={AGGREGATE_TO + "admin": "true"},
        ),
        _bootstrap_role(
            "system:aggregate-to-edit",
            AGGREGATE_TO_EDIT_RULES,
            labels={AGGREGATE_TO + "edit": "true"},
        ),
        _bootstrap_role(
            "system:aggregate-to-view",
            AGGREGATE_TO_VIEW_RULES,
            labels={AGGREGATE_TO + "view": "true"},
        ),
    ]


class FakeKube:
    """The fake API server; see the module docstring. Use as a context manager or start/stop."""

    def __init__(
        self,
        *,
        namespaces: Iterable[str] = ("default", "kube-system"),
        rules: list[dict[str, Any]] | None = None,
        user: str = "system:serviceaccount:authbridge:authbridge",
        aggregation: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self.aggregation = aggregation
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self._revision = 100
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self.rules = rules
        self.user = user
        self.requests: list[Request] = []
        self.checks: list[tuple[str, str, str, str]] = []  # (group, resource, verb, name)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for ns in namespaces:
            self.add_namespace(ns)
        for role in bootstrap_cluster_roles():
            self.put(role)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeKube:
        fake = self

        class Handler(_Handler):
            kube = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits for one poll
            name="fakekube",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_kubeconfig(self, path: Path, *, context: str = "fake") -> Path:
        """A kubeconfig whose (current) context points at this server, without credentials."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    # -- test controls -------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        reason: str | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path_regex``
        (searched in the path, without the query) with ``status`` and a Status body."""
        self._faults.append(
            _Fault(
                method.upper(),
                re.compile(path_regex),
                status,
                reason or _REASONS.get(status, "Unknown"),
                message or f"injected failure ({status})",
                times,
            )
        )

    def on_next(self, method: str, path_regex: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, just before the next matching request is served."""
        self._hooks.append(_Hook(method.upper(), re.compile(path_regex), callback))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.checks.clear()

    def used(self) -> set[tuple[str, str, str]]:
        """Every ``(apiGroup, resource, verb)`` requested so far, plus the ``bind`` checks."""
        with self._lock:
            seen = {a for r in self.requests if (a := r.attributes) is not None}
            seen |= {(g, r, v) for g, r, v, _ in self.checks}
        return seen

    # -- direct access for test setup and assertions (no HTTP, no authorization) ------------
    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.put({"metadata": {"name": name, "labels": labels or {}}}, kind="Namespace")

    def delete_namespace(self, name: str) -> None:
        """Remove a namespace and everything in it (at once: no finalizers here)."""
        with self._lock:
            self._objects.pop(("namespaces", "", name), None)
            for key in [k for k in self._objects if k[1] == name]:
                del self._objects[key]
            self._revision += 1

    def put(self, manifest: dict[str, Any], *, kind: str | None = None) -> dict[str, Any]:
        """Store ``manifest`` as is (created or overwritten), like another client would."""
        resource = RESOURCES[kind or manifest["kind"]]
        obj = copy.deepcopy(manifest)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if resource.namespaced else ""
        if not resource.namespaced:
            meta.pop("namespace", None)
        if resource is NAMESPACES:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        _default_subjects(obj)
        with self._lock:
            old = self._objects.get((resource.name, ns, meta["name"]))
            self._revision += 1
            meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else _now()
            meta["resourceVersion"] = str(self._revision)
            self._objects[(resource.name, ns, meta["name"])] = obj
            stored = copy.deepcopy(obj)
            if resource is CLUSTER_ROLES:
                self._aggregate()
            return stored

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        resource = RESOURCES[kind]
        with self._lock:
            obj = self._objects.get((resource.name, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def remove(self, kind: str, name: str, namespace: str | None = None) -> None:
        with self._lock:
            del self._objects[(RESOURCES[kind].name, namespace or "", name)]
            self._revision += 1
            if RESOURCES[kind] is CLUSTER_ROLES:
                self._aggregate()

    def role_rules(self, cluster_role: str) -> list[dict[str, Any]]:
        """The stored ``rules`` of ClusterRole ``cluster_role`` ([] when it does not exist)."""
        role = self.get("ClusterRole", cluster_role)
        return list(role.get("rules") or []) if role is not None else []

    # -- the RBAC authorizer, for any user (what a SubjectAccessReview answers) -------------
    def allowed(
        self,
        user: str,
        groups: Iterable[str] = (),
        *,
        verb: str,
        resource: str,
        group: str = "",
        namespace: str | None = None,
        name: str | None = None,
    ) -> bool:
        """May ``user`` in ``groups`` do that, by the stored ClusterRoleBindings, RoleBindings
        (in ``namespace``) and the ClusterRoles they reference? As the RBAC authorizer
        decides it: the union of every matching binding's rules, nothing else (no
        system:masters shortcut). A RoleBinding's roleRef is a ClusterRole or a Role of
        its own namespace."""
        groups = list(groups)
        with self._lock:
            for (kind, ns, _), binding in self._objects.items():
                if kind == CLUSTER_ROLE_BINDINGS.name:
                    scope: str | None = None
                elif kind == ROLE_BINDINGS.name and namespace is not None and ns == namespace:
                    scope = ns
                else:
                    continue
                if not any(
                    isinstance(subject, dict) and _subject_matches(subject, user, groups, scope)
                    for subject in binding.get("subjects") or []
                ):
                    continue
                ref = binding.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    role = self._objects.get((CLUSTER_ROLES.name, "", str(ref.get("name"))))
                elif ref.get("kind") == "Role" and scope is not None:
                    role = self._objects.get((ROLES.name, scope, str(ref.get("name"))))
                else:
                    continue
                for rule in (role or {}).get("rules") or []:
                    if _rule_allows(rule, group, resource, verb, name):
                        return True
        return False

    def objects(self, kind: str) -> list[dict[str, Any]]:
        resource = RESOURCES[kind]
        with self._lock:
            return [
                copy.deepcopy(o)
                for (r, _, _), o in sorted(self._objects.items())
                if r == resource.name
            ]

    def names(self, kind: str) -> set[str]:
        """``name`` or ``namespace/name`` of every object of ``kind``."""
        out = set()
        for o in self.objects(kind):
            meta = o["metadata"]
            out.add(f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"])
        return out

    def snapshot(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every stored object, for "nothing changed" assertions."""
        with self._lock:
            return copy.deepcopy(self._objects)

    # -- serving -----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        route = _route(path)
        group = resource_name = verb = namespace = name = None
        resource: Resource | None = None
        if route is not None:
            resource, namespace, name = route
            group, resource_name = resource.group, resource.name
            verb = _VERBS.get(method)
            if method == "GET" and name is None:
                verb = "watch" if query.get("watch") in ("1", "true") else "list"
            elif method == "DELETE" and name is None:
                verb = "deletecollection"
        parsed: Any = None
        status, answer = 500, ApiError(500, "InternalError", "unset").body()
        try:
            for hook in list(self._hooks):
                if hook.method == method and hook.path.search(path):
                    self._hooks.remove(hook)
                    hook.callback()
                    break
            if body:
                try:
                    parsed = json.loads(body)
                except ValueError as e:
                    raise ApiError(400, "BadRequest", f"the body is not valid JSON: {e}") from e
            fault = self._fault(method, path)
            if fault is not None:
                raise ApiError(fault.status, fault.reason, fault.message)
            if method == "GET" and path.rstrip("/") in _DISCOVERY:
                status, answer = 200, _DISCOVERY[path.rstrip("/")]()
                raise _Answered
            if resource is None or verb is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._authorize(group or "", resource, verb, namespace, name)
            status, answer = self._serve(resource, verb, namespace, name, query, parsed)
        except ApiError as e:
            status, answer = e.code, e.body()
        except _Answered:
            pass
        with self._lock:
            self.requests.append(
                Request(
                    method, path, query, group, resource_name, verb, namespace, name, status, parsed
                )
            )
        return status, answer

    def _fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authorize(
        self, group: str, resource: Resource, verb: str, namespace: str | None, name: str | None
    ) -> None:
        if self.rules is None:
            return
        if any(_rule_allows(r, group, resource.name, verb, name) for r in self.rules):
            return
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        what = f'{resource.qualified} "{name}"' if name else resource.qualified
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{self.user}" cannot {verb} resource "{resource.name}"'
            f' in API group "{group}" {scope}',
            {"name": name, "group": group, "kind": resource.name}
            if name
            else {"group": group, "kind": resource.name},
        )

    def _check_bind(self, resource: Resource, obj: dict[str, Any], namespace: str | None) -> None:
        """The escalation check: binding a role needs ``bind`` on it (see the module docstring)."""
        if self.rules is None:
            return
        ref = obj["roleRef"]
        role_resource = "clusterroles" if ref["kind"] == "ClusterRole" else "roles"
        with self._lock:
            self.checks.append((RBAC_GROUP, role_resource, "bind", ref["name"]))
        if any(_rule_allows(r, RBAC_GROUP, role_resource, "bind", ref["name"]) for r in self.rules):
            return
        name = obj["metadata"]["name"]
        raise ApiError(
            403,
            "Forbidden",
            f'{resource.qualified} "{name}" is forbidden: user "{self.user}" (groups='
            f'["system:serviceaccounts" "system:authenticated"]) is attempting to grant RBAC'
            f" permissions not currently held: the subject does not hold {ref['kind']}"
            f' "{ref["name"]}" and may not bind it',
            {"name": name, "group": resource.group, "kind": resource.name},
        )

    # -- the clusterrole-aggregation controller of kube-controller-manager ----------------------
    def _aggregate(self) -> None:
        """syncClusterRole for every ClusterRole with an aggregationRule, to a fixed point.

        Its rules become, selector by selector, the rules of every other ClusterRole the
        selector matches (by name), each rule once; a changed role is written (a new
        resourceVersion), which re-queues the roles that select it (admin selects edit).
        Synchronous, as if the controller were instantaneous; off (``aggregation=False``),
        admin, edit and view keep the empty rules a bare kube-apiserver gives them.
        """
        if not self.aggregation:
            return
        with self._lock:
            for _ in range(len(self._objects) + 1):  # a chain converges within its length
                changed = False
                roles = {
                    key[2]: obj
                    for key, obj in self._objects.items()
                    if key[0] == CLUSTER_ROLES.name
                }
                for name in sorted(roles):
                    role = roles[name]
                    aggregation = role.get("aggregationRule")
                    if not isinstance(aggregation, dict):
                        continue
                    rules: list[dict[str, Any]] = []
                    for selector in aggregation.get("clusterRoleSelectors") or []:
                        try:
                            match = _label_selector(selector)
                        except ValueError:
                            continue  # the controller logs a bad selector and skips it
                        for other in sorted(roles):
                            labels = roles[other]["metadata"].get("labels") or {}
                            if other == name or not match(labels):
                                continue
                            for rule in roles[other].get("rules") or []:
                                if rule not in rules:
                                    rules.append(copy.deepcopy(rule))
                    if rules != (role.get("rules") or []):
                        self._revision += 1
                        role["rules"] = rules
                        role["metadata"]["resourceVersion"] = str(self._revision)
                        changed = True
                if not changed:
                    return
            raise AssertionError("ClusterRole aggregation does not converge")

    # -- the verbs ---------------------------------------------------------------------------
    def _serve(
        self,
        resource: Resource,
        verb: str,
        namespace: str | None,
        name: str | None,
        query: dict[str, str],
        body: Any,
    ) -> tuple[int, dict[str, Any]]:
        dry_run = query.get("dryRun")
        if dry_run not in (None, "All"):
            raise ApiError(400, "BadRequest", f'unsupported dry run directive "{dry_run}"')
        if verb == "list":
            return 200, self._list(resource, namespace, query)
        if verb == "get":
            assert name is not None
            return 200, self._get(resource, namespace, name)
        if verb == "create":
            return 201, self._create(resource, namespace, body, dry_run=dry_run is not None)
        if verb == "update":
            assert name is not None
            return self._update(resource, namespace, name, body, dry_run=dry_run is not None)
        if verb == "delete":
            assert name is not None
            return 200, self._delete(resource, namespace, name, body, dry_run=dry_run is not None)
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported by this fake")

    def _not_found(self, resource: Resource, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{resource.qualified} "{name}" not found',
            {"name": name, "group": resource.group, "kind": resource.name},
        )

    def _list(
        self, resource: Resource, namespace: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        match = _selector(query.get("labelSelector", ""))
        if query.get("fieldSelector"):
            raise ApiError(400, "BadRequest", "field selectors are not supported by this fake")
        with self._lock:
            keys = sorted(
                k
                for k, o in self._objects.items()
                if k[0] == resource.name
                and (namespace is None or k[1] == namespace)
                and match(o["metadata"].get("labels") or {})
            )
            after = query.get("continue")
            if after:
                try:
                    last = tuple(json.loads(base64.b64decode(after)))
                except ValueError as e:
                    raise ApiError(410, "Expired", "the continue token is invalid") from e
                keys = [k for k in keys if k > last]
            limit = int(query.get("limit") or 0)
            more = bool(limit) and len(keys) > limit
            page = keys[:limit] if limit else keys
            items = []
            for key in page:
                item = copy.deepcopy(self._objects[key])
                del item["kind"], item["apiVersion"]  # as the real server does in lists
                items.append(item)
            meta: dict[str, Any] = {"resourceVersion": str(self._revision)}
            if more:
                meta["continue"] = base64.b64encode(json.dumps(list(page[-1])).encode()).decode()
                meta["remainingItemCount"] = len(keys) - len(page)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": items,
        }

    def _get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._objects.get((resource.name, namespace or "", name))
            if obj is None:
                raise self._not_found(resource, name)
            return copy.deepcopy(obj)

    def _check_body(
        self, resource: Resource, namespace: str | None, body: Any, name: str | None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion") not in (None, resource.api_version):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({obj['apiVersion']}) does not match the"
                f" expected API version ({resource.api_version})",
            )
        if obj.get("kind") not in (None, resource.kind):
            raise ApiError(
                400,
                "BadRequest",
                f"the kind in the data ({obj['kind']}) does not match the expected kind"
                f" ({resource.kind})",
            )
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if resource.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent"
                    " on the request",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name") != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the"
                f" URL ({name})",
            )
        for key in ("uid", "creationTimestamp", "managedFields", "generation"):
            if key != "uid" or name is None:
                meta.pop(key, None)
        _default_subjects(obj)
        problems = _name_problems(resource, str(meta.get("name") or ""))
        problems += _label_problems(meta.get("labels"))
        if resource in (CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS):
            problems += _binding_problems(resource, obj)
        if resource is CLUSTER_ROLES:
            problems += _role_problems(obj)
        if resource is ROLES:
            problems += _role_problems({**obj, "aggregationRule": None})
        if resource is SECRETS:
            problems += _secret_problems(obj)
        if problems:
            shown = meta.get("name") or ""
            raise ApiError(
                422,
                "Invalid",
                f'{resource.kind}{"." + resource.group if resource.group else ""} "{shown}" is'
                f" invalid: {', '.join(problems)}",
                {
                    "name": shown,
                    "group": resource.group,
                    "kind": resource.kind,
                    "causes": [
                        {"reason": "FieldValueInvalid", "message": p, "field": p.split(":")[0]}
                        for p in problems
                    ],
                },
            )
        return obj

    def _require_namespace(self, namespace: str | None) -> None:
        if namespace is not None and ("namespaces", "", namespace) not in self._objects:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _create(
        self, resource: Resource, namespace: str | None, body: Any, *, dry_run: bool
    ) -> dict[str, Any]:
        obj = self._check_body(resource, namespace, body, None)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if resource in (CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS):
            self._check_bind(resource, obj, namespace)
        if resource is NAMESPACES:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        key = (resource.name, namespace or "", meta["name"])
        with self._lock:
            self._require_namespace(namespace)
            if key in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{resource.qualified} "{meta["name"]}" already exists',
                    {"name": meta["name"], "group": resource.group, "kind": resource.name},
                )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            if dry_run:
                return obj
            self._revision += 1
            meta["resourceVersion"] = str(self._revision)
            self._objects[key] = copy.deepcopy(obj)
            if resource is CLUSTER_ROLES:
                self._aggregate()
            return obj

    def _update(
        self, resource: Resource, namespace: str | None, name: str, body: Any, *, dry_run: bool
    ) -> tuple[int, dict[str, Any]]:
        obj = self._check_body(resource, namespace, body, name)
        meta = obj["metadata"]
        key = (resource.name, namespace or "", name)
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                if not resource.create_on_update:
                    raise self._not_found(resource, name)
                self._require_namespace(namespace)
                self._check_bind(resource, obj, namespace)
                meta.pop("resourceVersion", None)
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = _now()
                if not dry_run:
                    self._revision += 1
                    meta["resourceVersion"] = str(self._revision)
                    self._objects[key] = copy.deepcopy(obj)
                    if resource is CLUSTER_ROLES:
                        self._aggregate()
                return 201, obj
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object'
                    " has been modified; please apply your changes to the latest version and"
                    " try again",
                    {"name": name, "group": resource.group, "kind": resource.name},
                )
            if meta.get("uid") not in (None, old["metadata"]["uid"]):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.qualified} "{name}": Precondition'
                    f" failed: UID in precondition: {meta['uid']}, UID in object meta:"
                    f" {old['metadata']['uid']}",
                )
            if "roleRef" in old and obj.get("roleRef") != old["roleRef"]:
                ref = obj.get("roleRef") or {}
                raise ApiError(
                    422,
                    "Invalid",
                    f'{resource.kind}.{resource.group} "{name}" is invalid: roleRef: Invalid'
                    f' value: rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}",'
                    f' Kind:"{ref.get("kind", "")}", Name:"{ref.get("name", "")}"}}:'
                    " cannot change roleRef",
                    {
                        "name": name,
                        "group": resource.group,
                        "kind": resource.kind,
                        "causes": [
                            {
                                "reason": "FieldValueInvalid",
                                "message": "Invalid value: cannot change roleRef",
                                "field": "roleRef",
                            }
                        ],
                    },
                )
            if resource in (CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS):
                self._check_bind(resource, obj, namespace)
            if resource is SECRETS:
                _check_secret_update(old, obj)
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            if dry_run:
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
                return 200, obj
            self._revision += 1
            meta["resourceVersion"] = str(self._revision)
            self._objects[key] = copy.deepcopy(obj)
            if resource is CLUSTER_ROLES:
                self._aggregate()  # a client's rules on an aggregated role are overwritten
            return 200, obj

    def _delete(
        self, resource: Resource, namespace: str | None, name: str, body: Any, *, dry_run: bool
    ) -> dict[str, Any]:
        key = (resource.name, namespace or "", name)
        preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        if isinstance(body, dict) and body.get("dryRun") not in (None, [], ["All"]):
            raise ApiError(400, "BadRequest", f"unsupported dry run directive {body['dryRun']}")
        dry_run = dry_run or (isinstance(body, dict) and body.get("dryRun") == ["All"])
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                raise self._not_found(resource, name)
            for field_name, attr in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
                wanted = preconditions.get(field_name)
                have = old["metadata"][field_name]
                if wanted and wanted != have:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {resource.qualified} "{name}":'
                        f" Precondition failed: {attr} in precondition: {wanted}, {attr} in"
                        f" object meta: {have}",
                        {"name": name, "group": resource.group, "kind": resource.name},
                    )
            if not dry_run:
                del self._objects[key]
                self._revision += 1
                if resource is CLUSTER_ROLES:
                    self._aggregate()
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": resource.group,
                "kind": resource.name,
                "uid": old["metadata"]["uid"],
            },
        }


class _Answered(Exception):  # noqa: N818 - control flow, not an error
    """Raised once a non-resource path (discovery) has its answer."""


def _resource_list(group_version: str, resources: Iterable[Resource]) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "update"]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": r.name,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }
            for r in resources
        ],
    }


# Discovery, so that kubectl can talk to the fake too (``kubectl apply -f -`` of `rbac render`).
_DISCOVERY: dict[str, Callable[[], dict[str, Any]]] = {
    "/api": lambda: {"kind": "APIVersions", "versions": ["v1"]},
    "/apis": lambda: {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": RBAC_GROUP,
                "versions": [{"groupVersion": RBAC_VERSION, "version": "v1"}],
                "preferredVersion": {"groupVersion": RBAC_VERSION, "version": "v1"},
            }
        ],
    },
    "/api/v1": lambda: _resource_list("v1", (NAMESPACES, SERVICE_ACCOUNTS, SECRETS)),
    f"/apis/{RBAC_VERSION}": lambda: _resource_list(
        RBAC_VERSION, (CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS, ROLES)
    ),
}


def _route(path: str) -> tuple[Resource, str | None, str | None] | None:
    """``(resource, namespace, name)`` for a served path, else None."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:3] == ["apis", RBAC_GROUP, "v1"]:
        group, rest = RBAC_GROUP, parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    resource = _BY_PATH.get((group, rest[0]))
    if resource is None or (namespace is not None and not resource.namespaced):
        return None
    return resource, namespace, rest[1] if len(rest) == 2 else None


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3's pool expects

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and
        # the client's delayed ACK add 40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read FakeKube.requests instead

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, doc = self.kube.handle(self.command, self.path, body)
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeKube]:
    """A started :class:`FakeKube`, stopped afterwards."""
    fake = FakeKube(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()


__all__ = ["AGGREGATE_TO", "RESOURCES", "FakeKube", "Request", "bootstrap_cluster_roles", "running"]
