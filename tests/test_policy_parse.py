"""Parsing IAM policy documents (authbridge.iam.policy.parse_policy): refusals and round trips.

Covers: every grammar rule refused with a MalformedPolicyDocument whose field
names the statement (index and Sid) and the element; hostile input (deep
nesting, duplicate keys, NaN, control characters, huge names) refused with
short, escaped messages; the per-kind size limits with whitespace not
counted; ``to_json`` round trips; and two Hypothesis properties: arbitrary
JSON-ish input raises nothing but MalformedPolicyDocument, and generated valid
documents survive parse -> to_json -> parse unchanged (and evaluate without error).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError, MalformedPolicyDocument
from authbridge.iam.policy import (
    MAX_CHARS,
    MAX_TEXT_CHARS,
    Condition,
    PolicyDocument,
    Request,
    SourcePolicy,
    Statement,
    evaluate,
    parse_policy,
)

V = "2012-10-17"


def one(statement: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    body = {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}
    if statement is not None:
        body = statement
    return {"Version": V, "Statement": [body], **top}


def st_(**fields: Any) -> dict[str, Any]:
    """A valid statement with ``fields`` replaced (a value of ``...`` drops the field)."""
    body: dict[str, Any] = {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def cond(block: Any) -> dict[str, Any]:
    return one(st_(Condition=block))


# One refusal per row, laid out by hand.
# fmt: off
MALFORMED: list[tuple[str, Any, str, str]] = [
    # (id, document, the exact field, a fragment of the message)
    ("not-json", "{", "PolicyDocument", "not valid JSON"),
    ("json-array", "[]", "PolicyDocument", "must be a JSON object"),
    ("not-a-document", 42, "PolicyDocument", "must be a JSON object or its text"),
    ("bytes", b"{}", "PolicyDocument", "must be a JSON object or its text"),
    ("duplicate-key", '{"Version": "2012-10-17", "Version": "2008-10-17"}', "PolicyDocument",
     "appears twice"),
    ("nan-literal", '{"Version": NaN}', "PolicyDocument", "not valid JSON"),
    ("unknown-top-element", one(Extra=1), "PolicyDocument.Extra", "unknown element"),
    ("missing-version", {"Statement": [st_()]}, "Version", "must be"),
    ("wrong-version", one(Version="2012-10-18"), "Version", "2012-10-18"),
    ("version-not-string", one(Version=2012), "Version", "int"),
    ("empty-id", one(Id=""), "Id", "non-empty"),
    ("missing-statement", {"Version": V}, "Statement", "non-empty list"),
    ("empty-statement-list", {"Version": V, "Statement": []}, "Statement", "non-empty list"),
    ("statement-string", {"Version": V, "Statement": "Allow"}, "Statement", "non-empty list"),
    ("statement-not-object", {"Version": V, "Statement": [st_(), "x"]}, "Statement[1]",
     "must be an object"),
    ("missing-effect", one(st_(Effect=...)), "Statement[0].Effect", "Allow or Deny"),
    ("lowercase-effect", one(st_(Effect="allow")), "Statement[0].Effect", "'allow'"),
    ("missing-action", one(st_(Action=...)), "Statement[0]", "needs Action or NotAction"),
    ("action-and-notaction", one(st_(NotAction="iam:*")), "Statement[0].NotAction",
     "cannot both"),
    ("missing-resource", one(st_(Resource=...)), "Statement[0]", "needs Resource or NotResource"),
    ("resource-and-notresource", one(st_(NotResource="*")), "Statement[0].NotResource",
     "cannot both"),
    ("empty-action-list", one(st_(Action=[])), "Statement[0].Action", "empty list"),
    ("action-number", one(st_(Action=5)), "Statement[0].Action", "string or a list"),
    ("action-item-number", one(st_(Action=["iam:GetUser", 5])), "Statement[0].Action[1]",
     "must be a string"),
    ("action-without-service", one(st_(Action="CreateUser")), "Statement[0].Action[0]",
     "not an action"),
    ("action-with-space", one(st_(Action="iam:Get User")), "Statement[0].Action[0]",
     "not an action"),
    ("action-with-variable", one(st_(Action="iam:${aws:username}")), "Statement[0].Action[0]",
     "not an action"),
    ("resource-not-arn", one(st_(Resource="alice")), "Statement[0].Resource[0]", "ARN format"),
    ("resource-short-arn", one(st_(Resource="arn:aws:iam")), "Statement[0].Resource[0]",
     "ARN format"),
    ("resource-empty-list", one(st_(Resource=[])), "Statement[0].Resource", "empty list"),
    ("resource-object", one(st_(Resource={"arn": "*"})), "Statement[0].Resource",
     "string or a list"),
    ("notresource-item", one(st_(Resource=..., NotResource=["*", None])),
     "Statement[0].NotResource[1]", "must be a string"),
    ("unterminated-variable", one(st_(Resource="arn:aws:iam::*:user/${aws:username")),
     "Statement[0].Resource[0]", "not a policy variable"),
    ("empty-variable", one(st_(Resource="arn:aws:iam::*:user/${}")),
     "Statement[0].Resource[0]", "not a policy variable"),
    ("variable-bad-default", one(st_(Resource="arn:aws:iam::*:user/${aws:username, x}")),
     "Statement[0].Resource[0]", "not a policy variable"),
    ("sid-not-alphanumeric", one(st_(Sid="read-only")), "Statement[0].Sid", "letters and digits"),
    ("sid-empty", one(st_(Sid="")), "Statement[0].Sid", "letters and digits"),
    ("sid-number", one(st_(Sid=7)), "Statement[0].Sid", "int"),
    ("sid-duplicate", {"Version": V, "Statement": [st_(Sid="A"), st_(Sid="A")]},
     "Statement[1] (Sid A).Sid", "already used"),
    ("principal", one(st_(Sid="X", Principal={"AWS": "*"})), "Statement[0] (Sid X).Principal",
     "cannot name a principal"),
    ("not-principal", one(st_(NotPrincipal="*")), "Statement[0].NotPrincipal",
     "cannot name a principal"),
    ("unknown-statement-element", one(st_(Actions="iam:*")), "Statement[0].Actions",
     "unknown element"),
    ("condition-not-object", cond(["Bool"]), "Statement[0].Condition", "object of condition"),
    ("condition-empty", cond({}), "Statement[0].Condition", "object of condition"),
    ("operator-lowercase", cond({"stringequals": {"aws:username": "a"}}),
     "Statement[0].Condition.stringequals", "unknown condition operator"),
    ("null-if-exists", cond({"NullIfExists": {"aws:username": "true"}}),
     "Statement[0].Condition.NullIfExists", "unknown condition operator"),
    ("qualified-null", cond({"ForAnyValue:Null": {"aws:username": "true"}}),
     "Statement[0].Condition.ForAnyValue:Null", "unknown condition operator"),
    ("bare-if-exists", cond({"IfExists": {"aws:username": "a"}}),
     "Statement[0].Condition.IfExists", "unknown condition operator"),
    ("operator-block-string", cond({"StringEquals": "alice"}),
     "Statement[0].Condition.StringEquals", "object of condition keys"),
    ("operator-block-empty", cond({"StringEquals": {}}), "Statement[0].Condition.StringEquals",
     "object of condition keys"),
    ("key-without-prefix", cond({"StringEquals": {"username": "a"}}),
     "Statement[0].Condition.StringEquals.username", "not a condition key"),
    ("values-empty-list", cond({"StringEquals": {"aws:username": []}}),
     "Statement[0].Condition.StringEquals.aws:username", "empty list"),
    ("value-object", cond({"StringEquals": {"aws:username": {"a": 1}}}),
     "Statement[0].Condition.StringEquals.aws:username", "string, number or boolean"),
    ("value-null", cond({"StringEquals": {"aws:username": None}}),
     "Statement[0].Condition.StringEquals.aws:username", "string, number or boolean"),
    ("value-nested-list", cond({"StringEquals": {"aws:username": [["alice"]]}}),
     "Statement[0].Condition.StringEquals.aws:username", "string, number or boolean"),
    ("ip-bad-octet", cond({"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}}),
     "Statement[0].Condition.IpAddress.aws:SourceIp", "not an IPv4 or IPv6"),
    ("ip-hostname", cond({"NotIpAddress": {"aws:SourceIp": "example.com"}}),
     "Statement[0].Condition.NotIpAddress.aws:SourceIp", "not an IPv4 or IPv6"),
    ("numeric-word", cond({"NumericLessThan": {"aws:MultiFactorAuthAge": "ten"}}),
     "Statement[0].Condition.NumericLessThan.aws:MultiFactorAuthAge", "not a number"),
    ("numeric-variable", cond({"NumericEquals": {"aws:MultiFactorAuthAge": "${aws:x}"}}),
     "Statement[0].Condition.NumericEquals.aws:MultiFactorAuthAge", "not a number"),
    ("date-word", cond({"DateGreaterThan": {"aws:CurrentTime": "tomorrow"}}),
     "Statement[0].Condition.DateGreaterThan.aws:CurrentTime", "ISO 8601"),
    ("bool-yes", cond({"Bool": {"aws:MultiFactorAuthPresent": "yes"}}),
     "Statement[0].Condition.Bool.aws:MultiFactorAuthPresent", "true or false"),
    ("null-maybe", cond({"Null": {"aws:TokenIssueTime": "maybe"}}),
     "Statement[0].Condition.Null.aws:TokenIssueTime", "true (the key is absent)"),
    ("arn-like-not-arn", cond({"ArnLike": {"aws:PrincipalArn": "user/alice"}}),
     "Statement[0].Condition.ArnLike.aws:PrincipalArn", "not an ARN pattern"),
    ("condition-variable-unterminated", cond({"StringEquals": {"aws:username": "${aws:x"}}),
     "Statement[0].Condition.StringEquals.aws:username", "not a policy variable"),
]
# fmt: on


@pytest.mark.parametrize(
    ("document", "field", "fragment"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed(document: Any, field: str, fragment: str) -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(document)
    assert caught.value.field == field
    assert fragment in caught.value.reason
    assert caught.value.code == "MalformedPolicyDocument"
    assert isinstance(caught.value, InputError)


def test_error_names_statement_index_and_sid() -> None:
    """The message format the admin API shows, from the task's own example."""
    document = {
        "Version": V,
        "Statement": [
            st_(),
            st_(Sid="Second"),
            st_(Sid="ReadOnly", Condition={"StringLikeX": {"aws:username": "a*"}}),
        ],
    }
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(json.dumps(document))
    assert str(caught.value).startswith(
        "Statement[2] (Sid ReadOnly).Condition.StringLikeX: unknown condition operator"
    )
    assert caught.value.hint and "StringEquals" in caught.value.hint


