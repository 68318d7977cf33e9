"""The access explorer: who an IAM principal is in each cluster and what RBAC lets it do,
and which IAM principals reach a permission (pure: a :class:`Snapshot` in, values out).

Both answers are built from one :class:`Snapshot`: the IAM users (with their
groups) and roles, the mapping file, the access entries (:class:`AccessSnapshot`)
and each cluster's RBAC (:class:`~authbridge.explain.rbac.Rbac`: read from the
cluster, or rendered when it cannot be asked; each answer says which).

* The Kubernetes identity is :func:`authbridge.review.map_snapshot`, the very steps
  the webhook and ``/verify`` run once the token verified, so the username, uid,
  groups and matched rules are exactly theirs. A disabled user is refused, as its
  tokens are. A role is explained as a session named ``{{SessionName}}``
  (:data:`SESSION_PLACEHOLDER`; the characters ``{`` and ``}`` are in no real session
  name), so a username template shows as a template; an ``assumed-role`` ARN
  explains that one session.
* The roles a user may assume are the roles whose trust names the user, one of its
  groups or its account, as :func:`authbridge.sts.assume_role` decides (a disabled
  user assumes none); for a role, the users it trusts.
* Permissions follow the kube-apiserver: the groups the server adds
  (``system:authenticated``) count, ``system:masters`` is allowed everything before
  RBAC is asked, and bindings match as :mod:`authbridge.explain.rbac` describes. A
  User subject naming one session of a role (``admin:bob`` for the template
  ``admin:{{SessionName}}``) is a grant for that session only (``sessionName``).

:func:`explain_principal` raises :class:`~authbridge.errors.MalformedArn` for an
ARN that is not a user, role or role-session ARN, and
:class:`~authbridge.errors.NoSuchEntity` when no such principal exists;
:func:`explain_permission` raises :class:`~authbridge.errors.InputError` for a
malformed request (:func:`permission_request`). A cluster not in the snapshot is
an ``InputError`` naming ``clusterId``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from authbridge import arn as arns
from authbridge.errors import InputError, MalformedArn, NoSuchEntity
from authbridge.explain.rbac import (
    AUTHENTICATED_GROUP,
    PRIVILEGED_GROUP,
    Binding,
    Rbac,
    Request,
    Role,
    Rule,
    Subject,
    applies_to,
    in_scope,
)
from authbridge.iam import trust
from authbridge.iam.access import AccessSnapshot, AuthenticationMode
from authbridge.iam.model import Group, User
from authbridge.iam.model import Role as IamRole
from authbridge.mapping import templates
from authbridge.mapping.model import Identity, MatchedRule
from authbridge.mapping.model import Mapping as MappingFile
from authbridge.mapping.resolve import template_values
from authbridge.review import Review, map_snapshot

__all__ = [
    "SESSION_PLACEHOLDER",
    "ClusterAccess",
    "Grant",
    "IamSnapshot",
    "PermissionAnswer",
    "PermissionCluster",
    "PrincipalAnswer",
    "Reach",
    "Snapshot",
    "TrustPath",
    "explain_permission",
    "explain_principal",
    "permission_request",
]

SESSION_PLACEHOLDER: Final = "{{SessionName}}"
# A session name as STS allows it ([\w+=,.@-]{2,64}), for User subjects naming a session.
_SESSION_CHARS: Final = r"([\w+=,.@-]{2,64})"
_VERB = re.compile(r"\*|[a-z][a-zA-Z]{0,62}", re.ASCII)
_RESOURCE = re.compile(
    r"(\*|[a-z0-9][a-z0-9.-]{0,252})(/(\*|[a-z0-9][a-z0-9.-]{0,252}))?", re.ASCII
)
_API_GROUP = re.compile(r"|\*|[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", re.ASCII)
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_NAME = re.compile(r"[^/%\x00-\x1f\x7f]{1,253}")
_LIMIT: Final = 300


def _show(value: str) -> str:
    return ascii(value if len(value) <= 60 else value[:57] + "...")


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class IamSnapshot:
    """The IAM side: users with their groups, and roles with their trust."""

    partition: str
    users: tuple[User, ...]
    groups: Mapping[str, tuple[Group, ...]]  # user id -> the user's groups
    roles: tuple[IamRole, ...]


@dataclass(frozen=True)
class Snapshot:
    """Everything both answers are computed from (see the module docstring)."""

    iam: IamSnapshot
    mapping: MappingFile
    access: AccessSnapshot
    rbac: Mapping[str, Rbac]  # cluster id -> its RBAC
    clusters: tuple[str, ...]


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class TrustPath:
    """How a user may assume a role: the role's trust entry that names it."""

    user_arn: str
    role_arn: str
    kind: Literal["user", "group", "account"]
    arn: str  # the user, group or account root the trust names
    mfa_required: bool = False  # the allowing statement needs aws:MultiFactorAuthPresent

    def trust_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "arn": self.arn}
        if self.mfa_required:
            out["mfaRequired"] = True
        return out


