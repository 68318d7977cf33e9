"""Break-glass: a token signed on this machine with the key in ``keys/``, when the issuer is down.

Whoever can read the private signing key can mint any token anyway; this makes
doing so deliberate and visible. The principal is looked up in the store and
built exactly as the issuer builds it:

* a user ARN: the user, which must be enabled; ``arn`` = ``sub`` = the user's ARN,
  ``principal_id`` = its ``AIDA…`` id;
* a role ARN: the role; ``arn`` = the assumed-role session ARN, ``sub`` = the role's
  ARN (with its path), ``principal_id`` = ``<AROA…>:<session>``, ``session_name``
  (default :data:`DEFAULT_SESSION_NAME`), and ``source_identity`` = the role's own
  ``AROA…`` id: a break-glass session starts from no IAM user, so the review
  checks it as the role (``authbridge.sts``, "Decisions").

The audience must be one of the configured cluster ids, and the lifetime within
the same caps as the issuer's (``maxUserTokenLifetimeSeconds`` for users, the
role's maximum session duration for roles). Each token is appended to
``<keys dir>/break-glass.log`` (0600) *before* it is handed out, as one JSON line
with who, what, where and when, but never the token; no log line, no token.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from authbridge import arn as arns
from authbridge.errors import InputError, KeyStoreError, NoSuchEntity, TokenPrincipalRefused
from authbridge.iam import names
from authbridge.tokens import MintedToken, Principal, mint

if TYPE_CHECKING:
    from authbridge.keys import KeySet
    from authbridge.settings import Settings
    from authbridge.store.base import Store

__all__ = [
    "BREAK_GLASS_LOG",
    "DEFAULT_SESSION_NAME",
    "LocalPrincipal",
    "append_log",
    "log_record",
    "lookup_principal",
    "mint_locally",
]

BREAK_GLASS_LOG = "break-glass.log"
DEFAULT_SESSION_NAME = "break-glass"


@dataclass(frozen=True)
class LocalPrincipal:
    """A principal found in the store, and the longest token it may get (seconds)."""

    principal: Principal
    max_lifetime: int


def lookup_principal(
    principal_arn: str,
    *,
    store: Store,
    partition: str,
    max_user_lifetime: int,
    session_name: str | None,
) -> LocalPrincipal:
    """The principal ``principal_arn`` names, built as the issuer builds it."""
    parsed = arns.parse_principal(principal_arn, partitions=arns.KNOWN_PARTITIONS | {partition})
    if parsed.partition != partition:
        raise InputError(
            "--principal",
            f"partition {parsed.partition} is not this deployment's partition ({partition})",
        )
    if parsed.kind == "user":
        if session_name is not None:
            raise InputError("--session-name", "applies to role ARNs only, not to users")
        user = store.get_user(parsed.account_id, parsed.name)
        _same_path(principal_arn, parsed.path, user.path, user.arn, "user")
        if not user.enabled:
            raise TokenPrincipalRefused(
                f"user {user.arn} is disabled",
                hint=f"enable it first with `authbridge iam update-user --user-name {user.name}"
                " --enable`",
            )
        return LocalPrincipal(
            Principal(
                arn=user.arn,
                canonical_arn=user.arn,
                account_id=user.account_id,
                principal_id=user.user_id,
            ),
            max_user_lifetime,
        )
    if parsed.kind == "role":
        session = names.session_name(session_name or DEFAULT_SESSION_NAME)
        role = store.get_role(parsed.account_id, parsed.name)
        _same_path(principal_arn, parsed.path, role.path, role.arn, "role")
        return LocalPrincipal(
            Principal(
                arn=arns.assumed_role_arn(partition, role.account_id, role.name, session),
                canonical_arn=role.arn,
                account_id=role.account_id,
                principal_id=f"{role.role_id}:{session}",
                session_name=session,
                source_identity=role.role_id,
            ),
            role.max_session_duration,
        )
    raise InputError(
        "--principal",
        f"is a {parsed.kind} ARN; break-glass tokens are for users and roles",
        hint="e.g. arn:aws:iam::111122223333:user/alice or …:role/platform/Admin",
    )


def _same_path(given: str, path: str, stored_path: str, stored_arn: str, kind: str) -> None:
    # Names are case-insensitive in IAM (the store found it by name); the path must
    # be exactly the entity's, as the issuer requires of a role_arn.
    if path != stored_path:
        raise NoSuchEntity(
            f"no {kind} with ARN {given}; the {kind} of that name is {stored_arn}",
            hint="pass its ARN exactly, path included",
        )


def mint_locally(
    principal_arn: str,
    cluster_id: str,
    *,
    settings: Settings,
    store: Store,
    keys: KeySet,
    session_name: str | None = None,
    duration: int | None = None,
    now: float | None = None,
) -> tuple[MintedToken, Principal]:
    """Look the principal up and sign its token with the active key."""
    if cluster_id not in settings.cluster_ids:
        raise InputError(
            "--cluster-id",
            f"{cluster_id!r} is not a cluster this authbridge issues for"
            f" ({', '.join(settings.cluster_ids)})",
        )
    found = lookup_principal(
        principal_arn,
        store=store,
        partition=settings.partition,
        max_user_lifetime=settings.max_user_token_lifetime,
        session_name=session_name,
    )
    cap = min(found.max_lifetime, keys.max_token_lifetime)
    lifetime = min(settings.default_token_lifetime, cap) if duration is None else duration
    if lifetime > cap:
        raise InputError("--duration", f"{lifetime} s is over the {cap} s this principal may have")
    minted = mint(
        found.principal,
        keys=keys,
        issuer=settings.issuer,
        audience=cluster_id,
        lifetime=lifetime,
        now=now,
    )
    return minted, found.principal


def log_record(minted: MintedToken, principal: Principal, cluster_id: str) -> dict[str, Any]:
    """The break-glass log line for ``minted``: everything but the token."""
    return {
        "time": datetime.fromtimestamp(minted.issued_at, UTC).isoformat(),
        "event": "break-glass-token",
        "principal": principal.arn,
        "canonicalArn": principal.canonical_arn,
        "cluster": cluster_id,
        "kid": minted.kid,
        "jti": minted.jti,
        "exp": minted.expires_at,
        "localUser": _local_user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def append_log(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` (created 0600); :class:`KeyStoreError` if impossible."""
    line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        raise KeyStoreError(
            f"cannot write the break-glass log {path}: {e.strerror}",
            hint="break-glass tokens are only handed out once logged; make the keys directory"
            " writable for this user",
        ) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyStoreError(f"break-glass log {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
        # One write of one line with O_APPEND: concurrent writers do not interleave.
        written = os.write(fd, line)
        if written != len(line):
            raise KeyStoreError(f"short write to the break-glass log {path}")
        os.fsync(fd)
    except OSError as e:
        raise KeyStoreError(f"cannot write the break-glass log {path}: {e.strerror}") from e
    finally:
        os.close(fd)