def test_statement_object_is_statement_zero() -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy({"Version": V, "Statement": st_(Effect="Maybe")})
    assert caught.value.field == "Statement[0].Effect"


# -- hostile and oversized input


def _sized(chars: int) -> dict[str, Any]:
    """A valid document of exactly ``chars`` characters (compact JSON, no whitespace)."""
    base = one(st_(Resource="arn:aws:iam::1:user/"))
    padding = chars - len(json.dumps(base, separators=(",", ":")))
    return one(st_(Resource="arn:aws:iam::1:user/" + "a" * padding))


@pytest.mark.parametrize("kind", sorted(MAX_CHARS))
def test_size_limit_per_kind(kind: Any) -> None:
    limit = MAX_CHARS[kind]
    assert parse_policy(_sized(limit), kind=kind).statements
    assert parse_policy(json.dumps(_sized(limit), separators=(",", ":")), kind=kind)
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(_sized(limit + 1), kind=kind)
    assert caught.value.field == "PolicyDocument"
    assert f"{limit + 1} characters" in caught.value.reason
    assert f"{kind} policy limit of {limit}" in caught.value.reason


def test_whitespace_is_not_counted() -> None:
    text = json.dumps(_sized(MAX_CHARS["user"]), indent=8)
    assert len(text) > MAX_CHARS["user"]
    assert parse_policy(text, kind="user").statements[0].resources


