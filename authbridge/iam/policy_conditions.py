"""IAM policy ``Condition`` operators: parsed and compiled once, evaluated per request (pure).

Follows "IAM JSON policy elements: Condition operators" and "Single-valued vs.
multivalued context keys" in the IAM user guide:

* operators: ``String(Not)Equals``, ``String(Not)EqualsIgnoreCase``,
  ``String(Not)Like``, ``Numeric{Equals,NotEquals,LessThan,LessThanEquals,
  GreaterThan,GreaterThanEquals}``, ``Date…`` (the same six), ``Bool``,
  ``IpAddress``/``NotIpAddress`` (CIDR or single address, IPv4 and IPv6),
  ``ArnEquals``/``ArnLike``/``ArnNotEquals``/``ArnNotLike`` (the same: each
  ARN field matched on its own, with wildcards) and ``Null``. Every one but
  ``Null`` takes the ``IfExists`` suffix and the ``ForAnyValue:`` /
  ``ForAllValues:`` set qualifiers. Operator names are case-sensitive;
  condition key names are not;
* several values for one key are OR'd (a negated operator is true when the
  request value matches none of them); several keys and operators are AND'd;
* a key absent from the request: a positive operator is false, a negated
  operator (``StringNotEquals``, ``NotIpAddress``, ``ArnNotLike``, …) is true,
  ``…IfExists`` is true, ``ForAllValues:`` is true and ``ForAnyValue:`` false;
  ``Null`` with ``true`` asks exactly that the key is absent (an empty tuple
  is a present, empty set: ``ForAllValues`` true, ``ForAnyValue`` false);
* a multi-valued request value (a tuple) without a qualifier is read as
  ``ForAnyValue`` for positive operators and as "no value matches" for
  negated ones; a single value under a qualifier is a one-element set;
* a request value that cannot be read as the operator's type (``"abc"`` for
  ``NumericLessThan``) matches no condition value;
* dates are ISO 8601 (``2026-01-01``, ``2026-01-01T12:00:00Z``) or epoch
  seconds; a date or time without a zone is UTC;
* policy variables (:mod:`authbridge.iam.policy_patterns`) are allowed in the
  values of the ``String…`` and ``Arn…`` operators. A value whose variable is
  unresolved matches nothing, and in an ``Allow`` a negated operator with an
  unresolved value is false: a missing name never widens a grant, and never
  stops a ``Deny`` from applying.

Values that can never match (a non-CIDR for ``IpAddress``, a non-number for
``Numeric…``, ``maybe`` for ``Bool``) are refused when the policy is parsed.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from authbridge.errors import MalformedPolicyDocument
from authbridge.iam.policy_patterns import (
    CONDITION_KEY,
    ContextValue,
    PatternSet,
    Template,
    bare,
    context_string,
    has_variables,
    literal_text,
    show,
    template,
)

_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "Equals": operator.eq,
    "NotEquals": operator.eq,  # negated below
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}

# base operator -> (kind, comparison suffix for Numeric/Date, negated)
OPERATORS: Final[dict[str, tuple[str, str, bool]]] = {
    "StringEquals": ("string", "", False),
    "StringNotEquals": ("string", "", True),
    "StringEqualsIgnoreCase": ("string-ignore-case", "", False),
    "StringNotEqualsIgnoreCase": ("string-ignore-case", "", True),
    "StringLike": ("string-like", "", False),
    "StringNotLike": ("string-like", "", True),
    **{f"Numeric{c}": ("numeric", c, c == "NotEquals") for c in _COMPARE},
    **{f"Date{c}": ("date", c, c == "NotEquals") for c in _COMPARE},
    "Bool": ("bool", "", False),
    "IpAddress": ("ip", "", False),
    "NotIpAddress": ("ip", "", True),
    "ArnEquals": ("arn", "", False),
    "ArnLike": ("arn", "", False),
    "ArnNotEquals": ("arn", "", True),
    "ArnNotLike": ("arn", "", True),
    "Null": ("null", "", False),
}
QUALIFIERS: Final = ("ForAnyValue:", "ForAllValues:")
_OPERATOR_HINT: Final = (
    "use StringEquals, StringLike, NumericLessThan, DateGreaterThan, Bool, IpAddress,"
    " ArnLike, Null or another IAM condition operator, optionally with IfExists or"
    " ForAnyValue:/ForAllValues:"
)
# A trust policy's condition keys: the IAM ones, or an OIDC provider's host, port and
# path (as in its ARN) then ``:`` and a claim name (``/`` between nested claim names).
TRUST_CONDITION_KEY: Final = re.compile(
    r"[A-Za-z0-9-]{1,64}:[A-Za-z0-9_.:/=+@ -]{1,256}"
    r"|[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%!$&'()*+,;=@-]{1,255}){0,16}"
    r":[A-Za-z0-9_.$/-]{1,256}",
    re.ASCII,
)
_EPOCH: Final = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)
_IP_CHARS: Final = re.compile(r"[0-9A-Fa-f:./]{2,64}", re.ASCII)


def split_operator(name: str) -> tuple[str | None, str, bool] | None:
    """``(qualifier, base, if_exists)`` for an operator name, ``None`` if unknown."""
    qualifier = next((q for q in QUALIFIERS if name.startswith(q)), None)
    rest = name[len(qualifier) :] if qualifier else name
    if_exists = rest.endswith("IfExists") and rest != "IfExists"
    base = rest[: -len("IfExists")] if if_exists else rest
    if base not in OPERATORS or (base == "Null" and (if_exists or qualifier)):
        return None
    return qualifier, base, if_exists


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@functools.lru_cache(maxsize=1024)
def _date(value: str) -> float | None:
    """Epoch seconds for an ISO 8601 date/time or an epoch number, ``None`` if neither."""
    if _EPOCH.fullmatch(value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _bool(value: str) -> bool | None:
    lowered = value.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not _IP_CHARS.fullmatch(value):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not _IP_CHARS.fullmatch(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _context_number(value: ContextValue) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    return _number(value) if isinstance(value, str) else None


def _context_date(value: ContextValue) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    return _date(value) if isinstance(value, str) else None


def _context_bool(value: ContextValue) -> bool | None:
    if isinstance(value, bool):
        return value
    return _bool(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Condition:
    """One ``"Operator": {"key": values}`` test of a statement's ``Condition`` block.

    ``operator`` and ``key`` are as written; ``values`` are strings (JSON
    numbers and booleans become their text, as IAM stores them). Building one
    checks and compiles the values; ``policy_variables`` is off for version
    ``2008-10-17`` documents.
    """

    operator: str
    key: str
    values: tuple[str, ...]
    policy_variables: bool = field(default=True, compare=False, repr=False)
    # A trust policy's keys also name an OIDC provider: ``<host/path>:<claim>``.
    trust_keys: bool = field(default=False, compare=False, repr=False)
    _test: _Test = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_test", _compile(self))

    def evaluate(
        self, context: Mapping[str, ContextValue], missing: dict[str, str], *, allow: bool
    ) -> bool:
        """Whether the request satisfies this test; absent keys are added to ``missing``.

        ``context`` has lowercased keys. ``allow`` says the statement is an Allow
        (an unresolved variable then never makes a negated test true).
        """
        return self._test.evaluate(context, missing, allow=allow)


@dataclass(frozen=True, slots=True)
class _Test:
    kind: str
    key: str
    lookup: str
    qualifier: str | None
    if_exists: bool
    negated: bool
    compare: Callable[[float, float], bool]
    constants: tuple[Any, ...]  # parsed values (numbers, dates, networks, bools, strings)
    templates: tuple[Template, ...]  # string values with variables (string kinds)
    patterns: PatternSet | None  # string-like and arn
    matcher: _Matcher  # does one request value match some condition value?

    def evaluate(
        self, context: Mapping[str, ContextValue], missing: dict[str, str], *, allow: bool
    ) -> bool:
        raw = context.get(self.lookup)
        if self.kind == "null":
            return (raw is None) in self.constants
        if raw is None:
            missing.setdefault(self.lookup, self.key)
            if self.if_exists or self.qualifier == "ForAllValues:":
                return True
            return self.negated and self.qualifier is None
        strings: tuple[Any, ...] = self.constants
        dynamic: tuple[re.Pattern[str], ...] = ()
        unresolved = False
        if self.templates:
            strings, unresolved = self._strings(context, missing)
        elif self.patterns is not None and self.patterns.dynamic:
            dynamic, unresolved = self.patterns.rendered(context, missing)
        if unresolved and self.negated and allow:
            return False
        if not isinstance(raw, tuple):  # one value: every qualifier reads the same
            return self.matcher(self, raw, strings, dynamic) != self.negated
        results = (self.matcher(self, value, strings, dynamic) != self.negated for value in raw)
        if self.qualifier == "ForAllValues:":
            return all(results)
        if self.qualifier == "ForAnyValue:" or not self.negated:
            return any(results)
        return all(results)  # negated, unqualified: no request value matches

    def _strings(
        self, context: Mapping[str, ContextValue], missing: dict[str, str]
    ) -> tuple[tuple[str, ...], bool]:
        """String values with variables substituted, and whether one was unresolved."""
        out = list(self.constants)
        unresolved = False
        for parts in self.templates:
            text = literal_text(parts, context, missing)
            if text is None:
                unresolved = True
            else:
                out.append(text.lower() if self.kind == "string-ignore-case" else text)
        return tuple(out), unresolved


_Matcher = Callable[[_Test, ContextValue, tuple[Any, ...], tuple[re.Pattern[str], ...]], bool]


def _match_string(test: _Test, value: ContextValue, strings: tuple[Any, ...], _: Any) -> bool:
    text = context_string(value)
    return text is not None and text in strings


def _match_string_ignore_case(
    test: _Test, value: ContextValue, strings: tuple[Any, ...], _: Any
) -> bool:
    text = context_string(value)
    return text is not None and text.lower() in strings


def _match_pattern(
    test: _Test, value: ContextValue, _: Any, dynamic: tuple[re.Pattern[str], ...]
) -> bool:
    text = context_string(value)
    assert test.patterns is not None  # noqa: S101 - built for the pattern kinds
    return text is not None and test.patterns.match_with(text, dynamic)


def _match_number(test: _Test, value: ContextValue, _: Any, __: Any) -> bool:
    number = _context_number(value)
    return number is not None and any(test.compare(number, c) for c in test.constants)


def _match_date(test: _Test, value: ContextValue, _: Any, __: Any) -> bool:
    moment = _context_date(value)
    return moment is not None and any(test.compare(moment, c) for c in test.constants)


def _match_bool(test: _Test, value: ContextValue, _: Any, __: Any) -> bool:
    flag = _context_bool(value)
    return flag is not None and flag in test.constants


def _match_ip(test: _Test, value: ContextValue, _: Any, __: Any) -> bool:
    address = _address(value) if isinstance(value, str) else None
    return address is not None and any(address in net for net in test.constants)


_MATCHERS: Final[dict[str, _Matcher]] = {
    "string": _match_string,
    "string-ignore-case": _match_string_ignore_case,
    "string-like": _match_pattern,
    "arn": _match_pattern,
    "numeric": _match_number,
    "date": _match_date,
    "bool": _match_bool,
    "ip": _match_ip,
}


def _compile(condition: Condition) -> _Test:
    name, key = condition.operator, condition.key
    split = split_operator(name) if isinstance(name, str) else None
    if split is None:
        raise MalformedPolicyDocument(
            f"Condition.{bare(name)}",
            "unknown condition operator",
            hint=_OPERATOR_HINT,
        )
    qualifier, base, if_exists = split
    kind, comparison, negated = OPERATORS[base]
    where = f"Condition.{name}.{bare(key)}"
    key_pattern = TRUST_CONDITION_KEY if condition.trust_keys else CONDITION_KEY
    if not isinstance(key, str) or not key_pattern.fullmatch(key):
        raise MalformedPolicyDocument(
            where,
            "not a condition key",
            hint="write a key such as aws:username, aws:SourceIp or aws:PrincipalTag/team",
        )
    if not condition.values:
        raise MalformedPolicyDocument(where, "needs at least one value")
    constants: list[Any] = []
    templates: list[Template] = []
    pattern_templates: list[Template] = []
    for value in condition.values:
        parsed = _value(kind, value, where, variables=condition.policy_variables)
        if kind in ("string-like", "arn"):
            pattern_templates.append(parsed)
        elif kind in ("string", "string-ignore-case") and has_variables(parsed):
            templates.append(parsed)
        else:
            constants.append(parsed)
    patterns = (
        PatternSet.build(tuple(pattern_templates), arn=kind == "arn")
        if kind in ("string-like", "arn")
        else None
    )
    return _Test(
        kind=kind,
        key=key,
        lookup=key.lower(),
        qualifier=qualifier,
        if_exists=if_exists,
        negated=negated,
        compare=_COMPARE.get(comparison, operator.eq),
        constants=tuple(constants),
        templates=tuple(templates),
        patterns=patterns,
        matcher=_MATCHERS.get(kind, _match_string),  # null never calls it
    )


def _value(kind: str, value: str, where: str, *, variables: bool) -> Any:
    """One condition value checked and parsed for its operator's kind."""
    if not isinstance(value, str):
        raise MalformedPolicyDocument(where, f"values must be strings, got {show(value)}")
    if kind in ("string", "string-ignore-case"):
        parts = template(value, variables=variables, field=where)
        if has_variables(parts):
            return parts
        text = literal_text(parts, {}, {})
        assert text is not None  # noqa: S101 - no variables
        return text.lower() if kind == "string-ignore-case" else text
    if kind == "string-like":
        return template(value, variables=variables, field=where)
    if kind == "arn":
        parts = template(value, variables=variables, field=where)
        plain = "".join(p for p in parts if isinstance(p, str))
        if value != "*" and not (value.startswith("arn:") and plain.count(":") >= 5):
            raise MalformedPolicyDocument(
                where,
                f"{show(value)} is not an ARN pattern",
                hint="write arn:partition:service:region:account:resource (wildcards allowed)",
            )
        return parts
    parsed: Any
    if kind == "numeric":
        parsed, expected = _number(value), "a number"
    elif kind == "date":
        parsed, expected = _date(value), "an ISO 8601 date/time or epoch seconds"
    elif kind == "bool":
        parsed, expected = _bool(value), "true or false"
    elif kind == "null":
        parsed, expected = _bool(value), "true (the key is absent) or false (it is present)"
    else:
        parsed, expected = _network(value), "an IPv4 or IPv6 address or CIDR block"
    if parsed is None:
        raise MalformedPolicyDocument(where, f"{show(value)} is not {expected}")
    return parsed
