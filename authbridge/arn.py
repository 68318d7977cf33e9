"""ARN syntax for authbridge identities: parse, build and canonicalize principal ARNs.

``canonicalize`` ports ``Canonicalize`` from aws-iam-authenticator's ``pkg/arn``
(https://github.com/kubernetes-sigs/aws-iam-authenticator, ``pkg/arn/arn.go`` at
commit 711e47297fc4fbbeb4046f51b98a470df0412465) so that EKS ``aws-auth``
mappings port unchanged. Its test table (``pkg/arn/arn_test.go`` at commit
b5102389e266132ded3d4e6eea1a470e7828c708) is ported in ``tests/test_arn.py``.
``strip_role_path`` ports ``StripPath`` from the same file, and ``KNOWN_PARTITIONS``
is upstream's ``pkg/endpoints.PARTITIONS``.

Upstream rules that ``canonicalize`` keeps:

* The ARN is split like the AWS SDK's ``arn.Parse``: it must start with
  ``arn:`` and have at least six ``:``-separated parts. The split stops after the
  fifth colon, so colons inside the resource are part of the resource.
* The partition must be known. Upstream compares it against the partitions the
  AWS SDK knows; here every validating function takes
  ``partitions=KNOWN_PARTITIONS`` so a deployment can add its own partition.
* ``iam`` resources ``user``, ``role`` and ``root`` (the text before the first
  ``/``) come back unchanged. So do ``sts`` ``federated-user`` resources.
* ``sts`` ``assumed-role/<Role>/<session>`` becomes
  ``arn:<partition>:iam::<account>:role/<Role>``. Everything between the first
  and the last ``/`` counts as the role, so ``assumed-role/a/b/R/s`` becomes
  ``role/a/b/R``. The region is dropped. Fewer than three ``/``-parts is an error.
* Any other service or resource type is an error. That includes ``iam`` ``group``:
  a group is never the identity a token carries.
* The account id and region are not checked, and empty segments are allowed.
  For example, ``arn:aws:iam:::root`` and ``arn:aws:iam::1:role`` come back
  unchanged.

Extra checks on every input (upstream accepts these, but no real ARN contains
them): at most ``MAX_ARN_LENGTH`` characters; printable ASCII only, so no
control characters, newlines or non-ASCII. ``parse`` also needs a non-empty
service and resource (ARN syntax). For ``iam``/``sts`` input that adds nothing,
because upstream already rejects an empty service or resource type.

``parse_principal`` and the builders are stricter than ``canonicalize``. They use
the rules AWS IAM documents and ``authbridge.iam.names`` enforces:

* the region is empty and the account id is exactly 12 digits;
* user and role names are 1-64 characters, group names 1-128, and session names
  2-64, all from ``[A-Za-z0-9_+=,.@-]``;
* federated user names are 2-32 characters from the same set;
* a path is ``/`` or ``/.../`` in printable ASCII, at most 512 characters, with no
  empty segment;
* ``root`` is exactly ``root``;
* an ``assumed-role`` has exactly ``<Role>/<session>``. STS never puts the role's
  path there, and a session name cannot hold ``/`` or ``:``.

The builders check the partition's shape (``[a-z][a-z0-9-]{0,31}``, the rule in
``authbridge.settings``), not whether it is in a known list: the deployment's
configured partition is checked once, by settings.

Messages quote the offending piece, shortened, with non-ASCII characters
escaped, so hostile input never floods a log line.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

from authbridge.audit import redact
from authbridge.errors import MalformedArn

__all__ = [
    "KNOWN_PARTITIONS",
    "MAX_ARN_LENGTH",
    "Arn",
    "PrincipalArn",
    "PrincipalKind",
    "assumed_role_arn",
    "canonicalize",
    "group_arn",
    "parse",
    "parse_principal",
    "role_arn",
    "root_arn",
    "strip_role_path",
    "user_arn",
]

# Upstream pkg/endpoints/partitions.go PARTITIONS (the AWS SDK's partition ids).
KNOWN_PARTITIONS: Final[frozenset[str]] = frozenset(
    {
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
        "aws-eusc",
    }
)

# IAM and STS accept ARNs up to 2048 characters (e.g. RoleArn); longer is hostile.
MAX_ARN_LENGTH: Final = 2048

PrincipalKind = Literal["user", "role", "group", "root", "assumed-role", "federated-user"]

_FIELD: Final = "arn"
_PREFIX: Final = "arn:"
_SECTIONS: Final = 6
_QUOTE_LIMIT: Final = 64

_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)
_PARTITION_SHAPE = re.compile(r"[a-z][a-z0-9-]{0,31}", re.ASCII)
_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
_NAME_CHARS = re.compile(r"[A-Za-z0-9_+=,.@-]+", re.ASCII)
_PATH = re.compile(r"/(?:[\x21-\x7e]*/)?", re.ASCII)
_PATH_MAX: Final = 512
_NAME_HINT: Final = "names use letters, digits and + = , . @ _ -"

# (min, max) length of the name for each kind that has one.
_NAME_LENGTH: Final[dict[str, tuple[int, int]]] = {
    "user": (1, 64),
    "role": (1, 64),
    "group": (1, 128),
    "session": (2, 64),
    "federated-user": (2, 32),
}
_PATH_KINDS: Final[dict[str, PrincipalKind]] = {"user": "user", "role": "role", "group": "group"}


def _show(piece: str) -> str:
    """Quote ``piece`` for a message: at most _QUOTE_LIMIT characters, non-ASCII escaped.

    Redacted before it is cut (:func:`authbridge.audit.redact`): cut first, a
    secret pasted into an ARN could lose a character or two, no longer look
    like one, and be quoted all but whole.
    """
    piece = redact(piece)
    shown = ascii(piece[:_QUOTE_LIMIT])
    return shown + "..." if len(piece) > _QUOTE_LIMIT else shown


def _fail(message: str, *, hint: str | None = None) -> MalformedArn:
    return MalformedArn(_FIELD, message, hint=hint)


def _check_partitions_arg(partitions: Collection[str]) -> None:
    # A bare string is a Collection[str] too, and `"aws" in "aws-cn"` is True.
    if isinstance(partitions, str):
        raise TypeError("partitions must be a collection of partition ids, not a string")


def _partition_hint(partitions: Collection[str]) -> str:
    return "known partitions: " + ", ".join(sorted(partitions))


@dataclass(frozen=True)
class Arn:
    """A generic ARN: ``arn:<partition>:<service>:<region>:<account_id>:<resource>``."""

    partition: str
    service: str
    region: str
    account_id: str
    resource: str

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:{self.service}:{self.region}:{self.account_id}:{self.resource}"
        )


def parse(arn: str, *, partitions: Collection[str] = KNOWN_PARTITIONS) -> Arn:
    """Split ``arn`` into its six parts the way the AWS SDK does, then check the partition.

    The resource keeps any colons after the fifth one. Service and resource must
    not be empty. Region and account id may be empty, as they are for S3.
    """
    _check_partitions_arg(partitions)
    if not isinstance(arn, str):
        raise _fail(f"expected a string, got {type(arn).__name__}")
    if len(arn) > MAX_ARN_LENGTH:
        raise _fail(f"ARN is {len(arn)} characters; the limit is {MAX_ARN_LENGTH}")
    if not _PRINTABLE.fullmatch(arn):
        bad = next(i for i, ch in enumerate(arn) if not " " <= ch <= "~")
        raise _fail(
            f"ARN has a character that is not printable ASCII ({ascii(arn[bad])} at index {bad})"
        )
    if not arn.startswith(_PREFIX):
        raise _fail(f"{_show(arn)} does not start with 'arn:'")
    sections = arn.split(":", _SECTIONS - 1)
    if len(sections) != _SECTIONS:
        raise _fail(
            f"{_show(arn)} has {len(sections)} colon-separated parts; an ARN has 6",
            hint="the form is arn:partition:service:region:account-id:resource",
        )
    _, partition, service, region, account_id, resource = sections
    if partition not in partitions:
        raise _fail(f"unrecognized partition {_show(partition)}", hint=_partition_hint(partitions))
    if not service:
        raise _fail(f"{_show(arn)} has an empty service")
    if not resource:
        raise _fail(f"{_show(arn)} has an empty resource")
    return Arn(partition, service, region, account_id, resource)


def canonicalize(arn: str, *, partitions: Collection[str] = KNOWN_PARTITIONS) -> str:
    """Return the identity ``arn`` stands for, exactly as aws-iam-authenticator's Canonicalize.

    A role session becomes its role. IAM users, roles and root, and STS federated
    users, come back unchanged. Anything else raises MalformedArn.
    """
    parsed = parse(arn, partitions=partitions)
    parts = parsed.resource.split("/")
    resource_type = parts[0]
    if parsed.service == "sts":
        if resource_type == "federated-user":
            return arn
        if resource_type == "assumed-role":
            if len(parts) < 3:
                raise _fail(
                    f"assumed-role ARN {_show(arn)} does not name a role and a session",
                    hint="the form is arn:aws:sts::123456789012:assumed-role/RoleName/session",
                )
            role = "/".join(parts[1:-1])
            return f"arn:{parsed.partition}:iam::{parsed.account_id}:role/{role}"
        raise _fail(
            f"resource type {_show(resource_type)} is not supported for service sts",
            hint="sts principals are assumed-role/... and federated-user/...",
        )
    if parsed.service == "iam":
        if resource_type in ("role", "user", "root"):
            return arn
        raise _fail(
            f"resource type {_show(resource_type)} is not supported for service iam",
            hint="iam principals are user/..., role/... and root",
        )
    raise _fail(f"service {_show(parsed.service)} is not iam or sts")


def strip_role_path(arn: str, *, partitions: Collection[str] = KNOWN_PARTITIONS) -> str:
    """Remove the path from an IAM role ARN: ``role/a/b/Name`` becomes ``role/Name``.

    This is upstream StripPath. A ``rolearn`` written with a path then matches the
    path-less role that the role's sessions canonicalize to. Other ARNs come
    back unchanged. Unlike upstream, which strips any ``role/...`` resource, only
    ``iam`` ARNs are stripped, because no other service has role ARNs.
    """
    parsed = parse(arn, partitions=partitions)
    parts = parsed.resource.split("/")
    if parsed.service != "iam" or parts[0] != "role" or len(parts) <= 2:
        return arn
    return f"arn:{parsed.partition}:iam::{parsed.account_id}:role/{parts[-1]}"


@dataclass(frozen=True)
class PrincipalArn:
    """A parsed principal ARN: IAM user, role, group or root; STS role session or federated user."""

    kind: PrincipalKind
    partition: str
    account_id: str
    path: str
    name: str
    session_name: str | None = None

    def __str__(self) -> str:
        head = f"arn:{self.partition}"
        if self.kind in _PATH_KINDS:
            return f"{head}:iam::{self.account_id}:{self.kind}{self.path}{self.name}"
        if self.kind == "root":
            return f"{head}:iam::{self.account_id}:root"
        if self.kind == "assumed-role":
            return f"{head}:sts::{self.account_id}:assumed-role/{self.name}/{self.session_name}"
        return f"{head}:sts::{self.account_id}:federated-user/{self.name}"


def _check_account(account_id: str) -> None:
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        shown = _show(account_id) if isinstance(account_id, str) else type(account_id).__name__
        raise _fail(f"account id {shown} is not 12 digits", hint="e.g. 111122223333")


def _check_name(what: str, name: str) -> None:
    low, high = _NAME_LENGTH[what]
    label = "session name" if what == "session" else f"{what} name"
    if not isinstance(name, str):
        raise _fail(f"{label} must be a string, got {type(name).__name__}")
    if not low <= len(name) <= high:
        raise _fail(f"{label} {_show(name)} must be {low} to {high} characters, got {len(name)}")
    if not _NAME_CHARS.fullmatch(name):
        raise _fail(f"{label} {_show(name)} has characters IAM does not allow", hint=_NAME_HINT)


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path:
        raise _fail("path is required; use / for the root path")
    if len(path) > _PATH_MAX:
        raise _fail(f"path is {len(path)} characters; the limit is {_PATH_MAX}")
    if not _PATH.fullmatch(path) or "//" in path:
        raise _fail(
            f"path {_show(path)} must be / or start and end with / around printable ASCII,"
            " with no empty segment",
            hint="e.g. /team/",
        )


def _check_partition_shape(partition: str) -> None:
    if not isinstance(partition, str) or not _PARTITION_SHAPE.fullmatch(partition):
        shown = _show(partition) if isinstance(partition, str) else type(partition).__name__
        raise _fail(
            f"partition {shown} is not lowercase letters, digits and dashes", hint="e.g. aws"
        )


def parse_principal(arn: str, *, partitions: Collection[str] = KNOWN_PARTITIONS) -> PrincipalArn:
    """Parse a principal ARN by the IAM naming rules; anything else raises MalformedArn.

    Accepts IAM ``user``/``role``/``group`` (with path) and ``root``, and STS
    ``assumed-role/<Role>/<session>`` and ``federated-user/<name>``.
    """
    parsed = parse(arn, partitions=partitions)
    if parsed.region:
        raise _fail(f"region must be empty in a principal ARN, got {_show(parsed.region)}")
    _check_account(parsed.account_id)
    resource_type, slash, rest = parsed.resource.partition("/")
    partition, account = parsed.partition, parsed.account_id

    if parsed.service == "iam":
        if resource_type == "root":
            if slash:
                raise _fail(f"root ARN {_show(arn)} has text after 'root'")
            return PrincipalArn("root", partition, account, "/", "")
        kind = _PATH_KINDS.get(resource_type)
        if kind is None:
            raise _fail(
                f"resource type {_show(resource_type)} is not supported for service iam",
                hint="iam principals are user/..., role/..., group/... and root",
            )
        if not slash:
            raise _fail(f"{kind} ARN {_show(arn)} does not name a {kind}")
        cut = rest.rfind("/") + 1
        path, name = "/" + rest[:cut], rest[cut:]
        _check_path(path)
        _check_name(kind, name)
        return PrincipalArn(kind, partition, account, path, name)

    if parsed.service == "sts":
        if resource_type == "assumed-role":
            role, sep, session = rest.partition("/")
            if not slash or not sep:
                raise _fail(
                    f"assumed-role ARN {_show(arn)} does not name a role and a session",
                    hint="the form is arn:aws:sts::123456789012:assumed-role/RoleName/session",
                )
            _check_name("role", role)
            _check_name("session", session)
            return PrincipalArn("assumed-role", partition, account, "/", role, session)
        if resource_type == "federated-user":
            if not slash:
                raise _fail(f"federated-user ARN {_show(arn)} does not name a user")
            _check_name("federated-user", rest)
            return PrincipalArn("federated-user", partition, account, "/", rest)
        raise _fail(
            f"resource type {_show(resource_type)} is not supported for service sts",
            hint="sts principals are assumed-role/... and federated-user/...",
        )

    raise _fail(f"service {_show(parsed.service)} is not iam or sts")


def _pathed_arn(kind: PrincipalKind, partition: str, account_id: str, name: str, path: str) -> str:
    _check_partition_shape(partition)
    _check_account(account_id)
    _check_path(path)
    _check_name(kind, name)
    return str(PrincipalArn(kind, partition, account_id, path, name))


def user_arn(partition: str, account_id: str, name: str, path: str = "/") -> str:
    """``arn:<partition>:iam::<account>:user<path><name>``."""
    return _pathed_arn("user", partition, account_id, name, path)


def group_arn(partition: str, account_id: str, name: str, path: str = "/") -> str:
    """``arn:<partition>:iam::<account>:group<path><name>``."""
    return _pathed_arn("group", partition, account_id, name, path)


def role_arn(partition: str, account_id: str, name: str, path: str = "/") -> str:
    """``arn:<partition>:iam::<account>:role<path><name>``."""
    return _pathed_arn("role", partition, account_id, name, path)


def root_arn(partition: str, account_id: str) -> str:
    """``arn:<partition>:iam::<account>:root``, the account itself."""
    _check_partition_shape(partition)
    _check_account(account_id)
    return str(PrincipalArn("root", partition, account_id, "/", ""))


def assumed_role_arn(partition: str, account_id: str, role_name: str, session_name: str) -> str:
    """``arn:<partition>:sts::<account>:assumed-role/<role_name>/<session_name>`` (no role path)."""
    _check_partition_shape(partition)
    _check_account(account_id)
    _check_name("role", role_name)
    _check_name("session", session_name)
    return str(PrincipalArn("assumed-role", partition, account_id, "/", role_name, session_name))
