"""The loopback redirect of ``authbridge login``: one HTTP request to 127.0.0.1, then gone.

RFC 8252 §7.3: a native app receives the authorization code on a loopback
interface, on a port the OS picks, at ``http://127.0.0.1:<port>/callback``
(the exact path the issuer accepts). :class:`LoopbackReceiver` binds before
the browser opens, answers each connection on its own (at most
:data:`MAX_REQUEST_BYTES` of request head, :data:`READ_TIMEOUT` s each, up to
8 at once, in threads: a browser's idle preconnection must not stall the
callback), and returns the code of the first callback that carries the right ``state``
(compared in constant time, RFC 6749 §10.12). Until then:

* a request that is not ``GET /callback`` (another path, a method, a head too
  large, a ``Host`` other than ``127.0.0.1:<port>``: DNS rebinding) is
  answered 400/404/405/431 and the wait goes on;
* a callback with a wrong or missing ``state``, a repeated parameter, or
  neither ``code`` nor ``error`` is answered 400 and the wait goes on (a page
  elsewhere cannot end someone's sign-in by guessing the port);
* ``error=…`` with the right state ends the sign-in with that error
  (RFC 6749 §4.1.2.1), shown as printable text only.

After the callback the socket is closed, so a second callback finds nothing
listening. The pages are a few lines of HTML: no script, no external
resource, ``Content-Security-Policy: default-src 'none'; frame-ancestors
'none'``, ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``.
:func:`parse_callback` is the pure part (bytes in, a decision out).
"""

from __future__ import annotations

import hmac
import html
import queue
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from authbridge.client.errors import SignInError

__all__ = [
    "CALLBACK_PATH",
    "MAX_REQUEST_BYTES",
    "READ_TIMEOUT",
    "Callback",
    "LoopbackReceiver",
    "Rejected",
    "new_state",
    "parse_callback",
]

CALLBACK_PATH = "/callback"
MAX_REQUEST_BYTES = 8 * 1024
READ_TIMEOUT = 10.0
_POLL = 0.1  # seconds between looks at the answered callbacks
_MAX_CONNECTIONS = 8  # answered at once; more are closed unanswered
_MAX_CODE = 2048
_MAX_FIELDS = 16
_MAX_DESCRIPTION = 300
_HEADERS = (
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'; base-uri 'none';"
    " form-action 'none'\r\n"
    "Cache-Control: no-store\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Connection: close\r\n"
)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large"}  # fmt: skip


def new_state() -> str:
    """The ``state`` of one authorization request: 32 random bytes, base64url."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Callback:
    """The callback that ends the wait: a code, or the error the issuer sent back."""

    code: str | None = field(default=None, repr=False)
    error: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Rejected:
    """A request answered and otherwise ignored: the wait goes on."""

    status: int
    message: str


def _page(status: int, title: str, text: str) -> bytes:
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>\n"
    ).encode()
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n{_HEADERS}Content-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


def _printable(value: str, limit: int) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in value)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def parse_callback(head: bytes, *, port: int, state: str) -> Callback | Rejected:
    """What one request head (up to and excluding the blank line) means for the wait."""
    if len(head) > MAX_REQUEST_BYTES:
        return Rejected(431, "the request is too large")
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return Rejected(400, "the request is not ASCII")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return Rejected(400, "not an HTTP/1.x request")
    method, target, _ = parts
    hosts = [ln[5:].strip() for ln in lines[1:] if ln[:5].lower() == "host:"]
    if hosts != [f"127.0.0.1:{port}"]:
        return Rejected(400, "the request is not addressed to this sign-in")
    if method != "GET":
        return Rejected(405, "only GET is answered here")
    try:
        url = urlsplit(target)
    except ValueError:
        return Rejected(400, "the request target is not a URL path")
    if url.scheme or url.netloc or url.path != CALLBACK_PATH or url.fragment:
        return Rejected(404, "nothing here but /callback")
    try:
        pairs = parse_qsl(
            url.query, keep_blank_values=True, strict_parsing=bool(url.query),
            max_num_fields=_MAX_FIELDS, errors="strict",
        )  # fmt: skip
    except (ValueError, UnicodeDecodeError):
        return Rejected(400, "the callback's query is malformed")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            # RFC 6749 §3.1: a parameter must not appear twice.
            return Rejected(400, f"the callback repeats {_printable(name, 40)}")
        params[name] = value
    given = params.get("state", "")
    if not hmac.compare_digest(given.encode("utf-8"), state.encode("utf-8")):
        return Rejected(400, "this callback is not for the sign-in that is waiting (state)")
    if "error" in params:
        return Callback(
            error=_printable(params["error"], 100) or "error",
            description=_printable(params.get("error_description", ""), _MAX_DESCRIPTION),
        )
    code = params.get("code", "")
    if not (0 < len(code) <= _MAX_CODE and code.isascii() and code.isprintable()):
        return Rejected(400, "the callback has no usable code")
    return Callback(code=code)


class LoopbackReceiver:
    """A socket on 127.0.0.1, an OS-chosen port; :meth:`wait` for the one callback."""

    def __init__(self, state: str) -> None:
        self.state = state
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.bind(("127.0.0.1", 0))
            self._sock.listen(8)
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self._results: queue.Queue[Callback] = queue.Queue()
        self._slots = threading.BoundedSemaphore(_MAX_CONNECTIONS)
        self.redirect_uri = f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def wait(self, timeout: float) -> str:
        """The code of the first good callback; :class:`SignInError` on an error or timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SignInError(
                        f"no answer from the browser within {timeout:g} s",
                        hint="run `authbridge login` again, or `authbridge login --device-code`"
                        " to sign in from another device",
                    )
                try:
                    return self._outcome(self._results.get_nowait())
                except queue.Empty:
                    pass
                self._sock.settimeout(min(left, _POLL))
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    continue
                if not self._slots.acquire(blocking=False):
                    conn.close()  # a flood of connections: the browser's will come again
                    continue
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            self.close()

    def _serve(self, conn: socket.socket) -> None:
        """One connection, in its own thread: a browser's idle preconnection must not hold
        up the request that carries the code."""
        try:
            with conn:
                result = self._answer(conn)
            if isinstance(result, Callback):
                self._results.put(result)
        finally:
            self._slots.release()

    def _answer(self, conn: socket.socket) -> Callback | Rejected | None:
        conn.settimeout(READ_TIMEOUT)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                head += chunk
                if len(head) > MAX_REQUEST_BYTES + 4:
                    break
        except OSError:
            return None
        end = head.find(b"\r\n\r\n")
        result = parse_callback(head[:end] if end >= 0 else head, port=self.port, state=self.state)
        if isinstance(result, Rejected):
            page = _page(result.status, "authbridge login", result.message)
        elif result.error is not None:
            page = _page(200, "Sign-in not completed",
                         "The sign-in was not completed. See the terminal for why.")  # fmt: skip
        else:
            page = _page(200, "Signed in",
                         "authbridge has what it needs. You can close this tab and return to"
                         " the terminal.")  # fmt: skip
        try:
            conn.sendall(page)
        except OSError:
            pass  # the browser went away; the outcome is the same
        return result

    @staticmethod
    def _outcome(result: Callback) -> str:
        if result.error is not None:
            shown = f"{result.error}: {result.description}" if result.description else result.error
            hint = (
                "ask the authbridge administrator for access"
                if result.error == "access_denied"
                else "run `authbridge login` again"
            )
            raise SignInError(f"the sign-in was refused in the browser ({shown})", hint=hint)
        return result.code or ""
