"""verify_login (authbridge.iam.login) against the real store, on SQLite and PostgreSQL.

Covers: ok, password_reset_required (the flag, and MaxPasswordAge), a hard
expiry refused, mfa_required then ok with a code, refused; the same answer
and the same argon2 work (one dummy verification) for an unknown user, a
user without a login profile, a disabled user and a wrong password; a
re-hash on login when the parameters changed; the backoff rule (pure
table tests of :func:`backoff` and :func:`wait_seconds`) and named attacks:
TOTP replay (also between two racing sign-ins), brute force backed off per
pair and per address, lockout from elsewhere resisted (a known address is
not slowed by failures elsewhere), throttled attempts spend no hashing,
an unknown-user timing path that does the dummy hash, a flood refused as
Throttled when every hashing slot is busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from authbridge.errors import Throttled
from authbridge.iam import login, totp
from authbridge.iam.login import Counter, LoginFacts, LoginResult
from authbridge.iam.passwords import Argon2Params, PasswordHasher, PasswordPolicy
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT

FAST_PARAMS = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)
NOW = 1_800_000_000.0
PASSWORD = "Correct-Horse-9"
HOME = "198.51.100.7"
ATTACKER = "203.0.113.66"


@dataclass
class CountingHasher(PasswordHasher):
    """The real hasher, counting what it verifies (dummy verifications included)."""

    verified: list[str] = field(default_factory=list)
    hashed: int = 0

    def __post_init__(self) -> None:
        super().__init__(FAST_PARAMS)

    def verify(self, stored: str, password: str) -> bool:
        self.verified.append(stored)
        return super().verify(stored, password)

    def hash(self, password: str) -> str:
        self.hashed += 1
        return super().hash(password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def alice(store: SqlStore, hasher: CountingHasher) -> SqlStore:
    store.create_user(ACCOUNT, "alice")
    store.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=hasher)
    hasher.verified.clear()
    hasher.hashed = 0
    return store


def attempt(
    store: SqlStore,
    hasher: PasswordHasher,
    password: str = PASSWORD,
    *,
    user: str = "alice",
    address: str = HOME,
    now: float = NOW,
    code: str | None = None,
) -> LoginResult:
    return login.verify_login(
        store,
        hasher,
        account_id=ACCOUNT,
        user_name=user,
        password=password,
        address=address,
        now=now,
        mfa_code=code,
    )


def enable_mfa(store: SqlStore, now: float = NOW) -> bytes:
    new = store.create_virtual_mfa_device(ACCOUNT, "alice-phone")
    step = totp.step_at(now) - 2
    store.enable_mfa_device(
        ACCOUNT,
        "alice",
        new.device.serial_number,
        totp.hotp(new.secret, step - 1),
        totp.hotp(new.secret, step),
        now=now - 60,
    )
    return new.secret


# --------------------------------------------------------------------------- outcomes


def test_a_right_password_signs_in(alice: SqlStore, hasher: CountingHasher) -> None:
    result = attempt(alice, hasher)
    assert result.outcome == "ok" and result.reason == ""
    assert result.user_arn == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert result.user_id == alice.get_user(ACCOUNT, "alice").user_id
    assert not result.mfa_present
    assert len(hasher.verified) == 1 and hasher.hashed == 0


def test_the_user_name_is_case_insensitive(alice: SqlStore, hasher: CountingHasher) -> None:
    assert attempt(alice, hasher, user="ALICE").outcome == "ok"


def test_reset_required(alice: SqlStore, hasher: CountingHasher) -> None:
    alice.update_login_profile(ACCOUNT, "alice", password_reset_required=True)
    result = attempt(alice, hasher)
    assert result.outcome == "password_reset_required" and result.user_id
    assert attempt(alice, hasher, "wrong-password").outcome == "refused"


def test_max_password_age(alice: SqlStore, hasher: CountingHasher) -> None:
    alice.update_account_password_policy(ACCOUNT, PasswordPolicy(max_age_days=30))
    later = alice.get_login_profile(ACCOUNT, "alice").password_changed_at.timestamp() + 31 * 86400
    assert attempt(alice, hasher, now=later).outcome == "password_reset_required"
    alice.update_account_password_policy(ACCOUNT, PasswordPolicy(max_age_days=30, hard_expiry=True))
    result = attempt(alice, hasher, now=later)
    assert result.outcome == "refused" and result.reason == "password_expired"
    assert "administrator" in result.message


def test_mfa_required_then_a_code_signs_in(alice: SqlStore, hasher: CountingHasher) -> None:
    secret = enable_mfa(alice)
    asked = attempt(alice, hasher)
    assert asked.outcome == "mfa_required" and "code" in asked.message
    done = attempt(alice, hasher, code=totp.code_at(secret, NOW))
    assert done.outcome == "ok" and done.mfa_present


def test_a_wrong_mfa_code_is_refused_and_counted(alice: SqlStore, hasher: CountingHasher) -> None:
    secret = enable_mfa(alice)
    right = totp.code_at(secret, NOW)
    for bad in (f"{(int(right) + 1) % 10**6:06d}", "abc", "", "1" * 500):
        result = attempt(alice, hasher, code=bad)
        assert result.outcome == "refused" and result.reason == "invalid_mfa_code"
        assert result.message == login.REFUSED_MESSAGE
    assert alice.login_facts(ACCOUNT, "alice", HOME, NOW).pair.failures == 4


def test_a_wrong_password_with_a_right_code_is_refused(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    secret = enable_mfa(alice)
    result = attempt(alice, hasher, "not-the-password", code=totp.code_at(secret, NOW))
    assert result.outcome == "refused" and result.reason == "invalid_credentials"
    # The code was not spent by a refused password: the owner can still use it.
    assert attempt(alice, hasher, code=totp.code_at(secret, NOW)).outcome == "ok"


def test_rehash_on_login_when_the_parameters_changed(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_kib=128, parallelism=1))
    before = alice.login_facts(ACCOUNT, "alice", HOME, NOW).password_hash
    assert before is not None and stronger.needs_rehash(before)
    assert attempt(alice, stronger).outcome == "ok"
    after = alice.login_facts(ACCOUNT, "alice", HOME, NOW).password_hash
    assert after is not None and after != before and not stronger.needs_rehash(after)
    assert attempt(alice, stronger).outcome == "ok"
    # The change date did not move: a re-hash is not a new password.
    profile = alice.get_login_profile(ACCOUNT, "alice")
    assert profile.password_changed_at == profile.created_at


# --------------------------------------------------------------------------- uniform refusals


@pytest.mark.parametrize("case", ["unknown user", "no login profile", "disabled", "wrong password"])
def test_unknown_user_timing_path_does_the_dummy_hash(
    alice: SqlStore, hasher: CountingHasher, case: str
) -> None:
    """Attack: telling which user names exist from the answer or from how long it takes."""
    alice.create_user(ACCOUNT, "carol")  # a user without a login profile
    user, password = {
        "unknown user": ("nobody", PASSWORD),
        "no login profile": ("carol", PASSWORD),
        "disabled": ("alice", PASSWORD),
        "wrong password": ("alice", "wrong-password"),
    }[case]
    if case == "disabled":
        alice.set_user_enabled(ACCOUNT, "alice", False)
    result = attempt(alice, hasher, password, user=user)
    assert result == LoginResult("refused", "invalid_credentials")
    assert result.message == login.REFUSED_MESSAGE
    # Exactly one argon2 verification, with the configured parameters, on every path.
    assert len(hasher.verified) == 1
    assert hasher.verified[0].startswith("$argon2id$v=19$m=64,t=1,p=1$")


def test_hostile_names_and_addresses_are_refused_not_raised(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    for user in ("", "a" * 10_000, "alice'; DROP TABLE iam_users; --", "\x00", "ålice"):
        assert attempt(alice, hasher, user=user).outcome == "refused"
    assert attempt(alice, hasher, address="x" * 10_000).outcome == "ok"
    assert attempt(alice, hasher, "p" * 100_000).outcome == "refused"


# --------------------------------------------------------------------------- backoff rule


@pytest.mark.parametrize(
    ("failures", "since_last", "free", "cap", "wait"),
    [
        (0, 0, 5, 900, 0),
        (4, 0, 5, 900, 0),
        (5, 0, 5, 900, 1),
        (6, 0, 5, 900, 2),
        (8, 0, 5, 900, 8),
        (8, 5, 5, 900, 3),
        (8, 8, 5, 900, 0),
        (40, 0, 5, 900, 900),
        (10_000, 0, 5, 900, 900),
        (120, 0, 100, 30, 30),
        (120, login.FORGET_SECONDS, 5, 900, 0),  # forgotten a day after the last failure
    ],
)
def test_backoff_table(failures: int, since_last: int, free: int, cap: int, wait: int) -> None:
    counter = Counter(failures, NOW - since_last)
    assert login.backoff(counter, NOW, free=free, cap=cap) == wait


def test_wait_seconds_takes_the_longest_and_exempts_known_addresses() -> None:
    crowded = Counter(130, NOW)
    assert login.wait_seconds(LoginFacts(user=crowded), NOW) == login.USER_CAP
    assert login.wait_seconds(LoginFacts(user=crowded, known_address=True), NOW) == 0
    both = LoginFacts(pair=Counter(7, NOW), address=Counter(60, NOW))
    assert login.wait_seconds(both, NOW) == min(2**10, login.ADDRESS_CAP)


def test_brute_force_backoff(alice: SqlStore, hasher: CountingHasher) -> None:
    """Attack: guessing one user's password from one address."""
    for i in range(login.PAIR_FREE):
        assert attempt(alice, hasher, f"guess-{i}", address=ATTACKER, now=NOW + i).outcome == (
            "refused"
        )
    hasher.verified.clear()
    throttled = attempt(alice, hasher, "guess-x", address=ATTACKER, now=NOW + 4)
    assert throttled.outcome == "throttled" and throttled.retry_after >= 1
    assert "try again" in throttled.message
    # Throttled attempts are neither hashed nor counted, even with the right password.
    assert attempt(alice, hasher, address=ATTACKER, now=NOW + 4).outcome == "throttled"
    assert hasher.verified == []
    assert alice.login_facts(ACCOUNT, "alice", ATTACKER, NOW).pair.failures == login.PAIR_FREE
    # Each failure after the wait doubles the next wait.
    t = NOW + 5
    waits = []
    for _ in range(4):
        facts = alice.login_facts(ACCOUNT, "alice", ATTACKER, t)
        t += login.wait_seconds(facts, t)
        assert attempt(alice, hasher, "guess-y", address=ATTACKER, now=t).outcome == "refused"
        waits.append(login.wait_seconds(alice.login_facts(ACCOUNT, "alice", ATTACKER, t), t))
    assert waits == [2, 4, 8, 16]


