"""Values the mapping takes and gives: identities in, Kubernetes users out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from authbridge.errors import AuthbridgeError


class MappingError(AuthbridgeError):
    """A mapping file that fails validation; ``problems`` lists every one of them.

    Each problem names the file, the entry (``mapRoles[2]``) and the field, and
    says what to change.
    """

    code = "MappingInvalid"

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems), hint=hint)


@dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for (from its claims)."""

    arn: str  # session ARN: user ARN or arn:…:sts::<acct>:assumed-role/<Role>/<session>
    canonical_arn: str  # user ARN or role ARN (with its path)
    account_id: str
    principal_id: str  # AIDA… or AROA…:<session>
    session_name: str | None = None
    access_key_id: str | None = None


@dataclass(frozen=True)
class MatchedRule:
    """Which mapping entry decided, for /verify and the logs."""

    section: Literal["mapRoles", "mapUsers", "mapGroups", "mapAccounts", "accessEntry"]
    index: int  # position in that section (0 for an access entry)
    arn: str | None  # the rolearn / userarn / grouparn of the entry; None for mapAccounts


@dataclass(frozen=True)
class KubeIdentity:
    """What the kube-apiserver is told: TokenReview ``status.user``."""

    username: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """The mapping's answer: a user (with the rules that made it) or why not."""

    user: KubeIdentity | None
    rules: tuple[MatchedRule, ...] = ()
    reason: str | None = None  # set when user is None: e.g. "no mapping rule matched …"


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file (parsed by :func:`authbridge.mapping.parse.parse_mapping`)."""

    source: str  # file path or "<string>", for messages
    digest: str  # sha256 of the file's bytes: what /readyz and metrics show
    cluster_id: str | None  # when set, the mapping applies to this cluster only
    map_roles: tuple[RoleRule, ...] = ()
    map_users: tuple[UserRule, ...] = ()
    map_groups: tuple[GroupRule, ...] = ()
    map_accounts: tuple[str, ...] = ()
    bindings: tuple[Binding, ...] = ()
    service_accounts: tuple[ServiceAccountRule, ...] = ()
    # What parse_mapping found doubtful but valid (authbridge.mapping.collisions): derived
    # from the rules above, so not part of equality.
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class RoleRule:
    rolearn: str
    username: str  # template
    groups: tuple[str, ...] = ()  # templates
    allow_reserved_prefixes: bool = False


@dataclass(frozen=True)
class UserRule:
    userarn: str
    username: str
    groups: tuple[str, ...] = ()
    allow_reserved_prefixes: bool = False


@dataclass(frozen=True)
class GroupRule:
    grouparn: str
    groups: tuple[str, ...]
    username: str | None = None  # template used when no mapUsers entry names the user
    allow_reserved_prefixes: bool = False


@dataclass(frozen=True)
class Binding:
    """``bindings[]``: a Kubernetes group (or user) bound to a ClusterRole (RBAC step)."""

    cluster_role: str
    group: str | None = None
    user: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: a ClusterRoleBinding
    allow_reserved_prefixes: bool = False  # may bind e.g. system:authenticated
    # Where the binding comes from, for the objects' source annotation; None: the
    # file's ``bindings[i]``. An access entry's policy says so (mapping.entries).
    source: str | None = None


@dataclass(frozen=True)
class ServiceAccountRule:
    """``serviceAccounts[]``: an IAM role's in-cluster twin (RBAC step)."""

    rolearn: str
    namespace: str
    name: str
    cluster_role: str | None = None
    namespaces: tuple[str, ...] = ()
