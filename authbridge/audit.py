"""The audit log: one JSON line per token issued and per authentication decision.

Flask-free: the web layer builds a record with :func:`record` from values it
has already decided on (a verified identity, a fixed reason label) and hands
it to the app's :class:`AuditLog`, which owns the destination.

A line (every key is always there, ``null`` when not known)::

    time           2026-11-22T00:15:00.123Z (UTC, milliseconds)
    event          token_issued | tokenreview | verify | introspect | revoke |
                   device_authorization | admin_call
    request_id     a UUID per request
    client         the peer address, or behind trustedProxies the client they forwarded for
    caller         who called: the webhook's client-certificate CN, the access key
                   id a client authenticated with at introspection / revocation, or
                   the ARN of an admin API caller
    clusters       the clusters the caller speaks for / asked about
    audience       the token's audiences among the served clusters
    arn            the principal ARN (a session ARN for role sessions)
    canonical_arn  the user or role ARN
    principal_id   the unique id (AIDA…, or AROA…:session)
    session        the role session name
    access_key_id  the access key (public; never its secret)
    username       the Kubernetes username, groups its groups
    outcome        allowed | denied | error
    reason         ok, a token error code (expired, bad_signature, …), not_mapped, an
                   RFC 6749 error code (invalid_client, …) or a request-level reason

and, when they apply, ``grant`` (client_credentials | token_exchange |
device_code | authorization_code | refresh_token), ``sid`` (the sign-in
session a token was issued from, or a revocation ended: not a credential),
``source_arn`` (the user a role session was exchanged from), ``jti`` (a
token's id: not a credential), ``detail`` (the reason in words), ``cache_hit``,
``duration_ms``, ``redacted`` (below), and for the admin API (``admin_call``)
``action`` (the IAM action string, ``iam:CreateUser``), ``targets`` (the ARNs
it acted on) and ``source_identity`` (the unique id the caller's session
started from).

Never a token or a secret. Records are built only from verified identities,
fixed labels and error messages that authbridge keeps free of secrets; and as
defence in depth :func:`scrub` drops any string field that looks like a JWT
(three or more base64url segments joined by dots, over 40 characters) or an access-key
secret (exactly 40 base64url characters), keeps the line, and names the
dropped fields in ``redacted``.

Destination: ``-`` is stdout; anything else is a file, created 0600 and
opened with ``O_APPEND``. Every line goes out in one ``write(2)``, so lines
of several threads and several gunicorn workers never interleave (on a
local file system O_APPEND writes are atomic with respect to each other; a
pipe keeps writes up to PIPE_BUF, 4096 bytes, whole). Before each write the
path is checked (as :class:`logging.handlers.WatchedFileHandler` does) and
reopened when logrotate moved it away. A failed write is logged once per
distinct error and never fails the request.

The same definition of "secret-shaped" keeps such values out of every other
sink: :func:`redact` replaces each secret-shaped run in a text with
``[redacted]``, and :class:`RedactingFilter` applies it to every record a
logging handler emits (message, traceback and stack). ``authbridge serve``
puts that filter on the application log's handlers and on gunicorn's error
log; the web layer applies :func:`redact` to every error message it answers
with. So a secret pasted into the wrong field (``role_arn``,
``role_session_name``, ``client_id``, a claim of a forged token) is quoted
back and logged nowhere, whichever message happens to mention it.

Every line is also emitted, as its JSON text, on the ``authbridge.audit``
logger (WARNING for ``outcome: error``, else INFO) for in-process observers;
``authbridge serve`` stops that logger from propagating so the line is not
printed twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict

__all__ = [
    "STDOUT",
    "AuditLine",
    "AuditLog",
    "Event",
    "Outcome",
    "REDACTED",
    "RedactingFilter",
    "looks_secret",
    "new_request_id",
    "record",
    "redact",
    "scrub",
]

EXTENSION: Final = "authbridge.audit"  # where create_app keeps the app's AuditLog
STDOUT: Final = "-"
LOGGER: Final = "authbridge.audit"  # every line, as its JSON text
# Problems writing the log: not a child of LOGGER, which `serve` keeps from propagating.
ERRORS_LOGGER: Final = "authbridge.auditlog"

Event = Literal[
    "token_issued",
    "tokenreview",
    "verify",
    "introspect",
    "revoke",
    "device_authorization",  # POST /oauth2/device_authorization (RFC 8628 §3.1)
    "admin_call",
    "admin_bootstrap",  # the first start of a new deployment made the first administrator
]
Outcome = Literal["allowed", "denied", "error"]

# A compact JWS/JWT: three base64url runs joined by dots (RFC 7515 §7.1), or more (a JWE
# has five). Anything that holds such a run over 40 characters long is refused, wherever
# it appears in a value.
# Linear in the length, whatever the text: a match starts only where a run starts (the
# lookbehind) and its segments never give characters back (possessive), so a long run
# without dots is one failed attempt, not one per character (that was quadratic: a
# 16 KiB header took seconds).
_JWT_SHAPE: Final = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]++(?:\.[A-Za-z0-9_-]++){2,}")
_JWT_MIN_CHARS: Final = 41
# An access-key secret: 30 random bytes as base64url, exactly 40 characters
# (authbridge.iam.credentials.new_secret). Sign-in secrets (43 characters) are not
# matched: a key id (an RFC 7638 thumbprint) has that shape too, and is no secret.
_SECRET_SHAPE: Final = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40}(?![A-Za-z0-9_-])")
REDACTED: Final = "[redacted]"  # what stands in a text where a secret-shaped value was


# For _suspect: every base64url character and the dot become "a", everything else a space.
_RUNS: Final = {
    c: ("a" if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "_-.") else " ")
    for c in range(128)
}
_LONG_RUN: Final = "a" * 40


def looks_secret(value: str) -> bool:
    """Whether ``value`` holds something shaped like a JWT or an access-key secret."""
    if any(len(m.group()) >= _JWT_MIN_CHARS for m in _JWT_SHAPE.finditer(value)):
        return True
    return _SECRET_SHAPE.search(value) is not None


def _suspect(text: str) -> bool:
    """Whether the serialized line ``text`` may hold something :func:`scrub` would drop.

    True when ``text`` has a run of 40 or more base64url characters and dots:
    a secret (40 base64url characters) and a JWT (over 40, with two dots) both
    make one. JSON keeps those characters as they are, and an escape (``\\n``,
    ``\\u00e9``) starts with a backslash, so it can only lengthen a run, never
    split one: a superset of :func:`looks_secret` over every key and string of
    the line. Lines it clears skip the field-by-field scrub; the few it flags
    (a long host name in a detail, say) get it. Two C-speed string operations.
    """
    return _LONG_RUN in text.translate(_RUNS)


def _unless_short(match: re.Match[str]) -> str:
    run = match.group()
    return REDACTED if len(run) >= _JWT_MIN_CHARS else run


def redact(text: str) -> str:
    """``text`` with every secret-shaped run (:func:`looks_secret`) replaced by ``[redacted]``.

    For messages and log lines, which stay readable around the hole:
    ``role_arn: is not a role ARN: '[redacted]' does not start with 'arn:'``.
    Afterwards :func:`looks_secret` is false for the text; a text it is false for
    comes back unchanged.
    """
    if not _suspect(text):  # nearly every text: two C-speed string operations
        return text
    return _SECRET_SHAPE.sub(REDACTED, _JWT_SHAPE.sub(_unless_short, text))


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, traceback and stack go out :func:`redact`-ed.

    On a handler (not a logger), so it sees every record the handler writes,
    whichever logger it came from. The record is changed in place: the
    message is formatted once here (``args`` dropped) and the traceback
    formatted into ``exc_text``, which formatters then use as it is.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - arguments that do not fit the format string
            # logging would print them raw from handleError: drop them instead.
            message = f"{record.msg} (log arguments dropped: they do not fit the message)"
            record.msg, record.args = message, None
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _tainted(value: object) -> bool:
    if isinstance(value, str):
        return looks_secret(value)
    if isinstance(value, Mapping):
        return any(_tainted(k) or _tainted(v) for k, v in value.items())
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return any(_tainted(v) for v in value)
    return False


def scrub(line: Mapping[str, Any]) -> dict[str, Any]:
    """``line`` without the fields that look like a token or a secret, which ``redacted`` names.

    Fixed fields (``time``, ``event``, ``outcome``, ``reason``) are never
    dropped, only replaced by ``"redacted"``: the line stays parseable.
    """
    clean: dict[str, Any] = {}
    redacted: list[str] = []
    for key, value in line.items():
        if key == "redacted":
            continue
        if _tainted(key) or _tainted(value):
            redacted.append(key if not looks_secret(key) else "?")
            if key in ("time", "event", "outcome", "reason"):
                clean[key] = "redacted"
            continue
        clean[key] = value
    if redacted:
        clean["redacted"] = redacted
    return clean


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    r = secrets.token_hex(10)
    variant = "89ab"[int(r[15], 16) & 3]  # RFC 9562 variant bits, version 4
    _ID_PREFIX = f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{variant}{r[16:19]}-"
    _ID_COUNTER = itertools.count(secrets.randbelow(1 << 32))


_ID_PREFIX = ""
_ID_COUNTER = itertools.count()
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # every gunicorn worker has its own


def new_request_id() -> str:
    """A request id in the UUID format, unique per process and request.

    A random prefix drawn once per process (again after a fork) and a counter:
    unique like a random UUID, without reading the kernel's random source and
    formatting 16 bytes for every request. Not a secret and not unpredictable;
    it only ties a line to a request.
    """
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


_SECOND: list[tuple[Any, str]] = [(None, "")]  # the last whole second, formatted (one slot)


def utc(ts: float) -> str:
    """``2026-11-22T00:15:00.123Z`` (milliseconds truncated, as ``isoformat`` does)."""
    m = datetime.fromtimestamp(ts, UTC)
    second = (m.year, m.month, m.day, m.hour, m.minute, m.second)
    cached_second, text = _SECOND[0]  # one read: threads may replace the slot meanwhile
    if cached_second != second:
        text = m.strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND[0] = (second, text)
    return f"{text}.{m.microsecond // 1000:03d}Z"


class AuditLine(TypedDict):
    """One line of the audit log (see the module docstring for each field)."""

    time: str
    event: Event
    request_id: str
    client: str | None
    caller: str | None
    clusters: list[str]
    audience: list[str] | None
    arn: str | None
    canonical_arn: str | None
    principal_id: str | None
    session: str | None
    access_key_id: str | None
    username: str | None
    groups: list[str] | None
    outcome: Outcome
    reason: str
    grant: NotRequired[str]
    source_arn: NotRequired[str]
    jti: NotRequired[str]
    detail: NotRequired[str]
    cache_hit: NotRequired[bool]
    duration_ms: NotRequired[float]
    action: NotRequired[str]
    targets: NotRequired[list[str]]
    source_identity: NotRequired[str]
    sid: NotRequired[str]


def record(
    event: Event,
    *,
    request_id: str,
    client: str | None,
    outcome: Outcome,
    reason: str,
    now: float | None = None,
    caller: str | None = None,
    clusters: Sequence[str] = (),
    audience: Sequence[str] | None = None,
    arn: str | None = None,
    canonical_arn: str | None = None,
    principal_id: str | None = None,
    session: str | None = None,
    access_key_id: str | None = None,
    username: str | None = None,
    groups: Sequence[str] | None = None,
    grant: str | None = None,
    source_arn: str | None = None,
    jti: str | None = None,
    detail: str | None = None,
    cache_hit: bool | None = None,
    started: float | None = None,
    action: str | None = None,
    targets: Sequence[str] | None = None,
    source_identity: str | None = None,
    sid: str | None = None,
) -> AuditLine:
    """One audit line; ``started`` (a ``time.perf_counter()``) gives ``duration_ms``."""
    line: AuditLine = {
        "time": utc(time.time() if now is None else now),
        "event": event,
        "request_id": request_id,
        "client": client,
        "caller": caller,
        "clusters": list(clusters),
        "audience": list(audience) if audience is not None else None,
        "arn": arn,
        "canonical_arn": canonical_arn,
        "principal_id": principal_id,
        "session": session,
        "access_key_id": access_key_id,
        "username": username,
        "groups": list(groups) if groups is not None else None,
        "outcome": outcome,
        "reason": reason,
    }
    if grant is not None:
        line["grant"] = grant
    if source_arn is not None:
        line["source_arn"] = source_arn
    if jti is not None:
        line["jti"] = jti
    if detail:
        line["detail"] = detail
    if cache_hit is not None:
        line["cache_hit"] = cache_hit
    if action is not None:
        line["action"] = action
    if targets is not None:
        line["targets"] = list(targets)
    if source_identity is not None:
        line["source_identity"] = source_identity
    if sid is not None:
        line["sid"] = sid
    if started is not None:
        line["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return line


def _observed(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` would reach a handler that does something with it.

    ``serve`` gives the audit logger only a NullHandler (the line is written
    by :class:`AuditLog` itself): a LogRecord per request for nobody is skipped.
    """
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    found = False
    while current is not None:
        for handler in current.handlers:
            found = True
            if not isinstance(handler, logging.NullHandler) and level >= handler.level:
                return True
        if not current.propagate:
            break
        current = current.parent
    # No handler anywhere: logging's lastResort prints WARNING and above on stderr.
    last = logging.lastResort
    return not found and last is not None and level >= last.level


