"""The sign-in client's parsers and local parts: device authorization, grant answers, PKCE,
the loopback callback, the session file.

Covers: RFC 7636 Appendix B's S256 vector; the authorize URL's parameters; the
device authorization answer (each field missing or hostile refused: an escape
sequence in the user code, an http or userinfo verification URI, a zero or
absurd expires_in/interval) and the sign-in grants' answer (refresh token
required unless rotating, refresh_token_expires_in checked; a malformed token
endpoint answer refused); unverified identity claims; the loopback callback
parser (wrong or missing state, an error callback, a repeated parameter,
another path, method or Host, an oversized or non-ASCII head) and the receiver
on a real loopback socket (a wrong state then the right one, an error
callback, a second callback after the first, an oversized request, an idle
preconnection, the timeout); the device flow's polling against a scripted
client (interval, slow_down adding 5 s for good, expired_token, access_denied,
its own deadline, back-off in transit then giving up); the session file (round
trip, permissions, refused when garbled, group-readable or a symlink; the fast
path reads the same key, role and name). Hypothesis properties: any bytes give
the documented answer or error type, nothing else. The flows against a real
server are in ``tests/test_e2e_signin_cli.py``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.client.errors import IssuerError, SignInError
from authbridge.client.fastpath import session_directory, session_summary
from authbridge.client.loopback import (
    MAX_REQUEST_BYTES,
    Callback,
    LoopbackReceiver,
    Rejected,
    parse_callback,
)
from authbridge.client.session import Session, SessionFiles, decode_session, encode_session
from authbridge.client.signin import (
    CLIENT_ID,
    authorize_url,
    code_challenge,
    parse_device_authorization,
    parse_signin_tokens,
    token_identity,
)

ENDPOINT = "https://authbridge.example:8443"
STATE = "s" * 43
PORT = 49152


def _jwt(claims: dict[str, object]) -> str:
    import base64

    def seg(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'ES256'})}.{seg(claims)}.c2ln"


ACCESS = _jwt({"arn": "arn:aws:iam::111122223333:user/alice", "source_identity": "AIDAX"})


# -- PKCE and the authorize URL --------------------------------------------------------------


def test_s256_challenge_is_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_authorize_url_carries_pkce_s256_state_and_the_loopback_redirect() -> None:
    url = authorize_url(
        "https://a.example/oauth2/authorize",
        redirect_uri="http://127.0.0.1:5000/callback",
        state=STATE,
        challenge="c" * 43,
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "a.example", "/oauth2/authorize")
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": ["http://127.0.0.1:5000/callback"],
        "state": [STATE],
        "code_challenge": ["c" * 43],
        "code_challenge_method": ["S256"],
    }


# -- the device authorization answer ------------------------------------------------------

GOOD_DEVICE = {
    "device_code": "d" * 43,
    "user_code": "BCDF-GHJK",
    "verification_uri": "https://authbridge.example:8443/device",
    "verification_uri_complete": "https://authbridge.example:8443/device?user_code=BCDF-GHJK",
    "expires_in": 600,
    "interval": 5,
}


def test_device_authorization_answer_is_read() -> None:
    got = parse_device_authorization(json.dumps(GOOD_DEVICE).encode(), 1000.0, ENDPOINT)
    assert (got.user_code, got.interval, got.expires_at) == ("BCDF-GHJK", 5, 1600.0)
    assert got.device_code == "d" * 43 and "d" * 43 not in repr(got)


def test_device_authorization_interval_defaults_to_five() -> None:
    doc = {
        k: v for k, v in GOOD_DEVICE.items() if k not in ("interval", "verification_uri_complete")
    }
    got = parse_device_authorization(json.dumps(doc).encode(), 0.0, ENDPOINT)
    assert (got.interval, got.verification_uri_complete) == (5, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("device_code", None),
        ("device_code", "has space"),
        ("user_code", "\x1b]0;pwned\x07"),  # a terminal escape sequence
        ("user_code", ""),
        ("user_code", "X" * 65),
        ("verification_uri", "http://authbridge.example/device"),
        ("verification_uri", "https://user:pw@evil.example/device"),
        ("verification_uri", "javascript:alert(1)"),
        ("verification_uri_complete", "ftp://x/device"),
        ("expires_in", 0),
        ("expires_in", -5),
        ("expires_in", True),
        ("expires_in", "600"),
        ("expires_in", 10**9),
        ("interval", 0),
        ("interval", 1.5),
        ("interval", 10**6),
    ],
)
def test_hostile_device_authorization_answer_is_refused(name: str, value: object) -> None:
    doc = {**GOOD_DEVICE, name: value}
    with pytest.raises(IssuerError, match=name):
        parse_device_authorization(json.dumps(doc).encode(), 0.0, ENDPOINT)


@given(
    st.binary(max_size=300)
    | st.dictionaries(
        st.text(max_size=30), st.integers() | st.text(max_size=40) | st.none(), max_size=8
    ).map(lambda d: json.dumps(d).encode())
)
def test_device_authorization_parser_gives_an_answer_or_issuer_error(raw: bytes) -> None:
    try:
        got = parse_device_authorization(raw, 0.0, ENDPOINT)
    except IssuerError:
        return
    assert got.user_code.isprintable() and got.verification_uri.startswith("https://")


# -- the sign-in grants' answer --------------------------------------------------------------


def _grant(**over: object) -> bytes:
    doc: dict[str, object] = {
        "access_token": ACCESS,
        "token_type": "Bearer",
        "expires_in": 900,
        "refresh_token": "r" * 43,
        "refresh_token_expires_in": 7200,
    }
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_signin_answer_is_read_relative_to_the_send_time() -> None:
    got = parse_signin_tokens(_grant(), 1000.0, ENDPOINT)
    assert (got.access.expires_at, got.refresh_expires_at) == (1900, 8200)
    assert "r" * 43 not in repr(got) and ACCESS not in repr(got)


def test_refresh_answer_without_a_new_refresh_token_keeps_the_old_one() -> None:
    got = parse_signin_tokens(_grant(refresh_token=None), 0.0, ENDPOINT, previous_refresh="o" * 40)
    assert got.refresh_token == "o" * 40


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>proxy error</html>",
        b"[]",
        _grant(refresh_token=None),
        _grant(refresh_token="two words"),
        _grant(refresh_token_expires_in=-1),
        _grant(refresh_token_expires_in="7200"),
        _grant(access_token=None),
        _grant(token_type="mac"),
        _grant(expires_in=0),
    ],
)
def test_malformed_token_endpoint_answer_is_refused(raw: bytes) -> None:
    with pytest.raises(IssuerError):
        parse_signin_tokens(raw, 0.0, ENDPOINT)


@given(st.binary(max_size=400))
def test_signin_answer_parser_gives_tokens_or_issuer_error(raw: bytes) -> None:
    try:
        parse_signin_tokens(raw, 0.0, ENDPOINT)
    except IssuerError:
        pass


def test_token_identity_reads_arn_and_source_identity_unverified() -> None:
    assert token_identity(ACCESS) == ("arn:aws:iam::111122223333:user/alice", "AIDAX")
    assert token_identity("not-a-jwt") == (None, None)
    assert token_identity(_jwt({"arn": "\x1b[31m"})) == (None, None)


# -- the loopback callback ------------------------------------------------------------------


def _head(target: str, *, host: str = f"127.0.0.1:{PORT}", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test".encode()


def test_callback_with_the_right_state_gives_the_code() -> None:
    got = parse_callback(_head(f"/callback?code=abc&state={STATE}"), port=PORT, state=STATE)
    assert got == Callback(code="abc")


def test_callback_with_wrong_state_is_refused() -> None:
    got = parse_callback(_head("/callback?code=abc&state=guess"), port=PORT, state=STATE)
    assert isinstance(got, Rejected) and got.status == 400 and "state" in got.message
    got = parse_callback(_head("/callback?code=abc"), port=PORT, state=STATE)
    assert isinstance(got, Rejected) and got.status == 400


def test_error_callback_ends_the_wait_with_printable_text() -> None:
    got = parse_callback(
        _head(f"/callback?error=access_denied&error_description=no%1b[31m&state={STATE}"),
        port=PORT,
        state=STATE,
    )
    assert got == Callback(error="access_denied", description="no?[31m")


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (_head(f"/callback?code=a&code=b&state={STATE}"), 400),  # repeated parameter
        (_head(f"/callback?state={STATE}"), 400),  # neither code nor error
        (_head(f"/other?code=a&state={STATE}"), 404),
        (_head(f"/callback/?code=a&state={STATE}"), 404),
        (_head(f"http://evil.example/callback?code=a&state={STATE}"), 404),
        (_head(f"/callback?code=a&state={STATE}", method="POST"), 405),
        (_head(f"/callback?code=a&state={STATE}", host="evil.example"), 400),  # DNS rebinding
        (_head(f"/callback?code=a&state={STATE}", host=f"localhost:{PORT}"), 400),
        (b"GET /callback HTTP/1.1\r\nHost: 127.0.0.1:1\r\nHost: 127.0.0.1:1", 400),
        (b"GET /callback?code=\xff HTTP/1.1", 400),
        (b"garbage", 400),
        (b"GET /callback?" + b"a" * MAX_REQUEST_BYTES + b" HTTP/1.1", 431),
    ],
)
def test_hostile_callbacks_are_refused(head: bytes, status: int) -> None:
    got = parse_callback(head, port=PORT, state=STATE)
    assert isinstance(got, Rejected) and got.status == status, got


@given(st.binary(max_size=600))
def test_callback_parser_answers_any_bytes(raw: bytes) -> None:
    got = parse_callback(raw, port=PORT, state=STATE)
    assert isinstance(got, Callback | Rejected)
    if isinstance(got, Callback):
        assert got.code is None  # a code needs the right state, which random bytes lack


# -- the receiver on a real loopback socket -------------------------------------------------


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _get(port: int, target: str) -> bytes:
    return _send(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())


class _Waiting:
    """A receiver waiting in a thread; ``result`` is the code or the exception."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.receiver = LoopbackReceiver(STATE)
        self.result: object = None
        self.thread = threading.Thread(target=self._run, args=(timeout,))
        self.thread.start()

    def _run(self, timeout: float) -> None:
        try:
            self.result = self.receiver.wait(timeout)
        except SignInError as e:
            self.result = e

    def join(self) -> object:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result


