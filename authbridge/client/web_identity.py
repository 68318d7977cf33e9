"""Reading a web identity token file (IRSA, CI jobs), on the standard library alone.

``authbridge token --web-identity-token-file F --role ARN`` (or
``AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE`` / ``AUTHBRIDGE_ROLE_ARN``, as the AWS
SDKs read ``AWS_WEB_IDENTITY_TOKEN_FILE`` / ``AWS_ROLE_ARN``) exchanges the
token in ``F`` for a role session (AssumeRoleWithWebIdentity,
:mod:`authbridge.web_identity`). The kubelet rewrites a projected
service-account token file before it expires, so the file is read afresh
every time a token is minted, never kept. Rules: a regular file (a symlink is
followed: the kubelet's projected volumes are symlinks into a timestamped
directory), at most :data:`MAX_TOKEN_FILE` bytes, one ASCII JWT with
surrounding whitespace trimmed. Errors name the file and what to fix, never
its content.
"""

from __future__ import annotations

import os
import stat

from authbridge.client.errors import CredentialsError
from authbridge.client.fastpath import DEFAULT_WEB_IDENTITY_SESSION as DEFAULT_SESSION_NAME
from authbridge.client.fastpath import ROLE_ENV, TOKEN_FILE_ENV

__all__ = [
    "DEFAULT_SESSION_NAME",
    "MAX_TOKEN_FILE",
    "ROLE_ENV",
    "TOKEN_FILE_ENV",
    "read_token_file",
]

MAX_TOKEN_FILE = 16 * 1024  # bytes; a JWT the issuer accepts is at most 8 KiB
_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def read_token_file(path: str) -> str:
    """The JWT in ``path`` (see the module docstring); CredentialsError otherwise."""
    where = f"web identity token file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CredentialsError(
            f"{where} does not exist",
            hint="mount the projected service-account token there, or give the CI job's token",
        ) from None
    except OSError as e:
        raise CredentialsError(f"{where} cannot be read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CredentialsError(f"{where} is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_TOKEN_FILE:
                raise CredentialsError(f"{where} is larger than {MAX_TOKEN_FILE} bytes")
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("ascii").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"{where} does not hold a JWT (not ASCII)") from None
    if not text:
        raise CredentialsError(
            f"{where} is empty", hint="the kubelet or the CI runner has not written it yet"
        )
    if not set(text) <= _JWT_CHARS or text.count(".") != 2:
        raise CredentialsError(f"{where} does not hold one JWT (header.payload.signature)")
    return text
