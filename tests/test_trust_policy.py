"""Role trust policy documents (authbridge.iam.trust): parsing, evaluation, web identity.

Covers: the AWS shapes accepted (DESIGN.md's IRSA example, GitHub Actions,
GitLab CI, AWS principals of every kind, a Deny); hostile and malformed
documents (wildcard principals, Service/NotPrincipal/Resource/NotAction,
actions a trust cannot grant, SAML and unregistered-looking providers, bad
condition keys and operators, oversized, deeply nested, duplicate keys, NaN)
each refused with MalformedPolicyDocument naming the field; a Hypothesis
property that arbitrary JSON gives only that error, and that a parsed
document round-trips; the old trust-list evaluation and the new one agree
on the old cases (table + Hypothesis); random documents evaluated as IAM's
rule written out plainly says (Hypothesis); aws:MultiFactorAuthPresent;
explicit Deny wins; the web identity table (kube service-account, GitHub and GitLab
tokens against StringEquals/StringLike/StringNotEquals, ForAnyValue:/
ForAllValues: on list claims, nested claims, another provider, a missing
claim) with the precise failing condition, never the whole token; the
claim context is bounded however many claims a token stuffs in; identity
policies still refuse provider-style condition keys (the trust grammar is
the only one that takes them); named attacks: a wildcard principal, a
wildcard or policy variable in a claim value, a claim posing as another
provider's condition key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError, MalformedPolicyDocument
from authbridge.iam import trust
from authbridge.iam.model import TrustEntry
from tests.oidc_issuer import (
    github_actions_claims,
    gitlab_ci_claims,
    kube_service_account_claims,
)

ACCOUNT = "111122223333"
KUBE = "kube.prod.example"
KUBE_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{KUBE}"
GITHUB = "token.actions.githubusercontent.com"
GITHUB_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB}"
GITLAB = "gitlab.example.com"
GITLAB_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITLAB}"
NOW = 1_800_000_000.0


def federated(arn: str, conditions: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        **extra,
    }
    if conditions is not None:
        statement["Condition"] = conditions
    return {"Version": "2012-10-17", "Statement": [statement]}


IRSA = federated(
    KUBE_ARN,
    {
        "StringEquals": {
            f"{KUBE}:aud": "authbridge",
            f"{KUBE}:sub": "system:serviceaccount:ci:deployer",
        }
    },
)


# -- parsing -------------------------------------------------------------------------------


def test_design_example_parses_and_round_trips() -> None:
    policy = trust.parse_trust_policy(json.dumps(IRSA))
    assert policy.federated_principals() == (KUBE_ARN,)
    assert policy.aws_principals() == ()
    assert policy.to_json() == IRSA
    assert trust.parse_trust_policy(policy.to_json()) == policy


def test_aws_principals_of_every_kind_and_a_deny() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "People",
                "Effect": "Allow",
                "Principal": {
                    "AWS": [
                        f"arn:aws:iam::{ACCOUNT}:user/alice",
                        f"arn:aws:iam::{ACCOUNT}:group/oncall",
                        f"arn:aws:iam::{ACCOUNT}:root",
                        ACCOUNT,
                    ]
                },
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/mallory"},
                "Action": "sts:*",
            },
        ],
    }
    policy = trust.parse_trust_policy(doc)
    assert len(policy.aws_principals()) == 5
    assert policy.to_json() == doc


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda s: s.update(Principal="*"), "Statement[0].Principal", "wildcard"),
        (lambda s: s.update(Principal={"AWS": "*"}), "Statement[0].Principal.AWS", "wildcard"),
        (
            lambda s: s.update(Principal={"AWS": ["arn:aws:iam::111122223333:root", "*"]}),
            "Statement[0].Principal.AWS[1]",
            "wildcard",
        ),
        (
            lambda s: s.update(Principal={"Service": "ec2.amazonaws.com"}),
            "Statement[0].Principal.Service",
            "do not exist",
        ),
        (
            lambda s: s.update(Principal={"CanonicalUser": "x"}),
            "Statement[0].Principal.CanonicalUser",
            "do not exist",
        ),
        (lambda s: s.update(Principal={"Bogus": "x"}), "Statement[0].Principal.Bogus", "unknown"),
        (lambda s: s.update(Principal={}), "Statement[0].Principal", "naming principals"),
        (lambda s: s.update(Principal={"AWS": []}), "Statement[0].Principal.AWS", "empty"),
        (lambda s: s.update(Principal={"AWS": 7}), "Statement[0].Principal.AWS", "string"),
        (
            lambda s: s.update(Principal={"AWS": "has space"}),
            "Statement[0].Principal.AWS",
            "not a principal ARN",
        ),
        (
            lambda s: s.update(Principal={"AWS": ["x"] * 101}),
            "Statement[0].Principal.AWS",
            "at most 100",
        ),
        (
            lambda s: s.update(
                Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/Okta"}
            ),
            "Statement[0].Principal.Federated",
            "SAML",
        ),
        (
            lambda s: s.update(Principal={"Federated": "accounts.google.com"}),
            "Statement[0].Principal.Federated",
            "not an oidc-provider ARN",
        ),
        (
            lambda s: s.update(
                Principal={"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/Kube.Example/"}
            ),
            "Statement[0].Principal.Federated",
            "lowercase host",
        ),
        (lambda s: s.pop("Principal"), "Statement[0]", "needs Principal"),
        (lambda s: s.update(NotPrincipal={"AWS": ACCOUNT}), "Statement[0].NotPrincipal", "Not"),
        (lambda s: s.update(Resource="*"), "Statement[0].Resource", "no resource"),
        (lambda s: s.update(NotResource="*"), "Statement[0].NotResource", "no resource"),
        (lambda s: s.update(NotAction="sts:AssumeRole"), "Statement[0].NotAction", "NotAction"),
        (lambda s: s.pop("Action"), "Statement[0]", "needs Action"),
        (lambda s: s.update(Action="iam:CreateUser"), "Statement[0].Action", "trust policy"),
        (lambda s: s.update(Action="sts:GetSessionToken"), "Statement[0].Action", "trust"),
        (lambda s: s.update(Action=["sts:AssumeRole", "s3:*"]), "Statement[0].Action[1]", "trust"),
        (lambda s: s.update(Action="not an action"), "Statement[0].Action", "not an action"),
        (lambda s: s.update(Effect="Maybe"), "Statement[0].Effect", "Allow or Deny"),
        (lambda s: s.update(Sid="has space"), "Statement[0].Sid", "letters and digits"),
        (lambda s: s.update(Extra=1), "Statement[0].Extra", "unknown element"),
        (
            lambda s: s.update(Condition={"StringEqualz": {f"{KUBE}:sub": "x"}}),
            "Statement[0].Condition.StringEqualz",
            "unknown condition operator",
        ),
        (
            lambda s: s.update(Condition={"StringEquals": {"no colon": "x"}}),
            "Condition.StringEquals.no colon",
            "not a condition key",
        ),
        (
            lambda s: s.update(Condition={"StringEquals": {f"{KUBE}:sub\n": "x"}}),
            "Condition.StringEquals",
            "not a condition key",
        ),
        (
            lambda s: s.update(Condition={"Bool": {"aws:MultiFactorAuthPresent": "maybe"}}),
            "Condition.Bool.aws:MultiFactorAuthPresent",
            "true or false",
        ),
        (
            lambda s: s.update(Condition={"StringEquals": {f"{KUBE}:sub": []}}),
            "Condition.StringEquals",
            "empty",
        ),
        (
            lambda s: s.update(Condition={"StringEquals": {f"{KUBE}:sub": {"a": 1}}}),
            "Condition.StringEquals",
            "string, number or boolean",
        ),
    ],
)
def test_malformed_statements_are_refused_naming_the_field(
    mutate: Any, field: str, message: str
) -> None:
    doc = json.loads(json.dumps(IRSA))
    mutate(doc["Statement"][0])
    with pytest.raises(MalformedPolicyDocument, match=message) as caught:
        trust.parse_trust_policy(doc)
    assert caught.value.field.startswith(field) or field in caught.value.field


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"Version": "2012-10-17", "Statement": []}', "non-empty"),
        ('{"Version": "2012-10-17"}', "Statement"),
        ('{"Statement": [{}]}', "Version"),
        ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": {}}', "appears twice"),
        ('{"Version": "2012-10-17", "Statement": [NaN]}', "not valid JSON"),
        ('{"Version": "2012-10-17", "Statement": [1]}', "must be an object"),
        ('{"Version": "2012-10-17", "Statement": {}, "Extra": 1}', "unknown element"),
        ("[" * 100_000 + "]" * 100_000, "far over"),
        ('{"Version": "2012-10-17", "Statement": ' + "[" * 5000 + "]" * 5000 + "}", "limit"),
        ("x" * 200_000, "far over"),
    ],
)
def test_malformed_documents_are_refused(document: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument, match=message):
        trust.parse_trust_policy(document)


def test_oversized_trust_policy_is_refused() -> None:
    many = {
        "StringEquals": {f"{KUBE}:sub": [f"system:serviceaccount:ci:sa{i}" for i in range(200)]}
    }
    with pytest.raises(MalformedPolicyDocument, match="role trust policy limit of 4096"):
        trust.parse_trust_policy(federated(KUBE_ARN, many))


def test_shorthand_document_is_one_allow_of_assume_role() -> None:
    arns = [f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice"]
    assert trust.shorthand_document(arns) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": arns[0]}, "Action": "sts:AssumeRole"}
        ],
    }
    with pytest.raises(InputError, match="at least one"):
        trust.shorthand_document([])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(
    [
        "Version",
        "Statement",
        "Effect",
        "Principal",
        "Action",
        "Condition",
        "AWS",
        "Federated",
        "Sid",
    ]
)
_shaped = st.fixed_dictionaries(
    {
        "Version": st.sampled_from(["2012-10-17", "2008-10-17", "x"]),
        "Statement": st.lists(
            st.dictionaries(_keys, _json | st.sampled_from([KUBE_ARN, "sts:AssumeRole", "Allow"])),
            max_size=3,
        ),
    }
)


@given(st.one_of(_json, _shaped, st.text(max_size=200)))
def test_arbitrary_input_gives_only_malformed_policy_document(document: Any) -> None:
    try:
        policy = trust.parse_trust_policy(
            document if isinstance(document, str | dict) else json.dumps(document)
        )
    except MalformedPolicyDocument:
        return
    assert trust.parse_trust_policy(policy.to_json()).to_json() == policy.to_json()


# -- AssumeRole: the old trust list and the new document agree -----------------------------


def old_trusts(
    entries: Sequence[TrustEntry], user_id: str, account: str, groups: Collection[str]
) -> bool:
    """authbridge.sts._trusts before trust documents, verbatim in meaning."""
    for entry in entries:
        if entry.kind == "user" and entry.principal_id == user_id:
            return True
        if entry.kind == "group" and entry.principal_id in groups:
            return True
        if entry.kind == "root" and entry.principal_id == account:
            return True
    return False


def new_trusts(
    policy: trust.TrustPolicy,
    user_id: str,
    account: str,
    groups: Collection[str],
    *,
    mfa: bool = False,
) -> trust.TrustDecision:
    return trust.evaluate(
        policy,
        trust.TrustRequest(
            trust.ASSUME_ROLE,
            principal_ids=frozenset({user_id, account, *groups}),
            context=trust.assume_role_context(
                user_arn=f"arn:aws:iam::{account}:user/u",
                user_name="u",
                user_id=user_id,
                account_id=account,
                mfa=mfa,
                now=NOW,
            ),
        ),
    )


ALICE, BOB = "AIDAALICEALICEALICEA", "AIDABOBBOBBOBBOBBOBB"
DEVS, OPS = "AGPADEVSDEVSDEVSDEVS", "AGPAOPSOPSOPSOPSOPSO"
OTHER = "999999999999"

OLD_CASES = [
    # (trust entries, user, account, groups, trusted)
    ([("user", ALICE)], ALICE, ACCOUNT, (), True),
    ([("user", ALICE)], BOB, ACCOUNT, (), False),
    ([("group", DEVS)], BOB, ACCOUNT, (DEVS,), True),
    ([("group", DEVS)], BOB, ACCOUNT, (OPS,), False),
    ([("root", ACCOUNT)], BOB, ACCOUNT, (), True),
    ([("root", ACCOUNT)], BOB, OTHER, (), False),
    ([("user", ALICE), ("group", OPS)], BOB, ACCOUNT, (DEVS, OPS), True),
    ([("user", ALICE), ("root", OTHER)], BOB, ACCOUNT, (DEVS,), False),
    ([("user", "AIDADELETEDDELETEDDE")], ALICE, ACCOUNT, (), False),  # a deleted principal
    ([], ALICE, ACCOUNT, (), False),
]


@pytest.mark.parametrize(("entries", "user", "account", "groups", "trusted"), OLD_CASES)
def test_old_and_new_trust_agree_on_the_old_cases(
    entries: list[tuple[str, str]], user: str, account: str, groups: tuple[str, ...], trusted: bool
) -> None:
    trust_entries = [TrustEntry(kind=k, principal_id=p, arn=p) for k, p in entries]  # type: ignore[arg-type]
    assert old_trusts(trust_entries, user, account, groups) is trusted
    legacy = trust.legacy_policy([p for _, p in entries])
    assert new_trusts(legacy, user, account, groups).allowed is trusted
    if entries:  # the --trust shorthand, stored with unique ids, means the same
        shorthand = trust.parse_trust_policy(trust.shorthand_document([p for _, p in entries]))
        assert new_trusts(shorthand, user, account, groups).allowed is trusted


_ids = st.sampled_from([ALICE, BOB, DEVS, OPS, ACCOUNT, OTHER, "AIDAGHOSTGHOSTGHOSTG"])


@given(
    entries=st.lists(st.tuples(st.sampled_from(["user", "group", "root"]), _ids), max_size=6),
    user=st.sampled_from([ALICE, BOB]),
    account=st.sampled_from([ACCOUNT, OTHER]),
    groups=st.frozensets(st.sampled_from([DEVS, OPS]), max_size=2),
    mfa=st.booleans(),
)
def test_old_and_new_trust_agree_on_any_trust_list(
    entries: list[tuple[str, str]], user: str, account: str, groups: frozenset[str], mfa: bool
) -> None:
    # Kinds are implied by the ids' shapes in the store; keep only the coherent entries.
    coherent = [
        (k, p)
        for k, p in entries
        if (k == "user" and p.startswith("AIDA"))
        or (k == "group" and p.startswith("AGPA"))
        or (k == "root" and p.isdigit())
    ]
    trust_entries = [TrustEntry(kind=k, principal_id=p, arn=p) for k, p in coherent]  # type: ignore[arg-type]
    expected = old_trusts(trust_entries, user, account, groups)
    legacy = trust.legacy_policy([p for _, p in coherent])
    assert new_trusts(legacy, user, account, groups, mfa=mfa).allowed is expected


def test_mfa_condition_reads_the_subject_tokens_mfa() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": {
            "Sid": "NeedsMfa",
            "Effect": "Allow",
            "Principal": {"AWS": ALICE},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
    }
    policy = trust.parse_trust_policy(doc)
    assert new_trusts(policy, ALICE, ACCOUNT, (), mfa=True).allowed
    refused = new_trusts(policy, ALICE, ACCOUNT, (), mfa=False)
    assert not refused.allowed
    assert refused.failed is not None and refused.failed.key == "aws:MultiFactorAuthPresent"
    assert (
        "Statement[0] (Sid NeedsMfa): condition Bool aws:MultiFactorAuthPresent" in refused.reason
    )
    assert "the request has 'false'" in refused.reason


def test_explicit_deny_wins_over_allow() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"},
            {
                "Sid": "NoBob",
                "Effect": "Deny",
                "Principal": {"AWS": BOB},
                "Action": "sts:AssumeRole",
            },
        ],
    }
    policy = trust.parse_trust_policy(doc)
    assert new_trusts(policy, ALICE, ACCOUNT, ()).allowed
    denied = new_trusts(policy, BOB, ACCOUNT, ())
    assert denied.outcome == "explicitDeny" and denied.statement == "Statement[1] (Sid NoBob)"


def test_web_identity_statement_never_lets_an_iam_user_in() -> None:
    policy = trust.parse_trust_policy(IRSA)
    decision = new_trusts(policy, ALICE, ACCOUNT, ())
    assert decision.outcome == "implicitDeny" and decision.statement is None


# -- web identity ----------------------------------------------------------------------------


def kube(**kw: Any) -> dict[str, Any]:
    return kube_service_account_claims(f"https://{KUBE}", now=int(NOW), **kw)


GITHUB_MAIN = federated(
    GITHUB_ARN,
    {
        "StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{GITHUB}:sub": "repo:octo-org/*:ref:refs/heads/main"},
    },
)
GITLAB_MAIN = federated(
    GITLAB_ARN,
    {
        "StringEquals": {
            f"{GITLAB}:sub": "project_path:my-group/my-project:ref_type:branch:ref:main",
            f"{GITLAB}:aud": "authbridge",
        }
    },
)
KUBE_NAMESPACE = federated(
    KUBE_ARN,
    {
        "StringEquals": {f"{KUBE}:kubernetes.io/namespace": "ci"},
        "StringNotEquals": {f"{KUBE}:kubernetes.io/serviceaccount/name": "default"},
        "ForAnyValue:StringEquals": {f"{KUBE}:aud": ["authbridge", "sts"]},
    },
)
GROUPS_ANY = federated(KUBE_ARN, {"ForAnyValue:StringEquals": {f"{KUBE}:groups": "admins"}})
GROUPS_ALL = federated(KUBE_ARN, {"ForAllValues:StringLike": {f"{KUBE}:groups": "team-*"}})

WEB_CASES = [
    # (document, provider ARN, claims, allowed, failing key or None)
    (IRSA, KUBE_ARN, kube(), True, None),
    (IRSA, KUBE_ARN, kube(name="other"), False, f"{KUBE}:sub"),
    (IRSA, KUBE_ARN, kube(audiences=("sts",)), False, f"{KUBE}:aud"),
    (IRSA, KUBE_ARN, kube(audiences=("sts", "authbridge")), True, None),
    (IRSA, GITHUB_ARN, kube(), False, None),  # another provider's token
    (GITHUB_MAIN, GITHUB_ARN, github_actions_claims(now=int(NOW)), True, None),
    (
        GITHUB_MAIN,
        GITHUB_ARN,
        github_actions_claims(ref="refs/heads/dev", now=int(NOW)),
        False,
        f"{GITHUB}:sub",
    ),
    (
        GITHUB_MAIN,
        GITHUB_ARN,
        github_actions_claims(repository="evil-org/octo-repo", now=int(NOW)),
        False,
        f"{GITHUB}:sub",
    ),
    (
        GITHUB_MAIN,
        GITHUB_ARN,
        github_actions_claims(event_name="pull_request", now=int(NOW)),
        False,
        f"{GITHUB}:sub",
    ),
    (
        GITHUB_MAIN,
        GITHUB_ARN,
        github_actions_claims(audience="https://github.com/octo-org", now=int(NOW)),
        False,
        f"{GITHUB}:aud",
    ),
    (GITLAB_MAIN, GITLAB_ARN, gitlab_ci_claims(now=int(NOW)), True, None),
    (
        GITLAB_MAIN,
        GITLAB_ARN,
        gitlab_ci_claims(ref="feature", now=int(NOW)),
        False,
        f"{GITLAB}:sub",
    ),
    (
        GITLAB_MAIN,
        GITLAB_ARN,
        gitlab_ci_claims(ref="main", ref_type="tag", now=int(NOW)),
        False,
        f"{GITLAB}:sub",
    ),
    (KUBE_NAMESPACE, KUBE_ARN, kube(), True, None),
    (KUBE_NAMESPACE, KUBE_ARN, kube(namespace="prod"), False, f"{KUBE}:kubernetes.io/namespace"),
    (
        KUBE_NAMESPACE,
        KUBE_ARN,
        kube(name="default"),
        False,
        f"{KUBE}:kubernetes.io/serviceaccount/name",
    ),
    (GROUPS_ANY, KUBE_ARN, {"sub": "x", "groups": ["devs", "admins"]}, True, None),
    (GROUPS_ANY, KUBE_ARN, {"sub": "x", "groups": ["devs"]}, False, f"{KUBE}:groups"),
    (GROUPS_ANY, KUBE_ARN, {"sub": "x"}, False, f"{KUBE}:groups"),
    (GROUPS_ALL, KUBE_ARN, {"sub": "x", "groups": ["team-a", "team-b"]}, True, None),
    (GROUPS_ALL, KUBE_ARN, {"sub": "x", "groups": ["team-a", "admins"]}, False, f"{KUBE}:groups"),
    # ForAllValues of an absent key is true (IAM's rule): a trust must not rely on it alone.
    (GROUPS_ALL, KUBE_ARN, {"sub": "x"}, True, None),
]


@pytest.mark.parametrize(("document", "provider", "claims", "allowed", "failing"), WEB_CASES)
def test_web_identity_trust_table(
    document: dict[str, Any],
    provider: str,
    claims: dict[str, Any],
    allowed: bool,
    failing: str | None,
) -> None:
    policy = trust.parse_trust_policy(document)
    decision = trust.evaluate_web_identity(policy, provider, claims, now=NOW)
    assert decision.allowed is allowed, decision.reason
    if failing is None:
        assert decision.failed is None
    else:
        assert decision.failed is not None and decision.failed.key == failing
        assert failing in decision.reason
    if not allowed and decision.failed is None:
        assert f"allows {provider} sts:AssumeRoleWithWebIdentity" in decision.reason


def test_refusal_names_the_condition_not_the_token() -> None:
    policy = trust.parse_trust_policy(IRSA)
    claims = kube(name="x" * 200)
    decision = trust.evaluate_web_identity(policy, KUBE_ARN, claims, now=NOW)
    assert decision.failed is not None
    assert decision.failed.got is not None and len(decision.failed.got) <= 62
    assert "x" * 100 not in decision.reason
    assert claims["jti"] not in decision.reason
    assert claims["kubernetes.io"]["serviceaccount"]["uid"] not in decision.reason
    assert decision.reason.startswith(f"Statement[0]: condition StringEquals {KUBE}:sub")


def test_missing_claim_is_named() -> None:
    policy = trust.parse_trust_policy(IRSA)
    decision = trust.evaluate_web_identity(policy, KUBE_ARN, {"aud": "authbridge"}, now=NOW)
    assert decision.failed is not None and decision.failed.got is None
    assert "has no value for it" in decision.reason


def test_claim_stuffing_is_bounded() -> None:
    claims = {f"c{i}": "v" for i in range(10_000)}
    claims["nested"] = {"a": {"b": {"c": {"d": {"e": {"f": "deep"}}}}}}
    context = trust.web_identity_context(KUBE, KUBE_ARN, claims, now=NOW)
    assert len(context) <= trust.MAX_CLAIM_KEYS + 4
    deep = trust.web_identity_context(KUBE, KUBE_ARN, {"n": claims["nested"]}, now=NOW)
    assert not any(k.endswith("/f") for k in deep)  # deeper than MAX_CLAIM_DEPTH: absent


def test_claim_values_become_context_values() -> None:
    context = trust.web_identity_context(
        KUBE,
        KUBE_ARN,
        {
            "Sub": "s",
            "email_verified": True,
            "n": 3,
            "f": 1.5,
            "groups": ["a", 1, True, None, {"x": 1}],
            "nothing": None,
        },
        now=NOW,
    )
    assert context[f"{KUBE}:sub"] == "s"
    assert context[f"{KUBE}:email_verified"] is True
    assert context[f"{KUBE}:n"] == 3
    assert context[f"{KUBE}:f"] == "1.5"
    assert context[f"{KUBE}:groups"] == ("a", "1", "true")
    assert f"{KUBE}:nothing" not in context
    assert context["aws:federatedprovider"] == KUBE_ARN


@given(claims=st.dictionaries(st.text(max_size=10), _json, max_size=8))
def test_any_claims_evaluate_without_error(claims: dict[str, Any]) -> None:
    for document in (IRSA, GROUPS_ANY, GROUPS_ALL, KUBE_NAMESPACE):
        decision = trust.evaluate_web_identity(
            trust.parse_trust_policy(document), KUBE_ARN, claims, now=NOW
        )
        assert decision.outcome in ("allowed", "implicitDeny")


# -- named attacks ---------------------------------------------------------------------------


def test_wildcard_principal_is_refused() -> None:
    for principal in ("*", {"AWS": "*"}, {"Federated": "*"}, {"AWS": ["*"]}):
        doc = json.loads(json.dumps(IRSA))
        doc["Statement"][0]["Principal"] = principal
        with pytest.raises(MalformedPolicyDocument, match="wildcard"):
            trust.parse_trust_policy(doc)


def test_wildcard_in_a_claim_value_is_literal() -> None:
    """A token whose sub is ``*`` matches only a policy value ``*``, never widens StringEquals."""
    policy = trust.parse_trust_policy(IRSA)
    for sub in ("*", "system:serviceaccount:ci:*", "${aws:username}"):
        decision = trust.evaluate_web_identity(
            policy, KUBE_ARN, {"aud": "authbridge", "sub": sub}, now=NOW
        )
        assert not decision.allowed


def test_claim_posing_as_another_providers_key_is_refused() -> None:
    """A claim named ``<B>:sub`` in A's token is A's claim, never B's condition key."""
    doc = federated(KUBE_ARN, {"StringEquals": {f"{GITHUB}:sub": "repo:octo-org/octo-repo:*"}})
    policy = trust.parse_trust_policy(doc)
    decision = trust.evaluate_web_identity(
        policy, KUBE_ARN, {f"{GITHUB}:sub": "repo:octo-org/octo-repo:x", "sub": "x"}, now=NOW
    )
    assert not decision.allowed and decision.failed is not None


