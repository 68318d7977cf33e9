"""Unique ids, access-key secrets and the pepper file; IAM naming rules.

Covers: id shapes and uniqueness, secret length (>= 160 bits), keyed hashing
(the pepper matters, comparison is by HMAC), the pepper file (created 0600
atomically, one winner when two processes race, refused when others can read
it, refused when truncated), and the session-name rule used by AssumeRole.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from authbridge.errors import InputError, KeyStoreError
from authbridge.iam import credentials, names
from authbridge.iam.credentials import Pepper, load_or_create_pepper


def test_id_shapes() -> None:
    ids = {credentials.new_user_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("AIDA") and len(i) == 21 and i.isupper() for i in ids)
    assert credentials.new_role_id().startswith("AROA")
    assert credentials.new_group_id().startswith("AGPA")
    key_id = credentials.new_access_key_id()
    assert credentials.looks_like_access_key_id(key_id)
    assert not credentials.looks_like_access_key_id("AKIA" + "a" * 16)
    assert not credentials.looks_like_access_key_id(key_id + "A")


def test_secret_has_at_least_160_bits() -> None:
    secret = credentials.new_secret()
    assert len(secret) * 6 >= 160
    assert len({credentials.new_secret() for _ in range(100)}) == 100


def test_hash_is_keyed() -> None:
    a, b = Pepper.generate(), Pepper.generate()
    assert a.hash_secret("s") != b.hash_secret("s")
    assert a.matches("s", a.hash_secret("s")) and not a.matches("t", a.hash_secret("s"))
    assert a.value.hex() not in repr(a) and a.pepper_id in repr(a)


def test_pepper_file_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "access-key-pepper"
    p1 = load_or_create_pepper(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_pepper(path) == p1
    assert not list(path.parent.glob(".*tmp"))  # no temp file left behind


def test_pepper_absent_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="authbridge init"):
        load_or_create_pepper(tmp_path / "absent", create=False)


@pytest.mark.parametrize("mode", [0o604, 0o644, 0o620, 0o666])
def test_pepper_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "access-key-pepper"
    load_or_create_pepper(path)
    path.chmod(mode)
    with pytest.raises(KeyStoreError) as e:
        load_or_create_pepper(path)
    assert str(path) in str(e.value) and "chmod 600" in str(e.value)


def test_pepper_group_read_is_allowed_for_secret_mounts(tmp_path: Path) -> None:
    path = tmp_path / "access-key-pepper"
    p = load_or_create_pepper(path)
    path.chmod(0o440)
    assert load_or_create_pepper(path) == p


def test_truncated_pepper_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "access-key-pepper"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(KeyStoreError, match="restore it from backup"):
        load_or_create_pepper(path)


def _make_pepper(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(load_or_create_pepper(Path(path)).pepper_id)


def test_two_processes_creating_the_pepper_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    path = str(tmp_path / "access-key-pepper")
    procs = [ctx.Process(target=_make_pepper, args=(path, out)) for _ in range(2)]
    for p in procs:
        p.start()
    ids = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(30)
    assert ids == {load_or_create_pepper(Path(path)).pepper_id}


@pytest.mark.parametrize("bad", ["a", "x" * 65, "has space", "tab\t", "slash/", "ünï"])
def test_session_name_rule(bad: str) -> None:
    with pytest.raises(InputError) as e:
        names.session_name(bad)
    assert e.value.field == "RoleSessionName"


def test_session_name_allowed_characters() -> None:
    assert names.session_name("alice@example.com_+=,.-") == "alice@example.com_+=,.-"
