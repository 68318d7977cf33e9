"""Unique ids and access-key secrets.

Unique ids follow the AWS shapes (``AIDA`` users, ``AGPA`` groups, ``AROA``
roles, ``ANPA`` managed policies: 21 characters; ``AKIA`` access key ids: 20)
with random base32 bodies, so they never repeat and carry no meaning.

Secrets are 240 random bits, shown once. The store keeps only
``HMAC-SHA-256(pepper, secret)``: the secret is random, so a slow password
hash adds nothing but latency, while the pepper (kept in a file outside the
database) means a stolen database alone cannot check guesses offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from authbridge.errors import KeyStoreError

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

USER_ID_PREFIX = "AIDA"
GROUP_ID_PREFIX = "AGPA"
ROLE_ID_PREFIX = "AROA"
POLICY_ID_PREFIX = "ANPA"
ACCESS_KEY_ID_PREFIX = "AKIA"

SECRET_BYTES = 30  # 240 bits -> 40 url-safe characters, the length of an AWS secret
PEPPER_BYTES = 32
PEPPER_FILE_NAME = "access-key-pepper"


def _random_b32(n: int) -> str:
    return "".join(secrets.choice(_B32) for _ in range(n))


def new_user_id() -> str:
    return USER_ID_PREFIX + _random_b32(17)


def new_group_id() -> str:
    return GROUP_ID_PREFIX + _random_b32(17)


def new_role_id() -> str:
    return ROLE_ID_PREFIX + _random_b32(17)


def new_policy_id() -> str:
    return POLICY_ID_PREFIX + _random_b32(17)


def new_access_key_id() -> str:
    return ACCESS_KEY_ID_PREFIX + _random_b32(16)


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def looks_like_access_key_id(value: str) -> bool:
    return (
        len(value) == 20
        and value.startswith(ACCESS_KEY_ID_PREFIX)
        and all(c in _B32 for c in value[4:])
    )


@dataclass(frozen=True)
class Pepper:
    """The server-side HMAC key for access-key secrets. Never printed."""

    value: bytes = field(repr=False)

    @property
    def pepper_id(self) -> str:
        """A short public fingerprint, stored beside each hash to detect a swapped pepper."""
        return hashlib.sha256(b"authbridge-pepper-id:" + self.value).hexdigest()[:16]

    def hash_secret(self, secret: str) -> str:
        mac = hmac.new(self.value, secret.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(mac).decode("ascii")

    def matches(self, secret: str, stored_hash: str) -> bool:
        """Constant-time comparison of a presented secret with a stored hash."""
        return hmac.compare_digest(self.hash_secret(secret), stored_hash)

    def __repr__(self) -> str:
        return f"Pepper(id={self.pepper_id})"

    @classmethod
    def generate(cls) -> Pepper:
        return cls(secrets.token_bytes(PEPPER_BYTES))


def load_or_create_pepper(path: Path, *, create: bool = True) -> Pepper:
    """Read the pepper file (0600), creating it atomically when allowed and absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if not create:
            raise KeyStoreError(
                f"access-key pepper {path} does not exist",
                hint="run `authbridge init` or point AUTHBRIDGE_KEYS_DIR at the keys directory",
            ) from None
        return _create_pepper(path)
    if st.st_mode & 0o077 & ~0o040:
        raise KeyStoreError(
            f"access-key pepper {path} is readable or writable by others"
            f" (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"run `chmod 600 {path}`",
        )
    data = path.read_bytes()
    if len(data) < PEPPER_BYTES:
        raise KeyStoreError(
            f"access-key pepper {path} is {len(data)} bytes, expected at least {PEPPER_BYTES}",
            hint="restore it from backup; a new pepper invalidates every access key",
        )
    return Pepper(data)


def _create_pepper(path: Path) -> Pepper:
    pepper = Pepper.generate()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pepper.value)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if another process created the pepper first: then use theirs.
        os.link(tmp, path)
    except FileExistsError:
        tmp.unlink()
        return load_or_create_pepper(path, create=False)
    tmp.unlink()
    return pepper
