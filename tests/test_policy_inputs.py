"""The pure inputs of the policy CLI: AWS CLI shorthand, ``--context-entries``, ``--tags``.

Covers the shorthand grammar (pairs, list values bare and bracketed, quotes,
escapes) with examples and a round-trip property; hostile input (oversized,
NUL, unclosed quotes and brackets, deeply nested JSON, arbitrary text) giving
only ``InputError``; context entries checked against their types, refused
when they would override what the store fills, and turned into the request
context; tag arguments in shorthand and JSON held to IAM's tag rules; policy
ARNs and version ids; and the ``EvaluationResults`` shape of a decision.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError
from authbridge.iam import managed, shorthand, simulate
from authbridge.iam.policy import Decision, MatchedStatement
from authbridge.iam.simulate import ContextEntry

FIELDS = ("ContextKeyName", "ContextKeyValues", "ContextKeyType")


def quote(value: str) -> str:
    """A value written so that the shorthand takes it literally."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(entry: ContextEntry, *, bracket: bool) -> str:
    values = ",".join(quote(v) for v in entry.values)
    if bracket:
        values = f"[{values}]"
    return (
        f"ContextKeyName={quote(entry.name)},ContextKeyValues={values},ContextKeyType={entry.type}"
    )


# -- the shorthand ------------------------------------------------------------------------


def test_shorthand_examples() -> None:
    parse = simulate.parse_shorthand
    assert parse("ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip") == (
        ContextEntry("aws:SourceIp", ("10.0.0.1",), "ip")
    )
    # Several bare values, the type anywhere, default type string.
    assert parse("ContextKeyType=stringList,ContextKeyName=k:eys,ContextKeyValues=a,b,c") == (
        ContextEntry("k:eys", ("a", "b", "c"), "stringList")
    )
    assert parse("ContextKeyName=aws:Referer,ContextKeyValues=x=y") == (
        ContextEntry("aws:Referer", ("x=y",))
    )
    # Brackets, quotes (a comma, a bracket, the other quote) and escapes.
    assert parse(
        "ContextKeyName=my:key,ContextKeyValues=[a,\"b,c\",'[d]'],ContextKeyType=stringList"
    ) == ContextEntry("my:key", ("a", "b,c", "[d]"), "stringList")
    assert parse(r"ContextKeyName=my:key,ContextKeyValues=a\,b") == (
        ContextEntry("my:key", ("a,b",))
    )
    assert parse('ContextKeyName=my:key,ContextKeyValues="it\'s"') == (
        ContextEntry("my:key", ("it's",))
    )
    assert parse("ContextKeyName=my:key,ContextKeyValues=") == ContextEntry("my:key", ("",))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("ContextKeyValues=a", "needs ContextKeyName"),
        ("ContextKeyName=aws:SourceIp", "needs ContextKeyValues"),
        ("ContextKeyName=a:bcd,ContextKeyName=a:bcd,ContextKeyValues=x", "twice"),
        ("ContextKeyName=a:bcd,Values=x", "not one of its fields"),
        ("Name=a:bcd", "not one of its fields"),
        ("ContextKeyName=a:bcd,x,ContextKeyValues=y", "not Field=value"),
        ("ContextKeyName=a:bcd,ContextKeyValues=[x],y", "not Field=value"),
        ('ContextKeyName="a:bcd,ContextKeyValues=x', "unclosed"),
        ("ContextKeyName=a:bcd,ContextKeyValues=[x", "never closed"),
        ("ContextKeyName=a:bcd,ContextKeyValues=x]", "no ["),
        ("ContextKeyName=a:bcd,ContextKeyValues=[[x]]", "nested"),
        ("ContextKeyName=a:bcd,ContextKeyValues=x\\", "lone"),
        ("ContextKeyName=a:bcd,ContextKeyValues=x\0", "NUL"),
        ("ContextKeyName=a:bcd,ContextKeyValues=[]", "at least one value"),
        ("ContextKeyName=a:bcd,ContextKeyValues=x,y", "use ContextKeyType=stringList"),
        ("ContextKeyName=a:bcd,ContextKeyValues=x,ContextKeyType=Ip", "not one of"),
        ("ContextKeyName=abc,ContextKeyValues=x", "5 to 256"),
        ("ContextKeyName=a b:cd,ContextKeyValues=x", "printable"),
        ("ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.300,ContextKeyType=ip", "IP"),
        ("ContextKeyName=my:num,ContextKeyValues=1e5,ContextKeyType=numeric", "number"),
        ("ContextKeyName=my:flag,ContextKeyValues=yes,ContextKeyType=boolean", "true or false"),
        ("ContextKeyName=my:date,ContextKeyValues=tomorrow,ContextKeyType=date", "ISO 8601"),
        ("ContextKeyName=my:blob,ContextKeyValues=@@,ContextKeyType=binary", "base64"),
        ("ContextKeyName=my:key,ContextKeyValues=" + "x" * 70_000, "at most"),
    ],
)
def test_shorthand_refusals_say_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(InputError) as e:
        simulate.parse_shorthand(text)
    assert says in str(e.value), str(e.value)
    assert e.value.field == simulate.FIELD


