"""IAM policy evaluation (authbridge.iam.policy.evaluate), table-tested from AWS's documentation.

Each group cites the IAM user guide page its cases come from. Every case
asserts the decision, the deciding statements (policy id and statement index)
and, where it matters, the condition keys reported missing. Covers: default
and explicit deny across policies, NotAction/NotResource, case rules and ARN
wildcards, missing keys with and without IfExists, negated operators, Null,
Bool, IpAddress (v4/v6), dates, numbers, ARN operators, ForAnyValue/ForAllValues
on empty and missing sets, multi-valued keys without a qualifier, policy
variables (missing, default, literal substitution), version 2008-10-17, the
four shipped managed policies, and wildcard matching against a reference glob
matcher (Hypothesis), including patterns that would make a backtracking
matcher exponential.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.iam.policy import (
    AWS_MANAGED_POLICIES,
    KNOWN_ACTIONS,
    ContextValue,
    Request,
    SourcePolicy,
    aws_managed_arn,
    evaluate,
    parse_policy,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ADMIN = aws_managed_arn("aws", "AdministratorAccess")
READ_ONLY = aws_managed_arn("aws", "IAMReadOnlyAccess")
SELF = aws_managed_arn("aws", "IAMSelfManageCredentials")
ENTRIES = aws_managed_arn("aws", "AccessEntriesAdmin")
MFA_ABSENT: dict[str, ContextValue] = {}


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: value}}}


@dataclass
class Case:
    id: str
    policies: dict[str, dict[str, Any] | str]  # policy id -> document, or a shipped name
    action: str
    resource: str
    decision: str
    deciding: tuple[tuple[str, int], ...] = ()
    context: dict[str, ContextValue] = field(default_factory=dict)
    missing: tuple[str, ...] | None = None  # None: not asserted


def admin_and(extra: dict[str, Any]) -> dict[str, dict[str, Any] | str]:
    return {ADMIN: "AdministratorAccess", "user/alice/Guard": extra}


ADMIN_ONLY = ((ADMIN, 0),)
GUARD = (("user/alice/Guard", 0),)

# The table is laid out by hand, one case per few lines, so each reads as a row.
# fmt: off
CASES = [
    # -- "Policy evaluation logic" / "Determining whether a request is allowed or denied
    #    within an account": default deny, explicit deny wins, allow otherwise.
    Case("no-policies-implicit-deny", {}, "iam:CreateUser", ALICE, "implicitDeny"),
    Case("allow-matches", {"p1": doc(allow("iam:CreateUser"))}, "iam:CreateUser", ALICE,
         "allowed", (("p1", 0),)),
    Case("allow-other-action", {"p1": doc(allow("iam:ListUsers"))}, "iam:CreateUser", ALICE,
         "implicitDeny"),
    Case("deny-in-other-policy-beats-allow",
         {"p1": doc(allow("iam:*")), "p2": doc(deny("iam:CreateUser"))},
         "iam:CreateUser", ALICE, "explicitDeny", (("p2", 0),)),
    Case("deny-in-same-policy-beats-allow",
         {"p1": doc(allow("iam:*"), deny("iam:Create*"))},
         "iam:CreateUser", ALICE, "explicitDeny", (("p1", 1),)),
    Case("deny-listed-first-still-wins",
         {"p1": doc(deny("iam:CreateUser")), "p2": doc(allow())},
         "iam:CreateUser", ALICE, "explicitDeny", (("p1", 0),)),
    Case("every-allow-reported", {"p1": doc(allow("iam:*")), "p2": doc(allow("iam:CreateUser"))},
         "iam:CreateUser", ALICE, "allowed", (("p1", 0), ("p2", 0))),
    Case("every-deny-reported",
         {"p1": doc(deny("iam:*")), "p2": doc(allow(), deny("*"))},
         "iam:CreateUser", ALICE, "explicitDeny", (("p1", 0), ("p2", 1))),
    Case("deny-on-other-resource-does-not-apply",
         {"p1": doc(allow(), deny("iam:DeleteUser", BOB))},
         "iam:DeleteUser", ALICE, "allowed", (("p1", 0),)),
    # -- "IAM JSON policy elements: NotAction"
    Case("allow-notaction-allows-other-services",
         {"p": doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})},
         "eks:ListAccessEntries", "*", "allowed", (("p", 0),)),
    Case("allow-notaction-excludes-listed",
         {"p": doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})},
         "iam:CreateUser", ALICE, "implicitDeny"),
    Case("deny-notaction-without-mfa-spares-listed",
         admin_and(doc({"Effect": "Deny", "NotAction": ["iam:ChangePassword", "iam:GetUser"],
                        "Resource": "*",
                        **when("BoolIfExists", "aws:MultiFactorAuthPresent", "false")})),
         "iam:ChangePassword", ALICE, "allowed", ADMIN_ONLY),
    Case("deny-notaction-without-mfa-denies-rest",
         admin_and(doc({"Effect": "Deny", "NotAction": ["iam:ChangePassword", "iam:GetUser"],
                        "Resource": "*",
                        **when("BoolIfExists", "aws:MultiFactorAuthPresent", "false")})),
         "iam:CreateUser", ALICE, "explicitDeny", GUARD, missing=("aws:MultiFactorAuthPresent",)),
    Case("deny-notaction-with-mfa-allows-rest",
         admin_and(doc({"Effect": "Deny", "NotAction": ["iam:ChangePassword", "iam:GetUser"],
                        "Resource": "*",
                        **when("BoolIfExists", "aws:MultiFactorAuthPresent", "false")})),
         "iam:CreateUser", ALICE, "allowed", ADMIN_ONLY,
         context={"aws:MultiFactorAuthPresent": True}, missing=()),
    # -- "IAM JSON policy elements: NotResource"
    Case("deny-notresource-denies-outside",
         admin_and(doc({"Effect": "Deny", "Action": "iam:*",
                        "NotResource": f"arn:aws:iam::{ACCOUNT}:user/team/*"})),
         "iam:DeleteUser", ALICE, "explicitDeny", GUARD),
    Case("deny-notresource-spares-inside",
         admin_and(doc({"Effect": "Deny", "Action": "iam:*",
                        "NotResource": f"arn:aws:iam::{ACCOUNT}:user/team/*"})),
         "iam:DeleteUser", f"arn:aws:iam::{ACCOUNT}:user/team/carol", "allowed", ADMIN_ONLY),
    Case("allow-notresource-allows-outside",
         {"p": doc({"Effect": "Allow", "Action": "iam:*",
                    "NotResource": "arn:aws:iam::*:user/admins/*"})},
         "iam:UpdateUser", f"arn:aws:iam::{ACCOUNT}:user/dev/bob", "allowed", (("p", 0),)),
    Case("allow-notresource-excludes-inside",
         {"p": doc({"Effect": "Allow", "Action": "iam:*",
                    "NotResource": "arn:aws:iam::*:user/admins/*"})},
         "iam:UpdateUser", f"arn:aws:iam::{ACCOUNT}:user/admins/root", "implicitDeny"),
    # -- "IAM JSON policy elements: Action" (case-insensitive) and "IAM JSON policy
    #    elements: Resource" (case-sensitive; wildcards stay inside an ARN field)
    Case("action-pattern-case-insensitive", {"p": doc(allow("IAM:createuser"))},
         "iam:CreateUser", ALICE, "allowed", (("p", 0),)),
    Case("request-action-case-insensitive", {"p": doc(allow("iam:Create*"))},
         "IAM:CREATEUSER", ALICE, "allowed", (("p", 0),)),
    Case("action-question-mark", {"p": doc(allow("iam:?etUser"))}, "iam:GetUser", ALICE,
         "allowed", (("p", 0),)),
    Case("action-wildcard-needs-whole-match", {"p": doc(allow("iam:Get"))}, "iam:GetUser",
         ALICE, "implicitDeny"),
    Case("resource-case-sensitive", {"p": doc(allow("*", f"arn:aws:iam::{ACCOUNT}:user/Alice"))},
         "iam:GetUser", ALICE, "implicitDeny"),
    Case("resource-wildcard-in-account-field",
         {"p": doc(allow("*", "arn:aws:iam::*:user/alice"))}, "iam:GetUser", ALICE, "allowed",
         (("p", 0),)),
    Case("resource-wildcard-does-not-cross-field",
         {"p": doc(allow("*", "arn:aws:iam::*:user/alice"))}, "iam:GetUser",
         f"arn:aws:iam::{ACCOUNT}:extra:user/alice", "implicitDeny"),
    Case("resource-wildcard-crosses-slash",
         {"p": doc(allow("*", f"arn:aws:iam::{ACCOUNT}:user/*"))}, "iam:GetUser",
         f"arn:aws:iam::{ACCOUNT}:user/team/alice", "allowed", (("p", 0),)),
    Case("resource-question-mark",
         {"p": doc(allow("*", f"arn:aws:iam::{ACCOUNT}:user/?ob"))}, "iam:GetUser", BOB,
         "allowed", (("p", 0),)),
    Case("arn-pattern-does-not-match-star-resource",
         {"p": doc(allow("iam:ListUsers", "arn:aws:iam::*:user/*"))}, "iam:ListUsers", "*",
         "implicitDeny"),
    Case("star-matches-star-resource", {"p": doc(allow("iam:ListUsers"))}, "iam:ListUsers", "*",
         "allowed", (("p", 0),)),
    # -- "IAM JSON policy elements: Condition operators" (string operators, "...IfExists
    #    condition operators") and "IAM JSON policy elements: Condition" ("Condition with
    #    multiple context keys or values"; key names are case-insensitive)
    Case("string-equals-tag", {"p": doc(allow(**when("StringEquals", "aws:PrincipalTag/team",
                                                     "platform")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:PrincipalTag/team": "platform"}),
    Case("condition-key-case-insensitive",
         {"p": doc(allow(**when("StringEquals", "aws:PrincipalTag/team", "platform")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"AWS:principaltag/TEAM": "platform"}),
    Case("string-equals-missing-key",
         {"p": doc(allow(**when("StringEquals", "aws:PrincipalTag/team", "platform")))},
         "iam:GetUser", ALICE, "implicitDeny", missing=("aws:PrincipalTag/team",)),
    Case("string-equals-if-exists-missing-key",
         {"p": doc(allow(**when("StringEqualsIfExists", "aws:PrincipalTag/team", "platform")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), missing=("aws:PrincipalTag/team",)),
    Case("string-equals-if-exists-present-mismatch",
         {"p": doc(allow(**when("StringEqualsIfExists", "aws:PrincipalTag/team", "platform")))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:PrincipalTag/team": "dev"}),
    Case("string-not-equals-missing-key-is-true",
         {"p": doc(allow(**when("StringNotEquals", "aws:PrincipalTag/team", "guest")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), missing=("aws:PrincipalTag/team",)),
    Case("values-are-ored",
         {"p": doc(allow(**when("StringEquals", "aws:PrincipalTag/team",
                                ["platform", "security"])))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:PrincipalTag/team": "security"}),
    Case("keys-are-anded",
         {"p": doc(allow(Condition={"StringEquals": {"aws:PrincipalTag/team": "platform",
                                                     "aws:username": "alice"}}))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:PrincipalTag/team": "platform",
                                                       "aws:username": "bob"}),
    Case("operators-are-anded",
         {"p": doc(allow(Condition={"StringEquals": {"aws:PrincipalTag/team": "platform"},
                                    "StringLike": {"aws:username": "a*"}}))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:PrincipalTag/team": "platform", "aws:username": "alice"}),
    Case("string-not-like",
         {"p": doc(allow(**when("StringNotLike", "aws:username", ["a*", "c?rol"])))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:username": "carol"}),
    Case("string-equals-ignore-case",
         {"p": doc(allow(**when("StringEqualsIgnoreCase", "aws:username", "ALICE")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:username": "alice"}),
    Case("numeric-less-than",
         {"p": doc(allow(**when("NumericLessThan", "aws:MultiFactorAuthAge", 3600)))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:MultiFactorAuthAge": 120}),
    Case("numeric-less-than-too-old",
         {"p": doc(allow(**when("NumericLessThan", "aws:MultiFactorAuthAge", "3600")))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:MultiFactorAuthAge": "7200"}),
    # -- "IAM JSON policy elements: Condition operators": "Condition operator to check
    #    existence of condition keys" (Null) and "Boolean condition operators"; the MFA
    #    example "AWS: Denies access to AWS except ... without MFA" (BoolIfExists)
    Case("null-true-key-absent",
         {"p": doc(allow(**when("Null", "aws:TokenIssueTime", "true")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), missing=()),
    Case("null-true-key-present",
         {"p": doc(allow(**when("Null", "aws:TokenIssueTime", "true")))},
         "iam:GetUser", ALICE, "implicitDeny",
         context={"aws:TokenIssueTime": datetime(2026, 1, 1, tzinfo=UTC)}),
    Case("null-false-key-present",
         {"p": doc(allow(**when("Null", "aws:TokenIssueTime", False)))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:TokenIssueTime": datetime(2026, 1, 1, tzinfo=UTC)}),
    Case("bool-mfa-true",
         {"p": doc(allow(**when("Bool", "aws:MultiFactorAuthPresent", "true")))},
         "iam:CreateUser", ALICE, "allowed", (("p", 0),), {"aws:MultiFactorAuthPresent": True}),
    Case("bool-mfa-absent-is-not-true",
         {"p": doc(allow(**when("Bool", "aws:MultiFactorAuthPresent", "true")))},
         "iam:CreateUser", ALICE, "implicitDeny", missing=("aws:MultiFactorAuthPresent",)),
    Case("deny-bool-mfa-false-misses-long-term-keys",
         admin_and(doc(deny(**when("Bool", "aws:MultiFactorAuthPresent", "false")))),
         "iam:CreateUser", ALICE, "allowed", ADMIN_ONLY, missing=("aws:MultiFactorAuthPresent",)),
    Case("deny-bool-if-exists-mfa-absent",
         admin_and(doc(deny(**when("BoolIfExists", "aws:MultiFactorAuthPresent", "false")))),
         "iam:CreateUser", ALICE, "explicitDeny", GUARD, missing=("aws:MultiFactorAuthPresent",)),
    Case("deny-bool-if-exists-mfa-false",
         admin_and(doc(deny(**when("BoolIfExists", "aws:MultiFactorAuthPresent", "false")))),
         "iam:CreateUser", ALICE, "explicitDeny", GUARD, {"aws:MultiFactorAuthPresent": False}),
    Case("deny-bool-if-exists-mfa-true",
         admin_and(doc(deny(**when("BoolIfExists", "aws:MultiFactorAuthPresent", False)))),
         "iam:CreateUser", ALICE, "allowed", ADMIN_ONLY, {"aws:MultiFactorAuthPresent": "TRUE"}),
    # -- "AWS: Denies access to AWS based on the source IP" (NotIpAddress in a Deny) and
    #    "IAM JSON policy elements: Condition operators" ("IP address condition operators")
    Case("deny-not-ip-outside",
         admin_and(doc(deny(**when("NotIpAddress", "aws:SourceIp",
                                   ["192.0.2.0/24", "203.0.113.0/24"])))),
         "iam:CreateUser", ALICE, "explicitDeny", GUARD, {"aws:SourceIp": "198.51.100.7"}),
    Case("deny-not-ip-inside",
         admin_and(doc(deny(**when("NotIpAddress", "aws:SourceIp",
                                   ["192.0.2.0/24", "203.0.113.0/24"])))),
         "iam:CreateUser", ALICE, "allowed", ADMIN_ONLY, {"aws:SourceIp": "203.0.113.9"}),
    Case("deny-not-ip-missing-key",
         admin_and(doc(deny(**when("NotIpAddress", "aws:SourceIp", "192.0.2.0/24")))),
         "iam:CreateUser", ALICE, "explicitDeny", GUARD, missing=("aws:SourceIp",)),
    Case("ip-v6-block", {"p": doc(allow(**when("IpAddress", "aws:SourceIp", "2001:db8::/32")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:SourceIp": "2001:db8:1::7"}),
    Case("ip-v4-request-v6-block",
         {"p": doc(allow(**when("IpAddress", "aws:SourceIp", "2001:db8::/32")))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:SourceIp": "192.0.2.1"}),
    Case("ip-single-address",
         {"p": doc(allow(**when("IpAddress", "aws:SourceIp", "192.0.2.1")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),), {"aws:SourceIp": "192.0.2.1"}),
    # -- "AWS: Allows access within specific dates" (DateGreaterThan/DateLessThan on
    #    aws:CurrentTime) and "Date condition operators"
    Case("dates-inside-window",
         {"p": doc(allow(Condition={
             "DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
             "DateLessThan": {"aws:CurrentTime": "2026-12-31T23:59:59Z"}}))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:CurrentTime": datetime(2026, 6, 1, 12, tzinfo=UTC)}),
    Case("dates-after-window",
         {"p": doc(allow(Condition={
             "DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
             "DateLessThan": {"aws:CurrentTime": "2026-12-31T23:59:59Z"}}))},
         "iam:GetUser", ALICE, "implicitDeny",
         context={"aws:CurrentTime": datetime(2027, 1, 1, tzinfo=UTC)}),
    Case("date-epoch-value",
         {"p": doc(allow(**when("DateGreaterThan", "aws:CurrentTime", "1767225600")))},
         "iam:GetUser", ALICE, "implicitDeny",
         context={"aws:CurrentTime": datetime(2025, 12, 31, 23, 59, tzinfo=UTC)}),
    Case("date-missing-key",
         {"p": doc(allow(**when("DateGreaterThan", "aws:CurrentTime", "2026-01-01")))},
         "iam:GetUser", ALICE, "implicitDeny", missing=("aws:CurrentTime",)),
    # -- "Single-valued vs. multivalued context keys" / "Set operators for multivalued
    #    context keys": ForAnyValue is false on a missing or empty set, ForAllValues true
    Case("for-any-value-one-matches",
         {"p": doc(allow(**when("ForAnyValue:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "allowed", (("p", 0),), {"aws:TagKeys": ("team", "cost")}),
    Case("for-any-value-missing",
         {"p": doc(allow(**when("ForAnyValue:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "implicitDeny", missing=("aws:TagKeys",)),
    Case("for-any-value-empty-set",
         {"p": doc(allow(**when("ForAnyValue:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "implicitDeny", context={"aws:TagKeys": ()}),
    Case("for-all-values-one-outside",
         {"p": doc(allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "implicitDeny", context={"aws:TagKeys": ("team", "cost")}),
    Case("for-all-values-all-inside",
         {"p": doc(allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "allowed", (("p", 0),), {"aws:TagKeys": ("env", "team")}),
    Case("for-all-values-missing-is-true",
         {"p": doc(allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "allowed", (("p", 0),), missing=("aws:TagKeys",)),
    Case("for-all-values-empty-set-is-true",
         {"p": doc(allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team", "env"])))},
         "iam:TagUser", ALICE, "allowed", (("p", 0),), {"aws:TagKeys": ()}),
    Case("deny-for-any-value-not-equals",
         admin_and(doc(deny(**when("ForAnyValue:StringNotEquals", "aws:TagKeys",
                                   ["team", "env"])))),
         "iam:TagUser", ALICE, "explicitDeny", GUARD, {"aws:TagKeys": ("team", "cost")}),
    Case("unqualified-positive-on-set-is-any",
         {"p": doc(allow(**when("StringEquals", "aws:TagKeys", "team")))},
         "iam:TagUser", ALICE, "allowed", (("p", 0),), {"aws:TagKeys": ("cost", "team")}),
    Case("unqualified-negated-on-set-is-none-match",
         {"p": doc(allow(**when("StringNotEquals", "aws:TagKeys", "team")))},
         "iam:TagUser", ALICE, "implicitDeny", context={"aws:TagKeys": ("cost", "team")}),
    # -- "IAM JSON policy elements: Condition operators" ("Amazon Resource Name (ARN)
    #    condition operators": each of the six ARN fields is matched on its own)
    Case("arn-like-principal-arn",
         {"p": doc(allow(**when("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/admin/*")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/admin/Ops"}),
    Case("arn-like-does-not-cross-fields",
         {"p": doc(allow(**when("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/admin")))},
         "iam:GetUser", ALICE, "implicitDeny",
         context={"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:x:role/admin"}),
    Case("string-like-crosses-colons",
         {"p": doc(allow(**when("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/admin")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:x:role/admin"}),
    Case("deny-arn-not-equals",
         admin_and(doc(deny(**when("ArnNotEquals", "aws:PrincipalArn",
                                   f"arn:aws:iam::{ACCOUNT}:role/BreakGlass")))),
         "iam:DeleteRole", ALICE, "explicitDeny", GUARD, {"aws:PrincipalArn": ALICE}),
    Case("numeric-not-equals",
         {"p": doc(allow(**when("NumericNotEquals", "aws:MultiFactorAuthAge", ["0", "1"])))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:MultiFactorAuthAge": 1}),
    Case("date-less-than-equals-boundary",
         {"p": doc(allow(**when("DateLessThanEquals", "aws:CurrentTime", "2026-12-31")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:CurrentTime": datetime(2026, 12, 31, tzinfo=UTC)}),
    # -- "IAM policy elements: Variables and tags" (Resource and Condition variables, "Policy
    #    variables with no value", "Specifying default values", special characters)
    Case("variable-own-user",
         {"p": doc(allow("iam:*AccessKey*", "arn:aws:iam::*:user/${aws:username}"))},
         "iam:CreateAccessKey", ALICE, "allowed", (("p", 0),), {"aws:username": "alice"}),
    Case("variable-other-user",
         {"p": doc(allow("iam:*AccessKey*", "arn:aws:iam::*:user/${aws:username}"))},
         "iam:CreateAccessKey", BOB, "implicitDeny", context={"aws:username": "alice"}),
    Case("variable-missing-matches-nothing",
         {"p": doc(allow("iam:*AccessKey*", "arn:aws:iam::*:user/${aws:username}"))},
         "iam:CreateAccessKey", ALICE, "implicitDeny", missing=("aws:username",)),
    Case("variable-default",
         {"p": doc(allow("iam:GetUser",
                         f"arn:aws:iam::{ACCOUNT}:user/${{aws:PrincipalTag/team, 'shared'}}/*"))},
         "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/shared/dave", "allowed", (("p", 0),),
         missing=("aws:PrincipalTag/team",)),
    Case("variable-value-is-literal-not-wildcard",
         {"p": doc(allow("iam:GetUser",
                         f"arn:aws:iam::{ACCOUNT}:user/${{aws:PrincipalTag/team}}/*"))},
         "iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/admins/root", "implicitDeny",
         context={"aws:PrincipalTag/team": "*"}),
    Case("variable-escaped-star",
         {"p": doc(allow(**when("StringLike", "aws:PrincipalTag/code", "a${*}")))},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:PrincipalTag/code": "abc"}),
    Case("variable-in-condition",
         {"p": doc(allow(**when("StringEquals", "aws:ResourceTag/team",
                                "${aws:PrincipalTag/team}")))},
         "iam:GetUser", ALICE, "allowed", (("p", 0),),
         {"aws:ResourceTag/team": "dev", "aws:PrincipalTag/team": "dev"}),
    Case("abac-deny-unresolved-still-denies",
         admin_and(doc(deny(**when("StringNotEquals", "aws:ResourceTag/team",
                                   "${aws:PrincipalTag/team}")))),
         "iam:DeleteUser", ALICE, "explicitDeny", GUARD, {"aws:ResourceTag/team": "dev"},
         missing=("aws:PrincipalTag/team",)),
    Case("abac-allow-unresolved-never-allows",
         {"p": doc(allow(**when("StringNotEquals", "aws:ResourceTag/team",
                                "${aws:PrincipalTag/team}")))},
         "iam:DeleteUser", ALICE, "implicitDeny", context={"aws:ResourceTag/team": "dev"}),
    Case("allow-notresource-unresolved-never-allows",
         {"p": doc({"Effect": "Allow", "Action": "iam:*",
                    "NotResource": "arn:aws:iam::*:user/${aws:username}"})},
         "iam:DeleteUser", BOB, "implicitDeny", missing=("aws:username",)),
    Case("deny-notresource-unresolved-still-denies",
         admin_and(doc({"Effect": "Deny", "Action": "iam:*",
                        "NotResource": "arn:aws:iam::*:user/${aws:username}"})),
         "iam:DeleteUser", BOB, "explicitDeny", GUARD),
    Case("version-2008-has-no-variables",
         {"p": doc(allow("iam:GetUser", "arn:aws:iam::*:user/${aws:username}"),
                   version="2008-10-17")},
         "iam:GetUser", ALICE, "implicitDeny", context={"aws:username": "alice"}),
    Case("version-2008-literal-dollar",
         {"p": doc(allow("iam:GetUser", "arn:aws:iam::*:user/${aws:username}"),
                   version="2008-10-17")},
         "iam:GetUser", "arn:aws:iam::1:user/${aws:username}", "allowed", (("p", 0),)),
    # -- the shipped managed policies; IAMSelfManageCredentials after "IAM: Allows IAM users
    #    to manage their own credentials on the Security credentials page"
    Case("read-only-lists", {READ_ONLY: "IAMReadOnlyAccess"}, "iam:ListUsers", "*", "allowed",
         ((READ_ONLY, 0),)),
    Case("read-only-cannot-create", {READ_ONLY: "IAMReadOnlyAccess"}, "iam:CreateUser", ALICE,
         "implicitDeny"),
    Case("read-only-exports-signing-keys", {READ_ONLY: "IAMReadOnlyAccess"},
         "authbridge:ExportSigningKeys", "*", "allowed", ((READ_ONLY, 0),)),
    Case("read-only-cannot-rotate", {READ_ONLY: "IAMReadOnlyAccess"},
         "authbridge:RotateSigningKey", "*", "implicitDeny"),
    Case("self-manage-own-keys", {SELF: "IAMSelfManageCredentials"}, "iam:CreateAccessKey",
         ALICE, "allowed", ((SELF, 1),), {"aws:username": "alice"}),
    Case("self-manage-not-others-keys", {SELF: "IAMSelfManageCredentials"},
         "iam:DeleteAccessKey", BOB, "implicitDeny", context={"aws:username": "alice"}),
    Case("self-manage-own-password-other-partition", {SELF: "IAMSelfManageCredentials"},
         "iam:ChangePassword", f"arn:aws-cn:iam::{ACCOUNT}:user/alice", "allowed",
         ((SELF, 0),), {"aws:username": "alice"}),
    Case("self-manage-own-virtual-mfa", {SELF: "IAMSelfManageCredentials"},
         "iam:CreateVirtualMFADevice", f"arn:aws:iam::{ACCOUNT}:mfa/alice", "allowed",
         ((SELF, 3),), {"aws:username": "alice"}),
    Case("self-manage-cannot-create-users", {SELF: "IAMSelfManageCredentials"},
         "iam:CreateUser", ALICE, "implicitDeny", context={"aws:username": "alice"}),
    Case("entries-admin-associates", {ENTRIES: "AccessEntriesAdmin"},
         "eks:AssociateAccessPolicy", "*", "allowed", ((ENTRIES, 0),)),
    Case("entries-admin-no-iam", {ENTRIES: "AccessEntriesAdmin"}, "iam:CreateUser", ALICE,
         "implicitDeny"),
    Case("deny-beats-administrator-access",
         admin_and(doc(deny(["iam:DeleteUser", "iam:DeleteRole"]))),
         "iam:DeleteUser", ALICE, "explicitDeny", GUARD),
    Case("administrator-access-allows-anything", {ADMIN: "AdministratorAccess"},
         "authbridge:RevokeSigningKey", "*", "allowed", ADMIN_ONLY),
]
# fmt: on


def _sources(case: Case) -> list[SourcePolicy]:
    out = []
    for policy_id, spec in case.policies.items():
        if isinstance(spec, str):
            out.append(SourcePolicy(policy_id, "aws-managed", AWS_MANAGED_POLICIES[spec]))
        else:
            kind = "user" if policy_id.startswith("user/") else "managed"
            out.append(SourcePolicy(policy_id, kind, parse_policy(spec)))
    return out


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_evaluate(case: Case) -> None:
    decision = evaluate(_sources(case), Request(case.action, case.resource, case.context))
    assert decision.decision == case.decision
    assert tuple((m.policy_id, m.statement_index) for m in decision.statements) == case.deciding
    if case.missing is not None:
        assert decision.missing_context == case.missing
    sources = {s.policy_id: s for s in _sources(case)}
    for matched in decision.statements:  # the Sid and type reported are the statement's own
        source = sources[matched.policy_id]
        assert matched.policy_type == source.policy_type
        assert matched.sid == source.document.statements[matched.statement_index].sid


def test_missing_context_lists_each_key_once() -> None:
    document = doc(
        allow(
            Condition={
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "BoolIfExists": {"AWS:multifactorauthpresent": "true"},
                "StringEquals": {"aws:username": "alice"},
            }
        )
    )
    decision = evaluate(
        [SourcePolicy("p", "managed", parse_policy(document))],
        Request("iam:GetUser", ALICE, {"aws:username": "alice"}),
    )
    assert decision.decision == "implicitDeny"
    assert decision.missing_context == ("aws:MultiFactorAuthPresent",)


def test_self_manage_reports_the_sid() -> None:
    policy = SourcePolicy(SELF, "aws-managed", AWS_MANAGED_POLICIES["IAMSelfManageCredentials"])
    decision = evaluate([policy], Request("iam:ListMFADevices", ALICE, {"aws:username": "alice"}))
    assert decision.statements[0].sid == "AllowManageOwnUserMFA"


# -- the shipped policies against the action catalogue


def test_known_actions_are_unique_and_well_formed() -> None:
    assert len(set(KNOWN_ACTIONS)) == len(KNOWN_ACTIONS)
    for action in KNOWN_ACTIONS:
        assert re.fullmatch(r"(iam|eks|authbridge):[A-Z][A-Za-z]+", action), action


def test_every_shipped_action_pattern_names_a_known_action() -> None:
    """A typo in a shipped policy (``iam:ListUser``) would silently grant nothing."""
    extra = {"eks:ListClusters"}  # granted by AccessEntriesAdmin for the CLI's cluster listing
    # read verbs IAMReadOnlyAccess grants ahead of any action that has them (AWS's own
    # policy has iam:GenerateCredentialReport; authbridge has no Describe verb yet)
    ahead = {"iam:Generate*", "authbridge:Describe*"}
    for name, document in AWS_MANAGED_POLICIES.items():
        for statement in document.statements:
            for pattern in statement.actions or ():
                if pattern == "*" or pattern in ahead:
                    continue
                regex = re.compile(
                    re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE
                )
                hits = [a for a in (*KNOWN_ACTIONS, *extra) if regex.fullmatch(a)]
                assert hits, f"{name}: {pattern} matches no known action"


READ_VERBS = ("Get", "List", "Generate", "Simulate", "Describe", "Export")


@pytest.mark.parametrize("action", KNOWN_ACTIONS)
def test_read_only_allows_exactly_the_read_verbs(action: str) -> None:
    policy = SourcePolicy(READ_ONLY, "aws-managed", AWS_MANAGED_POLICIES["IAMReadOnlyAccess"])
    verb = action.split(":", 1)[1]
    expected = "allowed" if verb.startswith(READ_VERBS) else "implicitDeny"
    assert evaluate([policy], Request(action, "*")).decision == expected


@pytest.mark.parametrize("action", KNOWN_ACTIONS)
def test_self_manage_grants_nothing_on_another_user(action: str) -> None:
    policy = SourcePolicy(SELF, "aws-managed", AWS_MANAGED_POLICIES["IAMSelfManageCredentials"])
    for resource in (BOB, f"arn:aws:iam::{ACCOUNT}:mfa/bob", "*"):
        decision = evaluate([policy], Request(action, resource, {"aws:username": "alice"}))
        assert decision.decision == "implicitDeny", (action, resource)


def test_access_entries_admin_covers_the_eks_actions() -> None:
    policy = SourcePolicy(ENTRIES, "aws-managed", AWS_MANAGED_POLICIES["AccessEntriesAdmin"])
    for action in KNOWN_ACTIONS:
        decision = evaluate([policy], Request(action, "*")).decision
        assert decision == ("allowed" if action.startswith("eks:") else "implicitDeny"), action


def test_managed_arn() -> None:
    assert aws_managed_arn("aws-cn", "IAMReadOnlyAccess") == (
        "arn:aws-cn:iam::aws:policy/IAMReadOnlyAccess"
    )


# -- named security regressions


def test_attack_tag_value_wildcard_does_not_widen_resource() -> None:
    """A principal who can set its own tag to ``*`` must not reach every user."""
    policy = parse_policy(doc(allow("iam:*", "arn:aws:iam::*:user/${aws:PrincipalTag/team}/*")))
    request = Request(
        "iam:DeleteUser", f"arn:aws:iam::{ACCOUNT}:user/admins/root", {"aws:PrincipalTag/team": "*"}
    )
    assert evaluate([SourcePolicy("p", "managed", policy)], request).decision == "implicitDeny"


def test_attack_variable_value_with_colon_cannot_cross_arn_fields() -> None:
    """``${aws:PrincipalTag/acct}`` = ``1:2`` must not match an account field plus more."""
    policy = parse_policy(doc(allow("iam:*", "arn:aws:iam::${aws:PrincipalTag/acct}:user/x")))
    request = Request("iam:GetUser", "arn:aws:iam::1:2:user/x", {"aws:PrincipalTag/acct": "1:2"})
    assert evaluate([SourcePolicy("p", "managed", policy)], request).decision == "implicitDeny"


def test_attack_multivalued_key_is_not_a_variable() -> None:
    policy = parse_policy(doc(allow("iam:*", "arn:aws:iam::*:user/${aws:TagKeys}")))
    request = Request("iam:GetUser", ALICE, {"aws:TagKeys": ("alice",)})
    assert evaluate([SourcePolicy("p", "managed", policy)], request).decision == "implicitDeny"


def test_attack_uncomparable_context_value_matches_nothing() -> None:
    policy = parse_policy(doc(allow(**when("NumericLessThan", "aws:MultiFactorAuthAge", "10"))))
    for value in ("soon", True, "nan", "-inf"):
        request = Request("iam:GetUser", ALICE, {"aws:MultiFactorAuthAge": value})
        assert evaluate([SourcePolicy("p", "managed", policy)], request).decision == (
            "implicitDeny"
        ), value


def test_attack_pathological_wildcards_do_not_backtrack() -> None:
    """``*a*a*…*b`` against ``aaaa…`` is exponential for a backtracking matcher.

    A policy author (perhaps a delegated team admin) must not be able to stall
    the admin API with one pattern. authbridge's patterns commit to each
    segment's leftmost place, so these finish at once; a regression shows as
    this test hanging, not as a timing assertion.
    """
    stars = "*a" * 40 + "*b"
    document = doc(
        allow(f"iam:{stars}", f"arn:aws:iam::*:user/{stars}"),
        allow(**when("StringLike", "aws:username", stars)),
        allow("iam:GetUser", f"arn:aws:iam::{'*a' * 10}*:user/x"),
    )
    policy = SourcePolicy("p", "managed", parse_policy(document))
    resource = f"arn:aws:iam::{'a' * 3000}:user/{'a' * 3000}"
    request = Request("iam:" + "a" * 3000, resource, {"aws:username": "a" * 3000})
    assert evaluate([policy], request).decision == "implicitDeny"
    request = Request("iam:GetUser", resource, {"aws:username": "a" * 3000 + "b"})
    assert evaluate([policy], request).decision == "allowed"


def _glob(pattern: str, text: str) -> bool:
    """Reference glob matcher (dynamic programming): ``*`` any run, ``?`` one character."""
    reachable = {0}
    for char in pattern:
        if char == "*":
            start = min(reachable, default=len(text) + 1)
            reachable = set(range(start, len(text) + 1))
        else:
            reachable = {i + 1 for i in reachable if i < len(text) and char in ("?", text[i])}
        if not reachable:
            return False
    return len(text) in reachable


def _arn_glob(pattern: str, resource: str) -> bool:
    """AWS's ARN matching: the six fields (five colons) each matched on their own."""
    fields, subject = pattern.split(":", 5), resource.split(":", 5)
    return len(subject) == 6 and all(map(_glob, fields, subject))


