"""The admin API's request body: one JSON object naming the action and its parameters.

``{"Action": "CreateUser", "UserName": "alice", "Path": "/team/"}``, sent as
``Content-Type: application/json`` (``charset=utf-8`` allowed, no other
charset), at most :data:`MAX_BODY_BYTES`. Strict, as a parser of outside
input should be: the body must be UTF-8 JSON, one object, with no member
name twice, no ``NaN``/``Infinity`` and ``Action`` a string. Every refusal
is an :class:`~authbridge.errors.InputError` (``ValidationError``) naming
the field, or :class:`BodyTooLarge`; nothing else comes out
(tests/web/test_admin_api.py holds that with a Hypothesis property). The
parameters themselves are checked against the action's schema afterwards
(:func:`authbridge.admin.params.parse_args`).

Flask-free: the view hands over the bytes and the Content-Type header.
"""

from __future__ import annotations

import json
from typing import Any, Final

from authbridge.admin.params import field_label
from authbridge.errors import InputError

MAX_BODY_BYTES: Final = 64 * 1024  # the admin API's cap, under maxRequestBytes if lower
ACTION_FIELD: Final = "Action"
_MEDIA_TYPE: Final = "application/json"


class BodyTooLarge(Exception):
    """413: the body is over the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit} bytes")
        self.limit = limit


class UnknownAction(InputError):
    """``Action`` names no action of this endpoint (AWS: InvalidAction)."""

    code = "InvalidAction"


class _Duplicate(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Duplicate(name)
        out[name] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_content_type(content_type: str | None) -> None:
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != _MEDIA_TYPE:
        raise InputError(
            "Content-Type",
            "must be application/json",
            hint='send the action as a JSON object, e.g. {"Action": "ListUsers"}',
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise InputError("Content-Type", "charset must be utf-8")


def parse_body(
    raw: bytes, content_type: str | None, *, limit: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The request's JSON object, ``Action`` a string; InputError or BodyTooLarge otherwise."""
    if len(raw) > limit:
        raise BodyTooLarge(limit)
    _check_content_type(content_type)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError("body", f"is not UTF-8 (byte {e.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _Duplicate as e:
        label = field_label(e.name)
        if label is None:
            raise InputError("body", "has a field given twice") from None
        raise InputError(label, "is given twice in the body") from None
    except json.JSONDecodeError as e:
        raise InputError("body", f"is not JSON: {e.msg} at character {e.pos}") from None
    except (ValueError, RecursionError):
        # An integer of too many digits, NaN/Infinity, or nesting too deep to follow.
        raise InputError(
            "body", "is not JSON this API reads (a huge number, NaN, or nesting too deep)"
        ) from None
    if not isinstance(doc, dict):
        raise InputError("body", 'must be a JSON object, e.g. {"Action": "ListUsers"}')
    action = doc.get(ACTION_FIELD)
    if action is None:
        raise InputError(ACTION_FIELD, 'is required: the action to call, e.g. "ListUsers"')
    if not isinstance(action, str):
        raise InputError(ACTION_FIELD, "must be a string")
    return doc
