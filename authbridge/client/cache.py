"""The token cache under ``~/.kube/cache/authbridge/``: kubectl runs the plugin on every call.

One file per request, named by the SHA-256 of everything that shapes the token
(endpoint, profile, access key id, cluster, role, session, duration)::

    {"token": "<JWT>", "expiresAt": 1795306500, "expirationTimestamp": "2026-11-22T00:14:00Z"}

``authbridge token --role`` also keeps its ``sts`` token (the subject token
of the exchange, never sent anywhere but the token endpoint) here, in the
same format, named by :func:`sts_cache_key` (endpoint, profile, access key
id), so one of them serves every cluster and role of a profile.

``expiresAt`` is the token's ``exp``; ``expirationTimestamp`` what kubectl was
told (``exp`` − :data:`~authbridge.client.exec_credential.REFRESH_MARGIN`). An
entry is reused while ``now < expiresAt − REFRESH_MARGIN``.

Nothing read here is trusted unless it is exactly what we would have written:
the directory must be ours and not writable by others, the file a regular file
(not a symlink, not a FIFO) owned by us with no group/other permission, small,
valid JSON of the right types and consistent. Anything else is a miss, and the
next write replaces it. Files are opened relative to a directory descriptor
(``O_NOFOLLOW``), so the checks and the use are of the same objects.
Writes are atomic: a 0600 temp file in the same directory, fsync, rename.
Reading (key, checks, decoding, the refresh rule) lives in
:mod:`authbridge.client.fastpath`, which answers a cache hit before click loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authbridge.client.exec_credential import REFRESH_MARGIN, rfc3339

# The rules `authbridge token`'s stdlib-only fast path applies too: shared, not copied.
from authbridge.client.fastpath import (
    CACHE_DIR_FLAGS,
    MAX_ENTRY_BYTES,
    cache_directory,
    cache_key,
    parse_entry,
    read_entry,
    usable,
)

__all__ = [
    "MAX_ENTRY_BYTES",
    "CacheError",
    "CachedToken",
    "TokenCache",
    "cache_key",
    "decode_entry",
    "encode_entry",
    "sts_cache_key",
]


def sts_cache_key(*, endpoint: str, profile: str, access_key_id: str) -> str:
    """The cache file's name for the ``sts`` token of a profile's key (hex SHA-256).

    Its own prefix, so it never names a cluster token's file (cluster ids are free text).
    """
    material = json.dumps(["authbridge-sts-v1", endpoint, profile, access_key_id])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class CacheError(Exception):
    """The cache cannot be written (not ours, read-only, …); the token still works."""


@dataclass(frozen=True)
class CachedToken:
    token: str = field(repr=False)
    expires_at: int  # the token's exp, epoch seconds

    def usable(self, now: float) -> bool:
        """Whether to hand it out at ``now``: until :data:`REFRESH_MARGIN` s before exp."""
        return usable(self.expires_at, now)


def decode_entry(data: bytes) -> CachedToken | None:
    """The entry in ``data``, or ``None`` for anything we would not have written."""
    parsed = parse_entry(data)
    return None if parsed is None else CachedToken(*parsed)


def encode_entry(entry: CachedToken) -> bytes:
    doc = {
        "token": entry.token,
        "expiresAt": entry.expires_at,
        "expirationTimestamp": rfc3339(entry.expires_at - REFRESH_MARGIN),
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


class TokenCache:
    """The cache directory. ``get`` never raises; ``put`` raises :class:`CacheError`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def default(cls, env: Mapping[str, str]) -> TokenCache:
        return cls(Path(cache_directory(env)))

    def get(self, key: str, now: float) -> CachedToken | None:
        """The entry for ``key`` if it is trustworthy and still usable at ``now``."""
        data = read_entry(self.directory, key)
        if data is None:
            return None
        entry = decode_entry(data)
        return entry if entry is not None and entry.usable(now) else None

    def put(self, key: str, entry: CachedToken) -> None:
        """Store ``entry`` for ``key``, replacing whatever was there (symlink included)."""
        self.put_raw(f"{key}.json", encode_entry(entry))

    def put_raw(self, name: str, data: bytes) -> None:
        """Write ``data`` as the file ``name`` in the directory: atomically, 0600, in 0700."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            dir_fd = os.open(self.directory, CACHE_DIR_FLAGS)
        except OSError as e:
            raise CacheError(f"cannot use {self.directory}: {e.strerror}") from e
        try:
            st = os.fstat(dir_fd)
            if st.st_uid != os.getuid():
                raise CacheError(f"{self.directory} belongs to another user")
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.fchmod(dir_fd, 0o700)
            self._write(dir_fd, name, data)
        except OSError as e:
            raise CacheError(f"cannot write to {self.directory}: {e.strerror}") from e
        finally:
            os.close(dir_fd)

    @staticmethod
    def _write(dir_fd: int, name: str, data: bytes) -> None:
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
