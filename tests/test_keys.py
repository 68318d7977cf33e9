"""Signing keys on disk and over time (authbridge.keys).

Covers:
- kid = RFC 7638 thumbprint: the RFC 7638 §3.1 example, and an independent
  computation for freshly made RSA and EC keys;
- the directory layout written by ``init`` (modes, PKCS#8 PEM, state file);
- the derived state machine pending → active → retiring → retired, at the
  exact boundary seconds, including explicit ``retire``;
- ``retire`` refusing the active key and unknown kids;
- the JWKS: only public parameters, exactly the published keys;
- load refusals: unsafe modes (naming the file and the chmod fix), corrupt
  state file, missing / swapped / non-PEM key file, wrong algorithm, empty dir;
- files that are not keys are ignored; symlinked (Kubernetes Secret) mounts;
- two processes rotating at once keep both keys (flock);
- ``fingerprint`` changes when keys change and only then;
- nothing secret in reprs or error messages.

RSA key generation is slow, so state machine tests use ES256 keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge.errors import KeyStoreError
from authbridge.keys import (
    LOCK_FILE,
    STATE_FILE,
    KeyDirectory,
    KeySet,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
)

T0 = 1_700_000_000
DELAY = 600
MAX_LIFETIME = 3600

# RFC 7638 §3.1 example JWK and its thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

PRIVATE_RSA_PARAMS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


# --------------------------------------------------------------------------- helpers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def independent_thumbprint(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 written out by hand, sharing no code with authbridge.keys."""
    if isinstance(public_key, rsa.RSAPublicKey):
        nums = public_key.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        text = f'{{"e":"{_b64(e)}","kty":"RSA","n":"{_b64(n)}"}}'
    else:
        ecn = public_key.public_numbers()
        x, y = ecn.x.to_bytes(32, "big"), ecn.y.to_bytes(32, "big")
        text = f'{{"crv":"P-256","kty":"EC","x":"{_b64(x)}","y":"{_b64(y)}"}}'
    return _b64(hashlib.sha256(text.encode()).digest())


def make_dir(path: Path, **kw: Any) -> KeyDirectory:
    kw.setdefault("prepublication_delay", DELAY)
    kw.setdefault("max_token_lifetime", MAX_LIFETIME)
    return KeyDirectory(path, **kw)


def read_state(kd: KeyDirectory) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((kd.path / STATE_FILE).read_text())
    return data


def write_state(kd: KeyDirectory, doc: dict[str, Any]) -> None:
    (kd.path / STATE_FILE).write_text(json.dumps(doc))


@pytest.fixture
def kd(tmp_path: Path) -> KeyDirectory:
    """A key directory with one ES256 key, active since T0."""
    d = make_dir(tmp_path / "keys")
    d.init("ES256", now=T0)
    return d


# --------------------------------------------------------------------------- kid


def test_rfc7638_example_thumbprint() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    # The independent implementation agrees on the RFC's own example.
    n = int.from_bytes(base64.urlsafe_b64decode(RFC7638_JWK["n"] + "=="), "big")
    public_key = rsa.RSAPublicNumbers(65537, n).public_key()
    assert independent_thumbprint(public_key) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_kid_is_rfc7638_thumbprint(tmp_path: Path, alg: Any) -> None:
    d = make_dir(tmp_path / "keys")
    key = d.init(alg, now=T0)
    assert key.kid == independent_thumbprint(key.public_key)
    assert key.kid == jwk_thumbprint(key.public_jwk())
    assert (d.path / f"{key.kid}.pem").is_file()
    loaded = d.load().get(key.kid)
    assert loaded is not None and loaded.kid == key.kid


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_init_writes_layout(tmp_path: Path, alg: Any) -> None:
    old_umask = os.umask(0)  # modes must not depend on the umask
    try:
        d = make_dir(tmp_path / "a" / "keys")
        key = d.init(alg, now=T0)
    finally:
        os.umask(old_umask)
    assert (d.path.stat().st_mode & 0o777) == 0o700
    pem = d.path / f"{key.kid}.pem"
    assert (pem.stat().st_mode & 0o777) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert ((d.path / STATE_FILE).stat().st_mode & 0o077) == 0
    state = read_state(d)
    assert state == {
        "version": 1,
        "keys": [
            {
                "kid": key.kid,
                "alg": alg,
                "file": f"{key.kid}.pem",
                "created_at": T0,
                "activates_at": T0,
                "retired_at": None,
            }
        ],
    }
    # The very first key is active at once.
    assert d.load().state_of(key.kid, T0) == "active"
    assert d.load().signing_key(T0).kid == key.kid


