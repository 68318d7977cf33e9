"""Signing keys in the store (authbridge.keys.StoreKeys over SqlStore), on SQLite and PostgreSQL.

Covers: sealing (AES-256-GCM under the KEK, kid|alg as associated data) and
opening; rows that hold no key material; named attacks — ciphertexts swapped
between rows, an alg rewritten in a row, a sealed value moved to another
kid's AAD, a wrong KEK — each refused with a clear KeyStoreError, never a
traceback and never a key; the KEK parser (file modes, raw or base64, the
environment) with a Hypothesis property test; import (idempotent), rotate,
retire, revoke (out of the JWKS and of verification, the only signing key
refused unless a successor is made in the same step, no predecessor brought
back); the pure rotation decision, table-tested; automatic rotation by
exactly one of several racing processes, a busy lock skipped; a failing edit
leaving nothing written; and the KeyRing refreshing in the background with
no store call on the request path.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from authbridge.errors import KeyStoreError, TokenUnknownKey
from authbridge.iam.credentials import Pepper
from authbridge.keys import (
    KEK_BYTES,
    Kek,
    KeyEdit,
    KeyRing,
    KeySet,
    SigningKey,
    StoreKeys,
    generate_signing_key,
    load_kek,
    plan_rotation,
)
from authbridge.store import SqlStore, open_store
from authbridge.tokens import Principal, mint, verify

NOW = 1_700_000_000
ISSUER = "https://authbridge.example.com"
PERIOD = 30 * 86400
DELAY = 600
MAX = 43200
USER = Principal(
    arn="arn:aws:iam::111122223333:user/alice",
    canonical_arn="arn:aws:iam::111122223333:user/alice",
    account_id="111122223333",
    principal_id="AIDAEXAMPLEALICE00001",
    access_key_id="AKIAEXAMPLEKEY000001",
)


def make(store: SqlStore, kek: Kek, **kw: Any) -> StoreKeys:
    kw.setdefault("prepublication_delay", DELAY)
    kw.setdefault("max_token_lifetime", MAX)
    kw.setdefault("rotation_period", PERIOD)
    return StoreKeys(store, kek, **kw)


@pytest.fixture
def kek() -> Kek:
    return Kek.generate("test")


@pytest.fixture
def sk(store: SqlStore, kek: Kek) -> StoreKeys:
    return make(store, kek)


def _raw_execute(store: SqlStore, sql: str, params: tuple[Any, ...] = ()) -> None:
    with store._db.transaction(write=True) as cur:
        cur.execute(sql, params)


def private_forms(key: SigningKey) -> list[bytes]:
    """Every form a private key could leak in: DER, PEM's base64 body, and its lines."""
    from cryptography.hazmat.primitives import serialization

    der = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem_body = "".join(key.private_pem().decode().splitlines()[1:-1]).encode()
    forms = [der, base64.b64encode(der), pem_body, base64.urlsafe_b64encode(der).rstrip(b"=")]
    forms += [line.encode() for line in key.private_pem().decode().splitlines()[1:-2]]
    return forms


# --------------------------------------------------------------------------- sealing


def test_init_load_and_rows_hold_no_private_key(sk: StoreKeys, store: SqlStore) -> None:
    first = sk.init("ES256", now=NOW)
    pending = sk.rotate("RS256", now=NOW + 1)
    loaded = sk.load()
    assert [k.kid for k in loaded.keys] == [first.kid, pending.kid]
    assert loaded.signing_key(NOW + 2).kid == first.kid
    assert loaded.state_of(pending.kid, NOW + 2) == "pending"
    assert loaded.signing_key(NOW + 1 + DELAY).kid == pending.kid
    rows = store.list_signing_keys()
    dump = repr(rows).encode() + b"".join(
        (r.sealed_private_key + r.public_jwk).encode() for r in rows
    )
    for key in (first, pending):
        for form in private_forms(key):
            assert form not in dump
    assert "sealed_private_key" not in repr(rows[0])  # not even the ciphertext in a repr
    assert "Kek(" in repr(sk.kek) and "test" in repr(sk.kek)