def test_oversized_text_refused_before_reading() -> None:
    text = " " * (MAX_TEXT_CHARS + 1)
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(text)
    assert "far over any policy limit" in caught.value.reason


def test_deeply_nested_text() -> None:
    depth = 3000  # within the managed limit, deeper than the JSON parser recurses
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy("[" * depth + "]" * depth)
    assert caught.value.field == "PolicyDocument"


def test_deeply_nested_object() -> None:
    value: Any = "alice"
    for _ in range(5000):
        value = [value]
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(cond({"StringEquals": {"aws:username": value}}))
    assert caught.value.field == "PolicyDocument"


@pytest.mark.parametrize(
    "value", [{1, 2}, float("nan"), float("inf"), object()], ids=["set", "nan", "inf", "object"]
)
def test_non_json_values_in_a_mapping(value: Any) -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(cond({"NumericEquals": {"aws:MultiFactorAuthAge": value}}))
    assert caught.value.field == "PolicyDocument"


def test_hostile_names_are_escaped_and_short() -> None:
    name = "Evil\n\x1b[31m" + "x" * 5000
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(one(st_(**{name: 1})))
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert "\\n" in message
    assert len(message) < 300


def test_hostile_sid_is_not_echoed_in_the_label() -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(one(st_(Sid="A\nB")))
    assert caught.value.field == "Statement[0].Sid"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown policy kind"):
        parse_policy(one(), kind="inline")  # type: ignore[arg-type]


