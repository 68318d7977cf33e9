"""The CLI speaks the admin API: every verb family run both ways gives the same JSON.

Against a real ``authbridge serve`` (tests/serving.py: gunicorn, TLS from
``init``), set up break-glass on its store. ``admin`` gets AdministratorAccess
(``iam attach-user-policy``) and an access key saved as the profile
``admin`` with ``authbridge configure``; ``reader`` gets IAMReadOnlyAccess
and the profile ``reader``. Covered:

* one scenario of users, groups, roles, access keys, managed and inline
  policies, versions, attachments, tags, simulate-principal-policy and
  access entries, run once in store mode (in the server's directory) and
  once in API mode (``--profile admin``, from another directory with no
  store), each run leaving the store as it found it: the ``-o json``
  outputs are equal once :func:`normalize` blanks ids, dates and secrets
  (nothing else), verbs that print nothing print nothing both ways, and text
  output and refusals (NoSuchEntity, EntityAlreadyExists) read the same;
* ``keys list``, ``export --public`` and ``rotate`` both ways;
* a reader may list but not create: exit 1, one line with ``AccessDenied``;
* verbs without an admin action refused in API mode (exit 1, "needs store
  access"), by flag and by AUTHBRIDGE_ENDPOINT; a default profile alone
  does not switch to the API;
* the break-glass audit line of each store-mode change (caller, OS user,
  action, targets, outcome), never a secret; and none of an API call;
* a bad endpoint (connection refused), a CA file that is not PEM, a CA
  that did not sign the server's certificate: one line naming the endpoint
  and the fix, never the secret.
"""

from __future__ import annotations

import base64
import inspect
import json
import shlex
import subprocess
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge import pki
from authbridge.cli.main import main as cli
from authbridge.iam import totp
from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, clean_env, free_port, start_server

ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/team/carol"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/ci/Deployer"
READ_IAM = f"arn:aws:iam::{ACCOUNT}:policy/ReadIam"
DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Read", "Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}],
}
PASSWORD = "Correct-horse-9-battery"  # noqa: S105 - a test user's password
KUBE_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/kube.prod.example"
KUBE_CA = pki.new_ca("kube.prod.example CA").cert_pem.decode()  # one CA for both runs


def irsa(sub: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": KUBE_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"kube.prod.example:sub": sub}},
            }
        ],
    }


DOCUMENT_V2 = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}],
}

# The fields that differ between two runs by nature: unique ids, times, secrets, kids.
VOLATILE = frozenset(
    {
        "UserId",
        "GroupId",
        "RoleId",
        "PolicyId",
        "AccessKeyId",
        "SecretAccessKey",
        "CreateDate",
        "UpdateDate",
        "LastUsedDate",
        "createdAt",
        "modifiedAt",
        "associatedAt",
        "accessEntryArn",  # it ends in the principal's unique id
        "kid",
        "created",
        "activates",
        "retires",
        "Base32StringSeed",  # a new MFA device's seed, and its URI holding it
        "OtpauthUri",
        "EnableDate",
    }
)