def test_init_refused_when_store_has_keys(sk: StoreKeys) -> None:
    sk.init("ES256", now=NOW)
    with pytest.raises(KeyStoreError, match="already has signing keys"):
        sk.init("ES256", now=NOW)


def test_empty_store_says_import_or_init(sk: StoreKeys) -> None:
    with pytest.raises(KeyStoreError, match="keys import.*keys init"):
        sk.load()


def test_each_seal_uses_a_fresh_nonce(kek: Kek) -> None:
    sealed = {kek.seal(b"same plaintext", b"aad") for _ in range(50)}
    assert len(sealed) == 50
    assert {kek.open(s, b"aad") for s in sealed} == {b"same plaintext"}


def test_sealed_value_does_not_open_under_another_kid_or_alg(kek: Kek) -> None:
    """Attack: a sealed private key moved to another row (another kid/alg in the AAD)."""
    from authbridge.keys import _aad

    sealed = kek.seal(b"key material", _aad("kid-A", "ES256"))
    assert kek.open(sealed, _aad("kid-A", "ES256")) == b"key material"
    for aad in (_aad("kid-B", "ES256"), _aad("kid-A", "RS256")):
        with pytest.raises(ValueError, match="does not decrypt"):
            kek.open(sealed, aad)


def test_swapped_ciphertexts_between_rows_refused(sk: StoreKeys, store: SqlStore) -> None:
    """Attack: someone with write access to the database swaps two rows' sealed keys."""
    a = sk.init("ES256", now=NOW)
    b = sk.rotate("ES256", now=NOW + 1)
    rows = {r.kid: r for r in store.list_signing_keys()}
    for kid, other in ((a.kid, b.kid), (b.kid, a.kid)):
        _raw_execute(
            store,
            "UPDATE signing_keys SET sealed_private_key = ? WHERE kid = ?",
            (rows[other].sealed_private_key, kid),
        )
    with pytest.raises(KeyStoreError, match="altered or swapped") as e:
        sk.load()
    assert "restore the store from a backup" in str(e.value)
    # and nothing is written on top of a store that does not open
    with pytest.raises(KeyStoreError, match="altered or swapped"):
        sk.rotate(now=NOW + 2)
    assert len(store.list_signing_keys()) == 2


def test_rewritten_alg_refused(sk: StoreKeys, store: SqlStore) -> None:
    """Attack: a row's alg changed (ES256 -> RS256): the AAD no longer matches."""
    key = sk.init("ES256", now=NOW)
    _raw_execute(store, "UPDATE signing_keys SET alg = 'RS256' WHERE kid = ?", (key.kid,))
    with pytest.raises(KeyStoreError, match="altered or swapped"):
        sk.load()


def test_rewritten_public_jwk_refused(sk: StoreKeys, store: SqlStore) -> None:
    """Attack: the published JWK replaced by another key's (the JWKS would lie)."""
    key = sk.init("ES256", now=NOW)
    other = generate_signing_key("ES256", now=NOW)
    import json

    _raw_execute(
        store,
        "UPDATE signing_keys SET public_jwk = ? WHERE kid = ?",
        (json.dumps(other.public_jwk(), sort_keys=True, separators=(",", ":")), key.kid),
    )
    with pytest.raises(KeyStoreError, match="altered or swapped"):
        sk.load()


def test_wrong_kek_is_a_clear_error_naming_the_setting(sk: StoreKeys, store: SqlStore) -> None:
    key = sk.init("ES256", now=NOW)
    wrong = Kek.generate("kekFile /etc/authbridge/kek")
    with pytest.raises(KeyStoreError) as e:
        make(store, wrong).load()
    message = str(e.value)
    assert "sealed with another key-encryption key" in message
    assert "kekFile /etc/authbridge/kek" in message and "AUTHBRIDGE_KEK" in message
    assert sk.kek.kek_id in message and key.kid in message


