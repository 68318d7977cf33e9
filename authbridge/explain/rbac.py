"""RBAC as the kube-apiserver's RBAC authorizer decides it, over plain values (pure).

The objects are what the authorizer reads: ClusterRoles, Roles, ClusterRoleBindings
and RoleBindings (:func:`rbac_from_objects` takes the server's JSON, as
:meth:`authbridge.kube.KubeAdapter.rbac_objects` lists it; :func:`rendered_rbac`
takes the bindings ``rbac render`` would write, when the cluster cannot be asked).
The matching is Kubernetes' own (``plugin/pkg/auth/authorizer/rbac/rbac.go`` and
``pkg/apis/rbac/v1/evaluation_helpers.go``):

* a rule allows a request when its ``verbs``, ``apiGroups`` and ``resources`` each
  hold the request's value or ``*``; a subresource request (``pods/log``) matches
  ``pods/log``, ``*/log`` or ``*``, never ``pods``; ``resourceNames``, when set,
  restrict the rule to those object names, so a request without a name (list,
  create, or any question about a resource in general) is not allowed by it. The
  explorer reports such rules apart (:attr:`Match.names`) instead of dropping them;
* a ClusterRoleBinding applies in every namespace and to cluster-scoped requests;
  a RoleBinding only to requests in its own namespace (its roleRef a ClusterRole,
  or a Role of that namespace);
* a subject applies when a User's name is the username, a Group's name one of the
  groups, a ServiceAccount's ``system:serviceaccount:<ns>:<name>`` the username
  (its namespace, when empty, the binding's);
* a binding whose role does not exist grants nothing (the authorizer skips it);
  the explorer lists it with the reason.

ClusterRole aggregation: a live cluster's aggregated ClusterRoles (admin, edit,
view …) hold the rules kube-controller-manager copied into them, and those stored
rules are what the authorizer uses, so :func:`rbac_from_objects` takes them as
they are (``aggregate=False``) and only names the roles they come from. Rendered
RBAC has no controller behind it: :func:`rendered_rbac` computes the union itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from authbridge.mapping.model import Mapping as MappingFile
from authbridge.rbac.desired import desired_state
from authbridge.rbac.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, SOURCE_ANNOTATION
from authbridge.rbac.policies import ACCESS_POLICIES_FILE

__all__ = [
    "AUTHENTICATED_GROUP",
    "PRIVILEGED_GROUP",
    "Binding",
    "Match",
    "Rbac",
    "RbacSource",
    "Request",
    "Role",
    "Rule",
    "Subject",
    "rbac_from_objects",
    "rendered_rbac",
]

RbacSource = Literal["cluster", "rendered"]
AUTHENTICATED_GROUP: Final = (
    "system:authenticated"  # every authenticated user's, added by the server
)
PRIVILEGED_GROUP: Final = "system:masters"  # allowed everything before RBAC is asked
RBAC_GROUP: Final = "rbac.authorization.k8s.io"
_ENTRY_SOURCE: Final = "accessEntries["
# The bootstrap policy's cluster-admin (bootstrappolicy/policy.go): every rendered
# mapping may bind it, and its rules are the same in every cluster.
_CLUSTER_ADMIN: Final = {
    "apiVersion": f"{RBAC_GROUP}/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "cluster-admin"},
    "rules": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
}


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


@dataclass(frozen=True)
class Request:
    """A resource request as the authorizer sees it; ``namespace`` None: cluster-scoped
    (or across all namespaces, as ``kubectl get pods -A`` asks)."""

    verb: str
    resource: str  # plural, with an optional subresource: "pods", "pods/log"
    api_group: str = ""  # "" is the core group
    namespace: str | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "resource": self.resource,
            "apiGroup": self.api_group,
            "namespace": self.namespace,
            "name": self.name,
        }


@dataclass(frozen=True)
class Rule:
    """One PolicyRule."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, doc: Any) -> Rule:
        doc = doc if isinstance(doc, Mapping) else {}
        return cls(
            verbs=_strings(doc.get("verbs")),
            api_groups=_strings(doc.get("apiGroups")),
            resources=_strings(doc.get("resources")),
            resource_names=_strings(doc.get("resourceNames")),
            non_resource_urls=_strings(doc.get("nonResourceURLs")),
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"verbs": list(self.verbs)}
        if self.non_resource_urls:
            doc["nonResourceURLs"] = list(self.non_resource_urls)
        else:
            doc["apiGroups"] = list(self.api_groups)
            doc["resources"] = list(self.resources)
        if self.resource_names:
            doc["resourceNames"] = list(self.resource_names)
        return doc

    def covers(self, request: Request) -> bool:
        """Verbs, API group and resource match (``resourceNames`` aside: see :meth:`allows`)."""
        if self.non_resource_urls:
            return False
        if "*" not in self.verbs and request.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and request.api_group not in self.api_groups:
            return False
        _, slash, sub = request.resource.partition("/")
        for resource in self.resources:
            if resource in ("*", request.resource):
                return True
            if slash and resource == f"*/{sub}":
                return True
        return False

    def allows(self, request: Request) -> bool:
        """RuleAllows: :meth:`covers`, and ``resourceNames`` empty or naming the object."""
        if not self.covers(request):
            return False
        return not self.resource_names or (
            request.name is not None and request.name in self.resource_names
        )


