"""The token cache: reused only when it is exactly what we wrote, and only until 60 s before exp.

Covers the key (every input changes it), the round trip (0600 file, 0700
directory, no temp files left), the expiry boundary (reused at exp − 61 s, not
at exp − 60 s), and that each of these is a miss, then replaced by the next
write: corrupt JSON, wrong types, extra members, an inconsistent
``expirationTimestamp``, a group- or world-readable file, a symlink (whose
target is left alone), a FIFO (no hang), an oversized file, a file owned by
another user, a directory others may write.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from authbridge.client.cache import (
    MAX_ENTRY_BYTES,
    CachedToken,
    CacheError,
    TokenCache,
    cache_key,
    decode_entry,
    encode_entry,
)
from authbridge.client.exec_credential import rfc3339

NOW = 1_800_000_000
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln"
KEY = "0" * 64

BASE: dict[str, Any] = {
    "endpoint": "https://a.example.com",
    "profile": "default",
    "access_key_id": "AKIAABCDEFGHIJKLMNOP",
    "cluster_id": "prod",
    "role": None,
    "session_name": None,
    "duration": None,
}


def entry(expires_at: int = NOW + 900) -> CachedToken:
    return CachedToken(TOKEN, expires_at)


@pytest.fixture
def cache(tmp_path: Path) -> TokenCache:
    return TokenCache(tmp_path / ".kube" / "cache" / "authbridge")


def path_of(cache: TokenCache, key: str = KEY) -> Path:
    return cache.directory / f"{key}.json"


def test_key_depends_on_every_input() -> None:
    keys = {cache_key(**BASE)}
    for name, value in [
        ("endpoint", "https://b.example.com"),
        ("profile", "ci"),
        ("access_key_id", "AKIAZZZZZZZZZZZZZZZZ"),
        ("cluster_id", "dev"),
        ("role", "arn:aws:iam::111122223333:role/Admin"),
        ("session_name", "me"),
        ("duration", 3600),
    ]:
        keys.add(cache_key(**{**BASE, name: value}))
    assert len(keys) == 8
    assert cache_key(**BASE) == cache_key(**BASE)
    assert len(cache_key(**BASE)) == 64


def test_round_trip_is_private(cache: TokenCache) -> None:
    cache.put(KEY, entry())
    assert cache.get(KEY, NOW) == entry()
    assert stat.S_IMODE(path_of(cache).stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
    assert [p.name for p in cache.directory.iterdir()] == [f"{KEY}.json"]
    doc = json.loads(path_of(cache).read_text())
    assert doc == {
        "token": TOKEN,
        "expiresAt": NOW + 900,
        "expirationTimestamp": rfc3339(NOW + 840),
    }


def test_default_directory_is_under_home(tmp_path: Path) -> None:
    assert TokenCache.default({"HOME": str(tmp_path)}).directory == (
        tmp_path / ".kube" / "cache" / "authbridge"
    )


def test_reused_until_sixty_seconds_before_expiry(cache: TokenCache) -> None:
    cache.put(KEY, entry(NOW + 900))
    assert cache.get(KEY, NOW + 900 - 61) is not None
    assert cache.get(KEY, NOW + 900 - 60.5) is not None
    assert cache.get(KEY, NOW + 900 - 60) is None  # exactly 60 s left: refresh
    assert cache.get(KEY, NOW + 900) is None
    assert entry(NOW + 61).usable(NOW) and not entry(NOW + 60).usable(NOW)


def test_missing_directory_or_file_is_a_miss(cache: TokenCache) -> None:
    assert cache.get(KEY, NOW) is None
    cache.put("1" * 64, entry())
    assert cache.get(KEY, NOW) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"token": "t"}',
        json.dumps({"token": TOKEN, "expiresAt": True, "expirationTimestamp": "x"}).encode(),
        json.dumps(
            {"token": TOKEN, "expiresAt": str(NOW + 900), "expirationTimestamp": rfc3339(NOW)}
        ).encode(),
        json.dumps(
            {"token": TOKEN, "expiresAt": NOW + 900.5, "expirationTimestamp": rfc3339(NOW + 840)}
        ).encode(),
        json.dumps(
            {"token": "a b", "expiresAt": NOW + 900, "expirationTimestamp": rfc3339(NOW + 840)}
        ).encode(),
        json.dumps(
            {"token": "", "expiresAt": NOW + 900, "expirationTimestamp": rfc3339(NOW + 840)}
        ).encode(),
        json.dumps(
            {"token": TOKEN, "expiresAt": NOW + 900, "expirationTimestamp": rfc3339(NOW + 9000)}
        ).encode(),
        json.dumps(
            {
                "token": TOKEN,
                "expiresAt": NOW + 900,
                "expirationTimestamp": rfc3339(NOW + 840),
                "extra": 1,
            }
        ).encode(),
        b"[" * 100_000,
    ],
)
def test_corrupt_entry_is_a_miss_and_is_replaced(cache: TokenCache, content: bytes) -> None:
    assert decode_entry(content) is None
    cache.put(KEY, entry())
    path_of(cache).write_bytes(content)
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry(NOW + 1000))
    assert cache.get(KEY, NOW) == entry(NOW + 1000)


def test_decode_accepts_exactly_what_encode_writes() -> None:
    assert decode_entry(encode_entry(entry())) == entry()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_file_others_may_use_is_a_miss(cache: TokenCache, mode: int) -> None:
    cache.put(KEY, entry())
    os.chmod(path_of(cache), mode)
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry())
    assert stat.S_IMODE(path_of(cache).stat().st_mode) == 0o600
    assert cache.get(KEY, NOW) == entry()


def test_symlink_is_a_miss_and_replaced_without_touching_its_target(
    cache: TokenCache, tmp_path: Path
) -> None:
    cache.put("1" * 64, entry())
    target = tmp_path / "elsewhere.json"
    target.write_bytes(encode_entry(entry()))
    os.chmod(target, 0o600)
    path_of(cache).symlink_to(target)
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry(NOW + 1000))
    assert not path_of(cache).is_symlink()
    assert cache.get(KEY, NOW) == entry(NOW + 1000)
    assert target.read_bytes() == encode_entry(entry())


def test_fifo_is_a_miss_without_blocking(cache: TokenCache) -> None:
    cache.put("1" * 64, entry())
    os.mkfifo(path_of(cache), 0o600)
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry())
    assert cache.get(KEY, NOW) == entry()


def test_oversized_file_is_a_miss(cache: TokenCache) -> None:
    cache.put(KEY, entry())
    path_of(cache).write_bytes(b" " * (MAX_ENTRY_BYTES + 1))
    assert cache.get(KEY, NOW) is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file to another user")
def test_file_of_another_user_is_a_miss_and_replaced(cache: TokenCache) -> None:
    cache.put(KEY, entry())
    os.chown(path_of(cache), 4321, 4321)
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry())
    assert path_of(cache).stat().st_uid == os.getuid()
    assert cache.get(KEY, NOW) == entry()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory to another user")
def test_directory_of_another_user_is_not_used(cache: TokenCache) -> None:
    cache.put(KEY, entry())
    os.chown(cache.directory, 4321, 4321)
    assert cache.get(KEY, NOW) is None
    with pytest.raises(CacheError, match="belongs to another user"):
        cache.put(KEY, entry())


def test_directory_others_may_write_is_not_trusted_until_fixed(cache: TokenCache) -> None:
    cache.put(KEY, entry())
    os.chmod(cache.directory, 0o777)  # noqa: S103 - the unsafe state under test
    assert cache.get(KEY, NOW) is None
    cache.put(KEY, entry())
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
    assert cache.get(KEY, NOW) == entry()


def test_directory_that_is_a_symlink_is_not_used(cache: TokenCache, tmp_path: Path) -> None:
    real = tmp_path / "real"
    TokenCache(real).put(KEY, entry())
    cache.directory.parent.mkdir(parents=True)
    cache.directory.symlink_to(real)
    assert cache.get(KEY, NOW) is None
    with pytest.raises(CacheError):
        cache.put(KEY, entry())


def test_unwritable_location_is_a_cache_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CacheError, match="cannot use"):
        TokenCache(blocker / "cache").put(KEY, entry())