def test_wrong_kek_with_forged_kek_id_still_refused(sk: StoreKeys, store: SqlStore) -> None:
    """Attack: the kek_id column rewritten to match another KEK: the AEAD still refuses."""
    sk.init("ES256", now=NOW)
    wrong = Kek.generate("AUTHBRIDGE_KEK")
    _raw_execute(store, "UPDATE signing_keys SET kek_id = ?", (wrong.kek_id,))
    with pytest.raises(KeyStoreError, match="does not decrypt under the KEK from AUTHBRIDGE_KEK"):
        make(store, wrong).load()


# --------------------------------------------------------------------------- the KEK


def test_kek_file_raw_or_base64(tmp_path: Path) -> None:
    value = os.urandom(KEK_BYTES)
    raw, b64 = tmp_path / "raw", tmp_path / "b64"
    raw.write_bytes(value)
    b64.write_text(base64.b64encode(value).decode() + "\n")
    for p in (raw, b64):
        p.chmod(0o600)
    ids = {load_kek(raw, None).kek_id, load_kek(b64, None).kek_id}
    ids.add(load_kek(None, base64.b64encode(value).decode()).kek_id)
    assert len(ids) == 1


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o666])
def test_kek_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    p = tmp_path / "kek"
    p.write_bytes(os.urandom(KEK_BYTES))
    p.chmod(mode)
    with pytest.raises(KeyStoreError, match=r"kekFile .* accessible by other users.*chmod 600"):
        load_kek(p, None)


def test_kek_file_group_read_allowed_for_secret_mounts(tmp_path: Path) -> None:
    p = tmp_path / "kek"
    p.write_bytes(os.urandom(KEK_BYTES))
    p.chmod(0o440)
    load_kek(p, None)


@pytest.mark.parametrize(
    ("file", "env", "says"),
    [
        (None, None, "no key-encryption key"),
        ("missing", None, "does not exist"),
        ("short", None, "neither 32 bytes nor the base64"),
        (None, "not base64!", "AUTHBRIDGE_KEK is not the base64"),
        (None, base64.b64encode(b"x" * 16).decode(), "AUTHBRIDGE_KEK is not the base64"),
        ("short", "also", "both kekFile"),
    ],
)
def test_kek_missing_or_malformed(
    tmp_path: Path, file: str | None, env: str | None, says: str
) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"0123456789")
    short.chmod(0o600)
    path = None if file is None else tmp_path / file
    with pytest.raises(KeyStoreError, match=says) as e:
        load_kek(path, env)
    assert "0123456789" not in str(e.value)
    if env:
        assert env not in str(e.value)


@hsettings(max_examples=150)
@given(st.text(max_size=80))
def test_kek_env_parser_property(text: str) -> None:
    """Any AUTHBRIDGE_KEK value is a Kek or a KeyStoreError that never quotes it."""
    try:
        kek = load_kek(None, text)
    except KeyStoreError as e:
        if len(text.strip()) >= 4:
            assert text.strip() not in str(e)
    else:
        assert len(base64.b64decode(text.strip())) == KEK_BYTES
        assert text.strip() not in repr(kek)


