"""The audit log writer (authbridge.audit), without Flask.

Covers:
- a record has every field, in order, with null for what is not known, and
  the optional fields only when given;
- one JSON line per write, to a file created 0600 and appended to (never
  truncated), or to stdout (``-``, the default);
- lines of many threads and of several processes writing one file at once
  never interleave: every line parses, none is lost;
- the file moved away by logrotate is reopened; an unwritable destination
  fails at construction, a failing write is logged once and never raises;
- the scrub guard: a JWT-shaped value (three base64url segments, over 40
  characters) or an access-key-secret-shaped value (40 base64url characters)
  anywhere in a field (also inside a list) drops that field, keeps the line
  and names the field in ``redacted``; ordinary values (ARNs, ids, UUIDs,
  host names, short dotted names) pass;
- every line is also emitted on the ``authbridge.audit`` logger;
- ``redact``, the same rule for every other sink: each secret-shaped run of a
  text (a Hypothesis property over texts with secrets and JWTs spliced in)
  becomes ``[redacted]``, the rest of the message stays, and a text with
  nothing secret-shaped comes back unchanged; ``RedactingFilter`` on a
  handler redacts a record's formatted message, its traceback and its stack,
  whichever logger it came from;
- the ``auditLog`` setting: ``-`` is stdout, a relative path resolves
  against the config file's directory; AUTHBRIDGE_AUDIT_LOG too.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge import audit
from authbridge.iam.credentials import new_secret
from authbridge.settings import load_settings

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
    ".eyJzdWIiOiJhcm46YXdzOmlhbTo6MTExMTIyMjIzMzMzOnVzZXIvYWxpY2UifQ"
    ".MEUCIQDx3m2ZbT0kYq1c9jVw8hA6r0pXlWcJ7H5s2nQeT4uVbQIgYk3n"
)


def line(**fields: Any) -> audit.AuditLine:
    defaults: dict[str, Any] = {
        "request_id": "6f1c2a0e-2b6e-4d8a-9f4c-1d2e3f4a5b6c",
        "client": "192.0.2.7",
        "outcome": "allowed",
        "reason": "ok",
    }
    defaults.update(fields)
    return audit.record("tokenreview", now=1_795_000_000.5, **defaults)


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


# --------------------------------------------------------------------------- records


def test_a_record_has_every_field_in_order() -> None:
    record = line(arn="arn:aws:iam::111122223333:user/alice", groups=("devs",))
    assert list(record) == [
        "time",
        "event",
        "request_id",
        "client",
        "caller",
        "clusters",
        "audience",
        "arn",
        "canonical_arn",
        "principal_id",
        "session",
        "access_key_id",
        "username",
        "groups",
        "outcome",
        "reason",
    ]
    assert record["time"] == "2026-11-18T11:06:40.500Z"
    assert record["groups"] == ["devs"] and record["clusters"] == [] and record["audience"] is None


def test_optional_fields_only_when_given() -> None:
    record = line(grant="token_exchange", jti="abc", cache_hit=False, detail="", started=0.0)
    assert record["grant"] == "token_exchange" and record["jti"] == "abc"
    assert record["cache_hit"] is False
    assert "detail" not in record  # empty: left out
    assert isinstance(record["duration_ms"], float)
    assert "source_arn" not in line()


# --------------------------------------------------------------------------- destinations


def test_a_file_is_created_private_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"earlier": true}\n')
    path.chmod(0o600)
    log = audit.AuditLog(path)
    log.write(line())
    log.write(line(outcome="denied", reason="expired"))
    log.close()
    lines = read_lines(path)
    assert lines[0] == {"earlier": True}
    assert [r["reason"] for r in lines[1:]] == ["ok", "expired"]

    fresh = tmp_path / "new" / "audit.log"
    fresh.parent.mkdir()
    audit.AuditLog(fresh).close()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_stdout_is_the_default(capfd: pytest.CaptureFixture[str]) -> None:
    log = audit.AuditLog()
    assert log.to_stdout and audit.AuditLog("-").to_stdout
    log.write(line(reason="not_mapped", outcome="denied"))
    out = capfd.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    assert json.loads(out)["reason"] == "not_mapped"


def test_lines_of_threads_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = audit.AuditLog(path)
    groups = ["g" * 200] * 20  # long lines: several kilobytes each

    def writer(n: int) -> None:
        for i in range(50):
            log.write(line(request_id=f"{n}-{i}", groups=groups))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r["request_id"] for r in read_lines(path)]
    assert sorted(ids) == sorted(f"{n}-{i}" for n in range(8) for i in range(50))


def _append_from_process(path: str, n: int) -> None:
    log = audit.AuditLog(path)  # each process its own O_APPEND descriptor, as each worker
    for i in range(100):
        log.write(line(request_id=f"p{n}-{i}", groups=["x" * 500]))


def test_lines_of_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_from_process, args=(str(path), n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    ids = [r["request_id"] for r in read_lines(path)]
    assert sorted(ids) == sorted(f"p{n}-{i}" for n in range(3) for i in range(100))


def test_a_rotated_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = audit.AuditLog(path)
    log.write(line(reason="before"))
    path.rename(tmp_path / "audit.log.1")  # logrotate's default "create" mode
    log.write(line(reason="after"))
    assert [r["reason"] for r in read_lines(tmp_path / "audit.log.1")] == ["before"]
    assert [r["reason"] for r in read_lines(path)] == ["after"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unwritable_destination_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        audit.AuditLog(tmp_path / "missing-dir" / "audit.log")


def test_a_failing_write_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    log = audit.AuditLog(Path("/dev/full"))
    caplog.set_level(logging.ERROR, logger=audit.ERRORS_LOGGER)
    for _ in range(3):
        log.write(line())
    errors = [r for r in caplog.records if r.name == audit.ERRORS_LOGGER]
    assert len(errors) == 1 and "/dev/full" in errors[0].getMessage()
    log.close()


def test_every_line_is_also_on_the_audit_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=audit.LOGGER)
    log = audit.AuditLog(tmp_path / "audit.log")
    log.write(line(outcome="error", reason="store_unavailable"))
    log.write(line())
    records = [r for r in caplog.records if r.name == audit.LOGGER]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert [json.loads(r.getMessage()) for r in records] == read_lines(tmp_path / "audit.log")


# --------------------------------------------------------------------------- the scrub guard


@pytest.mark.parametrize(
    "value",
    [
        JWT,
        f"token {JWT} refused",
        "a" * 20 + "." + "b" * 20 + "." + "c",  # JWT-shaped, 43 characters
        new_secret(),
        f"secret={new_secret()}",
    ],
    # fixed ids: a fresh secret in the id would differ between xdist workers
    ids=["jwt", "jwt-in-text", "jwt-shaped", "secret", "secret-assigned"],
)
def test_the_guard_drops_token_and_secret_shapes(tmp_path: Path, value: str) -> None:
    path = tmp_path / "audit.log"
    audit.AuditLog(path).write(line(detail=value, username="alice", groups=["devs", value]))
    (written,) = read_lines(path)
    assert "detail" not in written and "groups" not in written
    assert written["redacted"] == ["groups", "detail"]
    assert written["username"] == "alice" and written["reason"] == "ok"  # the line is kept
    assert value not in path.read_text()


def test_the_guard_keeps_fixed_fields_parseable() -> None:
    clean = audit.scrub(line(reason=JWT))
    assert clean["reason"] == "redacted" and clean["redacted"] == ["reason"]


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:sts::111122223333:assumed-role/Admin/bob@example.com",
        "AROAABCDEFGHIJKLMNOPQ:a-session-name",
        "AKIAABCDEFGHIJKLMNOP",
        "6f1c2a0e-2b6e-4d8a-9f4c-1d2e3f4a5b6c",
        "oidc.eks.us-west-2.amazonaws.com",
        "token expired at 2026-11-22T00:15:00Z",
        "a.b.c",
        "x" * 39,
        "y" * 41,
    ],
)
def test_the_guard_keeps_ordinary_values(value: str) -> None:
    assert not audit.looks_secret(value)
    assert audit.scrub(line(detail=value))["detail"] == value


# --------------------------------------------------------------------------- the setting


def test_the_audit_log_setting(tmp_path: Path) -> None:
    assert load_settings({}, {}, None, cwd=tmp_path).audit_log is None
    assert load_settings({}, {"AUTHBRIDGE_AUDIT_LOG": "-"}, None, cwd=tmp_path).audit_log is None
    env = {"AUTHBRIDGE_AUDIT_LOG": "logs/audit.log"}
    assert load_settings({}, env, None, cwd=tmp_path).audit_log == tmp_path / "logs" / "audit.log"
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    conf = conf_dir / "authbridge.yaml"
    conf.write_text("auditLog: audit.jsonl\n")
    assert load_settings({}, {}, conf, cwd=tmp_path).audit_log == conf_dir / "audit.jsonl"
    assert load_settings({"audit_log": "-"}, {}, conf, cwd=tmp_path).audit_log is None


# -- request ids ---------------------------------------------------------------------------


def test_request_ids_are_version_4_uuids_unique_per_request_and_per_process() -> None:
    ids = [audit.new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122

    # A forked worker draws its own prefix: two workers never hand out the same id.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(audit.new_request_id)
    assert child[:24] != ids[0][:24]


def test_a_line_with_a_secret_anywhere_takes_the_precise_scrub() -> None:
    # The whole-line pre-check must flag every line scrub() would change, including
    # values whose JSON escapes touch the secret (\n before it, é after it).
    secret = "A" * 40
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2EifQ.c2lnbmF0dXJl"
    for value in (
        secret,
        f"x\n{secret}",
        f"{secret}\u00e9",
        f"see {jwt_like} here",
        f"\t{jwt_like}",
        ["ok", secret],
        {"nested": jwt_like},
    ):
        line = {"time": "t", "event": "verify", "outcome": "denied", "reason": "r", "detail": value}
        assert audit.scrub(line) != line  # scrub drops it ...
        assert audit._suspect(json.dumps(line, ensure_ascii=True, separators=(",", ":")))
    ordinary = {
        "time": "2026-11-22T00:15:00.123Z",
        "client": "127.0.0.1",
        "request_id": audit.new_request_id(),
        "arn": "arn:aws:iam::111122223333:user/team/alice",
        "jti": "uYv5Yp5_bPb-TmlO64-5oQ",
        "duration_ms": 0.689,
    }
    assert not audit._suspect(json.dumps(ordinary, separators=(",", ":")))


def test_the_whole_line_pre_check_never_misses_what_scrub_drops() -> None:
    # Seeded random lines: base64url runs of every length around 40, dots, escapes
    # (newlines, quotes, backslashes, non-ASCII) next to them. Whenever the precise
    # field-by-field scrub changes a line, the cheap pre-check must have flagged it.
    import random

    rng = random.Random(20261122)  # noqa: S311 - reproducible test data, not a secret
    token_chars = "ABCxyz019_-"
    others = ['"', "\\", "\n", "é", " ", ":", "/", ".", "\u2028", "\t"]
    flagged = 0
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.6:
                size = rng.choice((rng.randint(1, 60), rng.randint(36, 44)))
                parts.append("".join(rng.choice(token_chars) for _ in range(size)))
            else:
                parts.append(rng.choice(others))
        value = "".join(parts)
        line = {"time": "t", "event": "verify", "outcome": "denied", "reason": "r", "detail": value}
        text = json.dumps(line, ensure_ascii=True, separators=(",", ":"))
        if audit.scrub(line) != line:
            flagged += 1
            assert audit._suspect(text), value
    assert flagged > 100  # the table did exercise the dropping side


def test_utc_is_isoformat_with_milliseconds_whatever_the_order_of_calls() -> None:
    # utc() keeps the last formatted second: rounding up to the next second, going
    # back in time and negative times must still give what isoformat gives.
    import random
    from datetime import UTC, datetime

    def reference(ts: float) -> str:
        stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")

    rng = random.Random(7)  # noqa: S311 - reproducible test data, not a secret
    base = 1763771700.0
    times = [base + 0.5, base + 0.9999999, base + 0.5, -1.5, -0.0001, 0.0, base + 86400 * 31]
    times += [base + rng.uniform(0, 3) for _ in range(3000)]
    times += [rng.uniform(-1e9, 4e9) for _ in range(3000)]
    for ts in times:
        assert audit.utc(ts) == reference(ts), ts


# --------------------------------------------------------------------------- redact, the filter

_B64URL = "ABCxyz019_-"
_TEXT_PIECES = st.one_of(
    st.text(alphabet=_B64URL + ".", max_size=60),
    st.sampled_from(['"', "'", " ", ":", "/", "\n", "é", "[", "]", "?", "\\"]),
    st.builds(new_secret),  # a real access-key secret
    st.just(JWT),
    st.text(max_size=8),
)


@given(st.lists(_TEXT_PIECES, max_size=8).map("".join))
def test_redact_leaves_nothing_secret_shaped_and_changes_nothing_else(text: str) -> None:
    clean = audit.redact(text)
    assert not audit.looks_secret(clean)
    if not audit.looks_secret(text):
        assert clean == text


def test_redact_keeps_the_message_around_the_hole() -> None:
    secret = new_secret()
    message = f"role_arn: is not a role ARN: {secret!r} does not start with 'arn:'"
    assert audit.redact(message) == (
        "role_arn: is not a role ARN: '[redacted]' does not start with 'arn:'"
    )
    assert audit.redact(f"issued token for {JWT}.") == "issued token for [redacted]."
    session = f"arn:aws:sts::111122223333:assumed-role/Admin/{secret}"
    assert audit.redact(session) == "arn:aws:sts::111122223333:assumed-role/Admin/[redacted]"
    for ordinary in ("kid abc.def.ghi", "x" * 41, "token expired at 2026-11-22T00:15:00Z"):
        assert audit.redact(ordinary) == ordinary


def test_the_log_filter_redacts_message_traceback_and_stack_of_any_logger() -> None:
    import io

    secret = new_secret()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(audit.RedactingFilter())
    root = logging.getLogger("test_redacting_filter")
    root.propagate = False
    root.addHandler(handler)
    child = root.getChild("child")  # a handler filter sees records of child loggers too
    try:
        root.warning("issued token %s for %s", "jti-1", f"assumed-role/Admin/{secret}")
        child.info("subject %s", JWT)
        try:
            raise ValueError(f"role_arn: is not a role ARN: {secret!r}")
        except ValueError:
            child.exception("request failed")
        child.warning("with a stack", stack_info=True)
        child.warning("%s %s", "too few")  # arguments that do not fit: dropped, not printed raw
        child.warning("an ordinary line for %s", "arn:aws:iam::111122223333:user/alice")
    finally:
        root.removeHandler(handler)
    text = out.getvalue()
    assert secret not in text and JWT not in text and JWT[:30] not in text
    assert "issued token jti-1 for assumed-role/Admin/[redacted]" in text
    assert "ValueError: role_arn: is not a role ARN: '[redacted]'" in text
    assert "an ordinary line for arn:aws:iam::111122223333:user/alice" in text


def test_redact_and_the_scrub_take_linear_time_on_long_runs() -> None:
    # A caller controls how long a run of base64url characters gets (a header of
    # 16 KiB, a form value of 64 KiB); a backtracking pattern made that quadratic.
    # Megabyte runs in a subprocess with a minute to spare: linear takes well under
    # a second, quadratic hours.
    import subprocess
    import sys

    script = (
        "from authbridge import audit\n"
        "for text in ('a' * 2_000_000, ('a' * 50 + '.') * 40_000, 'a.' * 1_000_000):\n"
        "    audit.redact(text); audit.looks_secret(text); audit.scrub({'detail': text})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