@dataclass(frozen=True)
class Grant:
    """One binding that applies, through one of its subjects, with its role's rules."""

    binding: Binding
    subject: Subject
    role: Role
    rules: tuple[Rule, ...]  # all of the role's (by principal), or those that match
    resource_names: tuple[str, ...] = ()  # by permission: allowed only for these names
    session_name: str | None = None  # a User subject naming one session of a role
    iam_group: str | None = None  # the IAM group whose mapGroups rule gave the subject

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "binding": self.binding.to_json(),
            "subject": self.subject.to_json(),
            "role": self.role.to_json(),
            "rules": [r.to_json() for r in self.rules],
        }
        if self.resource_names:
            doc["resourceNames"] = list(self.resource_names)
        if self.session_name is not None:
            doc["sessionName"] = self.session_name
        if self.iam_group is not None:
            doc["iamGroup"] = self.iam_group
        return doc


@dataclass(frozen=True)
class Unresolved:
    """A binding that applies but whose rules are unknown (rendered RBAC, a role only
    the cluster has) or that grants nothing (its role does not exist)."""

    binding: Binding
    subject: Subject
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "binding": self.binding.to_json(),
            "subject": self.subject.to_json(),
            "reason": self.reason,
        }


def _rule_doc(rule: MatchedRule) -> dict[str, Any]:
    return {"section": rule.section, "index": rule.index, "arn": rule.arn}


def _identity_json(review: Review, mode: AuthenticationMode) -> dict[str, Any]:
    doc: dict[str, Any] = {"authenticationMode": mode, "authenticated": review.authenticated}
    if not review.authenticated:
        doc["reason"] = review.detail or review.reason
        doc["reasonCode"] = review.reason
        if review.hint:
            doc["hint"] = review.hint
    if review.user is not None:
        doc["kubernetes"] = {
            "username": review.user.username,
            "uid": review.user.uid,
            "groups": list(review.user.groups),
            "effectiveGroups": list(_effective_groups(review.user.groups)),
        }
    if review.rules:
        doc["matchedRule"] = _rule_doc(review.rules[0])
        doc["contributingRules"] = [_rule_doc(r) for r in review.rules]
    return doc


@dataclass(frozen=True)
class ClusterAccess:
    """By principal, one cluster: its Kubernetes identity and every grant it holds."""

    cluster_id: str
    mode: AuthenticationMode
    review: Review
    rbac: Rbac
    privileged: bool = False
    grants: tuple[Grant, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "clusterId": self.cluster_id,
            **_identity_json(self.review, self.mode),
            "rbac": self.rbac.to_json(),
            "privileged": self.privileged,
            "grants": [g.to_json() for g in self.grants],
            "unresolved": [u.to_json() for u in self.unresolved],
        }


@dataclass(frozen=True)
class PrincipalAnswer:
    """By principal: who it is, the roles it may assume (or who may assume it), per cluster."""

    arn: str
    kind: Literal["user", "role"]
    principal_id: str
    enabled: bool
    session_name: str | None
    iam_groups: tuple[str, ...]
    trust: tuple[TrustPath, ...]  # a user's assumable roles, or a role's trusted users
    clusters: tuple[ClusterAccess, ...]

    def to_json(self) -> dict[str, Any]:
        principal: dict[str, Any] = {
            "arn": self.arn,
            "type": self.kind,
            "principalId": self.principal_id,
            "enabled": self.enabled,
        }
        if self.kind == "user":
            principal["iamGroups"] = list(self.iam_groups)
        else:
            principal["sessionName"] = self.session_name
        doc: dict[str, Any] = {"principal": principal}
        if self.kind == "user":
            doc["assumableRoles"] = [
                {"roleArn": t.role_arn, "trust": t.trust_json()} for t in self.trust
            ]
        else:
            doc["assumableBy"] = [
                {"userArn": t.user_arn, "trust": t.trust_json()} for t in self.trust
            ]
        doc["clusters"] = [c.to_json() for c in self.clusters]
        return doc


