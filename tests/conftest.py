"""Shared fixtures: a pepper, and the IAM store on every backend.

``store`` is parametrized over SQLite and PostgreSQL, so every test that takes
it is a conformance test run on both. PostgreSQL tests need
``AUTHBRIDGE_TEST_POSTGRES_DSN`` (CI sets it to the local server) and are
skipped with that reason otherwise; each test gets its own schema.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from authbridge.iam.credentials import Pepper
from authbridge.store import SqlStore, open_store

# Property tests run in the normal suite: bounded examples, no wall-clock deadline
# (the suite shares 2 cores), no example database written into the work tree.
settings.register_profile(
    "authbridge",
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("authbridge")


def _share_bytecode_cache() -> None:
    """Let the suite's subprocesses (the CLI, `serve`, xdist workers) keep a bytecode cache.

    Most of the suite's time is fresh ``authbridge`` processes. Under
    ``PYTHONDONTWRITEBYTECODE=1`` (this sandbox, some CI images) each one compiles
    every module it imports, authbridge's and its dependencies', from source: about
    half of a CLI call's second. The cache goes to a per-user directory outside
    the work tree (``PYTHONPYCACHEPREFIX``), never next to the sources, so no test
    sees a file it did not write; Python checks each cached file against its
    source's mtime and size, so an old cache is never used for changed code. A
    prefix the caller already set is kept.
    """
    if "PYTHONPYCACHEPREFIX" not in os.environ:
        prefix = Path(tempfile.gettempdir()) / f"authbridge-tests-pycache-{os.getuid()}"
        prefix.mkdir(mode=0o700, exist_ok=True)
        info = prefix.lstat()
        if prefix.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
            # Someone else's (or an open) directory: code cached there could be planted.
            prefix = Path(tempfile.mkdtemp(prefix="authbridge-tests-pycache-"))
        os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_share_bytecode_cache()

PG_DSN_ENV = "AUTHBRIDGE_TEST_POSTGRES_DSN"
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_dsn() -> str:
    dsn = os.environ.get(PG_DSN_ENV)
    if not dsn:
        pytest.skip(
            f"PostgreSQL tests need {PG_DSN_ENV}, e.g. postgresql://postgres@127.0.0.1/test"
        )
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the test runs: bound, never listening.

    For tests of "cannot connect" errors, instead of a fixed port that something
    on the machine might serve.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def pepper() -> Pepper:
    return Pepper.generate()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, pepper: Pepper) -> Iterator[SqlStore]:
    """A migrated, empty store with account 111122223333, on each backend."""
    dsn = _dsn_for(backend, tmp_path)
    s = open_store(dsn.value, pepper=pepper)
    s.create_account(ACCOUNT)
    try:
        yield s
    finally:
        s.close()
        dsn.cleanup()


class _Dsn:
    def __init__(self, value: str, schema: str | None = None, base: str | None = None) -> None:
        self.value, self._schema, self._base = value, schema, base

    def cleanup(self) -> None:
        if self._schema and self._base:
            import psycopg

            with psycopg.connect(self._base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")


def _dsn_for(backend: str, tmp_path: Path) -> _Dsn:
    if backend == "sqlite":
        return _Dsn(f"sqlite:///{tmp_path}/data/authbridge.db")
    import psycopg

    base = postgres_dsn()
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return _Dsn(with_search_path(base, schema), schema, base)


@pytest.fixture
def empty_dsn(backend: str, tmp_path: Path) -> Iterator[str]:
    """A DSN for an empty (unmigrated) store of the current backend."""
    dsn = _dsn_for(backend, tmp_path)
    try:
        yield dsn.value
    finally:
        dsn.cleanup()


class CallRecorder:
    """Wraps an object (a store, a driver) and records the name of every method called."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value(*args, **kwargs)

        return call
