"""Every outbound call gives up: a server that accepts and never answers cannot hang authbridge.

The outbound calls authbridge makes, and their timeouts:

======================================  ==================================  ===================
call                                    where                               timeout
======================================  ==================================  ===================
POST {endpoint}/oauth2/token            client/issuer.py (``authbridge      10 s connect and
                                        token``, the kubectl plugin)        each read
POST {endpoint}/verify                  cli/verify.py (``authbridge         10 s connect and
                                        verify``)                           each read
Kubernetes API (every REST call)        kube.py (``rbac apply``, the        5 s connect, 30 s
                                        reconciler)                         each read
PostgreSQL connect                      store/postgres.py                   10 s
PostgreSQL statements                   store/postgres.py                   10 s (the DSN may set
                                                                            its own: ``options=
                                                                            -c statement_timeout
                                                                            =5000``)
PostgreSQL server gone silently         store/postgres.py                   15 s TCP user timeout,
                                                                            keepalives
SQLite lock wait                        store/sqlite.py                     30 s busy timeout
======================================  ==================================  ===================

Each test points a client at a local TCP server that accepts connections and
never sends a byte (or, for TLS, completes the handshake and then goes
silent), with a short timeout injected, and checks the client gives up with
its own error in about that time. The statement timeout needs PostgreSQL
(``AUTHBRIDGE_TEST_POSTGRES_DSN``).
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from authbridge import pki
from authbridge.client.errors import IssuerError
from authbridge.client.issuer import TIMEOUT, Issuer
from authbridge.errors import StoreUnavailable
from authbridge.kube import DEFAULT_TIMEOUT, KubeAdapter
from authbridge.rbac.reconcile import KubeUnavailable
from authbridge.store import postgres, sqlite
from tests.conftest import postgres_dsn

FAST = 0.5  # seconds: the timeout injected
BOUND = 4.0  # seconds: giving up must take less (the kube client retries a read once)


@dataclass
class SilentServer:
    """Accepts TCP connections (optionally completes TLS) and never answers."""

    tls: ssl.SSLContext | None = None
    listener: socket.socket = field(init=False)
    held: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            self.held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    context: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    d = tmp_path_factory.mktemp("tls")
    ca = pki.new_ca()
    leaf = pki.issue_server_cert(ca, hostnames=("localhost",), ips=("127.0.0.1",))
    (d / "ca.crt").write_bytes(ca.cert_pem)
    (d / "server.crt").write_bytes(leaf.cert_pem)
    (d / "server.key").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "server.crt", d / "server.key")
    return Tls(d / "ca.crt", context)


@pytest.fixture
def silent_tls(tls: Tls) -> Iterator[SilentServer]:
    server = SilentServer(tls=tls.context)
    yield server
    server.close()


def gives_up(seconds: float = BOUND) -> _Stopwatch:
    return _Stopwatch(seconds)


class _Stopwatch:
    def __init__(self, bound: float) -> None:
        self.bound = bound

    def __enter__(self) -> _Stopwatch:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.started
        assert self.elapsed < self.bound, f"took {self.elapsed:.1f} s"


# -- the token endpoint client (authbridge token, the kubectl plugin) ------------------------


def test_the_plugins_default_timeout() -> None:
    assert TIMEOUT == 10.0
    assert Issuer("https://127.0.0.1:1").timeout == TIMEOUT


def test_the_plugin_gives_up_on_a_silent_server(silent: SilentServer, tls: Tls) -> None:
    issuer = Issuer(f"https://127.0.0.1:{silent.port}", ca_file=str(tls.ca_file), timeout=FAST)
    with gives_up(), pytest.raises(IssuerError, match=r"did not answer within 0\.5 s"):
        issuer.session_token("AKIAAAAAAAAAAAAAAAAA", "secret", audience="prod")


def test_the_plugin_gives_up_when_tls_is_up_but_no_answer_comes(
    silent_tls: SilentServer, tls: Tls
) -> None:
    issuer = Issuer(f"https://127.0.0.1:{silent_tls.port}", ca_file=str(tls.ca_file), timeout=FAST)
    with gives_up(), pytest.raises(IssuerError, match=r"did not answer within 0\.5 s"):
        issuer.assume_role(
            "a.b.c", audience="prod", role_arn="arn:aws:iam::111122223333:role/R", session_name="s"
        )


# -- authbridge verify (remote) --------------------------------------------------------------


@pytest.mark.parametrize("server", ["silent", "silent_tls"])
def test_remote_verify_gives_up(
    server: str, request: pytest.FixtureRequest, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authbridge.cli import verify

    assert verify.TIMEOUT == 10.0
    monkeypatch.setattr(verify, "TIMEOUT", FAST)
    target: SilentServer = request.getfixturevalue(server)
    with gives_up(), pytest.raises(IssuerError, match="cannot reach"):
        verify._post_verify(f"https://127.0.0.1:{target.port}", str(tls.ca_file), "a.b.c", None)


# -- the Kubernetes API ----------------------------------------------------------------------


def test_the_kube_adapter_gives_up_on_a_silent_api_server(
    silent: SilentServer, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{silent.port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    assert DEFAULT_TIMEOUT == (5.0, 30.0)
    configured = KubeAdapter.from_kubeconfig(kubeconfig)
    # The client as from_kubeconfig configures it (retries included), with a short timeout.
    adapter = KubeAdapter(configured._client, timeout=(FAST, FAST))
    with gives_up(), pytest.raises(KubeUnavailable, match="cannot reach the API server"):
        adapter.list_namespaces()
    adapter.close()


# -- the store -------------------------------------------------------------------------------


def test_postgres_connect_gives_up_on_a_silent_server(
    silent: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert postgres.CONNECT_TIMEOUT_SECONDS == 10
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT_SECONDS", 1)
    driver = postgres.PostgresDriver(f"postgresql://authbridge@127.0.0.1:{silent.port}/iam")
    with gives_up(), pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):
        with driver.transaction(write=False) as cur:
            cur.execute("SELECT 1")
    driver.close()


@pytest.mark.postgres
def test_a_statement_timeout_in_the_dsn_stops_a_long_statement() -> None:
    dsn = postgres_dsn()
    sep = "&" if "?" in dsn else "?"
    driver = postgres.PostgresDriver(f"{dsn}{sep}options=-c%20statement_timeout%3D200")
    with gives_up(2.0), pytest.raises(StoreUnavailable, match="QueryCanceled"):
        with driver.transaction(write=False) as cur:
            cur.execute("SELECT pg_sleep(5)")
    with driver.transaction(write=False) as cur:  # the next statement gets a new connection
        assert cur.execute("SELECT 1") == [(1,)]
    driver.close()


def test_postgres_timeouts_default_and_the_dsn_wins() -> None:
    default = postgres.connection_params("postgresql://authbridge@db.internal/iam")
    assert default["connect_timeout"] == 10 and default["tcp_user_timeout"] == 15_000
    assert default["options"] == "-c statement_timeout=10000"
    assert default["keepalives"] == 1
    own = postgres.connection_params(
        "postgresql://authbridge@db.internal/iam?connect_timeout=3&tcp_user_timeout=500"
        "&options=-c%20search_path%3Dx%20-c%20statement_timeout%3D200"
    )
    assert own["connect_timeout"] == "3" and own["tcp_user_timeout"] == "500"
    assert own["options"] == "-c search_path=x -c statement_timeout=200"
    other = postgres.connection_params("host=db dbname=iam options='-c search_path=x'")
    assert other["options"] == "-c search_path=x -c statement_timeout=10000"


@pytest.mark.postgres
def test_connections_get_the_default_statement_timeout() -> None:
    driver = postgres.PostgresDriver(postgres_dsn())
    with driver.transaction(write=False) as cur:
        assert cur.execute("SHOW statement_timeout") == [("10s",)]
    driver.close()


def test_sqlite_gives_up_waiting_for_a_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sqlite.BUSY_TIMEOUT_SECONDS == 30.0
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_SECONDS", FAST)
    path = tmp_path / "authbridge.db"
    driver = sqlite.SqliteDriver(path)
    with driver.transaction(write=False):
        pass  # the driver's connection is open (WAL)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with gives_up(), pytest.raises(StoreUnavailable, match="busy"):
            with driver.transaction(write=True):
                pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        driver.close()
