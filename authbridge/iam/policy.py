"""IAM identity policies: parse a policy document, evaluate a request against policies (pure).

The admin API authorizes every call with the caller's policies (inline and
managed, attached to the user, its groups, or the role of a session), as AWS
IAM does for identity-based policies. Nothing here reads a store: the caller
gathers the :class:`SourcePolicy` values and the request context.

Grammar ("IAM JSON policy element reference"):

* ``Version`` is ``2012-10-17`` or ``2008-10-17`` (required here; the older
  version has no policy variables); ``Id`` is optional; ``Statement`` is one
  object or a non-empty list;
* a statement has ``Effect`` (``Allow``/``Deny``), exactly one of ``Action`` /
  ``NotAction`` and one of ``Resource`` / ``NotResource`` (a string or a
  non-empty list of strings), an optional alphanumeric ``Sid`` unique in the
  document and an optional ``Condition`` (:mod:`authbridge.iam.policy_conditions`).
  ``Principal``/``NotPrincipal`` belong to resource policies and are refused;
  any other element is refused;
* an action is ``service:Name`` or ``*``, with ``*``/``?`` wildcards, matched
  case-insensitively; a resource is ``*`` or an ARN, with wildcards and policy
  variables (:mod:`authbridge.iam.policy_patterns`), matched case-sensitively
  field by field;
* a document is at most :data:`MAX_CHARS` characters for its kind, whitespace
  not counted (IAM's quotas); a JSON text is refused above 128 KiB before it
  is even read, and duplicate keys in an object are refused (IAM would keep
  one silently; here they are an ambiguity an attacker could use).

Every refusal is a :class:`~authbridge.errors.MalformedPolicyDocument` whose
field names the statement (index from 0, and its Sid) and the element.

Evaluation ("Policy evaluation logic", identity-based policies only): a
request is denied by default (``implicitDeny``); any statement that applies
with ``Deny`` decides ``explicitDeny``, whatever else allows; otherwise any
that applies with ``Allow`` decides ``allowed``. A statement applies when its
action element, its resource element and all of its conditions match. An
``Allow`` with ``NotAction`` allows every action but those; a ``Deny`` with
``NotResource`` denies every resource outside those. The :class:`Decision`
names every deciding statement and the condition keys the request lacked, as
``iam simulate-principal-policy`` reports them.

An unresolved variable never widens an Allow: in ``Resource`` its pattern
matches nothing, and an ``Allow`` whose ``NotResource`` cannot be resolved
does not apply (a ``Deny``'s unresolved ``NotResource`` pattern matches
nothing, so the Deny applies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from authbridge.errors import MalformedPolicyDocument
from authbridge.iam.policy_conditions import Condition
from authbridge.iam.policy_patterns import ContextValue, PatternSet, bare, show, template

__all__ = [
    "AWS_MANAGED_POLICIES",
    "KNOWN_ACTIONS",
    "MAX_CHARS",
    "Condition",
    "ContextValue",
    "Decision",
    "MalformedPolicyDocument",
    "MatchedStatement",
    "PolicyDocument",
    "Request",
    "SourcePolicy",
    "Statement",
    "aws_managed_arn",
    "evaluate",
    "parse_policy",
]

PolicyKind = Literal["managed", "user", "group", "role"]
PolicyType = Literal["aws-managed", "managed", "user", "group", "role"]
Effect = Literal["Allow", "Deny"]

# IAM quotas, in characters with whitespace not counted: managed policy,
# inline policies of a user, group and role ("IAM and AWS STS quotas").
MAX_CHARS: Final = {"managed": 6144, "user": 2048, "role": 10240, "group": 5120}
MAX_TEXT_BYTES: Final = 128 * 1024  # a JSON text larger than this is not read at all
VERSIONS: Final = ("2012-10-17", "2008-10-17")
_VARIABLES_VERSION: Final = "2012-10-17"

_SID: Final = re.compile(r"[A-Za-z0-9]{1,128}", re.ASCII)
_ACTION: Final = re.compile(r"\*|[A-Za-z0-9*?-]{1,64}:[A-Za-z0-9_*?-]{1,128}", re.ASCII)
_WHITESPACE: Final = str.maketrans("", "", " \t\r\n")
_STATEMENT_KEYS: Final = (
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_TOP_KEYS: Final = ("Version", "Id", "Statement")


@dataclass(frozen=True)
class Statement:
    """One statement; ``index`` is its place in the document (from 0).

    Exactly one of ``actions``/``not_actions`` and one of ``resources``/
    ``not_resources`` is set. Building one compiles its patterns once.
    """

    index: int
    sid: str | None
    effect: Effect
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()
    policy_variables: bool = field(default=True, compare=False, repr=False)
    _actions: PatternSet = field(init=False, compare=False, repr=False)
    _resources: PatternSet = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        label = _label(self.index, self.sid)
        if (self.actions is None) == (self.not_actions is None):
            raise MalformedPolicyDocument(label, "needs exactly one of Action and NotAction")
        if (self.resources is None) == (self.not_resources is None):
            raise MalformedPolicyDocument(label, "needs exactly one of Resource and NotResource")
        actions = self.actions if self.actions is not None else self.not_actions
        resources = self.resources if self.resources is not None else self.not_resources
        assert actions is not None and resources is not None  # noqa: S101 - checked above
        action_field = "Action" if self.actions is not None else "NotAction"
        resource_field = "Resource" if self.resources is not None else "NotResource"
        object.__setattr__(self, "_actions", _action_patterns(actions, f"{label}.{action_field}"))
        object.__setattr__(
            self,
            "_resources",
            _resource_patterns(
                resources, f"{label}.{resource_field}", variables=self.policy_variables
            ),
        )

    def applies(
        self,
        action: str,
        resource: str,
        context: Mapping[str, ContextValue],
        missing: dict[str, str],
    ) -> bool:
        """Whether this statement matches the request.

        ``action`` is lowercased, and so are ``context``'s keys; absent keys are
        added to ``missing``.
        """
        if (self._actions.match(action, context, missing) is True) != (self.actions is not None):
            return False
        matched = self._resources.match(resource, context, missing)
        if self.resources is not None:
            if matched is not True:
                return False
        elif matched is True or (matched is None and self.effect == "Allow"):
            return False
        allow = self.effect == "Allow"
        result = True
        for condition in self.conditions:  # every one, so `missing` lists every absent key
            if not condition.evaluate(context, missing, allow=allow):
                result = False
        return result

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sid is not None:
            out["Sid"] = self.sid
        out["Effect"] = self.effect
        if self.actions is not None:
            out["Action"] = _one_or_list(self.actions)
        if self.not_actions is not None:
            out["NotAction"] = _one_or_list(self.not_actions)
        if self.resources is not None:
            out["Resource"] = _one_or_list(self.resources)
        if self.not_resources is not None:
            out["NotResource"] = _one_or_list(self.not_resources)
        if self.conditions:
            block: dict[str, dict[str, Any]] = {}
            for condition in self.conditions:
                block.setdefault(condition.operator, {})[condition.key] = _one_or_list(
                    condition.values
                )
            out["Condition"] = block
        return out


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed policy document; :meth:`to_json` gives back an equivalent document."""

    version: str
    statements: tuple[Statement, ...]
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Version": self.version}
        if self.id is not None:
            out["Id"] = self.id
        out["Statement"] = [statement.to_json() for statement in self.statements]
        return out


