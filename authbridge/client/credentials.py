"""The credentials file: named profiles in a strict INI subset, read safely, updated atomically.

``~/.authbridge/credentials`` (``$HOME`` respected; ``AUTHBRIDGE_CREDENTIALS_FILE``
overrides the path), shaped like ``~/.aws/credentials``::

    # comments start with # or ;
    [default]
    endpoint = https://authbridge.example.com:8443
    access_key_id = AKIAIOSFODNN7EXAMPLE
    secret_access_key = …
    ca_file = /etc/authbridge/ca.crt        (optional)
    cluster_id = prod                       (optional)

Reading refuses, with one line naming the file (and the line, profile or key,
never the content, which may hold a secret):

* a file any other user may read or write (``chmod 600`` fixes it), or that is
  not a regular file (a FIFO would block ``kubectl`` for ever);
* more than :data:`MAX_CREDENTIALS_BYTES`, text that is not UTF-8, control
  characters;
* a line that is not ``[profile]``, ``key = value``, blank or a comment; a key
  before the first section; a profile or a key given twice.

The parser is our own rather than :mod:`configparser`: that one continues values
over indented lines, merges a ``[DEFAULT]`` section into every other one and
quotes offending lines (perhaps a secret) in its errors. Writing rewrites only
the profile being configured and keeps every other line, comments included.

Values are not interpreted here; :mod:`authbridge.client.config` checks them.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authbridge.client.errors import CredentialsError
from authbridge.client.fastpath import read_at_most

__all__ = [
    "CREDENTIALS_ENV",
    "DEFAULT_PROFILE",
    "KNOWN_KEYS",
    "MAX_CREDENTIALS_BYTES",
    "Profile",
    "credentials_path",
    "parse_credentials",
    "read_credentials",
    "read_credentials_text",
    "update_profile",
    "write_credentials",
]

CREDENTIALS_ENV = "AUTHBRIDGE_CREDENTIALS_FILE"
DEFAULT_PROFILE = "default"
MAX_CREDENTIALS_BYTES = 64 * 1024
KNOWN_KEYS = ("endpoint", "access_key_id", "secret_access_key", "ca_file", "cluster_id")

PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}", re.ASCII)
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
# Every C0 control character but tab, newline and carriage return, DEL, and the
# C1 controls and line separators that terminals and str.splitlines honour.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_FIX = "fix the file, or write the profile again with `authbridge configure`"


@dataclass(frozen=True)
class Profile:
    """One ``[name]`` section: its keys (lower-cased) and the line its header is on."""

    name: str
    line: int
    values: dict[str, str] = field(repr=False)


def credentials_path(env: Mapping[str, str]) -> Path:
    """``$AUTHBRIDGE_CREDENTIALS_FILE``, else ``$HOME/.authbridge/credentials``."""
    override = env.get(CREDENTIALS_ENV)
    if override:
        return Path(override).expanduser()
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".authbridge" / "credentials"


def _error(path: Path | str, what: str) -> CredentialsError:
    return CredentialsError(f"credentials file {path}: {what}", hint=_FIX)


def parse_credentials(text: str, path: Path | str) -> dict[str, Profile]:
    """The profiles in ``text``; :class:`CredentialsError` names the first bad line."""
    profiles: dict[str, Profile] = {}
    current: Profile | None = None
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if _CONTROL.search(raw):
            raise _error(path, f"line {lineno} holds a control character")
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            name = line[1:-1].strip() if line.endswith("]") else ""
            if not PROFILE_NAME.fullmatch(name):
                raise _error(
                    path,
                    f"line {lineno} is not a [profile-name] header (1-64 letters, digits"
                    " or . _ - @ +, starting with a letter or digit)",
                )
            if name in profiles:
                raise _error(
                    path,
                    f"profile {name} appears twice (lines {profiles[name].line} and {lineno})",
                )
            current = profiles[name] = Profile(name, lineno, {})
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or not _KEY.fullmatch(key):
            raise _error(path, f"line {lineno} is not `key = value`, a [profile] or a comment")
        if current is None:
            raise _error(path, f"line {lineno} sets {key} before any [profile] header")
        if key in current.values:
            raise _error(path, f"profile {current.name}, key {key} is set twice (line {lineno})")
        current.values[key] = value.strip()
    return profiles


def read_credentials_text(path: Path, *, private: bool = True) -> tuple[str, int] | None:
    """The file's text and permission bits, or ``None`` when there is no such file.

    With ``private`` (reading credentials to use them), a file other users may
    read or write is refused; ``authbridge configure``, about to replace it with
    a private one, passes ``False`` and warns instead.
    """
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang kubectl.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CredentialsError(
            f"cannot read credentials file {path}: {e.strerror}",
            hint="check its permissions, or set AUTHBRIDGE_CREDENTIALS_FILE",
        ) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _error(path, "is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if private and mode & 0o077:
            raise CredentialsError(
                f"credentials file {path} is readable or writable by other users"
                f" (mode {mode:04o}); it holds a secret",
                hint=f"run `chmod 600 {path}`",
            )
        data = read_at_most(fd, MAX_CREDENTIALS_BYTES)
    except OSError as e:
        raise CredentialsError(f"cannot read credentials file {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > MAX_CREDENTIALS_BYTES:
        raise _error(path, f"is larger than {MAX_CREDENTIALS_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8"), mode
    except UnicodeDecodeError as e:
        raise _error(path, "is not UTF-8 text") from e


def read_credentials(path: Path) -> dict[str, Profile] | None:
    """The profiles in the private file at ``path``, or ``None`` when there is no such file."""
    got = read_credentials_text(path)
    return None if got is None else parse_credentials(got[0], path)


def update_profile(text: str, profile: str, values: Mapping[str, str], path: Path | str) -> str:
    """``text`` with ``profile`` holding ``values`` on top of what it held; all else kept.

    The profile's section is rewritten (known keys first, in a fixed order, then
    any others it had), keeping its comments; a new profile is appended.
    """
    profiles = parse_credentials(text, path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    existing = profiles.get(profile)
    merged = dict(existing.values) if existing else {}
    merged.update(values)
    order = [k for k in KNOWN_KEYS if k in merged] + sorted(set(merged) - set(KNOWN_KEYS))
    section = [f"[{profile}]", *(f"{k} = {merged[k]}" for k in order)]
    if existing is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.extend(section)
    else:
        start = existing.line - 1
        later = [p.line - 1 for p in profiles.values() if p.line > existing.line]
        end = min(later, default=len(lines))
        kept = [ln for ln in lines[start + 1 : end] if not ln.strip() or ln.strip()[0] in "#;"]
        lines[start:end] = section + kept
    return "\n".join(lines) + "\n"


def write_credentials(path: Path, text: str, *, private_parent: bool = True) -> None:
    """Replace the file atomically: 0600 from the first byte, fsync, rename.

    A missing parent directory is created 0700. With ``private_parent`` (the
    default ``~/.authbridge``, not a directory someone chose with
    ``AUTHBRIDGE_CREDENTIALS_FILE``) an existing parent of ours is made 0700 too.
    """
    from authbridge.files import write_atomic

    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True)
    elif private_parent:
        st = parent.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(parent, 0o700)
    write_atomic(path, text.encode("utf-8"), mode=0o600)
