"""``iam simulate-principal-policy`` inputs and answers, pure: context entries in, results out.

``--context-entries`` takes the AWS CLI shorthand, one entry per argument::

    ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip
    ContextKeyName=aws:PrincipalTag/x,ContextKeyValues=a,b,ContextKeyType=stringList
    ContextKeyName=k,ContextKeyValues=[a,b],ContextKeyType=stringList

or the same as JSON (an object, or a list of them, with those three keys).
Shorthand rules (the AWS CLI's, made strict): ``Key=value`` pairs split at
commas; the keys are ``ContextKeyName``, ``ContextKeyValues`` and
``ContextKeyType``, each at most once; after ``ContextKeyValues=`` every
comma-separated piece that does not start another key is one more value (or
the values sit in ``[…]``); a value is taken literally inside ``"…"`` or
``'…'``, and ``\\`` escapes the next character anywhere. ``ContextKeyType``
defaults to ``string``; every value is checked against its type (``ip``: an
address or CIDR, ``numeric``, ``boolean``: ``true``/``false``, ``date``: ISO
8601 or epoch seconds, ``binary``: base64) before anything is evaluated.

The simulator fills ``aws:username`` (users), ``aws:userid``,
``aws:PrincipalArn`` and ``aws:PrincipalTag/<key>`` from the store; an entry
may not give those (it would simulate someone else). ``aws:CurrentTime`` is
now unless an entry gives it. Answers follow AWS's ``EvaluationResults``:
``MatchedStatements`` carry ``SourcePolicyId`` (the policy's ARN, or
``user/alice/Name`` for an inline policy), ``SourcePolicyType`` (AWS's
names: ``user``, ``group``, ``role``, ``aws-managed``, ``user-managed``) and
the statement's index (from 0) and ``Sid`` instead of line and column.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from authbridge.errors import InputError
from authbridge.iam import shorthand
from authbridge.iam.policy import ContextValue, Decision

ContextKeyType = Literal[
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
]
CONTEXT_KEY_TYPES: Final[tuple[ContextKeyType, ...]] = (
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
)
FIELDS: Final = ("ContextKeyName", "ContextKeyValues", "ContextKeyType")
FIELD = "ContextEntries"
MAX_ENTRIES: Final = 100
MAX_VALUES: Final = 100
MAX_VALUE_CHARS: Final = 1024
MAX_ENTRY_CHARS: Final = 64 * 1024
KEY_NAME_MIN: Final = 5  # AWS ContextKeyNameType: 5 to 256 characters
KEY_NAME_MAX: Final = 256
# Filled from the store; an entry giving one would simulate another principal.
STORE_KEYS: Final = ("aws:username", "aws:userid", "aws:principalarn")
STORE_KEY_PREFIXES: Final = ("aws:principaltag/",)
# SourcePolicyType as AWS names it (its "user-managed" is a customer managed policy).
AWS_POLICY_TYPES: Final = {
    "user": "user",
    "group": "group",
    "role": "role",
    "aws-managed": "aws-managed",
    "managed": "user-managed",
}

_KEY_NAME = re.compile(r"[\x21-\x7e]+", re.ASCII)
_ACTION = re.compile(r"[A-Za-z0-9-]{1,64}:[A-Za-z0-9_-]{1,128}", re.ASCII)
_RESOURCE = re.compile(r"\*|arn:[\x21-\x7e]{1,2044}", re.ASCII)
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
_EPOCH = re.compile(r"-?[0-9]{1,12}", re.ASCII)


@dataclass(frozen=True)
class ContextEntry:
    name: str
    values: tuple[str, ...]
    type: ContextKeyType = "string"


def _show(text: str, limit: int = 48) -> str:
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)


# -- the shorthand ------------------------------------------------------------------------


def parse_shorthand(text: str, where: str = FIELD) -> ContextEntry:
    """One ``ContextKeyName=…,ContextKeyValues=…,ContextKeyType=…`` entry."""
    given = shorthand.parse_struct(
        text, FIELDS, list_field="ContextKeyValues", where=where, example=example()
    )
    return _entry(
        given.get("ContextKeyName"),
        given.get("ContextKeyValues"),
        given.get("ContextKeyType"),
        where,
    )


def _entry(
    name: list[str] | str | None,
    values: list[str] | None,
    kind: list[str] | str | None,
    where: str,
) -> ContextEntry:
    if isinstance(name, list):
        name = name[0]
    if isinstance(kind, list):
        kind = kind[0]
    if name is None:
        raise InputError(where, "needs ContextKeyName", hint=f"e.g. {example()}")
    if values is None:
        raise InputError(where, f"needs ContextKeyValues for {_show(name)}")
    chosen = context_key_type(kind if kind is not None else "string", where)
    return check_entry(ContextEntry(name, tuple(values), chosen), where)


def context_key_type(value: str, where: str = FIELD) -> ContextKeyType:
    for kind in CONTEXT_KEY_TYPES:
        if value == kind:
            return kind
    raise InputError(
        where,
        f"ContextKeyType {_show(value)} is not one of " + ", ".join(CONTEXT_KEY_TYPES),
    )


def check_entry(entry: ContextEntry, where: str = FIELD) -> ContextEntry:
    """The entry, if its name, values and type agree; else an InputError naming what to fix."""
    name = entry.name
    if not (KEY_NAME_MIN <= len(name) <= KEY_NAME_MAX) or not _KEY_NAME.fullmatch(name):
        raise InputError(
            where,
            f"ContextKeyName {_show(name)} must be {KEY_NAME_MIN} to {KEY_NAME_MAX} printable"
            " ASCII characters without spaces",
            hint="e.g. aws:SourceIp",
        )
    if not entry.values:
        raise InputError(where, f"{name}: ContextKeyValues needs at least one value")
    if len(entry.values) > MAX_VALUES:
        raise InputError(where, f"{name}: at most {MAX_VALUES} values, got {len(entry.values)}")
    is_list = entry.type.endswith("List")
    if len(entry.values) > 1 and not is_list:
        raise InputError(
            where,
            f"{name}: ContextKeyType {entry.type} takes one value, got {len(entry.values)}",
            hint=f"use ContextKeyType={entry.type}List",
        )
    base = entry.type.removesuffix("List")
    for value in entry.values:
        if len(value) > MAX_VALUE_CHARS:
            raise InputError(where, f"{name}: a value is longer than {MAX_VALUE_CHARS} characters")
        problem = _type_problem(base, value)
        if problem:
            raise InputError(where, f"{name}: {_show(value)} is not {problem}")
    return entry


def _type_problem(base: str, value: str) -> str | None:
    if base == "numeric" and not _NUMBER.fullmatch(value):
        return "a number"
    if base == "boolean" and value not in ("true", "false"):
        return "true or false"
    if base == "ip":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return "an IP address or CIDR"
    if base == "date" and not _EPOCH.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "an ISO 8601 date or epoch seconds"
    if base == "binary":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "base64"
    return None


def parse_context_entries(texts: Sequence[str]) -> list[ContextEntry]:
    """Every ``--context-entries`` argument, shorthand or JSON; key names unique (any case)."""
    entries: list[ContextEntry] = []
    for n, text in enumerate(texts, start=1):
        where = f"{FIELD}[{n}]"
        if isinstance(text, str) and text.lstrip()[:1] in ("[", "{"):
            entries.extend(_json_entries(text, where))
        else:
            entries.append(parse_shorthand(text, where))
    if len(entries) > MAX_ENTRIES:
        raise InputError(FIELD, f"at most {MAX_ENTRIES} entries, got {len(entries)}")
    seen: set[str] = set()
    for entry in entries:
        low = entry.name.lower()
        if low in seen:
            raise InputError(FIELD, f"{entry.name} is given twice (keys are case-insensitive)")
        if low in STORE_KEYS or low.startswith(STORE_KEY_PREFIXES):
            raise InputError(
                FIELD,
                f"{entry.name} is filled from the store for the simulated principal",
                hint="tag the principal, or simulate another one",
            )
        seen.add(low)
    return entries


def _json_entries(text: str, where: str) -> list[ContextEntry]:
    if len(text) > MAX_ENTRY_CHARS:
        raise InputError(where, f"must be at most {MAX_ENTRY_CHARS} characters, got {len(text)}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputError(where, f"is not valid JSON: {e}") from None
    items = data if isinstance(data, list) else [data]
    out: list[ContextEntry] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]" if isinstance(data, list) else where
        if not isinstance(item, dict):
            raise InputError(at, "must be an object with ContextKeyName and ContextKeyValues")
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise InputError(at, f"{_show(unknown[0])} is not a field of a context entry")
        name, values, kind = (item.get(f) for f in FIELDS)
        if not isinstance(name, str) or (kind is not None and not isinstance(kind, str)):
            raise InputError(at, "ContextKeyName and ContextKeyType must be strings")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InputError(at, "ContextKeyValues must be a list of strings")
        out.append(_entry(name, values, kind, at))
    return out


def action_name(value: str) -> str:
    """An ``--action-names`` value: ``service:Action``, no wildcards (one request each)."""
    if not isinstance(value, str) or not _ACTION.fullmatch(value):
        raise InputError(
            "ActionNames",
            f"{_show(str(value))} is not service:Action",
            hint="e.g. iam:CreateUser; wildcards belong in policies, not in a simulated request",
        )
    return value


def resource_name(value: str) -> str:
    """A ``--resource-arns`` value: ``*`` or an ARN, 1 to 2048 printable ASCII characters."""
    if not isinstance(value, str) or not _RESOURCE.fullmatch(value):
        raise InputError(
            "ResourceArns",
            f"{_show(str(value))} is not * or an ARN",
            hint="e.g. arn:aws:iam::111122223333:user/alice",
        )
    return value


def example() -> str:
    return "ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip"


# -- the request context and the answer ------------------------------------------------------


def context_value(entry: ContextEntry) -> ContextValue:
    """The value evaluation compares: a string, a bool, or a tuple for a list type."""
    if entry.type.endswith("List"):
        return tuple(entry.values)
    if entry.type == "boolean":
        return entry.values[0] == "true"
    return entry.values[0]


def simulation_context(
    *,
    principal_arn: str,
    user_id: str,
    user_name: str | None,
    tags: Mapping[str, str],
    now: datetime,
    entries: Sequence[ContextEntry] = (),
) -> dict[str, ContextValue]:
    """The request context: what the store says of the principal, now, then the entries."""
    context: dict[str, ContextValue] = {
        "aws:userid": user_id,
        "aws:PrincipalArn": principal_arn,
        "aws:CurrentTime": now,
    }
    if user_name is not None:
        context["aws:username"] = user_name
    for key, value in tags.items():
        context[f"aws:PrincipalTag/{key}"] = value
    for entry in entries:
        if entry.name.lower() == "aws:currenttime":
            context.pop("aws:CurrentTime", None)
        context[entry.name] = context_value(entry)
    return context


def evaluation_result(action: str, resource: str, decision: Decision) -> dict[str, Any]:
    """One ``EvaluationResults`` item, in AWS's shape."""
    return {
        "EvalActionName": action,
        "EvalResourceName": resource,
        "EvalDecision": decision.decision,
        "MatchedStatements": [
            {
                "SourcePolicyId": s.policy_id,
                "SourcePolicyType": AWS_POLICY_TYPES.get(s.policy_type, s.policy_type),
                "StatementIndex": s.statement_index,
                **({"Sid": s.sid} if s.sid else {}),
            }
            for s in decision.statements
        ],
        "MissingContextValues": list(decision.missing_context),
    }
