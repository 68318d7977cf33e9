"""PostgreSQL driver: for several authbridge replicas sharing one store.

One connection per thread, READ COMMITTED transactions, row locks
(``SELECT … FOR UPDATE``) where a check-then-write must not race (the access
key limit, deletes with dependants), and an advisory lock around migrations so
replicas starting together migrate once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from authbridge.errors import StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 10
# A statement (or a lock wait) that runs longer fails with StoreUnavailable (503 to a
# caller) instead of holding the worker: `authbridge serve` answers one request at a
# time per worker, so a stuck query would stall every connection of that worker.
STATEMENT_TIMEOUT_MS = 10_000
# A server that vanishes (no RST: a dead node, a dropped route) is noticed within this
# long while data is unacknowledged, and idle connections are probed by TCP keepalives.
TCP_USER_TIMEOUT_MS = 15_000
MIGRATION_LOCK_ID = 0x61757468627264  # "authbrd"
SIGNING_KEYS_LOCK_ID = 0x617574686B657973  # "authkeys": rotation, one replica at a time


def connection_params(dsn: str) -> dict[str, Any]:
    """libpq parameters for ``dsn``, with authbridge's timeouts where the DSN sets none.

    Whatever the DSN says wins (``connect_timeout``, ``tcp_user_timeout``,
    ``keepalives*``, a ``statement_timeout`` in ``options``).
    """
    params: dict[str, Any] = dict(conninfo_to_dict(dsn))
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    params.setdefault("tcp_user_timeout", TCP_USER_TIMEOUT_MS)
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 30)
    params.setdefault("keepalives_interval", 10)
    params.setdefault("keepalives_count", 3)
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        params["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    return params


def _to_pg(sql: str) -> str:
    # Our SQL never contains a literal '?' or '%', so this rewrite is exact.
    return sql.replace("?", "%s")


class _Cursor:
    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(_to_pg(sql), tuple(params))
        if self._cur.description is None:
            return []
        return list(self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


class PostgresDriver:
    dialect = "postgresql"
    lock_suffix = " FOR UPDATE"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(**connection_params(self._dsn), autocommit=True)
            except psycopg.Error as e:
                # psycopg's message can quote the DSN; keep only its first line, which
                # names the host and the failure, never the password.
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StoreUnavailable(
                    f"cannot connect to PostgreSQL: {first}",
                    hint="check the DSN in --store / AUTHBRIDGE_STORE and that the server is up",
                ) from None
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[_Cursor]:
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield _Cursor(cur)
        except psycopg.OperationalError as e:
            raise self._failed(e) from e

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read-only statement on the autocommit connection: no BEGIN/COMMIT, so
        one round trip; the statement is its own transaction and sees one snapshot."""
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                cur.execute(_to_pg(sql), tuple(params))
                return list(cur.fetchall())
        except psycopg.OperationalError as e:
            raise self._failed(e) from e

    def _failed(self, e: psycopg.OperationalError) -> StoreUnavailable:
        self._local.conn = None
        return StoreUnavailable(
            f"PostgreSQL connection failed: {type(e).__name__}",
            hint="check that the server is up; the operation was not applied",
        )

    def lock_for_migration(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_ID,))

    def lock_accounts(self, cur: Any) -> None:
        # Conflicts with itself and with every INSERT into the table (ROW EXCLUSIVE),
        # not with reads: "is there an account yet?" then the insert, one caller at a time.
        cur.execute("LOCK TABLE iam_accounts IN SHARE ROW EXCLUSIVE MODE")

    def lock_signing_keys(self, cur: Any, *, wait: bool) -> bool:
        if wait:
            cur.execute("SELECT pg_advisory_xact_lock(?)", (SIGNING_KEYS_LOCK_ID,))
            return True
        rows = cur.execute("SELECT pg_try_advisory_xact_lock(?)", (SIGNING_KEYS_LOCK_ID,))
        return bool(rows[0][0])

    def has_table(self, cur: Any, name: str) -> bool:
        rows = cur.execute("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(rows[0][0])

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