@hsettings(max_examples=100)
@given(
    st.binary(max_size=80)
    | st.builds(lambda b: base64.b64encode(b) + b"\n", st.binary(max_size=40))
)
def test_kek_file_parser_property(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """Any kekFile content is a Kek or a KeyStoreError naming the file, never quoting it."""
    path = tmp_path_factory.mktemp("kek") / "kek"
    path.write_bytes(data)
    path.chmod(0o600)
    try:
        load_kek(path, None)
    except KeyStoreError as e:
        assert str(path) in str(e)
        if len(data.strip()) >= 8:
            assert data.strip().decode("latin-1") not in str(e)
    else:
        assert len(data) == KEK_BYTES or len(base64.b64decode(data.strip())) == KEK_BYTES


@hsettings(max_examples=150)
@given(st.text(max_size=200))
def test_open_of_arbitrary_sealed_text_only_raises_value_error(text: str) -> None:
    kek = Kek(b"k" * KEK_BYTES, "test")
    with pytest.raises(ValueError):
        kek.open(text, b"aad")


# --------------------------------------------------------------------------- import, retire


def test_import_is_idempotent(sk: StoreKeys, tmp_path: Path) -> None:
    from authbridge.keys import KeyDirectory

    kd = KeyDirectory(tmp_path / "keys", prepublication_delay=DELAY, max_token_lifetime=MAX)
    first = kd.init("ES256", now=NOW)
    second = kd.rotate(now=NOW + 1)
    imported, present = sk.import_keys(kd.load())
    assert imported == [first.kid, second.kid] and present == []
    imported, present = sk.import_keys(kd.load())
    assert imported == [] and present == [first.kid, second.kid]
    in_store = sk.load()
    assert [k.kid for k in in_store.keys] == [first.kid, second.kid]
    assert in_store.jwks(NOW + 5) == kd.load().jwks(NOW + 5)


def test_retire_in_store_follows_directory_rules(sk: StoreKeys) -> None:
    first = sk.init("ES256", now=NOW)
    pending = sk.rotate(now=NOW + 1)
    with pytest.raises(KeyStoreError, match="active signing key"):
        sk.retire(first.kid, now=NOW + 2)
    sk.retire(pending.kid, now=NOW + 2)
    assert sk.load().state_of(pending.kid, NOW + 2) == "retired"
    sk.retire(pending.kid, now=NOW + 3)  # again: nothing changes
    with pytest.raises(KeyStoreError, match="no signing key with kid"):
        sk.retire("nope", now=NOW + 3)


# --------------------------------------------------------------------------- revoke


def _token(keys: KeySet, now: int) -> str:
    return mint(USER, keys=keys, issuer=ISSUER, audience="prod", lifetime=900, now=now).token


def test_revoked_key_leaves_jwks_and_its_tokens_are_refused(sk: StoreKeys) -> None:
    """Attack: a compromised key keeps verifying tokens. Revocation ends that at once."""
    old = sk.init("ES256", now=NOW)
    token = _token(sk.load(), NOW + 10)
    new = sk.revoke(old.kid, "compromised", now=NOW + 20, rotate=True)
    assert new is not None
    keys = sk.load()
    kids = [k["kid"] for k in keys.jwks(NOW + 21)["keys"]]
    assert kids == [new.kid]
    assert keys.signing_key(NOW + 21).kid == new.kid  # the successor signs at once
    with pytest.raises(TokenUnknownKey):
        verify(token, keys=keys, issuer=ISSUER, audiences=["prod"], now=NOW + 21)
    assert keys.state_of(old.kid, NOW + 21) == "revoked"
    row = next(r for r in keys.describe(NOW + 21) if r["kid"] == old.kid)
    assert row["state"] == "revoked" and "revoked" in row


def test_revoking_the_only_signing_key_refused_unless_rotating(sk: StoreKeys) -> None:
    only = sk.init("ES256", now=NOW)
    sk.rotate(now=NOW + 1)  # a pending key is not one that signs now
    with pytest.raises(KeyStoreError, match="signs now.*--rotate"):
        sk.revoke(only.kid, "compromised", now=NOW + 2)
    assert sk.load().state_of(only.kid, NOW + 2) == "active"


def test_revoking_the_active_key_brings_no_older_key_back(sk: StoreKeys) -> None:
    first = sk.init("ES256", now=NOW)
    second = sk.rotate(now=NOW + 1, activates_in=0)
    assert sk.load().signing_key(NOW + 2).kid == second.kid
    third = sk.revoke(second.kid, "compromised", now=NOW + 3, rotate=True)
    assert third is not None
    keys = sk.load()
    assert keys.signing_key(NOW + 4).kid == third.kid
    assert keys.state_of(first.kid, NOW + 4) == "retiring"  # verifies its old tokens, never signs
    assert keys.state_of(first.kid, NOW + 1 + MAX) == "retired"


def test_revoke_and_rotate_in_the_same_second_as_a_rotation_leaves_a_signer(
    sk: StoreKeys,
) -> None:
    # The successor of a key that activated this very second must sort after it:
    # ordered by kid alone (random), half the time the revoked key stayed the newest
    # and nothing could sign. Eight rounds: the old code failed at least one with
    # probability 1 - 2**-8.
    sk.init("ES256", now=NOW)
    for i in range(8):
        ts = NOW + 10 * (i + 1)
        rotated = sk.rotate(now=ts, activates_in=0)
        successor = sk.revoke(rotated.kid, "compromised", now=ts, rotate=True)
        assert successor is not None
        keys = sk.load()
        assert keys.signing_key(ts).kid == successor.kid
        assert keys.state_of(successor.kid, ts) == "active"
        assert keys.state_of(rotated.kid, ts) == "revoked"


def test_revoke_a_retiring_key_needs_no_rotation_and_is_idempotent(sk: StoreKeys) -> None:
    first = sk.init("ES256", now=NOW)
    sk.rotate(now=NOW + 1, activates_in=0)
    assert sk.revoke(first.kid, "superseded", now=NOW + 2) is None
    assert sk.revoke(first.kid, "superseded", now=NOW + 3) is None
    rows = [r for r in sk.records.list_signing_keys() if r.kid == first.kid]
    assert rows[0].revoked_at == NOW + 2 and rows[0].revocation_reason == "superseded"


def test_unknown_revocation_reason_refused(sk: StoreKeys) -> None:
    key = sk.init("ES256", now=NOW)
    with pytest.raises(KeyStoreError, match="revocation reason"):
        sk.revoke(key.kid, "bored", now=NOW + 1, rotate=True)


# --------------------------------------------------------------------------- rotation


def _keys(*specs: tuple[int, int, int | None, int | None]) -> KeySet:
    """KeySet of (created, activates, retired, revoked)."""
    out = []
    for created, activates, retired, revoked in specs:
        k = generate_signing_key("ES256", now=created, activates_at=activates)
        out.append(
            SigningKey(k.kid, k.alg, created, activates, retired, k.private_key, revoked_at=revoked)
        )
    return KeySet(tuple(out), max_token_lifetime=MAX)


@pytest.mark.parametrize(
    ("keys", "now", "period", "decision"),
    [
        (_keys((NOW, NOW, None, None)), NOW + PERIOD - 1, PERIOD, "not_due"),
        (_keys((NOW, NOW, None, None)), NOW + PERIOD, PERIOD, "rotate"),
        (_keys((NOW, NOW, None, None)), NOW + 10 * PERIOD, 0, "off"),
        # a pending key: rotation already under way
        (
            _keys((NOW, NOW, None, None), (NOW + PERIOD, NOW + PERIOD + DELAY, None, None)),
            NOW + PERIOD + 1,
            PERIOD,
            "pending",
        ),
        # once it activated, the clock starts from its creation
        (
            _keys((NOW, NOW, None, None), (NOW + PERIOD, NOW + PERIOD + DELAY, None, None)),
            NOW + PERIOD + DELAY,
            PERIOD,
            "not_due",
        ),
        (
            _keys((NOW, NOW, None, None), (NOW + PERIOD, NOW + PERIOD + DELAY, None, None)),
            NOW + 2 * PERIOD,
            PERIOD,
            "rotate",
        ),
        # a revoked newest key does not count as fresh
        (
            _keys((NOW, NOW, None, None), (NOW + 5, NOW + 5, None, NOW + 6)),
            NOW + PERIOD,
            PERIOD,
            "rotate",
        ),
        # everything revoked or retired: nothing signs, a new key heals that
        (_keys((NOW, NOW, None, NOW + 1)), NOW + 2, PERIOD, "rotate"),
        (_keys((NOW, NOW, NOW + 1, None)), NOW + 2, PERIOD, "rotate"),
        # nothing at all: the first key is `keys init` / `keys import`, never rotation
        (KeySet(()), NOW, PERIOD, "no_keys"),
    ],
)
def test_plan_rotation(keys: KeySet, now: int, period: int, decision: str) -> None:
    assert plan_rotation(keys, now, period) == decision


def test_maybe_rotate_makes_one_pending_key_when_due(sk: StoreKeys) -> None:
    first = sk.init("ES256", now=NOW)
    assert sk.maybe_rotate(sk.load(), now=NOW + PERIOD - 1) is False
    assert sk.maybe_rotate(sk.load(), now=NOW + PERIOD) is True
    assert sk.maybe_rotate(sk.load(), now=NOW + PERIOD + 1) is False  # one is pending
    assert sk.maybe_rotate(None, now=NOW + PERIOD + 2) is False  # decided under the lock too
    keys = sk.load()
    assert len(keys.keys) == 2
    new = keys.keys[-1]
    assert new.alg == "ES256" and new.activates_at == NOW + PERIOD + DELAY
    # it activates after the delay; the old key retires after the longest token lifetime
    assert keys.signing_key(NOW + PERIOD + DELAY).kid == new.kid
    assert keys.state_of(first.kid, NOW + PERIOD + DELAY + MAX - 1) == "retiring"
    assert keys.state_of(first.kid, NOW + PERIOD + DELAY + MAX) == "retired"


def _rotate_in_child(dsn: str, kek: bytes, start: Any, results: Any) -> None:
    store = open_store(dsn, pepper=Pepper(b"p" * 32), migrate=False)
    try:
        keys = StoreKeys(
            store,
            Kek(kek, "test"),
            prepublication_delay=DELAY,
            max_token_lifetime=MAX,
            rotation_period=PERIOD,
        )
        current = keys.load()
        start.wait(180)
        made = sum(keys.maybe_rotate(current, now=NOW + PERIOD + i) for i in range(5))
    except BaseException as e:  # report it: a silent child would only time out the parent
        results.put(f"{type(e).__name__}: {e}")
        raise
    finally:
        store.close()
    results.put(made)


def test_racing_replicas_rotate_exactly_once(empty_dsn: str) -> None:
    store = open_store(empty_dsn, pepper=Pepper(b"p" * 32))
    kek = os.urandom(KEK_BYTES)
    try:
        make(store, Kek(kek, "test")).init("ES256", now=NOW)
        ctx = multiprocessing.get_context("spawn")
        n = 3
        start, results = ctx.Barrier(n), ctx.Queue()
        procs = [
            ctx.Process(target=_rotate_in_child, args=(empty_dsn, kek, start, results))
            for _ in range(n)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=400) for _ in procs]
        for p in procs:
            p.join(30)
        assert not [o for o in outcomes if isinstance(o, str)], outcomes
        assert sum(outcomes) == 1
        assert len(store.list_signing_keys()) == 2
    finally:
        store.close()


