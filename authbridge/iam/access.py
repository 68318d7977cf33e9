"""Access entries (the Amazon EKS access-entry API) as immutable values and pure checks.

An access entry lets one IAM principal (a user or a role) into one cluster
without a line in the mapping file, as ``aws eks create-access-entry`` does.
The store keeps them (:meth:`authbridge.store.base.Store.create_access_entry`
and friends); nothing here talks to a database.

Decisions:

* an entry is bound to the principal's **unique id** (``AIDA…`` / ``AROA…``),
  resolved when it is created. A principal deleted and re-created under the
  same ARN has a new id, so it does not inherit the entry; the old entry is
  still listed (with the ARN it was made for) and must be deleted before a
  new one is created for that ARN, as in EKS;
* ``principalArn`` is the principal's own ARN as the store knows it (its
  path included); a role ARN may be given without its path;
* policies are the EKS access policies, named by ARN
  (``arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy``) or by the
  short names ``cluster-admin``, ``admin``, ``edit``, ``view``,
  ``admin-view``; each is the authbridge ClusterRole of
  ``rbac/access-policies.yaml`` (:data:`POLICY_CLUSTER_ROLES`);
* a ``namespace`` scope lists 1 to 100 namespace names or ``*`` patterns
  (``team-*``), the same rule as ``bindings[].namespaces`` in a mapping file;
* ``authenticationMode`` is per cluster: ``CONFIG_MAP`` (the mapping file
  only), ``API_AND_CONFIG_MAP`` (the default: an entry wins over the file for
  the same principal) or ``API`` (entries only);
* every change bumps one store-wide *access version*, so a webhook worker
  can tell in one cheap read that what it cached is stale.

The username and group templates follow the mapping file's rules
(:mod:`authbridge.mapping.templates`); that check needs the mapping layer, so
the callers that write entries (the CLI) run it before the store is asked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from authbridge.errors import InputError
from authbridge.iam.model import iso8601

AuthenticationMode = Literal["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"]
AUTHENTICATION_MODES: Final[tuple[AuthenticationMode, ...]] = (
    "CONFIG_MAP",
    "API_AND_CONFIG_MAP",
    "API",
)
DEFAULT_AUTHENTICATION_MODE: Final[AuthenticationMode] = "API_AND_CONFIG_MAP"
EntryType = Literal["STANDARD"]
ENTRY_TYPES: Final[tuple[EntryType, ...]] = ("STANDARD",)
Scope = Literal["cluster", "namespace"]

POLICY_ARN_PREFIX: Final = "arn:aws:eks::aws:cluster-access-policy/"
# EKS access policy -> authbridge ClusterRole (rbac/access-policies.yaml)
POLICY_CLUSTER_ROLES: Final = {
    "AmazonEKSClusterAdminPolicy": "authbridge:cluster-admin",
    "AmazonEKSAdminPolicy": "authbridge:admin",
    "AmazonEKSEditPolicy": "authbridge:edit",
    "AmazonEKSViewPolicy": "authbridge:view",
    "AmazonEKSAdminViewPolicy": "authbridge:admin-view",
}
POLICY_SHORT_NAMES: Final = {
    "cluster-admin": "AmazonEKSClusterAdminPolicy",
    "admin": "AmazonEKSAdminPolicy",
    "edit": "AmazonEKSEditPolicy",
    "view": "AmazonEKSViewPolicy",
    "admin-view": "AmazonEKSAdminViewPolicy",
}
# The Kubernetes group an entry with at least one associated policy also gets: the
# RoleBindings and ClusterRoleBindings rendered from its policies bind this group.
# It is keyed by the principal's ARN so a mapping file exported from one store
# means the same in another; only a review of the entry's own principal (by its
# unique id) hands it out, and the reserved prefix keeps every other rule from it.
ENTRY_GROUP_PREFIX: Final = "authbridge-internal:access-entry:"
MAX_ENTRY_GROUP_LENGTH: Final = 253  # as mapping.templates.MAX_NAME_LENGTH
MAX_GROUPS: Final = 100
MAX_NAMESPACES: Final = 100

_CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)  # as authbridge.settings
_NAMESPACE_PATTERN = re.compile(r"[a-z0-9*](?:[-a-z0-9*]{0,61}[a-z0-9*])?", re.ASCII)


def _show(value: str) -> str:
    return ascii(value if len(value) <= 80 else value[:77] + "...")


def cluster_id(value: str) -> str:
    if not isinstance(value, str) or not _CLUSTER_ID.fullmatch(value):
        raise InputError(
            "clusterName",
            f"{_show(str(value))} is not a cluster id: 1 to 100 letters, digits, '.', '_'"
            " or '-', starting with a letter or digit",
            hint="e.g. --cluster-id prod",
        )
    return value


def authentication_mode(value: str) -> AuthenticationMode:
    for mode in AUTHENTICATION_MODES:
        if value == mode:
            return mode
    raise InputError(
        "authenticationMode",
        f"must be one of {', '.join(AUTHENTICATION_MODES)}, got {_show(value)}",
        hint="e.g. --authentication-mode API_AND_CONFIG_MAP",
    )


def entry_type(value: str) -> EntryType:
    if value != "STANDARD":
        raise InputError(
            "type",
            f"must be STANDARD, got {_show(value)}",
            hint="EC2, FARGATE and other node types do not exist in authbridge",
        )
    return "STANDARD"


def policy_name(value: str) -> str:
    """The EKS policy name (``AmazonEKSViewPolicy``) for an ARN, a name or a short name."""
    name = value[len(POLICY_ARN_PREFIX) :] if value.startswith(POLICY_ARN_PREFIX) else value
    name = POLICY_SHORT_NAMES.get(name, name)
    if name not in POLICY_CLUSTER_ROLES:
        raise InputError(
            "policyArn",
            f"{_show(value)} is not an access policy",
            hint="use cluster-admin, admin, edit, view, admin-view or a policy ARN from"
            " `authbridge access list-policies`",
        )
    return name


def entry_group(principal_arn: str) -> str:
    """The group an entry's associated policies are bound to (see ENTRY_GROUP_PREFIX).

    An ARN too long for a Kubernetes name (253 characters with the prefix) is
    replaced by its SHA-256, so the group stays the same for the same ARN.
    """
    group = ENTRY_GROUP_PREFIX + principal_arn
    if len(group) <= MAX_ENTRY_GROUP_LENGTH:
        return group
    digest = hashlib.sha256(principal_arn.encode("utf-8")).hexdigest()
    return f"{ENTRY_GROUP_PREFIX}sha256-{digest}"


def policy_for_cluster_role(cluster_role: str) -> str | None:
    """The EKS policy name whose ClusterRole is ``cluster_role``, or None."""
    return next((p for p, role in POLICY_CLUSTER_ROLES.items() if role == cluster_role), None)


def policy_arn(name: str) -> str:
    return POLICY_ARN_PREFIX + name


def scope(kind: str, namespaces: Sequence[str]) -> tuple[Scope, tuple[str, ...]]:
    """A checked ``(scope, namespaces)``: cluster takes none, namespace 1 to 100."""
    if kind == "cluster":
        if namespaces:
            raise InputError(
                "accessScope.namespaces",
                "a cluster scope takes no namespaces",
                hint="use --scope namespace --namespace N, or drop --namespace",
            )
        return "cluster", ()
    if kind != "namespace":
        raise InputError("accessScope.type", f"must be cluster or namespace, got {_show(kind)}")
    if not namespaces:
        raise InputError(
            "accessScope.namespaces",
            "a namespace scope needs at least one namespace",
            hint="pass --namespace N (patterns with * allowed, e.g. team-*)",
        )
    if len(namespaces) > MAX_NAMESPACES:
        raise InputError("accessScope.namespaces", f"at most {MAX_NAMESPACES} namespaces")
    out: list[str] = []
    for ns in namespaces:
        if not isinstance(ns, str) or not _NAMESPACE_PATTERN.fullmatch(ns):
            raise InputError(
                "accessScope.namespaces",
                f"{_show(str(ns))} is not a namespace name or pattern: at most 63 lowercase"
                " letters, digits, '-' and '*', starting and ending with a letter, digit or '*'",
            )
        if ns not in out:
            out.append(ns)
    return "namespace", tuple(out)


@dataclass(frozen=True)
class AccessEntry:
    cluster_id: str
    principal_id: str  # the unique id the entry is bound to (AIDA… / AROA…)
    principal_arn: str
    username: str | None  # a template; None = the default (the principal's ARN)
    groups: tuple[str, ...]
    type: EntryType
    created_at: datetime
    modified_at: datetime

    def entry_arn(self, partition: str, account_id: str) -> str:
        # EKS: arn:aws:eks:<region>:<acct>:access-entry/<cluster>/<kind>/<acct>/<name>/<uuid>;
        # authbridge has no region and keys entries by the principal's unique id.
        kind = "role" if ":role/" in self.principal_arn else "user"
        return (
            f"arn:{partition}:eks::{account_id}:access-entry/{self.cluster_id}/{kind}/"
            f"{self.principal_id}"
        )

    def default_username(self) -> str:
        """EKS's default: a user's ARN; a role's session ARN with ``{{SessionName}}``."""
        if ":role/" not in self.principal_arn:
            return self.principal_arn
        partition, account = _arn_parts(self.principal_arn)
        role = self.principal_arn.rsplit("/", 1)[1]
        return f"arn:{partition}:sts::{account}:assumed-role/{role}/{{{{SessionName}}}}"

    def to_aws(self) -> dict[str, Any]:
        partition, account = _arn_parts(self.principal_arn)
        return {
            "clusterName": self.cluster_id,
            "principalArn": self.principal_arn,
            "kubernetesGroups": list(self.groups),
            "accessEntryArn": self.entry_arn(partition, account),
            "createdAt": iso8601(self.created_at),
            "modifiedAt": iso8601(self.modified_at),
            "tags": {},
            "username": self.username if self.username is not None else self.default_username(),
            "type": self.type,
        }