def test_loopback_callback_with_wrong_state_is_refused_and_the_wait_goes_on() -> None:
    waiting = _Waiting()
    port = waiting.receiver.port
    answer = _get(port, "/callback?code=attacker&state=guessed")
    assert answer.startswith(b"HTTP/1.1 400 ")
    answer = _get(port, f"/callback?code=good&state={STATE}")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert waiting.join() == "good"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'" in head
    assert b"Cache-Control: no-store" in head and b"<script" not in body.lower()
    assert b"close this tab" in body


def test_loopback_error_callback_ends_the_sign_in() -> None:
    waiting = _Waiting()
    _get(waiting.receiver.port, f"/callback?error=access_denied&state={STATE}")
    result = waiting.join()
    assert isinstance(result, SignInError) and "access_denied" in str(result)


def test_loopback_second_callback_finds_nothing_listening() -> None:
    waiting = _Waiting()
    port = waiting.receiver.port
    _get(port, f"/callback?code=first&state={STATE}")
    assert waiting.join() == "first"
    with pytest.raises(ConnectionRefusedError):
        _get(port, f"/callback?code=second&state={STATE}")


def test_loopback_oversized_request_is_refused_and_the_wait_goes_on() -> None:
    waiting = _Waiting()
    port = waiting.receiver.port
    huge = b"GET /callback?x=" + b"a" * (4 * MAX_REQUEST_BYTES) + b" HTTP/1.1\r\n\r\n"
    try:
        answer = _send(port, huge)
    except ConnectionResetError:
        answer = b"HTTP/1.1 431 (reset after the answer)"
    assert answer.startswith(b"HTTP/1.1 431 ")
    _get(port, f"/callback?code=good&state={STATE}")
    assert waiting.join() == "good"


