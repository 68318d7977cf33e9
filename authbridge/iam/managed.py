"""Stored IAM policies as immutable values, their AWS CLI JSON shapes, and their input rules.

The store keeps managed policies (with up to :data:`MAX_POLICY_VERSIONS`
versions), inline policies of users, groups and roles, and attachments
(:meth:`authbridge.store.base.Store.create_policy` and friends); the documents
themselves are :mod:`authbridge.iam.policy`'s. Nothing here talks to a database.

Decisions, following AWS IAM where it has an opinion:

* a managed policy's ARN is ``arn:<partition>:iam::<account>:policy/<path><name>``;
  the shipped AWS managed policies are ``arn:<partition>:iam::aws:policy/<name>``
  and cannot be created, changed or deleted;
* policy names (managed and inline) are 1 to 128 of ``[A-Za-z0-9_+=,.@-]``,
  unique per account (managed) or per principal (inline), case-insensitively;
* version ids are ``v1``, ``v2``, …, never reused after a delete;
* inline policies and attachments belong to the principal's unique id, so a
  principal deleted and re-created under the same name starts with none;
* a principal has at most :data:`MAX_ATTACHED_POLICIES` managed policies attached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from authbridge.errors import InputError
from authbridge.iam import names, shorthand
from authbridge.iam.model import iso8601

PrincipalKind = Literal["user", "group", "role"]
PRINCIPAL_KINDS: Final[tuple[PrincipalKind, ...]] = ("user", "group", "role")
TaggableKind = Literal["user", "role"]
ListScope = Literal["All", "AWS", "Local"]
LIST_SCOPES: Final[tuple[ListScope, ...]] = ("All", "AWS", "Local")

MAX_POLICY_VERSIONS: Final = 5
MAX_ATTACHED_POLICIES: Final = 10
POLICY_NAME_MAX: Final = 128
POLICY_DESCRIPTION_MAX: Final = 1000
AWS_ACCOUNT: Final = "aws"  # the account field of an AWS managed policy's ARN

# The JSON field that names the principal in Get{User,Group,Role}Policy answers.
PRINCIPAL_NAME_FIELDS: Final[Mapping[PrincipalKind, str]] = {
    "user": "UserName",
    "group": "GroupName",
    "role": "RoleName",
}

_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,128}", re.ASCII)
_VERSION_ID = re.compile(r"v([1-9][0-9]{0,8})", re.ASCII)
_POLICY_ARN = re.compile(
    r"arn:(?P<partition>[a-z][a-z0-9-]{0,31}):iam::(?P<account>[0-9]{12}|aws)"
    r":policy(?P<path>/(?:[\x21-\x7e]*/)?)(?P<name>[^/]*)",
    re.ASCII,
)
_ARN_MAX = 2048


def _show(value: str, limit: int = 64) -> str:
    shown = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(shown)


def policy_name(value: str, field: str = "PolicyName") -> str:
    """A managed or inline policy name: 1 to 128 of ``[A-Za-z0-9_+=,.@-]``."""
    if not isinstance(value, str) or not value:
        raise InputError(field, "is required")
    if len(value) > POLICY_NAME_MAX:
        raise InputError(field, f"must be 1 to {POLICY_NAME_MAX} characters, got {len(value)}")
    if not _NAME.fullmatch(value):
        raise InputError(field, f"has characters IAM does not allow; {names.NAME_CHARS_HINT}")
    return value


def policy_description(value: str) -> str:
    if not isinstance(value, str):
        raise InputError("Description", "must be text")
    if len(value) > POLICY_DESCRIPTION_MAX:
        raise InputError(
            "Description", f"must be at most {POLICY_DESCRIPTION_MAX} characters, got {len(value)}"
        )
    return names.description(value)


def version_id(value: str) -> int:
    """``v1``, ``v2``, … as the version number."""
    match = _VERSION_ID.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InputError(
            "VersionId",
            f"must be v followed by a version number, got {_show(str(value))}",
            hint="list them with `authbridge iam list-policy-versions --policy-arn ARN`",
        )
    return int(match.group(1))


def version_label(number: int) -> str:
    return f"v{number}"


def principal_kind(value: str) -> PrincipalKind:
    for kind in PRINCIPAL_KINDS:
        if value == kind:
            return kind
    raise InputError("PrincipalKind", f"must be user, group or role, got {_show(value)}")


def taggable_kind(value: str) -> TaggableKind:
    if value == "user":
        return "user"
    if value == "role":
        return "role"
    raise InputError("PrincipalKind", f"only users and roles carry tags, got {_show(value)}")


def list_scope(value: str) -> ListScope:
    for scope in LIST_SCOPES:
        if value == scope:
            return scope
    raise InputError("Scope", f"must be All, AWS or Local, got {_show(value)}")


@dataclass(frozen=True)
class PolicyArn:
    """A parsed managed-policy ARN; ``account_id`` is :data:`AWS_ACCOUNT` for AWS's own."""

    partition: str
    account_id: str
    path: str
    name: str

    @property
    def aws_managed(self) -> bool:
        return self.account_id == AWS_ACCOUNT