@dataclass(frozen=True)
class Reach:
    """By permission: one IAM principal that reaches the request, and how."""

    arn: str
    kind: Literal["user", "role"]
    mode: AuthenticationMode
    review: Review
    privileged: bool
    grants: tuple[Grant, ...]
    trusted_by: tuple[TrustPath, ...] = ()  # for a role: the users that may assume it

    @property
    def allowed(self) -> bool:
        """Allowed outright (else only for the ``resourceNames`` its grants list)."""
        return self.privileged or any(not g.resource_names for g in self.grants)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "arn": self.arn,
            "type": self.kind,
            "access": "allowed" if self.allowed else "resourceNames",
            **_identity_json(self.review, self.mode),
            "privileged": self.privileged,
            "grants": [g.to_json() for g in self.grants],
        }
        if self.kind == "role":
            doc["assumableBy"] = [
                {"userArn": t.user_arn, "trust": t.trust_json()} for t in self.trusted_by
            ]
        return doc


@dataclass(frozen=True)
class PermissionCluster:
    cluster_id: str
    rbac: Rbac
    principals: tuple[Reach, ...]
    iam_groups: tuple[tuple[str, str], ...]  # (group ARN, how: "mapGroups[0]", "trust of …")
    unresolved: tuple[Unresolved, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "clusterId": self.cluster_id,
            "rbac": self.rbac.to_json(),
            "principals": [p.to_json() for p in self.principals],
            "iamGroups": [{"arn": g, "via": via} for g, via in self.iam_groups],
            "unresolved": [u.to_json() for u in self.unresolved],
        }


@dataclass(frozen=True)
class PermissionAnswer:
    request: Request
    clusters: tuple[PermissionCluster, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "clusters": [c.to_json() for c in self.clusters],
        }


# --------------------------------------------------------------------------- input checks


def permission_request(
    verb: str,
    resource: str,
    *,
    api_group: str = "",
    namespace: str | None = None,
    name: str | None = None,
) -> Request:
    """A checked :class:`Request`; :class:`InputError` naming the field otherwise.

    ``resource`` is a plural (``pods``, ``deployments``) with an optional subresource
    (``pods/log``); ``group/resource`` forms such as ``deployments.apps`` are taken as
    ``kubectl auth can-i`` takes them (the API group after the first dot) when no
    ``api_group`` is given.
    """
    for value, what in ((verb, "verb"), (resource, "resource")):
        if not isinstance(value, str) or len(value) > _LIMIT:
            raise InputError(what, f"must be a string of at most {_LIMIT} characters")
    if not _VERB.fullmatch(verb):
        raise InputError(
            "verb",
            f"{_show(verb)} is not a Kubernetes verb (get, list, watch, create, update, patch,"
            " delete, deletecollection, or another lowercase word; * for any)",
            hint="e.g. --verb delete",
        )
    main, slash, sub = resource.partition("/")
    if "." in main and not api_group:
        main, _, api_group = main.partition(".")
    resource = main + slash + sub
    if not _RESOURCE.fullmatch(resource):
        raise InputError(
            "resource",
            f"{_show(resource)} is not a resource: a lowercase plural such as pods or"
            " deployments, optionally with a subresource (pods/log)",
            hint="e.g. --resource deployments --api-group apps",
        )
    if not isinstance(api_group, str) or not _API_GROUP.fullmatch(api_group):
        raise InputError(
            "apiGroup",
            f"{_show(str(api_group))} is not an API group: empty for the core group, or a DNS"
            " name such as apps or rbac.authorization.k8s.io",
            hint="leave --api-group out for pods, services, secrets …",
        )
    if namespace is not None and (
        not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)
    ):
        raise InputError(
            "namespace",
            f"{_show(str(namespace))} is not a namespace name: at most 63 lowercase letters,"
            " digits and '-', starting and ending with a letter or digit",
            hint="leave --namespace out for cluster-scoped resources or all namespaces",
        )
    if name is not None and (
        not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", "..")
    ):
        raise InputError(
            "name", f"{_show(str(name))} is not an object name (1 to 253 characters, no '/')"
        )
    return Request(verb, resource, api_group, namespace, name)