def test_loopback_gives_up_after_the_timeout() -> None:
    waiting = _Waiting(timeout=0.2)
    result = waiting.join()
    assert isinstance(result, SignInError) and "no answer from the browser" in str(result)


def test_loopback_listens_on_127_0_0_1_only() -> None:
    with LoopbackReceiver(STATE) as receiver:
        assert receiver.redirect_uri == f"http://127.0.0.1:{receiver.port}/callback"
        assert receiver._sock.getsockname()[0] == "127.0.0.1"


# -- the session file ----------------------------------------------------------------------


def _session(**over: object) -> Session:
    fields: dict[str, object] = {
        "endpoint": ENDPOINT,
        "profile": "dev",
        "issuer": ENDPOINT,
        "key": "0123456789abcdef" * 2,
        "user": "arn:aws:iam::111122223333:user/alice",
        "refresh_token": "r" * 43,
        "refresh_expires_at": 2_000_000_000,
        "access_token": ACCESS,
        "access_expires_at": 1_900_000_000,
        "role": "arn:aws:iam::111122223333:role/platform/Admin",
        "session_name": "alice",
        "signed_in_at": 1_800_000_000,
    }
    fields.update(over)
    return Session(**fields)  # type: ignore[arg-type]


def test_session_round_trips_and_the_fast_path_reads_its_key() -> None:
    session = _session()
    data = encode_session(session)
    assert decode_session(data) == session
    assert session_summary(data) == (session.key, session.role, "alice")
    assert "r" * 43 not in repr(session)