@dataclass(frozen=True)
class SourcePolicy:
    """A policy as evaluation sees it: where it came from, and its document.

    ``policy_id`` is a managed policy's ARN, or ``user/alice/InlineName`` for
    an inline policy (``group/…``, ``role/…`` likewise).
    """

    policy_id: str
    policy_type: PolicyType
    document: PolicyDocument


@dataclass(frozen=True)
class Request:
    """What is asked: ``iam:CreateUser`` on an ARN (or ``*``), with its condition keys.

    ``context`` keys are condition keys (``aws:username``, ``aws:SourceIp``,
    ``aws:CurrentTime``, ``aws:MultiFactorAuthPresent``,
    ``aws:PrincipalTag/team``, …), looked up case-insensitively; a key that
    does not apply to the request is left out, never given an empty value.
    """

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchedStatement:
    policy_id: str
    policy_type: str
    statement_index: int
    sid: str | None


@dataclass(frozen=True)
class Decision:
    """The verdict, the statements that decided it, and the condition keys that were absent."""

    decision: Literal["allowed", "explicitDeny", "implicitDeny"]
    statements: tuple[MatchedStatement, ...] = ()
    missing_context: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def evaluate(policies: Sequence[SourcePolicy], request: Request) -> Decision:
    """The identity-policy decision for ``request`` ("Policy evaluation logic")."""
    context = {key.lower(): value for key, value in request.context.items()}
    action = request.action.lower()
    missing: dict[str, str] = {}
    denies: list[MatchedStatement] = []
    allows: list[MatchedStatement] = []
    for policy in policies:
        for statement in policy.document.statements:
            if statement.applies(action, request.resource, context, missing):
                (denies if statement.effect == "Deny" else allows).append(
                    MatchedStatement(
                        policy.policy_id, policy.policy_type, statement.index, statement.sid
                    )
                )
    absent = tuple(missing.values())
    if denies:
        return Decision("explicitDeny", tuple(denies), absent)
    if allows:
        return Decision("allowed", tuple(allows), absent)
    return Decision("implicitDeny", (), absent)


