"""Text rendering for humans: aligned ``Field  value`` blocks and tables, one entity per line.

JSON output needs nothing from here: it is the entities' ``to_aws()`` shapes as
they are. Every value shown as text goes through :func:`clean`, so a tag or a
description holding a newline or a terminal escape cannot break a line or
drive the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MISSING = "-"


def clean(value: Any) -> str:
    """One printable line: control and other non-printable characters are escaped."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` as a single printable line of at most ``limit`` characters (for stderr)."""
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: Any) -> list[str]:
    """A field's value as display lines (a list shows one item per line)."""
    if isinstance(value, list):
        if not value:
            return [MISSING]
        if all(isinstance(v, Mapping) and set(v) == {"Key", "Value"} for v in value):
            return [f"{clean(v['Key'])}={clean(v['Value'])}" for v in value]
        return [clean(v) for v in value]
    return [clean(value)]


def fields(doc: Mapping[str, Any], order: Sequence[str] | None = None) -> str:
    """An aligned block: ``Name  value``, list values continued on following lines."""
    keys = list(order) if order is not None else list(doc)
    width = max((len(k) for k in keys), default=0)
    lines: list[str] = []
    for key in keys:
        values = _show(doc.get(key))
        lines.append(f"{key:<{width}}  {values[0]}")
        lines.extend(f"{'':<{width}}  {v}" for v in values[1:])
    return "\n".join(lines)


def table(docs: Iterable[Mapping[str, Any]], columns: Sequence[str], empty: str) -> str:
    """One row per entity under a header row of field names; ``empty`` when there are none."""
    rows = [[", ".join(_show(d.get(c))) for c in columns] for d in docs]
    if not rows:
        return empty
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    out = [list(columns), *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in out
    )


USER_FIELDS = ("UserName", "Path", "UserId", "Arn", "Enabled", "CreateDate", "Tags")
USER_COLUMNS = ("UserName", "Path", "UserId", "Enabled", "CreateDate", "Arn")
GROUP_FIELDS = ("GroupName", "Path", "GroupId", "Arn", "CreateDate")
GROUP_COLUMNS = ("GroupName", "Path", "GroupId", "CreateDate", "Arn")
ROLE_FIELDS = (
    "RoleName",
    "Path",
    "RoleId",
    "Arn",
    "MaxSessionDuration",
    "Description",
    "CreateDate",
    "Trust",
)
ROLE_COLUMNS = ("RoleName", "Path", "RoleId", "MaxSessionDuration", "CreateDate", "Arn")
ACCESS_KEY_COLUMNS = ("AccessKeyId", "Status", "UserName", "CreateDate", "LastUsedDate")
ACCOUNT_COLUMNS = ("AccountId", "AccountAlias", "CreateDate")
KEY_FIELDS = ("kid", "alg", "state", "created", "activates", "retires", "retired")
KEY_COLUMNS = ("kid", "alg", "state", "created", "activates", "retires")
