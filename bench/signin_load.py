"""A browser-shaped login client for the bench: ``GET /login``, then ``POST /login``.

Each login is a fresh browser: ``GET /login`` with no cookie gets the
``__Host-authbridge-flow`` cookie and the form's ``csrf_token`` hidden field;
``POST /login`` sends them with ``account``, ``user_name`` and ``password``
and must be answered ``303 See Other`` with a ``__Host-authbridge-session``
cookie, or it counts as a failure. One keep-alive TLS connection per thread
(``http.client``), opened again when the server closes it.

:func:`flood` runs ``threads`` such clients for ``duration`` seconds (or
until ``stop`` is set) and returns the logins done, failed and their
latencies.
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

FLOW_COOKIE = "__Host-authbridge-flow"
SESSION_COOKIE = "__Host-authbridge-session"
_CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


@dataclass
class Outcome:
    ok: int = 0
    failed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0


def _cookie(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith(name + "="):
            got = value.split(";", 1)[0].split("=", 1)[1]
            return got or None
    return None


class LoginClient:
    """One browser-shaped client on one keep-alive TLS connection."""

    def __init__(self, port: int, ca_file: str, account: str) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.account = account
        self.conn: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.ctx, timeout=60
            )
        return self.conn

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, resp.getheaders(), data
            except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError):
                self.close()  # the server closed a keep-alive connection: once more
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def login(self, user_name: str, password: str) -> str:
        """One whole login; the outcome: ``ok`` or what failed (``GET 503``, ``POST 401`` …)."""
        status, headers, page = self._send("GET", "/login", None, {})
        flow = _cookie(headers, FLOW_COOKIE)
        match = _CSRF.search(page)
        if status != 200 or flow is None or match is None:
            return f"GET {status}"
        form = urllib.parse.urlencode(
            {
                "csrf_token": match.group(1).decode(),
                "account": self.account,
                "user_name": user_name,
                "password": password,
            }
        ).encode()
        status, headers, _ = self._send(
            "POST",
            "/login",
            form,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"{FLOW_COOKIE}={flow}",
            },
        )
        if status != 303 or _cookie(headers, SESSION_COOKIE) is None:
            return f"POST {status}"
        return "ok"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def flood(
    port: int,
    ca_file: str,
    account: str,
    users: list[str],
    password: str,
    *,
    threads: int,
    duration: float,
    stop: threading.Event | None = None,
    max_logins: int = 100_000,
) -> Outcome:
    """``threads`` clients logging in as ``users`` in turn, for ``duration`` s (or ``stop``)."""
    out = Outcome()
    lock = threading.Lock()
    end = time.monotonic() + duration
    halt = stop if stop is not None else threading.Event()

    def work(n: int) -> None:
        client = LoginClient(port, ca_file, account)
        i = n
        try:
            while time.monotonic() < end and not halt.is_set():
                started = time.monotonic()
                try:
                    what = client.login(users[i % len(users)], password)
                except OSError as e:
                    what = type(e).__name__
                took = time.monotonic() - started
                i += threads
                with lock:
                    out.statuses[what] += 1
                    if what == "ok":
                        out.ok += 1
                        out.latencies.append(took)
                    else:
                        out.failed += 1
                    if out.ok + out.failed >= max_logins:
                        halt.set()
        finally:
            client.close()

    pool = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=duration + 120)
    out.wall = time.monotonic() - started
    return out
