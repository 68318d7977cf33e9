"""Username and group templates, and the reserved prefixes they may not produce.

A template is text with ``{{Variable}}`` placeholders. The variables are those
of aws-iam-authenticator (``pkg/server/server.go`` ``renderTemplate``) that make
sense without EC2, plus ``{{PrincipalID}}``:

===================  ==========================================  =====================
variable             value                                       allowed in
===================  ==========================================  =====================
``AccountID``        the 12-digit account id                     every section
``SessionName``      role session name, ``@`` replaced by ``-``  mapRoles
``SessionNameRaw``   role session name as given                  mapRoles
``AccessKeyID``      the access key id the token was minted from mapUsers, mapGroups
``PrincipalID``      the unique id (``AIDA…``, ``AROA…:<session>``) every section
===================  ==========================================  =====================

``SessionName`` only exists for role sessions, and role sessions carry no
access key (AssumeRole by token exchange), so those two are refused where
they would always render empty.

Whitespace inside the braces is tolerated (``{{ SessionName }}``). Upstream does
not tolerate it: it replaces the exact text ``{{SessionName}}`` with
``strings.Replace``, so there ``{{ SessionName }}`` stays in the username
literally. Nobody means that, so authbridge renders it. Variable names are
case-sensitive, as upstream. A value is substituted once and never re-scanned,
so text inside a session name cannot inject a template.

Reserved prefixes (compared case-insensitively, stricter than Kubernetes):
``system:`` (Kubernetes' own users and groups, ``system:masters`` above all),
``eks:``, ``aws:``, ``amazon:``, ``iam:`` (the EKS access-entry rules) and
``authbridge-internal:``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Final

from authbridge.errors import InputError

__all__ = [
    "MAX_NAME_LENGTH",
    "RESERVED_PREFIXES",
    "SECTION_VARIABLES",
    "VARIABLES",
    "RenderError",
    "check_access_entry",
    "literal_prefix",
    "parts",
    "render",
    "reserved_prefix",
    "template_problems",
    "variables",
]

VARIABLES: Final = ("AccountID", "SessionName", "SessionNameRaw", "AccessKeyID", "PrincipalID")
SECTION_VARIABLES: Final[dict[str, frozenset[str]]] = {
    "mapRoles": frozenset({"AccountID", "SessionName", "SessionNameRaw", "PrincipalID"}),
    "mapUsers": frozenset({"AccountID", "AccessKeyID", "PrincipalID"}),
    "mapGroups": frozenset({"AccountID", "AccessKeyID", "PrincipalID"}),
}
RESERVED_PREFIXES: Final = ("system:", "eks:", "aws:", "amazon:", "iam:", "authbridge-internal:")
# Kubernetes object names and most label-ish strings stop at 253 characters.
MAX_NAME_LENGTH: Final = 253

_TEMPLATE = re.compile(r"\{\{[ \t]*([^{}]*?)[ \t]*\}\}")
_WHY_NOT: Final[dict[str, str]] = {
    "SessionName": "only role sessions have a session name; it is allowed in mapRoles only",
    "SessionNameRaw": "only role sessions have a session name; it is allowed in mapRoles only",
    "AccessKeyID": "role sessions carry no access key id; it is allowed in mapUsers and"
    " mapGroups only",
}
_UNSUPPORTED: Final[dict[str, str]] = {
    "EC2PrivateDNSName": "it names an EC2 worker node; authbridge does not authenticate EC2 nodes",
    "EC2PrivateDNSNameRaw": "it names an EC2 worker node; authbridge does not authenticate"
    " EC2 nodes",
    "EC2InstanceID": "it names an EC2 worker node; authbridge does not authenticate EC2 nodes",
    "SessionKey": "session tags do not exist in authbridge",
}


class RenderError(ValueError):
    """A template names a variable that has no value (only for mappings not built by parse)."""


def variables(text: str) -> list[str]:
    """The variable names used in ``text``, in order (unknown ones included)."""
    return [m.group(1) for m in _TEMPLATE.finditer(text)]


def _suggest(name: str) -> str:
    folded = {v.lower(): v for v in VARIABLES}
    if name.lower() in folded:
        return f"; did you mean {{{{{folded[name.lower()]}}}}}? (names are case-sensitive)"
    close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.6)
    return f"; did you mean {{{{{close[0]}}}}}?" if close else ""


def template_problems(text: str, section: str) -> list[str]:
    """What is wrong with the templates in ``text`` for an entry of ``section`` (may be [])."""
    problems: list[str] = []
    allowed = SECTION_VARIABLES.get(section, frozenset())
    for name in variables(text):
        shown = "{{" + name + "}}"
        first_word = name.split(" ", 1)[0]
        if name in allowed:
            continue
        if name in VARIABLES:
            problems.append(f"{shown} is not allowed in {section}: {_WHY_NOT[name]}")
        elif first_word in _UNSUPPORTED:
            problems.append(f"{ascii(shown)[1:-1]} is not supported: {_UNSUPPORTED[first_word]}")
        else:
            known = ", ".join("{{" + v + "}}" for v in sorted(allowed, key=VARIABLES.index))
            problems.append(
                f"unknown template variable {ascii(shown)[1:-1]}"
                + (_suggest(name) or f" ({section} knows {known})")
            )
    rest = _TEMPLATE.sub("", text)
    if "{{" in rest or "}}" in rest:
        problems.append("has '{{' or '}}' that is not part of a {{Variable}} template")
    return problems


def parts(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(literal, False)`` and ``(variable name, True)`` pieces, in order."""
    out: list[tuple[str, bool]] = []
    end = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > end:
            out.append((text[end : match.start()], False))
        out.append((match.group(1), True))
        end = match.end()
    if end < len(text):
        out.append((text[end:], False))
    return out