def test_backoff_does_not_tell_unknown_users_apart(alice: SqlStore, hasher: CountingHasher) -> None:
    for user in ("alice", "nobody"):
        for i in range(login.PAIR_FREE):
            attempt(alice, hasher, "wrong-one", user=user, address=ATTACKER, now=NOW + i)
        assert attempt(alice, hasher, user=user, address=ATTACKER, now=NOW + 4).outcome == (
            "throttled"
        )


def test_an_address_spraying_many_users_is_backed_off(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    """Attack: one address trying one common password on many user names."""
    for i in range(login.ADDRESS_FREE):
        attempt(alice, hasher, "Summer2026!", user=f"user{i}", address=ATTACKER, now=NOW)
    assert attempt(alice, hasher, address=ATTACKER, now=NOW).outcome == "throttled"
    assert attempt(alice, hasher, address=HOME, now=NOW).outcome == "ok"


def test_lockout_from_elsewhere_is_resisted(alice: SqlStore, hasher: CountingHasher) -> None:
    """Attack: failing on purpose as alice from many addresses to keep her out."""
    assert attempt(alice, hasher, address=HOME, now=NOW).outcome == "ok"  # her usual address
    for i in range(login.USER_FREE + 20):
        attempt(alice, hasher, "wrong", address=f"203.0.113.{i % 200}", now=NOW + 1)
    assert alice.login_facts(ACCOUNT, "alice", HOME, NOW + 1).user.failures >= login.USER_FREE
    # From her known address: no wait at all.
    assert attempt(alice, hasher, address=HOME, now=NOW + 1).outcome == "ok"
    # From a new address: slowed by at most USER_CAP seconds, never locked out.
    fresh = "192.0.2.200"
    slowed = attempt(alice, hasher, address=fresh, now=NOW + 1)
    assert slowed.outcome == "ok" or slowed.retry_after <= login.USER_CAP


def test_a_new_address_waits_at_most_the_user_cap(alice: SqlStore, hasher: CountingHasher) -> None:
    for i in range(login.USER_FREE + 40):
        attempt(alice, hasher, "wrong", address=f"203.0.113.{i % 200}", now=NOW)
    waited = attempt(alice, hasher, address="192.0.2.200", now=NOW)
    assert waited.outcome == "throttled" and waited.retry_after <= login.USER_CAP
    assert attempt(alice, hasher, address="192.0.2.200", now=NOW + login.USER_CAP).outcome == "ok"


def test_a_success_clears_the_pair_and_user_counters(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    for i in range(3):
        attempt(alice, hasher, "wrong", now=NOW + i)
    assert attempt(alice, hasher, now=NOW + 3).outcome == "ok"
    facts = alice.login_facts(ACCOUNT, "alice", HOME, NOW + 3)
    assert facts.pair.failures == 0 and facts.user.failures == 0 and facts.known_address


# --------------------------------------------------------------------------- TOTP replay


def test_totp_replay_is_refused(alice: SqlStore, hasher: CountingHasher) -> None:
    """Attack: a code phished or seen, used again within its 30 s (or the ±1 window)."""
    secret = enable_mfa(alice)
    code = totp.code_at(secret, NOW)
    assert attempt(alice, hasher, code=code).outcome == "ok"
    replay = attempt(alice, hasher, code=code, address=ATTACKER, now=NOW + 20)
    assert replay.outcome == "refused" and replay.reason == "invalid_mfa_code"
    # The previous step's code, still inside the skew window, is refused too.
    older = totp.hotp(secret, totp.step_at(NOW) - 1)
    assert attempt(alice, hasher, code=older, now=NOW + 1).outcome == "refused"
    # The next step's code works.
    assert attempt(alice, hasher, code=totp.code_at(secret, NOW + 30), now=NOW + 30).outcome == (
        "ok"
    )


def test_totp_replay_between_racing_sign_ins(alice: SqlStore, hasher: CountingHasher) -> None:
    """Attack: two sign-ins with the same code read the same last step; only one may win."""
    secret = enable_mfa(alice)
    step = totp.step_at(NOW)
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    facts = alice.login_facts(ACCOUNT, "alice", HOME, NOW)  # both read this
    assert facts.mfa[0].last_used_step is not None and facts.mfa[0].last_used_step < step
    assert totp.match(secret, totp.code_at(secret, NOW), NOW, last_used_step=None) == step
    assert alice.use_mfa_step(serial, step) is True
    assert alice.use_mfa_step(serial, step) is False  # the second of the race loses
    assert alice.use_mfa_step(serial, step - 1) is False


def test_enabling_codes_cannot_be_replayed_to_sign_in(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    new = alice.create_virtual_mfa_device(ACCOUNT, "phone2")
    step = totp.step_at(NOW)
    c1, c2 = totp.hotp(new.secret, step - 1), totp.hotp(new.secret, step)
    alice.enable_mfa_device(ACCOUNT, "alice", new.device.serial_number, c1, c2, now=NOW)
    for code in (c1, c2):
        assert attempt(alice, hasher, code=code, now=NOW).outcome == "refused"


# --------------------------------------------------------------------------- a flood


def test_a_login_flood_is_throttled_when_every_slot_is_busy(alice: SqlStore) -> None:
    busy = PasswordHasher(FAST_PARAMS, slots=1, wait_seconds=0.01)
    busy._slots.acquire()
    try:
        with pytest.raises(Throttled):
            attempt(alice, busy)
    finally:
        busy._slots.release()
    assert attempt(alice, busy).outcome == "ok"


# --------------------------------------------------------------------------- property


HOSTILE_TEXT = st.text(max_size=80) | st.sampled_from(["alice", "ALICE", PASSWORD, "\x00", " "])


@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=HOSTILE_TEXT,
    password=HOSTILE_TEXT,
    address=st.text(max_size=100),
    code=st.none() | st.text(max_size=12),
)
def test_verify_login_property(
    alice: SqlStore,
    hasher: CountingHasher,
    user: str,
    password: str,
    address: str,
    code: str | None,
) -> None:
    """Whatever is typed: a LoginResult, never an exception; only the right pair signs in."""
    result = attempt(alice, hasher, password, user=user, address=address, code=code)
    assert result.outcome in {"ok", "refused", "throttled"}
    if result.outcome == "ok":
        assert user.lower() == "alice" and password == PASSWORD
    if result.outcome == "refused":
        assert result.message == login.REFUSED_MESSAGE and result.user_id is None


# --------------------------------------------------------------------------- resync


def test_a_drifted_device_is_resynced_and_then_signs_in(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    """A phone 4 steps (2 minutes) fast: refused, resynced, then accepted at its offset."""
    secret = enable_mfa(alice)
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    drifted = NOW + 4 * totp.STEP_SECONDS
    assert attempt(alice, hasher, code=totp.code_at(secret, drifted)).outcome == "refused"
    step = totp.step_at(drifted)
    c1, c2 = totp.hotp(secret, step - 1), totp.hotp(secret, step)
    alice.resync_mfa_device(ACCOUNT, "alice", serial, c1, c2, now=NOW)
    assert alice.login_facts(ACCOUNT, "alice", HOME, NOW).mfa[0].drift_steps == 4
    # The resync's own codes are spent; the phone's next code signs in.
    assert attempt(alice, hasher, code=c2, now=NOW).outcome == "refused"
    later = NOW + totp.STEP_SECONDS
    code = totp.code_at(secret, drifted + totp.STEP_SECONDS)
    assert attempt(alice, hasher, code=code, now=later).outcome == "ok"


def test_resync_refuses_replayed_far_or_foreign_codes(
    alice: SqlStore, hasher: CountingHasher
) -> None:
    from authbridge.errors import InvalidAuthenticationCode, NoSuchEntity

    secret = enable_mfa(alice)
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/alice-phone"
    step = totp.step_at(NOW)
    used = alice.login_facts(ACCOUNT, "alice", HOME, NOW).mfa[0].last_used_step
    assert used is not None
    with pytest.raises(InvalidAuthenticationCode):  # codes at or before the last used step
        alice.resync_mfa_device(
            ACCOUNT, "alice", serial, totp.hotp(secret, used - 1), totp.hotp(secret, used), now=NOW
        )
    far = step + totp.RESYNC_STEPS + 2
    with pytest.raises(InvalidAuthenticationCode):  # beyond the 5-minute window
        alice.resync_mfa_device(
            ACCOUNT, "alice", serial, totp.hotp(secret, far - 1), totp.hotp(secret, far), now=NOW
        )
    alice.create_user(ACCOUNT, "bob")
    with pytest.raises(NoSuchEntity, match="not enabled for user bob"):
        alice.resync_mfa_device(
            ACCOUNT, "bob", serial, totp.hotp(secret, step), totp.hotp(secret, step + 1), now=NOW
        )
