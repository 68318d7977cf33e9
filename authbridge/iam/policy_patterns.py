"""Wildcards and policy variables in IAM policy strings, compiled once (pure).

Used by :mod:`authbridge.iam.policy` (``Action``, ``Resource``) and
:mod:`authbridge.iam.policy_conditions` (condition values). Following the IAM
JSON policy reference ("IAM JSON policy elements: Resource", "IAM policy
elements: Variables and tags"):

* ``*`` matches any run of characters and ``?`` any one character. In an ARN
  a wildcard stays inside its field: it never matches the ``:`` between
  partition, service, region, account and resource, but inside the resource
  (the sixth field, which may itself hold ``:`` and ``/``) it matches anything;
* ``${key}`` is replaced by the request's value for the condition key ``key``
  (looked up case-insensitively); ``${key, 'default'}`` uses ``default`` when
  the key is absent (``''`` inside a default is one quote); ``${*}``, ``${?}``
  and ``${$}`` are a literal ``*``, ``?`` and ``$``. Only policy version
  ``2012-10-17`` has variables; in ``2008-10-17`` the text is literal, as AWS;
* a substituted value is always literal text: a tag value ``*`` matches only
  ``*``, so whoever controls a tag cannot widen a grant with a wildcard;
* a variable whose key is absent (or is multi-valued) and has no default
  leaves the string *unresolved*: it matches nothing. Multi-valued keys cannot
  be variables (AWS: "a multivalued condition key fails to be replaced").

Matching never backtracks catastrophically: a segment between two stars is
taken at its leftmost place and not reconsidered (an atomic group), which is
exact for glob segments, so ``*a*a*a…*b`` costs what ``*b`` costs, and whoever
may write a policy cannot stall evaluation with one.

Patterns without variables are compiled to one regular expression when the
policy is parsed; patterns with variables are rendered per request and their
expressions kept in an LRU cache, so a request never compiles a regex for a
principal seen before.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from authbridge.errors import MalformedPolicyDocument

# The condition key names IAM accepts: a service prefix, a colon, then the name
# (tag keys after "/" take letters, digits, space and _ . : / = + - @).
CONDITION_KEY: Final = re.compile(r"[A-Za-z0-9-]{1,64}:[A-Za-z0-9_.:/=+@ -]{1,256}", re.ASCII)
_ARN_FIELDS: Final = 6  # arn:partition:service:region:account:resource

# Context values as the evaluator receives them (see authbridge.iam.policy.Request).
ContextValue = str | bool | int | datetime | tuple[str, ...]


def show(value: object) -> str:
    """A caller's value quoted for a message: shortened, non-ASCII escaped."""
    if isinstance(value, str):
        return ascii(value if len(value) <= 60 else value[:57] + "...")
    return type(value).__name__


def context_string(value: ContextValue) -> str | None:
    """One single-valued context value as the string IAM compares (``None``: multi-valued)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def bare(value: object) -> str:
    """:func:`show` without the quotes, for a name inside a field path."""
    return show(value)[1:-1] if isinstance(value, str) else show(value)


@dataclass(frozen=True, slots=True)
class Literal:
    """Text taken as it is (``${*}``, a substituted value)."""

    text: str


@dataclass(frozen=True, slots=True)
class Variable:
    """``${key}`` or ``${key, 'default'}``; ``key`` as written, ``lookup`` lowercased."""

    key: str
    lookup: str
    default: str | None


Part = str | Literal | Variable  # a plain str is text where * and ? are wildcards
Template = tuple[Part, ...]

_VARIABLE: Final = re.compile(
    r"\$\{\s*(?P<key>[^\s,}']+)\s*(?:,\s*'(?P<default>(?:[^']|'')*)'\s*)?\}", re.ASCII
)
_ESCAPES: Final = {"*": "*", "?": "?", "$": "$"}


def template(text: str, *, variables: bool, field: str) -> Template:
    """``text`` split into wildcard text, literals and variables (checked, not yet matched)."""
    if not variables or "${" not in text:
        return (text,)
    parts: list[Part] = []
    position = 0
    while (start := text.find("${", position)) >= 0:
        if start > position:
            parts.append(text[position:start])
        end = text.find("}", start)
        inner = text[start + 2 : end].strip() if end >= 0 else None
        if inner in _ESCAPES:
            parts.append(Literal(_ESCAPES[inner]))
            position = end + 1
            continue
        match = _VARIABLE.match(text, start)
        if match is None or not CONDITION_KEY.fullmatch(match["key"]):
            raise MalformedPolicyDocument(
                field,
                f"{show(text[start : start + 60])} is not a policy variable",
                hint="write ${aws:username}, ${aws:PrincipalTag/team, 'default'},"
                " or ${$} for a literal '$'",
            )
        default = match["default"]
        parts.append(
            Variable(
                match["key"],
                match["key"].lower(),
                None if default is None else default.replace("''", "'"),
            )
        )
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def has_variables(parts: Template) -> bool:
    return any(isinstance(part, Variable) for part in parts)


def resolve(
    variable: Variable, context: Mapping[str, ContextValue], missing: dict[str, str]
) -> str | None:
    """The variable's value in ``context`` (or its default); ``None`` when unresolved."""
    value = context.get(variable.lookup)
    text = None if value is None else context_string(value)
    if text is None:
        if value is None:
            missing.setdefault(variable.lookup, variable.key)
        return variable.default
    return text


