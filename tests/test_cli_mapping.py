"""``authbridge mapping check`` and ``import-aws-auth``, run as real subprocesses.

Covers:
* check: the default file (from settings, and AUTHBRIDGE_MAPPING_FILE), an
  explicit FILE, stdin; the ok line and -o json; an invalid file prints
  every problem, one per line under a header, exit 1 (and -o json puts the
  problems on stdout); a missing or unreadable file is one line; hostile
  scalars (invalid dates, huge integers) and tags are ordinary problems;
* check warns (stderr, exit 0) about names two entries can share and
  unfenced session names; --strict refuses them (exit 1), -o json lists them;
* import-aws-auth: to stdout (byte-identical to import_aws_auth), from stdin,
  -o json; unsupported entries refuse in one line naming the entry and the
  flag, --skip-unsupported leaves them out with one warning line;
  --output-file writes 0644 atomically, refuses to overwrite without
  --force, and the written file passes `mapping check`.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from authbridge.mapping import import_aws_auth, yamlsafe
from tests.test_cli import AUTHBRIDGE, TIMEOUT, Cli, Result, clean_env
from tests.test_mapping_aws_auth import REALISTIC, UPSTREAM_PLAIN

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = (REPO / "rbac" / "mapping.yaml").read_bytes()
EXAMPLE_SUMMARY = "1 role, 1 user, 1 group, 0 accounts, 2 bindings, 0 service accounts"
BAD = b"mapRoles:\n  - rolearn: nope\n    username: system:x\nfoo: 1\n"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, clean_env())


def run_stdin(cli: Cli, args: list[str], data: bytes) -> Result:
    proc = subprocess.run(
        [str(AUTHBRIDGE), *args],
        cwd=cli.cwd,
        env=cli.env,
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Result(tuple(args), proc.returncode, proc.stdout.decode(), proc.stderr.decode())


# -- check ----------------------------------------------------------------------------------


def test_check_default_explicit_env_and_stdin(cli: Cli) -> None:
    (cli.cwd / "rbac").mkdir()
    (cli.cwd / "rbac" / "mapping.yaml").write_bytes(EXAMPLE)
    digest = yamlsafe.digest(EXAMPLE)
    default = cli.ok("mapping check").out
    assert default == (
        f"ok: {cli.cwd / 'rbac' / 'mapping.yaml'} ({EXAMPLE_SUMMARY}; sha256 {digest})\n"
    )
    assert cli.ok("mapping check rbac/mapping.yaml").out == (
        f"ok: rbac/mapping.yaml ({EXAMPLE_SUMMARY}; sha256 {digest})\n"
    )
    (cli.cwd / "other.yaml").write_text("{}\n")
    env = clean_env(AUTHBRIDGE_MAPPING_FILE=str(cli.cwd / "other.yaml"))
    assert cli.ok("mapping check", env=env).out.startswith(f"ok: {cli.cwd / 'other.yaml'} (0 roles")
    piped = run_stdin(cli, ["mapping", "check", "-"], EXAMPLE)
    assert (piped.rc, piped.err) == (0, "")
    assert piped.out == f"ok: <stdin> ({EXAMPLE_SUMMARY}; sha256 {digest})\n"


def test_check_json(cli: Cli) -> None:
    (cli.cwd / "m.yaml").write_bytes(EXAMPLE)
    assert cli.json("mapping check m.yaml") == {
        "file": "m.yaml",
        "valid": True,
        "sha256": yamlsafe.digest(EXAMPLE),
        "clusterID": None,
        "counts": {
            "mapRoles": 1,
            "mapUsers": 1,
            "mapGroups": 1,
            "mapAccounts": 0,
            "bindings": 2,
            "serviceAccounts": 0,
        },
        "warnings": [],
    }


def test_check_invalid_prints_every_problem(cli: Cli) -> None:
    (cli.cwd / "bad.yaml").write_bytes(BAD)
    r = cli.run("mapping check bad.yaml")
    assert (r.rc, r.out) == (1, "")
    assert r.err.splitlines() == [
        "authbridge: bad.yaml is invalid (3 problems):",
        "  bad.yaml: foo: unknown key; known keys: clusterID, mapRoles, mapUsers, mapGroups,"
        " mapAccounts, bindings, serviceAccounts",
        "  bad.yaml: mapRoles[0].rolearn: is not a valid role ARN: 'nope' does not start with"
        " 'arn:'",
        '  bad.yaml: mapRoles[0].username: uses the reserved prefix "system:"; set'
        " allowReservedPrefixes: true on this entry if you mean it",
    ]
    r = cli.run("mapping check bad.yaml -o json")
    assert r.rc == 1
    assert r.err == "authbridge: bad.yaml is invalid (3 problems)\n"
    doc = json.loads(r.out)
    assert doc["valid"] is False and doc["file"] == "bad.yaml" and len(doc["problems"]) == 3
    piped = run_stdin(cli, ["mapping", "check", "-"], b"\xff")
    assert piped.rc == 1 and piped.err.splitlines() == [
        "authbridge: <stdin> is invalid (1 problem):",
        "  <stdin>: is not UTF-8 text (byte 0xff at offset 0); save it as UTF-8",
    ]


def test_check_problem_lines_are_printable(cli: Cli) -> None:
    (cli.cwd / "evil.yaml").write_text(
        'mapUsers:\n  - userarn: "arn:aws:iam::1:user/\\u001b[31m"\n'
    )
    r = cli.run("mapping check evil.yaml")
    assert r.rc == 1 and "\x1b" not in r.err
    assert len(r.err.splitlines()) == 3


HOSTILE_SCALARS = (
    b"mapAccounts:\n  - 2001-02-30\n  - 9999-12-31 23:59:60\n  - 0x" + b"f" * 4000 + b"\n"
    b"  - " + b"1" * 4400 + b"\n"
)


def test_check_hostile_scalars_are_ordinary_problems(cli: Cli) -> None:
    """Used to print `internal error (ValueError)`: now one line per value, with its line."""
    (cli.cwd / "m.yaml").write_bytes(HOSTILE_SCALARS)
    r = cli.run("mapping check m.yaml")
    assert (r.rc, r.out) == (1, "")
    quote = '; quote account ids ("012345678901")'
    assert r.err.splitlines() == [
        "authbridge: m.yaml is invalid (4 problems):",
        "  m.yaml: mapAccounts[0]: is a date (2001-02-30, line 2), not a 12-digit account id",
        "  m.yaml: mapAccounts[1]: is a timestamp (9999-12-31 23:59:60, line 3), not a"
        " 12-digit account id",
        f"  m.yaml: mapAccounts[2]: is an integer (0x{'f' * 62}..., line 4), not a 12-digit"
        f" account id{quote}",
        f"  m.yaml: mapAccounts[3]: is an integer ({'1' * 64}..., line 5), not a 12-digit"
        f" account id{quote}",
    ]
    tagged = run_stdin(cli, ["mapping", "check", "-"], b"clusterID: !!binary aGVsbG8=\n")
    assert tagged.rc == 1 and tagged.err.splitlines() == [
        "authbridge: <stdin> is invalid (1 problem):",
        "  <stdin>: line 1, column 12: YAML tags (!!binary) are not allowed here; write the"
        " value without one (quote it to make it a string)",
    ]


COLLIDING = (
    b"mapRoles:\n"
    b"  - rolearn: arn:aws:iam::111122223333:role/Dev\n"
    b'    username: "{{SessionName}}"\n'
    b"mapUsers:\n"
    b"  - userarn: arn:aws:iam::111122223333:user/alice\n"
    b"    username: alice\n"
)
COLLIDING_WARNINGS = [
    "c.yaml: mapRoles[0].username: '{{SessionName}}' starts with the caller's session name,"
    " which the caller chooses: it can render names that other users, authenticators or later"
    " entries have (e.g. 'alice'); put fixed text ending in ':' in front, e.g."
    " 'sso:{{SessionName}}'",
    "c.yaml: mapRoles[0].username: '{{SessionName}}' can render 'alice', as"
    " mapUsers[0].username does: the caller chooses the session name, so any member of the"
    " role can be reviewed as that user; give the template a fixed prefix ending in ':' that"
    " no other name uses",
]


def test_check_warns_about_colliding_names_and_strict_refuses(cli: Cli) -> None:
    (cli.cwd / "c.yaml").write_bytes(COLLIDING)
    r = cli.run("mapping check c.yaml")
    assert r.rc == 0 and r.out.startswith("ok: c.yaml (1 role, 1 user")
    assert r.err.splitlines() == [f"authbridge: warning: {w}" for w in COLLIDING_WARNINGS]
    r = cli.run("mapping check --strict c.yaml")
    assert (r.rc, r.out) == (1, "")
    assert r.err.splitlines() == [
        "authbridge: c.yaml is refused by --strict (2 warnings):",
        *(f"  {w}" for w in COLLIDING_WARNINGS),
    ]
    assert cli.json("mapping check c.yaml")["warnings"] == COLLIDING_WARNINGS
    r = cli.run("mapping check --strict c.yaml -o json")
    assert r.rc == 1 and r.err == "authbridge: c.yaml is refused by --strict (2 warnings)\n"
    assert json.loads(r.out) == {
        "file": "c.yaml",
        "valid": False,
        "problems": [],
        "warnings": COLLIDING_WARNINGS,
    }
    # The example file is clean even under --strict.
    (cli.cwd / "m.yaml").write_bytes(EXAMPLE)
    assert cli.ok("mapping check --strict m.yaml").out.startswith("ok: m.yaml")


def test_check_missing_files_are_one_line(cli: Cli) -> None:
    line = cli.fails("mapping check")
    assert line == (
        f"mapping file {cli.cwd / 'rbac' / 'mapping.yaml'} does not exist; pass FILE, or set"
        " mappingFile in the config (AUTHBRIDGE_MAPPING_FILE)"
    )
    cli.fails("mapping check nope.yaml", "cannot use nope.yaml: No such file or directory")
    (cli.cwd / "dir").mkdir()
    cli.fails("mapping check dir", "cannot use dir: Is a directory")


# -- import-aws-auth ------------------------------------------------------------------------


def test_import_to_stdout_file_and_json(cli: Cli) -> None:
    (cli.cwd / "aws-auth.yaml").write_text(REALISTIC)
    expected = import_aws_auth(REALISTIC, "aws-auth.yaml")
    assert cli.ok("mapping import-aws-auth aws-auth.yaml").out == expected
    piped = run_stdin(cli, ["mapping", "import-aws-auth", "-"], REALISTIC.encode())
    assert (piped.rc, piped.err) == (0, "")
    assert piped.out == import_aws_auth(REALISTIC, "<stdin>")

    doc = cli.json("mapping import-aws-auth aws-auth.yaml")
    assert doc["mapping"] == expected and doc["file"] is None and doc["skipped"] == []
    assert doc["counts"]["mapRoles"] == 4 and doc["counts"]["mapUsers"] == 3
    assert len(doc["notes"]) == 2

    out = cli.ok("mapping import-aws-auth aws-auth.yaml --output-file rbac/mapping.yaml").out
    assert out == (
        "wrote rbac/mapping.yaml (4 roles, 3 users, 0 groups, 1 account, 0 bindings, 0 service"
        " accounts); check it with `authbridge mapping check rbac/mapping.yaml`\n"
    )
    written = cli.cwd / "rbac" / "mapping.yaml"
    assert written.read_text() == expected
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert cli.ok("mapping check").out.startswith(f"ok: {written} (4 roles, 3 users")

    cli.fails(
        "mapping import-aws-auth aws-auth.yaml --output-file rbac/mapping.yaml",
        "--output-file: rbac/mapping.yaml already exists; pass --force to replace it",
    )
    assert written.read_text() == expected
    written.write_text("old")
    doc = cli.json("mapping import-aws-auth aws-auth.yaml --output-file rbac/mapping.yaml --force")
    assert doc["file"] == "rbac/mapping.yaml" and doc["mapping"] is None
    assert written.read_text() == expected
    assert [p.name for p in written.parent.iterdir()] == ["mapping.yaml"]  # no temp files left


def test_import_unsupported_entries(cli: Cli) -> None:
    (cli.cwd / "aws-auth.yaml").write_text(UPSTREAM_PLAIN)
    cli.fails(
        "mapping import-aws-auth aws-auth.yaml --output-file out.yaml",
        "aws-auth.yaml: data.mapRoles[0].username: {{EC2PrivateDNSName}} is not supported",
        "pass --skip-unsupported",
    )
    assert not (cli.cwd / "out.yaml").exists()
    r = cli.run("mapping import-aws-auth aws-auth.yaml --skip-unsupported")
    assert r.rc == 0
    assert r.err == (
        "authbridge: left out 1 unsupported entry; each is listed as a comment in the mapping\n"
    )
    assert r.out == import_aws_auth(UPSTREAM_PLAIN, "aws-auth.yaml", skip_unsupported=True)


def test_import_refusals_are_one_line(cli: Cli) -> None:
    (cli.cwd / "secret.yaml").write_text("kind: Secret\n")
    cli.fails("mapping import-aws-auth secret.yaml", "secret.yaml: kind: is Secret, not ConfigMap")
    cli.fails("mapping import-aws-auth missing.yaml", "cannot use missing.yaml")
    cli.usage_error("mapping import-aws-auth", "Missing argument 'FILE'")
