"""``authbridge access …`` as real subprocesses, on both store backends, and its input checks.

Covers: the EKS JSON shapes of every command; entries bound to the unique id
through the CLI (a re-created namesake); the username and group checks of the
mapping file (reserved prefixes, templates per principal kind) refusing before
anything is written; the policy names and ARNs, each an authbridge ClusterRole
of rbac/access-policies.yaml; authentication modes; and property tests of the
pure input checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError
from authbridge.iam import access
from authbridge.mapping import templates
from authbridge.rbac.policies import ACCESS_POLICIES_FILE
from tests.conftest import BACKENDS, _dsn_for
from tests.test_cli import ACCOUNT, Cli, clean_env

USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Deploy"
BASE = "access {} --cluster-id prod --principal-arn {}"


@pytest.fixture(params=BACKENDS)
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The CLI on an empty store of each backend (as tests.test_cli's cli_env)."""
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        yield Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
    finally:
        dsn.cleanup()


def _setup(cli: Cli) -> None:
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")
    cli.ok(f"iam create-role --role-name Deploy --trust {USER}")


def test_entry_lifecycle_in_eks_shapes(cli_on: Cli) -> None:
    cli = cli_on
    _setup(cli)
    user_id = cli.json("iam get-user --user-name alice")["User"]["UserId"]
    created = cli.json(BASE.format("create-entry", USER) + " --group devs --username alice")
    entry = created["accessEntry"]
    assert set(entry) == {
        "clusterName",
        "principalArn",
        "kubernetesGroups",
        "accessEntryArn",
        "createdAt",
        "modifiedAt",
        "tags",
        "username",
        "type",
    }
    assert entry["clusterName"] == "prod" and entry["principalArn"] == USER
    assert entry["kubernetesGroups"] == ["devs"] and entry["username"] == "alice"
    assert entry["type"] == "STANDARD" and entry["tags"] == {}
    assert entry["accessEntryArn"].endswith(f"/prod/user/{user_id}")
    assert cli.json(BASE.format("describe-entry", USER)) == created
    role = cli.json(BASE.format("create-entry", ROLE))["accessEntry"]
    assert role["username"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/{{{{SessionName}}}}"
    assert cli.json("access list-entries --cluster-id prod") == {"accessEntries": [ROLE, USER]}
    assert cli.json("access list-entries --cluster-id dev") == {"accessEntries": []}

    assoc = cli.json(
        BASE.format("associate-policy", USER)
        + " --policy edit --scope namespace --namespace team-* --namespace ci"
    )
    assert assoc["clusterName"] == "prod" and assoc["principalArn"] == USER
    policy = assoc["associatedAccessPolicy"]
    assert policy["policyArn"] == access.POLICY_ARN_PREFIX + "AmazonEKSEditPolicy"
    assert policy["accessScope"] == {"type": "namespace", "namespaces": ["team-*", "ci"]}
    cli.ok(BASE.format("associate-policy", USER) + " --policy view --scope cluster")
    listed = cli.json(BASE.format("list-associated-policies", USER))
    assert [p["policyArn"].rsplit("/", 1)[1] for p in listed["associatedAccessPolicies"]] == [
        "AmazonEKSEditPolicy",
        "AmazonEKSViewPolicy",
    ]
    assert cli.json(BASE.format("disassociate-policy", USER) + " --policy view") == {}
    cli.fails(BASE.format("disassociate-policy", USER) + " --policy view", "is not associated")
    text = cli.ok(BASE.format("list-associated-policies", USER)).out
    assert "AmazonEKSEditPolicy" in text and "team-*, ci" in text
    assert cli.json(BASE.format("delete-entry", USER)) == {}
    cli.fails(BASE.format("describe-entry", USER), "no access entry", "list-entries")
    assert cli.json("access list-entries --cluster-id prod") == {"accessEntries": [ROLE]}


def test_recreated_namesake_does_not_inherit_an_entry(cli_on: Cli) -> None:
    cli = cli_on
    _setup(cli)
    old_id = cli.json("iam get-user --user-name alice")["User"]["UserId"]
    cli.ok(BASE.format("create-entry", USER))
    cli.ok("iam delete-user --user-name alice")
    cli.ok("iam create-user --user-name alice")
    # Still shown, bound to the deleted user's id; a new one waits for its deletion.
    shown = cli.json(BASE.format("describe-entry", USER))["accessEntry"]
    assert shown["accessEntryArn"].endswith(old_id)
    cli.fails(BASE.format("create-entry", USER), "deleted principal", "delete-entry")


def test_entry_with_reserved_prefix_is_refused_and_nothing_written(cli_on: Cli) -> None:
    cli = cli_on
    _setup(cli)
    for extra, field in [
        ("--username system:admin", "username"),
        ("--username EKS:{{AccountID}}", "username"),
        ("--group devs --group system:masters", "kubernetesGroups[1]"),
        ("--group authbridge-internal:x", "kubernetesGroups[0]"),
    ]:
        cli.fails(BASE.format("create-entry", USER) + " " + extra, field, "reserved prefix")
    # Templates follow the section rules: no session name for a user, allowed for a role.
    cli.fails(
        BASE.format("create-entry", USER) + " --username u-{{SessionName}}",
        "username",
        "mapRoles only",
    )
    cli.fails(BASE.format("create-entry", USER) + " --username {{Nope}}", "unknown template")
    assert cli.json("access list-entries --cluster-id prod") == {"accessEntries": []}
    cli.ok(BASE.format("create-entry", ROLE) + " --username deploy:{{SessionName}}")


def test_bad_input_names_the_field(cli_on: Cli) -> None:
    cli = cli_on
    _setup(cli)
    cli.fails("access create-entry --cluster-id 'bad id' --principal-arn " + USER, "clusterName")
    cli.fails(BASE.format("create-entry", "arn:aws:iam::1:user/x"), "principalArn")
    cli.fails(BASE.format("create-entry", USER) + " --type EC2_LINUX", "type", "STANDARD")
    cli.ok(BASE.format("create-entry", USER))
    cli.fails(BASE.format("associate-policy", USER) + " --policy root --scope cluster", "policyArn")
    cli.fails(
        BASE.format("associate-policy", USER) + " --policy view --scope namespace",
        "accessScope.namespaces",
        "--namespace",
    )
    cli.usage_error(BASE.format("associate-policy", USER) + " --policy view --scope account")
    assert cli.json(BASE.format("list-associated-policies", USER))["associatedAccessPolicies"] == []


def test_policies_are_the_shipped_cluster_roles(cli_on: Cli) -> None:
    doc = cli_on.json("access list-policies")
    shipped = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all(ACCESS_POLICIES_FILE.read_text())
        if isinstance(d, dict) and d.get("kind") == "ClusterRole"
    }
    assert len(doc["accessPolicies"]) == 5
    for p in doc["accessPolicies"]:
        assert p["arn"] == access.POLICY_ARN_PREFIX + p["name"]
        assert p["clusterRole"] in shipped


