"""The sign-in session of a profile without an access key: a file beside the token cache.

``authbridge login`` ends in a sign-in session (a refresh token, rotated on
every use, and an access token for the issuer's ``sts`` audience); it is kept
per profile and endpoint in its own directory under the token cache::

    ~/.kube/cache/authbridge/                      0700, the token cache
        session-<sha256(endpoint, profile)>/       0700
            session.json                           0600, this module's file
            session.lock                           0600, never replaced: the refresh lock
            <cache key>.json                       0600, this session's cluster tokens

``session.json``::

    {"version": 1, "endpoint": "https://…", "profile": "default",
     "issuer": "https://…", "key": "<32 hex>", "user": "arn:aws:iam::…:user/alice",
     "refreshToken": "…", "refreshExpiresAt": 1795306500,
     "accessToken": "<JWT, sts audience>", "accessExpiresAt": 1795263300,
     "role": "arn:…:role/Admin" | null, "sessionName": "alice" | null,
     "signedInAt": 1795262400}

``key`` is random per sign-in and goes into the cache key of every cluster
token minted from the session, so a token of an earlier sign-in (another user,
perhaps) is never found again. ``refreshExpiresAt`` is when the server said
the refresh token stops working (the idle timeout or the session's end,
whichever is first); ``null`` when it did not say.

Files are read under :func:`authbridge.client.fastpath.read_entry`'s checks
(ours, 0600, no symlink, small) and must be exactly what this module writes;
anything else reads as "no session". Writes are atomic (temp file, fsync,
rename). Refreshing rotates the refresh token, and the server revokes the
whole session when a rotated one is presented again (OAuth 2.0 Security BCP
§4.14.2), so two ``authbridge token`` processes (kubectl runs them in
parallel) must not both refresh with the same one: :meth:`SessionFiles.locked`
takes an exclusive ``fcntl.flock`` on ``session.lock`` and the caller re-reads
the session after taking it. The lock file is never replaced, so every process
locks the same inode (a lock on ``session.json`` itself would be lost at each
atomic rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from authbridge.client.cache import CacheError, TokenCache
from authbridge.client.fastpath import (
    CACHE_DIR_FLAGS,
    MAX_ENTRY_BYTES,
    SESSION_FILE,
    SESSION_VERSION,
    is_token,
    read_entry,
    session_directory,
    session_summary,
    usable,
)

__all__ = [
    "LOCK_FILE",
    "Session",
    "SessionFiles",
    "decode_session",
    "encode_session",
    "new_session_key",
]

LOCK_FILE = "session.lock"
_ENTRY = re.compile(r"[0-9a-f]{64}\.json", re.ASCII)  # a cache entry's name (hex SHA-256)
_MAX_URL = 2048
_MAX_ARN = 2048
_FIELDS = frozenset(
    {
        "version",
        "endpoint",
        "profile",
        "issuer",
        "key",
        "user",
        "refreshToken",
        "refreshExpiresAt",
        "accessToken",
        "accessExpiresAt",
        "role",
        "sessionName",
        "signedInAt",
    }
)


def new_session_key() -> str:
    """A random id for one sign-in (32 hex characters): part of its tokens' cache keys."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Session:
    """One sign-in session. The tokens never show in ``repr``."""

    endpoint: str
    profile: str
    issuer: str
    key: str
    user: str | None
    refresh_token: str = field(repr=False)
    refresh_expires_at: int | None
    access_token: str = field(repr=False)
    access_expires_at: int
    role: str | None
    session_name: str | None
    signed_in_at: int

    def access_usable(self, now: float) -> bool:
        """Whether the ``sts`` access token may still be used (the cache's refresh rule)."""
        return usable(self.access_expires_at, now)

    def refreshed(
        self, *, access_token: str, access_expires_at: int, refresh_token: str,
        refresh_expires_at: int | None,
    ) -> Session:  # fmt: skip
        return replace(
            self,
            access_token=access_token,
            access_expires_at=access_expires_at,
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires_at,
        )