# -- accepted forms and round trips

FULL: dict[str, Any] = {
    "Version": V,
    "Id": "Example",
    "Statement": [
        {
            "Sid": "OwnKeys",
            "Effect": "Allow",
            "Action": ["iam:CreateAccessKey", "iam:List*"],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
            "Condition": {
                "Bool": {"aws:MultiFactorAuthPresent": True},
                "NumericLessThan": {"aws:MultiFactorAuthAge": 3600},
                "StringLike": {"aws:PrincipalTag/team": ["dev*", "${aws:username}-*"]},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]},
                "IpAddressIfExists": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]},
                "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                "Null": {"aws:TokenIssueTime": "true"},
                "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"},
            },
        },
        {"Effect": "Deny", "NotAction": "iam:Get*", "NotResource": ["arn:aws:iam::1:user/a"]},
    ],
}


def test_full_document_parses() -> None:
    parsed = parse_policy(FULL)
    first, second = parsed.statements
    assert parsed.id == "Example"
    assert first.sid == "OwnKeys" and first.effect == "Allow"
    assert first.actions == ("iam:CreateAccessKey", "iam:List*") and first.not_actions is None
    assert [c.operator for c in first.conditions][:2] == ["Bool", "NumericLessThan"]
    assert first.conditions[0].values == ("true",)  # JSON booleans and numbers become text
    assert first.conditions[1].values == ("3600",)
    assert second.index == 1 and second.not_resources == ("arn:aws:iam::1:user/a",)
    assert second.resources is None and second.conditions == ()


def test_to_json_round_trips() -> None:
    parsed = parse_policy(FULL)
    assert parse_policy(parsed.to_json()) == parsed
    assert parse_policy(json.dumps(parsed.to_json())) == parsed
    assert parsed.to_json()["Statement"][1] == {
        "Effect": "Deny",
        "NotAction": "iam:Get*",
        "NotResource": "arn:aws:iam::1:user/a",
    }


def test_single_statement_object_and_old_version() -> None:
    parsed = parse_policy({"Version": "2008-10-17", "Statement": st_()})
    assert parsed.version == "2008-10-17" and len(parsed.statements) == 1
    assert parse_policy(parsed.to_json()) == parsed


def test_values_built_directly_are_checked() -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        Statement(0, "A", "Allow", ("iam:*",), None, ("nope",), None)
    assert caught.value.field == "Statement[0] (Sid A).Resource[0]"
    with pytest.raises(MalformedPolicyDocument):
        Condition("Bool", "aws:MultiFactorAuthPresent", ("yes",))
    built = PolicyDocument(V, (Statement(0, None, "Allow", ("*",), None, ("*",), None),))
    assert parse_policy(built.to_json()) == built