def _check_clusters(snapshot: Snapshot, clusters: Sequence[str] | None) -> tuple[str, ...]:
    if clusters is None:
        return snapshot.clusters
    for c in clusters:
        if c not in snapshot.clusters:
            raise InputError(
                "clusterId",
                f"{_show(c)} is not a cluster this authbridge serves"
                f" ({', '.join(snapshot.clusters)})",
                hint="pass one of the configured clusters (setting clusters)",
            )
    return tuple(clusters)


# --------------------------------------------------------------------------- identities


def _effective_groups(groups: Iterable[str]) -> tuple[str, ...]:
    """The groups the kube-apiserver decides with: the webhook's, plus system:authenticated."""
    out = list(dict.fromkeys(groups))
    if AUTHENTICATED_GROUP not in out:
        out.append(AUTHENTICATED_GROUP)
    return tuple(out)


def _user_identity(user: User) -> Identity:
    return Identity(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=user.account_id,
        principal_id=user.user_id,
    )


def _role_identity(role: IamRole, partition: str, session: str) -> Identity:
    return Identity(
        # Not arns.assumed_role_arn: it refuses the placeholder, which is no session name.
        arn=f"arn:{partition}:sts::{role.account_id}:assumed-role/{role.name}/{session}",
        canonical_arn=role.arn,
        account_id=role.account_id,
        principal_id=f"{role.role_id}:{session}",
        session_name=session,
    )


def _review(
    snapshot: Snapshot, identity: Identity, cluster: str, group_arns: Sequence[str]
) -> Review:
    return map_snapshot(
        identity,
        (cluster,),
        snapshot=snapshot.access,
        mapping=snapshot.mapping,
        group_arns=group_arns,
    )


def _disabled(identity: Identity, cluster: str, user: User) -> Review:
    return Review(
        authenticated=False,
        reason="disabled",
        detail=f"user {user.name} is disabled: its tokens are refused",
        hint="enable it (authbridge iam update-user … --enabled) to let it in again",
        identity=identity,
        clusters=(cluster,),
    )


# --------------------------------------------------------------------------- trust


class _Trust:
    """Who may assume what: :func:`authbridge.sts.assume_role`'s check, as an index.

    Each role's trust policy is evaluated as the token endpoint evaluates it
    (:func:`authbridge.iam.trust.evaluate`: Deny statements, conditions), for
    the users its ``AWS`` principals name (directly, through a group, or as
    their account). A statement that allows only with MFA counts: the user may
    assume the role once signed in with MFA, which the path says.
    """

    def __init__(self, iam: IamSnapshot, now: float) -> None:
        self.iam = iam
        self.now = now
        self.users = {u.user_id: u for u in iam.users if u.enabled}
        self.members: dict[str, list[User]] = {}
        self.by_account: dict[str, list[User]] = {}
        self.group_ids: dict[str, frozenset[str]] = {}
        for u in self.users.values():
            self.by_account.setdefault(u.account_id, []).append(u)
            ids = []
            for g in iam.groups.get(u.user_id, ()):
                self.members.setdefault(g.group_id, []).append(u)
                ids.append(g.group_id)
            self.group_ids[u.user_id] = frozenset(ids)

    def _decide(self, role: IamRole, user: User, *, mfa: bool) -> trust.TrustDecision:
        return trust.evaluate(
            role.trust_policy,
            trust.TrustRequest(
                trust.ASSUME_ROLE,
                principal_ids=frozenset(
                    {user.user_id, user.account_id, *self.group_ids.get(user.user_id, ())}
                ),
                context=trust.assume_role_context(
                    user_arn=user.arn,
                    user_name=user.name,
                    user_id=user.user_id,
                    account_id=user.account_id,
                    mfa=mfa,
                    now=self.now,
                ),
            ),
        )

    def _path(self, user: User, role: IamRole) -> TrustPath | None:
        """How ``user`` may assume ``role``, or None when the trust policy does not let it."""
        decision = self._decide(role, user, mfa=False)
        mfa_required = False
        if not decision.allowed:
            decision = self._decide(role, user, mfa=True)
            if not decision.allowed:
                return None
            mfa_required = True
        statement = next(
            (st for st in role.trust_policy.statements if st.label == decision.statement), None
        )
        named = set(statement.aws) if statement is not None else set()
        entries = {e.principal_id: e for e in role.trust}
        groups = self.group_ids.get(user.user_id, frozenset())
        for pid, kind in (
            (user.user_id, "user"),
            *((g, "group") for g in sorted(groups)),
            (user.account_id, "account"),
        ):
            if pid in named and pid in entries:
                return TrustPath(user.arn, role.arn, kind, entries[pid].arn, mfa_required)  # type: ignore[arg-type]
        return None  # pragma: no cover - an allowing statement names one of these ids

    def roles_of(self, user: User) -> list[TrustPath]:
        """The roles ``user`` may assume, each with the trust principal that names it."""
        if not user.enabled or user.user_id not in self.users:
            return []
        out = [p for role in self.iam.roles if (p := self._path(user, role)) is not None]
        return sorted(out, key=lambda t: t.role_arn)

    def users_of(self, role: IamRole) -> list[TrustPath]:
        """The (enabled) users ``role`` trusts, each with the principal that names it."""
        candidates: dict[str, User] = {}
        for entry in role.trust:
            if entry.kind == "user":
                users = [self.users[entry.principal_id]] if entry.principal_id in self.users else []
            elif entry.kind == "group":
                users = self.members.get(entry.principal_id, [])
            elif entry.kind == "root":
                users = self.by_account.get(entry.principal_id, [])
            else:  # pragma: no cover - TrustKind has no other value
                users = []
            for u in users:
                candidates.setdefault(u.user_id, u)
        found = [p for u in candidates.values() if (p := self._path(u, role)) is not None]
        return sorted(found, key=lambda t: t.user_arn)


