"""``authbridge iam`` sign-in verbs as real subprocesses, on both store backends.

Covers: login profiles with the password from stdin (and from a hidden,
confirmed prompt on a terminal), never from argv (``--password`` refused
without echoing it); the AWS JSON shapes of every verb; the account password
policy (set whole, shown, deleted, enforced naming the rule and not the
password); virtual MFA devices created (seed and ``otpauth://`` URI shown
once, or written once to a 0600 ``--outfile`` that must not exist), enabled
with two consecutive codes computed from the seed, listed, deactivated and
deleted; the password and seed are never in any later output, error or the
database file; deleting a user with a login profile is refused naming it;
``iam revoke-sessions`` ends the user's sign-in sessions (JSON and text).
"""

from __future__ import annotations

import base64
import fcntl
import os
import stat
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authbridge.iam import totp
from tests.conftest import BACKENDS, _dsn_for
from tests.test_cli import ACCOUNT, AUTHBRIDGE, TIMEOUT, Cli, Result, clean_env

PASSWORD = "Correct-Horse-9-battery"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"


@pytest.fixture(params=BACKENDS)
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
        _people(cli)
        yield cli
    finally:
        dsn.cleanup()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=f"sqlite:///{tmp_path}/data/a.db"))
    _people(cli)
    return cli


def _people(cli: Cli) -> None:
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")