# -- properties

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
OPERATOR_NAMES = [
    "StringEquals",
    "StringNotLike",
    "StringEqualsIgnoreCaseIfExists",
    "NumericLessThan",
    "DateGreaterThanEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "ArnLike",
    "Null",
    "ForAnyValue:StringLike",
    "ForAllValues:NumericEquals",
    "NullIfExists",
    "Bogus",
]
KEYS = ["aws:username", "aws:SourceIp", "aws:CurrentTime", "aws:PrincipalTag/team", "bad key"]
near_values = json_values | st.sampled_from(
    [
        "10.0.0.0/8",
        "2001:db8::1",
        "2026-01-01",
        "42",
        "true",
        "arn:aws:iam::*:*",
        "${aws:username}",
        "${",
        "${aws:x, 'd'}",
        "*",
        "a?",
    ]
)
near_conditions = st.dictionaries(
    st.sampled_from(OPERATOR_NAMES) | st.text(max_size=8),
    st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=8),
        near_values | st.lists(near_values, max_size=3),
        max_size=3,
    )
    | json_values,
    max_size=3,
)
near_statements = st.fixed_dictionaries(
    {},
    optional={
        "Sid": st.sampled_from(["A", "B", "a-b", ""]) | json_values,
        "Effect": st.sampled_from(["Allow", "Deny", "allow"]) | json_values,
        "Action": st.sampled_from(["*", "iam:*", "iam:Get?ser", "bad"]) | json_values,
        "NotAction": st.sampled_from(["iam:List*"]) | json_values,
        "Resource": st.sampled_from(["*", "arn:aws:iam::*:user/${aws:username}", "x"])
        | json_values,
        "NotResource": json_values,
        "Condition": near_conditions,
        "Principal": json_values,
    },
)
near_documents = st.fixed_dictionaries(
    {},
    optional={
        "Version": st.sampled_from([V, "2008-10-17", "2012"]) | json_values,
        "Id": json_values,
        "Statement": near_statements | st.lists(near_statements, max_size=3) | json_values,
    },
)


def _only_documented_errors(document: Any, kind: Any = "managed") -> None:
    try:
        parsed = parse_policy(document, kind=kind)
    except MalformedPolicyDocument as err:
        assert err.field and err.reason
        return
    assert isinstance(parsed, PolicyDocument)
    assert parse_policy(parsed.to_json(), kind="role") == parsed


@given(json_values, st.sampled_from(sorted(MAX_CHARS)))
def test_property_arbitrary_json_raises_only_malformed(value: Any, kind: Any) -> None:
    _only_documented_errors(value, kind)
    try:
        text = json.dumps(value)
    except ValueError:
        return
    _only_documented_errors(text, kind)


@given(near_documents)
def test_property_near_valid_documents_raise_only_malformed(document: Any) -> None:
    _only_documented_errors(document)
    _only_documented_errors(json.dumps(document, allow_nan=True))


@given(st.text(max_size=200))
def test_property_arbitrary_text_raises_only_malformed(text: str) -> None:
    _only_documented_errors(text)


