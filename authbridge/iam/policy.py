"""IAM identity policies: parse a policy document, evaluate a request against policies (pure).

The admin API authorizes every call with the caller's policies (inline and
managed, attached to the user, its groups, or the role of a session), as AWS
IAM does for identity-based policies. Nothing here reads a store: the caller
gathers the :class:`SourcePolicy` values and the request context. The
grammar and :func:`parse_policy` live in :mod:`authbridge.iam.policy_document`,
conditions in :mod:`authbridge.iam.policy_conditions`, wildcards and policy
variables in :mod:`authbridge.iam.policy_patterns`; this module is the one to
import.

Evaluation ("Policy evaluation logic", identity-based policies only): a
request is denied by default (``implicitDeny``); any statement that applies
with ``Deny`` decides ``explicitDeny``, whatever else allows; otherwise any
that applies with ``Allow`` decides ``allowed``. A statement applies when its
action element, its resource element and all of its conditions match. An
``Allow`` with ``NotAction`` allows every action but those; a ``Deny`` with
``NotResource`` denies every resource outside those. The :class:`Decision`
names every deciding statement and the condition keys the request lacked, as
``iam simulate-principal-policy`` reports them.

Keep parsed :class:`PolicyDocument` values rather than parsing per request:
parsing compiles the patterns (milliseconds for a large document), and a
document remembers which statements each action selects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from authbridge.errors import MalformedPolicyDocument
from authbridge.iam.policy_conditions import Condition
from authbridge.iam.policy_document import (
    MAX_CHARS,
    MAX_TEXT_CHARS,
    PolicyDocument,
    PolicyKind,
    Statement,
    parse_policy,
)
from authbridge.iam.policy_patterns import ContextValue

__all__ = [
    "AWS_MANAGED_POLICIES",
    "KNOWN_ACTIONS",
    "MAX_CHARS",
    "MAX_TEXT_CHARS",
    "Condition",
    "ContextValue",
    "Decision",
    "MalformedPolicyDocument",
    "MatchedStatement",
    "PolicyDocument",
    "PolicyKind",
    "PolicyType",
    "Request",
    "SourcePolicy",
    "Statement",
    "aws_managed_arn",
    "evaluate",
    "parse_policy",
]

PolicyType = Literal["aws-managed", "managed", "user", "group", "role"]


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
        for statement in policy.document.statements_for(action):
            if statement.applies_beyond_action(request.resource, context, missing):
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
    "iam:GetAccountPasswordPolicy",
    "iam:UpdateAccountPasswordPolicy",
    "iam:DeleteAccountPasswordPolicy",
    "iam:RevokeSessions",  # authbridge's: ends a user's sign-in sessions (no AWS IAM call)
    "iam:RevokeRoleSessions",  # authbridge's: ends the federated sign-ins working as a role
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
    "iam:CreateOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider",
    "iam:ListOpenIDConnectProviders",
    "iam:DeleteOpenIDConnectProvider",
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:UpdateOpenIDConnectProviderSignIn",
    "iam:DeleteOpenIDConnectProviderSignIn",
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
