"""Typed parameter schemas of admin actions, and the strict parser of an action's arguments.

An action's parameters are AWS-named (``UserName``, ``PathPrefix``,
``clusterName``) and typed: a string (bounded length, optionally one of a
fixed set), a boolean, an integer (bounded), a list of strings (bounded) or
AWS tags (``[{"Key": k, "Value": v}, ...]``). :func:`parse_args` takes the
decoded JSON object of a request and returns the handler's keyword
arguments, or raises :class:`~authbridge.errors.InputError` naming the
field: an unknown field, a field of the wrong type (``true`` is not an
integer, ``1`` is not a string), a required field missing, a value out of
its bounds. Values are never repeated back in a message (they may be a
secret pasted into the wrong field); lengths and types are.

The rules of the values themselves (a user name's characters, a path's
shape) stay where they always were, in :mod:`authbridge.iam.names` and the
store: the parser only guarantees each handler gets the types it declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from authbridge.audit import looks_secret
from authbridge.errors import InputError

Kind = Literal["string", "boolean", "integer", "strings", "tags", "object", "objects", "document"]

MAX_STRING: Final = 2048  # characters: IAM's longest ARN; names are checked further on
MAX_ITEMS: Final = 100  # entries of a list (trust, groups, namespaces) or tags
MAX_TAG_KEY: Final = 128  # characters, as IAM
MAX_TAG_VALUE: Final = 256
MAX_DOCUMENT: Final = 64 * 1024  # characters of a policy document given as text (IAM: 10240)


@dataclass(frozen=True)
class Param:
    """One parameter: its AWS ``name``, the handler's keyword ``arg``, its type and bounds."""

    name: str
    arg: str
    kind: Kind = "string"
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    doc: str = ""

    @property
    def type_name(self) -> str:
        return {
            "string": "a string",
            "boolean": "true or false",
            "integer": "an integer",
            "strings": "a list of strings",
            "tags": 'a list of {"Key": ..., "Value": ...} objects',
            "object": "an object",
            "objects": "a list of objects",
            "document": "a JSON policy document (text or object)",
        }[self.kind]


def _string(param: Param, value: object, field: str, limit: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {_json_type(value)}")
    if len(value) > limit:
        raise InputError(field, f"must be at most {limit} characters, got {len(value)}")
    if param.choices and value not in param.choices:
        raise InputError(field, "must be one of " + ", ".join(param.choices))
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "an unsupported value"


def _integer(param: Param, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(param.name, f"must be an integer, got {_json_type(value)}")
    if param.minimum is not None and value < param.minimum:
        raise InputError(param.name, f"must be at least {param.minimum}")
    if param.maximum is not None and value > param.maximum:
        raise InputError(param.name, f"must be at most {param.maximum}")
    return value


def _strings(param: Param, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InputError(param.name, f"must be a list of strings, got {_json_type(value)}")
    if len(value) > MAX_ITEMS:
        raise InputError(param.name, f"must have at most {MAX_ITEMS} entries, got {len(value)}")
    plain = Param(param.name, param.arg)  # choices apply to the list as a whole, not here
    return tuple(_string(plain, v, f"{param.name}[{i}]") for i, v in enumerate(value))


def _tags(param: Param, value: object) -> dict[str, str]:
    if not isinstance(value, list):
        raise InputError(param.name, f"must be {param.type_name}, got {_json_type(value)}")
    if len(value) > MAX_ITEMS:
        raise InputError(param.name, f"must have at most {MAX_ITEMS} tags, got {len(value)}")
    tags: dict[str, str] = {}
    plain = Param(param.name, param.arg)
    for i, item in enumerate(value):
        where = f"{param.name}[{i}]"
        if not isinstance(item, dict):
            raise InputError(
                where, f'must be a {{"Key": ..., "Value": ...}} object, got {_json_type(item)}'
            )
        unknown = sorted(set(item) - {"Key", "Value"})
        if unknown:
            label = field_label(unknown[0])
            field = f"{where}.{label}" if label else where
            raise InputError(field, "has a field other than Key and Value")
        if "Key" not in item:
            raise InputError(f"{where}.Key", "is required")
        key = _string(plain, item["Key"], f"{where}.Key", MAX_TAG_KEY)
        tag_value = _string(plain, item.get("Value", ""), f"{where}.Value", MAX_TAG_VALUE)
        if key in tags:
            raise InputError(f"{where}.Key", "is given twice in Tags")
        tags[key] = tag_value
    return tags


_FIELD_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}", re.ASCII)


def field_label(name: str) -> str | None:
    """A field name from the request as a message may name it, or None.

    Only a plain identifier that does not look like a secret: a secret pasted
    where a field name goes must not be quoted into a message or a log.
    """
    return name if _FIELD_NAME.fullmatch(name) and not looks_secret(name) else None


def convert(param: Param, value: object) -> Any:
    """``value`` (from JSON) as the handler's type, or InputError naming ``param.name``."""
    if param.kind == "string":
        return _string(param, value, param.name)
    if param.kind == "boolean":
        if not isinstance(value, bool):
            raise InputError(param.name, f"must be true or false, got {_json_type(value)}")
        return value
    if param.kind == "integer":
        return _integer(param, value)
    if param.kind == "strings":
        return _strings(param, value)
    if param.kind == "document":
        # The store parses and checks it (MalformedPolicyDocument naming the statement).
        if isinstance(value, str):
            return _string(param, value, param.name, MAX_DOCUMENT)
        if not isinstance(value, dict):
            raise InputError(param.name, f"must be {param.type_name}, got {_json_type(value)}")
        return value
    if param.kind == "objects":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise InputError(param.name, f"must be a list of objects, got {_json_type(value)}")
        if len(value) > MAX_ITEMS:
            raise InputError(param.name, f"must have at most {MAX_ITEMS} entries, got {len(value)}")
        return tuple(value)
    if param.kind == "object":
        # Its fields are the handler's to check (accessScope, accessConfig).
        if not isinstance(value, dict):
            raise InputError(param.name, f"must be an object, got {_json_type(value)}")
        return value
    return _tags(param, value)


def parse_args(
    params: Sequence[Param], body: Mapping[str, Any], *, ignore: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The keyword arguments ``body`` gives, by ``params``; InputError naming the field.

    ``ignore`` lists fields that are not parameters (``Action``). A ``null``
    is the field left out.
    """
    by_name = {p.name: p for p in params}
    for name in body:
        if name not in by_name and name not in ignore:
            known = ", ".join(by_name) or "none"
            label = field_label(name)
            if label is None:
                raise InputError(
                    "body",
                    "has a field that is not a parameter of this action (its name is not shown)",
                    hint=f"its parameters: {known}",
                )
            raise InputError(
                label, "is not a parameter of this action", hint=f"its parameters: {known}"
            )
    args: dict[str, Any] = {}
    for param in params:
        value = body.get(param.name)
        if value is None:
            if param.required:
                raise InputError(param.name, f"is required: {param.type_name}")
            args[param.arg] = param.default
            continue
        args[param.arg] = convert(param, value)
    return args