field_pattern = st.text("ab*?", max_size=5)
resource_pattern = st.text("ab*?:/", max_size=8)


@given(
    st.tuples(field_pattern, field_pattern, field_pattern, field_pattern, resource_pattern),
    st.text("ab:/", max_size=16)
    | st.tuples(*[st.text("ab", max_size=3)] * 4, st.text("ab:/", max_size=6)),
)
def test_property_resource_matching_is_field_wise_glob(
    fields: tuple[str, ...], subject: Any
) -> None:
    pattern = "arn:" + ":".join(fields)
    resource = "arn:" + (subject if isinstance(subject, str) else ":".join(subject))
    policy = SourcePolicy("p", "managed", parse_policy(doc(allow("iam:GetUser", pattern))))
    decision = evaluate([policy], Request("iam:GetUser", resource))
    assert decision.allowed == _arn_glob(pattern, resource), (pattern, resource)


@given(st.text("ab*?:", max_size=8), st.text("ab:", max_size=10))
def test_property_string_like_is_glob(pattern: str, value: str) -> None:
    policy = parse_policy(doc(allow(**when("StringLike", "aws:username", pattern))))
    decision = evaluate(
        [SourcePolicy("p", "managed", policy)],
        Request("iam:GetUser", ALICE, {"aws:username": value}),
    )
    assert decision.allowed == _glob(pattern, value), (pattern, value)
