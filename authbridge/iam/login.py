"""Checking a sign-in: user name, password, TOTP code, with backoff and bounded hashing.

:func:`verify_login` is what the ``/login`` page and the device flow call.
It reads everything from the store in one :meth:`LoginStore.login_facts`
call, and answers a :class:`LoginResult`: ``ok``, ``password_reset_required``
(the password was right; a new one must be set first), ``mfa_required`` (the
password was right; ask for a code and call again with it), ``refused`` or
``throttled``. A refusal never tells an unknown user, a user without a
login profile, a disabled user and a wrong password apart: the message is
the same and each costs one argon2 verification (a dummy hash for the users
with none).

Backoff (failures are counted in the store, forgotten
:data:`FORGET_SECONDS` after the last one). With ``n`` failures counted, the
next attempt must wait ``min(2 ** (n - free), cap)`` seconds after the last
failure:

=====================  ======  ======  ==================================
counted per            free    cap     why
=====================  ======  ======  ==================================
(user, address) pair   5       900 s   guessing one user's password
address                50      900 s   one address spraying many users
user, from an address  100     30 s    a botnet on one user; the cap is
that has not signed                    low and known addresses are exempt,
in as them lately                      so it can slow, never lock, them out
=====================  ======  ======  ==================================

An address is *known* for a user when it signed in as them within
:data:`KNOWN_ADDRESS_SECONDS`: an attacker elsewhere, however many
failures they pile up, then cannot keep the user out from where they
usually sign in. A throttled attempt is not checked and not counted (no
hashing is spent on it); a success clears the pair's and the user's
counters. Counters are keyed by (a digest of) the lowercased user name as
typed, not the user's unique id, so an unknown name backs off exactly like
a real one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from authbridge.errors import InputError
from authbridge.iam import passwords, totp
from authbridge.iam.passwords import PasswordHasher, PasswordPolicy

FORGET_SECONDS: Final = 24 * 3600
KNOWN_ADDRESS_SECONDS: Final = 30 * 24 * 3600
PAIR_FREE, PAIR_CAP = 5, 900
ADDRESS_FREE, ADDRESS_CAP = 50, 900
USER_FREE, USER_CAP = 100, 30
MAX_ADDRESS_CHARS: Final = 64
MAX_USER_NAME_CHARS: Final = 64

REFUSED_MESSAGE: Final = "the user name, password or MFA code is not valid"

Outcome = Literal["ok", "password_reset_required", "mfa_required", "refused", "throttled"]
Reason = Literal["", "invalid_credentials", "invalid_mfa_code", "password_expired", "throttled"]


@dataclass(frozen=True)
class Counter:
    """Failures counted for one key, and when the last one was."""

    failures: int = 0
    last_failure_at: float | None = None

    def live(self, now: float) -> int:
        """The count still in force: forgotten a day after the last failure."""
        if self.last_failure_at is None or now - self.last_failure_at >= FORGET_SECONDS:
            return 0
        return self.failures


@dataclass(frozen=True)
class MfaSecret:
    """An enabled device as verification needs it: its serial, secret and last used step."""

    serial_number: str
    secret: bytes = field(repr=False)
    last_used_step: int | None
    drift_steps: int = 0


@dataclass(frozen=True)
class LoginFacts:
    """What the store knows about one sign-in attempt, read at one instant.

    ``user_id`` is None for a name that is no user; ``password_hash`` is None
    for a user without a login profile. ``known_address`` says whether the
    address signed in as this user within :data:`KNOWN_ADDRESS_SECONDS`.
    """

    user_id: str | None = None
    user_arn: str | None = None
    enabled: bool = False
    password_hash: str | None = field(default=None, repr=False)
    password_reset_required: bool = False
    password_changed_at: float | None = None
    policy: PasswordPolicy = passwords.DEFAULT_POLICY
    mfa: tuple[MfaSecret, ...] = ()
    pair: Counter = Counter()
    user: Counter = Counter()
    address: Counter = Counter()
    known_address: bool = False


class LoginStore(Protocol):
    """The store calls sign-in makes (:class:`authbridge.store.sql.SqlStore` has them)."""

    def login_facts(
        self, account_id: str, user_name: str, address: str, now: float
    ) -> LoginFacts: ...

    def record_login_failure(
        self, account_id: str, user_name: str, address: str, now: float
    ) -> None: ...

    def record_login_success(
        self,
        account_id: str,
        user_name: str,
        address: str,
        now: float,
        *,
        user_id: str,
        new_hash: str | None = None,
    ) -> None: ...

    def use_mfa_step(self, serial_number: str, step: int) -> bool:
        """Record ``step`` as the device's last used one, if it is later; False if it is not."""
        ...


