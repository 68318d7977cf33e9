"""SQLite driver: the embedded default, one file under the data directory.

WAL journal, foreign keys on, and ``BEGIN IMMEDIATE`` for every write so two
processes writing at once queue on the database lock (busy timeout) instead of
failing half-way. The database file is created 0600 inside a 0700 directory:
it holds access-key hashes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from authbridge.errors import StoreUnavailable

BUSY_TIMEOUT_SECONDS = 30.0


class _Cursor:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._rowcount = -1

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(sql, tuple(params))
        rows = cur.fetchall()
        self._rowcount = cur.rowcount
        return rows

    @property
    def rowcount(self) -> int:
        return self._rowcount


class SqliteDriver:
    dialect = "sqlite"
    lock_suffix = ""  # a write transaction already holds the database's write lock

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)
        except OSError as e:
            raise StoreUnavailable(
                f"cannot create the SQLite database {path}: {e.strerror}",
                hint="choose a writable location with --store sqlite:///PATH",
            ) from e

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # Each connection is used only by the thread that made it (thread-local);
                # check_same_thread=False only lets close() release another thread's
                # connection (a worker's key-refresh thread, for one).
                conn = sqlite3.connect(
                    self.path,
                    timeout=BUSY_TIMEOUT_SECONDS,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as e:
                raise StoreUnavailable(f"cannot open the SQLite database {self.path}: {e}") from e
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Cursor]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(
                f"the SQLite database {self.path} is busy or unreadable: {e}",
                hint="another process may hold a long write lock; try again",
            ) from e
        try:
            yield _Cursor(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read-only statement in autocommit mode: SQLite runs it in one read
        transaction of its own, so it sees one snapshot, without BEGIN/COMMIT."""
        conn = self._conn()
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(
                f"the SQLite database {self.path} is busy or unreadable: {e}",
                hint="another process may hold a long write lock; try again",
            ) from e

    def lock_for_migration(self, cur: Any) -> None:
        """BEGIN IMMEDIATE already excludes other writers."""

    def lock_accounts(self, cur: Any) -> None:
        """BEGIN IMMEDIATE already excludes other writers."""

    def lock_signing_keys(self, cur: Any, *, wait: bool) -> bool:
        """BEGIN IMMEDIATE already holds the database's write lock: one writer at a time."""
        return True

    def has_table(self, cur: Any, name: str) -> bool:
        rows = cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return bool(rows)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