@dataclass(frozen=True)
class PolicyAssociation:
    cluster_id: str
    principal_id: str
    principal_arn: str
    policy: str  # the EKS policy name, e.g. AmazonEKSViewPolicy
    scope: Scope
    namespaces: tuple[str, ...]
    associated_at: datetime
    modified_at: datetime

    @property
    def cluster_role(self) -> str:
        return POLICY_CLUSTER_ROLES[self.policy]

    def to_aws(self) -> dict[str, Any]:
        return {
            "policyArn": policy_arn(self.policy),
            "accessScope": {"type": self.scope, "namespaces": list(self.namespaces)},
            "associatedAt": iso8601(self.associated_at),
            "modifiedAt": iso8601(self.modified_at),
        }


def _arn_parts(arn: str) -> tuple[str, str]:
    pieces = arn.split(":")
    return pieces[1], pieces[4]


def list_policies_aws() -> dict[str, Any]:
    """``aws eks list-access-policies``: every policy with its ARN (and its ClusterRole)."""
    return {
        "accessPolicies": [
            {"name": name, "arn": policy_arn(name), "clusterRole": role}
            for name, role in POLICY_CLUSTER_ROLES.items()
        ]
    }


@dataclass(frozen=True)
class PolicySpec:
    policy: str  # the EKS policy name, e.g. AmazonEKSViewPolicy
    scope: Scope
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntrySpec:
    """One entry a mapping file asks for (``username`` None: the default)."""

    principal_arn: str
    username: str | None
    groups: tuple[str, ...]
    policies: tuple[PolicySpec, ...] = ()
    where: str = ""  # mapRoles[0] …, for messages


