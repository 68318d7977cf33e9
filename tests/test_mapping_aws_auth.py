"""Tests for authbridge.mapping.aws_auth: importing EKS aws-auth ConfigMaps.

Covers:
* upstream's own test ConfigMaps (pkg/mapper/configmap/yaml/*.yaml in
  kubernetes-sigs/aws-iam-authenticator): plain, crazy-case and
  open-source-case entry keys convert identically; the missing-bar one and
  lower-case data keys are refused with the reason;
* round trip: a realistic aws-auth (admins, SSO-style role with
  {{SessionName}}, deployers, users with system:masters, mapAccounts) is
  imported, parses with parse_mapping, and resolve() maps a table of
  identities exactly as a small model of EKS's configmap mapper does;
* unsupported entries ({{EC2PrivateDNSName}}, {{SessionKey}}, sso,
  {{SessionName}} in mapUsers) refuse the import naming the entry, or with
  skip_unsupported are left out as comments, never silently;
* EKS semantics carried over with comments: reserved prefixes kept
  (allowReservedPrefixes), duplicate ARNs (the last wins), a rolearn with a
  path next to a path-less one, userid;
* input forms: ConfigMap YAML, kubectl JSON, bare data, {data: …}; skippable
  values; account ids keep leading zeros;
* refusals: not a ConfigMap, wrong kinds of ARN, unknown or doubled keys,
  missing username, wrong types, alias bombs and syntax errors inside the
  embedded strings (line numbers relative to the string);
* hostile text never escapes a comment (a newline in the source name).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest

from authbridge import arn
from authbridge.mapping import (
    Identity,
    MappingError,
    convert_aws_auth,
    import_aws_auth,
    parse_mapping,
    resolve,
)

SRC = "aws-auth.yaml"
NODE_ROLE = "arn:aws:iam::555555555555:role/devel-worker-nodes-NodeInstanceRole-74RF4UBDUKL6"

UPSTREAM_PLAIN = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: arn:aws:iam::555555555555:role/devel-worker-nodes-NodeInstanceRole-74RF4UBDUKL6
      username: system:node:{{EC2PrivateDNSName}}
      groups:
        - system:bootstrappers
        - system:nodes
  mapUsers: |
    - userarn: arn:aws:iam::555555555555:user/admin
      username: admin
      groups:
        - system:masters
  mapAccounts: |
    - 555555555555
"""
UPSTREAM_CRAZY = (
    UPSTREAM_PLAIN.replace("- rolearn:", "- rOlEaRn:")
    .replace("- userarn:", "- uSeRaRn:")
    .replace("  username:", "  UsErNaMe:")
    .replace("  groups:", "  gRoUpS:")
)
UPSTREAM_OPEN_SOURCE = UPSTREAM_PLAIN.replace("- rolearn:", "- roleARN:").replace(
    "- userarn:", "- userARN:"
)
UPSTREAM_MISSING_BAR = UPSTREAM_PLAIN.replace("  mapRoles: |\n", "  mapRoles:\n")
UPSTREAM_LOWER_TOP = UPSTREAM_PLAIN.replace("mapUsers:", "mapusers:")


def refused(data: str | bytes, **kw: bool) -> list[str]:
    with pytest.raises(MappingError) as info:
        convert_aws_auth(data, SRC, **kw)
    return [p.removeprefix(f"{SRC}: ") for p in info.value.problems]


# -- upstream's test ConfigMaps -------------------------------------------------------------


def test_upstream_configmap_refuses_the_node_role_naming_it() -> None:
    with pytest.raises(MappingError) as info:
        convert_aws_auth(UPSTREAM_PLAIN, SRC)
    assert info.value.problems == [
        f"{SRC}: data.mapRoles[0].username: {{{{EC2PrivateDNSName}}}} is not supported: it names"
        " an EC2 worker node; authbridge does not authenticate EC2 nodes"
    ]
    assert info.value.hint is not None and "--skip-unsupported" in info.value.hint