@pytest.mark.postgres
def test_rotation_skips_while_another_replica_holds_the_lock(tmp_path: Path) -> None:
    import psycopg

    from authbridge.store.postgres import SIGNING_KEYS_LOCK_ID
    from tests.conftest import _dsn_for

    dsn = _dsn_for("postgres", tmp_path)
    store = open_store(dsn.value, pepper=Pepper(b"p" * 32))
    try:
        sk = make(store, Kek.generate())
        sk.init("ES256", now=NOW)
        with psycopg.connect(dsn.value) as other, other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(%s)", (SIGNING_KEYS_LOCK_ID,))
            started = time.monotonic()
            assert sk.maybe_rotate(sk.load(), now=NOW + PERIOD) is False
            assert time.monotonic() - started < 5  # did not wait for the lock
        assert sk.maybe_rotate(sk.load(), now=NOW + PERIOD) is True
    finally:
        store.close()
        dsn.cleanup()


def test_failed_edit_writes_nothing(sk: StoreKeys, store: SqlStore, kek: Kek) -> None:
    """Crash safety: an edit that fails after its insert leaves no row (one transaction)."""
    from authbridge.keys import seal_key

    sk.init("ES256", now=NOW)
    extra = seal_key(generate_signing_key("ES256", now=NOW), kek)
    ghost = seal_key(generate_signing_key("ES256", now=NOW), kek)

    def edit(rows: list[Any]) -> KeyEdit:
        return KeyEdit(add=(extra,), update=(ghost,))  # the update names no row

    with pytest.raises(KeyStoreError, match="not in the store"):
        store.edit_signing_keys(edit)
    assert [r.kid for r in store.list_signing_keys()] == [sk.load().keys[0].kid]