@dataclass(frozen=True)
class AccessImport:
    """What :meth:`Store.import_access_entries` did (or, dry run, would do): ARNs."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # in the store, not in the file, no prune

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "deleted": list(self.deleted),
            "unchanged": list(self.unchanged),
            "keptWithoutPrune": list(self.kept),
        }


@dataclass(frozen=True)
class AccessSnapshot:
    """Every cluster's mode and entries at one access version (a worker caches one)."""

    version: int
    modes: Mapping[str, AuthenticationMode]
    entries: Mapping[tuple[str, str], AccessEntry]  # (cluster id, principal id) -> entry
    # (cluster id, principal id) -> the entry's associated policies, by policy name
    policies: Mapping[tuple[str, str], tuple[PolicyAssociation, ...]] = field(default_factory=dict)

    def mode(self, cluster: str) -> AuthenticationMode:
        return self.modes.get(cluster, DEFAULT_AUTHENTICATION_MODE)

    def entry_for(self, cluster: str, principal_id: str) -> AccessEntry | None:
        """The entry of a user id, or of a role session's role (``AROA…:session``)."""
        return self.entries.get((cluster, principal_id.split(":", 1)[0]))

    def policies_for(self, cluster: str, principal_id: str) -> tuple[PolicyAssociation, ...]:
        """The associated policies of the entry :meth:`entry_for` gives (none: ``()``)."""
        return self.policies.get((cluster, principal_id.split(":", 1)[0]), ())

    def cluster_entries(self, cluster: str) -> list[AccessEntry]:
        """The entries of ``cluster``, by principal ARN (case-insensitively)."""
        found = [e for (c, _), e in self.entries.items() if c == cluster]
        return sorted(found, key=lambda e: (e.principal_arn.lower(), e.principal_arn))