# --------------------------------------------------------------------------- by principal


def _find_user(iam: IamSnapshot, arn: str) -> User | None:
    exact = [u for u in iam.users if u.arn == arn]
    if exact:
        return exact[0]
    lowered = arn.lower()
    return next((u for u in iam.users if u.arn.lower() == lowered), None)


def _find_role(iam: IamSnapshot, account: str, name: str, path: str | None) -> IamRole | None:
    for role in iam.roles:
        if role.account_id == account and role.name.lower() == name.lower():
            if path is None or path == "/" or role.path == path:
                return role
    return None


def _session_pattern(template: str) -> re.Pattern[str] | None:
    """A regex for the names ``template`` (holding :data:`SESSION_PLACEHOLDER`) renders to."""
    if SESSION_PLACEHOLDER not in template:
        return None
    parts = template.split(SESSION_PLACEHOLDER)
    return re.compile(_SESSION_CHARS.join(re.escape(p) for p in parts))


def _session_of(pattern: re.Pattern[str] | None, name: str) -> str | None:
    if pattern is None:
        return None
    m = pattern.fullmatch(name)
    return m.group(1) if m is not None else None


def _mapgroups_source(
    snapshot: Snapshot, identity: Identity, review: Review, group: str
) -> str | None:
    """The IAM group whose mapGroups rule (among the review's) gives Kubernetes ``group``."""
    values = template_values(identity)
    for rule in review.rules:
        if rule.section != "mapGroups" or rule.index >= len(snapshot.mapping.map_groups):
            continue
        for template in snapshot.mapping.map_groups[rule.index].groups:
            try:
                if templates.render(template, values) == group:
                    return rule.arn
            except templates.RenderError:  # pragma: no cover - the review rendered it
                continue
    return None


def _subject_session(
    subject: Subject, binding: Binding, username: str, groups: Sequence[str]
) -> tuple[bool, str | None]:
    """Whether ``subject`` applies, and to which session only (a templated username)."""
    if applies_to(subject, binding, username, groups):
        return True, None
    if subject.kind == "User":
        session = _session_of(_session_pattern(username), subject.name)
        if session is not None:
            return True, session
    return False, None


def _principal_grants(
    snapshot: Snapshot, rbac: Rbac, identity: Identity, review: Review
) -> tuple[bool, list[Grant], list[Unresolved]]:
    user = review.user
    if user is None:
        return False, [], []
    username = user.username
    groups = _effective_groups(user.groups)
    grants: list[Grant] = []
    unresolved: list[Unresolved] = []
    for binding in rbac.bindings:
        for subject in binding.subjects:
            applies, session = _subject_session(subject, binding, username, groups)
            if not applies:
                continue
            role = rbac.role_of(binding)
            if role is None:
                unresolved.append(Unresolved(binding, subject, _missing(rbac, binding)))
                break
            iam_group = (
                _mapgroups_source(snapshot, identity, review, subject.name)
                if subject.kind == "Group"
                else None
            )
            grants.append(
                Grant(binding, subject, role, role.rules, session_name=session, iam_group=iam_group)
            )
            break
    return PRIVILEGED_GROUP in groups, grants, unresolved