def test_init_refuses_when_keys_exist(kd: KeyDirectory) -> None:
    with pytest.raises(KeyStoreError, match="already has signing keys") as err:
        kd.init("ES256", now=T0)
    assert "authbridge keys rotate" in str(err.value)
    assert len(read_state(kd)["keys"]) == 1


@pytest.mark.parametrize("create", [False, True])
def test_load_without_keys_says_run_init(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "keys"
    if create:
        path.mkdir()
    with pytest.raises(KeyStoreError, match="keys init") as err:
        make_dir(path).load()
    assert str(path) in str(err.value)


def test_rotate_on_empty_dir_says_run_init(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.mkdir()
    with pytest.raises(KeyStoreError, match="keys init"):
        make_dir(path).rotate("ES256", now=T0)


def test_unsupported_algorithm_refused(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "keys")
    with pytest.raises(KeyStoreError, match="unsupported algorithm"):
        d.init("HS256", now=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported algorithm"):
        generate_signing_key("PS256", now=T0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- states


def test_state_machine_boundaries(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 100).kid  # activates at T0 + 100 + DELAY
    b_active = T0 + 100 + DELAY
    a_gone = b_active + MAX_LIFETIME
    ks = kd.load()

    assert ks.state_of(a, b_active - 1) == "active"
    assert ks.state_of(b, b_active - 1) == "pending"
    assert ks.signing_key(b_active - 1).kid == a

    assert ks.state_of(a, b_active) == "retiring"
    assert ks.state_of(b, b_active) == "active"
    assert ks.signing_key(b_active).kid == b

    assert ks.state_of(a, a_gone - 1) == "retiring"
    assert ks.verification_key(a, a_gone - 1) is not None
    assert ks.state_of(a, a_gone) == "retired"
    assert ks.verification_key(a, a_gone) is None
    assert ks.state_of(b, a_gone) == "active"

    # Pending keys verify (pre-published) but never sign.
    assert ks.verification_key(b, b_active - 1) is not None
    assert {k["kid"] for k in ks.jwks(b_active - 1)["keys"]} == {a, b}
    assert [k["kid"] for k in ks.jwks(a_gone)["keys"]] == [b]


def test_three_keys_each_retires_after_its_own_successor(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 1000).kid
    c = kd.rotate(now=T0 + 2000).kid
    ks = kd.load()
    b_on, c_on = T0 + 1000 + DELAY, T0 + 2000 + DELAY
    assert ks.states(c_on) == {a: "retiring", b: "retiring", c: "active"}
    assert ks.state_of(a, b_on + MAX_LIFETIME) == "retired"
    assert ks.state_of(b, b_on + MAX_LIFETIME) == "retiring"
    assert ks.state_of(b, c_on + MAX_LIFETIME) == "retired"


def test_rotate_defaults_to_active_algorithm(kd: KeyDirectory) -> None:
    assert kd.rotate(now=T0 + 1).alg == "ES256"
    assert kd.rotate("RS256", now=T0 + 2).alg == "RS256"


def test_rotate_activates_in_overrides_delay(kd: KeyDirectory) -> None:
    new = kd.rotate(now=T0 + 5, activates_in=0)
    assert new.activates_at == T0 + 5
    assert kd.load().signing_key(T0 + 5).kid == new.kid


def test_retire_pending_and_retiring_keys(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 10).kid
    b_on = T0 + 10 + DELAY
    c = kd.rotate(now=b_on + 10).kid

    kd.retire(c, now=b_on + 20)  # a pending key: cancelled
    ks = kd.load()
    assert ks.state_of(c, b_on + 20) == "retired"
    assert ks.state_of(c, b_on + 10 + DELAY) == "retired"  # never activates
    assert ks.state_of(c, b_on + 19) == "pending"  # retirement happens at its time
    assert ks.signing_key(b_on + 10 + DELAY).kid == b

    kd.retire(a, now=b_on + 30)  # a retiring key: tokens it signed stop verifying now
    ks = kd.load()
    assert ks.state_of(a, b_on + 29) == "retiring"
    assert ks.state_of(a, b_on + 30) == "retired"
    assert ks.verification_key(a, b_on + 30) is None
    entry = next(e for e in read_state(kd)["keys"] if e["kid"] == a)
    assert entry["retired_at"] == b_on + 30

    before = read_state(kd)
    kd.retire(a, now=b_on + 99)  # already retired: nothing changes
    assert read_state(kd) == before


def test_retire_only_active_key_refused(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    with pytest.raises(KeyStoreError, match="active signing key") as err:
        kd.retire(a, now=T0 + 1)
    assert "authbridge keys rotate" in str(err.value)
    # Still the active key after a rotation, until its successor activates.
    kd.rotate(now=T0 + 2)
    with pytest.raises(KeyStoreError, match="active signing key"):
        kd.retire(a, now=T0 + 3)
    assert read_state(kd)["keys"][0]["retired_at"] is None


def test_retire_unknown_kid_refused(kd: KeyDirectory) -> None:
    with pytest.raises(KeyStoreError, match="no signing key with kid nope"):
        kd.retire("nope", now=T0)


def test_keyset_without_active_key(tmp_path: Path) -> None:
    key = generate_signing_key("ES256", now=T0, activates_at=T0 + 10)
    ks = KeySet((key,), max_token_lifetime=MAX_LIFETIME)
    assert ks.state_of(key.kid, T0) == "pending"
    with pytest.raises(KeyStoreError, match="no active signing key"):
        ks.signing_key(T0)
    assert ks.signing_key(T0 + 10).kid == key.kid


def test_describe(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 100).kid
    rows = kd.load().describe(T0 + 200)
    assert [(r["kid"], r["alg"], r["state"]) for r in rows] == [
        (a, "ES256", "active"),
        (b, "ES256", "pending"),
    ]
    assert rows[0]["created"] == "2023-11-14T22:13:20+00:00"
    assert rows[0]["activates"] == "2023-11-14T22:13:20+00:00"
    # Known in advance: a retires max_token_lifetime after b activates.
    assert rows[0]["retires"] == "2023-11-14T23:25:00+00:00"
    assert rows[0]["retired"] is None
    assert rows[1]["activates"] == "2023-11-14T22:25:00+00:00"
    assert rows[1]["retires"] is None


# --------------------------------------------------------------------------- JWKS


def test_jwks_has_only_public_parameters(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "keys")
    rsa_kid = d.init("RS256", now=T0).kid
    ec_kid = d.rotate("ES256", now=T0 + 1).kid
    jwks = d.load().jwks(T0 + 2)
    assert set(jwks) == {"keys"}
    by_kid: dict[str, dict[str, Any]] = {k["kid"]: dict(k) for k in jwks["keys"]}
    assert set(by_kid) == {rsa_kid, ec_kid}

    rsa_jwk = by_kid[rsa_kid]
    assert not PRIVATE_RSA_PARAMS & set(rsa_jwk)
    assert set(rsa_jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (rsa_jwk["kty"], rsa_jwk["use"], rsa_jwk["alg"]) == ("RSA", "sig", "RS256")

    ec_jwk = by_kid[ec_kid]
    assert "d" not in ec_jwk
    assert set(ec_jwk) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["alg"]) == ("EC", "P-256", "ES256")

    # The published parameters are the real public keys.
    ks = d.load()
    rsa_signing_key = ks.get(rsa_kid)
    assert rsa_signing_key is not None
    rsa_public = rsa_signing_key.public_key
    assert isinstance(rsa_public, rsa.RSAPublicKey)
    n = int.from_bytes(base64.urlsafe_b64decode(rsa_jwk["n"] + "=="), "big")
    assert n == rsa_public.public_numbers().n
    assert rsa_jwk["e"] == "AQAB"
    # And JWK thumbprints of the published JWKs are their kids.
    assert all(jwk_thumbprint(k) == k["kid"] for k in by_kid.values())


def test_jwks_is_exactly_the_published_keys(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 10).kid
    c = kd.rotate(now=T0 + 20).kid
    kd.retire(c, now=T0 + 30)
    ks = kd.load()
    assert [k["kid"] for k in ks.jwks(T0 + 30)["keys"]] == [a, b]  # active first
    b_on = T0 + 10 + DELAY
    assert [k["kid"] for k in ks.jwks(b_on)["keys"]] == [b, a]
    assert [k["kid"] for k in ks.jwks(b_on + MAX_LIFETIME)["keys"]] == [b]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o601, 0o660, 0o620, 0o606, 0o666])
def test_refuses_group_or_world_accessible_key(kd: KeyDirectory, mode: int) -> None:
    pem = next(kd.path.glob("*.pem"))
    pem.chmod(mode)
    with pytest.raises(KeyStoreError) as err:
        kd.load()
    assert str(pem) in str(err.value)
    assert f"chmod 600 {pem}" in str(err.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440])
def test_accepts_owner_only_or_group_read_key(kd: KeyDirectory, mode: int) -> None:
    # 0440/0640: a Kubernetes Secret volume with an fsGroup.
    pem = next(kd.path.glob("*.pem"))
    pem.chmod(mode)
    assert len(kd.load().keys) == 1


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda s: "{not json", id="not-json"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: json.dumps([1, 2]), id="not-object"),
        pytest.param(lambda s: json.dumps({"version": 1}), id="no-keys"),
        pytest.param(lambda s: json.dumps({**s, "version": 2}), id="future-version"),
        pytest.param(lambda s: _edit(s, kid="short"), id="bad-kid"),
        pytest.param(lambda s: _edit(s, alg="HS256"), id="bad-alg"),
        pytest.param(lambda s: _edit(s, file="../elsewhere.pem"), id="path-traversal"),
        pytest.param(lambda s: _edit(s, activates_at="soon"), id="activates-not-int"),
        pytest.param(lambda s: _edit(s, created_at=True), id="created-bool"),
        pytest.param(lambda s: _edit(s, retired_at=1.5), id="retired-float"),
        pytest.param(
            lambda s: json.dumps({**s, "keys": s["keys"] * 2}),
            id="duplicate-kid",
        ),
    ],
)
def test_corrupt_state_file_refused(kd: KeyDirectory, corrupt: Any) -> None:
    state_file = kd.path / STATE_FILE
    state_file.write_text(corrupt(read_state(kd)))
    with pytest.raises(KeyStoreError) as err:
        kd.load()
    assert str(state_file) in str(err.value)


