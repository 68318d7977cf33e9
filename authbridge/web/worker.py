"""The gunicorn worker ``authbridge serve`` runs: one event loop per process, pages in a pool.

Why not gthread
    gunicorn's ``gthread`` worker parks idle keep-alive connections in a poller
    thread and, for every request, hands the connection to a pool thread and
    back: two thread wake-ups, a pipe write and two ``epoll_ctl`` calls a
    request, each paying for the GIL. The webhook's load is exactly that case
    (a few long-lived kube-apiserver connections carrying many small requests),
    and the hand-offs were a fifth of the server's CPU and most of its tail
    latency (bench/RESULTS.md). Work per request is CPU (a signature check,
    one store read): threads of one process only take turns at it anyway.

How it works
    One thread runs a ``selectors`` loop over the listening sockets and every
    connection, with non-blocking TLS. Bytes are read as they arrive; once a
    whole request is buffered (head and body) it is parsed with gunicorn's own
    HTTP/1.1 parser, turned into a WSGI environ by gunicorn's ``wsgi.create``
    and run through the app in place; the answer is buffered and written as
    the socket accepts it. Protocol rules (request-line and header limits,
    ``Transfer-Encoding``, keep-alive, ``Expect: 100-continue``, error pages)
    are therefore gunicorn's, only the I/O is different; what gunicorn's error
    pages and log lines quote of a refused request is redacted
    (:func:`authbridge.audit.redact`).

    Each request runs to completion before the loop looks at the next, so a
    slow store query delays the other connections of the same worker (as in
    gunicorn's ``sync`` worker). Reviews and token requests are short; with a
    remote PostgreSQL run more workers than cores (``workers``).

The page pool
    Pages are not short: ``POST /login`` verifies an argon2id hash (64 MiB,
    3 passes: 100-300 ms of a core), and so do ``/login/password``, the
    ``/account`` password change and the admin API's login-profile actions.
    Run in the loop, each would stop every TokenReview of the worker for that
    long (bench/RESULTS.md: the webhook kept 5% of its rate under a login
    flood). So requests for :data:`POOLED_PREFIXES` (the sign-in pages,
    ``/console``, ``/api``; also under the issuer's path) go to a small pool
    of threads (gunicorn's ``threads``, 4 with ``authbridge serve``):

    * the loop hands the parsed request over and goes on with the other
      connections; that connection is taken out of the selector, so nothing
      more is read from it (pipelined requests behind it stay buffered, the
      answers stay in order) until the answer is back;
    * a pool thread runs the app, into a buffer of its own, then wakes the
      loop through the worker's pipe; the loop appends the answer to the
      connection and carries on with it (write, then what is buffered);
    * at most ``threads`` run and :data:`POOL_QUEUE` wait; a page request past
      that is answered ``503`` with ``Retry-After`` by the loop at once;
    * the pool threads lower their own CPU priority (nice :data:`POOL_NICE`,
      per thread on Linux; ignored where that fails): when the cores are
      contended the kernel runs the loop first. argon2 releases the GIL while
      it hashes, so the loop keeps running Python meanwhile;
    * how many hashes run at once is bounded per worker by the hasher's
      semaphore, sized by ``authbridge serve`` to ``cores // workers``
      (:func:`authbridge.web.server.hashing_slots`): all workers together hash
      on at most as many threads as there are cores;
    * the app raising gives a 500 as in the loop; a stop waits for the pool's
      requests (within ``graceful_timeout``); a connection whose page answer
      does not come back within ``timeout`` is closed.

    The store is safe there: both drivers hold one connection per thread
    (thread-local), so a pool thread never shares the loop's; the shared
    in-memory state the pages touch (failure limits, metrics) is locked.

Limits (every one bounded, none waits for a client)
    * a request head is limited by gunicorn's ``limit_request_*`` settings;
      a body is buffered up to the app's ``maxRequestBytes`` only: a longer
      declared ``Content-Length`` goes to the app at once with no body, so the
      app answers as for any oversized body (401 for a caller without a
      certificate first, else 413) without the body ever being read, and a
      chunked body that keeps coming past 2 × the cap gets gunicorn's 413;
    * a new connection must finish its TLS handshake and send the first byte of
      its first request within ``handshakeTimeoutSeconds`` (default 5 s, both
      together), so a connection that only holds a slot is gone in seconds;
      then a request must arrive completely within ``timeout`` seconds (30) of
      its first byte; an idle keep-alive connection closes after ``keepalive``
      seconds (75, longer than the kube-apiserver reuses one); an answer the
      client does not read within ``timeout`` seconds closes the connection;
    * at ``worker_connections`` connections (512) the worker stops accepting
      (the listen backlog and the other workers take the rest);
    * one client address holds at most its share of ``maxConnectionsPerAddress``
      (default 128 per instance, ``max(1, N // workers)`` per worker: 64 of a
      worker's 512 with the default 2 workers), so the other addresses always
      have most of the slots. The address is the TCP peer (an IPv6 peer: its
      /64, as :func:`authbridge.web.limits.connection_address` counts it), known
      before a byte of HTTP is read; ``X-Forwarded-For`` plays no part. When
      a new connection would exceed the share, the address's connection that
      has waited longest (for its handshake, its first byte, the rest of a
      request, or idle between requests) is closed for it; so whatever an
      address does with its connections it only ever displaces its own, and a
      kubelet probe or a kube-apiserver that shares the address with a
      misbehaving client still gets in (a probe opens a fresh connection and is
      answered in milliseconds; displacing it takes that many newer
      connections from the address first). Peers in ``trustedProxies`` are not
      capped per address: a proxy carries many clients, so its cap would be
      theirs together; it should limit connections per client itself. A TCP
      load balancer that hides client addresses (and sends no
      ``X-Forwarded-For``, so it must not be a trusted proxy) makes every
      client one address: set ``maxConnectionsPerAddress: 0`` (no cap). A
      kube-apiserver keeps a few to some tens of connections to its webhook;
      past its share, its own longest-idle ones are closed and it opens new
      ones. One warning a minute at most names an address at its cap. Many
      addresses together can still fill a worker: the cap protects the others
      from one address, not from a crowd.

Stopping (SIGTERM)
    No new connections; a request already arriving is answered; idle
    connections close at once, or after :data:`STOP_LINGER_SECONDS` when they
    may have a request in flight; the worker exits when all are closed or
    after ``graceful_timeout``.

Pauses
    A full garbage collection stops the worker for as long as it takes to scan
    every tracked object. What the worker loaded before serving is frozen
    (``gc.freeze``) so collections scan only what requests create; the webhook
    keeps its verdict cache in a shape the collector does not track.

TLS
    The server context is built once per worker and built again when the
    certificate, key or client CA file changes (checked at most once a second
    when a connection arrives), so a renewed serving certificate is used
    without a restart. TLS renegotiation is refused. The verified client
    certificate of a connection is decoded once, not per request.

HTTP/2 is not offered (``authbridge serve`` never enables it).
"""