def with_stdin(cli: Cli, argv: list[str], text: str) -> Result:
    proc = subprocess.run(
        [str(AUTHBRIDGE), *argv],
        cwd=cli.cwd,
        env=cli.env,
        input=text.encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    result = Result(tuple(argv), proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    cli.history.append(result)
    return result


def everything_printed(cli: Cli) -> str:
    return "\n".join(f"{r.argv!r}\n{r.out}\n{r.err}" for r in cli.history)


def test_login_profile_lifecycle(cli_on: Cli) -> None:
    created = with_stdin(
        cli_on,
        [
            "-o",
            "json",
            "iam",
            "create-login-profile",
            "--user-name",
            "alice",
            "--password-reset-required",
        ],
        PASSWORD + "\n",
    )
    assert created.rc == 0, created
    doc = created.json()["LoginProfile"]
    assert set(doc) == {"UserName", "CreateDate", "PasswordResetRequired"}
    assert doc["UserName"] == "alice" and doc["PasswordResetRequired"] is True
    got = cli_on.json("iam get-login-profile --user-name alice")
    assert got == {"LoginProfile": doc}
    cli_on.ok("iam update-login-profile --user-name alice --no-password-reset-required")
    assert not cli_on.json("iam get-login-profile --user-name alice")["LoginProfile"][
        "PasswordResetRequired"
    ]
    changed = with_stdin(
        cli_on,
        ["iam", "update-login-profile", "--user-name", "alice", "--password-from-stdin"],
        "Another-Horse-7-staple\n",
    )
    assert changed.rc == 0 and changed.out == "Updated the login profile of user alice.\n"
    cli_on.fails(
        "iam delete-user --user-name alice", "login profile", "delete-login-profile", "--force"
    )
    cli_on.ok("iam delete-login-profile --user-name alice")
    cli_on.fails("iam get-login-profile --user-name alice", "no login profile", "create-login")
    cli_on.ok("iam delete-user --user-name alice")
    assert PASSWORD not in everything_printed(cli_on)


def test_password_flag_is_refused_without_echoing_it(cli: Cli) -> None:
    """Attack surface: a password on argv lands in shell history and `ps`."""
    for argv in (
        ["iam", "create-login-profile", "--user-name", "alice", "--password", PASSWORD],
        ["iam", "create-login-profile", "--user-name", "alice", f"--password={PASSWORD}"],
        ["iam", "update-login-profile", "--user-name", "alice", "--password", PASSWORD],
    ):
        r = cli.run(argv)
        assert r.rc == 2 and "--password is not accepted" in r.err and "stdin" in r.err, r
        assert PASSWORD not in r.out + r.err
    cli.fails("iam get-login-profile --user-name alice", "no login profile")


def test_an_empty_or_oversized_password_is_refused(cli: Cli) -> None:
    empty = with_stdin(cli, ["iam", "create-login-profile", "--user-name", "alice"], "\n")
    assert empty.rc == 1 and "Password: is empty" in empty.err
    huge = with_stdin(cli, ["iam", "create-login-profile", "--user-name", "alice"], "x" * 5000)
    assert huge.rc == 1 and "at most 1024" in huge.err and "x" * 50 not in huge.err


def test_the_password_policy_is_enforced_by_name(cli: Cli) -> None:
    cli.fails("iam get-account-password-policy", "no password policy")
    cli.ok(
        "iam update-account-password-policy --minimum-password-length 30 --require-symbols"
        " --password-reuse-prevention 3 --max-password-age 90"
    )
    policy = cli.json("iam get-account-password-policy")["PasswordPolicy"]
    assert policy == {
        "MinimumPasswordLength": 30,
        "RequireSymbols": True,
        "RequireNumbers": False,
        "RequireUppercaseCharacters": False,
        "RequireLowercaseCharacters": False,
        "AllowUsersToChangePassword": False,
        "ExpirePasswords": True,
        "HardExpiry": False,
        "MaxPasswordAge": 90,
        "PasswordReusePrevention": 3,
    }
    weak = "weakpassword12"
    r = with_stdin(cli, ["iam", "create-login-profile", "--user-name", "alice"], weak + "\n")
    assert r.rc == 1 and r.err.count("\n") == 1, r
    assert "MinimumPasswordLength" in r.err and "RequireSymbols" in r.err
    assert weak not in r.err
    cli.fails(
        "iam update-account-password-policy --minimum-password-length 4", "MinimumPasswordLength"
    )
    cli.ok("iam delete-account-password-policy")
    cli.fails("iam delete-account-password-policy", "no password policy")


def test_virtual_mfa_lifecycle_and_the_seed_shown_once(cli_on: Cli) -> None:
    created = cli_on.json("iam create-virtual-mfa-device --virtual-mfa-device-name alice-phone")
    device = created["VirtualMFADevice"]
    assert device["SerialNumber"] == SERIAL
    seed = device["Base32StringSeed"]
    assert len(seed) == 32 and device["OtpauthUri"].startswith(
        f"otpauth://totp/authbridge:alice-phone?secret={seed}&issuer=authbridge"
    )
    secret = base64.b32decode(seed)
    listed = cli_on.json("iam list-virtual-mfa-devices")
    assert listed == {"VirtualMFADevices": [{"SerialNumber": SERIAL}]}
    now = time.time()
    step = totp.step_at(now)
    c1, c2 = totp.hotp(secret, step - 1), totp.hotp(secret, step)
    cli_on.fails(
        f"iam enable-mfa-device --user-name alice --serial-number {SERIAL}"
        f" --authentication-code1 {c2} --authentication-code2 {c2}",
        "not two consecutive codes",
    )
    cli_on.ok(
        f"iam enable-mfa-device --user-name alice --serial-number {SERIAL}"
        f" --authentication-code1 {c1} --authentication-code2 {c2}"
    )
    n1, n2 = totp.hotp(secret, step + 1), totp.hotp(secret, step + 2)
    cli_on.ok(
        f"iam resync-mfa-device --user-name alice --serial-number {SERIAL}"
        f" --authentication-code1 {n1} --authentication-code2 {n2}"
    )
    [mine] = cli_on.json("iam list-mfa-devices --user-name alice")["MFADevices"]
    assert mine["UserName"] == "alice" and mine["SerialNumber"] == SERIAL and mine["EnableDate"]
    [assigned] = cli_on.json("iam list-virtual-mfa-devices --assignment-status Assigned")[
        "VirtualMFADevices"
    ]
    assert assigned["User"]["UserName"] == "alice"
    text = cli_on.ok("iam list-mfa-devices --user-name alice").out
    assert SERIAL in text and "alice" in text
    cli_on.fails(f"iam delete-virtual-mfa-device --serial-number {SERIAL}", "deactivate")
    cli_on.fails("iam delete-user --user-name alice", SERIAL)
    cli_on.ok(f"iam deactivate-mfa-device --user-name alice --serial-number {SERIAL}")
    cli_on.ok(f"iam delete-virtual-mfa-device --serial-number {SERIAL}")
    assert cli_on.json("iam list-virtual-mfa-devices") == {"VirtualMFADevices": []}
    # The seed appeared in the create answer and nowhere else.
    later = "\n".join(r.out + r.err for r in cli_on.history[3:])
    assert seed not in later


def test_the_seed_text_warns_it_is_shown_once(cli: Cli) -> None:
    r = cli.run("iam create-virtual-mfa-device --virtual-mfa-device-name p")
    assert r.rc == 0 and "shown only this once" in r.err
    assert "Base32StringSeed" in r.out and "otpauth://totp/" in r.out


@pytest.mark.parametrize("method", ["Base32StringSeed", "OtpauthUri"])
def test_outfile_is_0600_and_the_seed_is_not_printed(cli: Cli, method: str) -> None:
    target = cli.cwd / "seed.txt"
    doc = cli.json(
        f"iam create-virtual-mfa-device --virtual-mfa-device-name p --outfile {target}"
        f" --bootstrap-method {method}"
    )
    assert doc == {"VirtualMFADevice": {"SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/p"}}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    content = target.read_text().strip()
    if method == "Base32StringSeed":
        assert len(base64.b32decode(content)) == 20
    else:
        assert content.startswith("otpauth://totp/authbridge:p?secret=")
    assert content not in everything_printed(cli)
    # An existing file is never overwritten, and nothing is created then.
    cli.usage_error(
        f"iam create-virtual-mfa-device --virtual-mfa-device-name q --outfile {target}"
        f" --bootstrap-method {method}",
        "exists",
    )
    assert [
        d["SerialNumber"] for d in cli.json("iam list-virtual-mfa-devices")["VirtualMFADevices"]
    ] == [f"arn:aws:iam::{ACCOUNT}:mfa/p"]


def test_outfile_options_go_together(cli: Cli) -> None:
    cli.usage_error(
        "iam create-virtual-mfa-device --virtual-mfa-device-name p --outfile x", "go together"
    )
    cli.usage_error(
        "iam create-virtual-mfa-device --virtual-mfa-device-name p --outfile x"
        " --bootstrap-method QRCodePNG",
        "OtpauthUri",
    )


def test_secrets_are_not_in_the_database_file(cli: Cli) -> None:
    """Attack: reading the SQLite file for passwords or TOTP seeds."""
    r = with_stdin(cli, ["iam", "create-login-profile", "--user-name", "alice"], PASSWORD + "\n")
    assert r.rc == 0
    seed = cli.json("iam create-virtual-mfa-device --virtual-mfa-device-name p")[
        "VirtualMFADevice"
    ]["Base32StringSeed"]
    raw = b"".join(p.read_bytes() for p in (cli.cwd / "data").iterdir() if p.is_file())
    assert PASSWORD.encode() not in raw
    assert seed.encode() not in raw and base64.b32decode(seed) not in raw
    assert b"$argon2id$" in raw


def test_bad_codes_and_serials_are_one_line_errors(cli: Cli) -> None:
    cli.json("iam create-virtual-mfa-device --virtual-mfa-device-name p")
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/p"
    cli.fails(
        f"iam enable-mfa-device --user-name alice --serial-number {serial}"
        " --authentication-code1 12345 --authentication-code2 abcdef",
        "AuthenticationCode1",
        "6 digits",
    )
    cli.fails(
        "iam enable-mfa-device --user-name alice --serial-number nope"
        " --authentication-code1 123456 --authentication-code2 654321",
        "SerialNumber",
    )
    cli.fails("iam create-virtual-mfa-device --virtual-mfa-device-name 'a b'", "VirtualMFADevice")


def test_the_prompt_on_a_terminal_asks_twice_and_hides_the_password(cli: Cli) -> None:
    master, slave = os.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [str(AUTHBRIDGE), "iam", "create-login-profile", "--user-name", "alice"],
        cwd=cli.cwd,
        env=cli.env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_tty,  # noqa: PLW1509 - a pty must be the controlling tty
    )
    os.close(slave)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + TIMEOUT
        while marker not in seen and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk

    read_until(b"New password:")
    os.write(master, PASSWORD.encode() + b"\n")
    read_until(b"Repeat for confirmation:")
    os.write(master, PASSWORD.encode() + b"\n")
    read_until(b"PasswordResetRequired")
    assert proc.wait(timeout=TIMEOUT) == 0, seen
    os.close(master)
    assert PASSWORD.encode() not in seen  # hidden: never echoed
    cli.ok("iam get-login-profile --user-name alice")


def test_revoke_sessions_ends_the_users_sessions(cli_on: Cli) -> None:
    from authbridge import signin
    from authbridge.iam.credentials import Pepper
    from authbridge.store import open_store

    store = open_store(cli_on.env["AUTHBRIDGE_STORE"], pepper=Pepper.generate())
    try:
        alice = store.get_user(ACCOUNT, "alice").user_id
        now = time.time()
        _, cookie = signin.start_browser_session(
            store, user_id=alice, mfa=False, address=None, now=now
        )
        got = cli_on.json("iam revoke-sessions --user-name alice -o json")
        assert got == {"UserName": "alice", "SessionsRevoked": 1}
        assert signin.browser_session(store, cookie, time.time()) is None
    finally:
        store.close()
    assert cli_on.ok("iam revoke-sessions --user-name alice").out.strip() == (
        "Ended 0 sign-in sessions of user alice."
    )
    missing = cli_on.run("iam revoke-sessions --user-name nobody")
    assert missing.rc != 0 and "nobody" in missing.err
