"""A small HTTPS/1.1 load generator that presents a client certificate (wrk cannot).

Each connection is a blocking TLS socket kept alive for the whole phase; the
requests are complete, pre-built byte strings (request line, headers, body),
and answers are read with a minimal parser (status line, ``Content-Length``),
so the generator spends as little CPU as possible: it shares the machine with
the server. Several processes (``processes``) each run several threads, one
connection per thread; the TLS handshakes happen before the clock starts.

Two modes:

* :func:`closed_loop`: fixed concurrency, each connection sends its next request
  as soon as the previous answer arrived: the maximum rate.
* :func:`open_loop`: a fixed arrival rate. Request *i* is due at
  ``start + i / rate``; its latency is measured from that due time, not from
  when it was actually sent, so a stall shows as latency of every request
  queued behind it (no coordinated omission, as in wrk2).

Every phase is bounded by a request count and a duration, whichever ends first.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import re
import signal
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CONN_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
_START_DELAY = 1.0  # seconds for every connection to be made before the first request


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    cafile: str
    cert: tuple[str, str] | None = None  # (certificate, key) to present, or None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cafile)
        if self.cert is not None:
            ctx.load_cert_chain(*self.cert)
        return ctx


def build_request(
    target: Target,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Conn:
    def __init__(self, target: Target, ctx: ssl.SSLContext) -> None:
        self.target = target
        self.ctx = ctx
        self.sock: ssl.SSLSocket | None = None
        self.reconnects = -1
        self._connect()

    def _connect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        raw = socket.create_connection((self.target.host, self.target.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.ctx.wrap_socket(raw, server_hostname=self.target.host)
        self.reconnects += 1

    def roundtrip(self, req: bytes) -> tuple[int, bytes]:
        try:
            return self._roundtrip(req)
        except (OSError, ValueError):
            self._connect()  # one retry on a fresh connection, then give up
            return self._roundtrip(req)

    def _roundtrip(self, req: bytes) -> tuple[int, bytes]:
        sock = self.sock
        assert sock is not None
        sock.sendall(req)
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head = data[:end]
        status = int(head[9:12])
        m = _CONTENT_LENGTH.search(head)
        if m is None:
            raise ValueError("an answer without Content-Length")
        need = end + 4 + int(m.group(1))
        while len(data) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-answer")
            data += chunk
        if _CONN_CLOSE.search(head):
            self._connect()
        return status, data[end + 4 : need]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


Check = Callable[[int, bytes], bool]


@dataclass
class Result:
    """One phase: latencies in seconds, answers by status, and the generator's own CPU."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    ok: int = 0  # answers that passed the phase's check
    errors: int = 0  # requests that got no answer at all
    reconnects: int = 0
    started: float = 0.0  # monotonic
    finished: float = 0.0  # monotonic, last answer
    gen_cpu: float = 0.0  # seconds of CPU the generator processes used
    late: int = 0  # open loop: requests sent more than 1 ms after they were due
    service: list[float] = field(default_factory=list)  # open loop: from the actual send

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def wall(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.count / self.wall

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.service += other.service
        self.statuses.update(other.statuses)
        self.ok += other.ok
        self.errors += other.errors
        self.reconnects += other.reconnects
        self.started = min(self.started, other.started) if self.started else other.started
        self.finished = max(self.finished, other.finished)
        self.gen_cpu += other.gen_cpu
        self.late += other.late


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _connect_all(target: Target, count: int, warmup: bytes) -> list[_Conn]:
    """``count`` connections, opened at once, each sending ``warmup`` once.

    gunicorn's gthread worker gives a new connection a thread until its first
    request has been answered; connections that sit idle after the handshake
    would hold all of a worker's threads, and the next handshake would wait.
    A kube-apiserver sends its request right after connecting, and so do we.
    """
    ctx = target.context()
    conns: list[_Conn | BaseException] = [RuntimeError("not connected")] * count

    def one(j: int) -> None:
        try:
            conn = _Conn(target, ctx)
            status, _ = conn.roundtrip(warmup)
            if status >= 500:
                raise RuntimeError(f"warm-up request answered {status}")
            conns[j] = conn
        except BaseException as e:
            conns[j] = e

    threads = [threading.Thread(target=one, args=(j,)) for j in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        if isinstance(c, BaseException):
            raise c
    return [c for c in conns if isinstance(c, _Conn)]


def _child_signals() -> None:
    """In a forked child: default SIGTERM, and Ctrl-C left to the parent (which stops us)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _run_processes(
    worker: Callable[[Connection, int], None], processes: int, timeout: float
) -> Result:
    ctx = mp.get_context("fork")  # the children inherit the pre-built requests as they are
    pipes: list[Connection] = []
    procs = []
    for i in range(processes):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=worker, args=(child, i), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    total = Result()
    try:
        for pipe in pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("a load generator process did not report in time")
            part = pipe.recv()
            if isinstance(part, BaseException):
                raise RuntimeError(f"load generator failed: {part!r}") from part
            total.merge(part)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    return total


def closed_loop(
    target: Target,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    processes: int,
    duration: float,
    max_requests: int,
    check: Check,
    warmup: bytes,
) -> Result:
    """Fixed concurrency, back to back, until ``duration`` or ``max_requests``.

    Request *i* (over all connections) is ``requests[i % len(requests)]``: a list
    at least ``max_requests`` long sends each request once.
    """
    if concurrency % processes:
        raise ValueError("concurrency must be a multiple of processes")
    threads = concurrency // processes
    start_at = time.monotonic() + _START_DELAY + 0.05 * concurrency
    n = len(requests)

    def worker(out: Connection, index: int) -> None:
        _child_signals()
        try:
            conns = _connect_all(target, threads, warmup)
            counter = itertools.count(index, processes)  # this process's share of indices
            result = Result(started=max(start_at, time.monotonic()))
            lock = threading.Lock()
            deadline = start_at + duration
            cpu0 = _cpu()

            def loop(conn: _Conn) -> None:
                lat: list[float] = []
                statuses: Counter[int] = Counter()
                ok = errors = 0
                last = start_at
                now = time.monotonic()
                if now < start_at:
                    time.sleep(start_at - now)
                while True:
                    i = next(counter)
                    if i >= max_requests:
                        break
                    t0 = time.monotonic()
                    if t0 >= deadline:
                        break
                    try:
                        status, body = conn.roundtrip(requests[i % n])
                    except (OSError, ValueError):
                        errors += 1
                        continue
                    last = time.monotonic()
                    lat.append(last - t0)
                    statuses[status] += 1
                    ok += check(status, body)
                with lock:
                    result.latencies += lat
                    result.statuses.update(statuses)
                    result.ok += ok
                    result.errors += errors
                    result.finished = max(result.finished, last)

            ts = [threading.Thread(target=loop, args=(c,)) for c in conns]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            result.gen_cpu = _cpu() - cpu0
            result.reconnects = sum(c.reconnects for c in conns)
            for c in conns:
                c.close()
            out.send(result)
        except BaseException as e:  # report it: the parent would otherwise wait in vain
            out.send(e)
        finally:
            out.close()

    return _run_processes(worker, processes, timeout=duration + 60)


def open_loop(
    target: Target,
    requests: Sequence[bytes],
    *,
    rate: float,
    connections: int,
    duration: float,
    check: Check,
    warmup: bytes,
) -> Result:
    """``rate`` requests per second over ``connections`` connections for ``duration`` seconds.

    Connection *j* sends requests *j*, *j + connections*, … each at its due time
    (one process: at a few hundred requests per second the generator is idle
    most of the time, and one process keeps its clock reads consistent).
    """
    total_requests = int(rate * duration)
    start_at = time.monotonic() + _START_DELAY + 0.05 * connections
    n = len(requests)

    def worker(out: Connection, index: int) -> None:
        _child_signals()
        try:
            conns = _connect_all(target, connections, warmup)
            result = Result(started=max(start_at, time.monotonic()))
            lock = threading.Lock()
            cpu0 = _cpu()

            def loop(j: int, conn: _Conn) -> None:
                lat: list[float] = []
                service: list[float] = []
                statuses: Counter[int] = Counter()
                ok = errors = late = 0
                last = start_at
                for i in range(j, total_requests, connections):
                    due = start_at + i / rate
                    now = time.monotonic()
                    if now < due:
                        time.sleep(due - now)
                    t0 = time.monotonic()
                    late += t0 - due > 0.001
                    try:
                        status, body = conn.roundtrip(requests[i % n])
                    except (OSError, ValueError):
                        errors += 1
                        continue
                    last = time.monotonic()
                    lat.append(last - due)
                    service.append(last - t0)
                    statuses[status] += 1
                    ok += check(status, body)
                with lock:
                    result.latencies += lat
                    result.service += service
                    result.statuses.update(statuses)
                    result.ok += ok
                    result.errors += errors
                    result.late += late
                    result.finished = max(result.finished, last)

            ts = [threading.Thread(target=loop, args=(j, c)) for j, c in enumerate(conns)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            result.gen_cpu = _cpu() - cpu0
            result.reconnects = sum(c.reconnects for c in conns)
            for c in conns:
                c.close()
            out.send(result)
        except BaseException as e:
            out.send(e)
        finally:
            out.close()

    return _run_processes(worker, 1, timeout=duration + 60)