def _missing(rbac: Rbac, binding: Binding) -> str:
    what = f"{binding.role_kind} {binding.role_name}"
    if binding.role_kind == "Role":
        what = f"Role {binding.namespace}/{binding.role_name}"
    if rbac.source == "rendered":
        return f"{what} is not known without the cluster: its rules are the cluster's"
    return f"{what} does not exist: the binding grants nothing"


def explain_principal(
    snapshot: Snapshot,
    principal_arn: str,
    *,
    clusters: Sequence[str] | None = None,
) -> PrincipalAnswer:
    """By principal (module docstring): an IAM user or role ARN, or a role session's."""
    if not isinstance(principal_arn, str) or len(principal_arn) > 2048:
        raise MalformedArn("principalArn", "must be an ARN of at most 2048 characters")
    chosen = _check_clusters(snapshot, clusters)
    iam = snapshot.iam
    parsed = arns.parse_principal(principal_arn, partitions=arns.KNOWN_PARTITIONS | {iam.partition})
    trusts = _Trust(iam, time.time())
    out: list[ClusterAccess] = []
    if parsed.kind == "user":
        user = _find_user(iam, principal_arn)
        if user is None:
            raise NoSuchEntity(
                f"no IAM user {principal_arn}",
                hint="authbridge iam list-users shows the users and their ARNs",
            )
        identity = _user_identity(user)
        group_arns = [g.arn for g in iam.groups.get(user.user_id, ())]
        for cluster in chosen:
            review = (
                _review(snapshot, identity, cluster, group_arns)
                if user.enabled
                else _disabled(identity, cluster, user)
            )
            out.append(_cluster_access(snapshot, cluster, identity, review))
        return PrincipalAnswer(
            arn=user.arn,
            kind="user",
            principal_id=user.user_id,
            enabled=user.enabled,
            session_name=None,
            iam_groups=tuple(group_arns),
            trust=tuple(trusts.roles_of(user)),
            clusters=tuple(out),
        )
    if parsed.kind not in ("role", "assumed-role"):
        raise MalformedArn(
            "principalArn",
            f"{_show(principal_arn)} is a {parsed.kind} ARN; the explorer takes an IAM user,"
            " role or assumed-role (role session) ARN",
        )
    path = parsed.path if parsed.kind == "role" else None
    role = _find_role(iam, parsed.account_id, parsed.name, path)
    if role is None:
        raise NoSuchEntity(
            f"no IAM role {principal_arn}",
            hint="authbridge iam list-roles shows the roles and their ARNs",
        )
    session = parsed.session_name if parsed.kind == "assumed-role" else None
    identity = _role_identity(role, iam.partition, session or SESSION_PLACEHOLDER)
    for cluster in chosen:
        review = _review(snapshot, identity, cluster, ())
        out.append(_cluster_access(snapshot, cluster, identity, review))
    return PrincipalAnswer(
        arn=role.arn,
        kind="role",
        principal_id=role.role_id,
        enabled=True,
        session_name=session or SESSION_PLACEHOLDER,
        iam_groups=(),
        trust=tuple(trusts.users_of(role)),
        clusters=tuple(out),
    )


def _cluster_access(
    snapshot: Snapshot, cluster: str, identity: Identity, review: Review
) -> ClusterAccess:
    rbac = snapshot.rbac[cluster]
    mode = snapshot.access.mode(cluster)
    if review.user is None:
        return ClusterAccess(cluster, mode, review, rbac)
    privileged, grants, unresolved = _principal_grants(snapshot, rbac, identity, review)
    return ClusterAccess(cluster, mode, review, rbac, privileged, tuple(grants), tuple(unresolved))


# --------------------------------------------------------------------------- by permission


@dataclass(frozen=True)
class _Granting:
    binding: Binding
    subject: Subject
    role: Role
    rules: tuple[Rule, ...]
    names: tuple[str, ...]


