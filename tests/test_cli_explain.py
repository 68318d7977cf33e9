"""``authbridge access explain`` as real subprocesses, on both store backends.

Covers: by principal and by permission in JSON (the shapes of docs/reference.md)
and as text; the RBAC source (rendered without --kubeconfig, read from the fake
API server with it, rendered with the reason when the server cannot be reached);
no mapping file at the configured path (the access entries alone) vs a --mapping
that does not exist or is invalid; the usage errors (both questions, neither,
--verb without --resource, --kubeconfig with several clusters) and the refusals
naming the field (a bad verb, namespace, cluster, ARN, an unknown principal);
API mode refused; --help; and a hostile value (a terminal escape) shown
escaped, never raw.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, _dsn_for
from tests.fakekube import FakeKube
from tests.test_cli import ACCOUNT, Cli, clean_env

ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
DEVS = f"arn:aws:iam::{ACCOUNT}:group/devs"
MAPPING = f"""\
clusterID: prod
mapRoles:
  - rolearn: {ADMIN}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapGroups:
  - grouparn: {DEVS}
    groups: [devs]
bindings:
  - group: "authbridge:admins"
    clusterRole: cluster-admin
  - group: devs
    clusterRole: "authbridge:view"
    namespaces: [dev]
"""


@pytest.fixture(params=BACKENDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    dsn = _dsn_for(str(request.param), tmp_path)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    env = clean_env(
        AUTHBRIDGE_STORE=dsn.value,
        AUTHBRIDGE_CLUSTER_IDS="prod,dev",
        AUTHBRIDGE_MAPPING_FILE=str(tmp_path / "mapping.yaml"),
    )
    try:
        c = Cli(tmp_path, env, str(request.param))
        c.ok(f"iam create-account --account-id {ACCOUNT}")
        c.ok("iam create-user --user-name alice")
        c.ok("iam create-user --user-name bob")
        c.ok("iam create-group --group-name devs")
        c.ok("iam add-user-to-group --group-name devs --user-name alice")
        c.ok(f"iam create-role --role-name Admin --path /platform/ --trust {DEVS}")
        c.ok(f"access create-entry --cluster-id prod --principal-arn {BOB} --group bobs")
        c.ok(
            f"access associate-policy --cluster-id prod --principal-arn {BOB} --policy edit"
            " --scope namespace --namespace dev"
        )
        yield c
    finally:
        dsn.cleanup()


def test_by_principal_json_and_text(cli: Cli) -> None:
    doc = cli.json(f"access explain --principal-arn {ALICE}")
    assert doc["principal"]["arn"] == ALICE and doc["principal"]["iamGroups"] == [DEVS]
    assert doc["assumableRoles"] == [{"roleArn": ADMIN, "trust": {"type": "group", "arn": DEVS}}]
    prod, dev = doc["clusters"]
    assert prod["clusterId"] == "prod" and prod["authenticated"] is True
    assert prod["kubernetes"]["groups"] == ["devs"]
    assert prod["matchedRule"] == {"section": "mapGroups", "index": 0, "arn": DEVS}
    assert prod["rbac"]["source"] == "rendered"
    (grant,) = prod["grants"]
    assert grant["binding"]["namespace"] == "dev" and grant["binding"]["source"] == "bindings[1]"
    assert grant["role"] == {"kind": "ClusterRole", "name": "authbridge:view"}
    assert grant["iamGroup"] == DEVS
    assert dev["authenticated"] is False and "is for cluster prod" in dev["reason"]
    text = cli.ok(f"access explain --principal-arn {ALICE} --cluster-id prod").out
    assert f"Principal {ALICE} (user" in text
    assert "Roles it may assume:\n  " + ADMIN in text
    assert "RoleBinding dev/" in text and "-> ClusterRole authbridge:view" in text
    assert "get,list,watch on " in text


def test_by_permission_json_and_text(cli: Cli) -> None:
    doc = cli.json("access explain --verb delete --resource pods --namespace dev --cluster-id prod")
    assert doc["request"] == {
        "verb": "delete",
        "resource": "pods",
        "apiGroup": "",
        "namespace": "dev",
        "name": None,
    }
    (prod,) = doc["clusters"]
    reached = {p["arn"]: p for p in prod["principals"]}
    assert set(reached) == {BOB, ADMIN}  # alice only views
    assert reached[BOB]["grants"][0]["binding"]["accessEntry"] == {
        "principalArn": BOB,
        "policy": "AmazonEKSEditPolicy",
    }
    assert reached[ADMIN]["assumableBy"] == [
        {"userArn": ALICE, "trust": {"type": "group", "arn": DEVS}}
    ]
    assert {"arn": DEVS, "via": f"trusted by role {ADMIN}"} in prod["iamGroups"]
    text = cli.ok("access explain --verb delete --resource pods --namespace dev").out
    assert "delete pods (core API group) in namespace dev" in text
    assert "Cluster prod (RBAC rendered" in text and "Cluster dev (RBAC rendered" in text
    assert "No IAM principal reaches it." in text  # dev: the file is prod's, no entries
    assert BOB in text and "authbridge:edit" in text


def test_rbac_is_read_from_the_cluster_when_a_kubeconfig_is_given(
    cli: Cli, refused_port: int
) -> None:
    with FakeKube(namespaces=("default", "dev")) as kube:
        kube.put(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "alice-nodes"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "Group", "name": "devs"}],
            }
        )
        kubeconfig = kube.write_kubeconfig(cli.cwd / "kubeconfig")
        doc = cli.json(
            f"access explain --verb delete --resource nodes --cluster-id prod"
            f" --kubeconfig {kubeconfig}"
        )
        (prod,) = doc["clusters"]
        assert prod["rbac"]["source"] == "cluster" and kube.url in prod["rbac"]["where"]
        assert [p["arn"] for p in prod["principals"]] == [ALICE]
        assert prod["principals"][0]["grants"][0]["binding"]["name"] == "alice-nodes"
        served = kube.url
    # A server that cannot be reached: rendered instead, and the answer says why.
    url = f"http://127.0.0.1:{refused_port}"
    kubeconfig.write_text(kubeconfig.read_text().replace(served, url))
    doc = cli.json(
        f"access explain --principal-arn {ALICE} --cluster-id prod --kubeconfig {kubeconfig}"
    )
    rbac = doc["clusters"][0]["rbac"]
    assert rbac["source"] == "rendered"
    assert "cannot read RBAC from" in rbac["notes"][0] and url in rbac["notes"][0]


def test_no_mapping_file_means_the_entries_alone(cli: Cli) -> None:
    (cli.cwd / "mapping.yaml").unlink()
    r = cli.run(["access", "explain", "--principal-arn", BOB, "-o", "json", "--cluster-id", "prod"])
    assert r.rc == 0, r
    assert "no mapping file at" in r.err and "access entries alone decide" in r.err
    prod = r.json()["clusters"][0]
    assert prod["matchedRule"]["section"] == "accessEntry"
    line = cli.fails(
        f"access explain --principal-arn {BOB} --mapping {cli.cwd / 'missing.yaml'}",
        "does not exist",
    )
    assert "--mapping" in line
    (cli.cwd / "bad.yaml").write_text("mapRoles: 3\n")
    cli.fails(f"access explain --principal-arn {BOB} --mapping {cli.cwd / 'bad.yaml'}", "invalid")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ("access explain", "pass --principal-arn ARN, or --verb V --resource R"),
        (f"access explain --principal-arn {ALICE} --verb get", "ask different questions"),
        ("access explain --verb get", "--resource is missing"),
        ("access explain --resource pods --namespace dev", "--verb is missing"),
        ("access explain --verb get --resource pods --kubeconfig k", "one --cluster-id"),
        ("access explain --verb get --resource pods -o yaml", "Invalid value for '-o'"),
    ],
)
def test_usage_errors(cli: Cli, argv: str, says: str) -> None:
    cli.usage_error(argv, says)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ("access explain --verb GET --resource pods", "verb: 'GET' is not a Kubernetes verb"),
        ("access explain --verb get --resource pods --namespace Dev", "namespace: 'Dev'"),
        ("access explain --verb get --resource Pods", "resource: 'Pods' is not a resource"),
        ("access explain --verb get --resource pods --cluster-id staging", "clusterId: staging"),
        ("access explain --principal-arn nope", "arn"),
        (f"access explain --principal-arn {ACCOUNT}", "arn"),
        (f"access explain --principal-arn arn:aws:iam::{ACCOUNT}:user/ghost", "no IAM user"),
        (f"access explain --principal-arn {DEVS}", "group ARN"),
    ],
)
def test_refusals_name_the_field(cli: Cli, argv: str, says: str) -> None:
    cli.fails(argv, says)


def test_a_terminal_escape_is_shown_escaped(cli: Cli) -> None:
    r = cli.run(["access", "explain", "--verb", "get\x1b[2J", "--resource", "pods"])
    assert r.rc == 1 and "\x1b" not in r.err and "\\x1b" in r.err, r


def test_api_mode_is_refused(cli: Cli) -> None:
    cli.fails(
        f"access explain --principal-arn {ALICE} --endpoint https://127.0.0.1:1",
        "needs store access",
    )


def test_help() -> None:
    c = Cli(Path.cwd(), clean_env())
    text = c.ok("access explain --help").out
    assert "--principal-arn" in text and "--verb" in text and "--kubeconfig" in text
    assert "authbridge access explain --verb delete --resource deployments" in text