from __future__ import annotations

import errno
import gc
import io
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from gunicorn import sock as gunicorn_sock
from gunicorn import util as gunicorn_util
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.body import Body
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from gunicorn.workers import base

from authbridge import audit
from authbridge.web.context import issuer_path
from authbridge.web.limits import connection_address, per_worker

MAX_BODY_BYTES: Final = 1024 * 1024  # the body cap when the app has no settings (tests)
# When the app has no settings (tests): the defaults of authbridge.settings.
HANDSHAKE_SECONDS: Final = 5
CONNECTIONS_PER_ADDRESS: Final = 128
EVICTION_LOG_EVERY_SECONDS: Final = 60.0  # one warning at most, naming the latest address
STOP_LINGER_SECONDS: Final = 2.0
DRAIN_MAX_BYTES: Final = 1024 * 1024  # of a refused body, read and dropped before closing
DRAIN_SECONDS: Final = 2.0  # ... for at most this long
NOTIFY_EVERY_SECONDS: Final = 1.0
SWEEP_EVERY_SECONDS: Final = 0.5
RECV_BYTES: Final = 65536
MAX_PIPELINED: Final = 32  # answers buffered for one connection before they are written
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# Requests under these paths (also under the issuer's path) run in the page pool, not
# in the loop: the sign-in pages (authbridge.web.signin: /login hashes a password with
# argon2id, ~100 ms of a core and more), the console, and the admin API (its
# login-profile actions hash too). A path matches a prefix exactly or below it ("/device"
# and "/device/decision", not "/oauth2/device_authorization").
POOLED_PREFIXES: Final = (
    "/login",
    "/logout",
    "/signed-out",
    "/device",
    "/account",
    "/oauth2/authorize",
    "/signin/static",
    "/console",
    "/api",
)
POOL_THREADS: Final = 4  # page pool threads per worker when gunicorn's ``threads`` is 1
POOL_QUEUE: Final = 32  # page requests waiting for a pool thread, per worker; then 503
POOL_NICE: Final = 10  # the pool threads' nice value (Linux: per thread)
RETRY_AFTER_SECONDS: Final = 1
BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"X-Content-Type-Options: nosniff\r\nRetry-After: %d\r\nCache-Control: no-store\r\n"
    b"Content-Length: %d\r\n%s\r\n%s"
)
BUSY_TEXT: Final = b"The sign-in pages are busy; try again in a moment.\n"