def policy_arn(partition: str, account_id: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account_id}:policy{path}{name}"


def parse_policy_arn(value: str, *, partition: str) -> PolicyArn:
    """Split ``arn:<partition>:iam::<account|aws>:policy/<path><name>``, checking every part."""
    if not isinstance(value, str) or not value:
        raise InputError("PolicyArn", "is required", hint="e.g. arn:aws:iam::aws:policy/ReadOnly")
    if len(value) > _ARN_MAX:
        raise InputError("PolicyArn", f"must be at most {_ARN_MAX} characters, got {len(value)}")
    match = _POLICY_ARN.fullmatch(value)
    if match is None:
        raise InputError(
            "PolicyArn",
            f"{_show(value)} is not a policy ARN",
            hint=f"use arn:{partition}:iam::<account>:policy/<path><name>"
            f" or arn:{partition}:iam::aws:policy/<name>",
        )
    if match["partition"] != partition:
        raise InputError(
            "PolicyArn",
            f"is in partition {match['partition']}, this store uses {partition}",
        )
    try:
        names.path(match["path"])
        policy_name(match["name"])
    except InputError as e:
        raise InputError("PolicyArn", e.message, hint=e.hint) from e
    return PolicyArn(partition, match["account"], match["path"], match["name"])


def tag_keys(keys: Iterable[str]) -> list[str]:
    """Tag keys to remove: each a valid tag key, at most :data:`names.MAX_TAGS` of them."""
    out: list[str] = []
    for key in keys:
        if not isinstance(key, str):
            raise InputError("TagKeys", "a tag key must be text")
        names.tags({key: ""})  # the key rules of tag-user, in one place
        if key not in out:
            out.append(key)
    if not out:
        raise InputError("TagKeys", "name at least one tag key", hint="pass --tag-keys KEY")
    if len(out) > names.MAX_TAGS:
        raise InputError("TagKeys", f"at most {names.MAX_TAGS} keys, got {len(out)}")
    return out


