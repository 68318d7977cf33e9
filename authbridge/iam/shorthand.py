"""The AWS CLI shorthand for one structure (``Key=k,Value=v``), parsed strictly and purely.

Used for ``--tags Key=team,Value=platform`` and ``--context-entries
ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip``.

Rules (the AWS CLI's, made strict so a typo is an error, never a guess):

* ``Field=value`` pairs are separated by commas; each field at most once, and
  only the fields the caller names;
* after the one list field (``list_field``), each comma-separated piece that
  does not start another field is one more value; or the values sit in
  ``[a,b]`` (``[]`` is no value);
* inside ``"…"`` or ``'…'`` text is literal (a comma, ``=``, ``[`` or the
  other quote), and ``\\`` escapes the next character, in or out of quotes;
* at most :data:`MAX_CHARS` characters, and no NUL.

Every refusal is an :class:`~authbridge.errors.InputError` for ``where``,
saying what to write instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from authbridge.errors import InputError

MAX_CHARS: Final = 64 * 1024

# Quoted and escaped text is carried between two NULs (refused in the input), so a
# comma, bracket or = inside it is never taken for syntax.
_LIT: Final = "\0"


def _show(text: str, limit: int = 48) -> str:
    text = text.replace(_LIT, "")
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)


def _quoted(text: str, i: int, where: str) -> tuple[str, int]:
    """The literal text of the quote starting at ``i``, and the index after it."""
    quote, end, n = text[i], i + 1, len(text)
    chunk: list[str] = []
    while end < n and text[end] != quote:
        if text[end] == "\\" and end + 1 < n:
            chunk.append(text[end + 1])
            end += 2
            continue
        chunk.append(text[end])
        end += 1
    if end >= n:
        raise InputError(where, f"has an unclosed {quote} quote", hint=f"close it with {quote}")
    return "".join(chunk), end + 1


def _pieces(text: str, where: str) -> list[str]:
    """``text`` split at top-level commas, quotes and escapes turned into literal runs.

    A ``[…]`` list stays one piece; :func:`_split_list` splits it.
    """
    out: list[str] = []
    buf: list[str] = []
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 == n:
                raise InputError(where, "ends in a lone \\", hint="write \\\\ for a backslash")
            buf.append(_LIT + text[i + 1] + _LIT)
            i += 2
            continue
        if c in "\"'":
            literal, i = _quoted(text, i, where)
            buf.append(_LIT + literal + _LIT)
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise InputError(where, "has a ] with no [ before it", hint="quote a ] in a value")
        if c == "," and depth == 0:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    if depth:
        raise InputError(where, "has a [ that is never closed", hint="close the list with ]")
    out.append("".join(buf))
    return out


def _literal(piece: str) -> str:
    return piece.replace(_LIT, "")


def _split_list(value: str, where: str) -> list[str]:
    """``[a,"b,c"]`` as its values; ``[]`` is none."""
    inner = value[1:-1]
    if not inner:
        return []
    parts: list[str] = []
    buf: list[str] = []
    literal = False
    for c in inner:
        if c == _LIT:
            literal = not literal
        elif c == "," and not literal:
            parts.append("".join(buf))
            buf = []
        elif c in "[]" and not literal:
            raise InputError(where, "lists may not be nested", hint="quote a value holding [ or ]")
        else:
            buf.append(c)
    parts.append("".join(buf))
    return parts


def parse_struct(
    text: str,
    fields: Sequence[str],
    *,
    list_field: str | None = None,
    where: str,
    example: str,
) -> dict[str, list[str]]:
    """The fields given, each with its values (one, except ``list_field``'s)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(where, "is empty", hint=f"e.g. {example}")
    if len(text) > MAX_CHARS:
        raise InputError(where, f"must be at most {MAX_CHARS} characters, got {len(text)}")
    if _LIT in text:
        raise InputError(where, "must not contain NUL characters")
    given: dict[str, list[str]] = {}
    current: str | None = None  # the list field, while its values continue
    for piece in _pieces(text, where):
        key, eq, value = piece.partition("=")
        name = key.strip()
        if eq and _LIT not in key and name in fields:
            if name in given:
                raise InputError(where, f"gives {name} twice")
            current = name if name == list_field else None
            if name == list_field and value.startswith("[") and value.endswith("]"):
                given[name] = _split_list(value, where)
                current = None  # a bracketed list is complete
            else:
                given[name] = [_literal(value)]
            continue
        if current is not None:
            given[current].append(_literal(piece))
            continue
        if eq and _LIT not in key:
            raise InputError(
                where,
                f"{_show(name)} is not one of its fields",
                hint="the fields are " + ", ".join(fields),
            )
        raise InputError(
            where,
            f"{_show(piece)} is not Field=value",
            hint=(f"only {list_field} takes several values; " if list_field else "")
            + "quote a value that holds a comma",
        )
    return given