class AuditLog:
    """Appends audit lines to stdout or a file (see the module docstring)."""

    def __init__(self, destination: Path | str | None = STDOUT) -> None:
        self.destination = STDOUT if destination in (None, STDOUT) else Path(str(destination))
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._stat: tuple[int, int] | None = None
        self._last_error: str | None = None
        self._log = logging.getLogger(LOGGER)
        if isinstance(self.destination, Path):
            with self._lock:
                self._open(self.destination)  # fails now, not at the first line

    def __repr__(self) -> str:
        return f"AuditLog({str(self.destination)!r})"

    @property
    def to_stdout(self) -> bool:
        return self.destination == STDOUT

    def _open(self, path: Path) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        st = os.fstat(fd)
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._stat = fd, (st.st_dev, st.st_ino)
        return fd

    def _file_fd(self, path: Path) -> int:
        """The open file, reopened when the path now names another file (log rotation)."""
        try:
            st = os.stat(path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._fd is None or current != self._stat:
            return self._open(path)
        return self._fd

    def write(self, line: Mapping[str, Any]) -> None:
        """Scrub ``line``, then write it as one JSON line in one ``write(2)``."""
        text = json.dumps(line, ensure_ascii=True, separators=(",", ":"))
        outcome = line.get("outcome")
        if "redacted" in line or _suspect(text):
            clean = scrub(line)  # the precise check, field by field
            text = json.dumps(clean, ensure_ascii=True, separators=(",", ":"))
            outcome = clean.get("outcome")
        level = logging.WARNING if outcome == "error" else logging.INFO
        if _observed(self._log, level):
            self._log.log(level, text)
        data = (text + "\n").encode("ascii")
        with self._lock:
            try:
                if isinstance(self.destination, Path):
                    fd = self._file_fd(self.destination)
                else:
                    fd = 1  # stdout, whatever sys.stdout is now
                written = os.write(fd, data)
                while written < len(data):  # a pipe or signal cut it short: rare
                    written += os.write(fd, data[written:])
            except OSError as e:
                message = f"cannot write the audit log {self.destination}: {e.strerror or e}"
                if message != self._last_error:
                    self._last_error = message
                    logging.getLogger(ERRORS_LOGGER).error("%s", message)
            else:
                self._last_error = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # already closed; nothing to release
                pass