_names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=5, max_size=40
)
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30
)


@given(
    name=_names,
    values=st.lists(_values, min_size=1, max_size=5),
    bracket=st.booleans(),
)
def test_shorthand_round_trips(name: str, values: list[str], bracket: bool) -> None:
    entry = ContextEntry(name, tuple(values), "stringList")
    assert simulate.parse_shorthand(render(entry, bracket=bracket)) == entry


@given(
    ips=st.lists(st.ip_addresses().map(str), min_size=1, max_size=3),
    numbers=st.lists(st.integers(-(10**9), 10**9).map(str), min_size=1, max_size=3),
    flag=st.booleans(),
)
def test_typed_entries_round_trip(ips: list[str], numbers: list[str], flag: bool) -> None:
    entries = [
        ContextEntry("aws:SourceIp", tuple(ips), "ipList"),
        ContextEntry("my:count", tuple(numbers), "numericList"),
        ContextEntry("aws:MultiFactorAuthPresent", ("true" if flag else "false",), "boolean"),
    ]
    texts = [render(e, bracket=False) for e in entries]
    assert simulate.parse_context_entries(texts) == entries


@given(st.text(max_size=200))
def test_arbitrary_shorthand_gives_only_input_errors(text: str) -> None:
    try:
        entries = simulate.parse_context_entries([text])
    except InputError:
        return
    for entry in entries:
        assert simulate.check_entry(entry) == entry


@given(
    st.text(
        alphabet=st.sampled_from(list("ContextKeyNameValuesType=,[]\"'\\ a:bcdefgh10.")),
        max_size=120,
    )
)
def test_syntax_heavy_shorthand_gives_only_input_errors(text: str) -> None:
    try:
        shorthand.parse_struct(text, FIELDS, list_field="ContextKeyValues", where="x", example="e")
    except InputError:
        pass


# -- context entries as a whole -------------------------------------------------------------


def test_entries_as_json_and_duplicates() -> None:
    texts = [
        '{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.0.0.1"],'
        ' "ContextKeyType": "ip"}',
        '[{"ContextKeyName": "my:keys", "ContextKeyValues": ["a", "b"],'
        ' "ContextKeyType": "stringList"}]',
    ]
    assert simulate.parse_context_entries(texts) == [
        ContextEntry("aws:SourceIp", ("10.0.0.1",), "ip"),
        ContextEntry("my:keys", ("a", "b"), "stringList"),
    ]
    with pytest.raises(InputError, match="given twice"):
        simulate.parse_context_entries(
            [texts[0], "ContextKeyName=AWS:SOURCEIP,ContextKeyValues=10.0.0.2,ContextKeyType=ip"]
        )
    for bad in (
        "[" * 5000,
        '{"ContextKeyName": "aws:SourceIp"}',
        '{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": "10.0.0.1"}',
        '{"ContextKeyName": 5, "ContextKeyValues": ["x"]}',
        '{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["x"], "Extra": 1}',
        "[1]",
        "{not json",
    ):
        with pytest.raises(InputError):
            simulate.parse_context_entries([bad])
    with pytest.raises(InputError, match="at most 100"):
        simulate.parse_context_entries(
            [f"ContextKeyName=my:key{n},ContextKeyValues=x" for n in range(101)]
        )


