"""A gunicorn server with authbridge's worker and a tiny WSGI app, for tests/test_worker.py.

Run as ``python -m tests.worker_server PORT TLS_DIR|- TIMEOUT KEEPALIVE HANDSHAKE
PER_ADDRESS TRUSTED``: gunicorn's master with one
:class:`authbridge.web.worker.EventLoopWorker`, on 127.0.0.1:PORT, over TLS
with the files in TLS_DIR (``server.crt``, ``server.key``, ``ca.crt`` for
optional client certificates) or plain HTTP with ``-``. Short ``timeout``,
``keepalive`` and ``handshakeTimeoutSeconds`` (HANDSHAKE), a small
``maxConnectionsPerAddress`` (PER_ADDRESS) and the ``trustedProxies`` CIDRs
(TRUSTED, comma-separated, ``-`` for none) make the limits testable.

Routes: ``/hello`` (200 "hello"), ``/echo`` (the body back, with its length),
``/boom`` (the app raises), ``/sleep?s=0.5`` (blocks the worker that long),
``/peer`` (the client certificate's subject as the app sees it),
``/big?n=N`` (N bytes).

Page-pool routes (under ``/api``, so the worker runs them in its page pool):
``/api/hold?k=NAME`` blocks its pool thread until the file NAME exists in
``$WORKER_TEST_HOLD_DIR`` (at most 30 s), then answers "held NAME";
``/api/boom`` raises. In the loop: ``/held?k=NAME`` says whether that hold
has started ("yes"/"no"), ``/pool`` the requests in the page pool (running
or queued) and ``/thread`` which thread and nice value answered. The pool has
2 threads (gunicorn's ``threads``) and a queue of 2 (``page_queue``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication

from authbridge.web.peer import client_certificate

MAX_BODY = 4096  # the app's body cap, as authbridge's maxRequestBytes
POOL_THREADS = 2
POOL_QUEUE = 2
HOLD_SECONDS = 30.0  # a hold whose file never comes ends anyway
_started: set[str] = set()
_started_lock = threading.Lock()


def _query(environ: dict[str, Any], name: str) -> str:
    for part in environ.get("QUERY_STRING", "").split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return ""


def _hold(environ: dict[str, Any]) -> bytes:
    name = _query(environ, "k")
    if not name.isalnum():
        raise ValueError("k must be letters and digits")
    with _started_lock:
        _started.add(name)
    release = os.path.join(os.environ["WORKER_TEST_HOLD_DIR"], name)
    deadline = time.monotonic() + HOLD_SECONDS
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    return b"held " + name.encode()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path in ("/boom", "/api/boom"):
        raise RuntimeError("boom")
    if path == "/api/hold":
        body = _hold(environ)
    elif path == "/held":
        with _started_lock:
            body = b"yes" if _query(environ, "k") in _started else b"no"
    elif path == "/pool":
        pool = environ["gunicorn.socket"].worker_pool()
        body = str(pool.waiting if pool is not None else -1).encode()
    elif path in ("/thread", "/api/thread"):
        me = threading.get_native_id()
        body = f"{threading.current_thread().name} {os.getpriority(os.PRIO_PROCESS, me)}".encode()
    elif path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING", "s=0.5").split("=")[1]))
        body = b"slept"
    elif path == "/echo":
        declared = int(environ.get("CONTENT_LENGTH") or 0)
        if declared > MAX_BODY:
            start_response("413 Payload Too Large", [("Content-Length", "8")])
            return [b"too big\n"]
        body = environ["wsgi.input"].read()
    elif path == "/peer":
        peer = client_certificate(environ)
        body = json.dumps(None if peer is None else [peer.common_name, peer.organizations]).encode()
    elif path == "/big":
        body = b"x" * int(environ["QUERY_STRING"].split("=")[1])
    else:
        body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Settings:
    """What the worker reads of authbridge's settings."""

    max_request_bytes = MAX_BODY
    page_queue = POOL_QUEUE

    def __init__(self, handshake: int, per_address: int, trusted: str) -> None:
        self.handshake_timeout = handshake
        self.max_connections_per_address = per_address
        self.trusted_proxies = tuple(
            ipaddress.ip_network(cidr) for cidr in trusted.split(",") if cidr not in ("", "-")
        )


class Server(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    def __init__(
        self, port: int, tls_dir: str, timeout: int, keepalive: int, settings: Settings
    ) -> None:
        self.port, self.tls_dir, self.timeout_s, self.keepalive_s = (
            port,
            tls_dir,
            timeout,
            keepalive,
        )
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": [f"127.0.0.1:{self.port}"],
            "workers": 1,
            "worker_class": "authbridge.web.worker.EventLoopWorker",
            "worker_connections": 8,
            "threads": POOL_THREADS,
            "timeout": self.timeout_s,
            "keepalive": self.keepalive_s,
            "graceful_timeout": 5,
            "limit_request_fields": 20,
            "loglevel": "info",
            "errorlog": "-",
        }
        if self.tls_dir != "-":
            options.update(
                certfile=f"{self.tls_dir}/server.crt",
                keyfile=f"{self.tls_dir}/server.key",
                ca_certs=f"{self.tls_dir}/ca.crt",
                cert_reqs=ssl.CERT_OPTIONAL,
            )
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return app


if __name__ == "__main__":
    port, tls_dir, timeout, keepalive, handshake, per_address, trusted = sys.argv[1:8]
    settings = Settings(int(handshake), int(per_address), trusted)
    Server(int(port), tls_dir, int(timeout), int(keepalive), settings).run()
