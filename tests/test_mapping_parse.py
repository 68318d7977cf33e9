"""Tests for authbridge.mapping.parse (and yamlsafe): the mapping file and its validation.

Covers:
* the example ``rbac/mapping.yaml`` and the docs/mapping.md example parse to the
  expected values; digest is the sha256 of the bytes; ``{}`` is a valid mapping;
* every validation rule, one table row each, with the exact message
  (``<file>: <entry>.<field>: <what to change>``);
* every problem reported at once, in document order;
* duplicates within a section: case-insensitive ARNs, role ARNs with and
  without a path, accounts, service accounts;
* hostile or malformed input: alias bombs (refused, fast), anchors, merge
  keys, the 1 MiB cap (text, bytes and files), non-UTF-8 and UTF-16 bytes, a
  BOM, 100 000-deep nesting, tabs, duplicate keys (top level and in an
  entry), integers/booleans/dates where strings are expected, NUL, an
  empty file, a non-mapping top level;
* scalars PyYAML would build and raise ValueError on (2001-02-30, a leap
  second, 4 000-digit hex, 4 400-digit integers, ``0b_``) and numbers: one
  problem naming field and line; every explicit tag but ``!!str`` refused
  naming line and tag; only the format's types come out of the loader; the
  net under the constructors names the line of an unforeseen exception;
* load_mapping reads files (source = the path) and never reads past the cap;
* the partitions keyword.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from authbridge.mapping import (
    Binding,
    GroupRule,
    Mapping,
    MappingError,
    RoleRule,
    ServiceAccountRule,
    UserRule,
    load_mapping,
    parse_mapping,
    yamlsafe,
)

SRC = "rbac/mapping.yaml"
REPO = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::111122223333:role/platform/Admin"
USER = "arn:aws:iam::111122223333:user/alice"
GROUP = "arn:aws:iam::111122223333:group/oncall"
RESERVED = (
    'uses the reserved prefix "system:"; set allowReservedPrefixes: true on this entry'
    " if you mean it"
)

# The example that opens docs/mapping.md: the documentation's own mapping must parse
# to exactly what it says.
DOCS_EXAMPLE = re.findall(
    r"^```yaml\n(.*?)^```", (REPO / "docs" / "mapping.md").read_text(), re.M | re.S
)[0]


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, SRC)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def only_problem(text: str | bytes) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0].removeprefix(f"{SRC}: ")


# -- valid files ------------------------------------------------------------------------


def test_docs_example_parses_to_values() -> None:
    m = parse_mapping(DOCS_EXAMPLE, SRC)
    assert m == Mapping(
        source=SRC,
        digest=hashlib.sha256(DOCS_EXAMPLE.encode()).hexdigest(),
        cluster_id="prod",
        map_roles=(RoleRule(ROLE, "admin:{{SessionName}}", ("authbridge:admins",)),),
        map_users=(UserRule(USER, "alice", ("authbridge:devs",)),),
        map_groups=(GroupRule(GROUP, ("authbridge:oncall",)),),
        map_accounts=("111122223333",),
        bindings=(
            Binding("cluster-admin", group="authbridge:admins"),
            Binding("edit", group="authbridge:devs", namespaces=("dev", "team-*")),
        ),
        service_accounts=(
            ServiceAccountRule(
                "arn:aws:iam::111122223333:role/ci-deployer", "ci", "deployer", "edit"
            ),
        ),
    )


def test_the_example_mapping_file_is_valid() -> None:
    path = REPO / "rbac" / "mapping.yaml"
    m = load_mapping(path)
    assert m.source == str(path)
    assert m.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.map_roles == (RoleRule(ROLE, "admin:{{SessionName}}", ("authbridge:admins",)),)
    assert m.map_users == (UserRule(USER, "alice", ("authbridge:devs",)),)
    assert m.map_groups == (
        GroupRule("arn:aws:iam::111122223333:group/admins", ("authbridge:oncall",)),
    )
    assert m.map_accounts == ()
    assert [b.cluster_role for b in m.bindings] == ["cluster-admin", "edit"]
    assert m.bindings[1].namespaces == ("dev", "team-*")


def test_minimal_and_optional_forms() -> None:
    assert parse_mapping("{}", SRC).map_roles == ()
    # Empty sections are empty lists; optional fields default.
    m = parse_mapping(
        "mapRoles:\nmapUsers: []\nmapAccounts:\n  - 111122223333\nmapGroups:\n"
        f"  - grouparn: {GROUP}\n    username: 'oncall:{{{{AccessKeyID}}}}'\n"
        "    allowReservedPrefixes: false\n",
        SRC,
    )
    assert m.map_roles == () and m.map_users == ()
    assert m.map_accounts == ("111122223333",)  # a 12-digit integer is accepted
    assert m.map_groups == (GroupRule(GROUP, (), "oncall:{{AccessKeyID}}"),)


def test_reserved_prefixes_allowed_when_the_entry_says_so() -> None:
    m = parse_mapping(
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'system:admin:{{{{SessionName}}}}'\n"
        "    groups: [system:masters]\n    allowReservedPrefixes: true\n"
        "bindings:\n  - group: system:authenticated\n    clusterRole: view\n"
        "    allowReservedPrefixes: true\n",
        SRC,
    )
    assert m.map_roles[0].allow_reserved_prefixes is True
    assert m.map_roles[0].groups == ("system:masters",)
    assert m.bindings == (
        Binding("view", group="system:authenticated", allow_reserved_prefixes=True),
    )


def test_templates_with_spaces_inside_braces_are_accepted() -> None:
    m = parse_mapping(
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{ SessionName }}}}'\n", SRC
    )
    assert m.map_roles[0].username == "a:{{ SessionName }}"


def test_bytes_with_a_utf8_bom_and_custom_partition() -> None:
    text = "mapUsers:\n  - userarn: arn:corp:iam::111122223333:user/zoe\n    username: zoë\n"
    assert only_problem(text) == (
        "mapUsers[0].userarn: is not a valid user ARN: unrecognized partition 'corp';"
        " known partitions: aws, aws-cn, aws-eusc, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f,"
        " aws-us-gov"
    )
    assert parse_mapping(text, SRC, partitions={"corp"}).map_users[0].username == "zoë"
    assert "not printable ASCII" in only_problem(text.replace("user/zoe", "user/zoë"))
    good = (
        b"\xef\xbb\xbfmapUsers:\n  - userarn: arn:corp:iam::111122223333:user/zoe\n"
        b"    username: zo\xc3\xab\n"
    )
    m = parse_mapping(good, SRC, partitions={"corp"})
    assert m.map_users[0].username == "zoë"
    assert m.digest == hashlib.sha256(good).hexdigest()


# -- one rule per row ----------------------------------------------------------------------

ROLE_ENTRY = f"mapRoles:\n  - rolearn: {ROLE}\n    username: admin\n"

RULES = [
    # top level
    (
        "[]",
        "must be a YAML mapping with keys clusterID, mapRoles, mapUsers, mapGroups,"
        " mapAccounts, bindings, serviceAccounts; got a list",
    ),
    (
        "just text",
        "must be a YAML mapping with keys clusterID, mapRoles, mapUsers, mapGroups,"
        " mapAccounts, bindings, serviceAccounts; got a string",
    ),
    ("maproles: []", "maproles: unknown key; did you mean mapRoles? (keys are case-sensitive)"),
    ("mapRole: []", "mapRole: unknown key; did you mean mapRoles?"),
    (
        "zzz: 1",
        "zzz: unknown key; known keys: clusterID, mapRoles, mapUsers, mapGroups,"
        " mapAccounts, bindings, serviceAccounts",
    ),
    (
        "1: x",
        "key an integer (1) must be a string (one of clusterID, mapRoles, mapUsers,"
        " mapGroups, mapAccounts, bindings, serviceAccounts)",
    ),
    (
        "clusterID: 'a b'",
        "clusterID: must be a cluster id: 1-100 letters, digits, '.', '_' or"
        " '-' starting with a letter or digit",
    ),
    (
        "clusterID: 7",
        "clusterID: must be a cluster id: 1-100 letters, digits, '.', '_' or '-'"
        " starting with a letter or digit, got an integer (7)",
    ),
    ("mapRoles: {}", "mapRoles: must be a list, got a mapping"),
    (
        "mapRoles: [x]",
        "mapRoles[0]: must be a mapping with keys rolearn, username, groups,"
        " allowReservedPrefixes; got a string",
    ),
    # ARNs
    (
        "mapRoles:\n  - username: a\n",
        "mapRoles[0].rolearn: is required: the IAM role ARN, e.g."
        " arn:aws:iam::111122223333:role/Name",
    ),
    (
        "mapRoles:\n  - rolearn: ''\n    username: a\n",
        "mapRoles[0].rolearn: is empty; write the IAM role ARN, e.g."
        " arn:aws:iam::111122223333:role/Name",
    ),
    (
        "mapRoles:\n  - rolearn: 5\n    username: a\n",
        "mapRoles[0].rolearn: must be a string, got an integer (5)",
    ),
    (
        "mapRoles:\n  - rolearn: role/Admin\n    username: a\n",
        "mapRoles[0].rolearn: is not a valid role ARN: 'role/Admin' does not start with 'arn:'",
    ),
    (
        "mapRoles:\n  - rolearn: arn:aws:iam::1111:role/Admin\n    username: a\n",
        "mapRoles[0].rolearn: is not a valid role ARN: account id '1111' is not 12 digits;"
        " e.g. 111122223333",
    ),
    (
        f"mapRoles:\n  - rolearn: {USER}\n    username: a\n",
        "mapRoles[0].rolearn: is a user ARN; mapRoles needs an IAM role ARN: write the role's"
        " ARN, e.g. arn:aws:iam::111122223333:role/Name",
    ),
    (
        "mapRoles:\n  - rolearn: arn:aws:sts::111122223333:assumed-role/Admin/s1\n"
        "    username: a\n",
        "mapRoles[0].rolearn: is an assumed-role ARN; mapRoles needs an IAM role ARN: write the"
        " role's ARN, arn:<partition>:iam::<account>:role/<path><name>; the entry then matches"
        " every session of the role",
    ),
    (
        f"mapUsers:\n  - userarn: {ROLE}\n    username: a\n",
        "mapUsers[0].userarn: is a role ARN; mapUsers needs an IAM user ARN: write the user's"
        " ARN, e.g. arn:aws:iam::111122223333:user/Name",
    ),
    (
        f"mapGroups:\n  - grouparn: {USER}\n",
        "mapGroups[0].grouparn: is a user ARN; mapGroups needs an IAM group ARN: write the"
        " group's ARN, e.g. arn:aws:iam::111122223333:group/Name",
    ),
    # usernames
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n",
        "mapRoles[0].username: is required: the Kubernetes username (a template)",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: 123\n",
        "mapUsers[0].username: must be a string, got an integer (123); quote it to make it"
        " a string",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: on\n",
        "mapUsers[0].username: must be a string, got a boolean (true); quote it to make it"
        " a string",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: 2024-01-02\n",
        "mapUsers[0].username: must be a string, got a date (2024-01-02, line 3); quote it to make"
        " it a string",
    ),
    (f"mapUsers:\n  - userarn: {USER}\n    username: ''\n", "mapUsers[0].username: is empty"),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: '{'a' * 254}'\n",
        "mapUsers[0].username: is 254 characters; the limit is 253",
    ),
    (
        f'mapUsers:\n  - userarn: {USER}\n    username: "a\\tb"\n',
        "mapUsers[0].username: has a character that is not printable ('\\t')",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: system:alice\n",
        f"mapUsers[0].username: {RESERVED}",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: System:alice\n",
        f"mapUsers[0].username: {RESERVED}",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: authbridge-internal:x\n",
        'mapUsers[0].username: uses the reserved prefix "authbridge-internal:"; set'
        " allowReservedPrefixes: true on this entry if you mean it",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n    allowReservedPrefixes: yes please\n",
        "mapUsers[0].allowReservedPrefixes: must be true or false, got a string",
    ),
    # groups
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n    groups: admins\n",
        "mapUsers[0].groups: must be a list of group names, got a string",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n    groups: [x, '']\n",
        "mapUsers[0].groups[1]: is empty",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n    groups: [x, 7]\n",
        "mapUsers[0].groups[1]: must be a string, got an integer (7); quote it to make it a string",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n    groups: [eks:x]\n",
        'mapUsers[0].groups[0]: uses the reserved prefix "eks:"; set allowReservedPrefixes: true'
        " on this entry if you mean it",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: a\n    groups: ['{'g' * 254}']\n",
        "mapRoles[0].groups[0]: is 254 characters; the limit is 253",
    ),
    # templates
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{Session}}}}'\n",
        "mapRoles[0].username: unknown template variable {{Session}}; did you mean"
        " {{SessionName}}?",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{sessionname}}}}'\n",
        "mapRoles[0].username: unknown template variable {{sessionname}}; did you mean"
        " {{SessionName}}? (names are case-sensitive)",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{Foo}}}}'\n",
        "mapRoles[0].username: unknown template variable {{Foo}} (mapRoles knows {{AccountID}},"
        " {{SessionName}}, {{SessionNameRaw}}, {{PrincipalID}})",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'node:{{{{EC2PrivateDNSName}}}}'\n",
        "mapRoles[0].username: {{EC2PrivateDNSName}} is not supported: it names an EC2 worker"
        " node; authbridge does not authenticate EC2 nodes",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{SessionKey \"team\"}}}}'\n",
        'mapRoles[0].username: {{SessionKey "team"}} is not supported: session tags do not exist'
        " in authbridge",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{AccessKeyID}}}}'\n",
        "mapRoles[0].username: {{AccessKeyID}} is not allowed in mapRoles: role sessions carry no"
        " access key id; it is allowed in mapUsers and mapGroups only",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: 'a:{{{{SessionName}}}}'\n",
        "mapUsers[0].username: {{SessionName}} is not allowed in mapUsers: only role sessions have"
        " a session name; it is allowed in mapRoles only",
    ),
    (
        f"mapGroups:\n  - grouparn: {GROUP}\n    groups: ['g:{{{{SessionNameRaw}}}}']\n",
        "mapGroups[0].groups[0]: {{SessionNameRaw}} is not allowed in mapGroups: only role sessions"
        " have a session name; it is allowed in mapRoles only",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: 'a:{{{{SessionName}}'\n",
        "mapRoles[0].username: has '{{' or '}}' that is not part of a {{Variable}} template",
    ),
    # accounts
    (
        "mapAccounts: 111122223333",
        "mapAccounts: must be a list of 12-digit account ids, got an integer (111122223333)",
    ),
    (
        "mapAccounts: ['11112222333']",
        "mapAccounts[0]: '11112222333' is not an account id: exactly 12 digits",
    ),
    (
        "mapAccounts: [11112222333]",
        "mapAccounts[0]: is the number 11112222333, not 12 digits;"
        ' quote account ids ("012345678901"): unquoted, YAML drops leading zeros or reads them'
        " as octal",
    ),
    (
        "mapAccounts: [012345670123]",
        "mapAccounts[0]: is the number 1402433619, not 12 digits;"
        ' quote account ids ("012345678901"): unquoted, YAML drops leading zeros or reads them'
        " as octal",
    ),
    (
        "mapAccounts: [true]",
        "mapAccounts[0]: must be a 12-digit account id string, got a boolean (true)",
    ),
    (
        "mapAccounts: ['111122223333', 111122223333]",
        "mapAccounts[1]: duplicates mapAccounts[0] (111122223333)",
    ),
    # bindings
    (
        "bindings:\n  - clusterRole: view\n",
        "bindings[0]: needs group or user: the Kubernetes subject to bind",
    ),
    (
        "bindings:\n  - group: a\n    user: b\n    clusterRole: view\n",
        "bindings[0]: has both group and user; a binding names exactly one subject",
    ),
    ("bindings:\n  - group: a\n", "bindings[0].clusterRole: is required: the ClusterRole to bind"),
    (
        "bindings:\n  - group: a\n    clusterRole: a/b\n",
        "bindings[0].clusterRole: 'a/b' is not a ClusterRole name",
    ),
    (
        "bindings:\n  - group: 'a:{{AccountID}}'\n    clusterRole: view\n",
        "bindings[0].group: templates are not expanded in bindings; name the Kubernetes group",
    ),
    ("bindings:\n  - user: system:admin\n    clusterRole: view\n", f"bindings[0].user: {RESERVED}"),
    (
        "bindings:\n  - group: a\n    clusterRole: view\n    namespaces: []\n",
        "bindings[0].namespaces: is empty; omit namespaces for a cluster-wide binding, or list the"
        " namespaces",
    ),
    (
        "bindings:\n  - group: a\n    clusterRole: view\n    namespaces: dev\n",
        "bindings[0].namespaces: must be a list of namespace names or patterns, got a string",
    ),
    (
        "bindings:\n  - group: a\n    clusterRole: view\n    namespaces: [Dev]\n",
        "bindings[0].namespaces[0]: 'Dev' is not a namespace name or pattern: at most 63 lowercase"
        " letters, digits, '-' and '*', starting and ending with a letter, digit or '*'",
    ),
    (
        "bindings:\n  - group: a\n    clusterRole: view\n    namespaces: [dev, dev]\n",
        "bindings[0].namespaces[1]: duplicates bindings[0].namespaces[0] (dev)",
    ),
    (
        "bindings:\n  - group: a\n    clusterRole: view\n    namespace: dev\n",
        "bindings[0].namespace: unknown key; did you mean namespaces?",
    ),
    # service accounts
    (
        "serviceAccounts:\n  - namespace: ci\n    name: d\n",
        "serviceAccounts[0].rolearn: is required: the IAM role ARN, e.g."
        " arn:aws:iam::111122223333:role/Name",
    ),
    (
        f"serviceAccounts:\n  - rolearn: {ROLE}\n    name: d\n",
        "serviceAccounts[0].namespace: is required",
    ),
    (
        f"serviceAccounts:\n  - rolearn: {ROLE}\n    namespace: CI\n    name: d\n",
        "serviceAccounts[0].namespace: 'CI' is not a namespace name: at most 63 lowercase letters,"
        " digits and '-', starting and ending with a letter or digit",
    ),
    (
        f"serviceAccounts:\n  - rolearn: {ROLE}\n    namespace: ci\n    name: d_x\n",
        "serviceAccounts[0].name: 'd_x' is not a ServiceAccount name: lowercase letters, digits,"
        " '-' and '.', starting and ending with a letter or digit",
    ),
    (
        f"serviceAccounts:\n  - rolearn: {ROLE}\n    namespace: ci\n    name: d\n"
        "    clusterRole: 5\n",
        "serviceAccounts[0].clusterRole: must be a string, got an integer (5); quote it to"
        " make it a string",
    ),
    (
        f"serviceAccounts:\n  - rolearn: {ROLE}\n    namespace: ci\n    name: d\n"
        f"  - rolearn: {ROLE}\n    namespace: ci\n    name: d\n",
        "serviceAccounts[1]: duplicates serviceAccounts[0]: both are ci/d",
    ),
]


@pytest.mark.parametrize(("text", "expected"), RULES, ids=[str(i) for i in range(len(RULES))])
def test_each_rule_has_a_precise_message(text: str, expected: str) -> None:
    assert only_problem(text) == expected


DUPLICATES = [
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: a\n"
        "  - rolearn: arn:aws:iam::111122223333:role/PLATFORM/admin\n"
        "    username: b\n",
        "mapRoles[1].rolearn: duplicates mapRoles[0] (ARNs compare case-insensitively); only the"
        " first matching entry is ever used: merge the two",
    ),
    (
        f"mapRoles:\n  - rolearn: {ROLE}\n    username: a\n"
        "  - rolearn: arn:aws:iam::111122223333:role/Admin\n    username: b\n",
        "mapRoles[1].rolearn: names the same role as mapRoles[0]"
        " ('arn:aws:iam::111122223333:role/platform/Admin'): a rolearn matches its role whatever"
        " the path, so only the first matching entry is ever used: merge the two",
    ),
    (
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n"
        "  - userarn: arn:aws:iam::111122223333:user/ALICE\n    username: b\n",
        "mapUsers[1].userarn: duplicates mapUsers[0] (ARNs compare case-insensitively); only the"
        " first matching entry is ever used: merge the two",
    ),
    (
        f"mapGroups:\n  - grouparn: {GROUP}\n  - grouparn: {GROUP}\n",
        "mapGroups[1].grouparn: duplicates mapGroups[0] (ARNs compare case-insensitively); only"
        " the first matching entry is ever used: merge the two",
    ),
]


@pytest.mark.parametrize(("text", "expected"), DUPLICATES)
def test_duplicate_principals_within_a_section_name_both_entries(text: str, expected: str) -> None:
    assert only_problem(text) == expected


def test_aws_auth_spellings_are_unknown_keys_with_a_hint() -> None:
    assert [
        p.removeprefix(f"{SRC}: ")
        for p in problems(
            f"mapRoles:\n  - roleARN: {ROLE}\n    username: a\n    userid: AROAEXAMPLE\n"
        )
    ] == [
        "mapRoles[0].roleARN: unknown key; did you mean rolearn? (keys are case-sensitive)",
        "mapRoles[0].userid: unknown key; known keys: rolearn, username, groups,"
        " allowReservedPrefixes",
        "mapRoles[0].rolearn: is required: the IAM role ARN, e.g."
        " arn:aws:iam::111122223333:role/Name",
    ]


def test_users_with_different_paths_are_different_principals() -> None:
    m = parse_mapping(
        f"mapUsers:\n  - userarn: {USER}\n    username: a\n"
        "  - userarn: arn:aws:iam::111122223333:user/ops/alice\n    username: b\n",
        SRC,
    )
    assert len(m.map_users) == 2


def test_every_problem_is_reported_at_once_in_document_order() -> None:
    text = (
        "clusterID: 'no spaces'\n"
        "mapRoles:\n"
        "  - rolearn: arn:aws:iam::111122223333:role/Admin\n"
        "    username: system:{{SessionName}}\n"
        "    groups: [ok, '{{Nope}}']\n"
        "  - rolearn: nope\n"
        "    username: x\n"
        "    extra: 1\n"
        "mapUsers: [1]\n"
        "mapAccounts: [12]\n"
        "bindings:\n  - clusterRole: view\n"
        "unknown: true\n"
    )
    found = [p.removeprefix(f"{SRC}: ") for p in problems(text)]
    assert [p.split(":", 1)[0] for p in found] == [
        "unknown",
        "clusterID",
        "mapRoles[0].username",
        "mapRoles[0].groups[1]",
        "mapRoles[1].extra",
        "mapRoles[1].rolearn",
        "mapUsers[0]",
        "mapAccounts[0]",
        "bindings[0]",
    ]
    assert all(p.startswith(f"{SRC}: ") for p in problems(text))


# -- hostile and malformed input ------------------------------------------------------------


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("mapRoles: *j")
    start = time.monotonic()
    problem = only_problem("\n".join(lines) + "\n")
    assert time.monotonic() - start < 1
    assert problem == (
        "line 1, column 4: YAML anchors and aliases (&name, *name) are not allowed here;"
        " write each value out"
    )


def test_anchors_aliases_and_merge_keys_are_refused() -> None:
    assert "anchors and aliases" in only_problem(f"mapRoles:\n  - &r rolearn: {ROLE}\n")
    assert only_problem("x: &x 1\ny: *x\n").startswith("line 1, column 4: YAML anchors")
    assert only_problem("mapRoles:\n  - <<: {rolearn: x}\n    username: a\n") == (
        "line 2, column 5: merge keys (<<) are not allowed here; write each key out"
    )


def test_size_cap_for_text_bytes_and_files(tmp_path: Path) -> None:
    big = "# " + "x" * yamlsafe.MAX_BYTES + "\n{}\n"
    assert only_problem(big).startswith(f"is {len(big)} bytes; the limit is 1048576 (1 MiB)")
    assert only_problem(big.encode()).startswith(f"is {len(big)} bytes; the limit is 1048576")
    ok = "# " + "x" * (yamlsafe.MAX_BYTES - 8) + "\n{}\n"
    assert len(ok.encode()) <= yamlsafe.MAX_BYTES
    assert parse_mapping(ok, SRC).map_roles == ()
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"{}\n" + b"#" * (50 * yamlsafe.MAX_BYTES))
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert info.value.problems == [
        f"{path}: is {path.stat().st_size} bytes or more; the limit is 1048576 (1 MiB)"
    ]


def test_encodings() -> None:
    assert only_problem(b"mapRoles: []\nclusterID: caf\xe9\n") == (
        "is not UTF-8 text (byte 0xe9 at offset 27); save it as UTF-8"
    )
    assert only_problem(b"\xef\xbb\xbf{}\xff") == (
        "is not UTF-8 text (byte 0xff at offset 5); save it as UTF-8"
    )
    utf16 = "{}\n".encode("utf-16")
    assert only_problem(utf16).startswith("is not UTF-8 text (byte 0xff at offset 0)")
    assert only_problem("a: '\ud800'") == "is not valid text (character 4 is a lone surrogate)"
    assert only_problem("mapRoles: []\nclusterID: a\x00b\n") == (
        "line 2, column 13: character 0x0000 is not allowed in YAML; remove it"
    )
    assert only_problem("\x1b[31m: 1") == (
        "line 1, column 1: character 0x001b is not allowed in YAML; remove it"
    )


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "mapRoles: " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert only_problem(deep) == "line 1, column 42: nested more than 32 levels deep"
    nested = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 40))
    assert "nested more than 32 levels deep" in only_problem(nested)


def test_tabs_and_syntax_errors_name_line_and_column() -> None:
    problem = only_problem("mapRoles:\n\t- rolearn: x\n")
    assert problem.startswith("line 2, column 1: ")
    assert "'\\t'" in problem
    assert only_problem("mapRoles: [\n").startswith("line 2, column 1: ")


def test_duplicate_keys_are_refused_naming_both_lines() -> None:
    text = f"mapRoles: []\nmapUsers: []\nmapRoles:\n  - rolearn: {ROLE}\n    username: a\n"
    assert only_problem(text) == (
        "line 3, column 1: duplicate key 'mapRoles' (first given on line 1); YAML would silently"
        " keep only the last"
    )
    entry = f"mapRoles:\n  - rolearn: {ROLE}\n    username: a\n    username: b\n"
    assert only_problem(entry) == (
        "line 4, column 5: duplicate key 'username' (first given on line 3); YAML would"
        " silently keep only the last"
    )


def test_empty_document_is_refused_but_empty_mapping_is_not() -> None:
    for empty in ("", "\n", "# only a comment\n", "---\n"):
        assert only_problem(empty) == (
            "is empty; a mapping with no rules refuses everyone. If you mean that, write {}"
        )
    assert parse_mapping("{}", SRC).digest == hashlib.sha256(b"{}").hexdigest()


def test_several_documents_are_refused() -> None:
    assert "expected a single document" in only_problem("{}\n---\n{}\n")


TAGS = [
    ("a: !!python/object/apply:os.system ['true']\n", "!!python/object/apply:os.system", 4),
    ("mapAccounts: [!!binary aGVsbG8=]\n", "!!binary", 15),
    ("mapAccounts: [!!timestamp 2001-02-30]\n", "!!timestamp", 15),
    ("mapAccounts: [!!int 0xzz]\n", "!!int", 15),
    ("mapAccounts: [!!float x]\n", "!!float", 15),
    ("mapAccounts: [!!bool maybe]\n", "!!bool", 15),
    ("mapRoles: !!set {a, b}\n", "!!set", 11),
    ("mapRoles: !!omap [a: 1]\n", "!!omap", 11),
    ("mapRoles: !!seq []\n", "!!seq", 11),
    ("clusterID: !custom x\n", "!custom", 12),
    ("%TAG !e! tag:example.com,2000:\n---\nclusterID: !e!x y\n", "tag:example.com,2000:x", 12),
]


@pytest.mark.parametrize(("text", "tag", "column"), TAGS, ids=[t[1] for t in TAGS])
def test_yaml_tags_are_refused_naming_line_and_tag(text: str, tag: str, column: int) -> None:
    line = text.count("\n") if text.startswith("%") else 1
    assert only_problem(text) == (
        f"line {line}, column {column}: YAML tags ({tag}) are not allowed here; write the value"
        " without one (quote it to make it a string)"
    )


def test_str_and_non_specific_tags_are_plain_strings() -> None:
    m = parse_mapping("clusterID: !!str 123\n", SRC)
    assert m.cluster_id == "123"
    assert parse_mapping("clusterID: ! abc\n", SRC).cluster_id == "abc"


# Plain scalars PyYAML would build into dates, numbers or huge integers, and raise
# ValueError on (outside yaml.YAMLError): each is one ordinary problem naming the field.
QUOTE_IDS = 'quote account ids ("012345678901")'
HOSTILE_SCALARS = [
    ("2001-02-30", "is a date (2001-02-30, line 2), not a 12-digit account id"),
    (
        "9999-12-31 23:59:60",
        "is a timestamp (9999-12-31 23:59:60, line 2), not a 12-digit account id",
    ),
    (
        "2001-13-01t00:00:00Z",
        "is a timestamp (2001-13-01t00:00:00Z, line 2), not a 12-digit account id",
    ),
    (
        "0x" + "f" * 4000,
        "is an integer (0x" + "f" * 62 + "..., line 2), not a 12-digit account id;"
        ' quote account ids ("012345678901")',
    ),
    (
        "1" * 4400,
        "is an integer (" + "1" * 64 + "..., line 2), not a 12-digit account id;"
        ' quote account ids ("012345678901")',
    ),
    (
        "0b_",
        f"is an integer (0b_, line 2), not a 12-digit account id; {QUOTE_IDS}",
    ),
    (
        "0x_",
        f"is an integer (0x_, line 2), not a 12-digit account id; {QUOTE_IDS}",
    ),
    ("1.5e+3", "is a number (1.5e+3, line 2), not a 12-digit account id"),
    (".nan", "is a number (.nan, line 2), not a 12-digit account id"),
    ("1_2.3_", "is a number (1_2.3_, line 2), not a 12-digit account id"),
]


@pytest.mark.parametrize(("scalar", "expected"), HOSTILE_SCALARS, ids=[str(i) for i in range(10)])
def test_hostile_scalars_are_mapping_errors_naming_field_and_line(
    scalar: str, expected: str
) -> None:
    assert only_problem(f"mapAccounts:\n  - {scalar}\n") == f"mapAccounts[0]: {expected}"


def test_hostile_scalars_in_string_fields_and_keys() -> None:
    user = f"mapUsers:\n  - userarn: {USER}\n    username: 2001-02-30\n"
    assert only_problem(user) == (
        "mapUsers[0].username: must be a string, got a date (2001-02-30, line 3); quote it to"
        " make it a string"
    )
    key = "mapRoles: []\n9999-12-31 23:59:60: x\n"
    assert only_problem(key).startswith(
        "key a timestamp (9999-12-31 23:59:60, line 2) must be a string (one of clusterID,"
    )
    # Duplicate keys are still found when they are not strings.
    assert "duplicate key" in only_problem("2001-02-30: 1\n2001-02-30: 2\n")


def test_only_formats_types_reach_the_model() -> None:
    """Short integers and booleans are built; "=" and "!" are strings; nothing else is."""
    doc = yamlsafe.load(
        "a: [1, 0x1f, 0o7, 190:20:30, true, on, ~, =, 1.5, 2024-01-02, '2024-01-02']\n", SRC
    )
    assert doc["a"][:8] == [1, 31, "0o7", 685230, True, True, None, "="]
    assert [type(v) for v in doc["a"][8:]] == [yamlsafe.Foreign, yamlsafe.Foreign, str]
    assert doc["a"][9] == yamlsafe.Foreign("a date", "2024-01-02")


def test_an_unforeseen_loader_exception_is_a_mapping_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The net under the constructors: any other exception names the value's line."""

    def broken(loader: object, node: object) -> object:
        raise ValueError("boom")

    monkeypatch.setitem(yamlsafe._Loader.yaml_constructors, "tag:yaml.org,2002:bool", broken)
    assert only_problem("mapRoles: []\nx: true\n") == (
        "line 2, column 4: cannot read this value (ValueError)"
    )


def test_load_mapping_passes_os_errors_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_mapping(tmp_path / "missing.yaml")
    path = tmp_path / "m.yaml"
    path.write_text("mapRoles: 1\n")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert info.value.problems == [f"{path}: mapRoles: must be a list, got an integer (1)"]
    assert info.value.code == "MappingInvalid"


def test_problems_in_username_and_groups_of_one_entry_are_all_reported() -> None:
    text = f"mapGroups:\n  - grouparn: {GROUP}\n    username: system:x\n    groups: [system:y]\n"
    assert [p.removeprefix(f"{SRC}: ") for p in problems(text)] == [
        f"mapGroups[0].username: {RESERVED}",
        f"mapGroups[0].groups[0]: {RESERVED}",
    ]