def literal_prefix(text: str) -> str:
    """The text before the first template: what every rendering starts with."""
    match = _TEMPLATE.search(text)
    return text if match is None else text[: match.start()]


def reserved_prefix(text: str) -> str | None:
    """The reserved prefix ``text`` starts with (case-insensitively), or None."""
    lowered = text.lower()
    return next((p for p in RESERVED_PREFIXES if lowered.startswith(p)), None)


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{{Variable}}`` replaced by its value (substituted once)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise RenderError(f"template variable {{{{{match.group(1)}}}}} has no value")
        return value

    return _TEMPLATE.sub(one, text)


def check_access_entry(kind: str, username: str | None, groups: tuple[str, ...]) -> None:
    """An access entry's username and groups by a mapping entry's rules, without the opt-out.

    ``kind`` is ``user`` or ``role`` (a role's entry may use ``{{SessionName}}``,
    as ``mapRoles``). As in EKS, an access entry can never use a reserved prefix.
    Raises ``InputError`` naming ``username`` or ``kubernetesGroups[i]``.
    """
    section = "mapRoles" if kind == "role" else "mapUsers"
    named = [("username", username)] if username is not None else []
    named += [(f"kubernetesGroups[{i}]", g) for i, g in enumerate(groups)]
    for field, text in named:
        if not text or len(text) > MAX_NAME_LENGTH:
            raise InputError(field, f"must be 1 to {MAX_NAME_LENGTH} characters")
        if not text.isprintable():
            bad = next(c for c in text if not c.isprintable())
            raise InputError(field, f"has a character that is not printable ({ascii(bad)})")
        problems = template_problems(text, section)
        if problems:
            raise InputError(field, problems[0])
        prefix = reserved_prefix(literal_prefix(text))
        if prefix is not None:
            raise InputError(
                field,
                f'uses the reserved prefix "{prefix}"; access entries may not',
                hint="choose a name outside system:, eks:, aws:, amazon:, iam: and"
                " authbridge-internal:",
            )