@pytest.mark.parametrize(
    "edit",
    [
        {"version": 2},
        {"key": "XYZ"},
        {"refreshToken": "has space"},
        {"accessExpiresAt": True},
        {"role": "not-an-arn"},
        {"extra": 1},
        {"endpoint": "http://authbridge.example"},
    ],
)
def test_garbled_session_file_is_no_session(edit: dict[str, object]) -> None:
    doc = json.loads(encode_session(_session()))
    doc.update(edit)
    assert decode_session(json.dumps(doc).encode()) is None


@given(st.binary(max_size=400))
def test_session_decoder_gives_a_session_or_none(raw: bytes) -> None:
    assert decode_session(raw) is None or isinstance(decode_session(raw), Session)


def test_session_file_is_private_and_unsafe_ones_are_ignored(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    files = SessionFiles.of(env, ENDPOINT, "dev")
    assert str(files.directory) == session_directory(env, ENDPOINT, "dev")
    assert files.load() is None
    files.save(_session())
    assert files.load() == _session()
    assert os.stat(files.path).st_mode & 0o777 == 0o600
    assert os.stat(files.directory).st_mode & 0o777 == 0o700
    os.chmod(files.path, 0o640)
    assert files.load() is None  # group-readable: not ours alone
    os.chmod(files.path, 0o600)
    real = files.path.with_name("elsewhere.json")
    os.replace(files.path, real)
    files.path.symlink_to(real)
    assert files.load() is None  # a symlink is never followed


def test_delete_removes_the_session_and_its_cached_tokens_only(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    files = SessionFiles.of(env, ENDPOINT, "dev")
    other = SessionFiles.of(env, ENDPOINT, "other")
    for f in (files, other):
        f.save(_session())
        (f.directory / ("a" * 64 + ".json")).write_text("{}")
    with files.locked():
        pass
    assert files.delete() is True
    assert not files.directory.exists()
    assert other.load() is not None and (other.directory / ("a" * 64 + ".json")).exists()
    assert files.delete() is False  # idempotent


def test_profiles_and_endpoints_have_their_own_sessions(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    names = {
        session_directory(env, ENDPOINT, "dev"),
        session_directory(env, ENDPOINT, "prod"),
        session_directory(env, "https://other.example", "dev"),
    }
    assert len(names) == 3


def test_loopback_idle_connection_does_not_hold_up_the_callback() -> None:
    waiting = _Waiting()
    port = waiting.receiver.port
    with socket.create_connection(("127.0.0.1", port), timeout=10):  # a preconnect, silent
        answer = _get(port, f"/callback?code=good&state={STATE}")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert waiting.join() == "good"


# -- the device flow's polling (RFC 8628 §3.5), with a scripted client ---------------------


class _ScriptedClient:
    """Answers the device flow's polls from a script: a refusal code, an exception, or tokens."""

    def __init__(self, script: list[object], interval: int = 5) -> None:
        self.script = script
        self.interval = interval
        self.polls = 0

    def device_authorization(self) -> Any:
        from authbridge.client.signin import DeviceAuthorization

        return DeviceAuthorization(
            device_code="d" * 43, user_code="BCDF-GHJK",
            verification_uri="https://a.example/device", verification_uri_complete=None,
            expires_at=600.0, interval=self.interval,
        )  # fmt: skip

    def poll_device(self, device_code: str) -> Any:
        from authbridge.client.errors import IssuerRefused

        assert device_code == "d" * 43
        self.polls += 1
        step = self.script.pop(0)
        if isinstance(step, str):
            raise IssuerRefused(step, "", status=400)
        if isinstance(step, Exception):
            raise step
        return step


def _flow(client: _ScriptedClient) -> tuple[object, list[float], list[str]]:
    from authbridge.client.signin import run_device_flow

    clock = [0.0]
    sleeps: list[float] = []
    said: list[str] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    try:
        result: object = run_device_flow(
            client,  # type: ignore[arg-type]
            said.append,
            sleep=sleep,
            clock=lambda: clock[0],
        )
    except (SignInError, IssuerError) as e:
        result = e
    return result, sleeps, said


def test_device_flow_honours_interval_and_slow_down() -> None:
    done = object()
    result, sleeps, said = _flow(
        _ScriptedClient(["authorization_pending", "slow_down", "authorization_pending", done])
    )
    assert result is done
    assert sleeps == [5, 5, 10, 10]  # each slow_down adds 5 s, for good
    assert said[0] == "To sign in, open https://a.example/device and enter the code BCDF-GHJK"


def test_device_flow_stops_on_expired_token_and_access_denied() -> None:
    result, _, _ = _flow(_ScriptedClient(["authorization_pending", "expired_token"]))
    assert isinstance(result, SignInError) and "expired before it was approved" in str(result)
    result, _, _ = _flow(_ScriptedClient(["access_denied"]))
    assert isinstance(result, SignInError) and "the sign-in was denied" in str(result)
    result, _, _ = _flow(_ScriptedClient(["invalid_client"]))
    assert isinstance(result, IssuerError) and "invalid_client" in str(result)


def test_device_flow_stops_at_its_own_deadline() -> None:
    result, sleeps, _ = _flow(_ScriptedClient(["authorization_pending"] * 200, interval=300))
    assert isinstance(result, SignInError) and "expired" in str(result)
    assert sum(sleeps) >= 600 and len(sleeps) == 2  # no poll after expires_in


def test_device_flow_backs_off_in_transit_then_gives_up() -> None:
    down = IssuerError("cannot connect")
    done = object()
    result, sleeps, _ = _flow(_ScriptedClient([down, down, done]))
    assert result is done and sleeps == [5, 10, 20]
    result, sleeps, _ = _flow(_ScriptedClient([down, down, down]))
    assert result is down and sleeps == [5, 10, 20]


_VALUE = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@given(
    code=_VALUE,
    right_state=st.booleans(),
    other=st.dictionaries(st.sampled_from(["iss", "scope", "x"]), _VALUE, max_size=2),
)
def test_callback_gives_a_code_only_with_the_right_state(
    code: str, right_state: bool, other: dict[str, str]
) -> None:
    from urllib.parse import urlencode

    state = STATE if right_state else STATE[:-1] + "t"
    query = urlencode({"code": code, "state": state, **other})
    got = parse_callback(_head(f"/callback?{query}"), port=PORT, state=STATE)
    if isinstance(got, Callback):
        assert right_state and got.code == code
        assert code.isascii() and code.isprintable()
    else:
        assert not right_state or not (code and code.isascii() and code.isprintable())
