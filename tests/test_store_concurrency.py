"""Two processes writing one store at once never corrupt it (SQLite and PostgreSQL).

Both processes race to create the same users, add them to one group, revoke
the same token ids, then create access keys for each user (IAM allows two).
Afterwards every name exists exactly once, each creation succeeded in exactly
one process, the two-key limit held, and (SQLite) the file passes
``PRAGMA integrity_check``.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authbridge.errors import EntityAlreadyExists, LimitExceeded
from authbridge.iam.credentials import Pepper
from authbridge.store import SqlStore, open_store
from tests.conftest import ACCOUNT

USERS = 40
KEY_ATTEMPTS = 2
BARRIER_SECONDS = 180


def _writer(dsn: str, pepper: bytes, start: Any, results: Any) -> None:
    store = open_store(dsn, pepper=Pepper(pepper))
    created, already, keys, limited = 0, 0, 0, 0
    try:
        # Spawned interpreters import the store before the race starts; on a
        # loaded machine that takes long, so the barrier waits generously.
        start.wait(BARRIER_SECONDS)
        for i in range(USERS):
            try:
                store.create_user(ACCOUNT, f"user{i}")
                created += 1
            except EntityAlreadyExists:
                already += 1
            store.add_user_to_group(ACCOUNT, "everyone", f"user{i}")
            store.revoke_token(f"jti-{i}", datetime.now(UTC) + timedelta(minutes=5))
        start.wait(BARRIER_SECONDS)  # line both up again so the key-limit checks really race
        for i in range(USERS):
            for _ in range(KEY_ATTEMPTS):
                try:
                    store.create_access_key(ACCOUNT, f"user{i}")
                    keys += 1
                except LimitExceeded:
                    limited += 1
    except BaseException as e:  # report it: a silent child would only time out the parent
        results.put(f"{type(e).__name__}: {e}")
        raise
    finally:
        store.close()
    results.put((created, already, keys, limited))


def test_two_processes_writing_at_once(store: SqlStore, backend: str, pepper: Pepper) -> None:
    store.create_group(ACCOUNT, "everyone")
    dsn = _dsn_of(store)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(dsn, pepper.value, start, results)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=2 * BARRIER_SECONDS + 60) for _ in procs]
    failed = [o for o in outcomes if isinstance(o, str)]
    assert not failed, f"a writer failed: {failed}"
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    assert sum(o[0] for o in outcomes) == USERS  # each user created exactly once
    assert sum(o[1] for o in outcomes) == USERS  # and refused exactly once
    # the two-key limit held under the race, for every user
    assert sum(o[2] for o in outcomes) == 2 * USERS
    assert sum(o[3] for o in outcomes) == 2 * KEY_ATTEMPTS * USERS - 2 * USERS
    users = [u.name for u in store.list_users(ACCOUNT)]
    assert sorted(users) == sorted([f"user{i}" for i in range(USERS)])
    assert len(store.list_group_members(ACCOUNT, "everyone")) == USERS
    assert all(len(store.list_access_keys(ACCOUNT, f"user{i}")) == 2 for i in range(USERS))
    assert all(store.is_token_revoked(f"jti-{i}") for i in range(USERS))
    if backend == "sqlite":
        path = Path(dsn.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _dsn_of(store: SqlStore) -> str:
    driver: Any = store._db
    if driver.dialect == "sqlite":
        return f"sqlite:///{driver.path}"
    return str(driver._dsn)