def _edit(state: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**state, "keys": [{**state["keys"][0], **changes}]})


def test_empty_key_list_says_run_init(kd: KeyDirectory) -> None:
    write_state(kd, {"version": 1, "keys": []})
    with pytest.raises(KeyStoreError, match="keys init"):
        kd.load()


def test_key_file_swapped_refused(kd: KeyDirectory) -> None:
    a = kd.load().signing_key(T0).kid
    b = kd.rotate(now=T0 + 1).kid
    shutil.copy(kd.path / f"{b}.pem", kd.path / f"{a}.pem")
    with pytest.raises(KeyStoreError, match="does not match its kid") as err:
        kd.load()
    assert str(kd.path / f"{a}.pem") in str(err.value)


def test_key_file_missing_refused(kd: KeyDirectory) -> None:
    pem = next(kd.path.glob("*.pem"))
    pem.unlink()
    with pytest.raises(KeyStoreError, match="is missing") as err:
        kd.load()
    assert str(pem) in str(err.value)


def test_key_file_not_pem_refused(kd: KeyDirectory) -> None:
    pem = next(kd.path.glob("*.pem"))
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyStoreError, match="not an unencrypted PEM private key") as err:
        kd.load()
    assert str(pem) in str(err.value)
    assert "garbage" not in str(err.value)


