"""The cost of the sign-in session check in a review's one store statement (not in ``bench/run``).

``.venv/bin/python -m bench.session_check``

``Store.review_facts`` reads, in one statement, whether the token's ``sid``
names a live sign-in session (migration 6). This runs that statement and
the one before it (the same text without the session's ``EXISTS``)
interleaved, on one store: a user with a group and an access key, and a
live session. Rounds alternate old / new without ``sid`` / new with ``sid``,
so machine noise falls on all three alike; the median of 5 rounds is
printed. SQLite: statements per second of this process's CPU (it runs
in-process); PostgreSQL (``AUTHBRIDGE_BENCH_POSTGRES_DSN`` or
``AUTHBRIDGE_TEST_POSTGRES_DSN``; its own schema, dropped after): round trips
per second of wall clock.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable

from authbridge import signin
from authbridge.iam.credentials import Pepper
from authbridge.store import open_store, sql

ACCOUNT = "111122223333"
SESSION_EXISTS = (
    " EXISTS (SELECT 1 FROM signin_sessions ss WHERE ss.session_id = ?"
    "  AND ss.user_id = p.source_id AND ss.ended_at IS NULL),"
)
ROUNDS = 5
CALLS = 3000


def _rates(dsn: str, clock: Callable[[], float]) -> dict[str, float]:
    old_sql = sql._REVIEW_FACTS_SQL.replace(SESSION_EXISTS, "")
    if old_sql == sql._REVIEW_FACTS_SQL:
        raise SystemExit("the review statement no longer has the session check this compares")
    store = open_store(dsn, pepper=Pepper.generate())
    try:
        store.create_account(ACCOUNT)
        user = store.create_user(ACCOUNT, "alice")
        store.create_group(ACCOUNT, "devs")
        store.add_user_to_group(ACCOUNT, "devs", "alice")
        key = store.create_access_key(ACCOUNT, "alice").key.access_key_id
        sid, _ = signin.start_browser_session(
            store, user_id=user.user_id, mfa=False, address=None, now=time.time()
        )
        uid, db = user.user_id, store._db
        cases: dict[str, Callable[[], object]] = {
            "before (no session check)": lambda: db.query(old_sql, ("j", None, uid, uid, uid, key)),
            "now, token without sid": lambda: db.query(
                sql._REVIEW_FACTS_SQL, ("j", None, uid, None, uid, uid, key)
            ),
            "now, token with sid": lambda: db.query(
                sql._REVIEW_FACTS_SQL, ("j", None, uid, sid, uid, uid, key)
            ),
        }
        seen: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, run in cases.items():
                start = clock()
                for _ in range(CALLS):
                    run()
                seen[name].append(CALLS / (clock() - start))
    finally:
        store.close()
    return {name: sorted(rates)[ROUNDS // 2] for name, rates in seen.items()}


def _show(title: str, rates: dict[str, float]) -> None:
    print(title)
    base = rates["before (no session check)"]
    for name, rate in rates.items():
        print(f"  {name:27s} {rate:9.0f}/s  ({rate / base:.3f} of before)")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        _show(
            "SQLite, statements/s of CPU (median of 5):",
            _rates(f"sqlite:///{tmp}/bench.db", time.process_time),
        )
    base = os.environ.get("AUTHBRIDGE_BENCH_POSTGRES_DSN") or os.environ.get(
        "AUTHBRIDGE_TEST_POSTGRES_DSN"
    )
    if not base:
        print("PostgreSQL: skipped (set AUTHBRIDGE_BENCH_POSTGRES_DSN)")
        return 0
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        dsn = f"{base}{sep}options=-csearch_path%3D{schema}"
        _show(
            "PostgreSQL, round trips/s of wall clock (median of 5):", _rates(dsn, time.perf_counter)
        )
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