def _epoch(value: object, *, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def decode_session(data: bytes) -> Session | None:
    """The session in ``data``, or ``None`` for anything :func:`encode_session` would not write."""
    summary = session_summary(data)
    if summary is None:
        return None
    doc = json.loads(data)  # session_summary parsed it already: a dict
    if set(doc) != _FIELDS:
        return None
    ok = (
        _text(doc["endpoint"], _MAX_URL)
        and str(doc["endpoint"]).startswith("https://")
        and _text(doc["profile"], 64)
        and _text(doc["issuer"], _MAX_URL)
        and (doc["user"] is None or _text(doc["user"], _MAX_ARN))
        and is_token(doc["refreshToken"])
        and is_token(doc["accessToken"])
        and _epoch(doc["refreshExpiresAt"], optional=True)
        and _epoch(doc["accessExpiresAt"])
        and _epoch(doc["signedInAt"])
    )
    if not ok:
        return None
    return Session(
        endpoint=doc["endpoint"],
        profile=doc["profile"],
        issuer=doc["issuer"],
        key=summary[0],
        user=doc["user"],
        refresh_token=doc["refreshToken"],
        refresh_expires_at=doc["refreshExpiresAt"],
        access_token=doc["accessToken"],
        access_expires_at=doc["accessExpiresAt"],
        role=summary[1],
        session_name=summary[2],
        signed_in_at=doc["signedInAt"],
    )


def encode_session(session: Session) -> bytes:
    doc = {
        "version": SESSION_VERSION,
        "endpoint": session.endpoint,
        "profile": session.profile,
        "issuer": session.issuer,
        "key": session.key,
        "user": session.user,
        "refreshToken": session.refresh_token,
        "refreshExpiresAt": session.refresh_expires_at,
        "accessToken": session.access_token,
        "accessExpiresAt": session.access_expires_at,
        "role": session.role,
        "sessionName": session.session_name,
        "signedInAt": session.signed_in_at,
    }
    data = json.dumps(doc, separators=(",", ":")).encode("ascii")
    if len(data) > MAX_ENTRY_BYTES or decode_session(data) != session:
        raise CacheError("the session does not fit the session file's format")
    return data


class SessionFiles:
    """The session directory of one profile and endpoint (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tokens = TokenCache(directory)

    @classmethod
    def of(cls, env: Mapping[str, str], endpoint: str, profile: str) -> SessionFiles:
        return cls(Path(session_directory(env, endpoint, profile)))

    @property
    def path(self) -> Path:
        return self.directory / f"{SESSION_FILE}.json"

    def load(self) -> Session | None:
        """The session, or ``None`` if there is none we wrote (missing, unsafe or garbled)."""
        data = read_entry(self.directory, SESSION_FILE)
        return None if data is None else decode_session(data)

    def save(self, session: Session) -> None:
        """Replace the session file atomically (0600 in a 0700 directory)."""
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tokens.put_raw(f"{SESSION_FILE}.json", encode_session(session))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive refresh lock (blocks until the holder lets go)."""
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            dir_fd = os.open(self.directory, CACHE_DIR_FLAGS)
        except OSError as e:
            raise CacheError(f"cannot use {self.directory}: {e.strerror}") from e
        try:
            st = os.fstat(dir_fd)
            if st.st_uid != os.getuid():
                raise CacheError(f"{self.directory} belongs to another user")
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(LOCK_FILE, flags, 0o600, dir_fd=dir_fd)
            except OSError as e:
                raise CacheError(f"cannot open the session lock: {e.strerror}") from e
        finally:
            os.close(dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise CacheError(f"{self.directory / LOCK_FILE} is not a file of ours")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def clear_tokens(self) -> None:
        """Delete the cluster tokens cached for this profile (not the session)."""
        for name in self._names():
            if _ENTRY.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / name)

    def delete(self) -> bool:
        """Delete the session, its tokens and the directory; whether there was a session."""
        had = self.path.exists()
        for name in self._names():
            if _ENTRY.fullmatch(name) or name in (f"{SESSION_FILE}.json", LOCK_FILE):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / name)
        with contextlib.suppress(OSError):  # not empty (a stray temp file): leave it
            self.directory.rmdir()
        return had

    def _names(self) -> list[str]:
        try:
            if self.directory.is_symlink():
                return []
            return os.listdir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