def literal_text(
    parts: Template, context: Mapping[str, ContextValue], missing: dict[str, str]
) -> str | None:
    """The template as plain text (no wildcards), or ``None`` if a variable is unresolved."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, Variable):
            value = resolve(part, context, missing)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(part if isinstance(part, str) else part.text)
    return "".join(out)


_SPECIAL: Final = re.compile(r"([*?:])")


class Wild(enum.Enum):
    """The wildcard tokens of a pattern; literal text is a plain ``str``."""

    STAR = "*"
    ONE = "?"
    FIELD = ":"  # a separator between ARN fields (the first five colons)


Token = str | Wild
Plan = tuple[Token | tuple[Variable, bool], ...]  # variable: (it, inside the ARN's first 5 fields)


def _text(out: list[Any], text: str) -> None:
    if out and isinstance(out[-1], str):
        out[-1] += text
    elif text:
        out.append(text)


def plan(parts: Template, *, arn: bool) -> Plan:
    """A template as wildcard tokens, literal text and variables (substituted per request)."""
    field = 0
    out: list[Token | tuple[Variable, bool]] = []
    for part in parts:
        if isinstance(part, Variable):
            out.append((part, arn and field < _ARN_FIELDS - 1))
        elif isinstance(part, Literal):
            _text(out, part.text)
        else:
            for piece in _SPECIAL.split(part):
                if piece == "*":
                    out.append(Wild.STAR)
                elif piece == "?":
                    out.append(Wild.ONE)
                elif piece == ":" and arn and field < _ARN_FIELDS - 1:
                    out.append(Wild.FIELD)
                    field += 1
                else:
                    _text(out, piece)
    return tuple(out)


def _field_source(tokens: list[Token], any_char: str) -> str:
    """One field's glob as a regex that cannot backtrack catastrophically.

    ``a*b*c`` becomes ``a(?>X*?b)X*c``: every segment between two stars is taken
    at its leftmost place and never reconsidered (an atomic group), which is
    exact for glob segments (fixed length: text and ``?``), and the last star
    is greedy. So matching is linear per segment, not exponential in the stars.
    """
    segments: list[list[Token]] = [[]]
    for token in tokens:
        if token is Wild.STAR:
            segments.append([])
        else:
            segments[-1].append(token)

    def segment(items: list[Token]) -> str:
        return "".join(any_char if t is Wild.ONE else re.escape(str(t)) for t in items)

    if len(segments) == 1:
        return segment(segments[0])
    middle = "".join(f"(?>{any_char}*?{segment(s)})" for s in segments[1:-1])
    return f"{segment(segments[0])}{middle}{any_char}*{segment(segments[-1])}"


@functools.lru_cache(maxsize=4096)
def translate(tokens: tuple[Token, ...], *, arn: bool) -> str:
    """Regex source for rendered tokens; in an ARN, wildcards stay inside their field."""
    fields: list[list[Token]] = [[]]
    for token in tokens:
        if token is Wild.FIELD:
            fields.append([])
        else:
            fields[-1].append(token)
    return ":".join(
        _field_source(field, "[^:]" if arn and index < _ARN_FIELDS - 1 else ".")
        for index, field in enumerate(fields)
    )


def regex_source(parts: Template, *, arn: bool) -> str:
    """Regex source of a template without variables (``arn``: wildcards stay in their field)."""
    tokens = tuple(step for step in plan(parts, arn=arn) if not isinstance(step, tuple))
    return translate(tokens, arn=arn)


@functools.lru_cache(maxsize=4096)
def compiled(source: str) -> re.Pattern[str]:
    """One compiled expression per distinct source (rendered variables included)."""
    return re.compile(source, re.DOTALL)


@dataclass(frozen=True, slots=True, eq=False)
class _Dynamic:
    """A pattern with variables; hashed by identity, so the render cache key is cheap."""

    plan: Plan
    variables: tuple[tuple[Variable, bool], ...]
    arn: bool

    def values(
        self, context: Mapping[str, ContextValue], missing: dict[str, str]
    ) -> tuple[str, ...] | None:
        """This request's values for the variables, in order; ``None`` if one is unresolved."""
        out = []
        for variable, in_prefix in self.variables:
            value = resolve(variable, context, missing)
            if value is None or (in_prefix and ":" in value):
                return None
            out.append(value)
        return tuple(out)