def test_wrong_algorithm_for_key_file_refused(kd: KeyDirectory) -> None:
    state = read_state(kd)
    state["keys"][0]["alg"] = "RS256"  # the file holds a P-256 key
    write_state(kd, state)
    with pytest.raises(KeyStoreError, match="RS256 needs an RSA private key") as err:
        kd.load()
    assert str(next(kd.path.glob("*.pem"))) in str(err.value)


def test_other_files_are_ignored(kd: KeyDirectory) -> None:
    (kd.path / "access-key-pepper").write_bytes(os.urandom(32))
    (kd.path / "authbridge.yaml").write_text("issuer: https://example\n")
    (kd.path / "README.md").write_text("keys\n")
    (kd.path / ".gitignore").write_text("*\n")
    (kd.path / "tls").mkdir()
    (kd.path / "tls" / "server.key").write_text("not a signing key\n")
    (kd.path / "stray.pem").write_text("not listed, so not read\n")
    assert len(kd.load().keys) == 1


def test_symlinked_secret_mount(kd: KeyDirectory, tmp_path: Path) -> None:
    """The layout of a Kubernetes Secret volume: every file a symlink into ..data/."""
    mount = tmp_path / "mount"
    mount.mkdir()
    version1 = mount / "..2024_01_01_00_00_00.1"
    shutil.copytree(kd.path, version1)
    (mount / "..data").symlink_to(version1.name)
    for f in version1.iterdir():
        (mount / f.name).symlink_to(Path("..data") / f.name)
    replica = make_dir(mount)
    assert [k.kid for k in replica.load().keys] == [k.kid for k in kd.load().keys]
    before = replica.fingerprint()

    # An update of the Secret: a new version dir, then the ..data link swapped.
    new_kid = kd.rotate(now=T0 + 1).kid
    version2 = mount / "..2024_01_01_00_05_00.2"
    shutil.copytree(kd.path, version2)
    (mount / "..data_tmp").symlink_to(version2.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    (mount / f"{new_kid}.pem").symlink_to(Path("..data") / f"{new_kid}.pem")
    assert replica.fingerprint() != before
    assert new_kid in {k.kid for k in replica.load().keys}


def test_load_never_writes(kd: KeyDirectory) -> None:
    (kd.path / LOCK_FILE).unlink()
    before = sorted(p.name for p in kd.path.iterdir())
    kd.load()
    kd.fingerprint()
    assert sorted(p.name for p in kd.path.iterdir()) == before


# --------------------------------------------------------------------------- concurrency


def _rotate_in_child(path: str, barrier: Any, now: int) -> None:
    barrier.wait()
    make_dir(Path(path)).rotate("ES256", now=now)


def test_concurrent_rotate_keeps_both_keys(kd: KeyDirectory) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_rotate_in_child, args=(str(kd.path), barrier, T0 + i)) for i in (1, 2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ks = kd.load()  # consistent: every listed key file exists and matches its kid
    assert len(ks.keys) == 3
    assert {k.created_at for k in ks.keys} == {T0, T0 + 1, T0 + 2}
    assert len(list(kd.path.glob("*.pem"))) == 3
    assert not list(kd.path.glob(".signing-keys.*.tmp"))


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_changes_on_rotate_and_retire(kd: KeyDirectory) -> None:
    first = kd.fingerprint()
    assert kd.fingerprint() == first
    kd.load()
    assert kd.fingerprint() == first
    new = kd.rotate(now=T0 + 1)
    second = kd.fingerprint()
    assert second != first
    kd.retire(new.kid, now=T0 + 2)
    assert kd.fingerprint() != second


def test_fingerprint_of_missing_dir(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "nothing")
    assert d.fingerprint() == (None,) * 6
    d.init("ES256", now=T0)
    assert d.fingerprint() != (None,) * 6


# --------------------------------------------------------------------------- secrets


def test_no_private_material_in_repr(kd: KeyDirectory) -> None:
    ks = kd.load()
    key = ks.signing_key(T0)
    pem = key.private_pem().decode()
    body = "".join(pem.splitlines()[1:-1])
    for text in (repr(key), str(key), repr(ks), str(ks), repr(kd)):
        assert "PRIVATE" not in text
        assert body[:40] not in text
    assert "private_key" not in repr(key)


def test_signing_key_rejects_mismatched_algorithm() -> None:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_private_key(ec_key, "ES256", created_at=T0)


def test_signing_key_kid_must_be_its_thumbprint(kd: KeyDirectory) -> None:
    key = kd.load().signing_key(T0)
    with pytest.raises(ValueError, match="RFC 7638 thumbprint"):
        SigningKey(
            kid="A" * 43,
            alg=key.alg,
            created_at=T0,
            activates_at=T0,
            retired_at=None,
            private_key=key.private_key,
        )


def test_keyring_reloads_when_the_directory_changes(tmp_path: Path) -> None:
    from authbridge.keys import KeyRing

    ticks = [0.0]
    directory = KeyDirectory(tmp_path / "ring", prepublication_delay=0)
    first = directory.init("ES256")
    ring = KeyRing(directory, check_interval=1.0, clock=lambda: ticks[0])
    assert ring.current().get(first.kid) is not None
    second = directory.rotate()
    assert ring.current().get(second.kid) is None  # not looked at before the interval
    ticks[0] = 1.5
    assert ring.current().get(second.kid) is not None and ring.reloads == 1
    # A broken state file keeps the last good set serving and says why.
    (tmp_path / "ring" / "signing-keys.json").write_text("{not json")
    ticks[0] = 3.0
    assert ring.current().get(second.kid) is not None
    assert ring.last_error and "signing-keys.json" in ring.last_error
