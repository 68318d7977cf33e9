"""Tests for authbridge.mapping.resolve: which rule decides, and what Kubernetes is told.

Covers, as table tests where the shape allows:
* role sessions: rolearn with and without a path against canonical ARNs with
  and without one (upstream StripPath semantics on both sides), case-insensitive
  ARNs, the first matching mapRoles entry wins, mapGroups never applies to roles;
* users: mapUsers by exact ARN (paths must match, case-insensitive), every
  matching mapGroups entry adds groups in file order, de-duplicated; the
  username from mapUsers, else the first mapGroups entry that sets one, else
  the canonical ARN;
* mapAccounts only when no rule matched (and for root and federated users);
  the precise reason for an unmapped principal;
* templates: AccountID, SessionName (@ → -), SessionNameRaw, AccessKeyID,
  PrincipalID, spaces inside braces, substituted once;
* render-time refusals with a precise reason: reserved prefixes with and
  without allowReservedPrefixes, empty and over-long results;
* uid and extra, exactly (empty extra values left out).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from authbridge.mapping import (
    GroupRule,
    Identity,
    KubeIdentity,
    Mapping,
    MatchedRule,
    RoleRule,
    UserRule,
    parse_mapping,
    resolve,
)

ACCT = "111122223333"
OTHER = "444455556666"
ROLE = f"arn:aws:iam::{ACCT}:role/platform/Admin"
ROLE_NO_PATH = f"arn:aws:iam::{ACCT}:role/Admin"
USER = f"arn:aws:iam::{ACCT}:user/alice"
ADMINS = f"arn:aws:iam::{ACCT}:group/admins"
ONCALL = f"arn:aws:iam::{ACCT}:group/oncall"

SESSION = Identity(
    arn=f"arn:aws:sts::{ACCT}:assumed-role/Admin/alice@example.com",
    canonical_arn=ROLE,
    account_id=ACCT,
    principal_id="AROAEXAMPLEROLEID:alice@example.com",
    session_name="alice@example.com",
)
ALICE = Identity(
    arn=USER,
    canonical_arn=USER,
    account_id=ACCT,
    principal_id="AIDAEXAMPLEUSERID",
    access_key_id="AKIAEXAMPLEKEY",
)


def mapping(**sections: Any) -> Mapping:
    return Mapping(source="m.yaml", digest="", cluster_id=None, **sections)


MAPPING = parse_mapping(
    f"""
mapRoles:
  - rolearn: {ROLE}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins", "acct-{{{{AccountID}}}}", "authbridge:admins"]
mapUsers:
  - userarn: {USER}
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: {ADMINS}
    username: "should-not-be-used"
    groups: ["authbridge:oncall", "authbridge:devs"]
  - grouparn: arn:aws:iam::{ACCT}:group/other
    groups: ["never"]
  - grouparn: {ONCALL}
    groups: ["pager"]
