"""Sign-in in the store, on SQLite and PostgreSQL: login profiles, password policy, virtual MFA.

Covers: a login profile's lifecycle (one per user, the hash never leaves
the store in a value, the policy checked on create and update with every
broken rule named, reuse prevention against the last N hashes, the reset
flag); the account password policy (NoSuchEntity until set, replaced whole,
deleted); virtual MFA devices (serial ARN, names unique case-insensitively,
the secret sealed at rest and not in the row as plaintext, a row's sealed
secret moved to another row does not open, enabling with two consecutive
codes, at most one user per device, deactivate, delete only when
deactivated, a device of another account is not found); deleting a user
with a login profile or device is a DeleteConflict naming them, ``force``
removes them; the schema has migration 5.
"""

from __future__ import annotations

import base64

import pytest

from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidAuthenticationCode,
    KeyStoreError,
    NoSuchEntity,
    PasswordPolicyViolation,
)
from authbridge.iam import totp
from authbridge.iam.passwords import Argon2Params, PasswordHasher, PasswordPolicy
from authbridge.store import SqlStore
from authbridge.store.migrations import LATEST_VERSION
from tests.conftest import ACCOUNT, OTHER_ACCOUNT

FAST = PasswordHasher(Argon2Params(time_cost=1, memory_kib=64, parallelism=1))
NOW = 1_800_000_000.0
PASSWORD = "Correct-Horse-9"


def two_codes(secret: bytes, now: float = NOW) -> tuple[str, str]:
    step = totp.step_at(now)
    return totp.hotp(secret, step - 1), totp.hotp(secret, step)


@pytest.fixture
def alice(store: SqlStore) -> SqlStore:
    store.create_user(ACCOUNT, "alice")
    return store


def test_schema_has_the_signin_migration(store: SqlStore) -> None:
    assert LATEST_VERSION >= 5 and store.schema_version() == LATEST_VERSION


# --------------------------------------------------------------------------- login profiles


def test_login_profile_lifecycle(alice: SqlStore) -> None:
    created = alice.create_login_profile(
        ACCOUNT, "Alice", PASSWORD, password_reset_required=True, hasher=FAST
    )
    assert created.user_name == "alice" and created.password_reset_required
    assert created.to_aws() == {
        "UserName": "alice",
        "CreateDate": created.to_aws()["CreateDate"],
        "PasswordResetRequired": True,
    }
    assert "hash" not in repr(created).lower()
    got = alice.get_login_profile(ACCOUNT, "alice")
    assert got == created
    with pytest.raises(EntityAlreadyExists, match="already has a login profile"):
        alice.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=FAST)
    cleared = alice.update_login_profile(ACCOUNT, "alice", password_reset_required=False)
    assert not cleared.password_reset_required
    changed = alice.update_login_profile(ACCOUNT, "alice", password="Another-Horse-7", hasher=FAST)
    assert changed.password_changed_at >= created.password_changed_at
    alice.delete_login_profile(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity, match="no login profile"):
        alice.get_login_profile(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity):
        alice.delete_login_profile(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity):
        alice.update_login_profile(ACCOUNT, "alice", password_reset_required=True)


def test_login_profile_of_unknown_user(store: SqlStore) -> None:
    with pytest.raises(NoSuchEntity, match="user nobody does not exist"):
        store.create_login_profile(ACCOUNT, "nobody", PASSWORD, hasher=FAST)


def test_the_stored_hash_is_argon2id(alice: SqlStore) -> None:
    alice.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=FAST)
    facts = alice.login_facts(ACCOUNT, "alice", "192.0.2.1", NOW)
    assert facts.password_hash is not None and facts.password_hash.startswith("$argon2id$")
    assert PASSWORD not in facts.password_hash
    assert "argon2" not in repr(facts)  # the hash is kept out of the repr


