"""Login passwords: argon2id hashing with bounded work, and the account password policy.

Hashes are argon2id PHC strings (``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``):
the parameters travel with each hash, so changing :class:`Argon2Params`
leaves old hashes verifiable, and :meth:`PasswordHasher.needs_rehash` says
when a login should store a fresh one. The defaults are RFC 9106's second
recommended option (64 MiB, 3 passes) with one lane instead of four: a
lane is a thread, so one hash then takes one core, and the semaphore below
bounds the cores sign-in can take (with four lanes, two hashes fill two
cores four times over; ``bench/logins.py`` measured the rest of the
process keeping about 20% of its rate under a flood with four lanes,
about 40% with one, on a loaded 2-core machine).

The work is bounded: every hash and every verification holds a slot of a
semaphore sized to the machine's cores, waiting at most ``wait_seconds``
for one; when none frees up the call fails with :class:`Throttled`, so a
flood of logins queues briefly and is then refused instead of taking every
core from TokenReviews and the rest of the server. The semaphore is per
process: ``authbridge serve`` gives each worker its share of the cores
(:func:`share_slots`), and runs the pages that hash in niced pool threads,
off the worker's event loop (:mod:`authbridge.web.worker`).

:class:`PasswordPolicy` is the account password policy with AWS's names and
bounds (``MinimumPasswordLength`` 8-128 here, ``PasswordReusePrevention``
1-24, ``MaxPasswordAge`` 1-1095 days). :func:`policy_problems` names every
rule a password breaks, never the password.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from authbridge.errors import InputError, PasswordPolicyViolation, Throttled

MAX_PASSWORD_CHARS: Final = 1024  # longer input is refused before any hashing (a DoS lever)
MIN_LENGTH_BOUNDS: Final = (8, 128)  # MinimumPasswordLength; authbridge's floor is 8
REUSE_BOUNDS: Final = (1, 24)  # PasswordReusePrevention
MAX_AGE_BOUNDS: Final = (1, 1095)  # MaxPasswordAge, days
DEFAULT_WAIT_SECONDS: Final = 5.0
# AWS's symbol set for RequireSymbols.
SYMBOLS: Final = frozenset("!@#$%^&*()_+-=[]{}|'")


# --------------------------------------------------------------------------- hashing


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters: ``memory_kib`` KiB, ``time_cost`` passes, ``parallelism`` lanes."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1
    salt_bytes: int = 16
    hash_bytes: int = 32

    def to_argon2(self) -> argon2.Parameters:
        return argon2.Parameters(
            type=argon2.Type.ID,
            version=19,
            salt_len=self.salt_bytes,
            hash_len=self.hash_bytes,
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
        )


DEFAULT_PARAMS: Final = Argon2Params()


class PasswordHasher:
    """argon2id behind a semaphore of ``slots`` (default: the cores); see the module docstring."""

    def __init__(
        self,
        params: Argon2Params = DEFAULT_PARAMS,
        *,
        slots: int | None = None,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.params = params
        self.slots = slots if slots is not None else max(1, os.cpu_count() or 1)
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(self.slots)
        self._argon2 = argon2.PasswordHasher.from_parameters(params.to_argon2())
        # Verified for a user with no password, so both paths cost one argon2 run
        # of the current parameters. It needs no hashing to make: verifying runs
        # argon2 over the password with the parameters and salt written here, then
        # compares with a digest no password has (all zero bytes).
        self._dummy = _phc(params, os.urandom(params.salt_bytes), bytes(params.hash_bytes))

    def __repr__(self) -> str:
        return f"PasswordHasher(params={self.params!r}, slots={self.slots})"

    def _acquire(self) -> None:
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise Throttled(
                "too many sign-ins are being checked at once",
                hint="try again in a few seconds",
            )

    def hash(self, password: str) -> str:
        """The PHC string of a new hash of ``password`` (a fresh random salt)."""
        _check_length(password)
        self._acquire()
        try:
            return self._argon2.hash(password)
        finally:
            self._slots.release()

    def verify(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored``; False for a malformed hash or input.

        argon2 compares the derived digest in constant time; the work depends
        on the stored parameters only, never on how much of the password is right.
        """
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        self._acquire()
        try:
            return bool(self._argon2.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False
        finally:
            self._slots.release()

    def verify_dummy(self, password: str) -> None:
        """Spend what a real verification costs, for a user that has no password."""
        self.verify(self._dummy, password[:MAX_PASSWORD_CHARS])

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with other parameters than the configured ones."""
        try:
            return bool(self._argon2.check_needs_rehash(stored))
        except (InvalidHashError, ValueError):
            return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _phc(params: Argon2Params, salt: bytes, digest: bytes) -> str:
    """An argon2id PHC string with these parameters, salt and digest."""
    return (
        f"$argon2id$v=19$m={params.memory_kib},t={params.time_cost},p={params.parallelism}"
        f"${_b64(salt)}${_b64(digest)}"
    )


_shared: PasswordHasher | None = None
_shared_lock = threading.Lock()


def shared_hasher() -> PasswordHasher:
    """The process-wide hasher with the default parameters: one semaphore for every caller."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PasswordHasher()
        return _shared


def share_slots(slots: int) -> PasswordHasher:
    """Make the process-wide hasher one of ``slots`` slots (``authbridge serve``: per worker).

    ``authbridge serve`` runs several worker processes, each with its own
    semaphore: it gives each its share of the cores
    (:func:`authbridge.web.server.hashing_slots`) so that all of them together
    hash on at most as many threads as there are cores.
    """
    global _shared
    if slots < 1:
        raise ValueError("a hasher needs at least one slot")
    with _shared_lock:
        _shared = PasswordHasher(slots=slots)
        return _shared


def _check_length(password: str) -> None:
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError("Password", f"must be at most {MAX_PASSWORD_CHARS} characters")


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class PasswordPolicy:
    """The account password policy; ``None`` reuse/age means that rule is off (as AWS)."""

    minimum_length: int = 8
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    allow_users_to_change: bool = False
    max_age_days: int | None = None
    reuse_prevention: int | None = None
    hard_expiry: bool = False

    def __post_init__(self) -> None:
        _bounded("MinimumPasswordLength", self.minimum_length, MIN_LENGTH_BOUNDS)
        if self.max_age_days is not None:
            _bounded("MaxPasswordAge", self.max_age_days, MAX_AGE_BOUNDS)
        if self.reuse_prevention is not None:
            _bounded("PasswordReusePrevention", self.reuse_prevention, REUSE_BOUNDS)

    def to_aws(self) -> dict[str, Any]:
        """``{"PasswordPolicy": …}``'s value, as ``aws iam get-account-password-policy``."""
        doc: dict[str, Any] = {
            "MinimumPasswordLength": self.minimum_length,
            "RequireSymbols": self.require_symbols,
            "RequireNumbers": self.require_numbers,
            "RequireUppercaseCharacters": self.require_uppercase,
            "RequireLowercaseCharacters": self.require_lowercase,
            "AllowUsersToChangePassword": self.allow_users_to_change,
            "ExpirePasswords": self.max_age_days is not None,
            "HardExpiry": self.hard_expiry,
        }
        if self.max_age_days is not None:
            doc["MaxPasswordAge"] = self.max_age_days
        if self.reuse_prevention is not None:
            doc["PasswordReusePrevention"] = self.reuse_prevention
        return doc

    def to_json(self) -> dict[str, Any]:
        """The stored form (the AWS names, so a row reads as the API shows it)."""
        return self.to_aws()

    @classmethod
    def from_aws(cls, doc: Mapping[str, Any]) -> PasswordPolicy:
        """From the AWS names (stored rows, or update-account-password-policy's fields)."""
        return cls(
            minimum_length=int(doc.get("MinimumPasswordLength", 8)),
            require_symbols=bool(doc.get("RequireSymbols", False)),
            require_numbers=bool(doc.get("RequireNumbers", False)),
            require_uppercase=bool(doc.get("RequireUppercaseCharacters", False)),
            require_lowercase=bool(doc.get("RequireLowercaseCharacters", False)),
            allow_users_to_change=bool(doc.get("AllowUsersToChangePassword", False)),
            max_age_days=_optional_int(doc.get("MaxPasswordAge")),
            reuse_prevention=_optional_int(doc.get("PasswordReusePrevention")),
            hard_expiry=bool(doc.get("HardExpiry", False)),
        )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _bounded(field: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(field, f"must be an integer from {low} to {high}")


DEFAULT_POLICY: Final = PasswordPolicy()
"""In force while an account has set none: at least 8 characters, nothing else."""


def policy_problems(policy: PasswordPolicy, password: str) -> list[str]:
    """Every rule of ``policy`` that ``password`` breaks, by name; ``[]`` when it passes.

    The messages name rules and counts, never the password or any part of it.
    """
    problems: list[str] = []
    if len(password) < policy.minimum_length:
        problems.append(f"MinimumPasswordLength: needs at least {policy.minimum_length} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        problems.append(f"must be at most {MAX_PASSWORD_CHARS} characters")
    if policy.require_uppercase and not any("A" <= c <= "Z" for c in password):
        problems.append("RequireUppercaseCharacters: needs an uppercase letter (A-Z)")
    if policy.require_lowercase and not any("a" <= c <= "z" for c in password):
        problems.append("RequireLowercaseCharacters: needs a lowercase letter (a-z)")
    if policy.require_numbers and not any("0" <= c <= "9" for c in password):
        problems.append("RequireNumbers: needs a digit (0-9)")
    if policy.require_symbols and not any(c in SYMBOLS for c in password):
        problems.append("RequireSymbols: needs one of " + "".join(sorted(SYMBOLS)))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        problems.append("must not contain control characters")
    return problems


def check_password(policy: PasswordPolicy, password: str) -> None:
    """Raise :class:`PasswordPolicyViolation` naming every broken rule, or return."""
    problems = policy_problems(policy, password)
    if problems:
        raise PasswordPolicyViolation(problems)


def is_expired(policy: PasswordPolicy, changed_at: float, now: float) -> bool:
    """Whether a password last changed at ``changed_at`` is past ``MaxPasswordAge`` at ``now``."""
    if policy.max_age_days is None:
        return False
    return now - changed_at >= policy.max_age_days * 86400