@functools.lru_cache(maxsize=4096)
def _rendered(dynamic: _Dynamic, values: tuple[str, ...]) -> re.Pattern[str]:
    """The compiled pattern for one set of variable values (a principal seen before is free)."""
    substitutes = iter(values)
    out: list[Token] = []
    for step in dynamic.plan:
        if isinstance(step, tuple):
            _text(out, next(substitutes))
        elif isinstance(step, str):
            _text(out, step)
        else:
            out.append(step)
    return compiled(translate(tuple(out), arn=dynamic.arn))


@dataclass(frozen=True, slots=True)
class PatternSet:
    """Several wildcard templates matched as one: any match wins.

    The templates without variables are joined into one expression at parse
    time; those with variables are rendered per request. :meth:`match` is
    ``True`` (some pattern matches), ``False`` (none does) or ``None`` (none
    does, and at least one could not be resolved).
    """

    static: re.Pattern[str] | None
    dynamic: tuple[_Dynamic, ...]
    match_all: bool

    @classmethod
    def build(cls, templates: tuple[Template, ...], *, arn: bool) -> PatternSet:
        sources = []
        dynamic = []
        match_all = False
        for parts in templates:
            if parts == ("*",):
                match_all = True
            if has_variables(parts):
                steps = plan(parts, arn=arn)
                variables = tuple(step for step in steps if isinstance(step, tuple))
                dynamic.append(_Dynamic(steps, variables, arn))
            else:
                sources.append(regex_source(parts, arn=arn))
        static = compiled("|".join(f"(?:{s})" for s in sources)) if sources else None
        return cls(static, tuple(dynamic), match_all)

    def match(
        self, value: str, context: Mapping[str, ContextValue], missing: dict[str, str]
    ) -> bool | None:
        if self.match_all or (self.static is not None and self.static.fullmatch(value)):
            return True
        if not self.dynamic:
            return False
        dynamic, unresolved = self.rendered(context, missing)
        if any(pattern.fullmatch(value) for pattern in dynamic):
            return True
        return None if unresolved else False

    def rendered(
        self, context: Mapping[str, ContextValue], missing: dict[str, str]
    ) -> tuple[tuple[re.Pattern[str], ...], bool]:
        """The patterns with variables compiled for this request; and whether one is unresolved."""
        out = []
        unresolved = False
        for dynamic in self.dynamic:
            values = dynamic.values(context, missing)
            if values is None:
                unresolved = True
            else:
                out.append(_rendered(dynamic, values))
        return tuple(out), unresolved

    def match_with(self, value: str, dynamic: tuple[re.Pattern[str], ...]) -> bool:
        """:meth:`match` with the variable patterns already :meth:`rendered`."""
        if self.match_all or (self.static is not None and self.static.fullmatch(value)):
            return True
        return any(pattern.fullmatch(value) for pattern in dynamic)