# Valid documents, generated from the grammar.
actions = st.lists(
    st.sampled_from(
        [
            "*",
            "iam:*",
            "iam:Get*",
            "iam:CreateUser",
            "eks:*AccessEntr*",
            "iam:?etUser",
            "authbridge:Export*",
        ]
    ),
    min_size=1,
    max_size=3,
)
resources = st.lists(
    st.sampled_from(
        [
            "*",
            "arn:aws:iam::*:user/*",
            "arn:aws:iam::111122223333:user/${aws:username}",
            "arn:*:iam::*:mfa/${aws:PrincipalTag/team, 'it''s'}",
            "arn:aws:eks:*:*:*",
            "arn:aws:iam::1:user/${*}${?}${$}",
        ]
    ),
    min_size=1,
    max_size=3,
)
VALID_TESTS = {
    "StringEquals": ["alice", "${aws:username}", "${aws:x, 'dflt'}"],
    "StringNotEqualsIfExists": ["bob", "x*"],
    "ForAnyValue:StringLike": ["a*", "?b", "${aws:username}-*"],
    "ForAllValues:StringEqualsIgnoreCase": ["Team", "env"],
    "NumericGreaterThanEquals": ["0", "3.5", "-7"],
    "DateLessThanIfExists": ["2026-01-01", "2026-01-01T12:00:00Z", "1767225600"],
    "Bool": ["true", "FALSE"],
    "IpAddress": ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"],
    "ArnNotLike": ["arn:aws:iam::*:role/*", "*"],
    "Null": ["true", "false"],
}
conditions = st.dictionaries(
    st.sampled_from(sorted(VALID_TESTS)),
    st.dictionaries(st.sampled_from(KEYS[:4]), st.just(None), min_size=1, max_size=2),
    max_size=3,
).flatmap(
    lambda block: st.fixed_dictionaries(
        {
            operator: st.fixed_dictionaries(
                {
                    key: st.lists(st.sampled_from(VALID_TESTS[operator]), min_size=1, max_size=3)
                    | st.sampled_from(VALID_TESTS[operator])
                    for key in keys
                }
            )
            for operator, keys in block.items()
        }
    )
)


@st.composite
def valid_statements(draw: st.DrawFn, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    if draw(st.booleans()):
        out["Sid"] = f"S{index}"
    out["NotAction" if draw(st.booleans()) else "Action"] = draw(actions)
    out["NotResource" if draw(st.booleans()) else "Resource"] = draw(resources)
    block = draw(conditions)
    if block:
        out["Condition"] = block
    return out


valid_documents = st.integers(min_value=1, max_value=4).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "Version": st.sampled_from([V, "2008-10-17"]),
            "Statement": st.tuples(*(valid_statements(i) for i in range(n))).map(list),
        }
    )
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "aws:username": st.sampled_from(["alice", "bob", "*"]),
        "aws:SourceIp": st.sampled_from(["192.0.2.9", "2001:db8::5", "junk"]),
        "aws:CurrentTime": st.sampled_from(["2025-06-01T00:00:00Z", "soon"]),
        "aws:PrincipalTag/team": st.sampled_from(["team", ("a", "b"), (), True, 5]),
    },
)


@given(valid_documents, contexts, st.sampled_from(["iam:GetUser", "eks:CreateAccessEntry"]))
def test_property_valid_documents_round_trip_and_evaluate(
    document: dict[str, Any], context: dict[str, Any], action: str
) -> None:
    parsed = parse_policy(document)
    assert parse_policy(parsed.to_json()) == parsed
    assert parse_policy(json.dumps(parsed.to_json(), indent=2)) == parsed
    decision = evaluate(
        [SourcePolicy("p", "managed", parsed)],
        Request(action, "arn:aws:iam::111122223333:user/alice", context),
    )
    assert (decision.decision == "implicitDeny") == (not decision.statements)
    effects = {parsed.statements[m.statement_index].effect for m in decision.statements}
    assert effects <= ({"Deny"} if decision.decision == "explicitDeny" else {"Allow"})


# -- named security regressions


def test_attack_duplicate_effect_is_refused_not_last_wins() -> None:
    """``{"Effect": "Deny", "Effect": "Allow"}`` reads as a Deny to a reviewer, Allow to json."""
    text = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Effect": "Allow",'
        ' "Action": "*", "Resource": "*"}]}'
    )
    with pytest.raises(MalformedPolicyDocument, match="'Effect' appears twice"):
        parse_policy(text)


def test_attack_resource_policy_principal_is_refused() -> None:
    """A pasted resource policy must not parse as if its Principal limited who it grants to."""
    document = one(st_(Principal={"AWS": "arn:aws:iam::111122223333:user/alice"}))
    with pytest.raises(MalformedPolicyDocument, match="cannot name a principal"):
        parse_policy(document)


def test_attack_oversized_inline_user_policy() -> None:
    """The user kind is capped at 2,048 characters even when the managed cap would allow it."""
    document = _sized(MAX_CHARS["user"] + 1)
    assert parse_policy(document, kind="managed")
    with pytest.raises(MalformedPolicyDocument, match="user policy limit"):
        parse_policy(document, kind="user")
