"""``authbridge iam`` policy verbs as real subprocesses, on both store backends.

Covers every verb and its AWS JSON shape: managed policies and their versions;
put/get/list/delete of user, group and role inline policies; attach, detach
and list-attached for each kind; tags on users and roles; and
``simulate-principal-policy`` on a user with a group policy, an attached AWS
managed policy and an inline Deny, answering allowed, explicitDeny and
implicitDeny with the deciding statement, in JSON and as text lines, with
context entries, principal tags and a role session. Documents come as JSON,
``file://`` and ``-`` (stdin); a malformed one fails before the store is
opened, naming statement and field; every refusal is one line with a hint.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authbridge.iam import policy
from tests.conftest import BACKENDS, _dsn_for
from tests.test_cli import ACCOUNT, AUTHBRIDGE, TIMEOUT, Cli, Result, clean_env

USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
GROUP = f"arn:aws:iam::{ACCOUNT}:group/devs"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Deployer"
READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"

POLICY_VERBS = """
    create-policy get-policy list-policies delete-policy create-policy-version
    get-policy-version list-policy-versions set-default-policy-version delete-policy-version
    put-user-policy get-user-policy list-user-policies delete-user-policy
    put-group-policy get-group-policy list-group-policies delete-group-policy
    put-role-policy get-role-policy list-role-policies delete-role-policy
    attach-user-policy detach-user-policy list-attached-user-policies
    attach-group-policy detach-group-policy list-attached-group-policies
    attach-role-policy detach-role-policy list-attached-role-policies
    tag-user untag-user list-user-tags tag-role untag-role list-role-tags
    simulate-principal-policy
