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

Patterns without variables are compiled to one regular expression when the
policy is parsed; patterns with variables are rendered per request and their
expressions kept in an LRU cache, so a request never compiles a regex for a
principal seen before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

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


def _glob_source(text: str, field: int | None) -> tuple[str, int | None]:
    """Regex source for wildcard ``text``; ``field`` counts ARN fields (``None``: no ARN)."""
    out: list[str] = []
    for char in text:
        inside = field is not None and field < _ARN_FIELDS - 1
        if char == "*":
            out.append("[^:]*" if inside else ".*")
        elif char == "?":
            out.append("[^:]" if inside else ".")
        else:
            if char == ":" and field is not None:
                field += 1
            out.append(re.escape(char))
    return "".join(out), field


def regex_source(
    parts: Template,
    *,
    arn: bool,
    context: Mapping[str, ContextValue] | None = None,
    missing: dict[str, str] | None = None,
) -> str | None:
    """Regex source of a wildcard template; ``None`` if a variable is unresolved.

    ``arn`` keeps wildcards (and substituted values) inside their ARN field:
    a value with a ``:`` substituted before the resource field matches nothing.
    """
    field: int | None = 0 if arn else None
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            source, field = _glob_source(part, field)
            out.append(source)
            continue
        if isinstance(part, Literal):
            value: str = part.text
        else:
            assert context is not None and missing is not None  # noqa: S101 - static parts only
            resolved = resolve(part, context, missing)
            if resolved is None:
                return None
            value = resolved
        if field is not None and field < _ARN_FIELDS - 1 and ":" in value:
            return None
        out.append(re.escape(value))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def compiled(source: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """One compiled expression per distinct source (rendered variables included)."""
    return re.compile(source, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True, slots=True)
class PatternSet:
    """Several wildcard templates matched as one: any match wins.

    The templates without variables are joined into one expression at parse
    time; those with variables are rendered per request. :meth:`match` is
    ``True`` (some pattern matches), ``False`` (none does) or ``None`` (none
    does, and at least one could not be resolved).
    """

    static: re.Pattern[str] | None
    dynamic: tuple[Template, ...]
    arn: bool
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
                dynamic.append(parts)
            else:
                source = regex_source(parts, arn=arn)
                assert source is not None  # noqa: S101 - no variables, always resolved
                sources.append(source)
        static = compiled("|".join(f"(?:{s})" for s in sources)) if sources else None
        return cls(static, tuple(dynamic), arn, match_all)

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
        for parts in self.dynamic:
            source = regex_source(parts, arn=self.arn, context=context, missing=missing)
            if source is None:
                unresolved = True
            else:
                out.append(compiled(source))
        return tuple(out), unresolved

    def match_with(self, value: str, dynamic: tuple[re.Pattern[str], ...]) -> bool:
        """:meth:`match` with the variable patterns already :meth:`rendered`."""
        if self.match_all or (self.static is not None and self.static.fullmatch(value)):
            return True
        return any(pattern.fullmatch(value) for pattern in dynamic)