def normalize(doc: Any) -> Any:
    """``doc`` with every :data:`VOLATILE` field's value replaced by ``"*"``.

    Even a null: a pending key's ``retires`` is null or a time depending on
    whether another key was made within the same second.
    """
    if isinstance(doc, dict):
        return {k: "*" if k in VOLATILE else normalize(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [normalize(v) for v in doc]
    return doc


@dataclass
class Run:
    rc: int
    out: str
    err: str


@dataclass
class Side:
    """One way of running the CLI: the store (in the server's directory) or the API."""

    name: str
    cwd: Path
    env: dict[str, str]
    prefix: tuple[str, ...]

    def run(self, argv: str | list[str], stdin: str | None = None) -> Run:
        args = shlex.split(argv) if isinstance(argv, str) else argv
        proc = subprocess.run(
            [AUTHBRIDGE, *self.prefix, *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, argv: str | list[str]) -> str:
        r = self.run(argv)
        assert r.rc == 0, (self.name, argv, r)
        return r.out

    def json(self, argv: str, stdin: str | None = None) -> Any:
        r = self.run(f"-o json {argv}", stdin)
        assert r.rc == 0, (self.name, argv, r)
        return json.loads(r.out) if r.out else None

    def fails(self, argv: str, *says: str) -> str:
        r = self.run(argv)
        assert r.rc == 1 and r.out == "", (self.name, argv, r)
        assert r.err.startswith("authbridge: ") and r.err.count("\n") == 1, (self.name, r)
        line = r.err.removeprefix("authbridge: ").rstrip("\n")
        for text in says:
            assert text in line, (self.name, text, line)
        return line


@dataclass
class World:
    server: LiveServer
    store: Side
    api: Side
    reader: Side
    home: Path
    admin_secret: str


def _configure(server: LiveServer, home: Path, profile: str, key: dict[str, str]) -> None:
    proc = subprocess.run(
        [
            AUTHBRIDGE,
            "configure",
            "--profile",
            profile,
            "--endpoint",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--access-key-id",
            key["AccessKeyId"],
            "--cluster-id",
            "prod",
        ],
        cwd=home,
        env=clean_env(HOME=str(home)),
        input=key["SecretAccessKey"] + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for server in start_server(tmp_path_factory.mktemp("cli-api")):
        home = tmp_path_factory.mktemp("home")
        store = Side("store", server.root, clean_env(HOME=str(home)), ())
        keys = {}
        for name, policy in (("admin", ADMINISTRATOR), ("reader", READ_ONLY)):
            store.ok(f"iam create-user --user-name {name}")
            store.ok(f"iam attach-user-policy --user-name {name} --policy-arn {policy}")
            keys[name] = store.json(f"iam create-access-key --user-name {name}")["AccessKey"]
            _configure(server, home, name, keys[name])
        api = Side("api", home, clean_env(HOME=str(home)), ("--profile", "admin"))
        reader = Side("reader", home, clean_env(HOME=str(home)), ("--profile", "reader"))
        yield World(server, store, api, reader, home, keys["admin"]["SecretAccessKey"])


# --------------------------------------------------------------------------- the scenario


def scenario(side: Side, docs: Path) -> list[tuple[str, Any]]:
    """Every verb family once; returns (command, output) and leaves the store as it was."""
    docs.mkdir(exist_ok=True)
    (docs / "v1.json").write_text(json.dumps(DOCUMENT))
    (docs / "v2.json").write_text(json.dumps(DOCUMENT_V2))
    v1, v2 = f"file://{docs / 'v1.json'}", f"file://{docs / 'v2.json'}"
    (docs / "trust1.json").write_text(json.dumps(irsa("system:serviceaccount:ci:deployer")))
    (docs / "trust2.json").write_text(json.dumps(irsa("system:serviceaccount:ci:other")))
    (docs / "kube-ca.pem").write_text(KUBE_CA)
    trust1, trust2 = f"file://{docs / 'trust1.json'}", f"file://{docs / 'trust2.json'}"
    seen: list[tuple[str, Any]] = []
    ids: dict[str, str] = {}  # an access key id in a command, as the command is recorded

    def j(argv: str, stdin: str | None = None) -> Any:
        out = side.json(argv, stdin)
        label = argv
        for value, name in ids.items():
            label = label.replace(value, name)
        seen.append((label, normalize(out)))
        return out

    # users, groups, roles
    j("iam create-user --user-name carol --path /team/ --tag team=platform")
    j("iam get-user --user-name carol")
    j("iam update-user --user-name carol --disable")
    j("iam update-user --user-name carol --enable")
    j("iam list-users --path-prefix /team/")
    j("iam create-group --group-name devs")
    j("iam add-user-to-group --group-name devs --user-name carol")
    j("iam get-group --group-name devs")
    j("iam list-groups-for-user --user-name carol")
    j("iam list-groups")
    j(
        "iam create-role --role-name Deployer --path /ci/ --description deploys"
        f" --trust arn:aws:iam::{ACCOUNT}:group/devs --max-session-duration 7200"
    )
    j("iam get-role --role-name Deployer")
    j("iam list-roles --path-prefix /ci/")
    j(f"iam update-role-trust --role-name Deployer --trust {CAROL}")
    # OIDC providers and trust policy documents
    provider = f"--open-id-connect-provider-arn {KUBE_ARN}"
    j(
        "iam create-open-id-connect-provider --url https://kube.prod.example"
        f" --client-id-list authbridge --client-id-list sts --ca-file {docs / 'kube-ca.pem'}"
    )
    j(f"iam get-open-id-connect-provider {provider}")
    j("iam list-open-id-connect-providers")
    j(f"iam add-client-id-to-open-id-connect-provider {provider} --client-id extra")
    j(f"iam remove-client-id-from-open-id-connect-provider {provider} --client-id sts")
    j(f"iam get-open-id-connect-provider {provider}")
    j(f"iam create-role --role-name Pods --assume-role-policy-document {trust1}")
    j(f"iam update-assume-role-policy --role-name Pods --policy-document {trust2}")
    j("iam get-role --role-name Pods")
    j("iam delete-role --role-name Pods")
    j(f"iam delete-open-id-connect-provider {provider}")
    # login profiles, the password policy, MFA devices, sign-in sessions
    j("iam update-account-password-policy --minimum-password-length 12 --require-numbers")
    j("iam get-account-password-policy")
    j("iam create-login-profile --user-name carol --password-reset-required", PASSWORD + "\n")
    j("iam get-login-profile --user-name carol")
    j("iam update-login-profile --user-name carol --no-password-reset-required")
    j("iam update-login-profile --user-name carol --password-from-stdin", PASSWORD + "0\n")
    device = j("iam create-virtual-mfa-device --virtual-mfa-device-name carol-phone")
    seed = base64.b32decode(device["VirtualMFADevice"]["Base32StringSeed"])
    serial = device["VirtualMFADevice"]["SerialNumber"]
    step = totp.step_at(time.time())
    code1, code2 = totp.hotp(seed, step - 1), totp.hotp(seed, step)
    ids[code1], ids[code2] = "CODE-1", "CODE-2"
    j(
        f"iam enable-mfa-device --user-name carol --serial-number {serial}"
        f" --authentication-code1 {code1} --authentication-code2 {code2}"
    )
    j("iam list-mfa-devices --user-name carol")
    j("iam list-virtual-mfa-devices --assignment-status Assigned")
    j(f"iam deactivate-mfa-device --user-name carol --serial-number {serial}")
    j(f"iam delete-virtual-mfa-device --serial-number {serial}")
    j("iam revoke-sessions --user-name carol")
    j("iam delete-login-profile --user-name carol")
    j("iam delete-account-password-policy")
    # access keys
    key = j("iam create-access-key --user-name carol")["AccessKey"]
    ids[key["AccessKeyId"]] = "AKIA-carol"
    j("iam list-access-keys --user-name carol")
    j(f"iam update-access-key --access-key-id {key['AccessKeyId']} --status Inactive")
    j(f"iam delete-access-key --access-key-id {key['AccessKeyId']}")
    # managed policies and versions
    j(f"iam create-policy --policy-name ReadIam --policy-document {v1} --description r")
    j(f"iam get-policy --policy-arn {READ_IAM}")
    j("iam list-policies --scope Local")
    j(f"iam create-policy-version --policy-arn {READ_IAM} --policy-document {v2} --set-as-default")
    j(f"iam list-policy-versions --policy-arn {READ_IAM}")
    j(f"iam get-policy-version --policy-arn {READ_IAM} --version-id v2")
    j(f"iam set-default-policy-version --policy-arn {READ_IAM} --version-id v1")
    j(f"iam delete-policy-version --policy-arn {READ_IAM} --version-id v2")
    # inline policies, attachments, tags, simulation
    j(f"iam put-user-policy --user-name carol --policy-name Inline --policy-document {v1}")
    j("iam get-user-policy --user-name carol --policy-name Inline")
    j("iam list-user-policies --user-name carol")
    j(f"iam attach-user-policy --user-name carol --policy-arn {READ_IAM}")
    j("iam list-attached-user-policies --user-name carol")
    j(f"iam attach-group-policy --group-name devs --policy-arn {READ_ONLY}")
    j("iam list-attached-group-policies --group-name devs")
    j(f"iam put-role-policy --role-name Deployer --policy-name Ops --policy-document {v2}")
    j("iam list-role-policies --role-name Deployer")
    j("iam tag-role --role-name Deployer --tags Key=env,Value=prod")
    j("iam list-role-tags --role-name Deployer")
    j("iam untag-role --role-name Deployer --tag-keys env")
    j("iam tag-user --user-name carol --tags Key=level,Value=2")
    j("iam list-user-tags --user-name carol")
    j(
        f"iam simulate-principal-policy --policy-source-arn {CAROL}"
        " --action-names iam:GetUser --action-names iam:CreateUser"
        f" --resource-arns {CAROL}"
        " --context-entries ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip"
    )
    # access entries
    entry = f"--cluster-id prod --principal-arn {DEPLOYER}"
    j(f"access create-entry {entry} --group deployers --username deployer")
    j(f"access describe-entry {entry}")
    j("access list-entries --cluster-id prod")
    j(f"access associate-policy {entry} --policy view --scope namespace --namespace team-a")
    j(f"access list-associated-policies {entry}")
    j(f"access disassociate-policy {entry} --policy view")
    j(f"access delete-entry {entry}")
    j("access describe-cluster-config --cluster-id prod")
    j("access list-policies")
    # back to the store as it was
    j(f"iam detach-user-policy --user-name carol --policy-arn {READ_IAM}")
    j(f"iam detach-group-policy --group-name devs --policy-arn {READ_ONLY}")
    j("iam delete-user-policy --user-name carol --policy-name Inline")
    j("iam delete-role-policy --role-name Deployer --policy-name Ops")
    j(f"iam delete-policy --policy-arn {READ_IAM}")
    j("iam remove-user-from-group --group-name devs --user-name carol")
    j("iam delete-role --role-name Deployer")
    j("iam delete-group --group-name devs")
    j("iam delete-user --user-name carol --force")
    return seen


def test_every_verb_family_gives_the_same_json_both_ways(world: World, tmp_path: Path) -> None:
    by_store = scenario(world.store, tmp_path)
    by_api = scenario(world.api, tmp_path)
    assert [c for c, _ in by_store] == [c for c, _ in by_api]
    for (command, stored), (_, served) in zip(by_store, by_api, strict=True):
        assert stored == served, command
    # The verbs that print nothing print nothing both ways; the others print a document.
    silent = [c for c, doc in by_store if doc is None]
    assert silent and all(doc is None for c, doc in by_api if c in silent)
    assert any(c.startswith("iam delete-user ") for c in silent)
    # `access delete-entry` prints {} (aws eks's answer) in both modes.
    assert dict(by_api)[f"access delete-entry --cluster-id prod --principal-arn {DEPLOYER}"] == {}
    results = dict(by_api)[next(c for c, _ in by_api if "simulate" in c)]["EvaluationResults"]
    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]


def test_text_output_and_refusals_read_the_same_both_ways(world: World) -> None:
    for argv in ("iam list-users", "access list-policies", "iam list-policies --scope AWS"):
        assert world.store.ok(argv) == world.api.ok(argv), argv
    for argv, says in (
        ("iam get-user --user-name nobody", "does not exist"),
        ("iam create-user --user-name admin", "already exists"),
        ("iam delete-group --group-name nogroup", "does not exist"),
        ("iam create-role --role-name R --trust arn:aws:iam::111122223333:user/ghost", "ghost"),
        ("access describe-entry --cluster-id prod --principal-arn " + CAROL, "access entry"),
        ("iam create-user --user-name bad/name", "UserName"),
    ):
        assert world.store.fails(argv, says) == world.api.fails(argv, says), argv


def test_keys_list_export_and_rotate_both_ways(world: World) -> None:
    assert world.store.json("keys list") == world.api.json("keys list")
    export = "keys export --public"
    assert json.loads(world.store.ok(export)) == json.loads(world.api.ok(export))
    by_store = world.store.json("keys rotate --algorithm ES256")
    by_api = world.api.json("keys rotate --algorithm ES256")
    assert normalize(by_store) == normalize(by_api), (by_store, by_api)
    assert by_api["Key"]["state"] == "pending" and by_api["Key"]["kid"] != by_store["Key"]["kid"]
    kids = {k["kid"] for k in world.store.json("keys list")["Keys"]}
    assert {by_store["Key"]["kid"], by_api["Key"]["kid"]} <= kids
    world.api.fails("keys retire --kid nosuchkid", "no signing key with kid nosuchkid")


def test_a_reader_may_list_but_not_create(world: World) -> None:
    users = world.reader.json("iam list-users")["Users"]
    assert "admin" in [u["UserName"] for u in users]
    line = world.reader.fails(
        "iam create-user --user-name mallory", "AccessDenied", "iam:CreateUser"
    )
    assert line.startswith("AccessDenied: User: arn:aws:iam::")
    world.reader.fails("keys rotate", "AccessDenied", "authbridge:RotateSigningKey")
    # --profile after the subcommand, as every global option may come.
    after = Side("after", world.home, world.reader.env, ())
    after.fails("iam create-user --user-name mallory --profile reader", "AccessDenied")
    assert "mallory" not in world.store.ok("iam list-users")


def _names(function: Any, seen: set[int] | None = None) -> set[str]:
    """The names ``function``'s code uses, and those of the CLI helpers it calls."""
    seen = set() if seen is None else seen
    if id(function) in seen:
        return set()
    seen.add(id(function))
    found: set[str] = set()
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        found |= set(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    for name in list(found):
        helper = function.__globals__.get(name)
        if inspect.isfunction(helper) and helper.__module__.startswith("authbridge.cli."):
            found |= _names(helper, seen)
    return found


def test_every_admin_verb_goes_through_the_admin_call_path() -> None:
    """No iam/access/keys verb reaches the store past App.admin: with --profile, every one
    speaks the API (the server's policies decide), and in store mode every change is audited.
    A verb with no admin action must say so with App.require_store."""
    bypassing = []
    for group in ("iam", "access", "keys"):
        commands = cli.commands[group]
        assert isinstance(commands, click.Group)
        for name, command in sorted(commands.commands.items()):
            assert command.callback is not None
            callback: Any = inspect.unwrap(command.callback)  # under @pass_app
            if not {"admin", "require_store"} & _names(callback):
                bypassing.append(f"{group} {name}")
    assert bypassing == []


@pytest.mark.parametrize(
    "verb",
    [
        "iam create-account --account-id 999988887777",
        "iam list-accounts",
        "keys init",
        "keys import",
    ],
)
def test_verbs_without_an_action_need_store_access(world: World, verb: str) -> None:
    world.api.fails(verb, "needs store access", f"authbridge {verb.split(' --')[0]}")
    by_env = Side("env", world.home, {**world.api.env, "AUTHBRIDGE_ENDPOINT": world.server.url}, ())
    by_env.fails(verb, "needs store access")


def test_a_default_profile_alone_keeps_store_mode(world: World, tmp_path: Path) -> None:
    # HOME has profiles, one of them could be `default`: without --profile/--endpoint the
    # CLI still acts on the store of its directory (an empty one here), not the server.
    home = world.home
    text = (home / ".authbridge" / "credentials").read_text()
    (home / ".authbridge" / "credentials").write_text(
        text + "\n" + text.split("[reader]")[0].replace("[admin]", "[default]")
    )
    local = Side("local", tmp_path, clean_env(HOME=str(home)), ())
    local.fails("iam list-users", "no IAM account yet")
    assert local.json("iam list-accounts") == {"Accounts": []}


def test_break_glass_changes_are_audited_and_api_calls_are_not(world: World) -> None:
    log = world.server.root / "keys" / "break-glass.log"
    before = log.read_text().splitlines() if log.exists() else []
    world.store.ok("iam create-user --user-name dora")
    world.store.fails("iam create-user --user-name dora", "already exists")
    secret = world.store.json("iam create-access-key --user-name dora")["AccessKey"]
    world.store.ok("iam list-users")  # reads are not audited
    world.api.ok("iam create-user --user-name erin")  # the server audits API calls itself
    lines = [json.loads(line) for line in log.read_text().splitlines()[len(before) :]]
    dora = f"arn:aws:iam::{ACCOUNT}:user/dora"
    assert [(x["action"], x["outcome"], x["reason"]) for x in lines] == [
        ("iam:CreateUser", "allowed", "ok"),
        ("iam:CreateUser", "denied", "EntityAlreadyExists"),
        ("iam:CreateAccessKey", "allowed", "ok"),
    ]
    for line in lines:
        assert line["event"] == "admin_call"
        assert line["caller"] == "break-glass (store access)"
        assert line["targets"] == [dora]
        assert line["local_user"] and line["host"] and line["request_id"]
    assert "already exists" in lines[1]["detail"]
    text = log.read_text()
    assert secret["SecretAccessKey"] not in text and world.admin_secret not in text
    assert "erin" not in text
    world.api.ok("iam delete-user --user-name erin")
    world.store.ok("iam delete-user --user-name dora --force")


def _no_secret(world: World, line: str) -> None:
    assert world.admin_secret not in line


def test_a_bad_endpoint_says_which_and_what_to_do(world: World) -> None:
    port = free_port()
    line = world.api.fails(
        f"--endpoint https://127.0.0.1:{port} iam list-users",
        f"https://127.0.0.1:{port}",
        "connection refused",
        "check the endpoint",
    )
    _no_secret(world, line)
    world.api.fails(
        "--endpoint http://127.0.0.1:1 iam list-users", "--endpoint", "plain http", "https"
    )
    world.api.fails("--profile nosuch iam list-users", "profile nosuch", "authbridge configure")


def test_a_bad_ca_file_says_so(world: World, tmp_path: Path) -> None:
    not_pem = tmp_path / "not-a-ca.crt"
    not_pem.write_text("this is not a certificate\n")
    side = Side("bad-ca", world.home, {**world.api.env, "AUTHBRIDGE_CA_FILE": str(not_pem)}, ())
    line = side.fails("--profile admin iam list-users", str(not_pem), "no usable PEM certificate")
    _no_secret(world, line)
    # A real CA that did not sign the server's certificate: verification fails, named.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        [AUTHBRIDGE, "init", "--cluster-id", "x"],
        cwd=other,
        env=clean_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    wrong = other / "keys" / "tls" / "ca.crt"
    side = Side("wrong-ca", world.home, {**world.api.env, "AUTHBRIDGE_CA_FILE": str(wrong)}, ())
    line = side.fails("--profile admin iam list-users", "TLS verification", world.server.url)
    _no_secret(world, line)


# --------------------------------------------------------------------------- pure parts


def _parse(status: int, body: bytes, retry_after: str | None = None) -> Any:
    from authbridge.client.admin_api import parse_answer

    return parse_answer(status, body, retry_after, "https://authbridge.example")


def test_throttling_says_when_to_retry() -> None:
    from authbridge.cli.admin_call import remote_error
    from authbridge.client.admin_api import ApiRefused

    body = json.dumps({"Error": {"Code": "Throttling", "Message": "too many failed attempts"}})
    with pytest.raises(ApiRefused) as caught:
        _parse(429, body.encode(), "7")
    assert caught.value.retry_after == 7
    error = remote_error(caught.value, "ListUsers")
    assert str(error) == "Throttling: too many failed attempts; retry after 7 s"


def test_api_error_codes_become_the_store_modes_classes() -> None:
    from authbridge.admin.authorize import AccessDenied
    from authbridge.cli.admin_call import remote_error
    from authbridge.client.admin_api import ApiRefused
    from authbridge.errors import InputError, InvalidTrust, MalformedPolicyDocument, NoSuchEntity

    def refused(code: str, message: str) -> ApiRefused:
        return ApiRefused(code, message, status=400, retry_after=None)

    e = remote_error(refused("NoSuchEntity", "user bob does not exist"), "GetUser")
    assert isinstance(e, NoSuchEntity) and e.hint is None and str(e) == "user bob does not exist"
    e = remote_error(refused("NoSuchEntity", "no account; create one first"), "GetUser")
    assert str(e) == "no account; create one first" and e.hint == "create one first"
    e = remote_error(refused("ValidationError", "UserName: too long"), "CreateUser")
    assert isinstance(e, InputError) and e.field == "UserName"
    e = remote_error(
        refused("MalformedPolicyDocument", "Statement[0].Effect: bad"), "PutUserPolicy"
    )
    assert isinstance(e, MalformedPolicyDocument) and e.reason == "bad"
    assert isinstance(
        remote_error(refused("MalformedPolicyDocument", "x"), "CreateRole"), InvalidTrust
    )
    assert isinstance(remote_error(refused("AccessDenied", "User: u"), "ListUsers"), AccessDenied)
    unknown = remote_error(refused("Teapot", "short and stout"), "ListUsers")
    assert "Teapot: short and stout" in str(unknown)


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (200, b"[]", "not a JSON object"),
        (200, b"\xff\xfe", "not a JSON object"),
        (502, b"<html>bad gateway</html>", "HTTP 502"),
        (400, b'{"Error": {"Code": "x y"}}', "without an error code"),
        (400, b'{"Error": "NoSuchEntity"}', "without an error code"),
        (400, b"{" * 100_000, "HTTP 400"),
    ],
)
def test_answers_that_are_not_the_apis_are_refused(status: int, body: bytes, says: str) -> None:
    from authbridge.client.admin_api import AdminApiError

    with pytest.raises(AdminApiError, match=says):
        _parse(status, body)


def test_an_error_message_is_one_printable_bounded_line() -> None:
    from authbridge.client.admin_api import ApiRefused

    body = json.dumps({"Error": {"Code": "NoSuchEntity", "Message": "a\nb\x1b[31m" + "c" * 5000}})
    with pytest.raises(ApiRefused) as caught:
        _parse(404, body.encode())
    assert caught.value.message.isprintable() and len(caught.value.message) <= 1000


def test_the_secret_is_not_in_the_clients_repr() -> None:
    from authbridge.client.admin_api import AccessKeyAuthorization

    auth = AccessKeyAuthorization("AKIAAAAAAAAAAAAAAAAA", "s3cr3t-s3cr3t-s3cr3t")
    assert "s3cr3t" not in repr(auth)
    assert auth.authorization().startswith("Basic ")


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )


@given(
    status=st.integers(100, 599),
    body=st.one_of(
        st.binary(max_size=200),
        _json_values().map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({"Error": _json_values()}).map(lambda v: json.dumps(v).encode()),
    ),
    retry_after=st.none() | st.text(max_size=12),
)
def test_any_answer_parses_to_a_document_or_a_documented_error(
    status: int, body: bytes, retry_after: str | None
) -> None:
    from authbridge.client.admin_api import AdminApiError, ApiRefused

    try:
        doc = _parse(status, body, retry_after)
    except ApiRefused as e:
        assert not 200 <= status < 300 and e.code.isalnum() and e.message.isprintable()
    except AdminApiError:
        pass
    else:
        assert 200 <= status < 300 and isinstance(doc, dict)


def test_a_profile_flag_means_its_key_even_with_a_key_in_the_environment(world: World) -> None:
    pair = {
        "AUTHBRIDGE_ACCESS_KEY_ID": "AKIAAAAAAAAAAAAAAAAA",
        "AUTHBRIDGE_SECRET_ACCESS_KEY": "not-the-secret-of-any-key",
    }
    flagged = Side("flag", world.home, {**world.api.env, **pair}, ("--profile", "admin"))
    assert "admin" in flagged.ok("iam list-users")
    # Named by AUTHBRIDGE_PROFILE only, the environment's pair wins, as for `authbridge token`.
    by_env = Side("env", world.home, {**world.api.env, **pair, "AUTHBRIDGE_PROFILE": "admin"}, ())
    line = by_env.fails("iam list-users", "InvalidClientTokenId", "authbridge configure")
    assert "not-the-secret" not in line


def test_verbs_without_an_action_are_audited_in_store_mode(tmp_path: Path) -> None:
    side = Side("fresh", tmp_path, clean_env(HOME=str(tmp_path)), ())
    side.ok("iam create-account --account-id 999988887777")
    side.fails("iam create-account --account-id 999988887777", "already exists")
    kid = side.json("keys init")["Key"]["kid"]
    log = tmp_path / "keys" / "break-glass.log"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["action"], x["outcome"], x["caller"]) for x in lines] == [
        ("iam:CreateAccount", "allowed", "break-glass (store access)"),
        ("iam:CreateAccount", "denied", "break-glass (store access)"),
        ("authbridge:InitSigningKeys", "allowed", "break-glass (store access)"),
    ]
    assert lines[0]["targets"] == ["arn:aws:iam::999988887777:root"]
    assert lines[2]["targets"] == [f"arn:aws:authbridge:::signing-key/{kid}"]
    assert log.stat().st_mode & 0o777 == 0o600
