"""The sign-in actions: login profiles, the account password policy, virtual MFA devices.

Each function is one ``authbridge iam …`` verb and returns the document
``authbridge -o json`` prints for it, in ``aws iam``'s shapes
(``{"LoginProfile": …}``, ``{"PasswordPolicy": …}``, ``{"VirtualMFADevice":
…}``, ``{"MFADevices": […]}``); the verbs AWS answers with nothing answer
``None`` (``{}`` on the API). :data:`ACTIONS` serves them on ``POST
/api/iam``: login profile and MFA actions act on the user's ARN (and the
device's ``arn:…:mfa/NAME``); the password policy, which IAM has no
resource type for, and the List of virtual devices on ``*``.

``RevokeSessions`` (``iam:RevokeSessions``, on the user's ARN; AWS has no
such IAM call, the name follows its verbs) ends every sign-in session of a
user, browser and CLI: refresh tokens stop working and every token carrying
one of those ``sid`` claims is refused by reviews and the token endpoint at
once. It answers ``{"UserName": …, "SessionsRevoked": <how many were open>}``.
``RevokeRoleSessions`` (``iam:RevokeRoleSessions``, on the role's ARN) does
the same for every sign-in through an identity provider that picked the role
(``{"RoleName": …, "SessionsRevoked": …}``).

Secrets: a password comes in (``Password``) and never goes out, not even
hashed; a device's seed goes out once, in CreateVirtualMFADevice's answer.
Neither is ever in an audit line (the audit names actions and ARNs only).

Decisions where the API differs from ``aws iam``: ``Base32StringSeed`` is
the base32 text an authenticator app takes (AWS's API sends the bytes
base64-encoded; its CLI writes this text to ``--outfile``) and
``OtpauthUri`` is the ``otpauth://`` URI (what AWS's ``QRCodePNG`` draws);
ListMFADevices requires ``UserName``; codes that do not enable a device
are ``InvalidAuthenticationCode`` with status 400 (AWS: 403), since no
authorization failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from authbridge.admin.actions import Action, Document, Handler, Target, anywhere, iam_action
from authbridge.admin.iam import entity_arn
from authbridge.admin.params import Param
from authbridge.errors import InputError
from authbridge.iam import passwords, signin
from authbridge.iam.passwords import PasswordPolicy
from authbridge.signin import end_user_sessions
from authbridge.store.base import Store

# --------------------------------------------------------------------------- handlers


def create_login_profile(
    store: Store, account: str, user_name: str, password: str, password_reset_required: bool
) -> Document:
    profile = store.create_login_profile(
        account, user_name, password, password_reset_required=password_reset_required
    )
    return {"LoginProfile": profile.to_aws()}


def get_login_profile(store: Store, account: str, user_name: str) -> Document:
    return {"LoginProfile": store.get_login_profile(account, user_name).to_aws()}


def update_login_profile(
    store: Store,
    account: str,
    user_name: str,
    password: str | None,
    password_reset_required: bool | None,
) -> None:
    if password is None and password_reset_required is None:
        raise InputError(
            "Password",
            "nothing to change",
            hint="give a new password, --password-reset-required or --no-password-reset-required",
        )
    store.update_login_profile(
        account, user_name, password=password, password_reset_required=password_reset_required
    )


def delete_login_profile(store: Store, account: str, user_name: str) -> None:
    store.delete_login_profile(account, user_name)


def update_account_password_policy(store: Store, account: str, policy: PasswordPolicy) -> None:
    store.update_account_password_policy(account, policy)


def get_account_password_policy(store: Store, account: str) -> Document:
    return {"PasswordPolicy": store.get_account_password_policy(account).to_aws()}


def delete_account_password_policy(store: Store, account: str) -> None:
    store.delete_account_password_policy(account)


def create_virtual_mfa_device(store: Store, account: str, name: str) -> Document:
    """``{"VirtualMFADevice": …}`` with the seed: the only document that ever holds it."""
    return {"VirtualMFADevice": store.create_virtual_mfa_device(account, name).to_aws()}


def enable_mfa_device(
    store: Store, account: str, user_name: str, serial_number: str, code1: str, code2: str
) -> None:
    store.enable_mfa_device(account, user_name, serial_number, code1, code2)


def resync_mfa_device(
    store: Store, account: str, user_name: str, serial_number: str, code1: str, code2: str
) -> None:
    store.resync_mfa_device(account, user_name, serial_number, code1, code2)


def deactivate_mfa_device(store: Store, account: str, user_name: str, serial_number: str) -> None:
    store.deactivate_mfa_device(account, user_name, serial_number)


def list_mfa_devices(store: Store, account: str, user_name: str) -> Document:
    return {"MFADevices": [d.to_aws_mfa() for d in store.list_mfa_devices(account, user_name)]}


def list_virtual_mfa_devices(store: Store, account: str, assignment_status: str) -> Document:
    devices = store.list_virtual_mfa_devices(account, assignment_status)
    return {"VirtualMFADevices": [d.to_aws_virtual() for d in devices]}


def delete_virtual_mfa_device(store: Store, account: str, serial_number: str) -> None:
    store.delete_virtual_mfa_device(account, serial_number)


def revoke_sessions(store: Store, account: str, user_name: str, now: float) -> Document:
    """End every sign-in session of the user (CLI and browser): their tokens die with them."""
    return {
        "UserName": user_name,
        "SessionsRevoked": end_user_sessions(store, account, user_name, now),
    }


def revoke_role_sessions(store: Store, account: str, role_name: str, now: float) -> Document:
    """End every federated sign-in session working as the role (browser and CLI)."""
    return {
        "RoleName": role_name,
        "SessionsRevoked": store.end_role_signin_sessions(account, role_name, "revoked", now),
    }


def policy_from_args(args: Mapping[str, Any]) -> PasswordPolicy:
    """The policy UpdateAccountPasswordPolicy's arguments give; a rule left out is its default."""
    return PasswordPolicy(
        minimum_length=args["minimum_length"],
        require_symbols=args["require_symbols"],
        require_numbers=args["require_numbers"],
        require_uppercase=args["require_uppercase"],
        require_lowercase=args["require_lowercase"],
        allow_users_to_change=args["allow_users_to_change"],
        max_age_days=args["max_age_days"],
        reuse_prevention=args["reuse_prevention"],
        hard_expiry=args["hard_expiry"],
    )