@pytest.mark.parametrize(
    "key", ["aws:username", "aws:userid", "AWS:PrincipalArn", "aws:PrincipalTag/team"]
)
def test_entries_cannot_override_what_the_store_fills(key: str) -> None:
    """Attack: a simulation that claims another principal's name, id, ARN or tags."""
    with pytest.raises(InputError, match="filled from the store"):
        simulate.parse_context_entries([f"ContextKeyName={key},ContextKeyValues=admin"])


def test_simulation_context() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    entries = simulate.parse_context_entries(
        [
            "ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip",
            "ContextKeyName=aws:MultiFactorAuthPresent,ContextKeyValues=true,"
            "ContextKeyType=boolean",
            "ContextKeyName=my:keys,ContextKeyValues=a,b,ContextKeyType=stringList",
        ]
    )
    context = simulate.simulation_context(
        principal_arn="arn:aws:iam::111122223333:user/alice",
        user_id="AIDAEXAMPLE",
        user_name="alice",
        tags={"team": "platform"},
        now=now,
        entries=entries,
    )
    assert context == {
        "aws:userid": "AIDAEXAMPLE",
        "aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice",
        "aws:CurrentTime": now,
        "aws:username": "alice",
        "aws:PrincipalTag/team": "platform",
        "aws:SourceIp": "10.0.0.1",
        "aws:MultiFactorAuthPresent": True,
        "my:keys": ("a", "b"),
    }
    # A role has no username; an entry may move the clock.
    later = simulate.parse_context_entries(
        ["ContextKeyName=aws:currenttime,ContextKeyValues=2030-01-01T00:00:00Z,ContextKeyType=date"]
    )
    role = simulate.simulation_context(
        principal_arn="arn:aws:iam::111122223333:role/R",
        user_id="AROAEXAMPLE:s",
        user_name=None,
        tags={},
        now=now,
        entries=later,
    )
    assert "aws:username" not in role and "aws:CurrentTime" not in role
    assert role["aws:currenttime"] == "2030-01-01T00:00:00Z"


def test_evaluation_result_shape() -> None:
    decision = Decision(
        "explicitDeny",
        (
            MatchedStatement("user/alice/NoDelete", "user", 0, None),
            MatchedStatement("arn:aws:iam::111122223333:policy/P", "managed", 2, "Deny"),
        ),
        ("aws:SourceIp",),
    )
    assert simulate.evaluation_result("iam:DeleteUser", "*", decision) == {
        "EvalActionName": "iam:DeleteUser",
        "EvalResourceName": "*",
        "EvalDecision": "explicitDeny",
        "MatchedStatements": [
            {
                "SourcePolicyId": "user/alice/NoDelete",
                "SourcePolicyType": "user",
                "StatementIndex": 0,
            },
            {
                "SourcePolicyId": "arn:aws:iam::111122223333:policy/P",
                "SourcePolicyType": "user-managed",
                "StatementIndex": 2,
                "Sid": "Deny",
            },
        ],
        "MissingContextValues": ["aws:SourceIp"],
    }


@pytest.mark.parametrize("action", ["iam", "iam:*", "iam:Get*", ":x", "iam:Get User", "a" * 300])
def test_action_names_are_one_request_each(action: str) -> None:
    with pytest.raises(InputError) as e:
        simulate.action_name(action)
    assert e.value.field == "ActionNames"


