"""IAM entities as immutable values, with their AWS CLI JSON shapes.

The store returns these; nothing here talks to a database. Secrets never live
on these objects except on :class:`NewAccessKey`, which exists only for the
single moment a secret is shown to its owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from authbridge.iam.trust import TrustPolicy, legacy_policy

AccessKeyStatus = Literal["Active", "Inactive"]
TrustKind = Literal["user", "group", "root"]


def iso8601(ts: datetime | None) -> str | None:
    """The timestamp shape the AWS CLI prints: ``2026-11-21T23:16:34+00:00``."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Account:
    account_id: str
    alias: str | None
    created_at: datetime

    def to_aws(self) -> dict[str, Any]:
        return {
            "AccountId": self.account_id,
            "AccountAlias": self.alias,
            "CreateDate": iso8601(self.created_at),
        }


@dataclass(frozen=True)
class User:
    user_id: str  # AIDA…, immutable and never reused
    account_id: str
    name: str
    path: str
    arn: str
    enabled: bool
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)

    def to_aws(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Path": self.path,
            "UserName": self.name,
            "UserId": self.user_id,
            "Arn": self.arn,
            "CreateDate": iso8601(self.created_at),
            "Enabled": self.enabled,
        }
        if self.tags:
            out["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]
        return out


@dataclass(frozen=True)
class Group:
    group_id: str  # AGPA…
    account_id: str
    name: str
    path: str
    arn: str
    created_at: datetime

    def to_aws(self) -> dict[str, Any]:
        return {
            "Path": self.path,
            "GroupName": self.name,
            "GroupId": self.group_id,
            "Arn": self.arn,
            "CreateDate": iso8601(self.created_at),
        }


@dataclass(frozen=True)
class TrustEntry:
    """One principal a role trusts, stored by unique id as IAM does.

    ``arn`` is the principal's current ARN, or its bare unique id when the
    principal has been deleted (so a re-created namesake is not trusted).
    """

    kind: TrustKind
    principal_id: str  # user id, group id, or account id for ``root``
    arn: str


@dataclass(frozen=True)
class Role:
    role_id: str  # AROA…
    account_id: str
    name: str
    path: str
    arn: str
    max_session_duration: int  # seconds, 900..43200
    description: str
    created_at: datetime
    trust: tuple[TrustEntry, ...] = ()
    # The stored trust policy (AWS principals as unique ids); None for a role made
    # before trust documents, whose ``trust`` list is its whole trust.
    trust_document: TrustPolicy | None = field(default=None, repr=False)

    @property
    def trust_policy(self) -> TrustPolicy:
        """What the role's trust evaluates (authbridge.iam.trust), AWS principals as ids."""
        if self.trust_document is not None:
            return self.trust_document
        return legacy_policy(tuple(t.principal_id for t in self.trust))

    def assume_role_policy_document(self) -> dict[str, Any]:
        """The trust policy as ``get-role`` shows it: current ARNs, a deleted one's bare id."""
        shown = {t.principal_id: t.arn for t in self.trust}
        return self.trust_policy.to_json(lambda pid: shown.get(pid, pid))

    def to_aws(self) -> dict[str, Any]:
        return {
            "Path": self.path,
            "RoleName": self.name,
            "RoleId": self.role_id,
            "Arn": self.arn,
            "CreateDate": iso8601(self.created_at),
            "MaxSessionDuration": self.max_session_duration,
            "Description": self.description,
            "Trust": [t.arn for t in self.trust],
            "AssumeRolePolicyDocument": self.assume_role_policy_document(),
        }


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str  # AKIA…
    user_id: str
    user_name: str
    account_id: str
    status: AccessKeyStatus
    created_at: datetime
    last_used_at: datetime | None

    def to_aws(self) -> dict[str, Any]:
        return {
            "UserName": self.user_name,
            "AccessKeyId": self.access_key_id,
            "Status": self.status,
            "CreateDate": iso8601(self.created_at),
            "LastUsedDate": iso8601(self.last_used_at),
        }


@dataclass(frozen=True)
class NewAccessKey:
    """A just-created key with its secret: shown once, then gone."""

    key: AccessKey
    secret_access_key: str = field(repr=False)

    def to_aws(self) -> dict[str, Any]:
        out = self.key.to_aws()
        out.pop("LastUsedDate")
        out["SecretAccessKey"] = self.secret_access_key
        return out

    def __repr__(self) -> str:
        return f"NewAccessKey(key={self.key!r}, secret_access_key='***')"


@dataclass(frozen=True)
class BootstrapAdmin:
    """The first account, its administrator and that user's one access key, made together.

    :meth:`authbridge.store.base.Store.bootstrap_admin` returns it once, on a store
    that had no account; ``key`` carries the only copy of the secret.
    """

    account: Account
    user: User
    policy_arn: str
    key: NewAccessKey