def tags_to_aws(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


@dataclass(frozen=True)
class ManagedPolicy:
    """A managed policy's metadata (GetPolicy); its documents are :class:`PolicyVersion`."""

    policy_id: str  # ANPA…, never reused
    account_id: str  # 12 digits, or AWS_ACCOUNT for a shipped AWS managed policy
    name: str
    path: str
    arn: str
    description: str
    default_version: int
    attachment_count: int
    created_at: datetime
    updated_at: datetime

    @property
    def aws_managed(self) -> bool:
        return self.account_id == AWS_ACCOUNT

    @property
    def default_version_id(self) -> str:
        return version_label(self.default_version)

    def to_aws(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "PolicyName": self.name,
            "PolicyId": self.policy_id,
            "Arn": self.arn,
            "Path": self.path,
            "DefaultVersionId": self.default_version_id,
            "AttachmentCount": self.attachment_count,
            "PermissionsBoundaryUsageCount": 0,
            "IsAttachable": True,
        }
        if self.description:
            out["Description"] = self.description
        out["CreateDate"] = iso8601(self.created_at)
        out["UpdateDate"] = iso8601(self.updated_at)
        return out


@dataclass(frozen=True)
class PolicyVersion:
    """One version of a managed policy; ``document`` is the JSON object as stored."""

    policy_arn: str
    version: int
    is_default: bool
    created_at: datetime
    document: Mapping[str, Any]

    @property
    def version_id(self) -> str:
        return version_label(self.version)

    def to_aws(self, *, with_document: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if with_document:
            out["Document"] = self.document
        out["VersionId"] = self.version_id
        out["IsDefaultVersion"] = self.is_default
        out["CreateDate"] = iso8601(self.created_at)
        return out


@dataclass(frozen=True)
class InlinePolicy:
    """A policy embedded in one user, group or role (Get{User,Group,Role}Policy)."""

    principal_kind: PrincipalKind
    principal_id: str
    principal_name: str
    name: str
    document: Mapping[str, Any]

    def to_aws(self) -> dict[str, Any]:
        return {
            PRINCIPAL_NAME_FIELDS[self.principal_kind]: self.principal_name,
            "PolicyName": self.name,
            "PolicyDocument": self.document,
        }


@dataclass(frozen=True)
class AttachedPolicy:
    """A managed policy attached to a principal (ListAttached{User,Group,Role}Policies)."""

    name: str
    arn: str

    def to_aws(self) -> dict[str, Any]:
        return {"PolicyName": self.name, "PolicyArn": self.arn}


TAG_FIELDS: Final = ("Key", "Value")
TAG_EXAMPLE: Final = "Key=team,Value=platform"


def parse_tag_arguments(texts: Iterable[str]) -> dict[str, str]:
    """``--tags`` arguments: each ``Key=k,Value=v`` (AWS CLI shorthand) or JSON.

    JSON is a ``{"Key": …, "Value": …}`` object or a list of them. Keys must
    be unique case-insensitively; every key and value is then held to IAM's
    tag rules (:func:`authbridge.iam.names.tags`).
    """
    pairs: list[tuple[str, str]] = []
    for n, text in enumerate(texts, start=1):
        where = f"Tags[{n}]"
        if isinstance(text, str) and text.lstrip()[:1] in ("[", "{"):
            pairs.extend(_json_tags(text, where))
            continue
        given = shorthand.parse_struct(text, TAG_FIELDS, where=where, example=TAG_EXAMPLE)
        if "Key" not in given or "Value" not in given:
            raise InputError(where, "needs Key and Value", hint=f"e.g. {TAG_EXAMPLE}")
        pairs.append((given["Key"][0], given["Value"][0]))
    out: dict[str, str] = {}
    for key, value in pairs:
        if any(k.lower() == key.lower() for k in out):
            raise InputError("Tags", f"key {key!r} is given twice (tag keys are case-insensitive)")
        out[key] = value
    return names.tags(out)


def _json_tags(text: str, where: str) -> list[tuple[str, str]]:
    if len(text) > shorthand.MAX_CHARS:
        raise InputError(where, f"must be at most {shorthand.MAX_CHARS} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputError(where, f"is not valid JSON: {e}") from None
    items = data if isinstance(data, list) else [data]
    out: list[tuple[str, str]] = []
    for item in items:
        if (
            not isinstance(item, dict)
            or set(item) != set(TAG_FIELDS)
            or not all(isinstance(v, str) for v in item.values())
        ):
            raise InputError(
                where, 'each tag must be {"Key": "…", "Value": "…"}', hint=f"or {TAG_EXAMPLE}"
            )
        out.append((item["Key"], item["Value"]))
    return out