""".split()


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], sid: str | None = None, **extra: Any) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": "*", **extra}
    return {"Sid": sid, **statement} if sid else statement


def deny(action: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": "*", **extra}


@pytest.fixture(params=BACKENDS)
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The CLI on a store of each backend holding alice, the group devs and a role."""
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
        _people(cli)
        yield cli
    finally:
        dsn.cleanup()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The same on SQLite only, for the checks that do not depend on the backend."""
    cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=f"sqlite:///{tmp_path}/data/a.db"))
    _people(cli)
    return cli


def _people(cli: Cli) -> None:
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")
    cli.ok("iam create-group --group-name devs")
    cli.ok("iam add-user-to-group --group-name devs --user-name alice")
    cli.ok(f"iam create-role --role-name Deployer --trust {USER}")


def with_stdin(cli: Cli, argv: str, text: str) -> Result:
    args = tuple(shlex.split(argv))
    proc = subprocess.run(
        [str(AUTHBRIDGE), *args],
        cwd=cli.cwd,
        env=cli.env,
        input=text.encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Result(args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def write(cli: Cli, name: str, text: str) -> str:
    path = cli.cwd / name
    path.write_text(text)
    return f"file://{path}"


# -- managed policies ---------------------------------------------------------------------


def test_managed_policy_lifecycle_in_aws_shapes(cli_on: Cli) -> None:
    cli = cli_on
    v1 = write(cli, "v1.json", document(allow("iam:GetUser")))
    created = cli.json(
        f"iam create-policy --policy-name ReadIam --policy-document {v1}"
        " --path /team/ --description 'read IAM'"
    )["Policy"]
    arn = f"arn:aws:iam::{ACCOUNT}:policy/team/ReadIam"
    assert set(created) == {
        "PolicyName",
        "PolicyId",
        "Arn",
        "Path",
        "DefaultVersionId",
        "AttachmentCount",
        "PermissionsBoundaryUsageCount",
        "IsAttachable",
        "Description",
        "CreateDate",
        "UpdateDate",
    }
    assert created["Arn"] == arn and created["PolicyId"].startswith("ANPA")
    assert created["DefaultVersionId"] == "v1" and created["AttachmentCount"] == 0
    assert cli.json(f"iam get-policy --policy-arn {arn}") == {"Policy": created}

    listed = cli.json("iam list-policies --scope Local")["Policies"]
    assert listed == [created]
    aws = cli.json("iam list-policies --scope AWS")["Policies"]
    assert sorted(p["PolicyName"] for p in aws) == sorted(policy.AWS_MANAGED_POLICIES)
    assert {p["PolicyName"] for p in cli.json("iam list-policies")["Policies"]} == {
        *policy.AWS_MANAGED_POLICIES,
        "ReadIam",
    }
    assert cli.json("iam list-policies --only-attached") == {"Policies": []}

    v2 = cli.json(
        [
            "iam",
            "create-policy-version",
            "--policy-arn",
            arn,
            "--set-as-default",
            "--policy-document",
            document(allow(["iam:GetUser", "iam:ListUsers"])),
        ]
    )["PolicyVersion"]
    assert set(v2) == {"VersionId", "IsDefaultVersion", "CreateDate"}
    assert v2["VersionId"] == "v2" and v2["IsDefaultVersion"] is True
    got = cli.json(f"iam get-policy-version --policy-arn {arn} --version-id v1")["PolicyVersion"]
    assert got["Document"] == json.loads(document(allow("iam:GetUser")))
    assert got["IsDefaultVersion"] is False and got["VersionId"] == "v1"
    versions = cli.json(f"iam list-policy-versions --policy-arn {arn}")["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in versions] == [
        ("v2", True),
        ("v1", False),
    ]
    assert all("Document" not in v for v in versions)
    cli.ok(f"iam set-default-policy-version --policy-arn {arn} --version-id v1")
    assert cli.json(f"iam get-policy --policy-arn {arn}")["Policy"]["DefaultVersionId"] == "v1"
    cli.ok(f"iam delete-policy-version --policy-arn {arn} --version-id v2")
    assert len(cli.json(f"iam list-policy-versions --policy-arn {arn}")["Versions"]) == 1

    cli.ok(f"iam attach-user-policy --user-name alice --policy-arn {arn}")
    attached = cli.json("iam list-policies --only-attached --scope Local")["Policies"]
    assert [(p["PolicyName"], p["AttachmentCount"]) for p in attached] == [("ReadIam", 1)]
    line = cli.fails(f"iam delete-policy --policy-arn {arn}", "attached to user alice", "detach")
    assert line.startswith("policy ReadIam")
    cli.ok(f"iam detach-user-policy --user-name alice --policy-arn {arn}")
    cli.ok(f"iam delete-policy --policy-arn {arn}")
    assert cli.json("iam list-policies --scope Local") == {"Policies": []}


def test_managed_policy_text_output(cli: Cli) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:policy/ReadIam"
    cli.ok(
        [
            "iam",
            "create-policy",
            "--policy-name",
            "ReadIam",
            "--policy-document",
            document(allow("iam:GetUser")),
        ]
    )
    shown = cli.ok(f"iam get-policy --policy-arn {arn}").out
    assert shown.splitlines()[0].split() == ["PolicyName", "ReadIam"]
    assert f"Arn               {arn}" in shown
    table = cli.ok("iam list-policies --scope Local").out.splitlines()
    assert table[0].split() == list(
        ("PolicyName", "DefaultVersionId", "AttachmentCount", "UpdateDate", "Arn")
    )
    assert table[1].startswith("ReadIam") and table[1].endswith(arn)
    version = cli.ok(f"iam get-policy-version --policy-arn {arn} --version-id v1").out
    assert '"Action": "iam:GetUser"' in version and "IsDefaultVersion  true" in version
    r = cli.ok(
        [
            "iam",
            "create-policy-version",
            "--policy-arn",
            arn,
            "--policy-document",
            document(allow("iam:ListUsers")),
        ]
    )
    assert r.out == f"Created version v2 of policy {arn} (not the default).\n"
    assert cli.ok("iam list-policies --scope Local --only-attached").out == "No policies.\n"


# -- inline policies and attachments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"), [("user", "alice"), ("group", "devs"), ("role", "Deployer")]
)
def test_inline_and_attached_verbs_of_each_kind(cli: Cli, kind: str, name: str) -> None:
    who = f"--{kind}-name {name}"
    field = {"user": "UserName", "group": "GroupName", "role": "RoleName"}[kind]
    # JSON text, a file and stdin are all documents.
    cli.ok(
        [
            "iam",
            f"put-{kind}-policy",
            f"--{kind}-name",
            name,
            "--policy-name",
            "Inline",
            "--policy-document",
            document(allow("iam:GetUser")),
        ]
    )
    r = cli.ok(
        f"iam put-{kind}-policy {who} --policy-name FromFile --policy-document "
        + write(cli, "p.json", document(allow("iam:ListUsers")))
    )
    assert r.out == f"Put inline policy FromFile on {kind} {name}.\n"
    piped = with_stdin(
        cli,
        f"iam put-{kind}-policy {who} --policy-name Piped --policy-document -",
        document(deny("iam:DeleteUser")),
    )
    assert piped.rc == 0 and piped.err == "", piped

    got = cli.json(f"iam get-{kind}-policy {who} --policy-name piped")
    assert got == {
        field: name,
        "PolicyName": "Piped",
        "PolicyDocument": json.loads(document(deny("iam:DeleteUser"))),
    }
    assert cli.json(f"iam list-{kind}-policies {who}") == {
        "PolicyNames": ["FromFile", "Inline", "Piped"]
    }
    assert cli.ok(f"iam list-{kind}-policies {who}").out == "FromFile\nInline\nPiped\n"
    text = cli.ok(f"iam get-{kind}-policy {who} --policy-name Inline").out
    head = [line.split() for line in text.splitlines()[:2]]
    assert head == [[field, name], ["PolicyName", "Inline"]] and "iam:GetUser" in text
    cli.ok(f"iam delete-{kind}-policy {who} --policy-name Inline")
    cli.fails(
        f"iam get-{kind}-policy {who} --policy-name Inline",
        f"{kind} {name} has no inline policy named Inline",
        f"list-{kind}-policies",
    )

    mine = cli.json(
        [
            "iam",
            "create-policy",
            "--policy-name",
            f"Mine{kind}",
            "--policy-document",
            document(allow("iam:ListRoles")),
        ]
    )["Policy"]["Arn"]
    cli.ok(f"iam attach-{kind}-policy {who} --policy-arn {mine}")
    r = cli.ok(f"iam attach-{kind}-policy {who} --policy-arn {READ_ONLY}")
    assert r.out == f"Attached {READ_ONLY} to {kind} {name}.\n"
    cli.ok(f"iam attach-{kind}-policy {who} --policy-arn {READ_ONLY}")  # again: no change
    assert cli.json(f"iam list-attached-{kind}-policies {who}") == {
        "AttachedPolicies": [
            {"PolicyName": "IAMReadOnlyAccess", "PolicyArn": READ_ONLY},
            {"PolicyName": f"Mine{kind}", "PolicyArn": mine},
        ]
    }
    delete = {
        "user": "delete-user --user-name alice",
        "group": "delete-group --group-name devs",
        "role": "delete-role --role-name Deployer",
    }[kind]
    cli.fails(f"iam {delete}", "inline policies FromFile, Piped", "IAMReadOnlyAccess")
    cli.ok(f"iam detach-{kind}-policy {who} --policy-arn {mine}")
    cli.ok(f"iam detach-{kind}-policy {who} --policy-arn {READ_ONLY}")
    cli.fails(f"iam detach-{kind}-policy {who} --policy-arn {READ_ONLY}", "is not attached")
    assert cli.ok(f"iam list-attached-{kind}-policies {who}").out == (
        f"{kind.title()} {name} has no managed policies attached.\n"
    )


def test_recreated_user_inherits_no_policies(cli_on: Cli) -> None:
    cli = cli_on
    cli.ok(
        [
            "iam",
            "put-user-policy",
            "--user-name",
            "alice",
            "--policy-name",
            "Old",
            "--policy-document",
            document(allow("iam:*")),
        ]
    )
    cli.ok(f"iam attach-user-policy --user-name alice --policy-arn {READ_ONLY}")
    cli.fails("iam delete-user --user-name alice", "inline policies Old", "--force")
    cli.ok("iam delete-user --user-name alice --force")
    cli.ok("iam create-user --user-name alice")
    assert cli.json("iam list-user-policies --user-name alice") == {"PolicyNames": []}
    assert cli.json("iam list-attached-user-policies --user-name alice") == {"AttachedPolicies": []}
    result = cli.json(
        f"iam simulate-principal-policy --policy-source-arn {USER} --action-names iam:GetUser"
    )["EvaluationResults"][0]
    assert result["EvalDecision"] == "implicitDeny" and result["MatchedStatements"] == []


# -- tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), [("user", "alice"), ("role", "Deployer")])
def test_tag_verbs(cli: Cli, kind: str, name: str) -> None:
    who = f"--{kind}-name {name}"
    assert cli.json(f"iam list-{kind}-tags {who}") == {"Tags": []}
    assert cli.ok(f"iam list-{kind}-tags {who}").out == f"{kind.title()} {name} has no tags.\n"
    r = cli.ok(
        [
            "iam",
            f"tag-{kind}",
            f"--{kind}-name",
            name,
            "--tags",
            "Key=team,Value=platform",
            "--tags",
            '[{"Key": "env", "Value": "prod"}, {"Key": "cost", "Value": "a b"}]',
        ]
    )
    assert r.out == f"Tagged {kind} {name}.\n"
    assert cli.json(f"iam list-{kind}-tags {who}") == {
        "Tags": [
            {"Key": "cost", "Value": "a b"},
            {"Key": "env", "Value": "prod"},
            {"Key": "team", "Value": "platform"},
        ]
    }
    cli.ok(f"iam tag-{kind} {who} --tags Key=TEAM,Value=core")  # replaces "team"
    cli.ok(f"iam untag-{kind} {who} --tag-keys env --tag-keys absent")
    table = cli.ok(f"iam list-{kind}-tags {who}").out.splitlines()
    assert [line.split(None, 1) for line in table] == [
        ["Key", "Value"],
        ["TEAM", "core"],
        ["cost", "a b"],
    ]
    cli.fails(f"iam tag-{kind} {who} --tags Key=aws:x,Value=y", "reserved prefix aws:")
    cli.fails(f"iam tag-{kind} {who} --tags Key=team", "Tags[1]", "needs Key and Value")
    cli.fails(f"iam tag-{kind} --{kind}-name nobody --tags Key=a,Value=b", "does not exist")
    if kind == "user":
        assert cli.json("iam get-user --user-name alice")["User"]["Tags"] == [
            {"Key": "TEAM", "Value": "core"},
            {"Key": "cost", "Value": "a b"},
        ]


# -- simulation -----------------------------------------------------------------------------


def _simulation_story(cli: Cli) -> None:
    """alice: devs' group policy allows user admin; ReadOnly attached; an inline Deny."""
    cli.ok(
        [
            "iam",
            "put-group-policy",
            "--group-name",
            "devs",
            "--policy-name",
            "UserAdmin",
            "--policy-document",
            document(allow(["iam:CreateUser", "iam:DeleteUser", "iam:TagUser"], "ManageUsers")),
        ]
    )
    cli.ok(f"iam attach-user-policy --user-name alice --policy-arn {READ_ONLY}")
    no_delete = deny("iam:DeleteUser", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    own_tags = allow(
        "iam:UntagUser",
        "OwnTeam",
        Condition={"StringEquals": {"aws:PrincipalTag/team": "platform"}},
    )
    cli.ok(
        [
            "iam",
            "put-user-policy",
            "--user-name",
            "alice",
            "--policy-name",
            "Guard",
            "--policy-document",
            document(no_delete, own_tags),
        ]
    )


def test_simulate_allowed_explicit_deny_and_implicit_deny(cli_on: Cli) -> None:
    cli = cli_on
    _simulation_story(cli)
    base = f"iam simulate-principal-policy --policy-source-arn {USER}"
    results = cli.json(
        f"{base} --action-names iam:CreateUser --action-names iam:DeleteUser"
        " --action-names iam:GetUser --action-names iam:CreateRole"
    )["EvaluationResults"]
    by_action = {r["EvalActionName"]: r for r in results}
    assert [r["EvalActionName"] for r in results] == [
        "iam:CreateUser",
        "iam:DeleteUser",
        "iam:GetUser",
        "iam:CreateRole",
    ]
    assert all(r["EvalResourceName"] == "*" for r in results)
    assert set(results[0]) == {
        "EvalActionName",
        "EvalResourceName",
        "EvalDecision",
        "MatchedStatements",
        "MissingContextValues",
    }
    # Allowed by the group's inline policy, statement 0 (Sid ManageUsers).
    assert by_action["iam:CreateUser"]["EvalDecision"] == "allowed"
    assert by_action["iam:CreateUser"]["MatchedStatements"] == [
        {
            "SourcePolicyId": "group/devs/UserAdmin",
            "SourcePolicyType": "group",
            "StatementIndex": 0,
            "Sid": "ManageUsers",
        }
    ]
    # Denied by the user's inline Deny (no source address given: it applies).
    delete = by_action["iam:DeleteUser"]
    assert delete["EvalDecision"] == "explicitDeny"
    assert delete["MatchedStatements"] == [
        {"SourcePolicyId": "user/alice/Guard", "SourcePolicyType": "user", "StatementIndex": 0}
    ]
    assert delete["MissingContextValues"] == ["aws:SourceIp"]
    # Allowed by the attached AWS managed policy.
    get = by_action["iam:GetUser"]
    assert get["EvalDecision"] == "allowed"
    assert [(s["SourcePolicyId"], s["SourcePolicyType"]) for s in get["MatchedStatements"]] == [
        (READ_ONLY, "aws-managed")
    ]
    # Nothing allows it.
    assert by_action["iam:CreateRole"]["EvalDecision"] == "implicitDeny"
    assert by_action["iam:CreateRole"]["MatchedStatements"] == []

    # From inside 10/8 the Deny no longer applies; the group policy allows.
    inside = cli.json(
        f"{base} --action-names iam:DeleteUser --resource-arns {USER}"
        " --context-entries ContextKeyName=aws:SourceIp,ContextKeyValues=10.1.2.3,ContextKeyType=ip"
    )["EvaluationResults"]
    assert inside[0]["EvalDecision"] == "allowed" and inside[0]["EvalResourceName"] == USER
    assert inside[0]["MatchedStatements"][0]["SourcePolicyId"] == "group/devs/UserAdmin"
    assert inside[0]["MissingContextValues"] == []


def test_simulate_text_is_one_line_per_result(cli: Cli) -> None:
    _simulation_story(cli)
    r = cli.ok(
        f"iam simulate-principal-policy --policy-source-arn {USER}"
        " --action-names iam:CreateUser --action-names iam:DeleteUser --action-names iam:CreateRole"
        f" --resource-arns '*' --resource-arns {USER}"
    )
    lines = r.out.splitlines()
    assert len(lines) == 6
    assert lines[0] == "allowed       iam:CreateUser  on *  by group/devs/UserAdmin#0 (ManageUsers)"
    assert lines[2] == (
        "explicitDeny  iam:DeleteUser  on *  by user/alice/Guard#0  missing context: aws:SourceIp"
    )
    assert lines[5] == f"implicitDeny  iam:CreateRole  on {USER}  (no statement allows it)"


def test_simulate_fills_principal_tags_and_sessions(cli: Cli) -> None:
    _simulation_story(cli)
    base = f"iam simulate-principal-policy --policy-source-arn {USER} --action-names iam:UntagUser"
    assert cli.json(base)["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"
    cli.ok("iam tag-user --user-name alice --tags Key=team,Value=platform")
    allowed = cli.json(base)["EvaluationResults"][0]
    assert allowed["EvalDecision"] == "allowed"
    assert allowed["MatchedStatements"][0]["Sid"] == "OwnTeam"
    # A role session is simulated with its role's policies.
    cli.ok(
        [
            "iam",
            "put-role-policy",
            "--role-name",
            "Deployer",
            "--policy-name",
            "Self",
            "--policy-document",
            document(
                allow("iam:GetRole", Resource="arn:aws:iam::*:user/${aws:username}"),
                allow("eks:DescribeCluster"),
            ),
        ]
    )
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/alice"
    results = cli.json(
        f"iam simulate-principal-policy --policy-source-arn {session}"
        " --action-names eks:DescribeCluster --action-names iam:CreateUser"
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]
    assert results[0]["MatchedStatements"][0]["SourcePolicyId"] == "role/Deployer/Self"
    # aws:username is a user's: a role session resolves no such variable.
    own = cli.json(
        f"iam simulate-principal-policy --policy-source-arn {session}"
        f" --action-names iam:GetRole --resource-arns {USER}"
    )["EvaluationResults"][0]
    assert own["EvalDecision"] == "implicitDeny"
    # Group ARNs simulate the group's own policies.
    group = cli.json(
        f"iam simulate-principal-policy --policy-source-arn {GROUP} --action-names iam:TagUser"
    )["EvaluationResults"][0]
    assert group["EvalDecision"] == "allowed"
    # The principal's account is its ARN's, even when the store holds several.
    cli.ok("iam create-account --account-id 444455556666")
    mine = cli.json(
        f"iam simulate-principal-policy --policy-source-arn {USER} --action-names iam:TagUser"
    )["EvaluationResults"][0]
    assert mine["EvalDecision"] == "allowed"
    cli.fails(
        "iam simulate-principal-policy --policy-source-arn"
        " arn:aws:iam::444455556666:user/alice --action-names iam:TagUser",
        "user alice does not exist in account 444455556666",
    )


# -- refusals -------------------------------------------------------------------------------


def test_malformed_document_fails_before_the_store_is_opened(tmp_path: Path) -> None:
    store_file = tmp_path / "never" / "a.db"
    cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=f"sqlite:///{store_file}"))
    bad = document(allow("iam:GetUser"), {"Sid": "Two", "Effect": "Allow", "Action": "iam:X"})
    line = cli.fails(
        ["iam", "create-policy", "--policy-name", "P", "--policy-document", bad],
        "Statement[1] (Sid Two)",
    )
    assert "Resource" in line
    cli.fails(
        [
            "iam",
            "put-user-policy",
            "--user-name",
            "alice",
            "--policy-name",
            "P",
            "--policy-document",
            "{",
        ],
        "PolicyDocument",
    )
    cli.fails(
        "iam put-role-policy --role-name R --policy-name P --policy-document file://missing.json",
        "PolicyDocument: cannot read",
        "file://",
    )
    (tmp_path / "big.json").write_text(" " * (policy.MAX_TEXT_CHARS + 10))
    cli.fails(
        f"iam create-policy --policy-name P --policy-document file://{tmp_path}/big.json",
        "more than",
    )
    (tmp_path / "latin1.json").write_bytes(b'{"Version": "\xe9"}')
    cli.fails(
        f"iam create-policy --policy-name P --policy-document file://{tmp_path}/latin1.json",
        "not UTF-8",
    )
    r = with_stdin(cli, "iam create-policy --policy-name P --policy-document -", "[]")
    assert r.rc == 1 and "must be a JSON object" in r.err, r
    cli.fails(
        "iam simulate-principal-policy --policy-source-arn X --action-names iam:Get*",
        "ActionNames",
        "wildcards",
    )
    cli.fails(
        "iam simulate-principal-policy --policy-source-arn X --action-names iam:GetUser"
        " --context-entries ContextKeyName=aws:SourceIp,ContextKeyValues=nope,ContextKeyType=ip",
        "ContextEntries[1]",
        "not an IP address",
    )
    assert not store_file.parent.exists()