@dataclass(frozen=True)
class Role:
    """A ClusterRole (``namespace`` None) or a Role."""

    kind: Literal["ClusterRole", "Role"]
    name: str
    namespace: str | None
    rules: tuple[Rule, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    selectors: tuple[Mapping[str, Any], ...] | None = None  # aggregationRule's, if any
    aggregated_from: tuple[str, ...] = ()  # the ClusterRoles whose rules it holds

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.namespace is not None:
            doc["namespace"] = self.namespace
        if self.selectors is not None:
            doc["aggregatedFrom"] = list(self.aggregated_from)
        return doc


@dataclass(frozen=True)
class Subject:
    kind: str  # User, Group, ServiceAccount (anything else never applies)
    name: str
    namespace: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.namespace:
            doc["namespace"] = self.namespace
        return doc


@dataclass(frozen=True)
class Binding:
    kind: Literal["ClusterRoleBinding", "RoleBinding"]
    name: str
    namespace: str | None
    role_kind: str  # ClusterRole or Role
    role_name: str
    subjects: tuple[Subject, ...]
    source: str | None = None  # authbridge.dev/source: the mapping entry or access entry
    managed: bool = False  # labelled managed-by authbridge

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.namespace is not None:
            doc["namespace"] = self.namespace
        doc["roleRef"] = {"kind": self.role_kind, "name": self.role_name}
        doc["managedByAuthbridge"] = self.managed
        doc["source"] = self.source
        entry = _entry_source(self.source)
        if entry is not None:
            doc["accessEntry"] = {"principalArn": entry[0], "policy": entry[1]}
        return doc


def _entry_source(source: str | None) -> tuple[str, str] | None:
    """``(principal ARN, policy)`` of an ``accessEntries[<ARN>].<policy>`` source
    (:func:`authbridge.mapping.entries.entry_source`), else None."""
    if source is None or not source.startswith(_ENTRY_SOURCE) or "]." not in source:
        return None
    principal, _, policy = source[len(_ENTRY_SOURCE) :].rpartition("].")
    return (principal, policy) if principal and policy else None


@dataclass(frozen=True)
class Match:
    """The rules of one role that cover a request: ``allowing`` allow it outright,
    ``names`` only for the object names they list (``resourceNames``)."""

    allowing: tuple[int, ...]  # indexes into the role's rules
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rbac:
    """One cluster's RBAC objects, and where they were read from."""

    source: RbacSource
    where: str  # the API server, or what was rendered
    cluster_roles: Mapping[str, Role]
    roles: Mapping[tuple[str, str], Role]  # (namespace, name)
    bindings: tuple[Binding, ...]
    notes: tuple[str, ...] = ()  # what could not be read or placed

    def role_of(self, binding: Binding) -> Role | None:
        """The role ``binding`` refers to, or None when there is none (it grants nothing)."""
        if binding.role_kind == "ClusterRole":
            return self.cluster_roles.get(binding.role_name)
        if binding.role_kind == "Role" and binding.namespace is not None:
            return self.roles.get((binding.namespace, binding.role_name))
        return None

    def match(self, role: Role, request: Request) -> Match | None:
        """Which of ``role``'s rules cover ``request``; None when none does."""
        allowing: list[int] = []
        names: list[str] = []
        for i, rule in enumerate(role.rules):
            if not rule.covers(request):
                continue
            if rule.allows(request):
                allowing.append(i)
            else:
                names.extend(n for n in rule.resource_names if n not in names)
        if not allowing and not names:
            return None
        return Match(tuple(allowing), tuple(names))

    def allows(self, username: str, groups: Iterable[str], request: Request) -> bool:
        """The RBAC authorizer's decision for ``username`` in ``groups`` (as given: add
        system:authenticated yourself) on ``request``: some binding in scope whose
        subject applies and whose role has a rule allowing it."""
        groups = frozenset(groups)
        for binding in self.bindings:
            if not in_scope(binding, request):
                continue
            if not any(applies_to(s, binding, username, groups) for s in binding.subjects):
                continue
            role = self.role_of(binding)
            if role is not None and any(r.allows(request) for r in role.rules):
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "where": self.where, "notes": list(self.notes)}