@dataclass(frozen=True)
class LoginResult:
    """What a sign-in attempt came to (see the module docstring).

    ``message`` is what a page may show; ``reason`` is a label for logs and
    metrics that is equally silent about whether the user exists.
    """

    outcome: Outcome
    reason: Reason = ""
    user_id: str | None = None
    user_arn: str | None = None
    mfa_present: bool = False
    retry_after: int = 0

    @property
    def message(self) -> str:
        if self.outcome == "throttled":
            return f"too many failed sign-ins; try again in {self.retry_after} seconds"
        if self.outcome == "refused":
            if self.reason == "password_expired":
                return "the password has expired; ask an administrator to reset it"
            return REFUSED_MESSAGE
        if self.outcome == "mfa_required":
            return "enter the code from your MFA device"
        if self.outcome == "password_reset_required":
            return "the password must be changed before signing in"
        return "signed in"


def backoff(counter: Counter, now: float, *, free: int, cap: int) -> int:
    """Seconds still to wait before the next attempt this counter allows (0: go ahead)."""
    n = counter.live(now)
    if n < free or counter.last_failure_at is None:
        return 0
    delay = min(2 ** min(n - free, 32), cap)
    remaining = counter.last_failure_at + delay - now
    return max(0, int(remaining + 0.999))


def wait_seconds(facts: LoginFacts, now: float) -> int:
    """How long this attempt must wait, by the rules of the module docstring."""
    waits = [
        backoff(facts.pair, now, free=PAIR_FREE, cap=PAIR_CAP),
        backoff(facts.address, now, free=ADDRESS_FREE, cap=ADDRESS_CAP),
    ]
    if not facts.known_address:
        waits.append(backoff(facts.user, now, free=USER_FREE, cap=USER_CAP))
    return max(waits)


def address_key(address: str) -> str:
    """The client address as counters key it: trimmed, lowercased, bounded."""
    return address.strip().lower()[:MAX_ADDRESS_CHARS]


def name_key(user_name: str) -> str:
    return user_name.strip().lower()[:MAX_USER_NAME_CHARS]


def verify_login(
    store: LoginStore,
    hasher: PasswordHasher,
    *,
    account_id: str,
    user_name: str,
    password: str,
    address: str,
    now: float,
    mfa_code: str | None = None,
) -> LoginResult:
    """Check one sign-in attempt (see the module docstring); never raises for bad input.

    :class:`~authbridge.iam.passwords.Throttled` (no hashing slot freed in
    time) and store errors do propagate: they are the server's state, not the
    caller's mistake.
    """
    facts = store.login_facts(account_id, user_name, address, now)
    wait = wait_seconds(facts, now)
    if wait > 0:
        return LoginResult("throttled", "throttled", retry_after=wait)

    def refuse(reason: Reason = "invalid_credentials") -> LoginResult:
        store.record_login_failure(account_id, user_name, address, now)
        return LoginResult("refused", reason)

    if facts.password_hash is None or facts.user_id is None:
        hasher.verify_dummy(password)  # the same work as a real check
        return refuse()
    if not hasher.verify(facts.password_hash, password) or not facts.enabled:
        return refuse()
    mfa_present = False
    if facts.mfa:
        if mfa_code is None:
            return LoginResult("mfa_required", user_id=facts.user_id, user_arn=facts.user_arn)
        if not _mfa_ok(store, facts.mfa, mfa_code, now):
            return refuse("invalid_mfa_code")
        mfa_present = True
    expired = facts.password_changed_at is not None and passwords.is_expired(
        facts.policy, facts.password_changed_at, now
    )
    if expired and facts.policy.hard_expiry:
        return refuse("password_expired")
    new_hash = hasher.hash(password) if hasher.needs_rehash(facts.password_hash) else None
    store.record_login_success(
        account_id, user_name, address, now, user_id=facts.user_id, new_hash=new_hash
    )
    outcome: Outcome = (
        "password_reset_required" if expired or facts.password_reset_required else "ok"
    )
    return LoginResult(
        outcome, user_id=facts.user_id, user_arn=facts.user_arn, mfa_present=mfa_present
    )


def _mfa_ok(store: LoginStore, devices: Sequence[MfaSecret], code_text: str, now: float) -> bool:
    try:
        code = totp.parse_code(code_text)
    except InputError:
        return False
    for device in devices:
        step = totp.match(
            device.secret,
            code,
            now,
            last_used_step=device.last_used_step,
            drift=device.drift_steps,
        )
        # The store's conditional update is what makes a code single-use when two
        # sign-ins race with the same code: only one of them moves the step.
        if step is not None and store.use_mfa_step(device.serial_number, step):
            return True
    return False