def test_refusals_are_one_line_with_hints(cli: Cli) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:policy/P"
    cli.ok(
        [
            "iam",
            "create-policy",
            "--policy-name",
            "P",
            "--policy-document",
            document(allow("iam:GetUser")),
        ]
    )
    cli.fails(
        [
            "iam",
            "create-policy",
            "--policy-name",
            "p",
            "--policy-document",
            document(allow("iam:GetUser")),
        ],
        "already exists",
        "case-insensitive",
    )
    for n in range(4):
        cli.ok(
            [
                "iam",
                "create-policy-version",
                "--policy-arn",
                arn,
                "--policy-document",
                document(allow(f"iam:Get{n}")),
            ]
        )
    cli.fails(
        [
            "iam",
            "create-policy-version",
            "--policy-arn",
            arn,
            "--policy-document",
            document(allow("iam:GetUser")),
        ],
        "5 versions",
        "delete-policy-version",
    )
    cli.fails(
        f"iam delete-policy-version --policy-arn {arn} --version-id v1",
        "default version",
        "set-default-policy-version",
    )
    cli.fails(f"iam get-policy-version --policy-arn {arn} --version-id 1", "VersionId")
    cli.fails("iam get-policy --policy-arn arn:aws:iam::aws:policy/Nope", "ships")
    cli.fails(f"iam delete-policy --policy-arn {READ_ONLY}", "cannot be deleted", "create-policy")
    cli.fails("iam get-policy --policy-arn not-an-arn", "PolicyArn", "is not a policy ARN")
    cli.fails(
        f"iam get-policy --policy-arn arn:aws:iam::{ACCOUNT}:policy/Missing",
        "does not exist",
        "list-policies",
    )
    for n in range(10):
        cli.ok(
            [
                "iam",
                "create-policy",
                "--policy-name",
                f"A{n}",
                "--policy-document",
                document(allow("iam:GetUser")),
            ]
        )
        cli.ok(f"iam attach-role-policy --role-name Deployer --policy-arn {arn[:-1]}A{n}")
    cli.fails(
        f"iam attach-role-policy --role-name Deployer --policy-arn {arn}",
        "10 managed policies",
        "detach-role-policy",
    )
    cli.fails(
        f"iam simulate-principal-policy --policy-source-arn arn:aws:iam::{ACCOUNT}:user/nobody"
        " --action-names iam:GetUser",
        "user nobody does not exist",
    )
    cli.fails(
        f"iam simulate-principal-policy --policy-source-arn arn:aws:iam::{ACCOUNT}:root"
        " --action-names iam:GetUser",
        "PolicySourceArn",
    )
    cli.fails(
        f"iam simulate-principal-policy --policy-source-arn {USER} --action-names iam:GetUser"
        " --context-entries ContextKeyName=aws:username,ContextKeyValues=admin",
        "filled from the store",
    )
    cli.usage_error("iam simulate-principal-policy --policy-source-arn X", "--action-names")
    cli.usage_error("iam list-policies --scope Mine", "--scope")


def test_every_policy_verb_is_an_iam_command_with_an_example() -> None:
    from authbridge.cli.iam import iam

    for verb in POLICY_VERBS:
        cmd = iam.commands[verb]
        assert cmd.help and "Example:" in cmd.help and f"authbridge iam {verb}" in cmd.help, verb
        assert "--output" in [opt for param in cmd.params for opt in param.opts], verb


def test_help_of_a_generated_verb(cli: Cli) -> None:
    r = cli.ok("iam attach-group-policy --help")
    assert "Attach a managed policy to a group" in r.out and "--group-name" in r.out
    assert "authbridge iam attach-group-policy --group-name devs" in r.out