def applies_to(subject: Subject, binding: Binding, username: str, groups: Iterable[str]) -> bool:
    """appliesToUser (rbac.go)."""
    if subject.kind == "User":
        return subject.name == username
    if subject.kind == "Group":
        return subject.name in groups
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding.namespace or ""
        return username == f"system:serviceaccount:{namespace}:{subject.name}"
    return False


def in_scope(binding: Binding, request: Request) -> bool:
    """A ClusterRoleBinding applies everywhere; a RoleBinding in its own namespace only."""
    if binding.kind == "ClusterRoleBinding":
        return True
    return request.namespace is not None and binding.namespace == request.namespace


# -- label selectors (aggregationRule.clusterRoleSelectors) ------------------------------------


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector: matchLabels and matchExpressions, all must hold; an empty
    selector selects nothing in an aggregationRule (as the controller treats it)."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return False
    if any(labels.get(str(k)) != v for k, v in match_labels.items()):
        return False
    for e in expressions:
        if not isinstance(e, Mapping):
            return False
        key, op, values = str(e.get("key")), e.get("operator"), _strings(e.get("values"))
        has = key in labels
        if op == "In" and not (has and labels[key] in values):
            return False
        if op == "NotIn" and has and labels[key] in values:
            return False
        if op == "Exists" and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _aggregate(roles: dict[str, Role], *, union: bool) -> dict[str, Role]:
    """Each aggregated ClusterRole with the names it draws from; with ``union`` its rules
    become the union of theirs, to a fixed point (as the controller converges)."""
    out = dict(roles)
    for _ in range(len(out) + 1):
        changed = False
        for name, role in sorted(out.items()):
            if role.selectors is None:
                continue
            sources = sorted(
                other.name
                for other in out.values()
                if other.name != name and any(_selects(s, other.labels) for s in role.selectors)
            )
            rules = role.rules
            if union:
                merged: list[Rule] = []
                for source in sources:
                    merged.extend(r for r in out[source].rules if r not in merged)
                rules = tuple(merged)
            if rules != role.rules or tuple(sources) != role.aggregated_from:
                out[name] = Role(
                    role.kind,
                    role.name,
                    None,
                    rules,
                    role.labels,
                    role.selectors,
                    tuple(sources),
                )
                changed = True
        if not changed:
            break
    return out


# -- building -----------------------------------------------------------------------------------


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _role(doc: Mapping[str, Any]) -> Role | None:
    meta = _meta(doc)
    name = meta.get("name")
    if not isinstance(name, str):
        return None
    labels = meta.get("labels")
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}
    rules = doc.get("rules")
    parsed = tuple(Rule.from_doc(r) for r in rules) if isinstance(rules, list) else ()
    if doc.get("kind") == "Role":
        namespace = meta.get("namespace")
        if not isinstance(namespace, str):
            return None
        return Role("Role", name, namespace, parsed, labels)
    aggregation = doc.get("aggregationRule")
    selectors = None
    if isinstance(aggregation, Mapping):
        raw = aggregation.get("clusterRoleSelectors")
        selectors = tuple(s for s in raw if isinstance(s, Mapping)) if isinstance(raw, list) else ()
    return Role("ClusterRole", name, None, parsed, labels, selectors)


