"""The store from several threads at once, as the worker's page pool uses it.

``authbridge serve`` runs the pages (sign-in, the admin API) in pool threads
beside the event loop, all on one store object: each thread must get its own
database connection (both drivers keep one per thread), so transactions of
different threads never interleave on one connection, and every write lands.
"""

from __future__ import annotations

import threading

from authbridge.store import SqlStore
from tests.conftest import ACCOUNT

THREADS = 4
ROUNDS = 15


def test_threads_each_use_their_own_connection_and_every_write_lands(store: SqlStore) -> None:
    errors: list[BaseException] = []
    connections: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def work(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(ROUNDS):
                name = f"t{n}u{i}"
                store.create_user(ACCOUNT, name)
                assert store.get_user(ACCOUNT, name).name == name
                store.create_login_profile(ACCOUNT, name, "Threads-9-correct-horse")
            with lock:
                connections[n] = id(store._db._conn())  # type: ignore[attr-defined]
        except BaseException as e:  # reported below, with the thread's number
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    start.wait(timeout=30)
    for _ in range(ROUNDS):  # the loop thread reads meanwhile
        store.list_users(ACCOUNT)
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    names = {u.name for u in store.list_users(ACCOUNT)}
    assert names == {f"t{n}u{i}" for n in range(THREADS) for i in range(ROUNDS)}
    assert len(set(connections.values())) == THREADS  # one connection per thread
    assert id(store._db._conn()) not in connections.values()  # type: ignore[attr-defined]