def test_authentication_mode(cli_on: Cli) -> None:
    cli = cli_on
    shape = {"cluster": {"name": "prod", "accessConfig": {"authenticationMode": "API"}}}
    assert cli.json("access describe-cluster-config --cluster-id prod") == {
        "cluster": {"name": "prod", "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"}}
    }
    assert cli.json("access update-cluster-config --cluster-id prod --authentication-mode API") == (
        shape
    )
    assert cli.json("access describe-cluster-config --cluster-id prod") == shape
    cli.fails(
        "access update-cluster-config --cluster-id prod --authentication-mode config_map",
        "authenticationMode",
        "CONFIG_MAP",
    )
    assert cli.json("access describe-cluster-config --cluster-id prod") == shape


# -- the pure checks, for any input ------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["system:x", "Eks:{{AccountID}}", "{{SessionName}}", "a{{PrincipalID}}", "{{x}}", ""]
)


@given(kind=st.sampled_from(["user", "role"]), username=st.none() | _text, groups=st.lists(_text))
def test_entry_names_are_accepted_only_when_safe(
    kind: str, username: str | None, groups: list[str]
) -> None:
    try:
        templates.check_access_entry(kind, username, tuple(groups))
    except InputError as e:
        assert e.field == "username" or e.field.startswith("kubernetesGroups[")
        return
    for text in [username, *groups]:
        if text is None:
            continue
        assert 0 < len(text) <= templates.MAX_NAME_LENGTH and text.isprintable()
        assert templates.reserved_prefix(templates.literal_prefix(text)) is None
        assert not templates.template_problems(text, "mapRoles" if kind == "role" else "mapUsers")


@given(kind=st.text(max_size=12), namespaces=st.lists(st.text(max_size=70), max_size=5))
def test_scope_is_checked_for_any_input(kind: str, namespaces: list[str]) -> None:
    try:
        scope, checked = access.scope(kind, namespaces)
    except InputError as e:
        assert e.field.startswith("accessScope.")
        return
    assert scope == kind
    assert (scope == "cluster") == (not checked)
    assert all(0 < len(n) <= 63 and n == n.lower() for n in checked)


@given(st.text(max_size=80))
def test_policy_names_are_only_the_known_ones(value: str) -> None:
    try:
        name = access.policy_name(value)
    except InputError as e:
        assert e.field == "policyArn"
        return
    assert name in access.POLICY_CLUSTER_ROLES
