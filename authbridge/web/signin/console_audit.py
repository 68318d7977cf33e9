"""The console's audit view: the last lines of the JSON audit log, filtered.

Source: the file the server already appends its audit lines to (setting
``auditLog``), read from its end, at most :data:`TAIL_BYTES` and
:data:`MAX_RECORDS` lines per page. Why the file and not a table: the lines
are already written, complete and secret-free (:mod:`authbridge.audit`), by
every worker; a second copy in the store would double every TokenReview's
write cost on the hot path and need a retention job, while the file keeps its
own rotation (logrotate) and shippers. The cost is that the view shows what
this replica's file holds (each replica writes its own; a central log
system is the place for the fleet's history), and nothing when the log goes
to stdout, which the page says.

Shown: refused reviews (``tokenreview``/``verify`` denied), token-endpoint
refusals (``token_issued`` denied), sign-in events and admin changes
(``admin_call``); filters: principal (a substring of the ARN, caller or
unique id), cluster, outcome, and the last N minutes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from authbridge.errors import InputError

READ_ACTION: Final = "authbridge:ListAuditRecords"
TAIL_BYTES: Final = 1024 * 1024  # read at most this much of the file's end
MAX_RECORDS: Final = 200
MAX_FILTER: Final = 256
EVENTS: Final = ("tokenreview", "verify", "token_issued", "admin_call", "signin")
OUTCOMES: Final = ("allowed", "denied", "error")
MAX_MINUTES: Final = 60 * 24 * 366
DIGITS: Final = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit also takes "¹"


@dataclass(frozen=True)
class Filters:
    """What the view is narrowed to; every field optional."""

    principal: str = ""
    cluster: str = ""
    outcome: str = ""
    event: str = ""
    minutes: int | None = None
    now: float = 0.0

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, now: float) -> Filters:
        """The filters of a query string; InputError naming the field otherwise."""

        def text(name: str) -> str:
            value = query.get(name, "").strip()
            if len(value) > MAX_FILTER:
                raise InputError(name, f"must be at most {MAX_FILTER} characters")
            if any(not c.isprintable() for c in value):
                raise InputError(name, "must be printable text")
            return value

        outcome, event = text("outcome"), text("event")
        if outcome and outcome not in OUTCOMES:
            raise InputError("outcome", "must be one of " + ", ".join(OUTCOMES))
        if event and event not in EVENTS:
            raise InputError("event", "must be one of " + ", ".join(EVENTS))
        minutes_text = text("minutes")
        minutes = None
        if minutes_text:
            if not DIGITS.fullmatch(minutes_text) or not 0 < int(minutes_text) <= MAX_MINUTES:
                raise InputError("minutes", f"must be a whole number from 1 to {MAX_MINUTES}")
            minutes = int(minutes_text)
        return cls(text("principal"), text("cluster"), outcome, event, minutes, now)

    def keep(self, record: Mapping[str, Any]) -> bool:
        event = record.get("event")
        if event not in EVENTS or (self.event and event != self.event):
            return False
        if (
            event in ("tokenreview", "verify", "token_issued")
            and record.get("outcome") == "allowed"
        ):
            return False  # the view shows refusals of these, not the traffic
        if self.outcome and record.get("outcome") != self.outcome:
            return False
        if self.principal:
            who = " ".join(
                str(record.get(k) or "") for k in ("arn", "canonical_arn", "caller", "principal_id")
            )
            if self.principal.lower() not in who.lower():
                return False
        if self.cluster:
            clusters = record.get("clusters") or []
            audience = record.get("audience") or []
            if self.cluster not in [*clusters, *audience]:
                return False
        if self.minutes is not None:
            at = _time(record.get("time"))
            if at is None or at < self.now - self.minutes * 60:
                return False
        return True


def _time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return None


def tail_lines(path: Path, limit: int = TAIL_BYTES) -> list[str]:
    """The complete lines in the last ``limit`` bytes of ``path`` (a partial first one dropped)."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]
    return [line.decode("utf-8", "replace") for line in lines if line.strip()]


def recent(source: Path | None, filters: Filters) -> tuple[list[dict[str, Any]], str]:
    """The newest matching records (newest first) and a note about the source."""
    if source is None:
        return [], "The audit log goes to standard output (setting auditLog): nothing to show here."
    try:
        lines = tail_lines(source)
    except FileNotFoundError:
        return [], f"The audit log file {source} does not exist yet."
    except OSError as e:
        return [], f"The audit log file {source} cannot be read: {e.strerror}."
    found: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and filters.keep(record):
            found.append(record)
            if len(found) >= MAX_RECORDS:
                break
    note = (
        f"The newest {MAX_RECORDS} matching lines of the last {TAIL_BYTES // 1024} KiB of {source}."
    )
    return found, note