_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE


class _Incomplete(Exception):
    """The buffered bytes do not hold a whole request yet."""


class _Answer:
    """What ``wsgi.create`` takes as the socket: collects the answer, knows the peer.

    gunicorn's response writes with ``sendall``; here that appends to the
    connection's output buffer, which the loop writes without blocking. The
    app reads the TLS client certificate through ``environ["gunicorn.socket"]``
    (``authbridge.web.peer``): it is taken from the TLS socket once per
    connection.
    """

    __slots__ = ("_conn", "out")

    def __init__(self, conn: _Connection, out: list[bytes]) -> None:
        self._conn = conn
        self.out = out  # the connection's buffer, or a pool job's own until it is done

    def sendall(self, data: bytes) -> None:
        if data:
            self.out.append(bytes(data))

    def send(self, data: bytes) -> int:
        if bytes(data) == CONTINUE:
            return len(data)  # the loop answered Expect: 100-continue when it was due
        self.sendall(data)
        return len(data)

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        return None

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._conn.peer_cert(binary_form)

    def worker_pool(self) -> _PagePool | None:
        """The worker's page pool (its ``waiting`` count is what tests look at)."""
        return self._conn.pool


class _Connection:
    __slots__ = (
        "sock",
        "fd",
        "client",
        "server",
        "handshaken",
        "inbuf",
        "out",
        "close_after",
        "eof",
        "drain",
        "continued",
        "deadline",
        "since",
        "address",
        "requests",
        "events",
        "answer",
        "job",
        "pool",
        "_cert",
        "_cert_der",
    )

    def __init__(self, sock: socket.socket, client: Any, server: Any) -> None:
        self.sock = sock
        self.fd = sock.fileno()  # kept: a closed socket says -1
        self.client = client
        self.server = server
        self.handshaken = False
        self.inbuf = bytearray()
        self.out: list[bytes] = []
        self.close_after = False  # close once ``out`` is written
        self.eof = False  # the client sent its last byte
        self.drain = 0  # bytes of a refused body to read and drop before closing
        self.continued = False  # 100 Continue sent for the request being read
        self.deadline = 0.0
        self.since = 0.0  # when it last started waiting: accepted, a request begun, idle again
        self.address: str | None = None  # what the per-address cap counts it under
        self.requests = 0
        self.events = 0
        self.answer = _Answer(self, self.out)
        self.job: _Job | None = None  # a request of this connection in the page pool
        self.pool: _PagePool | None = None  # the worker's
        self._cert: Any = None
        self._cert_der: Any = None

    def peer_cert(self, binary_form: bool) -> Any:
        getpeercert = getattr(self.sock, "getpeercert", None)
        if getpeercert is None:
            raise AttributeError("getpeercert")
        if binary_form:
            if self._cert_der is None:
                self._cert_der = getpeercert(True)
            return self._cert_der
        if self._cert is None:
            self._cert = getpeercert()
        return self._cert


class _Job:
    """A page request handed to the pool: what it needs, and the answer it made."""

    __slots__ = ("conn", "req", "force_close", "answer", "close")

    def __init__(self, conn: _Connection, req: Request, force_close: bool) -> None:
        self.conn = conn
        self.req = req
        self.force_close = force_close
        self.answer = _Answer(conn, [])  # written by the pool thread only, read when done
        self.close = False


class _PagePool:
    """A few threads that run page requests; the loop is woken through a pipe when one is done.

    At most ``threads`` run and ``queued`` wait; :meth:`submit` says False past that
    (the loop answers 503). The threads lower their own CPU priority (nice
    :data:`POOL_NICE`; on Linux ``setpriority`` applies to one thread), so when the
    cores are contended the kernel runs the loop (TokenReviews) first.
    """

    def __init__(self, run: Callable[[_Job], None], threads: int, queued: int, wake_fd: int):
        self.threads = threads
        self.queued = queued
        self._run = run
        self._wake_fd = wake_fd
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self.done: deque[_Job] = deque()
        self.waiting = 0  # submitted and not done yet (running or queued); the loop's count
        self._started: list[threading.Thread] = []

    def submit(self, job: _Job) -> bool:
        if self.waiting >= self.threads + self.queued:
            return False
        if len(self._started) < min(self.threads, self.waiting + 1):
            thread = threading.Thread(
                target=self._serve, name=f"authbridge-page-{len(self._started)}", daemon=True
            )
            thread.start()
            self._started.append(thread)
        self.waiting += 1
        self._jobs.put(job)
        return True

    def _serve(self) -> None:
        lower_priority()
        while (job := self._jobs.get()) is not None:
            try:
                self._run(job)
            finally:
                self.done.append(job)
                try:
                    os.write(self._wake_fd, b"\x01")
                except OSError:  # the pipe is full: the loop is being woken anyway
                    pass

    def stop(self) -> None:
        for _ in self._started:
            self._jobs.put(None)