@pytest.mark.parametrize("spelling", [UPSTREAM_PLAIN, UPSTREAM_CRAZY, UPSTREAM_OPEN_SOURCE])
def test_entry_keys_match_case_insensitively(spelling: str) -> None:
    plain = convert_aws_auth(UPSTREAM_PLAIN, SRC, skip_unsupported=True)
    got = convert_aws_auth(spelling, SRC, skip_unsupported=True)
    assert got.text == plain.text
    assert got.skipped == (
        f"data.mapRoles[0] ({NODE_ROLE}): username: {{{{EC2PrivateDNSName}}}} is not supported:"
        " it names an EC2 worker node; authbridge does not authenticate EC2 nodes",
    )
    m = got.mapping
    assert m.map_roles == ()
    assert [(u.userarn, u.username, u.groups, u.allow_reserved_prefixes) for u in m.map_users] == [
        ("arn:aws:iam::555555555555:user/admin", "admin", ("system:masters",), True)
    ]
    assert m.map_accounts == ("555555555555",)
    # Left out, but not silently: the entry is a comment in the output.
    assert f"# data.mapRoles[0] ({NODE_ROLE}) left out, not supported by authbridge" in got.text
    assert '#   was: username "system:node:{{EC2PrivateDNSName}}"' in got.text


def test_missing_bar_is_refused_as_kubernetes_does() -> None:
    assert refused(UPSTREAM_MISSING_BAR) == [
        "data.mapRoles: must be a string holding YAML (write `mapRoles: |`), got a list;"
        " ConfigMap data values are strings and Kubernetes refuses this ConfigMap"
    ]


def test_data_keys_are_case_sensitive() -> None:
    assert refused(UPSTREAM_LOWER_TOP, skip_unsupported=True) == [
        "data.mapusers: is not an aws-auth key, so EKS ignores it (data keys are"
        " case-sensitive); did you mean mapUsers?"
    ]


# -- round trip: the import maps every identity as EKS did -----------------------------------

REALISTIC = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
  uid: 8fdf7cf0-35b2-4005-9a90-ded6e0ee0f9a
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/Admin
      username: administrator
      groups:
        - system:masters
    - groups:
      - engineering
      rolearn: arn:aws:iam::111122223333:role/AWSReservedSSO_EngineeringAccess_0123abcd
      username: engineering:{{SessionName}}
    - roleARN: arn:aws:iam::111122223333:role/eks-deployer
      username: deployer-{{AccountID}}
      groups: [deployer-2048]
    - rolearn: arn:aws:iam::111122223333:role/raw
      username: "raw:{{SessionNameRaw}}"
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/dfelipe
      username: admin
      groups:
        - system:masters
    - userarn: arn:aws:iam::444455556666:user/ops-user
      username: ops-user
      groups:
        - eks-console-dashboard-full-access-group
    - userarn: arn:aws:iam::111122223333:user/keyed
      username: "key-{{AccessKeyID}}"
  mapAccounts: |
    - "777788889999"
