"""Tests for authbridge.mapping.holder: hot reload that never loses the last good mapping.

Covers, with a fake clock (no sleeping):
* a missing file at start: an empty mapping, not ready, the reason in last_error;
* the file is only looked at every check_interval; a change is picked up then;
* a changed file swaps in (version + 1, loaded_at set); the same bytes again
  (touch) do not bump the version; an atomic rename is noticed;
* an invalid file keeps the last good mapping (same object), sets last_error
  with every problem, logs one warning (not one per check), stays ready;
  fixing it swaps in and clears the error;
* a deleted file keeps the last good mapping and says so; re-creating it loads it;
* an invalid file at start: empty and not ready; an oversized file is invalid;
* a hostile scalar (an invalid date, a leap second) at start is an invalid
  file, and on reload keeps the last good mapping with one warning; a bug
  in the checks (any other exception) keeps it too, logged with its traceback;
* status() for /readyz; refresh();
* thread-safety smoke: readers in four threads while the file flips
  between two mappings see only whole mappings and a version that never goes
  back; a reader never waits for a reload in progress.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from authbridge.mapping import MappingHolder, yamlsafe

ROLE = "arn:aws:iam::111122223333:role/Admin"
GOOD_A = f"mapRoles:\n  - rolearn: {ROLE}\n    username: a\n"
GOOD_B = f"mapRoles:\n  - rolearn: {ROLE}\n    username: b\n    groups: [g]\n"
BAD = "mapRoles:\n  - rolearn: nope\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


_mtime = [1_700_000_000_000_000_000]


def write(path: Path, text: str | bytes) -> None:
    """Replace ``path`` atomically, with a fresh mtime (so every write is a change)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode() if isinstance(text, str) else text)
    _mtime[0] += 1_000_000_000
    os.utime(tmp, ns=(_mtime[0], _mtime[0]))
    os.replace(tmp, path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "mapping.yaml"


def holder(path: Path, clock: Clock, **kw: Any) -> MappingHolder:
    return MappingHolder(
        path,
        check_interval=1.0,
        clock=clock,
        wall_clock=lambda: 1_234.5,
        log=logging.getLogger("test.mapping"),
        **kw,
    )


def test_missing_file_at_start_is_empty_and_not_ready(path: Path, clock: Clock) -> None:
    h = holder(path, clock)
    m = h.current()
    assert (m.source, m.digest, m.cluster_id, m.map_roles) == (str(path), "", None, ())
    assert not h.ready and h.version == 0 and h.loaded_at is None
    assert h.last_error == f"mapping file {path} does not exist; every identity is refused"
    write(path, GOOD_A)
    assert h.current().digest == ""  # not looked at again before check_interval
    clock.tick(0.5)
    assert h.current().digest == ""
    clock.tick(0.5)
    m = h.current()
    assert m.map_roles[0].username == "a" and m.digest == yamlsafe.digest(GOOD_A)
    assert h.ready and h.version == 1 and h.loaded_at == 1_234.5 and h.last_error is None


def test_change_swaps_and_same_bytes_do_not(path: Path, clock: Clock) -> None:
    write(path, GOOD_A)
    h = holder(path, clock)
    first = h.current()
    assert h.version == 1
    write(path, GOOD_A)  # new inode and mtime, same bytes
    clock.tick()
    assert h.current() is first and h.version == 1
    write(path, GOOD_B)
    clock.tick()
    second = h.current()
    assert second.map_roles[0].groups == ("g",) and h.version == 2
    # Changed in place, same size and mtime: the inode stays, but size differs here.
    path.write_text(GOOD_A)
    clock.tick()
    assert h.current().map_roles[0].username == "a" and h.version == 3


def test_invalid_file_keeps_the_last_good_mapping(
    path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    write(path, GOOD_A)
    h = holder(path, clock)
    good = h.current()
    caplog.set_level(logging.WARNING, logger="test.mapping")
    write(path, BAD)
    for _ in range(5):
        clock.tick()
        assert h.current() is good
    assert h.ready and h.version == 1
    assert h.last_error == (
        f"mapping file {path} is invalid (2 problems); still serving the last good mapping:"
        f" {path}: mapRoles[0].rolearn: is not a valid role ARN: 'nope' does not start with"
        f" 'arn:'; {path}: mapRoles[0].username: is required: the Kubernetes username"
        " (a template)"
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [h.last_error]
    write(path, GOOD_B)
    clock.tick()
    assert h.current().map_roles[0].username == "b"
    assert h.version == 2 and h.last_error is None


def test_deleted_file_never_empties_the_mapping(path: Path, clock: Clock) -> None:
    write(path, GOOD_A)
    h = holder(path, clock)
    good = h.current()
    path.unlink()
    clock.tick()
    assert h.current() is good and h.ready and h.version == 1
    assert h.last_error == f"mapping file {path} was deleted; still serving the last good mapping"
    write(path, GOOD_B)
    clock.tick()
    assert h.current().map_roles[0].username == "b" and h.last_error is None


def test_invalid_at_start_and_oversized(path: Path, clock: Clock) -> None:
    write(path, BAD)
    h = holder(path, clock)
    assert not h.ready and h.current().digest == ""
    assert h.last_error is not None
    assert h.last_error.startswith(f"mapping file {path} is invalid (2 problems): {path}: ")
    write(path, b"{}\n" + b"#" * (yamlsafe.MAX_BYTES + 1))
    clock.tick()
    h.current()
    assert h.last_error == (
        f"mapping file {path} is invalid (1 problem): {path}: is"
        f" {yamlsafe.MAX_BYTES + 4} bytes or more; the limit is 1048576 (1 MiB)"
    )
    write(path, "{}")
    clock.tick()
    assert h.current().digest == yamlsafe.digest("{}") and h.ready


def test_unreadable_file(path: Path, clock: Clock) -> None:
    path.mkdir()  # a directory where the file should be: stat works, reading does not
    h = holder(path, clock)
    assert not h.ready
    assert h.last_error is not None and h.last_error.startswith(
        f"cannot read mapping file {path}: "
    )
    path.rmdir()
    write(path, GOOD_A)
    clock.tick()
    assert h.current().map_roles and h.ready


def test_status_and_refresh(path: Path, clock: Clock) -> None:
    h = holder(path, clock)
    assert h.status() == {
        "file": str(path),
        "ready": False,
        "version": 0,
        "digest": "",
        "loadedAt": None,
        "error": f"mapping file {path} does not exist; every identity is refused",
    }
    write(path, GOOD_A)
    assert h.refresh() is True  # no waiting for check_interval
    assert h.refresh() is False
    assert h.status() == {
        "file": str(path),
        "ready": True,
        "version": 1,
        "digest": yamlsafe.digest(GOOD_A),
        "loadedAt": 1_234.5,
        "error": None,
    }


def test_custom_partitions(path: Path, clock: Clock) -> None:
    write(path, "mapUsers:\n  - userarn: arn:corp:iam::111122223333:user/a\n    username: a\n")
    assert not holder(path, clock).ready
    assert holder(path, clock, partitions={"corp"}).ready


def test_readers_in_threads_see_whole_mappings_only(path: Path) -> None:
    write(path, GOOD_A)
    h = MappingHolder(path, check_interval=0.0)
    digests = {yamlsafe.digest(GOOD_A), yamlsafe.digest(GOOD_B)}
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        last_version = 0
        try:
            while not stop.is_set():
                m = h.current()
                assert m.digest in digests
                assert m.map_roles[0].username == (
                    "a" if m.digest == yamlsafe.digest(GOOD_A) else "b"
                )
                version = h.version
                assert version >= last_version
                last_version = version
                time.sleep(0)  # let the writer run
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            write(path, GOOD_B if i % 2 == 0 else GOOD_A)
            h.current()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[0]
    assert h.ready and h.last_error is None and h.version >= 2


def test_a_reader_never_waits_for_a_reload(path: Path, clock: Clock) -> None:
    write(path, GOOD_A)
    h = holder(path, clock)
    good = h.current()
    write(path, GOOD_B)
    clock.tick()
    got: list[object] = []
    with h._lock:  # a reload in progress elsewhere
        t = threading.Thread(target=lambda: got.append(h.current()))
        t.start()
        t.join(timeout=5)
        assert got == [good]
    assert h.current().map_roles[0].username == "b"


HOSTILE_AT_START = "mapAccounts: [2001-02-30]\n"
HOSTILE_ON_RELOAD = f"mapRoles:\n  - rolearn: {ROLE}\n    username: 9999-12-31 23:59:60\n"


def test_a_hostile_scalar_at_start_is_an_ordinary_invalid_file(path: Path, clock: Clock) -> None:
    write(path, HOSTILE_AT_START)
    h = holder(path, clock)  # used to raise ValueError out of the constructor
    assert not h.ready and h.current().digest == ""
    assert h.last_error == (
        f"mapping file {path} is invalid (1 problem): {path}: mapAccounts[0]: is a date"
        " (2001-02-30, line 1), not a 12-digit account id"
    )


def test_a_hostile_scalar_on_reload_keeps_the_last_good_mapping(
    path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    write(path, GOOD_A)
    h = holder(path, clock)
    good = h.current()
    caplog.set_level(logging.WARNING, logger="test.mapping")
    write(path, HOSTILE_ON_RELOAD)
    clock.tick()
    assert h.current() is good and h.ready and h.version == 1
    assert h.last_error == (
        f"mapping file {path} is invalid (1 problem); still serving the last good mapping:"
        f" {path}: mapRoles[0].username: must be a string, got a timestamp"
        " (9999-12-31 23:59:60, line 3); quote it to make it a string"
    )
    assert [r.getMessage() for r in caplog.records] == [h.last_error]


def test_a_bug_in_the_checks_keeps_the_last_good_mapping(
    path: Path, clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's own net: an exception that is not MappingError never leaves current()."""
    from authbridge.mapping import holder as holder_module

    write(path, GOOD_A)
    h = holder(path, clock)
    good = h.current()

    def broken(*args: Any, **kw: Any) -> Any:
        raise ValueError("unforeseen")

    monkeypatch.setattr(holder_module, "parse_mapping", broken)
    caplog.set_level(logging.WARNING, logger="test.mapping")
    write(path, GOOD_B)
    clock.tick()
    assert h.current() is good and h.ready
    assert h.last_error == (
        f"mapping file {path} could not be checked (internal error ValueError); still serving"
        " the last good mapping"
    )
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert caplog.records[0].exc_info is not None