mapAccounts: ["{OTHER}"]
""",
    "m.yaml",
)


# -- role sessions ---------------------------------------------------------------------------

ROLE_MATCHES = [
    # (rolearn in the mapping, identity's canonical ARN, matches?)
    (ROLE, ROLE, True),
    (ROLE, ROLE_NO_PATH, True),  # upstream: StripPath(mapping) == session's canonical ARN
    (ROLE_NO_PATH, ROLE, True),  # a path-less entry matches the role whatever its path
    (ROLE_NO_PATH, ROLE_NO_PATH, True),
    (f"arn:aws:iam::{ACCT}:role/a/b/c/Admin", ROLE, True),  # role names are unique per account
    (ROLE.lower(), ROLE, True),
    (f"arn:aws:iam::{ACCT}:role/PLATFORM/ADMIN", ROLE_NO_PATH, True),
    (f"arn:aws:iam::{ACCT}:role/platform/Admins", ROLE, False),
    (f"arn:aws:iam::{OTHER}:role/platform/Admin", ROLE, False),
    (f"arn:aws-cn:iam::{ACCT}:role/platform/Admin", ROLE, False),
    (f"arn:aws:iam::{ACCT}:role/Admin/platform", ROLE, False),
]


@pytest.mark.parametrize(("rolearn", "canonical", "matches"), ROLE_MATCHES)
def test_role_matching(rolearn: str, canonical: str, matches: bool) -> None:
    m = mapping(map_roles=(RoleRule(rolearn, "u"),))
    got = resolve(m, replace(SESSION, canonical_arn=canonical))
    if matches:
        assert got.user is not None and got.user.username == "u"
        assert got.rules == (MatchedRule("mapRoles", 0, rolearn),)
    else:
        assert got.user is None and got.rules == ()


def test_role_session_is_mapped_exactly() -> None:
    got = resolve(MAPPING, SESSION, [ADMINS])  # IAM groups never apply to roles
    assert got.reason is None
    assert got.rules == (MatchedRule("mapRoles", 0, ROLE),)
    assert got.user == KubeIdentity(
        username="admin:alice-example.com",
        uid=f"authbridge:{ACCT}:AROAEXAMPLEROLEID:alice@example.com",
        groups=("authbridge:admins", f"acct-{ACCT}"),
        extra={
            "arn": [SESSION.arn],
            "canonicalArn": [ROLE],
            "sessionName": ["alice@example.com"],
            "accessKeyId": [""],  # always all five keys, as aws-iam-authenticator sends
            "principalId": ["AROAEXAMPLEROLEID:alice@example.com"],
        },
    )


def test_first_matching_role_entry_wins_in_file_order() -> None:
    # parse_mapping refuses such a file; resolve still has a defined answer.
    m = mapping(
        map_roles=(
            RoleRule(f"arn:aws:iam::{ACCT}:role/Other", "other"),
            RoleRule(ROLE_NO_PATH, "first", ("g1",)),
            RoleRule(ROLE, "second", ("g2",)),
        )
    )
    got = resolve(m, SESSION)
    assert got.user is not None and (got.user.username, got.user.groups) == ("first", ("g1",))
    assert got.rules == (MatchedRule("mapRoles", 1, ROLE_NO_PATH),)


def test_unmapped_role_falls_back_to_accounts_then_is_refused() -> None:
    other = replace(SESSION, canonical_arn=f"arn:aws:iam::{ACCT}:role/Nobody")
    got = resolve(MAPPING, other)
    assert got.user is None and got.rules == ()
    assert got.reason == (
        f"no mapping rule matched arn:aws:iam::{ACCT}:role/Nobody"
        " (mapRoles/mapUsers/mapGroups/mapAccounts)"
    )
    in_account = replace(other, canonical_arn=f"arn:aws:iam::{OTHER}:role/Nobody", account_id=OTHER)
    got = resolve(MAPPING, in_account)
    assert got.user is not None
    assert (got.user.username, got.user.groups) == (f"arn:aws:iam::{OTHER}:role/Nobody", ())
    assert got.rules == (MatchedRule("mapAccounts", 0, None),)


# -- users -----------------------------------------------------------------------------------

USER_CASES = [
    # (the user's IAM groups, username, groups, rules)
    (
        [],
        "alice",
        ("authbridge:devs",),
        [("mapUsers", 0, USER)],
    ),
    (
        [ADMINS],
        "alice",
        ("authbridge:devs", "authbridge:oncall"),  # de-duplicated, first seen first
        [("mapUsers", 0, USER), ("mapGroups", 0, ADMINS)],
    ),
    (
        [
            ONCALL.upper().replace("ARN:AWS:IAM", "arn:aws:iam"),
            ADMINS,
            f"arn:aws:iam::{ACCT}:group/x",
        ],
        "alice",
        ("authbridge:devs", "authbridge:oncall", "pager"),  # file order, not the caller's
        [("mapUsers", 0, USER), ("mapGroups", 0, ADMINS), ("mapGroups", 2, ONCALL)],
    ),
]


@pytest.mark.parametrize(("iam_groups", "username", "groups", "rules"), USER_CASES)
def test_user_rules_and_every_matching_group(
    iam_groups: list[str], username: str, groups: tuple[str, ...], rules: list[tuple[Any, int, str]]
) -> None:
    got = resolve(MAPPING, ALICE, iam_groups)
    assert got.user is not None, got.reason
    assert (got.user.username, got.user.groups) == (username, groups)
    assert got.rules == tuple(MatchedRule(s, i, a) for s, i, a in rules)


def test_user_arns_compare_case_insensitively_but_paths_must_match() -> None:
    for spelled in (f"arn:aws:iam::{ACCT}:user/ALICE", USER.upper()):
        got = resolve(MAPPING, replace(ALICE, canonical_arn=spelled))
        assert got.user is not None and got.user.username == "alice"
    ops = replace(
        ALICE,
        arn=f"arn:aws:iam::{ACCT}:user/ops/alice",
        canonical_arn=f"arn:aws:iam::{ACCT}:user/ops/alice",
    )
    got = resolve(MAPPING, ops)
    assert got.user is None
    assert got.reason == (
        f"no mapping rule matched arn:aws:iam::{ACCT}:user/ops/alice"
        " (mapRoles/mapUsers/mapGroups/mapAccounts)"
    )


def test_a_user_known_only_through_groups_is_mapped() -> None:
    bob = replace(
        ALICE,
        arn=f"arn:aws:iam::{ACCT}:user/bob",
        canonical_arn=f"arn:aws:iam::{ACCT}:user/bob",
        principal_id="AIDABOB",
    )
    got = resolve(MAPPING, bob, [ONCALL, ADMINS])
    assert got.user is not None
    # the username of the first matching mapGroups entry that sets one
    assert got.user.username == "should-not-be-used"
    assert got.user.groups == ("authbridge:oncall", "authbridge:devs", "pager")
    assert got.rules == (MatchedRule("mapGroups", 0, ADMINS), MatchedRule("mapGroups", 2, ONCALL))
    got = resolve(MAPPING, bob, [ONCALL])  # no entry sets a username: the canonical ARN
    assert got.user is not None
    assert (got.user.username, got.user.groups) == (bob.canonical_arn, ("pager",))
    assert resolve(MAPPING, bob).user is None


def test_group_username_template_and_no_username_entries() -> None:
    m = mapping(
        map_groups=(
            GroupRule(ADMINS, ("a",)),
            GroupRule(ONCALL, ("b",), username="oncall:{{AccountID}}:{{AccessKeyID}}"),
        )
    )
    bob = replace(ALICE, canonical_arn=f"arn:aws:iam::{ACCT}:user/bob")
    got = resolve(m, bob, [ADMINS, ONCALL])
    assert got.user is not None
    assert got.user.username == f"oncall:{ACCT}:AKIAEXAMPLEKEY"


def test_accounts_apply_only_when_no_rule_matched() -> None:
    m = mapping(
        map_users=(UserRule(USER, "alice"),),
        map_accounts=(OTHER, ACCT),
    )
    got = resolve(m, ALICE)
    assert got.rules == (MatchedRule("mapUsers", 0, USER),)
    carol = replace(
        ALICE,
        arn=f"arn:aws:iam::{ACCT}:user/carol",
        canonical_arn=f"arn:aws:iam::{ACCT}:user/carol",
    )
    got = resolve(m, carol)
    assert got.user == KubeIdentity(
        username=carol.canonical_arn,
        uid=f"authbridge:{ACCT}:AIDAEXAMPLEUSERID",
        groups=(),
        extra={
            "arn": [carol.arn],
            "canonicalArn": [carol.canonical_arn],
            "sessionName": [""],
            "accessKeyId": ["AKIAEXAMPLEKEY"],
            "principalId": ["AIDAEXAMPLEUSERID"],
        },
    )
    assert got.rules == (MatchedRule("mapAccounts", 1, None),)


@pytest.mark.parametrize(
    "canonical",
    [f"arn:aws:iam::{ACCT}:root", f"arn:aws:sts::{ACCT}:federated-user/bob"],
)
def test_root_and_federated_users_only_map_through_accounts(canonical: str) -> None:
    ident = Identity(arn=canonical, canonical_arn=canonical, account_id=ACCT, principal_id=ACCT)
    m = mapping(map_users=(UserRule(canonical, "x"),))  # never matches: not an IAM user
    assert resolve(m, ident).user is None
    got = resolve(replace(m, map_accounts=(ACCT,)), ident)
    assert got.user is not None and got.user.username == canonical


def test_empty_mapping_refuses_everyone() -> None:
    empty = Mapping(source="m.yaml", digest="", cluster_id=None)
    for ident in (SESSION, ALICE):
        got = resolve(empty, ident, [ADMINS])
        assert got.user is None and got.rules == ()
        assert got.reason == (
            f"no mapping rule matched {ident.canonical_arn}"
            " (mapRoles/mapUsers/mapGroups/mapAccounts)"
        )


# -- templates and render-time checks ---------------------------------------------------------

TEMPLATES = [
    ("{{AccountID}}", ACCT),
    ("{{SessionName}}", "alice-example.com"),
    ("{{SessionNameRaw}}", "alice@example.com"),
    ("{{ SessionName }}", "alice-example.com"),
    ("{{PrincipalID}}", "AROAEXAMPLEROLEID:alice@example.com"),
    (
        "s:{{SessionName}}:{{SessionNameRaw}}:{{AccountID}}",
        f"s:alice-example.com:alice@example.com:{ACCT}",
    ),
]


@pytest.mark.parametrize(("template", "rendered"), TEMPLATES)
def test_role_templates(template: str, rendered: str) -> None:
    m = mapping(map_roles=(RoleRule(ROLE, template, (template,)),))
    got = resolve(m, SESSION)
    assert got.user is not None
    assert got.user.username == rendered and got.user.groups == (rendered,)


def test_user_templates_and_values_substituted_once() -> None:
    m = mapping(map_users=(UserRule(USER, "{{AccessKeyID}}/{{PrincipalID}}/{{AccountID}}"),))
    got = resolve(m, ALICE)
    assert got.user is not None and got.user.username == f"AKIAEXAMPLEKEY/AIDAEXAMPLEUSERID/{ACCT}"
    sneaky = replace(SESSION, session_name="{{AccountID}}")
    m = mapping(map_roles=(RoleRule(ROLE, "x:{{SessionNameRaw}}"),))
    got = resolve(m, sneaky)
    assert got.user is not None and got.user.username == "x:{{AccountID}}"


REFUSALS = [
    # (rule, identity, reason)
    (
        RoleRule(ROLE, "system:{{SessionName}}"),
        SESSION,
        f"mapRoles[0] ({ROLE}): username 'system:{{{{SessionName}}}}' renders to"
        " 'system:alice-example.com', which starts with the reserved prefix \"system:\"; set"
        " allowReservedPrefixes: true on that entry if you mean it",
    ),
    (
        RoleRule(ROLE, "{{SessionNameRaw}}"),
        replace(SESSION, session_name="EKS:admin"),
        f"mapRoles[0] ({ROLE}): username '{{{{SessionNameRaw}}}}' renders to 'EKS:admin', which"
        ' starts with the reserved prefix "eks:"; set allowReservedPrefixes: true on that entry'
        " if you mean it",
    ),
    (
        RoleRule(ROLE, "ok", ("fine", "system:masters")),
        SESSION,
        f"mapRoles[0] ({ROLE}): group 'system:masters' renders to 'system:masters', which starts"
        ' with the reserved prefix "system:"; set allowReservedPrefixes: true on that entry if'
        " you mean it",
    ),
    (
        RoleRule(ROLE, "{{SessionName}}"),
        replace(SESSION, session_name=None),
        f"mapRoles[0] ({ROLE}): username '{{{{SessionName}}}}' renders to an empty username",
    ),
    (
        RoleRule(ROLE, "x" * 240 + "{{PrincipalID}}"),
        SESSION,
        f"mapRoles[0] ({ROLE}): username '{'x' * 240}{{{{PrincipalID}}}}' renders to 275"
        " characters; the limit is 253",
    ),
    (
        RoleRule(ROLE, "{{Nope}}"),
        SESSION,
        f"mapRoles[0] ({ROLE}): username '{{{{Nope}}}}': template variable {{{{Nope}}}} has no"
        " value",
    ),
]


@pytest.mark.parametrize(("rule", "identity", "reason"), REFUSALS)
def test_render_time_refusals_name_the_entry(
    rule: RoleRule, identity: Identity, reason: str
) -> None:
    got = resolve(mapping(map_roles=(rule,)), identity)
    assert got.user is None
    assert got.reason == reason
    assert got.rules == (MatchedRule("mapRoles", 0, ROLE),)


def test_a_refused_group_rule_refuses_the_user_instead_of_dropping_the_group() -> None:
    m = mapping(
        map_users=(UserRule(USER, "alice", ("devs",)),),
        map_groups=(GroupRule(ADMINS, ("system:masters",)),),
        map_accounts=(ACCT,),
    )
    got = resolve(m, ALICE, [ADMINS])
    assert got.user is None
    assert got.reason is not None and got.reason.startswith(f"mapGroups[0] ({ADMINS}): group")
    allowed = replace(
        m, map_groups=(GroupRule(ADMINS, ("system:masters",), allow_reserved_prefixes=True),)
    )
    got = resolve(allowed, ALICE, [ADMINS])
    assert got.user is not None and got.user.groups == ("devs", "system:masters")


def test_allow_reserved_prefixes_is_per_entry() -> None:
    m = mapping(
        map_roles=(
            RoleRule(
                ROLE,
                "system:admin:{{SessionName}}",
                ("system:masters",),
                allow_reserved_prefixes=True,
            ),
        )
    )
    got = resolve(m, SESSION)
    assert got.user is not None
    assert got.user.username == "system:admin:alice-example.com"
    assert got.user.groups == ("system:masters",)
