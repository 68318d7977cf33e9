"""IAM naming rules (the limits AWS IAM documents), checked before anything is stored.

Every check raises :class:`~authbridge.errors.InputError` naming the field and
the rule, so the CLI can print one line that says what to change.
"""

from __future__ import annotations

import re
import unicodedata

from authbridge.errors import InputError

# AWS IAM: "[\w+=,.@-]+" where \w is ASCII word characters.
_NAME_CHARS = re.compile(r"[A-Za-z0-9_+=,.@-]+", re.ASCII)
# AWS IAM path: "/" or "/" + printable ASCII (0x21-0x7E) + "/".
_PATH = re.compile(r"/(?:[\x21-\x7e]*/)?", re.ASCII)
_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
_TAG_CHARS = re.compile(r"[\w .:/=+\-@]*")  # letters, digits, space: no tabs or newlines

NAME_CHARS_HINT = "use letters, digits and + = , . @ _ -"

USER_NAME_MAX = 64
GROUP_NAME_MAX = 128
ROLE_NAME_MAX = 64
PATH_MAX = 512
SESSION_NAME_MIN = 2
SESSION_NAME_MAX = 64
MIN_SESSION_DURATION = 900
MAX_SESSION_DURATION = 43200
DEFAULT_MAX_SESSION_DURATION = 3600
MAX_TAGS = 50
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
ROLE_DESCRIPTION_MAX = 1000


def _check_name(field: str, value: str, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(field, "is required")
    if not (min_len <= len(value) <= max_len):
        raise InputError(field, f"must be {min_len} to {max_len} characters, got {len(value)}")
    if not _NAME_CHARS.fullmatch(value):
        raise InputError(field, f"has characters IAM does not allow; {NAME_CHARS_HINT}")
    return value


def user_name(value: str) -> str:
    return _check_name("UserName", value, USER_NAME_MAX)


def group_name(value: str) -> str:
    return _check_name("GroupName", value, GROUP_NAME_MAX)


def role_name(value: str) -> str:
    return _check_name("RoleName", value, ROLE_NAME_MAX)


def session_name(value: str) -> str:
    return _check_name("RoleSessionName", value, SESSION_NAME_MAX, SESSION_NAME_MIN)


def path(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError("Path", "is required; use / for the root path")
    if len(value) > PATH_MAX:
        raise InputError("Path", f"must be at most {PATH_MAX} characters, got {len(value)}")
    if not _PATH.fullmatch(value):
        raise InputError(
            "Path",
            f"must be / or start and end with / and hold printable ASCII, got {value!r}",
            hint="for example --path /team/",
        )
    if "//" in value:
        raise InputError("Path", f"must not contain an empty segment (//), got {value!r}")
    return value


def account_id(value: str) -> str:
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise InputError(
            "AccountId", f"must be exactly 12 digits, got {value!r}", hint="e.g. 111122223333"
        )
    return value


def max_session_duration(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("MaxSessionDuration", "must be a whole number of seconds")
    if not (MIN_SESSION_DURATION <= value <= MAX_SESSION_DURATION):
        raise InputError(
            "MaxSessionDuration",
            f"must be between {MIN_SESSION_DURATION} and {MAX_SESSION_DURATION} seconds,"
            f" got {value}",
        )
    return value


def description(value: str) -> str:
    if len(value) > ROLE_DESCRIPTION_MAX:
        raise InputError("Description", f"must be at most {ROLE_DESCRIPTION_MAX} characters")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
        raise InputError("Description", "must not contain control characters")
    return value


def tags(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_TAGS:
        raise InputError("Tags", f"at most {MAX_TAGS} tags per entity, got {len(value)}")
    seen: set[str] = set()
    for key, val in value.items():
        if not (1 <= len(key) <= TAG_KEY_MAX) or not _TAG_CHARS.fullmatch(key):
            raise InputError(
                "Tags",
                f"key {key!r} must be 1 to {TAG_KEY_MAX} letters, digits, spaces or _.:/=+-@",
            )
        if len(val) > TAG_VALUE_MAX or not _TAG_CHARS.fullmatch(val):
            raise InputError(
                "Tags",
                f"value of {key!r} must be at most {TAG_VALUE_MAX} letters, digits,"
                " spaces or _.:/=+-@",
            )
        if key.lower() in seen:
            raise InputError("Tags", f"duplicate key {key!r} (tag keys are case-insensitive)")
        if key.lower().startswith("aws:"):
            raise InputError("Tags", f"key {key!r} uses the reserved prefix aws:")
        seen.add(key.lower())
    return dict(value)
