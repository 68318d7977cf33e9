"""The ``authbridge`` command, run as a real subprocess the way people and scripts run it.

Covers, on SQLite and PostgreSQL (``cli_env``):

* the end-to-end IAM story (account, users, group, membership, a role trusting
  the group, an access key) in the AWS JSON shapes, with the secret shown
  exactly once: in no later output, on no stderr, and (SQLite) in no file;
* every refusal is one line on stderr, ``authbridge: …``, exit code 1, saying
  what to do (duplicate, missing, bad name, bad trust, delete conflict and
  --force, the two-key limit, no account yet, several accounts); usage errors
  exit 2 with click's message;
* hostile input (10 KB name, newline, unicode, bytes that are not UTF-8) is a
  clean one-line error and creates nothing.

And once (no store involved): ``--help`` for the groups and some commands via
subprocess, plus a help text with an example on every command object; that
``--help`` touches no disk; ``keys init/list/rotate/retire`` with states and
0600 files; settings precedence (flag > env > config file) and a bad config
value named in one line; the internal-error line (and its traceback with
AUTHBRIDGE_DEBUG=1); and that importing the CLI loads no store or driver.

Arguments given as one string are split like a shell would (``shlex``); values
with spaces, newlines or raw bytes are passed as lists.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest

from tests.conftest import BACKENDS, _dsn_for

AUTHBRIDGE = Path(sys.executable).parent / "authbridge"
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
TIMEOUT = 60

Argv = str | Sequence[str | bytes]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    argv: tuple[str | bytes, ...]
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs ``authbridge`` in ``cwd`` with a clean environment; remembers every result."""

    cwd: Path
    env: dict[str, str]
    backend: str = "sqlite"
    history: list[Result] = field(default_factory=list)

    def run(self, argv: Argv, env: dict[str, str] | None = None) -> Result:
        args = tuple(shlex.split(argv) if isinstance(argv, str) else argv)
        proc = subprocess.run(
            [str(AUTHBRIDGE), *args],
            cwd=self.cwd,
            env=self.env if env is None else env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        result = Result(args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        self.history.append(result)
        return result

    def ok(self, argv: Argv, env: dict[str, str] | None = None) -> Result:
        r = self.run(argv, env)
        assert r.rc == 0, r
        assert r.err == "", r
        return r

    def json(self, argv: Argv, env: dict[str, str] | None = None) -> Any:
        """Run with ``-o json`` given after the subcommand."""
        args = shlex.split(argv) if isinstance(argv, str) else list(argv)
        return self.ok([*args, "-o", "json"], env).json()

    def fails(self, argv: Argv, *says: str, env: dict[str, str] | None = None) -> str:
        """Run a refused command; return its one stderr line (without ``authbridge: ``)."""
        r = self.run(argv, env)
        assert r.rc == 1, r
        assert r.out == "", r
        assert r.err.startswith("authbridge: "), r
        assert r.err.endswith("\n") and r.err.count("\n") == 1, r  # exactly one line
        line = r.err.removeprefix("authbridge: ").rstrip("\n")
        for text in says:
            assert text in line, (text, line)
        return line

    def usage_error(self, argv: Argv, says: str = "") -> None:
        r = self.run(argv)
        assert r.rc == 2, r
        assert r.out == "", r
        assert "Usage: authbridge" in r.err and "Error:" in r.err, r
        assert says in r.err, r


@pytest.fixture(params=BACKENDS)
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The CLI on an empty store of each backend, chosen through AUTHBRIDGE_STORE."""
    backend = str(request.param)
    dsn = _dsn_for(backend, tmp_path)
    try:
        yield Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), backend)
    finally:
        dsn.cleanup()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI with defaults only (SQLite store and keys/ under ``tmp_path``)."""
    return Cli(tmp_path, clean_env())


def names(docs: list[dict[str, Any]], key: str) -> list[str]:
    return [d[key] for d in docs]


# -- the story ----------------------------------------------------------------------------


def test_story_secret_is_shown_exactly_once(cli_env: Cli) -> None:
    cli = cli_env
    account = cli.json(f"iam create-account --account-id {ACCOUNT} --alias prod")["Account"]
    assert (account["AccountId"], account["AccountAlias"]) == (ACCOUNT, "prod")
    alice = cli.json("iam create-user --user-name alice --tag team=platform")["User"]
    assert alice["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert alice["UserId"].startswith("AIDA") and alice["Path"] == "/"
    assert alice["Tags"] == [{"Key": "team", "Value": "platform"}]
    # -o before the subcommand works too; after it, it wins.
    bob = cli.ok("-o json iam create-user --user-name bob --path /ops/").json()["User"]
    assert bob["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/ops/bob"
    assert cli.ok("-o text iam get-user --user-name bob -o json").json()["User"] == bob
    group = cli.json("iam create-group --group-name devs")["Group"]
    assert group["GroupId"].startswith("AGPA")
    assert cli.ok("-o json iam add-user-to-group --group-name devs --user-name alice").out == ""
    added = cli.ok("iam add-user-to-group --group-name devs --user-name bob").out
    assert "bob" in added and "devs" in added
    role = cli.json(
        "iam create-role --role-name Admin --path /platform/ --max-session-duration 7200"
        f" --trust {group['Arn']}"
    )["Role"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
    assert role["Trust"] == [group["Arn"]] and role["MaxSessionDuration"] == 7200

    created = cli.ok("iam create-access-key --user-name alice -o json")
    key = created.json()["AccessKey"]
    secret = key["SecretAccessKey"]
    assert set(key) == {"UserName", "AccessKeyId", "Status", "CreateDate", "SecretAccessKey"}
    assert key["UserName"] == "alice" and key["Status"] == "Active"
    assert key["AccessKeyId"].startswith("AKIA") and len(secret) >= 40
    assert created.out.count(secret) == 1
    shown_at = len(cli.history)

    # Text mode: id and secret on stdout, the warning (without the secret) on stderr.
    bob_key = cli.run("iam create-access-key --user-name bob")
    assert bob_key.rc == 0 and "SecretAccessKey " in bob_key.out and "AKIA" in bob_key.out
    assert "shown only this once" in bob_key.err and bob_key.err.count("\n") == 1

    listed = cli.json("iam list-access-keys --user-name alice")["AccessKeyMetadata"]
    assert names(listed, "AccessKeyId") == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]
    got = cli.json("iam get-group --group-name devs")
    assert got["Group"]["GroupName"] == "devs"
    assert names(got["Users"], "UserName") == ["alice", "bob"]
    alices_groups = cli.json("iam list-groups-for-user --user-name alice")["Groups"]
    assert names(alices_groups, "GroupName") == ["devs"]
    assert names(cli.json("iam list-users")["Users"], "UserName") == ["alice", "bob"]
    ops = cli.json("iam list-users --path-prefix /ops/")["Users"]
    assert names(ops, "UserName") == ["bob"]
    assert cli.json("iam get-user --user-name alice")["User"]["UserId"] == alice["UserId"]
    assert cli.json("iam get-role --role-name Admin")["Role"]["RoleId"] == role["RoleId"]
    assert names(cli.json("iam list-roles")["Roles"], "RoleName") == ["Admin"]
    assert names(cli.json("iam list-accounts")["Accounts"], "AccountId") == [ACCOUNT]
    off = cli.json(f"iam update-access-key --access-key-id {key['AccessKeyId']} --status Inactive")
    assert off["AccessKey"]["Status"] == "Inactive" and "SecretAccessKey" not in off["AccessKey"]
    assert cli.json("iam update-user --user-name alice --disable")["User"]["Enabled"] is False

    # Text lists: a header, then one aligned line per entity.
    users = cli.ok("iam list-users").out.splitlines()
    assert users[0].split()[0] == "UserName" and len(users) == 3
    assert users[1].startswith("alice ") and users[2].startswith("bob ")
    assert users[1].index(alice["UserId"]) == users[0].index("UserId")
    assert key["AccessKeyId"] in cli.ok("iam list-access-keys --user-name alice").out
    assert group["Arn"] in cli.ok("iam get-role --role-name Admin").out

    for r in cli.history[shown_at:]:
        assert secret not in r.out, r.argv
    for r in cli.history:
        assert secret not in r.err, r.argv
    if cli.backend == "sqlite":
        files = [p for p in cli.cwd.rglob("*") if p.is_file()]
        assert any(p.name == "authbridge.db" for p in files)
        for path in files:  # the database, its WAL, the pepper
            assert secret.encode() not in path.read_bytes(), path


# -- refusals -----------------------------------------------------------------------------


def test_every_refusal_is_one_line_saying_what_to_do(cli_env: Cli) -> None:
    cli = cli_env
    cli.fails("iam list-users", "no IAM account", "authbridge iam create-account")
    cli.fails("iam create-user --user-name alice", "authbridge iam create-account")
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.fails(f"iam create-account --account-id {ACCOUNT}", "already exists", "random id")
    cli.fails("iam create-account --account-id 123", "AccountId", "12 digits")

    cli.ok("iam create-user --user-name alice")
    line = cli.fails("iam create-user --user-name ALICE", "already exists", "choose another name")
    assert line.count("(IAM names are case-insensitive)") == 1, line  # said once, not twice
    line = cli.fails("iam create-user --user-name alice", "already exists", "choose another name")
    assert "case-insensitive" not in line, line  # same case: nothing to explain
    cli.fails("iam get-user --user-name nobody", "user nobody does not exist", "list-users")
    cli.fails("iam create-user --user-name 'al ice'", "UserName", "letters, digits")
    cli.fails("iam create-user --user-name bo --path team", "Path", "--path /team/")
    cli.fails("iam create-group --group-name bad/name", "GroupName")
    cli.fails("iam get-group --group-name nogroup", "does not exist", "list-groups")
    cli.fails(
        "iam remove-user-from-group --group-name nogroup --user-name alice", "nogroup does not"
    )

    # Trust: unknown principal, not an ARN, a role, and a bad duration.
    create_admin = "iam create-role --role-name Admin --trust"
    cli.fails(
        f"{create_admin} arn:aws:iam::{ACCOUNT}:user/nobody",
        "no user nobody",
        "create the user first",
    )
    cli.fails(
        f"{create_admin} alice",
        "not a principal ARN",
        "--trust must be the ARN of an existing user or group",
    )
    cli.fails(f"{create_admin} arn:aws:iam::{ACCOUNT}:role/Other", "is a role", "users, groups")
    cli.fails(
        f"{create_admin} arn:aws:iam::{ACCOUNT}:root --max-session-duration 60",
        "MaxSessionDuration",
        "900",
    )
    cli.fails("iam get-role --role-name Admin", "role Admin does not exist", "list-roles")

    # Access keys: two at most; delete-user refuses without --force.
    first = cli.json("iam create-access-key --user-name alice")["AccessKey"]
    second = cli.json("iam create-access-key --user-name alice")["AccessKey"]
    line = cli.fails(
        "iam create-access-key --user-name alice",
        "already has 2 access keys",
        "authbridge iam delete-access-key",
    )
    assert first["SecretAccessKey"] not in line and second["SecretAccessKey"] not in line
    cli.fails(
        "iam update-access-key --access-key-id AKIANOTAKEY --status Active",
        "does not exist",
        "list-access-keys",
    )
    cli.fails(
        "iam delete-user --user-name alice",
        first["AccessKeyId"],
        second["AccessKeyId"],
        "--force",
    )
    assert cli.ok("iam delete-user --user-name alice --force").out == "Deleted user alice.\n"
    cli.fails("iam get-user --user-name alice", "does not exist")
    cli.fails(f"iam delete-access-key --access-key-id {first['AccessKeyId']}", "does not exist")

    # Several accounts: IAM commands need --account-id (flag or environment).
    cli.ok(f"iam create-account --account-id {OTHER_ACCOUNT}")
    cli.fails("iam list-users", ACCOUNT, OTHER_ACCOUNT, "--account-id")
    assert cli.json(f"--account-id {OTHER_ACCOUNT} iam list-users") == {"Users": []}
    env = {**cli.env, "AUTHBRIDGE_ACCOUNT_ID": OTHER_ACCOUNT}
    assert cli.json("iam list-users", env=env) == {"Users": []}
    cli.fails("--account-id 999999999999 iam list-users", "account 999999999999 does not exist")
    cli.fails("--account-id 12 iam list-users", "--account-id", "12 digits")

    # Usage errors are click's: exit 2 with its usage line.
    cli.usage_error("iam create-user", says="--user-name")
    cli.usage_error("iam update-user --user-name alice", says="--enable or --disable")
    cli.usage_error("iam update-access-key --access-key-id AKIAX --status Off", says="--status")
    cli.usage_error("iam create-user --user-name x --tag novalue", says="KEY=VALUE")
    cli.usage_error("iam create-role --role-name x --trust a --max-session-duration soon")
    cli.usage_error("iam no-such-command")
    cli.usage_error("-o yaml iam list-users", says="--output")


def test_hostile_input_is_refused_cleanly_and_creates_nothing(cli_env: Cli) -> None:
    cli = cli_env
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    create_user = ["iam", "create-user", "--user-name"]
    # The admin action's parser refuses it first, as the API does, before the name rules.
    line = cli.fails([*create_user, "a" * 10_240], "UserName", "at most 2048 characters")
    assert len(line) < 300
    cli.fails([*create_user, "evil\nname"], "UserName")
    cli.fails([*create_user, "zoë"], "UserName")
    cli.fails(["iam", "create-group", "--group-name", "grüppe\r\n"], "GroupName")
    cli.fails([*create_user, b"bad\xffbytes"], "argument 4 is not valid UTF-8")
    cli.fails([*create_user, "ok", "--path", "/" + "p" * 10_000 + "/"], "Path")
    # Input that the store quotes back still makes one line.
    line = cli.fails(["iam", "delete-access-key", "--access-key-id", "AKIA\nINJECTED"])
    assert "AKIA\\nINJECTED" in line
    assert cli.json("iam list-users") == {"Users": []}
    assert cli.json("iam list-groups") == {"Groups": []}


# -- help -------------------------------------------------------------------------------------

HELP_SAMPLE = [
    "",
    "iam",
    "keys",
    "iam create-user",
    "iam create-role",
    "iam get-group",
    "iam create-access-key",
    "keys rotate",
]


def test_help_works_without_touching_disk(cli: Cli) -> None:
    # A config file that does not exist and a store that cannot be reached: --help ignores both.
    env = clean_env(
        AUTHBRIDGE_CONFIG="missing.yaml", AUTHBRIDGE_STORE="postgresql://nobody@127.0.0.1:1/x"
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda argv: cli.run(f"{argv} --help", env), HELP_SAMPLE))
    for argv, r in zip(HELP_SAMPLE, results, strict=True):
        assert r.rc == 0 and r.err == "", (argv, r)
        assert r.out.startswith(f"Usage: authbridge {argv}".rstrip()), argv
        assert "Example:" in r.out, argv
    version = cli.run("--version", env)
    assert version.rc == 0 and "0.1.0" in version.out
    assert list(cli.cwd.iterdir()) == []


def walk(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield prefix, group
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from walk(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


IAM_COMMANDS = """
    create-account list-accounts create-user get-user list-users update-user delete-user
    create-group get-group list-groups list-groups-for-user delete-group add-user-to-group
    remove-user-from-group create-role get-role list-roles update-role-trust delete-role
    create-access-key list-access-keys update-access-key delete-access-key
""".split()


def test_every_command_has_help_with_an_example() -> None:
    from authbridge.cli.main import main

    commands = dict(walk(main))
    expected = {(), ("iam",), ("keys",)}
    expected |= {("iam", name) for name in IAM_COMMANDS}
    expected |= {
        ("keys", name)
        for name in ("init", "list", "rotate", "retire", "revoke", "import", "export")
    }
    assert set(commands) >= expected
    for path, cmd in commands.items():
        assert cmd.help and cmd.help.strip(), path
        assert "Example:" in cmd.help and "authbridge " in cmd.help, path
        # -o is accepted after every command that prints a result (serve prints logs)
        if not isinstance(cmd, click.Group) and path != ("serve",):
            assert "--output" in [opt for param in cmd.params for opt in param.opts], path


# -- keys ----------------------------------------------------------------------------------


def test_keys_lifecycle(cli: Cli) -> None:
    cli.fails("keys list", "no signing keys", "init")
    first = cli.json("keys init")["Key"]
    assert first["state"] == "active" and first["alg"] == "RS256"
    cli.fails("keys init", "already has signing keys", "keys rotate")
    pending = cli.json("keys rotate --algorithm ES256")["Key"]
    assert pending["state"] == "pending" and pending["alg"] == "ES256"
    text = cli.ok("keys rotate").out
    assert "pending" in text and "starts signing at" in text
    states = {k["kid"]: k["state"] for k in cli.json("keys list")["Keys"]}
    assert len(states) == 3 and states[first["kid"]] == "active"
    assert sorted(states.values()) == ["active", "pending", "pending"]
    cli.fails(f"keys retire --kid {first['kid']}", "active signing key", "keys rotate")
    # A kid is checked as the admin API checks it, before the keys are looked at.
    cli.fails(["keys", "retire", "--kid", "x\ny"], "KeyId: must be a kid")
    cli.fails("keys retire --kid nosuchkid", "no signing key with kid nosuchkid", "keys list")
    retired = cli.json(f"keys retire --kid {pending['kid']}")["Key"]
    assert retired["state"] == "retired" and retired["retired"] is not None
    # With no prepublication delay the new key signs at once and the old one is retiring.
    now_env = {**cli.env, "AUTHBRIDGE_PREPUBLICATION_DELAY": "0"}
    assert cli.json("keys rotate", env=now_env)["Key"]["state"] == "active"
    states = {k["kid"]: k["state"] for k in cli.json("keys list")["Keys"]}
    assert states[first["kid"]] == "retiring" and states[pending["kid"]] == "retired"
    lines = cli.ok("keys list").out.splitlines()
    assert lines[0].split()[:3] == ["kid", "alg", "state"] and len(lines) == 2 + len(states)
    assert lines[-1] == f"Keys live in files: {cli.cwd / 'keys'}."

    keys_dir = cli.cwd / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    pems = list(keys_dir.glob("*.pem"))
    assert len(pems) == 4
    for path in [*pems, keys_dir / "signing-keys.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for r in cli.history:
        assert "PRIVATE KEY" not in r.out + r.err


def test_pepper_is_created_private_only_when_a_secret_is_made(cli: Cli) -> None:
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")
    cli.ok("iam list-users")
    keys_dir = cli.cwd / "keys"
    # Commands that touch no secret make no pepper; keys/ holds only the break-glass audit.
    assert sorted(p.name for p in keys_dir.iterdir()) == ["break-glass.log"]
    cli.json("iam create-access-key --user-name alice")
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys_dir / "access-key-pepper").stat().st_mode) == 0o600
    assert cli.json("keys init")["Key"]["state"] == "active"


# -- settings -------------------------------------------------------------------------------


def test_store_flag_beats_environment_beats_config_file(cli: Cli) -> None:
    conf = cli.cwd / "conf"
    conf.mkdir()
    (conf / "authbridge.yaml").write_text("store: sqlite:///from-config.db\n")  # in conf/
    env = {**cli.env, "AUTHBRIDGE_STORE": "sqlite:///from-env.db"}
    create = "--config conf/authbridge.yaml iam create-account --account-id"
    cli.ok(f"--store sqlite:///from-flag.db {create} 111111111111", env)
    cli.ok(f"{create} 222222222222", env)
    config_via_env = {**cli.env, "AUTHBRIDGE_CONFIG": "conf/authbridge.yaml"}
    cli.ok("iam create-account --account-id 333333333333", config_via_env)

    def accounts(store: str) -> list[str]:
        return names(cli.json(f"--store {store} iam list-accounts")["Accounts"], "AccountId")

    assert accounts("sqlite:///from-flag.db") == ["111111111111"]
    assert accounts("sqlite:///from-env.db") == ["222222222222"]
    assert accounts("sqlite:///conf/from-config.db") == ["333333333333"]
    assert not (cli.cwd / "data").exists()  # the default store was never used


def test_bad_settings_are_one_line_naming_the_setting(cli: Cli, refused_port: int) -> None:
    (cli.cwd / "bad.yaml").write_text("store: sqlite:///x.db\nprepublicationDelaySeconds: soon\n")
    cli.fails("--config bad.yaml iam list-users", "bad.yaml: prepublicationDelaySeconds", "whole")
    cli.fails("--config missing.yaml keys list", "missing.yaml", "--config")
    bad_env = {**cli.env, "AUTHBRIDGE_STORE": "mysql://x"}
    cli.fails("iam list-users", "AUTHBRIDGE_STORE", "postgresql://", env=bad_env)
    line = cli.fails(
        f"--store postgresql://admin:hunter2@127.0.0.1:{refused_port}/x iam list-users",
        "PostgreSQL",
        "server is up",
    )
    assert "hunter2" not in line
    assert not (cli.cwd / "x.db").exists()


# -- internals ----------------------------------------------------------------------------

_SABOTAGED = """\
import sys
import authbridge.store
from authbridge.cli.main import main

def broken(*args, **kwargs):
    raise RuntimeError("boom: s3cr3t-detail")

authbridge.store.open_store = broken
sys.argv = ["authbridge", "iam", "list-users"]
main()
"""


def test_unexpected_errors_are_one_line_unless_debugging(cli: Cli) -> None:
    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _SABOTAGED],
            cwd=cli.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    plain = run(cli.env)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr == (
        "authbridge: internal error (RuntimeError); run with AUTHBRIDGE_DEBUG=1 for a traceback\n"
    )
    debug = run({**cli.env, "AUTHBRIDGE_DEBUG": "1"})
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "boom: s3cr3t-detail" in debug.stderr


def python_prints(code: str, *flags: str, env: dict[str, str] | None = None) -> str:
    """What a fresh ``python [flags] -c code`` prints (it must succeed), stripped."""
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code],
        env=env if env is not None else clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return proc.stdout.strip()


def test_importing_the_cli_loads_no_store_driver_or_web_stack() -> None:
    heavy = ["authbridge.store", "sqlite3", "psycopg", "flask", "kubernetes", "cryptography"]
    code = f"import sys, authbridge.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    assert python_prints(code) == "[]"


def test_default_config_name_matches_settings() -> None:
    from authbridge.cli.main import CONFIG_FILE_NAME
    from authbridge.settings import CONFIG_FILE_NAME as SETTINGS_NAME

    assert CONFIG_FILE_NAME == SETTINGS_NAME