def test_the_password_policy_is_enforced_naming_every_rule(alice: SqlStore) -> None:
    with pytest.raises(NoSuchEntity, match="no password policy"):
        alice.get_account_password_policy(ACCOUNT)
    with pytest.raises(PasswordPolicyViolation, match="MinimumPasswordLength"):
        alice.create_login_profile(ACCOUNT, "alice", "short", hasher=FAST)  # default: 8
    policy = PasswordPolicy(
        minimum_length=12, require_numbers=True, require_symbols=True, reuse_prevention=2
    )
    assert alice.update_account_password_policy(ACCOUNT, policy) == policy
    assert alice.get_account_password_policy(ACCOUNT) == policy
    with pytest.raises(PasswordPolicyViolation) as err:
        alice.create_login_profile(ACCOUNT, "alice", "abcdefgh", hasher=FAST)
    message = str(err.value)
    assert "MinimumPasswordLength" in message and "RequireNumbers" in message
    assert "RequireSymbols" in message and "abcdefgh" not in message
    with pytest.raises(NoSuchEntity):
        alice.get_login_profile(ACCOUNT, "alice")  # nothing was written
    alice.create_login_profile(ACCOUNT, "alice", "first-password-1", hasher=FAST)
    alice.update_login_profile(ACCOUNT, "alice", password="second-password-2", hasher=FAST)
    for reused in ("first-password-1", "second-password-2"):
        with pytest.raises(PasswordPolicyViolation, match="PasswordReusePrevention"):
            alice.update_login_profile(ACCOUNT, "alice", password=reused, hasher=FAST)
    alice.update_login_profile(ACCOUNT, "alice", password="third-password-3", hasher=FAST)
    # Two back is now three back: allowed again with PasswordReusePrevention = 2.
    alice.update_login_profile(ACCOUNT, "alice", password="first-password-1", hasher=FAST)
    # Replaced whole: rules left out are back to their defaults.
    alice.update_account_password_policy(ACCOUNT, PasswordPolicy(minimum_length=9))
    assert alice.get_account_password_policy(ACCOUNT).reuse_prevention is None
    alice.delete_account_password_policy(ACCOUNT)
    with pytest.raises(NoSuchEntity):
        alice.delete_account_password_policy(ACCOUNT)


def test_the_policy_is_per_account(alice: SqlStore) -> None:
    alice.create_account(OTHER_ACCOUNT)
    alice.update_account_password_policy(ACCOUNT, PasswordPolicy(minimum_length=20))
    with pytest.raises(NoSuchEntity):
        alice.get_account_password_policy(OTHER_ACCOUNT)


# --------------------------------------------------------------------------- MFA devices


def test_virtual_mfa_device_lifecycle(alice: SqlStore) -> None:
    new = alice.create_virtual_mfa_device(ACCOUNT, "alice-phone")
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    assert new.device.serial_number == serial and len(new.secret) == 20
    doc = new.to_aws()
    assert doc["Base32StringSeed"] == totp.base32_secret(new.secret)
    assert doc["OtpauthUri"].startswith("otpauth://totp/authbridge:alice-phone?secret=")
    assert "secret" not in repr(new).replace("NewVirtualMfaDevice", "")
    with pytest.raises(EntityAlreadyExists, match="case-insensitive"):
        alice.create_virtual_mfa_device(ACCOUNT, "ALICE-PHONE")
    [listed] = alice.list_virtual_mfa_devices(ACCOUNT)
    assert listed.to_aws_virtual() == {"SerialNumber": serial}
    assert alice.list_virtual_mfa_devices(ACCOUNT, "Assigned") == []
    assert alice.list_mfa_devices(ACCOUNT, "alice") == []

    c1, c2 = two_codes(new.secret)
    enabled = alice.enable_mfa_device(ACCOUNT, "alice", serial, c1, c2, now=NOW)
    assert enabled.user_name == "alice" and enabled.enabled_at is not None
    [mine] = alice.list_mfa_devices(ACCOUNT, "alice")
    assert mine.to_aws_mfa()["SerialNumber"] == serial and mine.to_aws_mfa()["UserName"] == "alice"
    [assigned] = alice.list_virtual_mfa_devices(ACCOUNT, "Assigned")
    assert assigned.to_aws_virtual()["User"]["UserName"] == "alice"
    assert alice.list_virtual_mfa_devices(ACCOUNT, "Unassigned") == []
    with pytest.raises(InputError, match="AssignmentStatus"):
        alice.list_virtual_mfa_devices(ACCOUNT, "Both")

    with pytest.raises(DeleteConflict, match="deactivate"):
        alice.delete_virtual_mfa_device(ACCOUNT, serial)
    alice.create_user(ACCOUNT, "bob")
    d1, d2 = two_codes(new.secret, NOW + 60)
    with pytest.raises(EntityAlreadyExists, match="already enabled"):
        alice.enable_mfa_device(ACCOUNT, "bob", serial, d1, d2, now=NOW + 60)
    with pytest.raises(NoSuchEntity, match="not enabled for user bob"):
        alice.deactivate_mfa_device(ACCOUNT, "bob", serial)
    alice.deactivate_mfa_device(ACCOUNT, "alice", serial)
    assert alice.list_mfa_devices(ACCOUNT, "alice") == []
    alice.delete_virtual_mfa_device(ACCOUNT, serial)
    with pytest.raises(NoSuchEntity):
        alice.delete_virtual_mfa_device(ACCOUNT, serial)