# --------------------------------------------------------------------------- resources


def mfa_arn(target: Target, name: object) -> str:
    assert isinstance(name, str)  # noqa: S101 - the schema made it a string
    signin.device_name(name)
    return f"arn:{target.partition}:iam::{target.account_id}:mfa/{name}"


def _user(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (entity_arn("user", target, args["user_name"]),)


def _role(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (entity_arn("role", target, args["role_name"]),)


def _user_and_device(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (*_user(target, args), args["serial_number"])


def _device(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (args["serial_number"],)


def _new_device(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (mfa_arn(target, args["name"]),)


# --------------------------------------------------------------------------- schema


USER_NAME = Param("UserName", "user_name", required=True)
ROLE_NAME = Param("RoleName", "role_name", required=True)
SERIAL = Param("SerialNumber", "serial_number", required=True)
# EnableMFADevice and ResyncMFADevice: a user's device and two consecutive codes of it.
MFA_CODES = (
    USER_NAME,
    SERIAL,
    Param("AuthenticationCode1", "code1", required=True),
    Param("AuthenticationCode2", "code2", required=True),
)


def _with_codes(operation: Callable[[Store, str, str, str, str, str], None]) -> Handler:
    """The handler of an action taking :data:`MFA_CODES`: ``operation`` on the target's store."""

    def run(t: Target, a: Mapping[str, Any]) -> None:
        operation(t.store, t.account_id, a["user_name"], a["serial_number"], a["code1"], a["code2"])

    return run


PASSWORD = Param("Password", "password", required=True)
_LOW, _HIGH = passwords.MIN_LENGTH_BOUNDS
POLICY_PARAMS: Final = (
    Param(
        "MinimumPasswordLength", "minimum_length", "integer", default=8, minimum=_LOW, maximum=_HIGH
    ),
    Param("RequireSymbols", "require_symbols", "boolean", default=False),
    Param("RequireNumbers", "require_numbers", "boolean", default=False),
    Param("RequireUppercaseCharacters", "require_uppercase", "boolean", default=False),
    Param("RequireLowercaseCharacters", "require_lowercase", "boolean", default=False),
    Param("AllowUsersToChangePassword", "allow_users_to_change", "boolean", default=False),
    Param(
        "MaxPasswordAge",
        "max_age_days",
        "integer",
        minimum=passwords.MAX_AGE_BOUNDS[0],
        maximum=passwords.MAX_AGE_BOUNDS[1],
    ),
    Param(
        "PasswordReusePrevention",
        "reuse_prevention",
        "integer",
        minimum=passwords.REUSE_BOUNDS[0],
        maximum=passwords.REUSE_BOUNDS[1],
    ),
    Param("HardExpiry", "hard_expiry", "boolean", default=False),
)


ACTIONS: Final[tuple[Action, ...]] = (
    iam_action(
        "CreateLoginProfile",
        "create-login-profile",
        (
            USER_NAME,
            PASSWORD,
            Param("PasswordResetRequired", "password_reset_required", "boolean", default=False),
        ),
        lambda t, a: create_login_profile(
            t.store, t.account_id, a["user_name"], a["password"], a["password_reset_required"]
        ),
        _user,
        mutating=True,
    ),
    iam_action(
        "GetLoginProfile",
        "get-login-profile",
        (USER_NAME,),
        lambda t, a: get_login_profile(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=False,
    ),
    iam_action(
        "UpdateLoginProfile",
        "update-login-profile",
        (
            USER_NAME,
            Param("Password", "password"),
            Param("PasswordResetRequired", "password_reset_required", "boolean"),
        ),
        lambda t, a: update_login_profile(
            t.store, t.account_id, a["user_name"], a["password"], a["password_reset_required"]
        ),
        _user,
        mutating=True,
    ),
    iam_action(
        "DeleteLoginProfile",
        "delete-login-profile",
        (USER_NAME,),
        lambda t, a: delete_login_profile(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=True,
    ),
    iam_action(
        "UpdateAccountPasswordPolicy",
        "update-account-password-policy",
        POLICY_PARAMS,
        lambda t, a: update_account_password_policy(t.store, t.account_id, policy_from_args(a)),
        anywhere,
        mutating=True,
    ),
    iam_action(
        "GetAccountPasswordPolicy",
        "get-account-password-policy",
        (),
        lambda t, a: get_account_password_policy(t.store, t.account_id),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "DeleteAccountPasswordPolicy",
        "delete-account-password-policy",
        (),
        lambda t, a: delete_account_password_policy(t.store, t.account_id),
        anywhere,
        mutating=True,
    ),
    iam_action(
        "CreateVirtualMFADevice",
        "create-virtual-mfa-device",
        (Param("VirtualMFADeviceName", "name", required=True),),
        lambda t, a: create_virtual_mfa_device(t.store, t.account_id, a["name"]),
        _new_device,
        mutating=True,
    ),
    iam_action(
        "EnableMFADevice",
        "enable-mfa-device",
        MFA_CODES,
        _with_codes(enable_mfa_device),
        _user_and_device,
        mutating=True,
    ),
    iam_action(
        "ResyncMFADevice",
        "resync-mfa-device",
        MFA_CODES,
        _with_codes(resync_mfa_device),
        _user_and_device,
        mutating=True,
    ),
    iam_action(
        "DeactivateMFADevice",
        "deactivate-mfa-device",
        (USER_NAME, SERIAL),
        lambda t, a: deactivate_mfa_device(
            t.store, t.account_id, a["user_name"], a["serial_number"]
        ),
        _user_and_device,
        mutating=True,
    ),
    iam_action(
        "ListMFADevices",
        "list-mfa-devices",
        (USER_NAME,),
        lambda t, a: list_mfa_devices(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=False,
    ),
    iam_action(
        "ListVirtualMFADevices",
        "list-virtual-mfa-devices",
        (
            Param(
                "AssignmentStatus",
                "assignment_status",
                default="Any",
                choices=("Assigned", "Unassigned", "Any"),
            ),
        ),
        lambda t, a: list_virtual_mfa_devices(t.store, t.account_id, a["assignment_status"]),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "DeleteVirtualMFADevice",
        "delete-virtual-mfa-device",
        (SERIAL,),
        lambda t, a: delete_virtual_mfa_device(t.store, t.account_id, a["serial_number"]),
        _device,
        mutating=True,
    ),
    iam_action(
        "RevokeSessions",
        "revoke-sessions",
        (USER_NAME,),
        lambda t, a: revoke_sessions(t.store, t.account_id, a["user_name"], t.now()),
        _user,
        mutating=True,
    ),
    iam_action(
        "RevokeRoleSessions",
        "revoke-sessions",
        (ROLE_NAME,),
        lambda t, a: revoke_role_sessions(t.store, t.account_id, a["role_name"], t.now()),
        _role,
        mutating=True,
    ),
)