# --------------------------------------------------------------------------- refresh


class _ThreadRecorder:
    """Wraps the store; records which thread made each call."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.threads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            return value(*args, **kwargs)

        return call


def test_ring_refreshes_in_background_and_requests_never_touch_the_store(
    store: SqlStore, kek: Kek
) -> None:
    recorder = _ThreadRecorder(store)
    sk = make(recorder, kek)  # type: ignore[arg-type]  # a recording wrapper of the store
    first = sk.init("ES256")
    ring = KeyRing(sk)  # check_interval 1 s: an on-request check would show within 1.5 s
    ring.start_refresher(0.05)
    try:
        recorder.threads.clear()
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            assert ring.current().signing_key(time.time()).kid == first.kid
        assert recorder.threads, "the refresher made no call"
        assert set(recorder.threads) == {"authbridge-key-refresh"}  # never the request thread
        new = make(store, kek).rotate(activates_in=0)
        deadline = time.monotonic() + 20
        while ring.current().get(new.kid) is None:
            assert time.monotonic() < deadline, ring.last_error
            time.sleep(0.02)
        assert ring.reloads >= 1 and ring.last_error is None
    finally:
        ring.stop()


def test_ring_keeps_last_good_keys_when_a_reload_fails(store: SqlStore, kek: Kek) -> None:
    sk = make(store, kek)
    first = sk.init("ES256")
    ring = KeyRing(sk)
    second = sk.rotate(activates_in=0)
    _raw_execute(store, "UPDATE signing_keys SET alg = 'RS256' WHERE kid = ?", (second.kid,))
    assert ring.refresh() is False
    assert ring.current().signing_key(time.time()).kid == first.kid
    assert ring.last_error is not None and "altered or swapped" in ring.last_error


def test_refresher_survives_a_failing_rotation(store: SqlStore, kek: Kek) -> None:
    sk = make(store, kek)
    sk.init("ES256")
    ring = KeyRing(sk)
    ticks = threading.Event()

    def boom(keys: KeySet) -> bool:
        ticks.set()
        raise RuntimeError("secret-looking detail")

    ring.start_refresher(0.02, after_refresh=boom)
    try:
        assert ticks.wait(10)
        deadline = time.monotonic() + 10
        while ring.last_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ring.last_error == "key refresh failed (RuntimeError)"
    finally:
        ring.stop()


def test_cli_choices_match_the_keys_module() -> None:
    """The CLI repeats these so that `--help` does not import cryptography."""
    from authbridge.cli import keys as cli_keys
    from authbridge.keys import ALGORITHMS, REVOCATION_REASONS

    assert cli_keys._ALGORITHMS == ALGORITHMS
    assert cli_keys._REVOCATION_REASONS == REVOCATION_REASONS