def lower_priority(nice: int = POOL_NICE) -> None:
    """Lower the calling thread's CPU priority to ``nice`` (per thread on Linux; else ignored)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass


def pooled(path: str, issuer_prefix: str = "") -> bool:
    """Whether a request for ``path`` runs in the page pool (:data:`POOLED_PREFIXES`)."""
    if issuer_prefix and path.startswith(issuer_prefix + "/"):
        path = path[len(issuer_prefix) :]
    for prefix in POOLED_PREFIXES:
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return True
    return False


class EventLoopWorker(base.Worker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn worker: a single-threaded event loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selector: selectors.BaseSelector | None = None
        self.connections: dict[int, _Connection] = {}
        self.accepting = False
        self._tls: ssl.SSLContext | None = None
        self._tls_stamp: tuple[float, ...] = ()
        self._tls_checked = -1.0
        self._last_notify = 0.0
        self._last_sweep = 0.0
        # The app's body cap (maxRequestBytes): no longer body is buffered for it.
        settings = getattr(self.app, "settings", None)
        self.body_limit: int = getattr(settings, "max_request_bytes", MAX_BODY_BYTES)
        # handshakeTimeoutSeconds, this worker's share of maxConnectionsPerAddress (0: no
        # cap), and the peers not capped (trustedProxies): see the module docstring.
        self.handshake_timeout = float(getattr(settings, "handshake_timeout", HANDSHAKE_SECONDS))
        self.per_address = per_worker(
            getattr(settings, "max_connections_per_address", CONNECTIONS_PER_ADDRESS),
            self.cfg.workers,
        )
        self.uncapped: tuple[Any, ...] = tuple(getattr(settings, "trusted_proxies", ()))
        self.by_address: dict[str, dict[int, _Connection]] = {}
        self._evictions = 0
        self._eviction_logged = -EVICTION_LOG_EVERY_SECONDS
        # The page pool (see the module docstring): gunicorn's ``threads`` threads (when
        # set above 1) and a bounded queue; made in run(), after the fork.
        self.pool: _PagePool | None = None
        self.pool_threads = self.cfg.threads if self.cfg.threads > 1 else POOL_THREADS
        self.pool_queue = int(getattr(settings, "page_queue", POOL_QUEUE))
        try:
            self.issuer_prefix = issuer_path(str(getattr(settings, "issuer", "")))
        except ValueError:
            self.issuer_prefix = ""

    # -- process life --------------------------------------------------------------------------

    def init_process(self) -> None:
        # Made here, after the fork: an epoll descriptor must not be shared by workers.
        self.selector = selectors.DefaultSelector()
        super().init_process()

    def _sel(self) -> selectors.BaseSelector:
        if self.selector is None:
            raise RuntimeError("the worker's event loop runs only after init_process")
        return self.selector

    def handle_exit(self, sig: Any, frame: Any) -> None:
        self.alive = False
        try:
            os.write(self.PIPE[1], b"\x00")  # wake the loop
        except OSError:
            pass

    def run(self) -> None:
        # The app is loaded: what exists now (modules, the app, its keys and mapping)
        # lives as long as the worker. Frozen, it is left out of every full collection,
        # which otherwise scans it all and pauses every connection of the worker.
        gc.collect()
        gc.freeze()
        self._sel().register(self.PIPE[0], _READ, self._wake)
        self.pool = _PagePool(self._run_job, self.pool_threads, self.pool_queue, self.PIPE[1])
        for listener in self.sockets:
            listener.setblocking(False)
        while self.alive:
            self._maybe_notify()
            self._set_accepting(len(self.connections) < self.cfg.worker_connections)
            self._poll(1.0)
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self._stop()

    def _stop(self) -> None:
        self._set_accepting(False)
        now = time.monotonic()
        for conn in list(self.connections.values()):
            if conn.job is None and not conn.inbuf and not conn.out:
                if conn.requests == 0 and conn.handshaken:
                    self._close(conn)  # nothing asked yet: nothing in flight
                else:
                    conn.deadline = min(conn.deadline, now + STOP_LINGER_SECONDS)
        stop_at = now + self.cfg.graceful_timeout
        while self.connections and time.monotonic() < stop_at:
            self._maybe_notify()
            self._poll(0.2)
        for conn in list(self.connections.values()):
            self._close(conn)
        for listener in self.sockets:
            listener.close()
        if self.pool is not None:
            self.pool.stop()

    def _maybe_notify(self) -> None:
        now = time.monotonic()
        if now - self._last_notify >= NOTIFY_EVERY_SECONDS:
            self._last_notify = now
            self.notify()

    def _wake(self, fileobj: Any, mask: int) -> None:
        try:
            while os.read(self.PIPE[0], 4096):
                pass
        except OSError:
            pass

    def _poll(self, timeout: float) -> None:
        try:
            ready = self._sel().select(timeout)
        except InterruptedError:
            ready = []
        for key, mask in ready:
            callback: Callable[[Any, int], None] = key.data
            callback(key.fileobj, mask)
        if self.pool is not None:
            while self.pool.done:
                self._job_done(self.pool.done.popleft())
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY_SECONDS:
            self._last_sweep = now
            for conn in [c for c in self.connections.values() if c.deadline <= now]:
                self.log.debug("closing connection from %s: timed out", conn.client)
                self._close(conn)

    # -- accepting -----------------------------------------------------------------------------

    def _set_accepting(self, enabled: bool) -> None:
        if enabled == self.accepting:
            return
        for listener in self.sockets:
            if enabled:
                self._sel().register(listener, _READ, self._accept)
            else:
                self._sel().unregister(listener)
        self.accepting = enabled

    def _accept(self, listener: Any, mask: int) -> None:
        for _ in range(16):  # a few at a time: the others still get served
            if len(self.connections) >= self.cfg.worker_connections:
                return
            try:
                raw, addr = listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                    self.log.warning("accept failed: %s", e)
                    return
                raise
            raw.setblocking(False)
            if raw.family in (socket.AF_INET, socket.AF_INET6):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: socket.socket = raw
            if self.cfg.is_ssl:
                try:
                    sock = self._tls_context().wrap_socket(
                        raw,
                        server_side=True,
                        do_handshake_on_connect=False,
                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                    )
                except (OSError, ssl.SSLError) as e:
                    self.log.warning("cannot start TLS on a connection: %s", e)
                    raw.close()
                    continue
            conn = _Connection(sock, addr, listener.getsockname())
            conn.pool = self.pool
            conn.handshaken = not self.cfg.is_ssl
            now = time.monotonic()
            # The handshake and the first request byte, together, get the short deadline.
            conn.deadline = now + self.handshake_timeout
            conn.since = now
            self._admit(conn, now)
            self.connections[conn.fd] = conn
            self._want(conn, _READ)
            self._on_event(conn, _READ)  # the client may have sent already

    def _admit(self, conn: _Connection, now: float) -> None:
        """Count ``conn`` under its peer address; at the address's cap, close the one of
        its connections that has waited longest (whatever it waits for) to make room.

        Closing the oldest rather than refusing the newest: a client that opens
        connections and sends nothing, or sends slowly, only ever displaces its
        own; a kubelet probe or a kube-apiserver behind the same address still
        gets in, and is displaced only by ``cap`` newer connections from that
        address arriving before its request is answered.
        """
        if self.per_address <= 0 or not isinstance(conn.client, tuple) or not conn.client:
            return
        address = connection_address(str(conn.client[0]), self.uncapped)
        if address is None:
            return
        held = self.by_address.get(address)
        while held and len(held) >= self.per_address:
            self._close(min(held.values(), key=lambda c: c.since))
            self._evictions += 1
            if now - self._eviction_logged >= EVICTION_LOG_EVERY_SECONDS:
                self._eviction_logged = now
                self.log.warning(
                    "client address %s is at its cap of %d connections to this worker"
                    " (maxConnectionsPerAddress): its longest-waiting connection was closed"
                    " for a new one (%d such closes since the last message)",
                    address,
                    self.per_address,
                    self._evictions,
                )
                self._evictions = 0
        conn.address = address
        self.by_address.setdefault(address, {})[conn.fd] = conn

    def _tls_context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if self._tls is None or now - self._tls_checked >= 1.0:
            self._tls_checked = now
            paths = (self.cfg.certfile, self.cfg.keyfile, self.cfg.ca_certs)
            stamp = tuple(_mtime(p) for p in paths)
            if self._tls is None or stamp != self._tls_stamp:
                context = gunicorn_sock.ssl_context(self.cfg)
                context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
                self._tls, self._tls_stamp = context, stamp
        return self._tls

    # -- a connection --------------------------------------------------------------------------

    def _want(self, conn: _Connection, events: int) -> None:
        if conn.events == events:
            return
        if conn.events == 0:
            self._sel().register(conn.sock, events, lambda _f, m, c=conn: self._on_event(c, m))
        else:
            self._sel().modify(conn.sock, events, lambda _f, m, c=conn: self._on_event(c, m))
        conn.events = events

    def _pause(self, conn: _Connection) -> None:
        if conn.events:
            self._sel().unregister(conn.sock)
            conn.events = 0

    def _close(self, conn: _Connection) -> None:
        fd = conn.fd
        if conn.events and self.selector is not None:
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.events = 0
        if self.connections.get(fd) is conn:  # a later connection may have its fd number
            del self.connections[fd]
        if conn.address is not None:
            held = self.by_address.get(conn.address)
            if held is not None and held.get(fd) is conn:
                del held[fd]
                if not held:
                    del self.by_address[conn.address]
            conn.address = None
        try:
            conn.sock.close()
        except OSError:
            pass

    def _on_event(self, conn: _Connection, mask: int) -> None:
        if self.connections.get(conn.fd) is not conn:
            return  # closed for a newer connection (_admit) earlier in this batch of events
        try:
            if not conn.handshaken:
                if not self._handshake(conn):
                    return
            if conn.out and not self._flush(conn):
                return
            if not conn.close_after and conn.job is None:
                if not self._read(conn):
                    return
                while True:
                    served = conn.requests
                    self._serve_buffered(conn)
                    if conn.out and not self._flush(conn):
                        return  # the socket is full: the rest when it drains
                    if (
                        conn.requests == served
                        or not conn.inbuf
                        or conn.close_after
                        or conn.job is not None
                    ):
                        break  # nothing more whole in the buffer (or closing, or waiting)
                    # a batch of pipelined requests answered: serve what is still buffered
            if conn.job is not None:
                # Its page request is in the pool: nothing more is read from it (the
                # answers stay in order) until that answer is back (_job_done).
                self._pause(conn)
                return
            if conn.eof and not conn.out:
                conn.close_after = True  # nothing more can come: whatever is left is cut
            if conn.close_after and not conn.out and not self._draining(conn):
                self._close(conn)
        except OSError as e:
            if e.errno not in (None, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.debug("connection from %s failed: %s", conn.client, e)
            self._close(conn)

    def _handshake(self, conn: _Connection) -> bool:
        sock = conn.sock
        if not isinstance(sock, ssl.SSLSocket):
            conn.handshaken = True
            return True
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(conn, _READ)
            return False
        except ssl.SSLWantWriteError:
            self._want(conn, _WRITE)
            return False
        except (ssl.SSLError, OSError) as e:
            self.log.debug("TLS handshake with %s failed: %s", conn.client, e)
            self._close(conn)
            return False
        conn.handshaken = True
        self._want(conn, _READ)
        return True

    def _read(self, conn: _Connection) -> bool:
        """Read what is there; False when the connection is gone or waits to write."""
        if conn.close_after:
            return True
        limit = _head_limit(self.cfg) + 2 * self.body_limit + 1024
        while True:
            try:
                data = conn.sock.recv(RECV_BYTES)
            except (ssl.SSLWantReadError, BlockingIOError):
                return True
            except ssl.SSLWantWriteError:
                self._want(conn, _WRITE)
                return False
            except ssl.SSLError as e:
                self.log.debug("TLS error from %s: %s", conn.client, e)
                self._close(conn)
                return False
            if not data:
                # The client is done sending (a half-close, or gone): what it sent
                # whole is still answered, then the connection closes.
                if not conn.inbuf:
                    self._close(conn)
                    return False
                conn.eof = True
                return True
            if not conn.inbuf:
                conn.since = time.monotonic()  # a request started
                conn.deadline = conn.since + self.cfg.timeout
            conn.inbuf += data
            if len(conn.inbuf) > limit:
                return True  # _serve_buffered answers 413 or 431 and closes
            if len(data) < RECV_BYTES and not (
                isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()
            ):
                return True

    def _draining(self, conn: _Connection) -> bool:
        """Drop what is left of a body the app refused unread; True while more is due.

        Closing with unread bytes in the socket makes the kernel send a reset,
        which can destroy the answer before the client reads it (as gunicorn's
        own ``finish_body`` avoids). At most :data:`DRAIN_MAX_BYTES`, for at most
        :data:`DRAIN_SECONDS`; then the connection closes whatever is left.
        """
        while conn.drain > 0:
            try:
                data = conn.sock.recv(min(RECV_BYTES, conn.drain))
            except (ssl.SSLWantReadError, BlockingIOError):
                self._want(conn, _READ)
                return True
            except (ssl.SSLError, OSError):
                return False
            if not data:
                return False
            conn.drain -= len(data)
        return False

    def _flush(self, conn: _Connection) -> bool:
        """Write the buffered answer; False when the socket is full (wait) or gone."""
        data = b"".join(conn.out) if len(conn.out) > 1 else conn.out[0]
        conn.out.clear()
        view = memoryview(data)
        while view:
            try:
                sent = conn.sock.send(view)
            except (ssl.SSLWantWriteError, BlockingIOError):
                conn.out.append(bytes(view))
                self._want(conn, _WRITE)
                conn.deadline = time.monotonic() + self.cfg.timeout
                return False
            except ssl.SSLWantReadError:
                conn.out.append(bytes(view))
                self._want(conn, _READ)
                return False
            view = view[sent:]
        self._want(conn, _READ)
        if not self.alive:
            conn.close_after = True
        elif not conn.close_after:  # idle now: the keep-alive limit applies
            conn.since = time.monotonic()
            conn.deadline = conn.since + self.cfg.keepalive
        return True

    # -- requests ------------------------------------------------------------------------------

    def _serve_buffered(self, conn: _Connection) -> None:
        """Answer every whole request in the buffer (pipelining), in order."""
        # Pipelined requests are answered a batch at a time: a client that sends many
        # and reads nothing fills its socket, and the rest waits until it reads.
        while (
            conn.inbuf
            and not conn.close_after
            and conn.job is None
            and len(conn.out) < MAX_PIPELINED
        ):
            try:
                req, used, cut = self._parse(conn)
            except _Incomplete:
                return
            except (StopIteration, http_errors.NoMoreData):
                return
            except _TooLarge:
                self._refuse(conn, 413, "Request Entity Too Large", "the body is too large")
                return
            except Exception as e:  # a request gunicorn's parser refuses: 400, 431, 501 ...
                self.handle_error(None, conn.answer, conn.client, e)
                conn.close_after = True
                conn.inbuf.clear()
                return
            del conn.inbuf[:used]
            conn.continued = False
            conn.requests += 1
            if self.pool is not None and pooled(req.path or "", self.issuer_prefix):
                self._to_pool(conn, req, force_close=cut is not None)
            else:
                self._run_app(conn, req, force_close=cut is not None)
            if cut is not None:
                # The rest of that body is still on its way: drop it, then close.
                conn.close_after = True
                conn.drain = cut if cut <= DRAIN_MAX_BYTES else 0
                conn.deadline = time.monotonic() + min(self.cfg.timeout, DRAIN_SECONDS)
                conn.inbuf.clear()

    def _parse(self, conn: _Connection) -> tuple[Request, int, int | None]:
        """The first whole request in the buffer, the bytes it used, and how many of its
        body bytes are still to come when it goes to the app without its body (else None).

        A body declared over the app's cap is not waited for: the request goes to
        the app with its head and no body, so the app answers as it does for any
        oversized body (after checking the caller), and the connection closes.
        """
        buf = bytes(conn.inbuf)
        if b"\r\n\r\n" not in buf and b"\n\n" not in buf:
            if len(buf) > _head_limit(self.cfg):
                raise http_errors.LimitRequestHeaders("the request head is too large")
            raise _Incomplete()
        unreader = IterUnreader([buf])
        req = Request(self.cfg, unreader, conn.client, conn.requests + 1)
        head = len(buf) - len(unreader.buf.getvalue())
        length = getattr(req.body.reader, "length", None)  # Content-Length; None if chunked
        if isinstance(length, int) and length > self.body_limit:
            req.body = Body(io.BytesIO(b""))
            return req, len(buf), max(0, length - (len(buf) - head))
        try:
            body = req.body.read()
        except http_errors.NoMoreData:
            if len(buf) - head > 2 * self.body_limit + 1024:
                raise _TooLarge() from None  # a chunked body that does not end in time
            self._continue(conn, req)
            raise _Incomplete() from None
        if isinstance(length, int) and len(body) < length:
            self._continue(conn, req)
            raise _Incomplete()
        rest = unreader.buf.getvalue()
        req.body = Body(io.BytesIO(body))
        return req, len(buf) - len(rest), None

    def _continue(self, conn: _Connection, req: Request) -> None:
        if getattr(req, "_expected_100_continue", False) and not conn.continued:
            conn.continued = True
            conn.out.append(CONTINUE)

    def _refuse(self, conn: _Connection, status: int, reason: str, message: str) -> None:
        gunicorn_util.write_error(conn.answer, status, reason, message)
        conn.close_after = True
        conn.inbuf.clear()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's error page and log line, with nothing secret-shaped in what they quote.

        gunicorn repeats the request line, method or header it refused, in its
        log and in the HTML page it answers; a token or secret sent there
        (say, as a header without a colon) goes out :func:`audit.redact`-ed.
        """
        for name, value in list(vars(exc).items()):
            if isinstance(value, str):
                setattr(exc, name, audit.redact(value))
        exc.args = tuple(audit.redact(a) if isinstance(a, str) else a for a in exc.args)
        super().handle_error(req, client, addr, exc)

    def _run_app(self, conn: _Connection, req: Request, *, force_close: bool = False) -> None:
        self._count_request()
        if self._call_app(conn, req, conn.answer, force_close=force_close):
            conn.close_after = True

    def _count_request(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests:
            if self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False

    def _call_app(
        self, conn: _Connection, req: Request, answer: _Answer, *, force_close: bool
    ) -> bool:
        """Run the app for ``req``, its answer appended to ``answer.out``; True: close after.

        Runs in the loop, or in a pool thread for a page request (then ``answer`` is
        the job's own, and nothing here touches the connection but its client address).
        """
        environ: dict[str, Any] = {}
        resp = None
        started = datetime.now()
        out = answer.out
        mark = len(out)  # answers to earlier pipelined requests stay
        close = False
        try:
            self.cfg.pre_request(self, req)
            resp, environ = wsgi.create(req, answer, conn.client, conn.server, self.cfg)
            environ["wsgi.multithread"] = answer is not conn.answer
            if force_close or not self.alive or not self.cfg.keepalive:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            if not self.alive:  # stopped while the app ran (Flask has not sent headers yet)
                resp.force_close()
            try:
                for item in respiter:
                    resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - started)
                respclose = getattr(respiter, "close", None)
                if respclose is not None:
                    respclose()
            close = bool(resp.should_close())
        except Exception as e:
            # Nothing of this answer reached the client yet (it is written when
            # complete): drop what the app produced and answer 500 instead.
            close = True
            del out[mark:]
            self.handle_error(req, answer, conn.client, e)
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return close

    # -- the page pool -------------------------------------------------------------------------

    def _to_pool(self, conn: _Connection, req: Request, *, force_close: bool) -> None:
        """Hand a page request to the pool; when it is full, answer 503 with Retry-After."""
        pool = self.pool
        assert pool is not None  # noqa: S101 - _serve_buffered checked
        # The client certificate is read here, in the loop: the TLS object is the loop's.
        if isinstance(conn.sock, ssl.SSLSocket):
            conn.peer_cert(True)
            conn.peer_cert(False)
        job = _Job(conn, req, force_close)
        if not pool.submit(job):
            close = force_close or bool(req.should_close()) or not self.alive
            conn.out.append(
                BUSY
                % (
                    RETRY_AFTER_SECONDS,
                    len(BUSY_TEXT),
                    b"Connection: close\r\n" if close else b"",
                    BUSY_TEXT,
                )
            )
            if close:
                conn.close_after = True
            self.log.warning(
                "the page pool is full (%d running, %d waiting): 503 for %s",
                pool.threads,
                pool.queued,
                conn.client,
            )
            return
        self._count_request()
        conn.job = job
        # The answer is the app's to bound (argon2's slot wait, the store's timeouts); the
        # request timeout still closes a connection whose answer never comes back.
        conn.deadline = time.monotonic() + self.cfg.timeout

    def _run_job(self, job: _Job) -> None:
        """In a pool thread: the app for the job's request."""
        job.close = self._call_app(job.conn, job.req, job.answer, force_close=job.force_close)

    def _job_done(self, job: _Job) -> None:
        """In the loop: a page answer is back; write it, then serve what the client sent next."""
        assert self.pool is not None  # noqa: S101 - only the pool makes jobs
        self.pool.waiting -= 1
        conn = job.conn
        conn.job = None
        if self.connections.get(conn.fd) is not conn:
            return  # closed meanwhile (timed out, or the worker stopped)
        conn.out.extend(job.answer.out)
        if job.close:
            conn.close_after = True
        self._on_event(conn, _READ)


class _TooLarge(Exception):
    """A chunked request body keeps coming past what is buffered for it."""


def _head_limit(cfg: Any) -> int:
    line = cfg.limit_request_line or 8190
    fields = cfg.limit_request_fields or 100
    size = cfg.limit_request_field_size or 8190
    return line + fields * (size + 2) + 4


def _mtime(path: str | None) -> float:
    if not path:
        return 0.0
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


__all__ = ["MAX_BODY_BYTES", "EventLoopWorker"]