class _Index:
    """The bindings that grant the request in one cluster, by subject."""

    def __init__(self, rbac: Rbac, request: Request) -> None:
        self.users: dict[str, list[_Granting]] = {}
        self.groups: dict[str, list[_Granting]] = {}
        self.service_accounts: dict[str, list[_Granting]] = {}
        self.unresolved: list[Unresolved] = []
        for binding in rbac.bindings:
            if not in_scope(binding, request):
                continue
            role = rbac.role_of(binding)
            if role is None:
                if rbac.source == "rendered":
                    self.unresolved.extend(
                        Unresolved(binding, s, _missing(rbac, binding)) for s in binding.subjects
                    )
                continue
            match = rbac.match(role, request)
            if match is None:
                continue
            rules = tuple(role.rules[i] for i in match.allowing) or tuple(
                r for r in role.rules if r.covers(request)
            )
            names = () if match.allowing else match.names
            for subject in binding.subjects:
                granting = _Granting(binding, subject, role, rules, names)
                if subject.kind == "User":
                    self.users.setdefault(subject.name, []).append(granting)
                elif subject.kind == "Group":
                    self.groups.setdefault(subject.name, []).append(granting)
                elif subject.kind == "ServiceAccount":
                    ns = subject.namespace or binding.namespace or ""
                    name = f"system:serviceaccount:{ns}:{subject.name}"
                    self.service_accounts.setdefault(name, []).append(granting)

    def grants_for(
        self, snapshot: Snapshot, identity: Identity, review: Review
    ) -> tuple[bool, list[Grant]]:
        user = review.user
        if user is None:
            return False, []
        username = user.username
        groups = _effective_groups(user.groups)
        found: list[tuple[_Granting, str | None, str | None]] = []
        found.extend((g, None, None) for g in self.users.get(username, ()))
        found.extend((g, None, None) for g in self.service_accounts.get(username, ()))
        pattern = _session_pattern(username)
        if pattern is not None:
            for name, items in self.users.items():
                session = _session_of(pattern, name)
                if session is not None:
                    found.extend((g, session, None) for g in items)
        for group in groups:
            grouped = self.groups.get(group)
            if grouped:
                source = _mapgroups_source(snapshot, identity, review, group)
                found.extend((g, None, source) for g in grouped)
        grants = [
            Grant(g.binding, g.subject, g.role, g.rules, g.names, session, iam_group)
            for g, session, iam_group in found
        ]
        grants.sort(key=lambda g: (g.binding.kind, g.binding.namespace or "", g.binding.name))
        return PRIVILEGED_GROUP in groups, grants


def explain_permission(
    snapshot: Snapshot,
    request: Request,
    *,
    clusters: Sequence[str] | None = None,
) -> PermissionAnswer:
    """By permission (module docstring): the IAM principals that reach ``request``."""
    chosen = _check_clusters(snapshot, clusters)
    iam = snapshot.iam
    trusts = _Trust(iam, time.time())
    principals: list[tuple[Literal["user", "role"], str, Identity, Sequence[str], IamRole | None]]
    principals = [
        ("user", u.arn, _user_identity(u), [g.arn for g in iam.groups.get(u.user_id, ())], None)
        for u in sorted(iam.users, key=lambda u: u.arn)
        if u.enabled
    ]
    principals += [
        ("role", r.arn, _role_identity(r, iam.partition, SESSION_PLACEHOLDER), (), r)
        for r in sorted(iam.roles, key=lambda r: r.arn)
    ]
    out: list[PermissionCluster] = []
    for cluster in chosen:
        rbac = snapshot.rbac[cluster]
        mode = snapshot.access.mode(cluster)
        index = _Index(rbac, request)
        reaches: list[Reach] = []
        iam_groups: dict[str, str] = {}
        for kind, arn, identity, group_arns, role in principals:
            review = _review(snapshot, identity, cluster, group_arns)
            if review.user is None:
                continue
            privileged, grants = index.grants_for(snapshot, identity, review)
            if not privileged and not grants:
                continue
            paths = tuple(trusts.users_of(role)) if role is not None else ()
            reaches.append(Reach(arn, kind, mode, review, privileged, tuple(grants), paths))
            for g in grants:
                if g.iam_group is not None:
                    iam_groups.setdefault(
                        g.iam_group, f"mapGroups rule giving group {g.subject.name}"
                    )
            for p in paths:
                if p.kind == "group":
                    iam_groups.setdefault(p.arn, f"trusted by role {arn}")
        out.append(
            PermissionCluster(
                cluster,
                rbac,
                tuple(reaches),
                tuple(sorted(iam_groups.items())),
                tuple(index.unresolved),
            )
        )
    return PermissionAnswer(request, tuple(out))
