"""The IAM store: one protocol (:mod:`.base`), SQLite and PostgreSQL backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from authbridge.errors import ConfigError
from authbridge.iam.credentials import Pepper
from authbridge.store.base import Store
from authbridge.store.sql import SqlStore

__all__ = ["Store", "SqlStore", "open_store"]


def open_store(
    dsn: str,
    *,
    pepper: Pepper | Callable[[], Pepper],
    partition: str = "aws",
    migrate: bool = True,
) -> SqlStore:
    """Open the store a DSN names (``sqlite:///path`` or ``postgresql://…``).

    ``pepper`` may be a loader, called the first time a secret is hashed or checked.
    """
    if dsn.startswith("sqlite:///"):
        from authbridge.store.sqlite import SqliteDriver

        store = SqlStore(
            SqliteDriver(Path(dsn.removeprefix("sqlite:///"))), pepper=pepper, partition=partition
        )
    elif dsn.startswith(("postgresql://", "postgres://")):
        from authbridge.store.postgres import PostgresDriver

        store = SqlStore(PostgresDriver(dsn), pepper=pepper, partition=partition)
    else:
        raise ConfigError(
            "store DSN must start with sqlite:/// or postgresql://",
            hint="e.g. --store sqlite:///data/authbridge.db",
        )
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
