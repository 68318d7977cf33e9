"""Login passwords (authbridge.iam.passwords): argon2id hashes, bounded hashing, the policy.

Covers: the PHC string records the parameters and verifies after they
change, ``needs_rehash`` then; wrong, malformed and oversized input is
False, never an exception; the semaphore refuses with Throttled when every
slot is held past the wait (a login flood cannot take every core); the
policy's bounds and AWS names round-trip; every rule a password breaks is
named and the password never appears in the message (with a Hypothesis
property over arbitrary passwords and policies).
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import InputError, PasswordPolicyViolation, Throttled
from authbridge.iam import passwords
from authbridge.iam.passwords import Argon2Params, PasswordHasher, PasswordPolicy

FAST = Argon2Params(time_cost=1, memory_kib=64, parallelism=1)


def test_the_hash_is_argon2id_with_its_parameters() -> None:
    hasher = PasswordHasher(FAST)
    digest = hasher.hash("correct horse battery")
    assert digest.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "correct horse" not in digest
    assert hasher.verify(digest, "correct horse battery")
    assert not hasher.verify(digest, "correct horse batterY")
    assert hasher.hash("correct horse battery") != digest  # a fresh salt each time


def test_default_parameters_are_rfc_9106_low_memory_with_one_lane() -> None:
    assert passwords.DEFAULT_PARAMS == Argon2Params(time_cost=3, memory_kib=65536, parallelism=1)


def test_a_hash_made_with_old_parameters_still_verifies_and_needs_rehash() -> None:
    old = PasswordHasher(FAST).hash("s3cret-password")
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_kib=128, parallelism=1))
    assert stronger.verify(old, "s3cret-password")
    assert stronger.needs_rehash(old)
    fresh = stronger.hash("s3cret-password")
    assert not stronger.needs_rehash(fresh)
    assert "m=128,t=2,p=1" in fresh


@pytest.mark.parametrize(
    "stored",
    ["", "not a hash", "$argon2id$v=19$m=64,t=1,p=1$AAAA", "$2b$12$" + "a" * 53, "\x00" * 10],
)
def test_a_malformed_stored_hash_is_a_mismatch_and_needs_rehash(stored: str) -> None:
    hasher = PasswordHasher(FAST)
    assert hasher.verify(stored, "anything") is False
    assert hasher.needs_rehash(stored)


def test_oversized_passwords_are_refused_before_hashing() -> None:
    hasher = PasswordHasher(FAST)
    huge = "x" * (passwords.MAX_PASSWORD_CHARS + 1)
    with pytest.raises(InputError) as err:
        hasher.hash(huge)
    assert err.value.field == "Password" and "x" * 20 not in str(err.value)
    assert hasher.verify(hasher.hash("short-enough"), huge) is False


def test_the_semaphore_is_sized_to_the_cores_by_default() -> None:
    import os

    assert PasswordHasher(FAST).slots == max(1, os.cpu_count() or 1)


def test_a_flood_waits_then_is_throttled_when_no_slot_frees() -> None:
    """Every slot held (as by a flood of logins): the next call fails fast as Throttled."""
    hasher = PasswordHasher(FAST, slots=2, wait_seconds=0.01)
    hasher._slots.acquire()
    hasher._slots.acquire()
    try:
        with pytest.raises(Throttled) as err:
            hasher.hash("a password")
        assert err.value.code == "Throttling"
        with pytest.raises(Throttled):
            hasher.verify("$argon2id$v=19$m=64,t=1,p=1$x$y", "a password")
    finally:
        hasher._slots.release()
        hasher._slots.release()
    assert hasher.verify(hasher.hash("a password"), "a password")


def test_slots_are_released_after_errors_and_concurrent_use() -> None:
    hasher = PasswordHasher(FAST, slots=2, wait_seconds=5)
    for _ in range(5):
        hasher.verify("garbage", "x")  # an exception inside, the slot still comes back
    results: list[bool] = []

    def work() -> None:
        results.append(hasher.verify(hasher.hash("pw-12345678"), "pw-12345678"))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 6
    # All slots free again: both can be taken without waiting.
    assert hasher._slots.acquire(timeout=0) and hasher._slots.acquire(timeout=0)


def test_the_dummy_verification_spends_one_real_verification() -> None:
    hasher = PasswordHasher(FAST)
    calls: list[str] = []
    real = hasher.verify

    def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    hasher.verify = counting  # type: ignore[method-assign]
    hasher.verify_dummy("whatever")
    hasher.verify_dummy("whatever again")
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0].startswith("$argon2id$")
    assert not hasher.needs_rehash(calls[0])  # the configured parameters, the same cost


@pytest.mark.parametrize("params", [FAST, passwords.DEFAULT_PARAMS])
def test_the_dummy_hash_is_well_formed_so_argon2_does_the_full_work(params: Argon2Params) -> None:
    """A malformed dummy would be refused at once (InvalidHash): no work, a timing oracle."""
    import argon2
    from argon2.exceptions import VerifyMismatchError

    hasher = PasswordHasher(params)
    assert argon2.extract_parameters(hasher._dummy) == params.to_argon2()
    with pytest.raises(VerifyMismatchError):
        argon2.PasswordHasher.from_parameters(params.to_argon2()).verify(hasher._dummy, "pw")


def test_repr_never_shows_a_hash_or_password() -> None:
    assert "argon2" not in repr(PasswordHasher(FAST)).lower().replace("argon2params", "")


# --------------------------------------------------------------------------- the policy


def test_policy_round_trips_through_aws_names() -> None:
    policy = PasswordPolicy(
        minimum_length=14,
        require_symbols=True,
        require_numbers=True,
        require_uppercase=True,
        require_lowercase=True,
        allow_users_to_change=True,
        max_age_days=90,
        reuse_prevention=24,
        hard_expiry=True,
    )
    doc = policy.to_aws()
    assert doc == {
        "MinimumPasswordLength": 14,
        "RequireSymbols": True,
        "RequireNumbers": True,
        "RequireUppercaseCharacters": True,
        "RequireLowercaseCharacters": True,
        "AllowUsersToChangePassword": True,
        "ExpirePasswords": True,
        "HardExpiry": True,
        "MaxPasswordAge": 90,
        "PasswordReusePrevention": 24,
    }
    assert PasswordPolicy.from_aws(doc) == policy
    assert "MaxPasswordAge" not in PasswordPolicy().to_aws()


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("MinimumPasswordLength", {"minimum_length": 7}),
        ("MinimumPasswordLength", {"minimum_length": 129}),
        ("MaxPasswordAge", {"max_age_days": 0}),
        ("MaxPasswordAge", {"max_age_days": 1096}),
        ("PasswordReusePrevention", {"reuse_prevention": 0}),
        ("PasswordReusePrevention", {"reuse_prevention": 25}),
        ("MinimumPasswordLength", {"minimum_length": True}),
    ],
)
def test_policy_bounds(field: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(InputError) as err:
        PasswordPolicy(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_every_broken_rule_is_named_and_the_password_is_not() -> None:
    strict = PasswordPolicy(
        minimum_length=12,
        require_symbols=True,
        require_numbers=True,
        require_uppercase=True,
        require_lowercase=True,
    )
    problems = passwords.policy_problems(strict, "hunter")
    assert [p.split(":")[0] for p in problems] == [
        "MinimumPasswordLength",
        "RequireUppercaseCharacters",
        "RequireNumbers",
        "RequireSymbols",
    ]
    with pytest.raises(PasswordPolicyViolation) as err:
        passwords.check_password(strict, "hunter")
    assert "hunter" not in str(err.value) and err.value.code == "PasswordPolicyViolation"
    assert passwords.policy_problems(strict, "Hunter2-hunter2") == []
    assert passwords.policy_problems(strict, "HUNTER2-HUNTER2")[0].startswith(
        "RequireLowercaseCharacters"
    )


def test_control_characters_are_refused() -> None:
    assert passwords.policy_problems(PasswordPolicy(), "password\x00withnul")


def test_expiry_by_max_age() -> None:
    policy = PasswordPolicy(max_age_days=1)
    assert not passwords.is_expired(policy, 1000, 1000 + 86399)
    assert passwords.is_expired(policy, 1000, 1000 + 86400)
    assert not passwords.is_expired(PasswordPolicy(), 0, 10**10)


POLICIES = st.builds(
    PasswordPolicy,
    minimum_length=st.integers(8, 128),
    require_symbols=st.booleans(),
    require_numbers=st.booleans(),
    require_uppercase=st.booleans(),
    require_lowercase=st.booleans(),
    max_age_days=st.none() | st.integers(1, 1095),
    reuse_prevention=st.none() | st.integers(1, 24),
)


@given(policy=POLICIES, password=st.text(max_size=200))
def test_policy_checker_property(policy: PasswordPolicy, password: str) -> None:
    """Only PasswordPolicyViolation comes out; it names rules, never the password."""
    problems = passwords.policy_problems(policy, password)
    try:
        passwords.check_password(policy, password)
    except PasswordPolicyViolation as err:
        assert err.problems == problems and problems
        if len(password) >= 4:
            assert password not in str(err)
    else:
        assert problems == []
        assert len(password) >= policy.minimum_length
        if policy.require_numbers:
            assert any(c.isascii() and c.isdigit() for c in password)
        if policy.require_symbols:
            assert any(c in passwords.SYMBOLS for c in password)


@given(doc=st.dictionaries(st.sampled_from(list(PasswordPolicy().to_aws())), st.integers(-5, 2000)))
def test_policy_from_hostile_documents_is_input_error_or_valid(doc: dict[str, int]) -> None:
    try:
        policy = PasswordPolicy.from_aws(doc)
    except InputError as err:
        assert err.field in {"MinimumPasswordLength", "MaxPasswordAge", "PasswordReusePrevention"}
    else:
        assert 8 <= policy.minimum_length <= 128
