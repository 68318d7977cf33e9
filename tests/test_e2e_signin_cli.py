"""``authbridge login``, ``token`` and ``logout`` as real subprocesses against a served authbridge.

The server is a real ``authbridge serve`` over TLS (``tests/serving.py``). The
person approving a device code is played through the sign-in service API on
the server's own store (``authbridge.signin.approve_device``), the browser of
the browser flow by the test: it reads the authorize URL ``login`` prints,
checks it (PKCE S256, state, loopback redirect), asks the service for a code
(``validate_authorize_request`` + ``issue_authorization_code``, what the
consent page does) and follows the redirect to the loopback receiver.

Covers: device-code login approved, then kubectl-style ``token`` (an
ExecCredential whose token the server's ``/verify`` accepts as alice, with the
session's ``sid``; a second call from the cache, by the fast path: no click,
no ssl), the same with an expired ``sts`` token (refreshed, the refresh token
rotated), ``--role`` at login (AssumeRole with the user's name as session
name), refresh-token reuse (an old session file copied back: the server ends
the whole session, ``token`` says to run ``authbridge login``), ``iam
revoke-sessions`` (the same), two concurrent refreshes serialised by the lock
(both succeed, no reuse), a denied device code, logout (revoked at the server,
files gone, idempotent; without the server: deleted here, exit 1 saying so), a
session past the end the server gave, a session file others may read (not
trusted), a profile with an access key refused by ``login``, the session over
with and without an interactive terminal (a pty: the device flow runs on it),
the browser flow to the end, and the loopback receiver's hostile inputs on a
real ``login``: a callback with the wrong state, an error callback, a second
callback, an oversized request.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, clean_env, start_server

MAPPING = "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/alice\n    username: alice\n"
PROFILE = "dev"
USER_CODE = re.compile(r"enter the code ([A-Z]{4}-[A-Z]{4})")
V1 = "client.authentication.k8s.io/v1"
WAIT = 60  # seconds a login subprocess may take (the device flow polls every 5 s)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(tmp_path_factory.mktemp("signin-cli"), mapping=MAPPING)
    try:
        yield next(served)
    finally:
        served.close()


@pytest.fixture(scope="module")
def service(live: LiveServer) -> Iterator[Any]:
    """The server's store, for the test's part of the person: approving, denying, consenting."""
    from authbridge.iam.credentials import load_or_create_pepper
    from authbridge.settings import load_settings
    from authbridge.store import open_store

    settings = load_settings({}, {}, live.root / "keys" / "authbridge.yaml", cwd=live.root)
    store = open_store(
        settings.store, pepper=lambda: load_or_create_pepper(settings.pepper_file), migrate=False
    )
    try:
        yield store
    finally:
        store.close()


def _alice_id(store: Any) -> str:
    return str(store.get_user(ACCOUNT, "alice").user_id)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return doc


class Person:
    """A home directory and the commands a person runs in it."""

    def __init__(self, live: LiveServer, home: Path) -> None:
        self.live = live
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env(HOME=str(self.home), **extra)
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
            env.pop(name, None)
        env.update(extra)
        return env

    def login_args(self, *extra: str) -> list[str]:
        return [
            AUTHBRIDGE, "login", "--profile", PROFILE, "--endpoint", self.live.url,
            "--ca-file", str(self.live.ca_file), *extra,
        ]  # fmt: skip

    def start(self, argv: list[str], **env: str) -> Running:
        return Running(
            subprocess.Popen(
                argv,
                cwd=self.home,
                env=self.env(**env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AUTHBRIDGE, *args],
            cwd=self.home,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )

    def token(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`authbridge token` as kubectl runs it: the profile only (login wrote it)."""
        env.setdefault(
            "KUBERNETES_EXEC_INFO",
            json.dumps(
                {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": False}}
            ),
        )
        return self.run("token", "--profile", PROFILE, "--cluster-id", "prod", *args, **env)

    def session_dir(self) -> Path:
        from authbridge.client.fastpath import session_directory

        return Path(session_directory({"HOME": str(self.home)}, self.live.url, PROFILE))

    def session_file(self) -> Path:
        return self.session_dir() / "session.json"

    def session(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.session_file().read_text())
        return doc

    def edit_session(self, **changes: Any) -> None:
        doc = {**self.session(), **changes}
        path = self.session_file()
        tmp = path.with_name("edit.tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def device_login(self, store: Any, *extra: str) -> subprocess.CompletedProcess[str]:
        """`authbridge login --device-code`, approved as alice through the service API."""
        from authbridge.signin import approve_device

        running = self.start(self.login_args("--device-code", *extra))
        code = running.wait_for(USER_CODE).group(1)
        approve_device(store, code, user_id=_alice_id(store), mfa=False, now=time.time())
        return running.finish()


class Running:
    """A subprocess whose stderr is read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self.lines.put(line)
        self.lines.put("")

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line == "":
                break
            self.seen.append(line)
            found = pattern.search(line)
            if found:
                return found
        self.proc.kill()
        raise AssertionError(f"never printed {pattern.pattern}: {''.join(self.seen)}")

    def finish(self) -> subprocess.CompletedProcess[str]:
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.stdout is not None
        stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        self.reader.join(WAIT)  # stderr read to its end
        rest: list[str] = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        stderr = "".join(self.seen + rest)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)


@pytest.fixture
def person(live: LiveServer, tmp_path: Path) -> Person:
    return Person(live, tmp_path / "home")


def _verified(live: LiveServer, token: str) -> dict[str, Any]:
    status, _, body = live.request(
        "/verify?clusterID=prod", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def _credential(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["apiVersion"], doc["kind"]) == (V1, "ExecCredential")
    token: str = doc["status"]["token"]
    return token


# -- device code, then kubectl --------------------------------------------------------------


def test_device_login_then_token_as_kubectl(person: Person, live: LiveServer, service: Any) -> None:
    done = person.device_login(service)
    assert done.returncode == 0, done.stderr
    assert "Signed in as arn:aws:iam::111122223333:user/alice (profile dev)" in done.stderr
    assert done.stdout == ""
    assert os.stat(person.session_file()).st_mode & 0o777 == 0o600
    assert os.stat(person.session_dir()).st_mode & 0o777 == 0o700
    creds = person.home / ".authbridge" / "credentials"
    assert f"[dev]\nendpoint = {live.url}\n" in creds.read_text()  # written by login
    assert "access_key_id" not in creds.read_text()

    token = _credential(person.token())
    claims = claims_of(token)
    assert claims["aud"] == "prod" and claims["arn"] == live.user_arn
    assert claims["sid"] == claims_of(person.session()["accessToken"])["sid"]
    answer = _verified(live, token)
    assert answer["authenticated"] is True, answer
    assert answer["kubernetes"]["username"] == "alice"

    again = person.token()
    assert _credential(again) == token  # from the cache
    fast = subprocess.run(
        [sys.executable, "-X", "importtime", AUTHBRIDGE, "token", "--profile", PROFILE,
         "--cluster-id", "prod"],
        cwd=person.home, env=person.env(), capture_output=True, text=True, timeout=WAIT,
        check=False,
    )  # fmt: skip
    assert fast.returncode == 0 and json.loads(fast.stdout)["status"]["token"] == token
    imported = {ln.rsplit("|", 1)[1].strip() for ln in fast.stderr.splitlines() if "|" in ln}
    assert "authbridge.client.fastpath" in imported
    assert not imported & {"click", "ssl", "urllib.request", "authbridge.cli.token"}


def test_expired_sts_token_is_refreshed_and_the_refresh_token_rotated(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    before = person.session()
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    token = _credential(person.token("--no-cache"))
    after = person.session()
    assert after["refreshToken"] != before["refreshToken"]
    assert after["accessToken"] != before["accessToken"]
    assert after["accessExpiresAt"] > time.time()
    assert _verified(live, token)["authenticated"] is True


def test_login_role_is_assumed_with_the_users_name(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service, "--role", live.role_arn).returncode == 0
    claims = claims_of(_credential(person.token("--no-cache")))
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"
    own = claims_of(_credential(person.token("--no-cache", "--role", live.role_arn,
                                             "--session-name", "ops")))  # fmt: skip
    assert own["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/ops"


def test_refresh_token_reuse_revokes_the_session(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    stolen = person.session_file().read_bytes()  # a copy with the refresh token about to rotate
    first = _credential(person.token("--no-cache"))
    rotated = person.session_file().read_bytes()

    person.session_file().write_bytes(stolen)  # the old refresh token presented again
    reused = person.token("--no-cache")
    assert reused.returncode == 1 and reused.stdout == ""
    assert "run `authbridge login --profile dev`" in reused.stderr
    assert not person.session_file().exists()  # deleted: it can never work again

    person.session_dir().mkdir(mode=0o700, exist_ok=True)
    person.session_file().write_bytes(rotated)  # the legitimate one: the family is revoked
    os.chmod(person.session_file(), 0o600)
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    assert person.token("--no-cache").returncode == 1
    assert _verified(live, first)["authenticated"] is False  # its sid names an ended session


def _waiters(path: Path) -> int:
    """Processes blocked on a lock of ``path``'s inode (``/proc/locks`` marks them ``->``)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        raise AssertionError("the session was deleted: the plugins did not wait") from None
    count = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 5].endswith(f":{inode}"):
            count += 1
    return count


def test_concurrent_refreshes_present_one_refresh_token(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    lock = person.session_dir() / "session.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # both plugins must queue behind it
        plugins = [
            person.start(
                [AUTHBRIDGE, "token", "--profile", PROFILE, "--cluster-id", c, "--no-cache"]
            )
            for c in ("prod", "staging")
        ]
        deadline = time.monotonic() + WAIT
        while _waiters(lock) < 2:
            assert time.monotonic() < deadline, "the plugins never waited for the lock"
            assert all(p.proc.poll() is None for p in plugins), [p.finish() for p in plugins]
            time.sleep(0.05)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    results = [p.finish() for p in plugins]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert _verified(live, json.loads(result.stdout)["status"]["token"])["token"]
    # One refresh, no reuse: the session still works.
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    assert person.token("--no-cache").returncode == 0


def test_denied_device_code_ends_login(person: Person, service: Any) -> None:
    from authbridge.signin import deny_device

    running = person.start(person.login_args("--device-code"))
    code = running.wait_for(USER_CODE).group(1)
    deny_device(service, code, now=time.time())
    done = running.finish()
    assert done.returncode == 1
    assert "the sign-in was denied" in done.stderr
    assert not person.session_file().exists()


# -- logout and the end of a session ----------------------------------------------------------


def test_logout_revokes_and_deletes_and_is_idempotent(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    token = _credential(person.token())
    kept = person.session_file().read_bytes()
    out = person.run("logout", "--profile", PROFILE)
    assert out.returncode == 0, out.stderr
    assert "Signed out (profile dev)" in out.stderr
    assert not person.session_dir().exists()  # the session and its cached tokens
    assert _verified(live, token)["authenticated"] is False  # the server ended the session

    person.session_dir().mkdir(mode=0o700)
    person.session_file().write_bytes(kept)
    os.chmod(person.session_file(), 0o600)
    person.edit_session(accessExpiresAt=int(time.time()) - 10)
    refused = person.token("--no-cache")
    assert refused.returncode == 1 and "run `authbridge login --profile dev`" in refused.stderr

    again = person.run("logout", "--profile", PROFILE)
    assert again.returncode == 0 and "not signed in" in again.stderr


def test_revoke_sessions_ends_the_cli_session(
    person: Person, live: LiveServer, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    token = _credential(person.token())
    live.cli("iam revoke-sessions --user-name alice")  # the administrator, on the store
    assert _verified(live, token)["authenticated"] is False  # at once, not at expiry
    refused = person.token("--no-cache")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "has ended" in refused.stderr
    assert "run `authbridge login --profile dev`" in refused.stderr
    assert not person.session_file().exists()


def test_session_past_its_end_says_run_login(person: Person, service: Any) -> None:
    assert person.device_login(service).returncode == 0
    past = int(time.time()) - 10
    person.edit_session(accessExpiresAt=past, refreshExpiresAt=past)
    out = person.token("--no-cache")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == (
        "authbridge: the sign-in session of profile dev has ended;"
        " run `authbridge login --profile dev`"
    )
    assert not person.session_file().exists()


def test_no_session_and_no_terminal_says_run_login(person: Person, live: LiveServer) -> None:
    creds = person.home / ".authbridge"
    creds.mkdir(mode=0o700)
    (creds / "credentials").write_text(f"[dev]\nendpoint = {live.url}\nca_file = {live.ca_file}\n")
    os.chmod(creds / "credentials", 0o600)
    interactive = json.dumps(
        {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": True}}
    )
    out = person.token(KUBERNETES_EXEC_INFO=interactive)  # interactive, but stderr is a pipe
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == (
        "authbridge: profile dev is not signed in; run `authbridge login --profile dev`"
    )


def test_session_over_on_a_terminal_runs_the_device_flow_there(
    person: Person, live: LiveServer, service: Any
) -> None:
    from authbridge.signin import approve_device

    assert person.device_login(service).returncode == 0
    assert person.run("logout", "--profile", PROFILE).returncode == 0
    primary, secondary = pty.openpty()
    interactive = json.dumps(
        {"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": True}}
    )
    proc = subprocess.Popen(
        [AUTHBRIDGE, "token", "--profile", PROFILE, "--cluster-id", "prod"],
        cwd=person.home,
        env=person.env(KUBERNETES_EXEC_INFO=interactive),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + WAIT
    while not USER_CODE.search(seen.decode(errors="replace")):
        assert time.monotonic() < deadline, seen
        try:
            seen += os.read(primary, 4096)
        except OSError:
            break
    code = USER_CODE.search(seen.decode()).group(1)  # type: ignore[union-attr]
    approve_device(service, code, user_id=_alice_id(service), mfa=False, now=time.time())
    stdout, _ = proc.communicate(timeout=WAIT)
    os.close(primary)
    assert proc.returncode == 0, seen
    token = json.loads(stdout)["status"]["token"]
    assert _verified(live, token)["authenticated"] is True
    assert person.session_file().exists()


# -- the browser flow -----------------------------------------------------------------------

AUTHORIZE_LINE = re.compile(r"^\s+(https://\S+/oauth2/authorize\?\S+)$", re.M)


def _browser_login(person: Person) -> tuple[Running, str, dict[str, str]]:
    """`authbridge login` with a browser that opens nothing: the test plays the browser."""
    running = person.start(person.login_args("--timeout", "60"), BROWSER="true")
    url = running.wait_for(AUTHORIZE_LINE).group(1)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query, strict_parsing=True).items()}
    return running, url, params


def _port(params: dict[str, str]) -> int:
    redirect = urlsplit(params["redirect_uri"])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "127.0.0.1", "/callback")
    assert redirect.port is not None
    return redirect.port


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def _callback(port: int, query: str) -> bytes:
    return _raw(port, f"GET /callback?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())


def test_browser_login_end_to_end(person: Person, live: LiveServer, service: Any) -> None:
    from authbridge.signin import issue_authorization_code, validate_authorize_request

    running, url, params = _browser_login(person)
    assert url.startswith(live.url + "/oauth2/authorize?")
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["client_id"] == "authbridge-cli" and len(params["state"]) >= 43
    port = _port(params)
    # What the consent page does once alice has signed in and approved.
    request = validate_authorize_request(params)
    code = issue_authorization_code(
        service, request, user_id=_alice_id(service), mfa=False, now=time.time()
    )
    answer = _callback(port, f"code={code}&state={params['state']}")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"close this tab" in answer
    done = running.finish()
    assert done.returncode == 0, done.stderr
    token = _credential(person.token())
    assert _verified(live, token)["authenticated"] is True


def test_browser_login_callback_with_wrong_state_is_refused(person: Person) -> None:
    running, _, params = _browser_login(person)
    port = _port(params)
    assert _callback(port, "code=attacker&state=guessed").startswith(b"HTTP/1.1 400 ")
    assert running.proc.poll() is None  # still waiting for the real callback
    _callback(port, f"error=access_denied&state={params['state']}")
    done = running.finish()
    assert done.returncode == 1
    assert not person.session_file().exists()


def test_browser_login_error_callback_ends_it(person: Person) -> None:
    running, _, params = _browser_login(person)
    answer = _callback(
        _port(params),
        f"error=access_denied&error_description=user+said+no&state={params['state']}",
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and b"<script" not in answer
    done = running.finish()
    assert done.returncode == 1
    assert "the sign-in was refused in the browser (access_denied: user said no)" in done.stderr


def test_browser_login_second_callback_is_refused(person: Person) -> None:
    running, _, params = _browser_login(person)
    port = _port(params)
    _callback(port, f"error=access_denied&state={params['state']}")
    running.finish()
    with pytest.raises(ConnectionRefusedError):
        _callback(port, f"code=second&state={params['state']}")


def test_browser_login_oversized_request_is_refused(person: Person) -> None:
    running, _, params = _browser_login(person)
    port = _port(params)
    huge = b"GET /callback?" + b"a" * 64 * 1024 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert _raw(port, huge).startswith(b"HTTP/1.1 431 ")
    assert running.proc.poll() is None
    _callback(port, f"error=access_denied&state={params['state']}")
    assert running.finish().returncode == 1


def test_login_refuses_a_profile_with_an_access_key(person: Person, live: LiveServer) -> None:
    out = person.run(
        "login", "--profile", PROFILE, "--endpoint", live.url,
        AUTHBRIDGE_ACCESS_KEY_ID=live.access_key_id,
        AUTHBRIDGE_SECRET_ACCESS_KEY=live.secret,
    )  # fmt: skip
    assert out.returncode == 1
    assert "a sign-in is for profiles without a key" in out.stderr
    assert live.secret not in out.stderr


def test_session_file_is_private_and_copies_of_it_are_not_trusted(
    person: Person, service: Any
) -> None:
    assert person.device_login(service).returncode == 0
    os.chmod(person.session_file(), 0o644)
    out = person.token("--no-cache")
    assert out.returncode == 1 and "run `authbridge login --profile dev`" in out.stderr
    shutil.rmtree(person.session_dir())


def test_logout_without_the_server_deletes_here_and_says_so(person: Person) -> None:
    from authbridge.client.session import Session, SessionFiles, new_session_key
    from tests.serving import free_port

    endpoint = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    creds = person.home / ".authbridge"
    creds.mkdir(mode=0o700)
    (creds / "credentials").write_text(f"[dev]\nendpoint = {endpoint}\n")
    os.chmod(creds / "credentials", 0o600)
    files = SessionFiles.of({"HOME": str(person.home)}, endpoint, PROFILE)
    files.save(
        Session(
            endpoint=endpoint, profile=PROFILE, issuer=endpoint, key=new_session_key(),
            user=None, refresh_token="r" * 43, refresh_expires_at=int(time.time()) + 600,
            access_token="a" * 43, access_expires_at=int(time.time()) + 60, role=None,
            session_name=None, signed_in_at=int(time.time()),
        )
    )  # fmt: skip
    out = person.run("logout", "--profile", PROFILE)
    assert out.returncode == 1
    assert "signed out on this machine, but the server did not revoke the session" in out.stderr
    assert "iam revoke-sessions" in out.stderr and "r" * 43 not in out.stderr
    assert not files.directory.exists()
    assert person.run("logout", "--profile", PROFILE).returncode == 0  # idempotent