def test_identity_policies_still_refuse_provider_keys() -> None:
    from authbridge.iam.policy import parse_policy

    with pytest.raises(MalformedPolicyDocument, match="not a condition key"):
        parse_policy(
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "iam:GetUser",
                    "Resource": "*",
                    "Condition": {"StringEquals": {f"{KUBE}:8443/x:sub": "a"}},
                },
            }
        )


def test_claims_colliding_in_case_are_refused() -> None:
    """``sub`` and ``SUB`` in one token: neither decides, so StringEquals on sub fails."""
    policy = trust.parse_trust_policy(IRSA)
    for claims in (
        {"aud": "authbridge", "sub": "system:serviceaccount:ci:deployer", "SUB": "x"},
        {"aud": "authbridge", "SUB": "x", "sub": "system:serviceaccount:ci:deployer"},
    ):
        decision = trust.evaluate_web_identity(policy, KUBE_ARN, claims, now=NOW)
        assert not decision.allowed and decision.failed is not None
        assert decision.failed.got is None
    nested = trust.web_identity_context(KUBE, KUBE_ARN, {"a/b": "1", "a": {"b": "2"}}, now=NOW)
    assert f"{KUBE}:a/b" not in nested


_statement = st.fixed_dictionaries(
    {
        "Effect": st.sampled_from(["Allow", "Deny"]),
        "Principal": st.fixed_dictionaries(
            {"AWS": st.lists(st.sampled_from([ALICE, BOB, DEVS, ACCOUNT]), min_size=1, max_size=3)}
        ),
        "Action": st.sampled_from(
            ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:*", "sts:Assume*"]
        ),
    },
    optional={
        "Condition": st.sampled_from(
            [
                {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
                {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
                {"StringEquals": {"aws:username": "u"}},
                {"StringNotEquals": {"aws:username": "u"}},
            ]
        )
    },
)


def _model(doc: dict[str, Any], ids: frozenset[str], mfa: bool) -> bool:
    """IAM's rule, written out plainly: any applying Deny refuses, else any applying Allow."""

    def holds(condition: dict[str, Any] | None) -> bool:
        if condition is None:
            return True
        ((operator, tests),) = condition.items()
        ((key, value),) = tests.items()
        if key == "aws:MultiFactorAuthPresent":
            return mfa == (value == "true")
        return ("u" == value) == (operator == "StringEquals")

    applying = [
        s
        for s in doc["Statement"]
        if ids.intersection(s["Principal"]["AWS"])
        and s["Action"] != "sts:AssumeRoleWithWebIdentity"
        and holds(s.get("Condition"))
    ]
    return not any(s["Effect"] == "Deny" for s in applying) and any(
        s["Effect"] == "Allow" for s in applying
    )


@given(
    statements=st.lists(_statement, min_size=1, max_size=4),
    user=st.sampled_from([ALICE, BOB]),
    groups=st.frozensets(st.sampled_from([DEVS, OPS]), max_size=2),
    mfa=st.booleans(),
)
def test_evaluation_agrees_with_iams_rule(
    statements: list[dict[str, Any]], user: str, groups: frozenset[str], mfa: bool
) -> None:
    doc = {"Version": "2012-10-17", "Statement": statements}
    policy = trust.parse_trust_policy(doc)
    decision = new_trusts(policy, user, ACCOUNT, groups, mfa=mfa)
    assert decision.allowed is _model(doc, frozenset({user, ACCOUNT, *groups}), mfa)
