"""``authbridge iam`` OIDC provider verbs and trust policy documents, as real subprocesses.

Covers, in store mode on each backend: create (repeated and comma-separated
client ids, ``--ca-file``), get, list, add/remove a client id, delete, in
``aws iam`` JSON shapes and text; ``create-role --assume-role-policy-document
file://…`` trusting the provider, ``get-role`` showing the document,
``update-assume-role-policy``, and ``--trust`` writing the shorthand document.
Hostile input, each one line naming the field and refused before the store
is opened where the CLI can tell: an http URL, a client id with a space, a
CA file holding a private key, a missing or oversized CA file, a malformed
or wildcard trust document, both ``--trust`` and a document (a usage error),
a provider ARN of another account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from authbridge import pki
from tests.conftest import BACKENDS, _dsn_for
from tests.test_cli import ACCOUNT, Cli, clean_env

KUBE_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/kube.prod.example:6443/issuer"
GITHUB_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def trust_for(provider_arn: str, sub: str) -> dict[str, object]:
    key = provider_arn.split("oidc-provider/", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{key}:aud": "sts.amazonaws.com"},
                    "StringLike": {f"{key}:sub": sub},
                },
            }
        ],
    }


@pytest.fixture(params=BACKENDS)
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
        cli.ok(f"iam create-account --account-id {ACCOUNT}")
        yield cli
    finally:
        dsn.cleanup()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=f"sqlite:///{tmp_path}/data/a.db"))
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    return cli


def test_provider_verbs_and_a_role_trusting_github(cli_on: Cli, tmp_path: Path) -> None:
    ca = tmp_path / "kube-ca.pem"
    ca.write_bytes(pki.new_ca("kube").cert_pem)
    made = cli_on.json(
        "iam create-open-id-connect-provider --url https://kube.prod.example:6443/issuer"
        f" --client-id-list authbridge,sts --client-id-list extra --ca-file {ca}"
    )
    assert made == {"OpenIDConnectProviderArn": KUBE_ARN, "Tags": []}
    github = cli_on.ok(
        "iam create-open-id-connect-provider --url https://token.actions.githubusercontent.com"
        " --client-id-list sts.amazonaws.com"
    )
    assert github.out == f"Created OIDC provider {GITHUB_ARN}.\n"
    listed = cli_on.json("iam list-open-id-connect-providers")
    assert listed == {"OpenIDConnectProviderList": [{"Arn": KUBE_ARN}, {"Arn": GITHUB_ARN}]}
    arn = f"--open-id-connect-provider-arn {KUBE_ARN}"
    cli_on.ok(f"iam remove-client-id-from-open-id-connect-provider {arn} --client-id extra")
    cli_on.ok(f"iam add-client-id-to-open-id-connect-provider {arn} --client-id more")
    shown = cli_on.json(f"iam get-open-id-connect-provider {arn}")
    assert shown["Url"] == "kube.prod.example:6443/issuer"
    assert shown["ClientIDList"] == ["authbridge", "sts", "more"]
    assert len(shown["CaCertificateFingerprints"]) == 1
    text = cli_on.ok(f"iam get-open-id-connect-provider {arn}").out
    assert text.startswith("Url ") and "more" in text

    trust = trust_for(GITHUB_ARN, "repo:octo-org/octo-repo:ref:refs/heads/main")
    (tmp_path / "trust.json").write_text(json.dumps(trust))
    role = cli_on.json(
        f"iam create-role --role-name Deploy --assume-role-policy-document file://{tmp_path}/trust.json"
    )["Role"]
    assert role["AssumeRolePolicyDocument"] == trust and role["Trust"] == []
    text = cli_on.ok("iam get-role --role-name Deploy").out
    assert "AssumeRolePolicyDocument" in text and "repo:octo-org/octo-repo" in text
    trust2 = trust_for(GITHUB_ARN, "repo:octo-org/*:environment:prod")
    updated = cli_on.json(
        f"iam update-assume-role-policy --role-name Deploy --policy-document '{json.dumps(trust2)}'"
    )
    assert updated["Role"]["AssumeRolePolicyDocument"] == trust2
    cli_on.ok("iam delete-role --role-name Deploy")
    assert cli_on.ok(f"iam delete-open-id-connect-provider {arn}").out == (
        f"Deleted OIDC provider {KUBE_ARN}.\n"
    )
    cli_on.fails(f"iam get-open-id-connect-provider {arn}", "does not exist")


def test_trust_flags_write_the_shorthand_document(cli: Cli) -> None:
    cli.ok("iam create-user --user-name alice")
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    role = cli.json(f"iam create-role --role-name Admin --trust {alice}")["Role"]
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": alice}, "Action": "sts:AssumeRole"}],
    }


def test_hostile_provider_input_is_refused_naming_the_field(cli: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    ca = pki.new_ca("x")
    key_file.write_bytes(ca.cert_pem + ca.key_pem)
    big = tmp_path / "big.pem"
    big.write_bytes(b"A" * (70 * 1024))
    base = "iam create-open-id-connect-provider"
    cli.fails(f"{base} --url http://kube.example --client-id-list a", "Url", "https://")
    cli.fails(f"{base} --url https://u:p@kube.example --client-id-list a", "Url", "password")
    cli.fails(f"{base} --url https://kube.example --client-id-list 'has space'", "ClientIDList[0]")
    cli.fails(
        f"{base} --url https://kube.example --client-id-list a --ca-file {key_file}",
        "CaBundle",
        "private key",
    )
    cli.fails(
        f"{base} --url https://kube.example --client-id-list a --ca-file {tmp_path}/nope.pem",
        "CaBundle",
        "cannot read",
    )
    cli.fails(
        f"{base} --url https://kube.example --client-id-list a --ca-file {big}",
        "CaBundle",
        "more than",
    )
    assert cli.json("iam list-open-id-connect-providers") == {"OpenIDConnectProviderList": []}
    cli.fails(
        "iam get-open-id-connect-provider --open-id-connect-provider-arn"
        " arn:aws:iam::444455556666:oidc-provider/kube.example",
        "does not exist",
    )
    cli.fails(
        "iam get-open-id-connect-provider --open-id-connect-provider-arn nope",
        "OpenIDConnectProviderArn",
    )


def test_hostile_trust_documents_are_refused_before_the_store_opens(tmp_path: Path) -> None:
    # No store exists at this path: a refusal here came before anything opened it.
    cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=f"sqlite:///{tmp_path}/none/a.db"))
    wildcard = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
        }
    )
    base = "iam create-role --role-name R --assume-role-policy-document"
    cli.fails(f"{base} '{wildcard}'", "Statement[0].Principal", "wildcard")
    cli.fails(f"{base} '{{\"Version\": 1'", "not valid JSON")
    cli.fails(f"{base} file://{tmp_path}/missing.json", "AssumeRolePolicyDocument", "cannot read")
    (tmp_path / "huge.json").write_text("{" + " " * 300_000 + "}")
    cli.fails(f"{base} file://{tmp_path}/huge.json", "more than")
    assert not (tmp_path / "none").exists()
    both = cli.run(f"{base} '{wildcard}' --trust arn:aws:iam::{ACCOUNT}:root")
    assert both.rc == 2 and "not both" in both.err
    neither = cli.run("iam create-role --role-name R")
    assert neither.rc == 2
