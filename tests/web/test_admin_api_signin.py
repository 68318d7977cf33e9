"""The sign-in actions of the admin API (``POST /api/iam``) through Flask's test client.

Covers: every action of :data:`authbridge.admin.signin.ACTIONS` answering in
AWS shapes (and what the CLI prints for the same store); errors mapped to
codes (NoSuchEntity 404, EntityAlreadyExists and DeleteConflict 409, a
policy violation and bad codes 400 naming the field, never the value);
strict parameters (a password as a number, an out-of-bounds policy value,
an unknown field); authorization on the user's ARN and the device's ARN
(IAMSelfManageCredentials manages only the caller's own login profile and
devices, ReadOnly cannot create); the password and seed never in the audit
line of the call; RevokeSessions ends a user's sessions, and IAMReadOnlyAccess
may not call it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authbridge.admin import signin
from authbridge.audit import AuditLog
from authbridge.iam import passwords, totp
from authbridge.iam.passwords import PasswordPolicy
from authbridge.settings import Settings
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT
from tests.web.helpers import World, key_auth, user_token
from tests.web.test_admin_api import (
    ADMIN,
    ADMINISTRATOR,
    READ_ONLY,
    SELF_MANAGE,
    api_error,
    bearer,
    call,
    ok,
    run_cli,
)

PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
def admin(client: FlaskClient, world: World, app_store: SqlStore) -> dict[str, str]:
    """bob, with AdministratorAccess, calling with an admin-audience token."""
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    return bearer(user_token(client, world.bob_key, ADMIN))


def codes(seed: str, ahead: int = 0) -> tuple[str, str]:
    secret = base64.b32decode(seed)
    step = totp.step_at(time.time()) + ahead
    return totp.hotp(secret, step - 1), totp.hotp(secret, step)


def test_every_sign_in_action_answers(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    seen: set[str] = set()

    def do(action: str, **params: object) -> object:
        seen.add(action)
        return ok(client, "iam", action, admin, **params)

    created = do(
        "CreateLoginProfile", UserName="alice", Password=PASSWORD, PasswordResetRequired=True
    )
    assert isinstance(created, dict)
    profile = created["LoginProfile"]
    assert set(profile) == {"UserName", "CreateDate", "PasswordResetRequired"}
    assert profile["PasswordResetRequired"] is True
    assert do("GetLoginProfile", UserName="alice") == created
    assert do("UpdateLoginProfile", UserName="alice", PasswordResetRequired=False) == {}
    assert do("UpdateLoginProfile", UserName="alice", Password="Another-Horse-7") == {}
    assert do("DeleteLoginProfile", UserName="alice") == {}

    assert (
        do(
            "UpdateAccountPasswordPolicy",
            MinimumPasswordLength=12,
            RequireNumbers=True,
            PasswordReusePrevention=5,
        )
        == {}
    )
    got = do("GetAccountPasswordPolicy")
    assert isinstance(got, dict)
    assert got["PasswordPolicy"]["MinimumPasswordLength"] == 12
    assert got["PasswordPolicy"]["PasswordReusePrevention"] == 5
    assert got["PasswordPolicy"]["RequireSymbols"] is False
    assert do("DeleteAccountPasswordPolicy") == {}

    new = do("CreateVirtualMFADevice", VirtualMFADeviceName="alice-phone")
    assert isinstance(new, dict)
    device = new["VirtualMFADevice"]
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    assert device["SerialNumber"] == serial and len(device["Base32StringSeed"]) == 32
    c1, c2 = codes(device["Base32StringSeed"])
    assert (
        do(
            "EnableMFADevice",
            UserName="alice",
            SerialNumber=serial,
            AuthenticationCode1=c1,
            AuthenticationCode2=c2,
        )
        == {}
    )
    r1, r2 = codes(device["Base32StringSeed"], ahead=2)
    assert (
        do(
            "ResyncMFADevice",
            UserName="alice",
            SerialNumber=serial,
            AuthenticationCode1=r1,
            AuthenticationCode2=r2,
        )
        == {}
    )
    listed = do("ListMFADevices", UserName="alice")
    assert isinstance(listed, dict)
    [entry] = listed["MFADevices"]
    assert entry["UserName"] == "alice" and entry["SerialNumber"] == serial
    virtual = do("ListVirtualMFADevices", AssignmentStatus="Assigned")
    assert isinstance(virtual, dict)
    assert virtual["VirtualMFADevices"][0]["User"]["Arn"] == world.alice.arn
    assert device["Base32StringSeed"] not in json.dumps(virtual)
    assert do("DeactivateMFADevice", UserName="alice", SerialNumber=serial) == {}
    assert do("DeleteVirtualMFADevice", SerialNumber=serial) == {}

    assert do("RevokeSessions", UserName="alice") == {"UserName": "alice", "SessionsRevoked": 0}
    assert do("RevokeRoleSessions", RoleName="Dev") == {"RoleName": "Dev", "SessionsRevoked": 0}

    assert seen == {a.name for a in signin.ACTIONS}


def test_errors_map_to_codes_and_never_echo_secrets(
    client: FlaskClient, admin: dict[str, str], app_store: SqlStore
) -> None:
    api_error(
        call(client, "iam", "GetLoginProfile", admin, UserName="alice"),
        404,
        "NoSuchEntity",
        "no login profile",
    )
    api_error(call(client, "iam", "GetAccountPasswordPolicy", admin), 404, "NoSuchEntity")
    weak = "weakpw12"
    app_store.update_account_password_policy(
        ACCOUNT, PasswordPolicy(minimum_length=20, require_symbols=True)
    )
    message = api_error(
        call(client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=weak),
        400,
        "PasswordPolicyViolation",
        "MinimumPasswordLength",
        "RequireSymbols",
    )
    assert weak not in message
    app_store.delete_account_password_policy(ACCOUNT)
    ok(client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=PASSWORD)
    api_error(
        call(client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=PASSWORD),
        409,
        "EntityAlreadyExists",
    )
    api_error(
        call(client, "iam", "DeleteUser", admin, UserName="alice"),
        409,
        "DeleteConflict",
        "login profile",
    )
    api_error(
        call(client, "iam", "UpdateLoginProfile", admin, UserName="alice"),
        400,
        "ValidationError",
        "nothing to change",
    )
    device = ok(client, "iam", "CreateVirtualMFADevice", admin, VirtualMFADeviceName="p")[
        "VirtualMFADevice"
    ]
    c1, c2 = codes(device["Base32StringSeed"])
    message = api_error(
        call(
            client,
            "iam",
            "EnableMFADevice",
            admin,
            UserName="alice",
            SerialNumber=device["SerialNumber"],
            AuthenticationCode1=c2,
            AuthenticationCode2=c2,
        ),
        400,
        "InvalidAuthenticationCode",
        "AuthenticationCode1",
    )
    assert c2 not in message
    api_error(
        call(client, "iam", "CreateVirtualMFADevice", admin, VirtualMFADeviceName="P"),
        409,
        "EntityAlreadyExists",
    )
    api_error(
        call(client, "iam", "DeleteVirtualMFADevice", admin, SerialNumber="not-an-arn"),
        400,
        "ValidationError",
        "SerialNumber",
    )


def test_parameters_are_checked_strictly(client: FlaskClient, admin: dict[str, str]) -> None:
    for params, field in [
        ({"UserName": "alice", "Password": 12345678}, "Password"),
        ({"UserName": "alice"}, "Password"),
        ({"UserName": "alice", "Password": "x" * 3000}, "Password"),
        ({"UserName": "alice", "Password": PASSWORD, "Pasword": PASSWORD}, "Pasword"),
    ]:
        message = api_error(
            call(client, "iam", "CreateLoginProfile", admin, **params), 400, "ValidationError"
        )
        assert field in message and PASSWORD not in message and "x" * 50 not in message
    for params, field in [
        ({"MinimumPasswordLength": 7}, "MinimumPasswordLength"),
        ({"MinimumPasswordLength": 129}, "MinimumPasswordLength"),
        ({"PasswordReusePrevention": 25}, "PasswordReusePrevention"),
        ({"MaxPasswordAge": 0}, "MaxPasswordAge"),
        ({"RequireSymbols": "yes"}, "RequireSymbols"),
    ]:
        api_error(
            call(client, "iam", "UpdateAccountPasswordPolicy", admin, **params),
            400,
            "ValidationError",
            field,
        )
    api_error(
        call(client, "iam", "ListVirtualMFADevices", admin, AssignmentStatus="Both"),
        400,
        "ValidationError",
        "AssignmentStatus",
    )


def test_self_manage_credentials_only_touches_own_sign_in(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    """Attack: a user with self-service rights enrolling MFA or a password for someone else."""
    app_store.attach_policy(ACCOUNT, "user", "bob", SELF_MANAGE)
    bob = key_auth(world.bob_key)
    own = ok(client, "iam", "CreateVirtualMFADevice", bob, VirtualMFADeviceName="bob")
    c1, c2 = codes(own["VirtualMFADevice"]["Base32StringSeed"])
    ok(
        client,
        "iam",
        "EnableMFADevice",
        bob,
        UserName="bob",
        SerialNumber=own["VirtualMFADevice"]["SerialNumber"],
        AuthenticationCode1=c1,
        AuthenticationCode2=c2,
    )
    assert len(ok(client, "iam", "ListMFADevices", bob, UserName="bob")["MFADevices"]) == 1
    alice = world.alice.arn
    for action, params, resource in [
        (
            "CreateVirtualMFADevice",
            {"VirtualMFADeviceName": "alice"},
            f"arn:aws:iam::{ACCOUNT}:mfa/alice",
        ),
        ("ListMFADevices", {"UserName": "alice"}, alice),
        ("CreateLoginProfile", {"UserName": "alice", "Password": PASSWORD}, alice),
        ("UpdateAccountPasswordPolicy", {"MinimumPasswordLength": 8}, "*"),
    ]:
        message = api_error(call(client, "iam", action, bob, **params), 403, "AccessDenied")
        assert f"on resource: {resource} " in message, message
    api_error(
        call(client, "iam", "CreateLoginProfile", bob, UserName="bob", Password=PASSWORD),
        403,
        "AccessDenied",
    )  # self-service may change a password, not create one


def test_read_only_cannot_create(client: FlaskClient, world: World, app_store: SqlStore) -> None:
    app_store.attach_policy(ACCOUNT, "user", "bob", READ_ONLY)
    bob = key_auth(world.bob_key)
    assert ok(client, "iam", "ListVirtualMFADevices", bob) == {"VirtualMFADevices": []}
    api_error(
        call(client, "iam", "CreateVirtualMFADevice", bob, VirtualMFADeviceName="x"),
        403,
        "AccessDenied",
    )


def test_the_audit_line_holds_neither_password_nor_seed(
    tmp_path: Path, make_app: Callable[..., Flask], world: World, app_store: SqlStore
) -> None:
    audit_file = tmp_path / "audit.log"
    app = make_app()
    app.extensions["authbridge.audit"] = AuditLog(audit_file)
    client = app.test_client()
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    headers = key_auth(world.bob_key)
    ok(client, "iam", "CreateLoginProfile", headers, UserName="alice", Password=PASSWORD)
    seed = ok(client, "iam", "CreateVirtualMFADevice", headers, VirtualMFADeviceName="p")[
        "VirtualMFADevice"
    ]["Base32StringSeed"]
    text = audit_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["action"] for line in lines] == [
        "iam:CreateLoginProfile",
        "iam:CreateVirtualMFADevice",
    ]
    assert lines[0]["targets"] == [world.alice.arn]
    assert lines[1]["targets"] == [f"arn:aws:iam::{ACCOUNT}:mfa/p"]
    assert PASSWORD not in text and seed not in text


def test_the_api_answers_what_the_cli_prints(
    tmp_path: Path,
    client: FlaskClient,
    admin: dict[str, str],
    app_store: SqlStore,
    settings: Settings,
) -> None:
    dsn = f"sqlite:///{tmp_path}/web/authbridge.db"
    ok(client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=PASSWORD)
    ok(client, "iam", "UpdateAccountPasswordPolicy", admin, MaxPasswordAge=30)
    ok(client, "iam", "CreateVirtualMFADevice", admin, VirtualMFADeviceName="p")
    pairs = [
        (("GetLoginProfile", {"UserName": "alice"}), ("get-login-profile", "--user-name", "alice")),
        (("GetAccountPasswordPolicy", {}), ("get-account-password-policy",)),
        (("ListVirtualMFADevices", {}), ("list-virtual-mfa-devices",)),
        (("ListMFADevices", {"UserName": "alice"}), ("list-mfa-devices", "--user-name", "alice")),
    ]
    for (action, params), argv in pairs:
        assert ok(client, "iam", action, admin, **params) == run_cli(settings, dsn, "iam", *argv), (
            action
        )


def test_a_login_flood_is_429_when_no_hashing_slot_frees(
    client: FlaskClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: flooding password hashing to take the server's cores: refused, not queued."""
    hasher = passwords.shared_hasher()
    monkeypatch.setattr(hasher, "wait_seconds", 0.01)
    taken = [hasher._slots.acquire(timeout=5) for _ in range(hasher.slots)]
    try:
        response = call(
            client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=PASSWORD
        )
        api_error(response, 429, "Throttling", "try again")
        assert response.headers["Retry-After"] == "1"
    finally:
        for ok_taken in taken:
            if ok_taken:
                hasher._slots.release()
    ok(client, "iam", "CreateLoginProfile", admin, UserName="alice", Password=PASSWORD)


def test_revoke_sessions_ends_a_users_sessions_and_read_only_cannot(
    client: FlaskClient, admin: dict[str, str], world: World, app_store: SqlStore
) -> None:
    from authbridge import signin as service

    now = time.time()
    _, cookie = service.start_browser_session(
        app_store, user_id=world.alice.user_id, mfa=False, address=None, now=now
    )
    app_store.attach_policy(ACCOUNT, "user", "alice", READ_ONLY)
    reader = bearer(user_token(client, world.alice_key, ADMIN))
    api_error(call(client, "iam", "RevokeSessions", reader, UserName="alice"), 403, "AccessDenied")
    assert service.browser_session(app_store, cookie, now) is not None
    got = ok(client, "iam", "RevokeSessions", admin, UserName="alice")
    assert got == {"UserName": "alice", "SessionsRevoked": 1}
    assert service.browser_session(app_store, cookie, now) is None
    api_error(call(client, "iam", "RevokeSessions", admin, UserName="nobody"), 404, "NoSuchEntity")