@pytest.mark.parametrize("resource", ["", "alice", "arn:aws:iam::1:user/a b", "arn:" + "x" * 3000])
def test_resource_names_are_star_or_an_arn(resource: str) -> None:
    with pytest.raises(InputError) as e:
        simulate.resource_name(resource)
    assert e.value.field == "ResourceArns"


# -- tags -----------------------------------------------------------------------------------

_tag_text = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" _.:/=+-@"),
    min_size=1,
    max_size=40,
)


@given(st.dictionaries(_tag_text, _tag_text | st.just(""), max_size=8), st.booleans())
def test_tags_round_trip(tags: dict[str, str], as_json: bool) -> None:
    lowered = {k.lower() for k in tags}
    if len(lowered) != len(tags) or any(k.lower().startswith("aws:") for k in tags):
        return  # the refusals are tested below
    if not all(k.strip() == k for k in tags):
        return  # the shorthand strips the spaces around a field name, not a key
    if as_json:
        texts = [json.dumps([{"Key": k, "Value": v} for k, v in tags.items()])] if tags else []
    else:
        texts = [f"Key={quote(k)},Value={quote(v)}" for k, v in tags.items()]
    assert managed.parse_tag_arguments(texts) == tags


@given(st.lists(st.text(max_size=80), max_size=3))
def test_arbitrary_tag_arguments_give_only_input_errors(texts: list[str]) -> None:
    try:
        tags = managed.parse_tag_arguments(texts)
    except InputError:
        return
    assert len(tags) <= 50


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        (["Key=team"], "needs Key and Value"),
        (["Value=x"], "needs Key and Value"),
        (["Key=a,Value=b,Extra=c"], "not one of its fields"),
        (["Key=team,Value=a", "Key=TEAM,Value=b"], "given twice"),
        (["Key=aws:team,Value=x"], "reserved prefix"),
        (["Key=team,Value=a\tb"], "letters, digits"),
        (["Key=" + "k" * 129 + ",Value=x"], "1 to 128"),
        ([f"Key=k{n},Value=v" for n in range(51)], "at most 50"),
        (['[{"Key": "a"}]'], "each tag must be"),
        (['{"Key": "a", "Value": 1}'], "each tag must be"),
    ],
)
def test_tag_refusals(texts: list[str], says: str) -> None:
    with pytest.raises(InputError) as e:
        managed.parse_tag_arguments(texts)
    assert says in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ([], "at least one"),
        (["aws:x"], "reserved"),
        (["a\nb"], "letters"),
        ([f"k{n}" for n in range(51)], "at most 50"),
    ],
)
def test_tag_key_refusals(keys: list[str], says: str) -> None:
    with pytest.raises(InputError, match=says):
        managed.tag_keys(keys)


def test_tag_keys_are_deduplicated() -> None:
    assert managed.tag_keys(["k", "j", "k"]) == ["k", "j"]


# -- ARNs and version ids ------------------------------------------------------------------


def test_policy_arns() -> None:
    parsed = managed.parse_policy_arn(
        "arn:aws:iam::111122223333:policy/team/a/ReadIam", partition="aws"
    )
    assert (parsed.account_id, parsed.path, parsed.name) == ("111122223333", "/team/a/", "ReadIam")
    assert not parsed.aws_managed
    aws = managed.parse_policy_arn("arn:aws:iam::aws:policy/AdministratorAccess", partition="aws")
    assert aws.aws_managed and aws.path == "/"
    assert (
        managed.policy_arn("aws", "111122223333", "ReadIam", "/team/a/")
        == "arn:aws:iam::111122223333:policy/team/a/ReadIam"
    )


@given(st.text(max_size=120))
def test_arbitrary_policy_arns_give_only_input_errors(text: str) -> None:
    try:
        parsed = managed.parse_policy_arn(text, partition="aws")
    except InputError as e:
        assert e.field == "PolicyArn"
        return
    assert managed.policy_arn("aws", parsed.account_id, parsed.name, parsed.path) == text


@given(st.integers(1, 10**9 - 1))
def test_version_ids_round_trip(n: int) -> None:
    assert managed.version_id(managed.version_label(n)) == n
