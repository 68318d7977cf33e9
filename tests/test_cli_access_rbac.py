"""Access entries through the CLI as real subprocesses: RBAC, ``mapping export`` / ``import``.

Covers: ``rbac apply --cluster-id`` renders entries' policies into real
objects in the fake API server beside the file's, and ``rbac plan`` after a
disassociation shows the deletion and the lockout refusal; ``mapping export``
then ``mapping import`` into another cluster gives the same entries (on both
backends); import's dry run changes nothing; a hostile import that hands one
entry another entry's group is refused naming the field, before anything is
written; what a file holds that entries cannot is refused in several lines,
or left out with ``--skip-unsupported``; ``--cluster-id`` without a store
says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from authbridge.iam.access import entry_group
from tests.conftest import BACKENDS, _dsn_for
from tests.fakekube import FakeKube
from tests.test_cli import ACCOUNT, Cli, clean_env
from tests.test_cli_rbac import RULES, env

USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci/Deploy"


@pytest.fixture(params=BACKENDS)
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        yield Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
    finally:
        dsn.cleanup()


def _entries(cli: Cli) -> None:
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")
    cli.ok(f"iam create-role --role-name Deploy --path /ci/ --trust {USER}")
    cli.ok(f"access create-entry --cluster-id prod --principal-arn {ROLE} --group deployers")
    cli.ok(
        f"access associate-policy --cluster-id prod --principal-arn {ROLE} --policy edit"
        " --scope namespace --namespace team-* --namespace dev"
    )
    cli.ok(f"access create-entry --cluster-id prod --principal-arn {USER} --username alice")
    cli.ok(
        f"access associate-policy --cluster-id prod --principal-arn {USER}"
        " --policy cluster-admin --scope cluster"
    )


def test_export_then_import_into_another_cluster(cli_on: Cli) -> None:
    cli = cli_on
    _entries(cli)
    exported = cli.ok("mapping export --cluster-id prod --output-file prod.yaml")
    assert "wrote prod.yaml (2 access entries)" in exported.out
    cli.ok("mapping check prod.yaml")  # a valid mapping file
    text = (cli.cwd / "prod.yaml").read_text()
    (cli.cwd / "staging.yaml").write_text(text.replace('clusterID: "prod"', 'clusterID: "staging"'))
    dry = cli.json("mapping import staging.yaml --dry-run")
    assert dry["created"] == [ROLE, USER] and dry["dryRun"] is True
    assert cli.json("access list-entries --cluster-id staging")["accessEntries"] == []
    done = cli.ok("mapping import staging.yaml")
    assert f"+ {ROLE}: created" in done.out
    assert "cluster staging: 2 created, 0 updated, 0 deleted, 0 unchanged." in done.out
    again = cli.json("mapping export --cluster-id staging")["mapping"]
    body = lambda t: t[t.index("clusterID") :].split("\n", 1)[1]  # noqa: E731
    assert body(again) == body(text)
    policies = cli.json(
        f"access list-associated-policies --cluster-id staging --principal-arn {ROLE}"
    )["associatedAccessPolicies"]
    assert [(p["policyArn"].rsplit("/", 1)[1], p["accessScope"]) for p in policies] == [
        ("AmazonEKSEditPolicy", {"type": "namespace", "namespaces": ["team-*", "dev"]})
    ]
    unchanged = cli.ok("mapping import staging.yaml")
    assert "0 created, 0 updated, 0 deleted, 2 unchanged" in unchanged.out


def test_import_cannot_hand_an_entry_another_entrys_group(cli_on: Cli) -> None:
    """Granting alice the Deploy entry's group would give her Deploy's RBAC."""
    cli = cli_on
    _entries(cli)
    (cli.cwd / "evil.yaml").write_text(
        f"""clusterID: prod
mapUsers:
  - userarn: {USER}
    username: alice
    groups: ["{entry_group(ROLE)}"]
    allowReservedPrefixes: true
"""
    )
    before = cli.json("mapping export --cluster-id prod")["mapping"]
    cli.fails(
        "mapping import evil.yaml --prune",
        "mapUsers[0].kubernetesGroups[0]",
        'reserved prefix "authbridge-internal:"',
    )
    assert cli.json("mapping export --cluster-id prod")["mapping"] == before


def test_import_refuses_unsupported_parts_in_several_lines(cli_on: Cli) -> None:
    cli = cli_on
    _entries(cli)
    (cli.cwd / "m.yaml").write_text(
        f"""clusterID: prod
mapUsers:
  - {{userarn: "{USER}", username: alice}}
mapAccounts: ["{ACCOUNT}"]
"""
    )
    r = cli.run("mapping import m.yaml")
    assert r.rc == 1 and r.out == ""
    assert r.err.splitlines() == [
        "authbridge: m.yaml cannot be imported (1 problem):",
        "  m.yaml: mapAccounts[0]: access entries are per IAM user or role; keep mapAccounts"
        " in a mapping file",
        "  hint: pass --skip-unsupported to import the entries and leave the rest out",
    ]
    skipped = cli.run("mapping import m.yaml --skip-unsupported --prune -o json")
    assert skipped.rc == 0, skipped
    assert "authbridge: left out mapAccounts[0]" in skipped.err
    assert skipped.json()["deleted"] == [ROLE] and skipped.json()["updated"] == [USER]


def test_rbac_apply_renders_entries_and_plan_guards_the_lockout(tmp_path: Path) -> None:
    with FakeKube(namespaces=("default", "dev", "team-a", "team-b"), rules=RULES) as kube:
        cli = Cli(tmp_path, env(tmp_path, KUBECONFIG=str(kube.write_kubeconfig(tmp_path / "kc"))))
        _entries(cli)
        (tmp_path / "rbac").mkdir()
        (tmp_path / "rbac" / "mapping.yaml").write_text(
            "mapRoles: []\nbindings:\n  - {group: readers, clusterRole: view}\n"
        )
        applied = cli.ok("rbac apply --prune --cluster-id prod")
        assert "applied 5 changes (5 created)" in applied.out, applied
        bindings = {
            (k[1], obj["roleRef"]["name"], obj["subjects"][0]["name"])
            for k, obj in kube.snapshot().items()
            if k[0] in ("rolebindings", "clusterrolebindings")
        }
        assert bindings == {
            ("", "view", "readers"),
            ("", "authbridge:cluster-admin", entry_group(USER)),
            ("dev", "authbridge:edit", entry_group(ROLE)),
            ("team-a", "authbridge:edit", entry_group(ROLE)),
            ("team-b", "authbridge:edit", entry_group(ROLE)),
        }
        cli.ok(
            f"access disassociate-policy --cluster-id prod --principal-arn {USER}"
            " --policy cluster-admin"
        )
        plan = cli.run("rbac plan --prune --cluster-id prod")
        assert plan.rc == 2, plan
        assert "- ClusterRoleBinding" in plan.out
        assert "! apply would refuse this plan: no identity in the mapping is bound to" in plan.out
        before = kube.snapshot()
        cli.fails("rbac apply --prune --cluster-id prod", "--allow-lockout")
        assert kube.snapshot() == before


def test_cluster_id_without_a_store_says_so(tmp_path: Path) -> None:
    cli = Cli(tmp_path, clean_env())
    (tmp_path / "m.yaml").write_text("mapRoles: []\n")
    cli.fails(
        "rbac render --mapping m.yaml --cluster-id prod",
        "there is no store to read its access entries from",
        "--store",
    )
    assert not (tmp_path / "data").exists()  # and none was made
    plain = cli.ok("rbac render --mapping m.yaml")
    assert "no objects" in plain.out