# -- parsing -------------------------------------------------------------------------------


def _label(index: int, sid: object) -> str:
    if isinstance(sid, str) and _SID.fullmatch(sid):
        return f"Statement[{index}] (Sid {sid})"
    return f"Statement[{index}]"


def _one_or_list(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def _action_patterns(actions: tuple[str, ...], where: str) -> PatternSet:
    for position, action in enumerate(actions):
        if not isinstance(action, str) or not _ACTION.fullmatch(action):
            raise MalformedPolicyDocument(
                f"{where}[{position}]",
                f"{show(action)} is not an action",
                hint="write service:Name, e.g. iam:CreateUser, iam:List* or *",
            )
    return PatternSet.build(tuple((a.lower(),) for a in actions), arn=False)


def _resource_patterns(resources: tuple[str, ...], where: str, *, variables: bool) -> PatternSet:
    templates = []
    for position, resource in enumerate(resources):
        here = f"{where}[{position}]"
        if not isinstance(resource, str):
            raise MalformedPolicyDocument(here, f"must be a string, got {show(resource)}")
        parts = template(resource, variables=variables, field=here)
        plain = "".join(part for part in parts if isinstance(part, str))
        if resource != "*" and not (resource.startswith("arn:") and plain.count(":") >= 5):
            raise MalformedPolicyDocument(
                here,
                f'{show(resource)} must be in ARN format or "*"',
                hint="e.g. arn:aws:iam::111122223333:user/* or *",
            )
        templates.append(parts)
    return PatternSet.build(tuple(templates), arn=True)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _jsonable(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


def _load(document: str | Mapping[str, Any], kind: PolicyKind) -> Any:
    """The document as JSON values, after the size check."""
    if isinstance(document, str):
        if len(document) > MAX_TEXT_BYTES:
            raise MalformedPolicyDocument(
                "PolicyDocument", f"{len(document)} characters is far over any policy limit"
            )
        text = document
    elif isinstance(document, Mapping):
        try:
            text = json.dumps(
                document,
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
                default=_jsonable,
            )
        except (TypeError, ValueError, RecursionError) as err:
            raise MalformedPolicyDocument(
                "PolicyDocument",
                "holds values that are not JSON (strings, numbers, lists, objects only)",
            ) from err
    else:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"must be a JSON object or its text, got {show(document)}"
        )
    size = len(text.translate(_WHITESPACE))
    limit = MAX_CHARS[kind]
    if size > limit:
        raise MalformedPolicyDocument(
            "PolicyDocument",
            f"{size} characters (whitespace not counted) exceed the {kind} policy limit of {limit}",
            hint="split it into several policies",
        )
    if not isinstance(document, str):
        return document
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKey as err:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"the key {show(err.key)} appears twice in one object"
        ) from None
    except json.JSONDecodeError as err:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}"
        ) from None
    except (ValueError, RecursionError):
        raise MalformedPolicyDocument("PolicyDocument", "not valid JSON") from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings, as a tuple."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise MalformedPolicyDocument(
            where, f"must be a string or a list of strings, got {show(value)}"
        )
    if not value:
        raise MalformedPolicyDocument(where, "must not be an empty list")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise MalformedPolicyDocument(
                f"{where}[{position}]", f"must be a string, got {show(item)}"
            )
    return tuple(value)


