"""``authbridge iam`` sign-in verbs: login profiles, the password policy, virtual MFA devices.

Each command runs its admin action (:mod:`authbridge.admin.signin`) through
:meth:`App.admin <authbridge.cli.context.App.admin>`: over the admin API with
``--profile`` / ``--endpoint``, else on the store (break-glass, audited), so
both give the same JSON. The commands
are registered on the ``iam`` group by :mod:`authbridge.cli.iam`.

Passwords are never taken from the command line, where shell history, ``ps``
and audit logs keep them: ``create-login-profile`` and ``update-login-profile
--password-from-stdin`` read one line from stdin, or prompt twice (hidden)
on a terminal; a ``--password`` option is refused with that explanation.
A new device's seed is shown once (or written once, 0600, to ``--outfile``);
nothing else ever prints it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.cli.iam import _doc, iam
from authbridge.errors import InputError
from authbridge.files import write_atomic
from authbridge.iam.passwords import MAX_PASSWORD_CHARS

PROFILE_FIELDS = ("UserName", "CreateDate", "PasswordResetRequired")
MFA_COLUMNS = ("SerialNumber", "UserName", "EnableDate")
POLICY_FIELDS = (
    "MinimumPasswordLength",
    "RequireSymbols",
    "RequireNumbers",
    "RequireUppercaseCharacters",
    "RequireLowercaseCharacters",
    "AllowUsersToChangePassword",
    "ExpirePasswords",
    "MaxPasswordAge",
    "PasswordReusePrevention",
    "HardExpiry",
)
F = TypeVar("F", bound=Callable[..., Any])
BOOTSTRAP_METHODS = ("Base32StringSeed", "OtpauthUri", "QRCodePNG")

_user_name_option = click.option("--user-name", required=True, metavar="NAME", help="User name.")
_serial_option = click.option(
    "--serial-number",
    required=True,
    metavar="ARN",
    help="The device's ARN: arn:aws:iam::ACCOUNT:mfa/NAME.",
)
_code1 = click.option(
    "--authentication-code1", "code1", required=True, metavar="CODE", help="A code."
)
_code2 = click.option(
    "--authentication-code2", "code2", required=True, metavar="CODE", help="The next code."
)


def _codes_options(command: F) -> F:
    """Two consecutive codes of a device (enable-mfa-device, resync-mfa-device)."""
    return _code1(_code2(command))


def _refuse_password(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        # The value is deliberately not repeated: it is a password.
        raise click.UsageError(
            "--password is not accepted: a password on the command line ends up in shell"
            " history and the process list. Pipe it on stdin"
            " (`... | authbridge iam create-login-profile --user-name NAME`)"
            " or run the command on a terminal to be prompted."
        )


_no_password_flag = click.option(
    "--password",
    hidden=True,
    expose_value=False,
    callback=_refuse_password,
    help="Refused: see the command's help.",
)


def _codes(user_name: str, serial_number: str, code1: str, code2: str) -> dict[str, str]:
    return {
        "UserName": user_name,
        "SerialNumber": serial_number,
        "AuthenticationCode1": code1,
        "AuthenticationCode2": code2,
    }


def read_password(prompt: str = "New password") -> str:
    """One password: the first line of stdin, or a hidden prompt with confirmation on a tty."""
    return read_secret(prompt, field="Password", limit=MAX_PASSWORD_CHARS, what="password")


def read_secret(prompt: str, *, field: str, limit: int, what: str) -> str:
    """One secret: the first line of stdin, or a hidden prompt with confirmation on a tty."""
    if sys.stdin.isatty():
        value: str = click.prompt(
            prompt, hide_input=True, confirmation_prompt=True, err=True, show_default=False
        )
    else:
        data = sys.stdin.readline(limit + 2)
        value = data.removesuffix("\n").removesuffix("\r")
        if len(value) > limit:
            raise InputError(field, f"must be at most {limit} characters")
    if not value:
        raise InputError(
            field,
            "is empty",
            hint=f"pipe the {what} on stdin, or run the command on a terminal to be prompted",
        )
    return value


# -- login profiles ----------------------------------------------------------------------


@iam.command("create-login-profile")
@_user_name_option
@click.option(
    "--password-reset-required",
    is_flag=True,
    help="The user must choose a new password at the next sign-in.",
)
@_no_password_flag
@output_option
@pass_app
def create_login_profile(app: App, user_name: str, password_reset_required: bool) -> None:
    """Give a user a password for signing in (from stdin, or prompted; never an option).

    The password must meet the account password policy; only its argon2id
    hash is kept.

    \b
    Example:
      authbridge iam create-login-profile --user-name alice --password-reset-required
      printf '%s\\n' "$PASSWORD" | authbridge iam create-login-profile --user-name alice
    """
    password = read_password()
    result = _doc(
        app.admin(
            "CreateLoginProfile",
            {
                "UserName": user_name,
                "Password": password,
                "PasswordResetRequired": password_reset_required,
            },
        )
    )
    app.emit(result, lambda: out.fields(result["LoginProfile"], PROFILE_FIELDS))


@iam.command("get-login-profile")
@_user_name_option
@output_option
@pass_app
def get_login_profile(app: App, user_name: str) -> None:
    """Show whether a user has a password and must change it (never the password).

    \b
    Example:
      authbridge iam get-login-profile --user-name alice
    """
    result = _doc(app.admin("GetLoginProfile", {"UserName": user_name}))
    app.emit(result, lambda: out.fields(result["LoginProfile"], PROFILE_FIELDS))


@iam.command("update-login-profile")
@_user_name_option
@click.option(
    "--password-from-stdin",
    "new_password",
    is_flag=True,
    help="Set a new password, read from stdin (or prompted on a terminal).",
)
@click.option(
    "--password-reset-required/--no-password-reset-required",
    default=None,
    help="Require (or stop requiring) a new password at the next sign-in.",
)
@_no_password_flag
@output_option
@pass_app
def update_login_profile(
    app: App, user_name: str, new_password: bool, password_reset_required: bool | None
) -> None:
    """Set a user's password again, or whether it must be changed at the next sign-in.

    \b
    Example:
      authbridge iam update-login-profile --user-name alice --password-from-stdin \\
          --password-reset-required
      authbridge iam update-login-profile --user-name alice --no-password-reset-required
    """
    password = read_password() if new_password else None
    app.admin(
        "UpdateLoginProfile",
        {
            "UserName": user_name,
            "Password": password,
            "PasswordResetRequired": password_reset_required,
        },
    )
    app.emit(None, lambda: f"Updated the login profile of user {user_name}.")


@iam.command("delete-login-profile")
@_user_name_option
@output_option
@pass_app
def delete_login_profile(app: App, user_name: str) -> None:
    """Remove a user's password: they can no longer sign in with one.

    \b
    Example:
      authbridge iam delete-login-profile --user-name alice
    """
    app.admin("DeleteLoginProfile", {"UserName": user_name})
    app.emit(None, lambda: f"Deleted the login profile of user {user_name}.")


# -- the account password policy ---------------------------------------------------------------


@iam.command("update-account-password-policy")
@click.option("--minimum-password-length", type=int, default=8, show_default=True, help="8-128.")
@click.option("--require-symbols/--no-require-symbols", default=False)
@click.option("--require-numbers/--no-require-numbers", default=False)
@click.option("--require-uppercase-characters/--no-require-uppercase-characters", default=False)
@click.option("--require-lowercase-characters/--no-require-lowercase-characters", default=False)
@click.option("--allow-users-to-change-password/--no-allow-users-to-change-password", default=False)
@click.option("--max-password-age", type=int, help="Days, 1-1095; passwords then expire.")
@click.option(
    "--password-reuse-prevention", type=int, help="1-24: how many previous passwords to refuse."
)
@click.option(
    "--hard-expiry/--no-hard-expiry",
    default=False,
    help="An expired password cannot sign in at all (an administrator resets it).",
)
@output_option
@pass_app
def update_account_password_policy(
    app: App,
    minimum_password_length: int,
    require_symbols: bool,
    require_numbers: bool,
    require_uppercase_characters: bool,
    require_lowercase_characters: bool,
    allow_users_to_change_password: bool,
    max_password_age: int | None,
    password_reuse_prevention: int | None,
    hard_expiry: bool,
) -> None:
    """Set the account's password policy, whole: a rule not given is back to its default.

    \b
    Example:
      authbridge iam update-account-password-policy --minimum-password-length 14 \\
          --require-numbers --require-symbols --password-reuse-prevention 24 \\
          --max-password-age 90
    """
    app.admin(
        "UpdateAccountPasswordPolicy",
        {
            "MinimumPasswordLength": minimum_password_length,
            "RequireSymbols": require_symbols,
            "RequireNumbers": require_numbers,
            "RequireUppercaseCharacters": require_uppercase_characters,
            "RequireLowercaseCharacters": require_lowercase_characters,
            "AllowUsersToChangePassword": allow_users_to_change_password,
            "MaxPasswordAge": max_password_age,
            "PasswordReusePrevention": password_reuse_prevention,
            "HardExpiry": hard_expiry,
        },
    )
    app.emit(None, lambda: "Updated the account password policy.")


@iam.command("get-account-password-policy")
@output_option
@pass_app
def get_account_password_policy(app: App) -> None:
    """Show the account's password policy.

    \b
    Example:
      authbridge iam get-account-password-policy
    """
    result = _doc(app.admin("GetAccountPasswordPolicy", {}))
    app.emit(result, lambda: out.fields(result["PasswordPolicy"], POLICY_FIELDS))


@iam.command("delete-account-password-policy")
@output_option
@pass_app
def delete_account_password_policy(app: App) -> None:
    """Remove the account's password policy (8 characters, nothing else, applies again).

    \b
    Example:
      authbridge iam delete-account-password-policy
    """
    app.admin("DeleteAccountPasswordPolicy", {})
    app.emit(None, lambda: "Deleted the account password policy.")


# -- virtual MFA devices --------------------------------------------------------------------


@iam.command("create-virtual-mfa-device")
@click.option(
    "--virtual-mfa-device-name", "name", required=True, metavar="NAME", help="Device name."
)
@click.option(
    "--outfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the seed (or URI) here, mode 0600, instead of printing it. Must not exist.",
)
@click.option(
    "--bootstrap-method",
    type=click.Choice(BOOTSTRAP_METHODS),
    help="What --outfile gets: the base32 seed or the otpauth:// URI.",
)
@output_option
@pass_app
def create_virtual_mfa_device(
    app: App, name: str, outfile: Path | None, bootstrap_method: str | None
) -> None:
    """Create a virtual MFA device; its seed is shown (or written) this once only.

    Add it to an authenticator app with the otpauth:// URI (as a QR code) or
    the base32 seed, then enable it for a user with enable-mfa-device.

    \b
    Example:
      authbridge iam create-virtual-mfa-device --virtual-mfa-device-name alice-phone
      authbridge iam create-virtual-mfa-device --virtual-mfa-device-name alice-phone \\
          --outfile seed.txt --bootstrap-method Base32StringSeed
    """
    if (outfile is None) != (bootstrap_method is None):
        raise click.UsageError("--outfile and --bootstrap-method go together")
    if bootstrap_method == "QRCodePNG":
        raise click.UsageError(
            "--bootstrap-method QRCodePNG is not available here: use OtpauthUri and draw the"
            " QR code from the URI (e.g. `qrencode -t ansiutf8 < FILE`)"
        )
    if outfile is not None and (outfile.exists() or outfile.is_symlink()):
        raise click.UsageError(f"--outfile {outfile} exists; choose a new file")
    result = _doc(app.admin("CreateVirtualMFADevice", {"VirtualMFADeviceName": name}))
    doc = result["VirtualMFADevice"]
    if outfile is not None and bootstrap_method is not None:
        try:
            write_atomic(outfile, (doc[bootstrap_method] + "\n").encode(), exclusive=True)
        except OSError as e:
            # Without the seed the device is useless: take it back rather than leave it.
            app.admin("DeleteVirtualMFADevice", {"SerialNumber": doc["SerialNumber"]})
            raise click.ClickException(
                f"cannot write --outfile {outfile}: {e.strerror}; the device was not kept"
            ) from None
        shown: dict[str, Any] = {"VirtualMFADevice": {"SerialNumber": doc["SerialNumber"]}}
        app.emit(shown, lambda: f"Created {doc['SerialNumber']}; {bootstrap_method} in {outfile}.")
        return

    def text() -> str:
        click.echo(
            "authbridge: add the device to an authenticator app now; its seed is shown"
            " only this once and cannot be retrieved later",
            err=True,
        )
        return out.fields(doc, ("SerialNumber", "Base32StringSeed", "OtpauthUri"))

    app.emit(result, text)


@iam.command("enable-mfa-device")
@_user_name_option
@_serial_option
@_codes_options
@output_option
@pass_app
def enable_mfa_device(app: App, user_name: str, serial_number: str, code1: str, code2: str) -> None:
    """Enable a virtual MFA device for a user with two consecutive codes from it.

    \b
    Example:
      authbridge iam enable-mfa-device --user-name alice \\
          --serial-number arn:aws:iam::111122223333:mfa/alice-phone \\
          --authentication-code1 123456 --authentication-code2 789012
    """
    app.admin("EnableMFADevice", _codes(user_name, serial_number, code1, code2))
    app.emit(None, lambda: f"Enabled {serial_number} for user {user_name}.")


@iam.command("resync-mfa-device")
@_user_name_option
@_serial_option
@_codes_options
@output_option
@pass_app
def resync_mfa_device(app: App, user_name: str, serial_number: str, code1: str, code2: str) -> None:
    """Re-learn the clock of a user's MFA device (up to 5 minutes off) from two codes.

    \b
    Example:
      authbridge iam resync-mfa-device --user-name alice \\
          --serial-number arn:aws:iam::111122223333:mfa/alice-phone \\
          --authentication-code1 123456 --authentication-code2 789012
    """
    app.admin("ResyncMFADevice", _codes(user_name, serial_number, code1, code2))
    app.emit(None, lambda: f"Resynchronized {serial_number} for user {user_name}.")


@iam.command("deactivate-mfa-device")
@_user_name_option
@_serial_option
@output_option
@pass_app
def deactivate_mfa_device(app: App, user_name: str, serial_number: str) -> None:
    """Stop a user's MFA device from counting; the device then can be deleted.

    \b
    Example:
      authbridge iam deactivate-mfa-device --user-name alice \\
          --serial-number arn:aws:iam::111122223333:mfa/alice-phone
    """
    app.admin("DeactivateMFADevice", {"UserName": user_name, "SerialNumber": serial_number})
    app.emit(None, lambda: f"Deactivated {serial_number} for user {user_name}.")


@iam.command("list-mfa-devices")
@_user_name_option
@output_option
@pass_app
def list_mfa_devices(app: App, user_name: str) -> None:
    """List the MFA devices enabled for a user.

    \b
    Example:
      authbridge iam list-mfa-devices --user-name alice
    """
    result = _doc(app.admin("ListMFADevices", {"UserName": user_name}))
    app.emit(
        result,
        lambda: out.table(
            result["MFADevices"], MFA_COLUMNS, f"User {user_name} has no MFA devices."
        ),
    )


@iam.command("list-virtual-mfa-devices")
@click.option(
    "--assignment-status",
    type=click.Choice(["Assigned", "Unassigned", "Any"]),
    default="Any",
    show_default=True,
)
@output_option
@pass_app
def list_virtual_mfa_devices(app: App, assignment_status: str) -> None:
    """List the account's virtual MFA devices (never their seeds).

    \b
    Example:
      authbridge iam list-virtual-mfa-devices --assignment-status Unassigned
    """
    result = _doc(app.admin("ListVirtualMFADevices", {"AssignmentStatus": assignment_status}))
    rows = [
        {
            "SerialNumber": d["SerialNumber"],
            "UserName": d.get("User", {}).get("UserName", "-"),
            "EnableDate": d.get("EnableDate", "-"),
        }
        for d in result["VirtualMFADevices"]
    ]
    app.emit(result, lambda: out.table(rows, MFA_COLUMNS, "No virtual MFA devices."))


@iam.command("delete-virtual-mfa-device")
@_serial_option
@output_option
@pass_app
def delete_virtual_mfa_device(app: App, serial_number: str) -> None:
    """Delete a virtual MFA device that is not enabled for anyone.

    \b
    Example:
      authbridge iam delete-virtual-mfa-device \\
          --serial-number arn:aws:iam::111122223333:mfa/alice-phone
    """
    app.admin("DeleteVirtualMFADevice", {"SerialNumber": serial_number})
    app.emit(None, lambda: f"Deleted {serial_number}.")


# -- sign-in sessions ----------------------------------------------------------------------


@iam.command("revoke-sessions")
@click.option("--user-name", metavar="NAME", help="End the sessions of this user.")
@click.option(
    "--role-name",
    metavar="NAME",
    help="End the sign-ins through an identity provider that work as this role.",
)
@output_option
@pass_app
def revoke_sessions(app: App, user_name: str | None, role_name: str | None) -> None:
    """End every sign-in session of a user, or of the people working as a role.

    With --user-name: the user's `authbridge login` sessions and browser ones.
    With --role-name: every sign-in through an identity provider that picked
    the role. Their refresh tokens stop working, and every token issued from
    those sessions (the sts token, the cluster tokens exchanged from it, role
    sessions) is refused at once by reviews and the token endpoint, in every
    replica. They sign in again. Disabling or deleting the user, or deleting
    the role, does this too. Over the admin API: iam:RevokeSessions (on the
    user), iam:RevokeRoleSessions (on the role).

    \b
    Example:
      authbridge iam revoke-sessions --user-name alice
      authbridge iam revoke-sessions --role-name deployers
    """
    if (user_name is None) == (role_name is None):
        raise click.UsageError("give exactly one of --user-name and --role-name")
    if role_name is not None:
        doc = app.admin("RevokeRoleSessions", {"RoleName": role_name})
        whose = f"role {role_name}"
    else:
        doc = app.admin("RevokeSessions", {"UserName": user_name})
        whose = f"user {user_name}"
    count = int((doc or {}).get("SessionsRevoked", 0))
    app.emit(
        doc,
        lambda: f"Ended {count} sign-in session{'' if count == 1 else 's'} of {whose}.",
    )