@pytest.mark.parametrize(
    "codes",
    [
        ("same", "same"),
        ("wrong", "wrong"),
        ("reversed", "reversed"),
    ],
)
def test_enabling_refuses_codes_that_are_not_two_consecutive(
    alice: SqlStore, codes: tuple[str, str]
) -> None:
    new = alice.create_virtual_mfa_device(ACCOUNT, "phone")
    c1, c2 = two_codes(new.secret)
    pick = {
        "same": (c2, c2),
        "wrong": (_other(c1), _other(c2)),
        "reversed": (c2, c1),
    }[codes[0]]
    with pytest.raises(InvalidAuthenticationCode) as err:
        alice.enable_mfa_device(ACCOUNT, "alice", new.device.serial_number, *pick, now=NOW)
    assert c1 not in str(err.value) and c2 not in str(err.value)
    assert alice.list_mfa_devices(ACCOUNT, "alice") == []


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.mark.parametrize(
    "serial", ["", "phone", "arn:aws:iam::111122223333:user/phone", "x" * 5000]
)
def test_malformed_serials_are_validation_errors(alice: SqlStore, serial: str) -> None:
    with pytest.raises(InputError) as err:
        alice.delete_virtual_mfa_device(ACCOUNT, serial)
    assert err.value.field == "SerialNumber"


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 227, "é"])
def test_bad_device_names(alice: SqlStore, name: str) -> None:
    with pytest.raises(InputError) as err:
        alice.create_virtual_mfa_device(ACCOUNT, name)
    assert err.value.field == "VirtualMFADeviceName"


def test_a_device_of_another_account_is_not_found(alice: SqlStore) -> None:
    alice.create_account(OTHER_ACCOUNT)
    theirs = alice.create_virtual_mfa_device(OTHER_ACCOUNT, "phone")
    c1, c2 = two_codes(theirs.secret)
    with pytest.raises(NoSuchEntity):
        alice.enable_mfa_device(ACCOUNT, "alice", theirs.device.serial_number, c1, c2, now=NOW)
    with pytest.raises(NoSuchEntity):
        alice.delete_virtual_mfa_device(ACCOUNT, theirs.device.serial_number)


def _rows(store: SqlStore, sql: str) -> list[tuple[object, ...]]:
    with store._tx() as cur:
        return cur.execute(sql)


def test_the_seed_is_sealed_at_rest(alice: SqlStore) -> None:
    """Attack: a database dump read for TOTP secrets; the row holds only a sealed value."""
    new = alice.create_virtual_mfa_device(ACCOUNT, "phone")
    [(sealed, seal_id)] = _rows(alice, "SELECT sealed_secret, seal_id FROM iam_mfa_devices")
    assert isinstance(sealed, str) and sealed.startswith("v1.")
    b32 = totp.base32_secret(new.secret)
    assert b32 not in sealed and base64.urlsafe_b64encode(new.secret).decode() not in sealed
    assert new.secret.hex() not in sealed and seal_id


def test_a_sealed_seed_moved_to_another_row_does_not_open(alice: SqlStore) -> None:
    """Attack: copying a known device's sealed secret into a victim's device row."""
    mine = alice.create_virtual_mfa_device(ACCOUNT, "mine")
    alice.create_virtual_mfa_device(ACCOUNT, "victim")
    with alice._tx(write=True) as cur:
        sealed = cur.execute("SELECT sealed_secret FROM iam_mfa_devices WHERE name = 'mine'")[0][0]
        cur.execute("UPDATE iam_mfa_devices SET sealed_secret = ? WHERE name = 'victim'", (sealed,))
    c1, c2 = two_codes(mine.secret)
    with pytest.raises(KeyStoreError, match="does not open"):
        alice.enable_mfa_device(
            ACCOUNT, "alice", f"arn:aws:iam::{ACCOUNT}:mfa/victim", c1, c2, now=NOW
        )


# --------------------------------------------------------------------------- deleting users


def test_deleting_a_user_with_sign_in_state_is_a_conflict(alice: SqlStore) -> None:
    alice.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=FAST)
    new = alice.create_virtual_mfa_device(ACCOUNT, "phone")
    alice.enable_mfa_device(
        ACCOUNT, "alice", new.device.serial_number, *two_codes(new.secret), now=NOW
    )
    with pytest.raises(DeleteConflict) as err:
        alice.delete_user(ACCOUNT, "alice")
    assert "login profile" in str(err.value) and new.device.serial_number in str(err.value)
    alice.delete_user(ACCOUNT, "alice", force=True)
    assert alice.list_virtual_mfa_devices(ACCOUNT) == []
    alice.create_user(ACCOUNT, "alice")  # a namesake starts with nothing
    with pytest.raises(NoSuchEntity):
        alice.get_login_profile(ACCOUNT, "alice")
    assert alice.login_facts(ACCOUNT, "alice", "192.0.2.1", NOW).password_hash is None


def test_deleting_a_user_after_removing_them(alice: SqlStore) -> None:
    alice.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=FAST)
    with pytest.raises(DeleteConflict, match="delete-login-profile"):
        alice.delete_user(ACCOUNT, "alice")
    alice.delete_login_profile(ACCOUNT, "alice")
    alice.delete_user(ACCOUNT, "alice")
