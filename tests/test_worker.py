"""authbridge's gunicorn worker (:mod:`authbridge.web.worker`) over real sockets.

A real gunicorn master runs the worker (``tests/worker_server.py``) with a
tiny WSGI app and short limits (``timeout`` 5 s, ``keepalive`` 1 s, a
handshake-and-first-byte deadline of 1 s, 8 connections, 4 per client
address, 127.0.0.9 a trusted proxy), over TLS with optional client
certificates, and once over plain HTTP. Every test speaks raw HTTP/1.1 bytes,
so what is checked is the wire: keep-alive, pipelining, bodies that arrive in
pieces, ``Expect: 100-continue``, a slow client that must not hold up the
others, the timeouts, an app that raises, oversized heads and bodies, the
client certificate the app sees, a renewed serving certificate, the
connection cap, and a graceful stop.

Connection exhaustion (one address opening idle or slow connections until
no slot is left): clients come from several loopback addresses (127.0.0.2 …,
all local on Linux) by binding their sockets; one address that opens many
times its cap of connections does not keep another address, nor a new
connection from itself, from being answered; a connection that never
finishes TLS or never sends a byte is closed after the short deadline, not
the request timeout; a trusted proxy's connections are not capped.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge import pki
from authbridge.iam.credentials import Pepper
from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5  # the worker's request timeout, seconds
KEEPALIVE = 1  # its idle keep-alive, seconds
HANDSHAKE = 1  # its deadline for the TLS handshake and the first request byte, seconds
PER_ADDRESS = 4  # connections one client address may hold (of worker_connections = 8)
PROXY = "127.0.0.9"  # a trusted proxy: not capped per address


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]
    tls_dir: Path | None
    ca: pki.CertKey | None
    log: Path
    holds: Path  # a file NAME here releases the app's /api/hold?k=NAME

    def release(self, name: str) -> None:
        (self.holds / name).touch()

    def connect(
        self, cert: pki.CertKey | None = None, source: str = "127.0.0.1", timeout: float = 10
    ) -> socket.socket:
        raw = self.raw(source, timeout)
        if self.tls_dir is None:
            return raw
        ctx = ssl.create_default_context(cafile=str(self.tls_dir / "ca.crt"))
        if cert is not None:
            (self.tls_dir / "client.crt").write_bytes(cert.cert_pem)
            (self.tls_dir / "client.key").write_bytes(cert.key_pem)
            ctx.load_cert_chain(self.tls_dir / "client.crt", self.tls_dir / "client.key")
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def raw(self, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
        """A TCP connection from ``source`` (any 127.0.0.0/8 address), nothing sent."""
        return socket.create_connection(
            ("127.0.0.1", self.port), timeout=timeout, source_address=(source, 0)
        )


def _start(tmp: Path, tls: bool) -> Served:
    port = free_port()
    tls_dir: Path | None = None
    ca = None
    if tls:
        tls_dir = tmp / "tls"
        tls_dir.mkdir()
        ca = pki.new_ca("worker test CA")
        leaf = pki.issue_server_cert(ca)
        (tls_dir / "ca.crt").write_bytes(ca.cert_pem)
        (tls_dir / "server.crt").write_bytes(leaf.cert_pem)
        (tls_dir / "server.key").write_bytes(leaf.key_pem)
    log = tmp / "server.log"
    holds = tmp / "holds"
    holds.mkdir()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_server", str(port)]
            + [str(tls_dir) if tls_dir else "-", str(TIMEOUT), str(KEEPALIVE)]
            + [str(HANDSHAKE), str(PER_ADDRESS), f"{PROXY}/32"],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "WORKER_TEST_HOLD_DIR": str(holds)},
        )
    served = Served(port, proc, tls_dir, ca, log, holds)
    deadline = time.monotonic() + 20
    while True:
        try:
            with served.connect() as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if read_all(s).startswith(b"HTTP/1.1 200"):
                    return served
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the test server did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.1)


def _stop(served: Served) -> None:
    if served.proc.poll() is None:
        os.killpg(served.proc.pid, signal.SIGTERM)
        try:
            served.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _start(tmp_path_factory.mktemp("worker-tls"), tls=True)
    yield served
    _stop(served)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _start(tmp_path_factory.mktemp("worker-plain"), tls=False)
    yield served
    _stop(served)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_answer(sock: socket.socket, buffered: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One answer (status, headers, body) framed by Content-Length; ``buffered`` carries over."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer; got {bytes(buffered)!r}")
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        rest += chunk
    buffered[:] = rest[length:]
    return status, headers, rest[:length]


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True


# -- the ordinary path ---------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tls_server", "plain_server"])
def test_keep_alive_serves_many_requests_on_one_connection(
    which: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(which)
    with served.connect() as s:
        buffered = bytearray()
        for i in range(50):
            body = f"request {i}".encode()
            s.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
            status, headers, answer = read_answer(s, buffered)
            assert (status, answer) == (200, body)
            assert headers.get("connection", "").lower() != "close"


def test_pipelined_requests_are_answered_in_order(tls_server: Served) -> None:
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(5)
    )
    with tls_server.connect() as s:
        s.sendall(requests + b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buffered = bytearray()
        answers = [read_answer(s, buffered)[2] for _ in range(6)]
        assert answers == [b"0", b"1", b"2", b"3", b"4", b"hello"]
        assert closed_by_server(s, within=2)


def test_many_pipelined_requests_are_all_answered_in_batches(tls_server: Served) -> None:
    # More than one batch (MAX_PIPELINED) sent at once, then nothing more: every one
    # is answered although no new bytes arrive to wake the worker.
    count = 100
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%d" % (len(b"%d" % i), i)
        for i in range(count)
    )
    with tls_server.connect() as s:
        s.sendall(requests)
        buffered = bytearray()
        answers = [read_answer(s, buffered)[2] for _ in range(count)]
    assert answers == [b"%d" % i for i in range(count)]


def test_a_request_arriving_in_pieces_is_answered_once_whole(tls_server: Served) -> None:
    body = b"a" * 3000
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n" + body
    with tls_server.connect() as s:
        for i in range(0, len(request), 700):
            s.sendall(request[i : i + 700])
            time.sleep(0.02)
        status, _, answer = read_answer(s, bytearray())
    assert (status, answer) == (200, body)


def test_a_chunked_body_reaches_the_app_whole(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.sendall(b"5\r\nhello\r\n")
        time.sleep(0.05)
        s.sendall(b"6\r\n world\r\n0\r\n\r\n")
        status, _, answer = read_answer(s, bytearray())
    assert (status, answer) == (200, b"hello world")


def test_expect_100_continue_gets_its_interim_answer_before_the_body(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        s.settimeout(5)
        interim = s.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        status, _, answer = read_answer(s, bytearray())
    assert (status, answer) == (200, b"body")


def test_a_large_answer_is_written_whole(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"GET /big?n=3000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)  # the worker fills the socket and waits for it to drain
        status, _, answer = read_answer(s, bytearray())
    assert status == 200 and answer == b"x" * 3_000_000


# -- clients that misbehave ----------------------------------------------------------------


def test_a_slow_client_does_not_hold_up_the_others(tls_server: Served) -> None:
    with tls_server.connect() as slow, tls_server.connect() as fast:
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        fast.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, answer = read_answer(fast, bytearray())
        assert (status, answer) == (200, b"hello")
        assert time.monotonic() - started < 1.0


def test_a_request_that_stalls_is_dropped_after_the_timeout(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        assert closed_by_server(s, within=TIMEOUT + 3)
        assert TIMEOUT - 0.5 <= time.monotonic() - started <= TIMEOUT + 2


def test_a_connection_that_never_starts_tls_is_dropped_after_the_handshake_deadline(
    tls_server: Served,
) -> None:
    # Connection exhaustion: a slot held without a handshake is freed after the short
    # deadline (HANDSHAKE, swept within a second), long before the request timeout.
    with tls_server.raw() as raw:
        started = time.monotonic()
        assert closed_by_server(raw, within=TIMEOUT + 3)  # type: ignore[arg-type]
        assert time.monotonic() - started < TIMEOUT - 1.5


@pytest.mark.parametrize("which", ["tls_server", "plain_server"])
def test_a_connection_that_sends_no_request_is_dropped_after_the_handshake_deadline(
    which: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(which)
    with served.connect() as s:  # TLS done (on the TLS server), then not a byte
        started = time.monotonic()
        assert closed_by_server(s, within=TIMEOUT + 3)
        assert time.monotonic() - started < TIMEOUT - 1.5


def test_the_first_byte_starts_the_request_timeout(plain_server: Served) -> None:
    # The short deadline is for the first byte only: a request begun in time has the
    # whole request timeout to arrive.
    with plain_server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\n")
        time.sleep(HANDSHAKE + 1.5)
        s.sendall(b"Host: x\r\n\r\n")
        assert read_answer(s, bytearray())[0] == 200


def test_an_idle_keep_alive_connection_is_closed(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(s, bytearray())[0] == 200
        started = time.monotonic()
        assert closed_by_server(s, within=KEEPALIVE + 3)
        assert time.monotonic() - started <= KEEPALIVE + 2


def test_garbage_gets_400_and_the_connection_closes(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"\x00\x01 not http\r\n\r\n")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")


def test_too_many_header_fields_get_431(tls_server: Served) -> None:
    fields = b"".join(b"X-H%d: v\r\n" % n for n in range(30))
    with tls_server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 431")


def test_an_endless_head_gets_an_error_not_unbounded_memory(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200_000)
        answer = read_all(s)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:100]


def test_a_declared_body_over_the_cap_goes_to_the_app_without_waiting(tls_server: Served) -> None:
    # The body is announced and never sent: the app answers from the head alone.
    with tls_server.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_a_refused_body_sent_whole_still_lets_the_client_read_the_answer(
    tls_server: Served,
) -> None:
    # The app answers from the head; the worker reads and drops the rest of the body
    # before closing, so no reset destroys the answer in the client's buffer.
    for _ in range(5):
        with tls_server.connect() as s:
            s.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"a" * 200_000
            )
            answer = read_all(s)
        assert answer.startswith(b"HTTP/1.1 413") and b"Connection: close" in answer


def test_an_endless_chunked_body_gets_413(tls_server: Served) -> None:
    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
    with tls_server.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(3):  # 12 KiB: over twice the app's 4 KiB cap
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


# -- the app -------------------------------------------------------------------------------


def test_an_app_that_raises_gets_500_after_the_earlier_answers(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 500 Internal Server Error" in answer
    assert "RuntimeError: boom" in tls_server.log.read_text()


def test_the_app_sees_the_verified_client_certificate(tls_server: Served) -> None:
    assert tls_server.ca is not None
    cert = pki.issue_client_cert(tls_server.ca, common_name="kube-apiserver", organization="prod")
    with tls_server.connect(cert) as s:
        buffered = bytearray()
        for _ in range(2):  # decoded once per connection; the same on every request
            s.sendall(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(s, buffered)[2] == b'["kube-apiserver", ["prod"]]'
    with tls_server.connect() as s:
        s.sendall(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(s).endswith(b"null")


def test_a_certificate_from_another_ca_fails_the_handshake(tls_server: Served) -> None:
    other = pki.issue_client_cert(pki.new_ca("someone else"), common_name="intruder")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with tls_server.connect(other) as s:
            s.sendall(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_all(s) == b""
            raise ConnectionResetError("closed without an answer")


def test_a_renewed_serving_certificate_is_used_for_new_connections(tls_server: Served) -> None:
    assert tls_server.tls_dir is not None and tls_server.ca is not None
    renewed = pki.issue_server_cert(tls_server.ca, hostnames=("renewed.test",))
    old_cert = (tls_server.tls_dir / "server.crt").read_bytes()
    old_key = (tls_server.tls_dir / "server.key").read_bytes()
    try:
        (tls_server.tls_dir / "server.key").write_bytes(renewed.key_pem)
        (tls_server.tls_dir / "server.crt").write_bytes(renewed.cert_pem)
        time.sleep(1.2)  # the worker looks at the files at most once a second
        deadline = time.monotonic() + 5
        while True:
            with tls_server.connect() as s:
                der = s.getpeercert(binary_form=True)
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert read_all(s).startswith(b"HTTP/1.1 200")
            if der == ssl.PEM_cert_to_DER_cert(renewed.cert_pem.decode()):
                break
            assert time.monotonic() < deadline, "the renewed certificate was never served"
            time.sleep(0.3)
    finally:
        (tls_server.tls_dir / "server.key").write_bytes(old_key)
        (tls_server.tls_dir / "server.crt").write_bytes(old_cert)


def test_a_slow_app_request_delays_only_its_worker_not_the_answer(tls_server: Served) -> None:
    # One worker runs one request at a time: the next waits, and is then answered.
    with tls_server.connect() as a, tls_server.connect() as b:
        a.sendall(b"GET /sleep?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        b.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(a, bytearray())[2] == b"slept"
        assert read_answer(b, bytearray())[2] == b"hello"


def test_connections_over_the_cap_wait_in_the_backlog(tls_server: Served) -> None:
    # worker_connections = 8, from two addresses (each may hold 4)
    held = [tls_server.connect(source=f"127.0.0.{2 + n % 2}") for n in range(8)]
    try:
        for s in held:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(s, bytearray())[0] == 200
        raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
        raw.settimeout(0.5)
        extra = ssl.create_default_context(
            cafile=str(tls_server.tls_dir / "ca.crt") if tls_server.tls_dir else None
        ).wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
        with pytest.raises((TimeoutError, ssl.SSLError)):
            extra.do_handshake()  # not accepted while 8 are open
        for s in held:
            s.close()
        held.clear()
        extra.settimeout(10)
        extra.do_handshake()  # idle ones closed (keep-alive), so it is accepted now
        extra.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(extra).startswith(b"HTTP/1.1 200")
        extra.close()
    finally:
        for s in held:
            s.close()


# -- connection exhaustion -------------------------------------------------------------------

FLOOD = 60  # connections one address opens: 15 times its cap, 7.5 times the worker's slots


def _flood(served: Served, source: str, *, slow: bool) -> list[socket.socket]:
    """``FLOOD`` connections from ``source`` that never finish a request: they send
    nothing (no TLS handshake either), or, with ``slow`` on the plain server, half a head."""
    held = []
    for _ in range(FLOOD):
        s = served.raw(source)
        if slow and served.tls_dir is None:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    return held


def _served_promptly(served: Served, source: str, path: bytes = b"/hello") -> bytes:
    """The answer to one request on a new connection from ``source``, within 3 s.

    Without the per-address cap the worker's 8 slots stay full of the flood and
    its backlog is served in order, 8 each time the handshake deadline frees
    them: a new connection waits several seconds for its turn.
    """
    with served.connect(source=source, timeout=3) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_all(s)


@pytest.mark.parametrize("which", ["tls_server", "plain_server"])
def test_connection_exhaustion_from_one_address_leaves_the_others_served(
    which: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(which)
    flood = _flood(served, "127.0.0.2", slow=True)
    try:
        time.sleep(0.2)  # the worker has accepted what it will
        for source in ("127.0.0.3", "127.0.0.4"):
            assert _served_promptly(served, source).startswith(b"HTTP/1.1 200")
    finally:
        for s in flood:
            s.close()


@pytest.mark.parametrize("which", ["tls_server", "plain_server"])
def test_probes_from_the_flooding_address_itself_are_still_answered(
    which: str, request: pytest.FixtureRequest
) -> None:
    # The kubelet may share the address (a node's IP, SNAT): a new connection from the
    # flooding address displaces that address's longest-waiting one and is answered.
    served: Served = request.getfixturevalue(which)
    flood = _flood(served, "127.0.0.5", slow=True)
    try:
        time.sleep(0.2)
        for _ in range(3):
            answer = _served_promptly(served, "127.0.0.5", b"/healthz")
            assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        # What the flood holds is at most the cap: all but PER_ADDRESS were closed.
        closed = sum(closed_by_server(s, within=0.01) for s in flood)
        assert closed >= FLOOD - PER_ADDRESS
    finally:
        for s in flood:
            s.close()


def test_a_trusted_proxys_connections_are_not_capped(tls_server: Served) -> None:
    # A proxy carries many clients: capping its address would cap all of them together.
    held = [tls_server.connect(source=PROXY) for _ in range(PER_ADDRESS + 2)]
    try:
        for s in held:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(s, bytearray())[2] == b"hello"
    finally:
        for s in held:
            s.close()
    # An address that is not a proxy is capped: the oldest of its connections goes.
    held = [tls_server.connect(source="127.0.0.6") for _ in range(PER_ADDRESS + 1)]
    try:
        assert closed_by_server(held[0], within=2)
        held[-1].sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(held[-1], bytearray())[2] == b"hello"
    finally:
        for s in held:
            s.close()


# -- stopping ------------------------------------------------------------------------------


def test_sigterm_answers_the_request_in_flight_and_stops(tmp_path: Path) -> None:
    served = _start(tmp_path, tls=True)
    try:
        with served.connect() as busy, served.connect() as idle:
            idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(idle, bytearray())[0] == 200
            busy.sendall(b"GET /sleep?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            os.killpg(served.proc.pid, signal.SIGTERM)
            status, headers, body = read_answer(busy, bytearray())
            assert (status, body) == (200, b"slept")
            assert headers.get("connection", "").lower() == "close"
            assert closed_by_server(idle, within=5)
        assert served.proc.wait(timeout=15) == 0
    finally:
        _stop(served)


def test_requests_sent_before_a_half_close_are_answered(plain_server: Served) -> None:
    with plain_server.connect() as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hel"  # the last one is cut
        )
        s.shutdown(socket.SHUT_WR)
        answer = read_all(s)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.endswith(b"hello")


# -- hostile input ---------------------------------------------------------------------------


def test_hostile_requests_never_break_the_worker(plain_server: Served) -> None:
    # Seeded random mixes of real request parts, conflicting and absurd framing,
    # stray bytes and connections dropped midway: each gets an answer or a close,
    # the worker keeps serving, and nothing it logs is a traceback from its loop.
    import random

    rng = random.Random(1122)  # noqa: S311 - reproducible test data, not a secret
    parts = [
        b"POST /echo HTTP/1.1\r\n",
        b"GET /hello HTTP/1.1\r\n",
        b"GET /hello HTTP/1.0\r\n",
        b"Host: x\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 99999999999999999999\r\n",
        b"Content-Length: 5, 6\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Expect: 100-continue\r\n",
        b"Connection: close\r\n",
        b"X: \x00\x7f\xff\r\n",
        b" folded\r\n",
        b"\r\n",
        b"hello",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"zz\r\n",
        b"\n",
        bytes(rng.getrandbits(8) for _ in range(64)),
    ]
    for _ in range(150):
        payload = b"".join(rng.choice(parts) for _ in range(rng.randint(1, 12)))
        with plain_server.connect() as s:
            s.settimeout(TIMEOUT + 3)
            try:
                s.sendall(payload)
                if rng.random() < 0.5:
                    s.shutdown(socket.SHUT_WR)
                    read_all(s)  # an answer or a close, within the request timeout
            except OSError:
                pass  # the worker may refuse and close first: that is an answer too
    with plain_server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 200")
    log = plain_server.log.read_text()
    assert "Error serving a connection" not in log and "worker.py" not in log, log[-3000:]


def test_the_worker_takes_its_connection_limits_from_authbridges_settings(tmp_path: Path) -> None:
    # What `authbridge serve` runs: the worker reads the app's Settings (not defaults).
    from gunicorn.glogging import Logger

    from authbridge.settings import load_settings
    from authbridge.web.server import AuthbridgeServer
    from authbridge.web.worker import EventLoopWorker

    flags = {
        "max_connections_per_address": 30,
        "handshake_timeout": 3,
        "workers": 4,
        "trusted_proxies": "10.0.0.0/8",
    }
    settings = load_settings(flags, {}, None, cwd=tmp_path)
    server = AuthbridgeServer(settings, tls=False)
    worker = EventLoopWorker(0, os.getpid(), [], server, 30, server.cfg, Logger(server.cfg))
    try:
        assert worker.handshake_timeout == 3.0
        assert worker.per_address == 7  # 30 for the instance, 4 workers
        assert [str(n) for n in worker.uncapped] == ["10.0.0.0/8"]
    finally:
        worker.tmp.close()


# -- the page pool ---------------------------------------------------------------------------
# Page requests (here /api/...) run in the worker's pool; /api/hold holds its pool thread
# until the test releases it, so every test below would hang (and fail on a socket
# timeout) if the page request ran in the loop.


def _get(served: Served, path: str, source: str = "127.0.0.1") -> bytes:
    with served.connect(source=source) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = read_answer(s, bytearray())
    assert status == 200, body
    return body


def _wait_for(served: Served, path: str, want: bytes) -> None:
    """Ask the loop ``path`` until it answers ``want`` (a wait, not a timing assertion)."""
    deadline = time.monotonic() + 20
    while _get(served, path) != want:
        assert time.monotonic() < deadline, f"{path} never said {want!r}"
        time.sleep(0.02)


def _hold(served: Served, name: str, source: str = "127.0.0.1") -> socket.socket:
    s = served.connect(source=source)
    s.sendall(b"GET /api/hold?k=%s HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
    return s


def test_a_page_request_in_the_pool_leaves_the_loop_serving(tls_server: Served) -> None:
    held = _hold(tls_server, "loop1")
    try:
        _wait_for(tls_server, "/held?k=loop1", b"yes")  # the page request is running
        # The loop answers the rest (a TokenReview would be here) meanwhile.
        with tls_server.connect() as other:
            buffered = bytearray()
            for i in range(3):
                other.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i)
                assert read_answer(other, buffered)[2] == b"%d" % i
        tls_server.release("loop1")
        status, headers, body = read_answer(held, bytearray())
        assert (status, body) == (200, b"held loop1")
        assert headers.get("connection", "").lower() != "close"
        held.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection goes on
        assert read_answer(held, bytearray())[2] == b"hello"
    finally:
        tls_server.release("loop1")
        held.close()


def test_pipelined_answers_stay_in_order_around_a_page_request(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n0"
            b"GET /api/hold?k=order1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n2"
            b"GET /api/thread HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        buffered = bytearray()
        try:
            assert read_answer(s, buffered)[2] == b"0"  # before the page request: at once
            _wait_for(tls_server, "/held?k=order1", b"yes")
            assert _get(tls_server, "/hello") == b"hello"  # the loop is free meanwhile
        finally:
            tls_server.release("order1")
        answers = [read_answer(s, buffered)[2] for _ in range(4)]
    assert answers[0] == b"held order1" and answers[1] == b"2"
    assert answers[2].startswith(b"authbridge-page-") and answers[3] == b"hello"


def test_pool_threads_run_at_a_lower_cpu_priority(plain_server: Served) -> None:
    # Under CPU contention the kernel favours the loop (TokenReviews) over page work.
    name, nice = _get(plain_server, "/api/thread").split()
    assert name.startswith(b"authbridge-page-") and int(nice) == 10
    assert _get(plain_server, "/thread").split() == [b"MainThread", b"0"]


def test_a_full_page_pool_answers_503_with_retry_after(tls_server: Served) -> None:
    # 2 threads run, 2 requests wait (the test server's pool); the next gets 503 at once.
    names = ["full1", "full2", "full3", "full4"]
    held: list[socket.socket] = []
    try:
        for name in names[:2]:
            held.append(_hold(tls_server, name, source="127.0.0.2"))
            _wait_for(tls_server, f"/held?k={name}", b"yes")
        for name in names[2:]:
            held.append(_hold(tls_server, name, source="127.0.0.3"))
        _wait_for(tls_server, "/pool", b"4")
        assert _get(tls_server, "/held?k=full3") == b"no"  # queued, not running
        with tls_server.connect(source="127.0.0.4") as extra:
            extra.sendall(b"GET /api/hold?k=full5 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_answer(extra, bytearray())
            assert status == 503 and headers["retry-after"] == "1"
            assert b"busy" in body and headers.get("connection", "").lower() != "close"
            extra.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # still usable
            assert read_answer(extra, bytearray())[2] == b"hello"
        for name in names:
            tls_server.release(name)
        assert [read_answer(s, bytearray())[2] for s in held] == [
            b"held " + n.encode() for n in names
        ]
        assert _get(tls_server, "/held?k=full5") == b"no"  # refused, never run
        _wait_for(tls_server, "/pool", b"0")
    finally:
        for name in names:
            tls_server.release(name)
        for s in held:
            s.close()


def test_a_page_handler_that_raises_gets_500_and_the_worker_goes_on(tls_server: Served) -> None:
    with tls_server.connect() as s:
        s.sendall(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /api/boom HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 500 Internal Server Error" in answer
    assert _get(tls_server, "/api/thread").startswith(b"authbridge-page-")
    _wait_for(tls_server, "/pool", b"0")


def test_sigterm_waits_for_a_page_request_in_flight(tmp_path: Path) -> None:
    served = _start(tmp_path, tls=True)
    try:
        with served.connect() as idle:
            idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(idle, bytearray())[0] == 200
            busy = _hold(served, "stop1")
            try:
                _wait_for(served, "/held?k=stop1", b"yes")
                os.killpg(served.proc.pid, signal.SIGTERM)
                # The worker is stopping once it closes its idle connection; the page
                # request is still running, and is answered when it ends.
                assert closed_by_server(idle, within=10)
                assert served.proc.poll() is None
                served.release("stop1")
                busy.settimeout(10)
                status, headers, body = read_answer(busy, bytearray())
                assert (status, body) == (200, b"held stop1")
                assert headers.get("connection", "").lower() == "close"
            finally:
                served.release("stop1")
                busy.close()
        assert served.proc.wait(timeout=15) == 0
    finally:
        _stop(served)


def test_which_requests_go_to_the_page_pool() -> None:
    from authbridge.web.worker import pooled

    for path in ("/login", "/login/mfa", "/device", "/device/decision", "/api/", "/console"):
        assert pooled(path), path
        assert pooled("/auth" + path, "/auth"), path
    for path in (
        "/authenticate",
        "/oauth2/token",
        "/oauth2/device_authorization",
        "/loginx",
        "/apix",
        "/healthz",
        "/metrics",
        "/.well-known/openid-configuration",
        "/auth/authenticate",
    ):
        assert not pooled(path, "/auth"), path
    assert not pooled("/authx/login", "/auth") and pooled("/login", "/auth")


def test_every_sign_in_page_and_admin_api_route_runs_in_the_pool(
    tmp_path: Path, pepper: Pepper
) -> None:
    # The worker's list of page paths and the app's routes must not drift apart.
    from authbridge.keys import KeyDirectory, KeyRing
    from authbridge.store import open_store
    from authbridge.web import create_app
    from authbridge.web.context import issuer_path
    from authbridge.web.worker import pooled
    from tests.web.conftest import make_settings

    conf = make_settings(tmp_path, issuer="https://idp.example/auth")
    store = open_store(f"sqlite:///{tmp_path}/authbridge.db", pepper=pepper)
    try:
        directory = KeyDirectory(conf.keys_dir, prepublication_delay=600)
        directory.init("ES256", now=time.time() - 3600)
        app = create_app(conf, store=store, keys=KeyRing(directory))
        prefix = issuer_path(conf.issuer)
        assert prefix == "/auth"
        seen = 0
        for rule in app.url_map.iter_rules():
            blueprint = rule.endpoint.split(".")[0]
            page = blueprint.startswith(("signin", "api"))
            assert pooled(rule.rule, prefix) == page, rule.rule
            seen += page
        assert seen > 20
    finally:
        store.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["login", "api", "device", "console", "oauth2", "authorize", "token", "x", "", "."]
        ),
        max_size=4,
    ).map(lambda parts: "/" + "/".join(parts))
)
def test_the_issuer_prefix_changes_nothing_but_the_prefix(path: str) -> None:
    from authbridge.web.worker import pooled

    assert pooled("/auth" + path, "/auth") == pooled(path)
    assert pooled(path, "/auth") == pooled(path)  # the root paths are served too


def test_argon2_hashes_at_once_across_workers_are_at_most_the_cores() -> None:
    from authbridge.web.server import hashing_slots

    for cores in (1, 2, 4, 8, 64):
        for workers in (1, 2, 3, 4, 16):
            slots = hashing_slots(cores, workers)
            assert slots >= 1
            assert slots * workers <= max(cores, workers)
    assert hashing_slots(2, 2) == 1 and hashing_slots(8, 2) == 4