def _binding(doc: Mapping[str, Any]) -> Binding | None:
    meta = _meta(doc)
    name = meta.get("name")
    ref = doc.get("roleRef")
    if not isinstance(name, str) or not isinstance(ref, Mapping):
        return None
    kind = doc.get("kind")
    namespace = meta.get("namespace") if kind == "RoleBinding" else None
    if kind == "RoleBinding" and not isinstance(namespace, str):
        return None
    subjects = []
    for s in doc.get("subjects") or []:
        if isinstance(s, Mapping) and isinstance(s.get("name"), str):
            ns = s.get("namespace")
            subjects.append(
                Subject(str(s.get("kind")), s["name"], ns if isinstance(ns, str) and ns else None)
            )
    annotations = meta.get("annotations")
    source = annotations.get(SOURCE_ANNOTATION) if isinstance(annotations, Mapping) else None
    labels = meta.get("labels")
    managed = isinstance(labels, Mapping) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
    return Binding(
        "RoleBinding" if kind == "RoleBinding" else "ClusterRoleBinding",
        name,
        namespace if isinstance(namespace, str) else None,
        str(ref.get("kind") or ""),
        str(ref.get("name") or ""),
        tuple(subjects),
        source if isinstance(source, str) else None,
        managed,
    )


def rbac_from_objects(
    docs: Iterable[Mapping[str, Any]],
    *,
    source: RbacSource,
    where: str,
    aggregate: bool = False,
    notes: Sequence[str] = (),
) -> Rbac:
    """The RBAC of ``docs`` (manifests with ``kind``). ``aggregate``: compute aggregated
    ClusterRoles' rules (else their stored rules stand, as on a live cluster)."""
    cluster_roles: dict[str, Role] = {}
    roles: dict[tuple[str, str], Role] = {}
    bindings: list[Binding] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind in ("ClusterRole", "Role"):
            role = _role(doc)
            if role is None:
                continue
            if role.namespace is None:
                cluster_roles[role.name] = role
            else:
                roles[(role.namespace, role.name)] = role
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            binding = _binding(doc)
            if binding is not None:
                bindings.append(binding)
    bindings.sort(key=lambda b: (b.kind, b.namespace or "", b.name))
    return Rbac(
        source,
        where,
        _aggregate(cluster_roles, union=aggregate),
        roles,
        tuple(bindings),
        tuple(notes),
    )


def shipped_cluster_roles() -> list[dict[str, Any]]:
    """The ClusterRoles whose rules are known without asking a cluster: the bootstrap
    cluster-admin and authbridge's access policies (rbac/access-policies.yaml)."""
    import yaml  # the shipped file only; nothing else here parses YAML

    docs = [d for d in yaml.safe_load_all(ACCESS_POLICIES_FILE.read_text(encoding="utf-8")) if d]
    return [_CLUSTER_ADMIN, *(d for d in docs if d.get("kind") == "ClusterRole")]


def rendered_rbac(
    mapping: MappingFile,
    *,
    namespaces: Iterable[str] | None = None,
    why: str,
    cluster_roles: Sequence[Mapping[str, Any]] | None = None,
) -> Rbac:
    """The RBAC ``rbac render`` gives for ``mapping`` (an effective mapping: file plus entries,
    :func:`authbridge.mapping.entries.effective_mapping`), with the shipped ClusterRoles.

    ``why`` says why the cluster was not asked (it leads the notes). A binding to any
    other ClusterRole (Kubernetes' admin, edit, view, or one of the operator's) is kept
    and reported unresolved: only the cluster knows its rules.
    """
    state = desired_state(mapping, None if namespaces is None else list(namespaces))
    roles = list(cluster_roles if cluster_roles is not None else shipped_cluster_roles())
    docs = [*roles, *(o.manifest for o in state.objects)]
    return rbac_from_objects(
        docs,
        source="rendered",
        where=f"the bindings rendered from {mapping.source}",
        aggregate=True,
        notes=(why, *state.warnings),
    )
