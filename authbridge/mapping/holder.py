"""The mapping a running server uses: reloaded when its file changes, the last good one kept.

:class:`MappingHolder` owns one mapping file. :meth:`MappingHolder.current` is
cheap and safe from any thread. At most every ``check_interval`` seconds it
stats the file, and when ``(mtime_ns, size, inode)`` changed it reads,
validates and, only if the whole file is valid, swaps the new mapping in by
replacing one reference (readers see the old mapping or the new one, never
a mix). While one thread reloads, the others keep getting the current
mapping instead of waiting for the parse.

What happens when:

=============================  =============================================  ======
file state                     mapping served                                 ready
=============================  =============================================  ======
valid, first time              the file's; ``version`` 1                      True
valid, content changed         the new one; ``version`` + 1                   True
valid, same bytes (touch)      unchanged; ``version`` unchanged               True
invalid / unreadable           the last good one; ``last_error`` says why,    True
                               logged once as a warning
checking it fails (a bug)      the last good one, as for an invalid file;     True
                               the traceback is logged
deleted                        the last good one, never an empty mapping;     True
                               ``last_error`` says so
missing/invalid, never loaded  an empty mapping (refuses everyone)            False
=============================  =============================================  ======

Why ``ready`` stays True with a bad file: readiness takes a replica out of its
Service. A bad deploy of the mapping file reaches every replica at once, so
failing readiness would turn one bad file into a full outage, while the last
good mapping is still a sound answer. The problem is reported instead:
``last_error`` (and :meth:`status`, which ``/readyz`` and the logs show).
``ready`` is False only while no good mapping was ever loaded.

A valid mapping's warnings (:mod:`authbridge.mapping.collisions`) are logged
once, as warnings, when it is swapped in; they never keep it out.

``version`` increments on every swap, so a cache of verdicts can drop what
an older mapping decided. ``loaded_at`` is the wall time of the last
successful read of a valid file.

Write the file atomically (write a temp file, then rename), as Kubernetes
does for mounted ConfigMaps: a reader could otherwise see a half-written file.
Such a file usually fails validation and is then simply not used; an empty
one is refused by the parser for that reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final

from authbridge import arn
from authbridge.mapping.model import Mapping, MappingError
from authbridge.mapping.parse import parse_mapping, read_capped

__all__ = ["MappingHolder"]

# (mtime_ns, size, inode), or None for "no file there"
_Stamp = tuple[int, int, int] | None
_NEVER: Final = (-1, -1, -1)  # equals no real stamp (no file has size -1): read next time


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class MappingHolder:
    """The current mapping from ``path``, reloaded on change (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        log: logging.Logger | None = None,
        partitions: Collection[str] = arn.KNOWN_PARTITIONS,
    ) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._log = log or logging.getLogger("authbridge.mapping")
        self._partitions = partitions
        self._lock = threading.Lock()
        self._mapping = Mapping(source=str(path), digest="", cluster_id=None)
        self._stamp: _Stamp = _NEVER
        self._next_check = 0.0
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self.version = 0
        self.ready = False
        self.refresh()

    def current(self) -> Mapping:
        """The mapping to use now; checks the file first when ``check_interval`` has passed."""
        if self._clock() >= self._next_check and self._lock.acquire(blocking=False):
            try:
                if self._clock() >= self._next_check:
                    self._check()
            finally:
                self._lock.release()
        return self._mapping

    def refresh(self) -> bool:
        """Check the file now (waiting for a reload in progress); True when a new mapping is in."""
        with self._lock:
            return self._check()

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` and the logs show about the mapping."""
        mapping = self._mapping
        return {
            "file": str(self.path),
            "ready": self.ready,
            "version": self.version,
            "digest": mapping.digest,
            "loadedAt": self.loaded_at,
            "error": self.last_error,
        }

    # -- under the lock --------------------------------------------------------------------

    def _still_serving(self) -> str:
        return "; still serving the last good mapping" if self.ready else ""

    def _fail(self, error: str) -> None:
        if error != self.last_error:  # a file that stays broken is reported once
            self._log.warning("%s", error)
        self.last_error = error

    def _invalid(self, e: MappingError) -> None:
        count = len(e.problems)
        self._fail(
            f"mapping file {self.path} is invalid ({count} problem{'s' if count != 1 else ''})"
            f"{self._still_serving()}: " + "; ".join(e.problems)
        )

    def _restat(self) -> _Stamp:
        try:
            return _stamp(os.stat(self.path))
        except OSError:
            return _NEVER

    def _check(self) -> bool:
        self._next_check = self._clock() + self._interval
        try:
            stamp: _Stamp = _stamp(os.stat(self.path))
        except FileNotFoundError:
            stamp = None
        except OSError as e:
            stamp = _NEVER  # retry on every check until it can be stat'ed
            self._fail(f"cannot stat mapping file {self.path}: {e.strerror}{self._still_serving()}")
            return False
        if stamp == self._stamp:
            return False
        if stamp is None:
            self._stamp = None
            if self.ready:
                self._fail(
                    f"mapping file {self.path} was deleted; still serving the last good mapping"
                )
            else:
                self._fail(f"mapping file {self.path} does not exist; every identity is refused")
            return False
        return self._load()

    def _load(self) -> bool:
        try:
            data, st = read_capped(self.path)
        except FileNotFoundError:
            self._stamp = _NEVER  # deleted between stat and open: look again next time
            return False
        except OSError as e:
            self._stamp = _NEVER
            self._fail(f"cannot read mapping file {self.path}: {e.strerror}{self._still_serving()}")
            return False
        except MappingError as e:  # too large
            self._stamp = self._restat()
            self._invalid(e)
            return False
        # Keyed on what was read: the same bad file is reported once, not on every check.
        self._stamp = _stamp(st)
        try:
            mapping = parse_mapping(data, str(self.path), partitions=self._partitions)
        except MappingError as e:
            self._invalid(e)
            return False
        except Exception as e:  # a bug in the checks, never a file's fault: keep serving
            self._log.error(
                "checking mapping file %s failed (internal error %s); please report it",
                self.path,
                type(e).__name__,
                exc_info=True,
            )
            self._fail(
                f"mapping file {self.path} could not be checked (internal error"
                f" {type(e).__name__}){self._still_serving()}"
            )
            return False
        self.loaded_at = self._wall_clock()
        self.last_error = None
        if self.ready and mapping.digest == self._mapping.digest:
            return False
        self._mapping = mapping
        self.version += 1
        self.ready = True
        self._log.info(
            "loaded mapping file %s (version %d, sha256 %s: %d roles, %d users, %d groups,"
            " %d accounts)",
            self.path,
            self.version,
            mapping.digest,
            len(mapping.map_roles),
            len(mapping.map_users),
            len(mapping.map_groups),
            len(mapping.map_accounts),
        )
        for warning in mapping.warnings:  # once per new mapping; names and templates only
            self._log.warning("mapping warning: %s", warning)
        return True