def _condition_value(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return repr(value)
    raise MalformedPolicyDocument(where, f"must be a string, number or boolean, got {show(value)}")


def _conditions(block: Any, label: str, *, variables: bool) -> tuple[Condition, ...]:
    where = f"{label}.Condition"
    if not isinstance(block, Mapping) or not block:
        raise MalformedPolicyDocument(
            where, 'must be an object of condition operators, e.g. {"Bool": {...}}'
        )
    out = []
    for operator, tests in block.items():
        if not isinstance(operator, str):
            raise MalformedPolicyDocument(where, f"operator {show(operator)} is not a string")
        if not isinstance(tests, Mapping) or not tests:
            raise MalformedPolicyDocument(
                f"{where}.{bare(operator)}",
                "must be an object of condition keys and values",
            )
        for key, raw in tests.items():
            here = f"{where}.{bare(operator)}.{bare(key)}"
            raw_values = raw if isinstance(raw, list | tuple) else [raw]
            if not raw_values:
                raise MalformedPolicyDocument(here, "must not be an empty list")
            values = tuple(_condition_value(v, here) for v in raw_values)
            try:
                out.append(Condition(operator, key, values, policy_variables=variables))
            except MalformedPolicyDocument as err:
                raise err.under(label) from None
    return tuple(out)


def _statement(index: int, raw: Any, seen_sids: set[str], *, variables: bool) -> Statement:
    if not isinstance(raw, Mapping):
        raise MalformedPolicyDocument(f"Statement[{index}]", f"must be an object, got {show(raw)}")
    sid = raw.get("Sid")
    label = _label(index, sid)
    for key in raw:
        if key in ("Principal", "NotPrincipal"):
            raise MalformedPolicyDocument(
                f"{label}.{key}",
                "an identity policy cannot name a principal",
                hint="the policy applies to whoever it is attached to; drop the element",
            )
        if key not in _STATEMENT_KEYS:
            raise MalformedPolicyDocument(
                f"{label}.{bare(key)}",
                "unknown element",
                hint="a statement has Sid, Effect, Action or NotAction, Resource or"
                " NotResource, and Condition",
            )
    if sid is not None:
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            raise MalformedPolicyDocument(
                f"{label}.Sid", f"{show(sid)} is not 1 to 128 letters and digits"
            )
        if sid in seen_sids:
            raise MalformedPolicyDocument(f"{label}.Sid", "is already used in this document")
        seen_sids.add(sid)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(
            f"{label}.Effect", f"must be Allow or Deny, got {show(effect) if effect else 'nothing'}"
        )

    def pair(positive: str, negative: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        if positive in raw and negative in raw:
            raise MalformedPolicyDocument(
                f"{label}.{negative}", f"{positive} and {negative} cannot both be given"
            )
        if positive not in raw and negative not in raw:
            raise MalformedPolicyDocument(label, f"needs {positive} or {negative}")
        if positive in raw:
            return _strings(raw[positive], f"{label}.{positive}"), None
        return None, _strings(raw[negative], f"{label}.{negative}")

    actions, not_actions = pair("Action", "NotAction")
    resources, not_resources = pair("Resource", "NotResource")
    conditions = (
        _conditions(raw["Condition"], label, variables=variables) if "Condition" in raw else ()
    )
    return Statement(
        index,
        sid,
        effect,
        actions,
        not_actions,
        resources,
        not_resources,
        conditions,
        policy_variables=variables,
    )


def parse_policy(
    document: str | Mapping[str, Any], *, kind: PolicyKind = "managed"
) -> PolicyDocument:
    """The checked document, or :class:`MalformedPolicyDocument` naming what is wrong.

    ``kind`` picks the size limit (:data:`MAX_CHARS`). Accepts the JSON text
    or the already-decoded object.
    """
    if kind not in MAX_CHARS:
        raise ValueError(f"unknown policy kind {kind!r}")
    data = _load(document, kind)
    if not isinstance(data, Mapping):
        raise MalformedPolicyDocument("PolicyDocument", f"must be a JSON object, got {show(data)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise MalformedPolicyDocument(
                f"PolicyDocument.{bare(key)}",
                "unknown element",
                hint="a policy document has Version, Id and Statement",
            )
    version = data.get("Version")
    if version not in VERSIONS:
        raise MalformedPolicyDocument(
            "Version",
            f'must be "2012-10-17", got {show(version) if version is not None else "nothing"}',
            hint='write "Version": "2012-10-17" ("2008-10-17" is accepted, without variables)',
        )
    policy_id = data.get("Id")
    if policy_id is not None and (not isinstance(policy_id, str) or not policy_id):
        raise MalformedPolicyDocument("Id", f"must be a non-empty string, got {show(policy_id)}")
    raw_statements = data.get("Statement")
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list | tuple) or not raw_statements:
        raise MalformedPolicyDocument(
            "Statement", "must be a statement object or a non-empty list of them"
        )
    variables = version == _VARIABLES_VERSION
    seen: set[str] = set()
    statements = tuple(
        _statement(index, raw, seen, variables=variables)
        for index, raw in enumerate(raw_statements)
    )
    return PolicyDocument(version, statements, policy_id)


# -- actions and the policies authbridge ships ---------------------------------------------

# The actions the admin API authorizes, by service. iam: are AWS IAM's own
# action names; eks: are Amazon EKS's access-entry actions; authbridge: are the
# signing-key verbs (`authbridge keys ...`), which AWS has no counterpart for.
IAM_ACTIONS: Final = (
    "iam:CreateUser",
    "iam:GetUser",
    "iam:ListUsers",
    "iam:UpdateUser",
    "iam:DeleteUser",
    "iam:CreateGroup",
    "iam:GetGroup",
    "iam:ListGroups",
    "iam:ListGroupsForUser",
    "iam:DeleteGroup",
    "iam:AddUserToGroup",
    "iam:RemoveUserFromGroup",
    "iam:CreateRole",
    "iam:GetRole",
    "iam:ListRoles",
    "iam:DeleteRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateAccessKey",
    "iam:ListAccessKeys",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:ChangePassword",
    "iam:CreateLoginProfile",
    "iam:GetLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:DeleteLoginProfile",
    "iam:CreateVirtualMFADevice",
    "iam:DeleteVirtualMFADevice",
    "iam:ListVirtualMFADevices",
    "iam:EnableMFADevice",
    "iam:DeactivateMFADevice",
    "iam:ResyncMFADevice",
    "iam:ListMFADevices",
    "iam:CreatePolicy",
    "iam:GetPolicy",
    "iam:ListPolicies",
    "iam:DeletePolicy",
    "iam:CreatePolicyVersion",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:ListAttachedUserPolicies",
    "iam:AttachGroupPolicy",
    "iam:DetachGroupPolicy",
    "iam:ListAttachedGroupPolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:PutUserPolicy",
    "iam:GetUserPolicy",
    "iam:ListUserPolicies",
    "iam:DeleteUserPolicy",
    "iam:PutGroupPolicy",
    "iam:GetGroupPolicy",
    "iam:ListGroupPolicies",
    "iam:DeleteGroupPolicy",
    "iam:PutRolePolicy",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:DeleteRolePolicy",
    "iam:ListEntitiesForPolicy",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:ListUserTags",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:ListRoleTags",
    "iam:SimulatePrincipalPolicy",
    "iam:SimulateCustomPolicy",
)
EKS_ACTIONS: Final = (
    "eks:CreateAccessEntry",
    "eks:DescribeAccessEntry",
    "eks:ListAccessEntries",
    "eks:DeleteAccessEntry",
    "eks:AssociateAccessPolicy",
    "eks:DisassociateAccessPolicy",
    "eks:ListAssociatedAccessPolicies",
    "eks:ListAccessPolicies",
    "eks:UpdateClusterConfig",
    "eks:DescribeCluster",
)
AUTHBRIDGE_ACTIONS: Final = (
    "authbridge:ListSigningKeys",
    "authbridge:ExportSigningKeys",
    "authbridge:RotateSigningKey",
    "authbridge:RetireSigningKey",
    "authbridge:RevokeSigningKey",
    "authbridge:ImportSigningKeys",
    "authbridge:InitSigningKeys",
)
KNOWN_ACTIONS: Final[tuple[str, ...]] = IAM_ACTIONS + EKS_ACTIONS + AUTHBRIDGE_ACTIONS
"""Every action the admin API authorizes, ``service:Name``; the API checks it stays in sync."""

_OWN_USER: Final = "arn:*:iam::*:user/${aws:username}"
_OWN_MFA: Final = "arn:*:iam::*:mfa/${aws:username}"
_SHIPPED: Final[dict[str, dict[str, Any]]] = {
    "AdministratorAccess": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    "IAMReadOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "iam:Get*",
                    "iam:List*",
                    "iam:Generate*",
                    "iam:Simulate*",
                    "eks:Describe*",
                    "eks:List*",
                    "authbridge:List*",
                    "authbridge:Describe*",
                    "authbridge:Export*",
                ],
                "Resource": "*",
            }
        ],
    },
    # After AWS's example "IAM: Allows IAM users to manage their own credentials
    # on the Security credentials page", without its console-only statements.
    "IAMSelfManageCredentials": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowManageOwnPasswords",
                "Effect": "Allow",
                "Action": [
                    "iam:GetUser",
                    "iam:ChangePassword",
                    "iam:GetLoginProfile",
                    "iam:UpdateLoginProfile",
                ],
                "Resource": _OWN_USER,
            },
            {
                "Sid": "AllowManageOwnAccessKeys",
                "Effect": "Allow",
                "Action": [
                    "iam:CreateAccessKey",
                    "iam:DeleteAccessKey",
                    "iam:UpdateAccessKey",
                    "iam:ListAccessKeys",
                ],
                "Resource": _OWN_USER,
            },
            {
                "Sid": "AllowManageOwnUserMFA",
                "Effect": "Allow",
                "Action": [
                    "iam:ListMFADevices",
                    "iam:EnableMFADevice",
                    "iam:ResyncMFADevice",
                    "iam:DeactivateMFADevice",
                ],
                "Resource": _OWN_USER,
            },
            {
                "Sid": "AllowManageOwnVirtualMFADevice",
                "Effect": "Allow",
                "Action": ["iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"],
                "Resource": _OWN_MFA,
            },
        ],
    },
    "AccessEntriesAdmin": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "eks:*AccessEntr*",
                    "eks:*AccessPolic*",
                    "eks:DescribeCluster",
                    "eks:UpdateClusterConfig",
                    "eks:ListClusters",
                ],
                "Resource": "*",
            }
        ],
    },
}

AWS_MANAGED_POLICIES: Final[Mapping[str, PolicyDocument]] = MappingProxyType(
    {name: parse_policy(document) for name, document in _SHIPPED.items()}
)
"""The managed policies authbridge ships, by name; their ARN is :func:`aws_managed_arn`."""


def aws_managed_arn(partition: str, name: str) -> str:
    """``arn:<partition>:iam::aws:policy/<name>``, as AWS names its managed policies."""
    return f"arn:{partition}:iam::aws:policy/{name}"
