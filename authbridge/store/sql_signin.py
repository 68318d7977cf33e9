"""Sign-in over SQL: login profiles, the password policy, virtual MFA, failure counters.

Mixed into :class:`authbridge.store.sql.SqlStore`, so both backends share it
and ``tests/test_store_signin.py`` runs it on each. Values are
:mod:`authbridge.iam.signin`'s; the rules of passwords and codes are
:mod:`authbridge.iam.passwords`' and :mod:`authbridge.iam.totp`'s; the
sign-in check itself is :func:`authbridge.iam.login.verify_login`, which
calls :meth:`SqlSignin.login_facts` and the ``record_*`` methods here.

Rules, as AWS IAM has them where it has them:

* a user has at most one login profile (``EntityAlreadyExists``); a new
  password must pass the account's password policy (``PasswordPolicyViolation``
  naming every rule it breaks), and with ``PasswordReusePrevention`` = N it
  must differ from the last N (checked against their hashes, kept up to 24);
* a virtual MFA device's name is unique per account, case-insensitively; it
  is enabled for one user at a time, with two consecutive codes
  (``InvalidAuthenticationCode``), at most eight per user (``LimitExceeded``);
  an enabled device cannot be deleted (``DeleteConflict``: deactivate it);
* deleting a user that has a login profile or an MFA device is a
  ``DeleteConflict`` naming them (``force=True`` removes them with the user).

Passwords are hashed outside any transaction (argon2 takes tens of
milliseconds and a slot of the hashing semaphore); the write that follows
locks the user's row. TOTP secrets are sealed at rest with AES-256-GCM
under a key derived (HKDF-SHA-256) from the access-key pepper, the store's
one secret kept outside the database, with the serial number as associated
data: a database dump alone does not yield any device's secret, and a
sealed secret moved to another row does not open.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidAuthenticationCode,
    KeyStoreError,
    LimitExceeded,
    NoSuchEntity,
    PasswordPolicyViolation,
)
from authbridge.iam import credentials, login, names, passwords, signin, totp
from authbridge.iam.login import Counter, LoginFacts, MfaSecret
from authbridge.iam.passwords import PasswordHasher, PasswordPolicy
from authbridge.iam.signin import LoginProfile, MfaDevice, NewVirtualMfaDevice

if TYPE_CHECKING:
    from authbridge.iam.model import Account
    from authbridge.keys import Kek
    from authbridge.store.sql import Cursor, Driver, Row

MAX_HISTORY: Final = passwords.REUSE_BOUNDS[1]
_SEAL_INFO: Final = b"authbridge mfa seed seal v1"
_SERIAL: Final = re.compile(r"arn:([a-z-]{1,32}):iam::(\d{12}):mfa/([\w+=,.@-]{1,226})", re.ASCII)
_DEVICE_COLS: Final = (
    "d.serial_number, d.name, d.created_at, u.name, u.user_id, u.path, u.account_id, d.enabled_at"
)
ASSIGNMENT_STATUSES: Final = ("Assigned", "Unassigned", "Any")


def _now() -> int:
    return int(time.time())


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _subject(*parts: str) -> str:
    """A counter's key: a digest of the lowercased name and address as typed.

    Fixed-length whatever was typed (NUL bytes and megabytes included), and
    the names people mistype, or attackers try, are not kept in plain text.
    """
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"authbridge signin subject\0" + joined).hexdigest()[:40]


def _seal_aad(serial: str) -> bytes:
    return f"authbridge mfa seed|{serial}".encode()


class SqlSignin:
    """The sign-in half of the store protocol (:mod:`authbridge.store.base`), over SqlStore."""

    if TYPE_CHECKING:
        _db: Driver
        partition: str

        @property
        def _pepper(self) -> credentials.Pepper: ...
        def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]: ...
        def _account(self, cur: Cursor, account_id: str) -> Account: ...
        def _user_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...

    _seal_key: Kek | None = None

    # -- sealing ----------------------------------------------------------------------
    def _mfa_kek(self) -> Kek:
        if self._seal_key is None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            from authbridge.keys import Kek

            derived = HKDF(hashes.SHA256(), 32, salt=None, info=_SEAL_INFO).derive(
                self._pepper.value
            )
            self._seal_key = Kek(derived, "the access-key pepper")
        return self._seal_key

    def _open_secret(self, serial: str, sealed: str, seal_id: str) -> bytes:
        kek = self._mfa_kek()
        if seal_id != kek.kek_id:
            raise KeyStoreError(
                f"MFA device {serial} was sealed under another access-key pepper",
                hint="restore the access-key-pepper file it was created with",
            )
        try:
            return kek.open(sealed, _seal_aad(serial))
        except ValueError:
            raise KeyStoreError(
                f"the secret of MFA device {serial} does not open (altered or moved)",
                hint="delete the device and create a new one",
            ) from None

    # -- the account password policy ---------------------------------------------------------
    def get_account_password_policy(self, account_id: str) -> PasswordPolicy:
        """The account's policy; NoSuchEntity when it has set none (as AWS)."""
        with self._tx() as cur:
            self._account(cur, account_id)
            policy = self._policy(cur, account_id)
        if policy is None:
            raise NoSuchEntity(
                f"account {account_id} has no password policy",
                hint="set one with `authbridge iam update-account-password-policy`",
            )
        return policy

    def update_account_password_policy(
        self, account_id: str, policy: PasswordPolicy
    ) -> PasswordPolicy:
        """Replace the policy whole: a rule left out of ``policy`` is its default (as AWS)."""
        text = json.dumps(policy.to_json(), sort_keys=True)
        now = _now()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            cur.execute("DELETE FROM iam_password_policies WHERE account_id = ?", (account_id,))
            cur.execute(
                "INSERT INTO iam_password_policies (account_id, policy, updated_at)"
                " VALUES (?, ?, ?)",
                (account_id, text, now),
            )
        return policy

    def delete_account_password_policy(self, account_id: str) -> None:
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            cur.execute("DELETE FROM iam_password_policies WHERE account_id = ?", (account_id,))
            if cur.rowcount == 0:
                raise NoSuchEntity(f"account {account_id} has no password policy")

    def _policy(self, cur: Cursor, account_id: str) -> PasswordPolicy | None:
        rows = cur.execute(
            "SELECT policy FROM iam_password_policies WHERE account_id = ?", (account_id,)
        )
        return PasswordPolicy.from_aws(json.loads(rows[0][0])) if rows else None

    # -- login profiles -------------------------------------------------------------------
    def create_login_profile(
        self,
        account_id: str,
        user_name: str,
        password: str,
        *,
        password_reset_required: bool = False,
        hasher: PasswordHasher | None = None,
    ) -> LoginProfile:
        hasher = hasher or passwords.shared_hasher()
        with self._tx() as cur:
            user = self._user_row(cur, account_id, user_name)
            if self._profile_row(cur, user[0]):
                raise _profile_exists(user[2])
            policy = self._policy(cur, account_id) or passwords.DEFAULT_POLICY
        passwords.check_password(policy, password)
        digest = hasher.hash(password)
        now = _now()
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            if self._profile_row(cur, user[0]):
                raise _profile_exists(user[2])
            cur.execute(
                "INSERT INTO iam_login_profiles (user_id, password_hash, password_reset_required,"
                " created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)",
                (user[0], digest, int(password_reset_required), now, now),
            )
            cur.execute("DELETE FROM iam_password_history WHERE user_id = ?", (user[0],))
            self._push_history(cur, user[0], digest, now)
        return LoginProfile(user[2], user[0], _dt(now), _dt(now), password_reset_required)

    def get_login_profile(self, account_id: str, user_name: str) -> LoginProfile:
        with self._tx() as cur:
            user = self._user_row(cur, account_id, user_name)
            row = self._profile_row(cur, user[0])
        if not row:
            raise _no_profile(user[2])
        _, reset, created, changed = row[0]
        return LoginProfile(user[2], user[0], _dt(created), _dt(changed), bool(reset))

    def update_login_profile(
        self,
        account_id: str,
        user_name: str,
        *,
        password: str | None = None,
        password_reset_required: bool | None = None,
        hasher: PasswordHasher | None = None,
    ) -> LoginProfile:
        """A new password (checked by the policy, reuse included) and/or the reset flag."""
        hasher = hasher or passwords.shared_hasher()
        digest: str | None = None
        if password is not None:
            with self._tx() as cur:
                user = self._user_row(cur, account_id, user_name)
                if not self._profile_row(cur, user[0]):
                    raise _no_profile(user[2])
                policy = self._policy(cur, account_id) or passwords.DEFAULT_POLICY
                history = [
                    r[0]
                    for r in cur.execute(
                        "SELECT password_hash FROM iam_password_history WHERE user_id = ?"
                        " ORDER BY seq DESC",
                        (user[0],),
                    )
                ]
            passwords.check_password(policy, password)
            recent = history[: policy.reuse_prevention or 0]
            # Every recent hash is checked, even after a match: the time taken tells
            # nothing about which of them matched.
            reused = [hasher.verify(old, password) for old in recent]
            if any(reused):
                raise PasswordPolicyViolation(
                    [
                        f"PasswordReusePrevention: must differ from the last"
                        f" {policy.reuse_prevention} passwords"
                    ]
                )
            digest = hasher.hash(password)
        now = _now()
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            rows = self._profile_row(cur, user[0])
            if not rows:
                raise _no_profile(user[2])
            _, reset, created, changed = rows[0]
            if password_reset_required is not None:
                reset = int(password_reset_required)
            if digest is not None:
                changed = now
                cur.execute(
                    "UPDATE iam_login_profiles SET password_hash = ?, password_changed_at = ?"
                    " WHERE user_id = ?",
                    (digest, now, user[0]),
                )
                self._push_history(cur, user[0], digest, now)
            cur.execute(
                "UPDATE iam_login_profiles SET password_reset_required = ? WHERE user_id = ?",
                (int(reset), user[0]),
            )
        return LoginProfile(user[2], user[0], _dt(created), _dt(changed), bool(reset))

    def delete_login_profile(self, account_id: str, user_name: str) -> None:
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            cur.execute("DELETE FROM iam_login_profiles WHERE user_id = ?", (user[0],))
            if cur.rowcount == 0:
                raise _no_profile(user[2])
            cur.execute("DELETE FROM iam_password_history WHERE user_id = ?", (user[0],))

    def _profile_row(self, cur: Cursor, user_id: str) -> list[Row]:
        return cur.execute(
            "SELECT password_hash, password_reset_required, created_at, password_changed_at"
            " FROM iam_login_profiles WHERE user_id = ?",
            (user_id,),
        )

    @staticmethod
    def _push_history(cur: Cursor, user_id: str, digest: str, now: int) -> None:
        top = cur.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM iam_password_history WHERE user_id = ?", (user_id,)
        )[0][0]
        seq = int(top) + 1
        cur.execute(
            "INSERT INTO iam_password_history (user_id, seq, password_hash, changed_at)"
            " VALUES (?, ?, ?, ?)",
            (user_id, seq, digest, now),
        )
        cur.execute(
            "DELETE FROM iam_password_history WHERE user_id = ? AND seq <= ?",
            (user_id, seq - MAX_HISTORY),
        )

    # -- virtual MFA devices ------------------------------------------------------------------
    def create_virtual_mfa_device(self, account_id: str, name: str) -> NewVirtualMfaDevice:
        signin.device_name(name)
        secret = totp.new_secret()
        serial = f"arn:{self.partition}:iam::{account_id}:mfa/{name}"
        kek = self._mfa_kek()
        sealed = kek.seal(secret, _seal_aad(serial))
        now = _now()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            taken = cur.execute(
                "SELECT name FROM iam_mfa_devices WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            if taken:
                raise EntityAlreadyExists(
                    f"MFA device {taken[0][0]} already exists in account {account_id}"
                    " (names are case-insensitive)",
                    hint="choose another name, or delete it with"
                    " `authbridge iam delete-virtual-mfa-device`",
                )
            cur.execute(
                "INSERT INTO iam_mfa_devices (serial_number, account_id, name, name_key,"
                " sealed_secret, seal_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (serial, account_id, name, name.lower(), sealed, kek.kek_id, now),
            )
        return NewVirtualMfaDevice(MfaDevice(serial, name, _dt(now)), secret)

    def list_virtual_mfa_devices(
        self, account_id: str, assignment_status: str = "Any"
    ) -> list[MfaDevice]:
        if assignment_status not in ASSIGNMENT_STATUSES:
            raise InputError("AssignmentStatus", "must be one of " + ", ".join(ASSIGNMENT_STATUSES))
        where = {"Assigned": " AND d.user_id IS NOT NULL", "Unassigned": " AND d.user_id IS NULL"}
        with self._tx() as cur:
            self._account(cur, account_id)
            rows = cur.execute(
                f"SELECT {_DEVICE_COLS} FROM iam_mfa_devices d"
                " LEFT JOIN iam_users u ON u.user_id = d.user_id WHERE d.account_id = ?"
                + where.get(assignment_status, "")
                + " ORDER BY d.name_key",
                (account_id,),
            )
        return [self._device(r) for r in rows]

    def list_mfa_devices(self, account_id: str, user_name: str) -> list[MfaDevice]:
        with self._tx() as cur:
            user = self._user_row(cur, account_id, user_name)
            rows = cur.execute(
                f"SELECT {_DEVICE_COLS} FROM iam_mfa_devices d"
                " JOIN iam_users u ON u.user_id = d.user_id WHERE d.user_id = ?"
                " ORDER BY d.name_key",
                (user[0],),
            )
        return [self._device(r) for r in rows]

    def enable_mfa_device(
        self,
        account_id: str,
        user_name: str,
        serial_number: str,
        code1: str,
        code2: str,
        *,
        now: float | None = None,
    ) -> MfaDevice:
        """Assign the device to the user, once ``code1``, ``code2`` are consecutive codes of it."""
        first = totp.parse_code(code1, "AuthenticationCode1")
        second = totp.parse_code(code2, "AuthenticationCode2")
        at = _now() if now is None else now
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            row = self._device_row(cur, account_id, serial_number, lock=True)
            serial, sealed, seal_id, holder = row[0], row[1], row[2], row[3]
            if holder is not None:
                raise EntityAlreadyExists(
                    f"MFA device {serial} is already enabled for a user",
                    hint="deactivate it first with `authbridge iam deactivate-mfa-device`",
                )
            count = cur.execute(
                "SELECT COUNT(*) FROM iam_mfa_devices WHERE user_id = ?", (user[0],)
            )[0][0]
            if int(count) >= signin.MAX_MFA_DEVICES_PER_USER:
                raise LimitExceeded(
                    f"user {user[2]} already has {signin.MAX_MFA_DEVICES_PER_USER} MFA devices,"
                    " the most IAM allows"
                )
            secret = self._open_secret(serial, sealed, seal_id)
            step = totp.match_consecutive(secret, first, second, at)
            if step is None or (row[4] is not None and step - 1 <= int(row[4])):
                raise InvalidAuthenticationCode(
                    "AuthenticationCode1",
                    "the codes are not two consecutive codes of this device",
                    hint="enter the code the app shows, wait for the next one and enter it too;"
                    " check the device's clock",
                )
            stamp = int(at)
            cur.execute(
                "UPDATE iam_mfa_devices SET user_id = ?, enabled_at = ?, last_used_step = ?,"
                " drift_steps = 0 WHERE serial_number = ?",
                (user[0], stamp, step, serial),
            )
        return MfaDevice(
            serial,
            row[5],
            _dt(int(row[6])),
            user[2],
            user[0],
            self._user_arn(user),
            _dt(stamp),
        )

    def resync_mfa_device(
        self,
        account_id: str,
        user_name: str,
        serial_number: str,
        code1: str,
        code2: str,
        *,
        now: float | None = None,
    ) -> None:
        """Re-learn a device's clock offset from two consecutive codes up to 5 minutes off.

        The device must be enabled for the user. The codes must be later than
        the last one used (a resync cannot replay them) and are spent by it.
        """
        first = totp.parse_code(code1, "AuthenticationCode1")
        second = totp.parse_code(code2, "AuthenticationCode2")
        at = _now() if now is None else now
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            row = self._device_row(cur, account_id, serial_number, lock=True)
            if row[3] != user[0]:
                raise NoSuchEntity(
                    f"MFA device {row[0]} is not enabled for user {user[2]}",
                    hint=f"list them with `authbridge iam list-mfa-devices --user-name {user[2]}`",
                )
            secret = self._open_secret(row[0], row[1], row[2])
            step = totp.match_consecutive(secret, first, second, at, skew=totp.RESYNC_STEPS)
            if step is None or (row[4] is not None and step - 1 <= int(row[4])):
                raise InvalidAuthenticationCode(
                    "AuthenticationCode1",
                    "the codes are not two consecutive, unused codes of this device",
                    hint="enter two codes in a row as the app shows them",
                )
            cur.execute(
                "UPDATE iam_mfa_devices SET drift_steps = ?, last_used_step = ?"
                " WHERE serial_number = ?",
                (step - totp.step_at(at), step, row[0]),
            )

    def deactivate_mfa_device(self, account_id: str, user_name: str, serial_number: str) -> None:
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            row = self._device_row(cur, account_id, serial_number, lock=True)
            if row[3] != user[0]:
                raise NoSuchEntity(
                    f"MFA device {row[0]} is not enabled for user {user[2]}",
                    hint=f"list them with `authbridge iam list-mfa-devices --user-name {user[2]}`",
                )
            cur.execute(
                "UPDATE iam_mfa_devices SET user_id = NULL, enabled_at = NULL"
                " WHERE serial_number = ?",
                (row[0],),
            )

    def delete_virtual_mfa_device(self, account_id: str, serial_number: str) -> None:
        with self._tx(write=True) as cur:
            row = self._device_row(cur, account_id, serial_number, lock=True)
            if row[3] is not None:
                raise DeleteConflict(
                    f"MFA device {row[0]} is still enabled for a user",
                    hint="deactivate it first with `authbridge iam deactivate-mfa-device`",
                )
            cur.execute("DELETE FROM iam_mfa_devices WHERE serial_number = ?", (row[0],))

    def use_mfa_step(self, serial_number: str, step: int) -> bool:
        with self._tx(write=True) as cur:
            cur.execute(
                "UPDATE iam_mfa_devices SET last_used_step = ? WHERE serial_number = ?"
                " AND user_id IS NOT NULL AND (last_used_step IS NULL OR last_used_step < ?)",
                (step, serial_number, step),
            )
            return cur.rowcount == 1

    def _device_row(self, cur: Cursor, account_id: str, serial: str, *, lock: bool) -> Row:
        match = _SERIAL.fullmatch(serial) if isinstance(serial, str) else None
        if match is None:
            raise InputError(
                "SerialNumber",
                "must be a virtual MFA device ARN, arn:<partition>:iam::<account>:mfa/<name>",
            )
        self._account(cur, account_id)
        rows = []
        if match.group(2) == account_id:
            rows = cur.execute(
                "SELECT serial_number, sealed_secret, seal_id, user_id, last_used_step, name,"
                " created_at FROM iam_mfa_devices WHERE account_id = ? AND name_key = ?"
                + (self._db.lock_suffix if lock else ""),
                (account_id, match.group(3).lower()),
            )
        if not rows:
            raise NoSuchEntity(
                f"MFA device {match.group(3)} does not exist in account {account_id}",
                hint="list them with `authbridge iam list-virtual-mfa-devices`",
            )
        return rows[0]

    def _device(self, r: Row) -> MfaDevice:
        serial, name, created, user_name, user_id, path, account, enabled = r
        user_arn = None
        if user_id is not None:
            user_arn = self._user_arn((user_id, account, user_name, path))
        return MfaDevice(
            serial,
            name,
            _dt(int(created)),
            user_name,
            user_id,
            user_arn,
            _dt(int(enabled)) if enabled is not None else None,
        )

    def _user_arn(self, user: Row) -> str:
        from authbridge import arn as arns

        return arns.user_arn(self.partition, user[1], user[2], user[3])

    # -- what deleting a user takes ------------------------------------------------------------
    def _signin_holdings(self, cur: Cursor, user_id: str) -> list[str]:
        """What sign-in state stops a user's deletion, as a DeleteConflict names it."""
        held: list[str] = []
        if self._profile_row(cur, user_id):
            held.append("a login profile (delete-login-profile)")
        devices = cur.execute(
            "SELECT serial_number FROM iam_mfa_devices WHERE user_id = ? ORDER BY name_key",
            (user_id,),
        )
        if devices:
            held.append(
                "MFA devices " + ", ".join(r[0] for r in devices) + " (deactivate-mfa-device)"
            )
        return held

    @staticmethod
    def _drop_signin(cur: Cursor, user_id: str) -> None:
        """Remove a deleted user's login profile, history and devices (their secrets too)."""
        cur.execute("DELETE FROM iam_login_profiles WHERE user_id = ?", (user_id,))
        cur.execute("DELETE FROM iam_password_history WHERE user_id = ?", (user_id,))
        cur.execute("DELETE FROM iam_mfa_devices WHERE user_id = ?", (user_id,))
        cur.execute("DELETE FROM signin_known_addresses WHERE user_id = ?", (user_id,))

    # -- sign-in checks (authbridge.iam.login.LoginStore) ---------------------------------------
    def login_facts(self, account_id: str, user_name: str, address: str, now: float) -> LoginFacts:
        key, where = login.name_key(user_name), login.address_key(address)
        pair_key, user_key = _subject(account_id, key, where), _subject(account_id, key)
        where = _subject(where)
        with self._tx() as cur:
            counters = {
                scope: Counter(int(n), float(at))
                for scope, n, at in cur.execute(
                    "SELECT scope, failures, last_failure_at FROM signin_failures"
                    " WHERE (scope = 'pair' AND subject = ?) OR (scope = 'user' AND subject = ?)"
                    " OR (scope = 'address' AND subject = ?)",
                    (pair_key, user_key, where),
                )
            }
            base = LoginFacts(
                pair=counters.get("pair", Counter()),
                user=counters.get("user", Counter()),
                address=counters.get("address", Counter()),
            )
            if not _plausible_name(user_name):
                return base
            rows = cur.execute(
                "SELECT u.user_id, u.account_id, u.name, u.path, u.enabled, p.password_hash,"
                " p.password_reset_required, p.password_changed_at,"
                " (SELECT k.last_success_at FROM signin_known_addresses k"
                "  WHERE k.user_id = u.user_id AND k.address = ?),"
                " (SELECT pp.policy FROM iam_password_policies pp WHERE pp.account_id = ?)"
                " FROM iam_users u LEFT JOIN iam_login_profiles p ON p.user_id = u.user_id"
                " WHERE u.account_id = ? AND u.name_key = ?",
                (where, account_id, account_id, user_name.lower()),
            )
            if not rows:
                return base
            user_id, _, _, _, enabled, digest, reset, changed, known_at, policy = rows[0]
            devices = cur.execute(
                "SELECT serial_number, sealed_secret, seal_id, last_used_step, drift_steps"
                " FROM iam_mfa_devices WHERE user_id = ? ORDER BY name_key",
                (user_id,),
            )
        mfa = tuple(
            MfaSecret(
                s,
                self._open_secret(s, sealed, seal),
                None if last is None else int(last),
                int(drift),
            )
            for s, sealed, seal, last, drift in devices
        )
        known = known_at is not None and now - int(known_at) < login.KNOWN_ADDRESS_SECONDS
        return LoginFacts(
            user_id=user_id,
            user_arn=self._user_arn(rows[0]),
            enabled=bool(enabled),
            password_hash=digest,
            password_reset_required=bool(reset),
            password_changed_at=None if changed is None else float(changed),
            policy=PasswordPolicy.from_aws(json.loads(policy))
            if policy
            else passwords.DEFAULT_POLICY,
            mfa=mfa,
            pair=base.pair,
            user=base.user,
            address=base.address,
            known_address=known,
        )

    def record_login_failure(
        self, account_id: str, user_name: str, address: str, now: float
    ) -> None:
        key, where = login.name_key(user_name), login.address_key(address)
        stamp, forget = int(now), int(now) - login.FORGET_SECONDS
        subjects = (
            ("pair", _subject(account_id, key, where)),
            ("user", _subject(account_id, key)),
            ("address", _subject(where)),
        )
        with self._tx(write=True) as cur:
            for scope, subject in subjects:
                cur.execute(
                    "INSERT INTO signin_failures (scope, subject, failures, last_failure_at)"
                    " VALUES (?, ?, 1, ?) ON CONFLICT (scope, subject) DO UPDATE SET"
                    " failures = CASE WHEN signin_failures.last_failure_at <= ? THEN 1"
                    " ELSE signin_failures.failures + 1 END, last_failure_at = ?",
                    (scope, subject, stamp, forget, stamp),
                )

    def record_login_success(
        self,
        account_id: str,
        user_name: str,
        address: str,
        now: float,
        *,
        user_id: str,
        new_hash: str | None = None,
    ) -> None:
        key, where = login.name_key(user_name), login.address_key(address)
        with self._tx(write=True) as cur:
            cur.execute(
                "DELETE FROM signin_failures WHERE (scope = 'pair' AND subject = ?)"
                " OR (scope = 'user' AND subject = ?)",
                (_subject(account_id, key, where), _subject(account_id, key)),
            )
            cur.execute(
                "INSERT INTO signin_known_addresses (user_id, address, last_success_at)"
                " VALUES (?, ?, ?) ON CONFLICT (user_id, address) DO UPDATE SET"
                " last_success_at = ?",
                (user_id, _subject(where), int(now), int(now)),
            )
            if new_hash is not None:
                # A re-hash under new parameters: the same password, so neither the
                # change date nor the history moves.
                cur.execute(
                    "UPDATE iam_login_profiles SET password_hash = ? WHERE user_id = ?",
                    (new_hash, user_id),
                )


def _plausible_name(name: str) -> bool:
    try:
        names.user_name(name)
    except InputError:
        return False
    return True


def _profile_exists(user: str) -> EntityAlreadyExists:
    return EntityAlreadyExists(
        f"user {user} already has a login profile",
        hint="change its password with `authbridge iam update-login-profile`",
    )


def _no_profile(user: str) -> NoSuchEntity:
    return NoSuchEntity(
        f"user {user} has no login profile",
        hint=f"create one with `authbridge iam create-login-profile --user-name {user}`",
    )