"""


@dataclass(frozen=True)
class EksEntry:
    arn: str
    username: str
    groups: tuple[str, ...]


def eks_model(text: str, identity: Identity) -> tuple[str, tuple[str, ...]] | None:
    """How EKS's configmap mapper answers (a re-statement of upstream, for this test).

    Entries are keyed by lowercased ARN (the last one wins); the identity's
    canonical ARN comes from STS, so a role never has a path; roles are
    looked up first, then users, then the account; templates are replaced
    textually.
    """
    import yaml

    data = yaml.safe_load(text)["data"]

    def entries(key: str, arn_key: str) -> dict[str, EksEntry]:
        out: dict[str, EksEntry] = {}
        for raw in yaml.safe_load(data.get(key, "")) or []:
            fields = {k.lower(): v for k, v in raw.items()}
            out[fields[arn_key].lower()] = EksEntry(
                fields[arn_key], fields["username"], tuple(fields.get("groups") or ())
            )
        return out

    canonical = arn.canonicalize(identity.arn).lower()
    session = identity.session_name or ""

    def render(t: str) -> str:
        t = t.replace("{{AccountID}}", identity.account_id)
        t = t.replace("{{SessionName}}", session.replace("@", "-"))
        t = t.replace("{{SessionNameRaw}}", session)
        return t.replace("{{AccessKeyID}}", identity.access_key_id or "")

    for table in (entries("mapRoles", "rolearn"), entries("mapUsers", "userarn")):
        if canonical in table:
            e = table[canonical]
            return render(e.username), tuple(render(g) for g in e.groups)
    accounts = yaml.safe_load(data.get("mapAccounts", "")) or []
    if identity.account_id in [str(a) for a in accounts]:
        return arn.canonicalize(identity.arn), ()
    return None


def session(account: str, role: str, name: str) -> Identity:
    return Identity(
        arn=f"arn:aws:sts::{account}:assumed-role/{role}/{name}",
        canonical_arn=f"arn:aws:iam::{account}:role/{role}",
        account_id=account,
        principal_id=f"AROAEXAMPLE{role.upper()[:6]}:{name}",
        session_name=name,
    )


def user(account: str, name: str) -> Identity:
    a = f"arn:aws:iam::{account}:user/{name}"
    return Identity(a, a, account, f"AIDA{name.upper()}", access_key_id=f"AKIA{name.upper()}")


IDENTITIES = [
    session("111122223333", "Admin", "i-0123456789abcdef0"),
    session("111122223333", "AWSReservedSSO_EngineeringAccess_0123abcd", "john.doe@example.com"),
    session("111122223333", "eks-deployer", "ci"),
    session("111122223333", "raw", "me@example.com"),
    session("111122223333", "unknown", "x1"),
    user("111122223333", "dfelipe"),
    user("111122223333", "DFELIPE"),  # ARNs compare case-insensitively in both
    user("444455556666", "ops-user"),
    user("111122223333", "keyed"),
    user("111122223333", "stranger"),
    user("777788889999", "anyone"),
    session("777788889999", "AnyRole", "s1"),
]


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda i: i.arn.split(":", 4)[4])
def test_round_trip_resolves_as_eks_does(identity: Identity) -> None:
    result = convert_aws_auth(REALISTIC, SRC)
    assert result.skipped == ()
    mapping = parse_mapping(result.text, "rbac/mapping.yaml")  # the output parses as is
    assert mapping == parse_mapping(result.text, "rbac/mapping.yaml")
    expected = eks_model(REALISTIC, identity)
    got = resolve(mapping, identity)
    if expected is None:
        assert got.user is None, got
    else:
        assert got.user is not None, got.reason
        assert (got.user.username, got.user.groups) == expected


def test_realistic_output_reads_well() -> None:
    result = convert_aws_auth(REALISTIC, SRC)
    assert result.text.startswith(
        "# authbridge mapping (rbac/mapping.yaml), converted from the EKS aws-auth ConfigMap\n"
        "# in aws-auth.yaml by `authbridge mapping import-aws-auth`.\n"
    )
    # The header points at documentation that ships with authbridge, nothing outside it.
    header = result.text.split("\nmapRoles:", 1)[0]
    assert "docs/mapping.md" in header and "DESIGN" not in header
    assert (
        textwrap.dedent(
            """\
        mapRoles:
          # data.mapRoles[0]
          # allowReservedPrefixes: keeps system:, as aws-auth allows; review
          - rolearn: "arn:aws:iam::111122223333:role/Admin"
            username: "administrator"
            groups:
              - "system:masters"
            allowReservedPrefixes: true
          # data.mapRoles[1]
          - rolearn: "arn:aws:iam::111122223333:role/AWSReservedSSO_EngineeringAccess_0123abcd"
            username: "engineering:{{SessionName}}"
            groups:
              - "engineering"
        """
        )
        in result.text
    )
    assert result.text.endswith('mapAccounts:\n  - "777788889999"\n')
    assert result.notes == (
        "data.mapRoles[0]: allowReservedPrefixes: keeps system:, as aws-auth allows; review",
        "data.mapUsers[0]: allowReservedPrefixes: keeps system:, as aws-auth allows; review",
    )
    assert import_aws_auth(REALISTIC, SRC) == result.text


# -- unsupported entries -----------------------------------------------------------------------


def cm(map_roles: str = "", map_users: str = "", map_accounts: str = "") -> str:
    data = {"mapRoles": map_roles, "mapUsers": map_users, "mapAccounts": map_accounts}
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap"}
    doc["metadata"] = {"name": "aws-auth"}
    doc["data"] = {k: textwrap.dedent(v) for k, v in data.items() if v}
    return json.dumps(doc)  # kubectl -o json: JSON is YAML


ADMIN_ROLE = "arn:aws:iam::111122223333:role/Admin"
UNSUPPORTED = [
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: 'a:{{{{SessionKey \"team\"}}}}'\n"),
        'data.mapRoles[0].username: {{SessionKey "team"}} is not supported: session tags do not'
        " exist in authbridge",
    ),
    (
        cm(
            map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: a\n"
            "  groups: ['{{EC2PrivateDNSNameRaw}}']\n"
        ),
        "data.mapRoles[0].groups[0]: {{EC2PrivateDNSNameRaw}} is not supported: it names an EC2"
        " worker node; authbridge does not authenticate EC2 nodes",
    ),
    (
        cm(
            map_roles="- sso:\n    permissionSetName: Admin\n    accountID: '111122223333'\n"
            f"  rolearn: {ADMIN_ROLE}\n  username: a\n"
        ),
        "data.mapRoles[0].sso: SSO permission-set matchers are not supported; map each"
        " AWSReservedSSO_… role ARN with rolearn",
    ),
    (
        cm(
            map_users="- userarn: arn:aws:iam::111122223333:user/a\n"
            "  username: 'u:{{SessionName}}'\n"
        ),
        "data.mapUsers[0].username: {{SessionName}} is not allowed in mapUsers: only role sessions"
        " have a session name; it is allowed in mapRoles only",
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: 'r:{{{{AccessKeyID}}}}'\n"),
        "data.mapRoles[0].username: {{AccessKeyID}} is not allowed in mapRoles: role sessions"
        " carry no access key id; it is allowed in mapUsers and mapGroups only",
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: 'r:{{{{Whatever}}}}'\n"),
        "data.mapRoles[0].username: unknown template variable {{Whatever}} (mapRoles knows"
        " {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{PrincipalID}})",
    ),
]


@pytest.mark.parametrize(("data", "problem"), UNSUPPORTED)
def test_unsupported_entries_refuse_or_are_left_out_visibly(data: str, problem: str) -> None:
    assert refused(data) == [problem]
    result = convert_aws_auth(data, SRC, skip_unsupported=True)
    where, why = problem.split(": ", 1)
    entry, field = where.split("].", 1)
    assert len(result.skipped) == 1
    assert result.skipped[0].endswith(f": {field}: {why}")
    assert f"# {entry}] (" in result.text and "left out, not supported by authbridge" in result.text
    assert result.mapping.map_roles == () and result.mapping.map_users == ()
    assert "  []  # every" in result.text


# -- EKS semantics carried over ----------------------------------------------------------------


def test_duplicates_keep_the_entry_eks_used() -> None:
    data = cm(
        map_roles=f"""\
            - rolearn: arn:aws:iam::111122223333:role/team/Dev
              username: pathed
            - rolearn: {ADMIN_ROLE}
              username: first
            - rolearn: arn:aws:iam::111122223333:role/dev
              username: dev
            - rolearn: {ADMIN_ROLE.lower()}
              username: last
              userid: AROAEXAMPLE
            """,
        map_users="""\
            - userarn: arn:aws:iam::111122223333:user/a
              username: a1
            - userarn: arn:aws:iam::111122223333:user/A
              username: a2
            """,
        map_accounts="- '012345678901'\n- '012345678901'\n",
    )
    result = convert_aws_auth(data, SRC)
    m = result.mapping
    assert [(r.rolearn, r.username) for r in m.map_roles] == [
        ("arn:aws:iam::111122223333:role/dev", "dev"),
        (ADMIN_ROLE.lower(), "last"),
    ]
    assert [u.username for u in m.map_users] == ["a2"]
    assert m.map_accounts == ("012345678901",)
    assert result.notes == (
        "data.mapRoles[0] (arn:aws:iam::111122223333:role/team/Dev): left out:"
        " data.mapRoles[2] names the same role without a path, and EKS matched only that one",
        "data.mapRoles[1] (arn:aws:iam::111122223333:role/Admin): left out: EKS uses"
        " data.mapRoles[3], the later entry for the same ARN",
        "data.mapRoles[3]: userid not carried over: EKS's aws-auth matching ignores it",
        "data.mapUsers[0] (arn:aws:iam::111122223333:user/a): left out: EKS uses"
        " data.mapUsers[1], the later entry for the same ARN",
        "data.mapAccounts[1]: 012345678901 is listed twice; kept once",
    )
    assert "# data.mapRoles[1] (arn:aws:iam::111122223333:role/Admin) left out: EKS uses" in (
        result.text
    )


def test_same_role_under_two_paths_keeps_the_later() -> None:
    data = cm(
        map_roles="- rolearn: arn:aws:iam::111122223333:role/a/Dev\n  username: a\n"
        "- rolearn: arn:aws:iam::111122223333:role/b/Dev\n  username: b\n"
    )
    result = convert_aws_auth(data, SRC)
    assert [r.username for r in result.mapping.map_roles] == ["b"]
    assert result.notes[0] == (
        "data.mapRoles[0] (arn:aws:iam::111122223333:role/a/Dev): left out: data.mapRoles[1]"
        " names the same role (the later entry is kept; EKS matched neither, as role sessions"
        " carry no path)"
    )


def test_a_lone_rolearn_with_a_path_is_kept_with_a_note() -> None:
    data = cm(map_roles="- rolearn: arn:aws:iam::111122223333:role/team/Dev\n  username: dev\n")
    result = convert_aws_auth(data, SRC)
    assert result.mapping.map_roles[0].rolearn == "arn:aws:iam::111122223333:role/team/Dev"
    assert result.notes == (
        "data.mapRoles[0]: this rolearn has a path: EKS never matched it (role sessions carry no"
        " path); authbridge matches it",
    )


# -- input forms ---------------------------------------------------------------------------------


def test_bare_data_and_data_wrapper_and_skippable_values() -> None:
    entry = "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n"
    bare = {"mapUsers": entry, "mapRoles": "``", "mapAccounts": '""'}
    for doc in (bare, {"data": bare}):
        result = convert_aws_auth(json.dumps(doc), SRC)
        assert [u.username for u in result.mapping.map_users] == ["a"]
        assert result.mapping.map_roles == () and result.mapping.map_accounts == ()
    bare_text = result.text
    assert "# data.mapUsers[0]" in bare_text
    only_bare = convert_aws_auth(json.dumps(bare), SRC).text
    assert "# mapUsers[0]" in only_bare


def test_empty_configmap_gives_an_empty_but_valid_mapping() -> None:
    text = import_aws_auth("kind: ConfigMap\napiVersion: v1\nmetadata: {name: aws-auth}\n", SRC)
    m = parse_mapping(text, "out")
    assert (m.map_roles, m.map_users, m.map_accounts) == ((), (), ())


def test_account_ids_keep_their_text() -> None:
    data = "data:\n  mapAccounts: |\n    - 012345670123\n    - 111122223333\n    - '444455556666'\n"
    assert convert_aws_auth(data, SRC).mapping.map_accounts == (
        "012345670123",
        "111122223333",
        "444455556666",
    )
    assert refused("data:\n  mapAccounts: |\n    - 1234\n") == [
        "data.mapAccounts[0]: '1234' is not a 12-digit account id"
    ]


def test_other_configmap_name_is_noted() -> None:
    result = convert_aws_auth("kind: ConfigMap\nmetadata: {name: other}\ndata: {}\n", SRC)
    assert result.notes == ("the ConfigMap is named 'other'; EKS reads only kube-system/aws-auth",)


# -- refusals ------------------------------------------------------------------------------------

REFUSALS = [
    ("kind: Secret\ndata: {}\n", ["kind: is Secret, not ConfigMap"]),
    ("- a\n", ["is not an aws-auth ConfigMap (got a list)"]),
    (
        "foo: bar\n",
        [
            "is not an aws-auth ConfigMap: expected kind: ConfigMap with"
            " data.mapRoles, data.mapUsers or data.mapAccounts"
        ],
    ),
    ("kind: ConfigMap\ndata: [1]\n", ["data: must be a mapping, got a list"]),
    (
        cm(map_roles="rolearn: x\n"),
        ["data.mapRoles: must hold a YAML list of entries, got a mapping"],
    ),
    (cm(map_roles="- x\n"), ["data.mapRoles[0]: must be a mapping, got a string"]),
    (
        cm(map_roles="- username: a\n"),
        ["data.mapRoles[0].rolearn: is required: the IAM role ARN (EKS drops entries without one)"],
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n"),
        [
            "data.mapRoles[0].username: is missing; EKS would give Kubernetes an empty username,"
            " which authbridge refuses: set one"
        ],
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: ''\n"),
        ["data.mapRoles[0].username: is empty; EKS would give Kubernetes an empty username"],
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: a\n  groups: admins\n"),
        ["data.mapRoles[0].groups: must be a list, got a string"],
    ),
    (
        cm(map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: a\n  groups: [1]\n"),
        ["data.mapRoles[0].groups[0]: must be a string, got a number (1)"],
    ),
    (
        cm(map_roles="- rolearn: arn:aws:sts::111122223333:assumed-role/Admin/s1\n  username: a\n"),
        [
            "data.mapRoles[0].rolearn: is an assumed-role ARN, not an IAM role ARN; write the IAM"
            " role ARN"
        ],
    ),
    (
        cm(map_roles="- rolearn: arn:aws:iam::111122223333:user/bob\n  username: a\n"),
        [
            "data.mapRoles[0].rolearn: is a user ARN, not an IAM role ARN; move the entry to"
            " mapUsers"
        ],
    ),
    (
        cm(map_users="- userarn: arn:aws:iam::1:user/bob\n  username: a\n"),
        ["data.mapUsers[0].userarn: is not a valid user ARN: account id '1' is not 12 digits"],
    ),
    (
        cm(
            map_users="- userarn: arn:aws:iam::111122223333:user/bob\n  username: a\n  grups: [x]\n"
        ),
        [
            "data.mapUsers[0].grups: unknown key; EKS ignores it silently, so remove it or fix the"
            " spelling; did you mean groups?"
        ],
    ),
    (
        cm(
            map_users="- userarn: arn:aws:iam::111122223333:user/bob\n  username: a\n"
            "  UserName: b\n"
        ),
        [
            "data.mapUsers[0].UserName: is given twice (as username and UserName; keys are"
            " case-insensitive in aws-auth); keep one"
        ],
    ),
    (
        cm(map_roles="- &a {rolearn: x}\n- *a\n"),
        [
            "data.mapRoles: line 1, column 3: YAML anchors and aliases (&name, *name) are not"
            " allowed here; write each value out"
        ],
    ),
    (
        cm(map_roles="- rolearn: x\n\t username: y\n"),
        [
            "data.mapRoles: line 2, column 1: while scanning for the next token; found character"
            " '\\t' that cannot start any token"
        ],
    ),
]


@pytest.mark.parametrize(("data", "expected"), REFUSALS)
def test_refusals_name_the_entry(data: str, expected: list[str]) -> None:
    assert refused(data) == expected


def test_every_problem_at_once() -> None:
    data = cm(
        map_roles=f"- rolearn: {ADMIN_ROLE}\n  username: 'n:{{{{EC2PrivateDNSName}}}}'\n- x\n",
        map_users="- userarn: nope\n  username: a\n",
        map_accounts="- 1\n",
    )
    assert [p.split(":", 1)[0] for p in refused(data)] == [
        "data.mapRoles[0].username",
        "data.mapRoles[1]",
        "data.mapUsers[0].userarn",
        "data.mapAccounts[0]",
    ]


def test_hostile_text_stays_inside_comments() -> None:
    evil_source = "x\nmapAccounts: ['999999999999']\n#"
    data = cm(map_users="- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n")
    result = convert_aws_auth(data, evil_source)
    assert result.mapping.map_accounts == ()
    assert "# in x\\nmapAccounts: ['999999999999']\\n# by" in result.text
    assert (
        "not printable"
        in refused(
            cm(map_users='- userarn: arn:aws:iam::111122223333:user/a\n  username: "a\\nb"\n')
        )[0]
    )


def test_size_cap_and_encoding() -> None:
    assert refused("#" * (2 * 1024 * 1024))[0].startswith("is 2097152 bytes; the limit is")
    assert refused(b"kind: ConfigMap\ndata: {}\n\xff")[0] == (
        "is not UTF-8 text (byte 0xff at offset 25); save it as UTF-8"
    )
