"""``authbridge token``, ``configure`` and ``kubeconfig`` as real subprocesses, over real HTTPS.

The issuer is :class:`FakeIssuer`: ``http.server`` + ``ssl`` on 127.0.0.1 with a
throwaway CA, checking every request exactly as the real ``/oauth2/token``
will (form encoding, no repeated parameter, exactly the expected fields, HTTP
Basic client credentials form-urlencoded before base64, no client credentials
on the token exchange, the subject token's signature, issuer and audience: the
issuer URL + ``/sts``, never a cluster) and answering with RS256 JWTs or RFC
6749 §5.2 errors; it serves the discovery document the client reads the issuer
URL from. It counts token requests (and discovery reads apart), so a cache hit
is a run that made none.

Covers: user and role tokens and their claims; ``--role`` gets an sts token
first (the discovery's issuer + ``/sts``), caches it (0600) for every role and
cluster of the profile, and tries a fresh one once when the exchange refuses a
cached one; the ExecCredential in v1 (by
default) and v1beta1 (from ``KUBERNETES_EXEC_INFO``), a warning and v1 for a
garbled or unknown one; ``--token-only``; the cache (hit, ``--no-cache``,
refresh at the 60 s boundary, a corrupt entry replaced, 0600/0700); every
refusal as one stderr line, exit 1, nothing on stdout (wrong secret, unknown
cluster, untrusted role, server down, TLS without or with the wrong CA,
a non-JSON answer, a redirect, http://, a world-readable credentials file, bad
flags) and usage errors with exit 2; ``configure`` (secret from stdin only,
0600 file in a 0700 directory, other profiles and comments kept, a 0644 file
replaced with a warning); ``kubeconfig`` parsed with YAML field by field
(and ``--login``: a signed-in user, ``interactiveMode: IfAvailable``);
break-glass ``--local`` (verified with the key set, logged without the token,
never cached); that the cached path imports no heavy module
(``-X importtime``); and the lazy subcommands: importing the CLI loads no
command module, each loads under its own name, ``--help`` lists them all.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from authbridge import pki as authbridge_pki
from tests.test_cli import AUTHBRIDGE, TIMEOUT, Cli, Result, clean_env, python_prints

ACCOUNT = "111122223333"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
USER_ID = "AIDAALICEALICEALICEA"
KEY_ID = "AKIAALICEALICEALICE2"
# Every character RFC 6749 §2.3.1 makes the client form-urlencode.
SECRET = "s3cret:with+plus/slash=eq%pct~tilde"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
ROLE_ID = "AROAADMINADMINADMINA"
UNTRUSTED_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/Other"
CLUSTERS = ("prod", "dev")
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
HEAVY = (
    "cryptography",
    "jwt",
    "yaml",
    "flask",
    "psycopg",
    "sqlite3",
    "kubernetes",
    "authbridge.store",
    "authbridge.keys",
    "authbridge.tokens",
    "authbridge.settings",
    "ssl",
    "urllib.request",
    "http.client",
    "authbridge.client.issuer",
)
# What the cached path must not even reach: click, the command tree, the click path's client
# modules, and the standard library they need.
SLOW_PATH = (
    "click",
    "authbridge.cli.main",
    "authbridge.cli.token",
    "authbridge.client.config",
    "authbridge.client.cache",
    "authbridge.client.exec_credential",
    "dataclasses",
    "inspect",
    "typing",
)


# -- a throwaway PKI ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    other_ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA and serving certificate for 127.0.0.1, from authbridge's own PKI."""
    d = tmp_path_factory.mktemp("pki")
    ca = authbridge_pki.new_ca("authbridge test CA")
    other = authbridge_pki.new_ca("some other CA")
    server = authbridge_pki.issue_server_cert(ca, hostnames=[], ips=["127.0.0.1"])
    pki = Pki(d / "ca.crt", d / "other-ca.crt", d / "server.crt", d / "server.key")
    pki.ca_file.write_bytes(ca.cert_pem)
    pki.other_ca_file.write_bytes(other.cert_pem)
    pki.cert_file.write_bytes(server.cert_pem)
    pki.key_file.write_bytes(server.key_pem)
    return pki


# -- the fake issuer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the issuer received it."""

    path: str
    form: dict[str, str]
    authorization: str | None
    content_type: str


@dataclass
class FakeIssuer:
    """The ``/oauth2/token`` contract, served over TLS; see the module docstring."""

    signing_key: rsa.RSAPrivateKey
    kid: str = "test-kid"
    url: str = ""
    mode: str = "ok"  # "ok" | "html" | "redirect"
    requests: list[Seen] = field(default_factory=list)
    discoveries: int = 0  # GETs of the discovery document
    refused_subjects: set[str] = field(default_factory=set)  # jtis the exchange refuses
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- helpers ------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.mode = "ok"
            self.discoveries = 0
            self.refused_subjects.clear()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            self.signing_key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            issuer=self.url,
        )
        return claims

    @property
    def sts(self) -> str:
        """The audience of subject tokens (authbridge.sts.sts_audience)."""
        return self.url + "/sts"

    def discovery(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path != "/.well-known/openid-configuration":
            return 404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
        with self.lock:
            self.discoveries += 1
        return self._json(200, {"issuer": self.url, "token_endpoint": self.url + "/oauth2/token"})

    @staticmethod
    def _json(
        status: int, doc: dict[str, Any], **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        # RFC 6749 §5.1: token responses are not to be cached.
        base = {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        }
        return status, {**base, **headers}, json.dumps(doc).encode()

    def _error(
        self, status: int, error: str, description: str
    ) -> tuple[int, dict[str, str], bytes]:
        extra = {"WWW-Authenticate": 'Basic realm="authbridge"'} if status == 401 else {}
        return self._json(status, {"error": error, "error_description": description}, **extra)

    def _mint(self, claims: dict[str, Any], audience: str, lifetime: int) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
            "account": ACCOUNT,
            **claims,
        }
        token = jwt.encode(
            claims, self.signing_key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "issued_token_type": JWT_TYPE,
        }

    @staticmethod
    def _lifetime(form: dict[str, str], cap: int) -> int | None:
        raw = form.get("duration_seconds", "900")
        if not raw.isdigit() or not 900 <= int(raw) <= cap:
            return None
        return int(raw)

    # -- the endpoint -------------------------------------------------------------------
    def respond(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.mode == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Welcome!</body></html>"
        if self.mode == "redirect":
            return 307, {"Location": "http://127.0.0.1:1/oauth2/token"}, b""
        if path != "/oauth2/token":
            return 404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
        content_type = headers.get("Content-Type", "")
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "invalid_request", "the body is not form-encoded")
        form = dict(pairs)
        with self.lock:
            self.requests.append(Seen(path, form, headers.get("Authorization"), content_type))
        if content_type != "application/x-www-form-urlencoded":
            return self._error(400, "invalid_request", "expected a form-encoded body")
        if len(form) != len(pairs):
            return self._error(400, "invalid_request", "a parameter is repeated (RFC 6749 §3.2)")
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return self._client_credentials(form, headers.get("Authorization"))
        if grant == EXCHANGE:
            return self._token_exchange(form)
        return self._error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _client_credentials(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if set(form) - {"grant_type", "audience", "duration_seconds"} or "audience" not in form:
            return self._error(400, "invalid_request", "unexpected or missing parameters")
        client_id = secret = None
        if authorization and authorization.startswith("Basic "):
            raw = base64.b64decode(authorization.removeprefix("Basic ")).decode()
            encoded_id, _, encoded_secret = raw.partition(":")
            # RFC 6749 §2.3.1: each part was form-urlencoded before base64.
            client_id, secret = unquote_plus(encoded_id), unquote_plus(encoded_secret)
        if client_id != KEY_ID or not hmac.compare_digest((secret or "").encode(), SECRET.encode()):
            return self._error(401, "invalid_client", "the access key id or secret is not valid")
        if form["audience"] not in (*CLUSTERS, self.sts):
            return self._error(
                400, "invalid_target", f"this issuer does not issue tokens for {form['audience']}"
            )
        lifetime = self._lifetime(form, 3600)
        if lifetime is None:
            return self._error(400, "invalid_request", "duration_seconds must be 900 to 3600")
        claims = {
            "sub": USER_ARN,
            "arn": USER_ARN,
            "principal_id": USER_ID,
            "access_key_id": KEY_ID,
        }
        return self._json(200, self._mint(claims, form["audience"], lifetime))

    def _token_exchange(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        required = {
            "grant_type",
            "subject_token",
            "subject_token_type",
            "audience",
            "role_arn",
            "role_session_name",
        }
        if not required <= set(form) or set(form) - required - {"duration_seconds"}:
            return self._error(400, "invalid_request", "unexpected or missing parameters")
        if form["subject_token_type"] != JWT_TYPE:
            return self._error(400, "invalid_request", "subject_token_type must be jwt")
        if form["audience"] not in CLUSTERS:
            return self._error(400, "invalid_target", "unknown cluster")
        try:
            subject = self.verify(form["subject_token"], self.sts)
        except jwt.InvalidAudienceError:
            return self._error(400, "invalid_grant", "a cluster token is not an STS credential")
        except jwt.PyJWTError:
            return self._error(400, "invalid_grant", "the subject token is not valid")
        if subject["jti"] in self.refused_subjects:
            return self._error(400, "invalid_grant", "subject_token revoked")
        if form["role_arn"] != ROLE_ARN or subject["sub"] != USER_ARN:
            return self._error(
                400,
                "invalid_grant",
                f"role {form['role_arn']} does not exist or does not trust you",
            )
        session = form["role_session_name"]
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session, re.ASCII):
            return self._error(400, "invalid_request", "role_session_name is not valid")
        lifetime = self._lifetime(form, 7200)
        if lifetime is None:
            return self._error(400, "invalid_request", "duration_seconds must be 900 to 7200")
        claims = {
            "sub": ROLE_ARN,
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/{session}",
            "principal_id": f"{ROLE_ID}:{session}",
            "session_name": session,
        }
        return self._json(200, self._mint(claims, form["audience"], lifetime))


class _Handler(BaseHTTPRequestHandler):
    server: _TlsServer
    protocol_version = "HTTP/1.1"
    timeout = 5

    def handle(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate: that is what some tests want
        super().handle()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(*self.server.issuer.respond(self.path, self.headers, body))

    def do_GET(self) -> None:
        self._answer(*self.server.issuer.discovery(self.path))

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: FakeIssuer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.issuer = issuer
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(5)
        # The handshake happens in the handler's thread, where a failure is expected.
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-request; the test sees its side


@pytest.fixture(scope="module")
def issuer_server(pki: Pki) -> Iterator[FakeIssuer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    issuer = FakeIssuer(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    server = _TlsServer(issuer, context)
    issuer.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def issuer(issuer_server: FakeIssuer) -> FakeIssuer:
    issuer_server.reset()
    return issuer_server


# -- running the CLI -------------------------------------------------------------------------


def token_env(home: Path, **extra: str) -> dict[str, str]:
    env = clean_env(HOME=str(home), **extra)
    for name in list(env):
        if name in ("KUBERNETES_EXEC_INFO", "SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONOPTIMIZE"):
            del env[name]
        elif name.lower() in ("https_proxy", "http_proxy", "all_proxy", "no_proxy"):
            del env[name]
    return env


@dataclass
class Env:
    cli: Cli
    home: Path
    issuer: FakeIssuer
    pki: Pki

    @property
    def credentials(self) -> Path:
        return self.home / ".authbridge" / "credentials"

    @property
    def cache_dir(self) -> Path:
        return self.home / ".kube" / "cache" / "authbridge"

    def profile(self, name: str = "default", mode: int = 0o600, **values: str) -> None:
        values = {
            "endpoint": self.issuer.url,
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "ca_file": str(self.pki.ca_file),
            **values,
        }
        self.credentials.parent.mkdir(mode=0o700, exist_ok=True)
        text = f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items() if v)
        with self.credentials.open("a") as f:
            f.write(text)
        os.chmod(self.credentials, mode)

    def token(self, args: str, **env: str) -> dict[str, Any]:
        r = self.cli.ok(f"token {args}", self.env(**env))
        doc: dict[str, Any] = r.json()
        return doc

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.cli.env, **extra}

    def with_stdin(self, argv: list[str], stdin: bytes, **env: str) -> Result:
        proc = subprocess.run(
            [str(AUTHBRIDGE), *argv],
            cwd=self.cli.cwd,
            env=self.env(**env),
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        return Result(tuple(argv), proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.fixture
def t(tmp_path: Path, issuer: FakeIssuer, pki: Pki) -> Env:
    home = tmp_path / "home"
    home.mkdir()
    return Env(Cli(tmp_path, token_env(home)), home, issuer, pki)


def exec_info(version: str, interactive: bool = False) -> str:
    return json.dumps(
        {"kind": "ExecCredential", "apiVersion": version, "spec": {"interactive": interactive}}
    )


def basic(seen: Seen) -> tuple[str, str]:
    assert seen.authorization is not None and seen.authorization.startswith("Basic ")
    raw = base64.b64decode(seen.authorization.removeprefix("Basic ")).decode()
    encoded_id, _, encoded_secret = raw.partition(":")
    return encoded_id, encoded_secret


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the test reads what it wrote itself)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def rfc3339(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- tokens ------------------------------------------------------------------------------------


def test_user_token_is_a_v1_exec_credential_and_the_request_is_the_contract(t: Env) -> None:
    t.profile()
    before = time.time()
    r = t.cli.ok("token --cluster-id prod", t.env())
    doc = json.loads(r.out)
    assert r.out.count("\n") == 1
    assert set(doc) == {"apiVersion", "kind", "spec", "status"}
    assert (doc["apiVersion"], doc["kind"], doc["spec"]) == (V1, "ExecCredential", {})
    assert set(doc["status"]) == {"token", "expirationTimestamp"}
    claims = t.issuer.verify(doc["status"]["token"], "prod")
    assert (claims["sub"], claims["arn"], claims["access_key_id"]) == (USER_ARN, USER_ARN, KEY_ID)
    shown = dt.datetime.strptime(doc["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    shown_ts = shown.replace(tzinfo=dt.UTC).timestamp()
    assert before < shown_ts < claims["exp"]
    assert claims["exp"] - 62 <= shown_ts <= claims["exp"] - 58

    [seen] = t.issuer.requests
    assert seen.path == "/oauth2/token"
    assert seen.content_type == "application/x-www-form-urlencoded"
    assert seen.form == {"grant_type": "client_credentials", "audience": "prod"}
    encoded_id, encoded_secret = basic(seen)
    assert encoded_id == KEY_ID and encoded_secret != SECRET  # form-urlencoded first
    assert unquote_plus(encoded_secret) == SECRET


@pytest.mark.parametrize(
    ("info", "version", "spec"),
    [
        (exec_info(V1, True), V1, {"interactive": True}),
        (exec_info(V1BETA1, False), V1BETA1, {"interactive": False}),
        (exec_info(V1BETA1, True), V1BETA1, {"interactive": True}),
    ],
)
def test_exec_credential_version_follows_kubernetes_exec_info(
    t: Env, info: str, version: str, spec: dict[str, bool]
) -> None:
    t.profile(cluster_id="prod")
    doc = t.token("", KUBERNETES_EXEC_INFO=info)
    assert (doc["apiVersion"], doc["spec"]) == (version, spec)


@pytest.mark.parametrize(
    ("info", "says"),
    [
        ("{garbage", "KUBERNETES_EXEC_INFO is not JSON"),
        (exec_info("client.authentication.k8s.io/v1alpha1"), "does not speak"),
    ],
)
def test_garbled_exec_info_answers_v1_with_a_warning(t: Env, info: str, says: str) -> None:
    t.profile(cluster_id="prod")
    r = t.cli.run("token", t.env(KUBERNETES_EXEC_INFO=info))
    assert r.rc == 0, r
    assert json.loads(r.out)["apiVersion"] == V1
    assert r.err.startswith("authbridge: warning: ") and says in r.err
    assert r.err.count("\n") == 1


def test_role_token_exchanges_a_user_token_without_client_credentials(t: Env) -> None:
    t.profile()
    doc = t.token(f"--cluster-id dev --role {ROLE_ARN}")
    claims = t.issuer.verify(doc["status"]["token"], "dev")
    assert claims["sub"] == ROLE_ARN
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/{KEY_ID}"
    assert claims["session_name"] == KEY_ID  # the default session name is the access key id
    first, second = t.issuer.requests
    # An sts token first (the issuer URL from discovery + /sts), never a cluster token.
    assert first.form == {"grant_type": "client_credentials", "audience": t.issuer.sts}
    assert t.issuer.discoveries == 1
    assert second.authorization is None
    subject = second.form.pop("subject_token")
    assert t.issuer.verify(subject, t.issuer.sts)["sub"] == USER_ARN
    assert second.form == {
        "grant_type": EXCHANGE,
        "subject_token_type": JWT_TYPE,
        "audience": "dev",
        "role_arn": ROLE_ARN,
        "role_session_name": KEY_ID,
    }


def test_role_session_name_and_duration(t: Env) -> None:
    t.profile()
    session = "--session-name alice@example.com --duration 1800"
    doc = t.token(f"--cluster-id prod --role {ROLE_ARN} {session}")
    claims = t.issuer.verify(doc["status"]["token"], "prod")
    assert claims["session_name"] == "alice@example.com"
    assert claims["exp"] - claims["iat"] == 1800
    first, second = t.issuer.requests
    assert "duration_seconds" not in first.form  # the subject token is used at once
    assert second.form["duration_seconds"] == "1800"
    assert second.form["role_session_name"] == "alice@example.com"


def test_role_tokens_share_one_cached_sts_token(t: Env) -> None:
    t.profile()
    t.token(f"--cluster-id prod --role {ROLE_ARN}")
    assert [r.form["grant_type"] for r in t.issuer.requests] == ["client_credentials", EXCHANGE]
    entries = {p.name: p for p in t.cache_dir.iterdir()}
    assert len(entries) == 2
    sts_entry = next(
        p
        for p in entries.values()
        if claims_of(json.loads(p.read_text())["token"])["aud"] == t.issuer.sts
    )
    assert stat.S_IMODE(sts_entry.stat().st_mode) == 0o600
    # Another cluster and session: only the exchange, with the cached sts token.
    t.token(f"--cluster-id dev --role {ROLE_ARN} --session-name other")
    assert [r.form["grant_type"] for r in t.issuer.requests][2:] == [EXCHANGE]
    assert t.issuer.discoveries == 1
    cached_sts = json.loads(sts_entry.read_text())["token"]
    assert t.issuer.requests[2].form["subject_token"] == cached_sts
    # The issuer now refuses that sts token (revoked): a fresh one, once, and it works.
    t.issuer.refused_subjects.add(claims_of(cached_sts)["jti"])
    doc = t.token(f"--cluster-id prod --role {ROLE_ARN} --session-name third")
    assert t.issuer.verify(doc["status"]["token"], "prod")["session_name"] == "third"
    grants = [r.form["grant_type"] for r in t.issuer.requests][3:]
    assert grants == [EXCHANGE, "client_credentials", EXCHANGE]
    assert json.loads(sts_entry.read_text())["token"] != cached_sts  # replaced


def test_token_only_and_environment_credentials(t: Env) -> None:
    env = t.env(
        AUTHBRIDGE_ACCESS_KEY_ID=KEY_ID,
        AUTHBRIDGE_SECRET_ACCESS_KEY=SECRET,
        AUTHBRIDGE_ENDPOINT=t.issuer.url,
        AUTHBRIDGE_CA_FILE=str(t.pki.ca_file),
        AUTHBRIDGE_CLUSTER_ID="dev",
    )
    r = t.cli.ok("token --token-only --duration 3600", env)
    token = r.out.removesuffix("\n")
    assert "\n" not in token and "{" not in token
    claims = t.issuer.verify(token, "dev")
    assert claims["exp"] - claims["iat"] == 3600
    assert t.issuer.requests[0].form["duration_seconds"] == "3600"
    assert not t.credentials.exists()


# -- the cache ------------------------------------------------------------------------------------


def test_cache_hit_no_cache_and_refresh(t: Env) -> None:
    t.profile()
    first = t.token("--cluster-id prod")
    assert t.issuer.count() == 1
    [entry] = list(t.cache_dir.iterdir())
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(t.cache_dir.stat().st_mode) == 0o700
    cached = json.loads(entry.read_text())
    assert cached["token"] == first["status"]["token"]
    assert cached["expirationTimestamp"] == first["status"]["expirationTimestamp"]

    # A hit: the server is not called, the same token comes back, in the version asked for.
    again = t.token("--cluster-id prod", KUBERNETES_EXEC_INFO=exec_info(V1BETA1))
    assert t.issuer.count() == 1
    assert again["status"] == first["status"] and again["apiVersion"] == V1BETA1

    # --no-cache: a new token, and the cache is neither read nor written.
    fresh = t.token("--cluster-id prod --no-cache")
    assert t.issuer.count() == 2
    assert fresh["status"]["token"] != first["status"]["token"]
    assert json.loads(entry.read_text()) == cached

    # Other requests have their own entries.
    t.token(f"--cluster-id prod --role {ROLE_ARN}")
    t.token(f"--cluster-id prod --role {ROLE_ARN}")
    assert t.issuer.count() == 4
    assert len(list(t.cache_dir.iterdir())) == 3  # the role token and the sts token too

    # Exactly 60 s before exp: refreshed, and the entry replaced.
    expires_at = int(time.time()) + 60
    entry.write_text(
        json.dumps(
            {
                "token": cached["token"],
                "expiresAt": expires_at,
                "expirationTimestamp": rfc3339(expires_at - 60),
            }
        )
    )
    refreshed = t.token("--cluster-id prod")
    assert t.issuer.count() == 5
    assert refreshed["status"]["token"] != cached["token"]
    assert json.loads(entry.read_text())["token"] == refreshed["status"]["token"]


@pytest.mark.parametrize("damage", ["corrupt", "world-readable", "symlink"])
def test_untrusted_cache_entry_is_replaced(t: Env, damage: str) -> None:
    t.profile(cluster_id="prod")
    first = t.token("")
    [entry] = list(t.cache_dir.iterdir())
    if damage == "corrupt":
        entry.write_text('{"token": "forged", "expiresAt": 9999999999')
    elif damage == "world-readable":
        os.chmod(entry, 0o644)
    else:
        target = t.home / "planted.json"
        target.write_bytes(entry.read_bytes())
        os.chmod(target, 0o600)
        entry.unlink()
        entry.symlink_to(target)
    second = t.token("")
    assert t.issuer.count() == 2
    assert second["status"]["token"] != first["status"]["token"]
    assert not entry.is_symlink() and stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert json.loads(entry.read_text())["token"] == second["status"]["token"]


# -- refusals ---------------------------------------------------------------------------------


def test_wrong_secret_is_refused_by_the_issuer(t: Env) -> None:
    t.profile(secret_access_key="not-the-right-secret-at-all")
    line = t.cli.fails(
        "token --cluster-id prod",
        "the issuer refused: invalid_client: the access key id or secret is not valid;",
        "check the access key id and secret, `authbridge configure`",
        env=t.env(),
    )
    assert "not-the-right-secret" not in line
    assert not t.cache_dir.exists()


def test_unknown_cluster_and_untrusted_role_are_refused(t: Env) -> None:
    t.profile()
    t.cli.fails(
        "token --cluster-id staging",
        "the issuer refused: invalid_target: this issuer does not issue tokens for staging",
        "check --cluster-id",
        env=t.env(),
    )
    t.cli.fails(
        f"token --cluster-id prod --role {UNTRUSTED_ROLE_ARN}",
        "the issuer refused: invalid_grant: role",
        "check that --role names a role that trusts your user",
        env=t.env(),
    )


def test_server_down_names_the_endpoint(t: Env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t.profile(endpoint=f"https://127.0.0.1:{port}")
    t.cli.fails(
        "token --cluster-id prod",
        f"cannot connect to the issuer at https://127.0.0.1:{port}: connection refused",
        "check --endpoint",
        env=t.env(),
    )


def test_tls_without_the_right_ca_is_refused(t: Env) -> None:
    t.profile(ca_file="")
    t.cli.fails(
        "token --cluster-id prod",
        f"TLS verification of {t.issuer.url} failed",
        "pass --ca-file",
        env=t.env(),
    )
    t.cli.fails(
        f"token --cluster-id prod --ca-file {t.pki.other_ca_file}",
        "TLS verification",
        f"check that {t.pki.other_ca_file} is the CA",
        env=t.env(),
    )
    t.cli.ok(f"token --cluster-id prod --ca-file {t.pki.ca_file}", t.env())
    assert t.issuer.count() == 1  # the refused handshakes sent nothing


def test_answers_that_are_not_the_protocol_are_refused(t: Env) -> None:
    t.profile()
    t.issuer.mode = "html"
    t.cli.fails(
        "token --cluster-id prod",
        f"the issuer at {t.issuer.url} answered with something that is not JSON",
        "check that --endpoint",
        env=t.env(),
    )
    t.issuer.mode = "redirect"
    t.cli.fails(
        "token --cluster-id prod",
        "answered HTTP 307, a redirect to http://127.0.0.1:1/oauth2/token",
        "does not follow redirects",
        env=t.env(),
    )
    t.issuer.mode = "ok"
    t.cli.fails(
        f"token --cluster-id prod --endpoint {t.issuer.url}/wrong/prefix",
        "answered HTTP 404",
        f"{t.issuer.url}/wrong/prefix/oauth2/token",
        env=t.env(),
    )


def test_local_refusals_before_any_request(t: Env) -> None:
    t.profile()
    env = t.env()
    t.cli.fails(
        "token --cluster-id prod --endpoint http://127.0.0.1:1",
        "--endpoint: 'http://127.0.0.1:1' is plain http",
        env=env,
    )
    t.cli.fails(
        "token --cluster-id prod --role Admin", "--role: 'Admin' is not a role ARN", env=env
    )
    t.cli.fails(
        f"token --cluster-id prod --role {ROLE_ARN} --session-name 'a b'",
        "--session-name: 'a b' is not a role session name",
        env=env,
    )
    t.cli.fails(
        "token --cluster-id 'bad id'", "--cluster-id: 'bad id' is not a cluster id", env=env
    )
    t.cli.fails("token --cluster-id prod --profile nope", "profile nope is not in", env=env)
    assert t.issuer.count() == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("token", "--cluster-id is required"),
        ("token --cluster-id prod --session-name me", "--session-name applies only with --role"),
        ("token --cluster-id prod --duration 60", "60 is not in the range 900<=x<=43200"),
        ("token --cluster-id prod --principal arn:aws:iam::1:user/x", "only with --local"),
        ("token --cluster-id prod --secret-access-key x", "No such option"),
    ],
)
def test_usage_errors(t: Env, args: str, says: str) -> None:
    t.profile()
    r = t.cli.run(args, t.env())
    assert r.rc == 2 and r.out == "" and says in r.err, r


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_credentials_others_can_read_are_refused(t: Env, mode: int) -> None:
    t.profile(mode=mode)
    t.cli.fails(
        "token --cluster-id prod",
        f"credentials file {t.credentials} is readable or writable by other users",
        f"run `chmod 600 {t.credentials}`",
        env=t.env(),
    )
    assert t.issuer.count() == 0


def test_malformed_credentials_name_the_line_not_the_secret(t: Env) -> None:
    t.credentials.parent.mkdir(mode=0o700)
    t.credentials.write_text(f"[default]\nendpoint = {t.issuer.url}\n{SECRET}\n")
    os.chmod(t.credentials, 0o600)
    line = t.cli.fails(
        "token --cluster-id prod", f"credentials file {t.credentials}: line 3", env=t.env()
    )
    assert SECRET not in line


# -- configure ----------------------------------------------------------------------------------


def test_configure_writes_a_private_profile_and_keeps_the_others(t: Env) -> None:
    t.credentials.parent.mkdir(mode=0o755)
    t.credentials.write_text("# mine\n[other]\nendpoint = https://other.example.com\n")
    os.chmod(t.credentials, 0o600)
    argv = [
        "configure",
        "--endpoint",
        t.issuer.url,
        "--access-key-id",
        KEY_ID,
        "--ca-file",
        str(t.pki.ca_file),
        "--cluster-id",
        "prod",
        "--no-verify",  # the fake issuer has no introspection (tests/test_cli_configure.py)
    ]
    r = t.with_stdin(argv, SECRET.encode() + b"\n")
    assert r.rc == 0 and r.err == "", r
    assert r.out == (
        f"Saved profile default ({KEY_ID}, not checked (--no-verify)) to {t.credentials}.\n"
    )
    assert SECRET not in r.out + r.err
    assert stat.S_IMODE(t.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(t.credentials.parent.stat().st_mode) == 0o700
    assert t.credentials.read_text() == (
        "# mine\n[other]\nendpoint = https://other.example.com\n\n[default]\n"
        f"endpoint = {t.issuer.url}\naccess_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\n"
        f"ca_file = {t.pki.ca_file}\ncluster_id = prod\n"
    )
    # The profile works as written.
    doc = t.token("")
    assert t.issuer.verify(doc["status"]["token"], "prod")["sub"] == USER_ARN

    # A second profile, then an update of the first that keeps what it does not name.
    ci = ["--profile", "ci", "--endpoint", "https://ci.example.com", "--access-key-id", KEY_ID]
    ci.append("--no-verify")  # no such server: offline set-up
    r = t.with_stdin(
        ["configure", *ci, "-o", "json"],
        b"another-secret-long-enough\n",
    )
    assert r.rc == 0 and json.loads(r.out)["Profile"] == "ci", r
    r = t.with_stdin(
        [
            "configure",
            "--endpoint",
            "https://new.example.com",
            "--access-key-id",
            KEY_ID,
            "--no-verify",
        ],
        SECRET.encode(),
    )
    assert r.rc == 0, r
    text = t.credentials.read_text()
    assert "[other]\nendpoint = https://other.example.com\n" in text
    assert "[ci]\nendpoint = https://ci.example.com\n" in text
    assert f"[default]\nendpoint = https://new.example.com\naccess_key_id = {KEY_ID}\n" in text
    assert "cluster_id = prod" in text
    assert sorted(p.name for p in t.credentials.parent.iterdir()) == ["credentials"]


def test_configure_replaces_a_readable_file_with_a_warning(t: Env) -> None:
    t.profile(name="old", mode=0o644)
    argv = ["configure", "--endpoint", t.issuer.url, "--access-key-id", KEY_ID, "--no-verify"]
    r = t.with_stdin(argv, SECRET.encode() + b"\n")
    assert r.rc == 0, r
    assert "warning" in r.err and "mode 0644" in r.err and "rotate" in r.err
    assert stat.S_IMODE(t.credentials.stat().st_mode) == 0o600
    assert "[old]" in t.credentials.read_text()


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (["--endpoint", "http://x.example.com"], SECRET.encode(), "is plain http"),
        (["--access-key-id", "AKIA123"], SECRET.encode(), "is not an access key id"),
        ([], b"", "secret access key: nothing on stdin"),
        ([], b"short\n", "secret access key: must be 16 to 256"),
        ([], b"\xff" * 20 + b"\n", "stdin is not UTF-8"),
        (["--ca-file", "/nonexistent/ca.pem"], SECRET.encode(), "--ca-file: cannot read"),
        (["--profile", "a/b"], SECRET.encode(), "--profile: 'a/b' is not a profile name"),
    ],
)
def test_configure_refusals_write_nothing(t: Env, argv: list[str], stdin: bytes, says: str) -> None:
    base = {"--endpoint": t.issuer.url, "--access-key-id": KEY_ID}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    r = t.with_stdin(["configure", *[x for kv in base.items() for x in kv]], stdin)
    assert r.rc == 1 and r.out == "" and says in r.err and r.err.count("\n") == 1, r
    assert not t.credentials.exists()


# -- kubeconfig -----------------------------------------------------------------------------------


def test_kubeconfig_wires_the_plugin(t: Env) -> None:
    r = t.cli.ok(
        f"kubeconfig --cluster-id prod --server https://10.0.0.1:6443 --ca-file {t.pki.ca_file}"
        f" --role {ROLE_ARN} --profile ci --endpoint {t.issuer.url}",
        t.env(),
    )
    doc = yaml.safe_load(r.out)
    assert (doc["apiVersion"], doc["kind"], doc["current-context"]) == ("v1", "Config", "prod")
    [cluster] = doc["clusters"]
    assert cluster["name"] == "prod"
    assert cluster["cluster"]["server"] == "https://10.0.0.1:6443"
    ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca == t.pki.ca_file.read_bytes()
    [context] = doc["contexts"]
    [user] = doc["users"]
    assert context == {"name": "prod", "context": {"cluster": "prod", "user": user["name"]}}
    assert user["name"] == "authbridge-Admin@prod"
    execution = user["user"]["exec"]
    assert execution["apiVersion"] == V1
    assert execution["command"] == "authbridge"
    assert execution["args"] == [
        "token",
        "--cluster-id",
        "prod",
        "--role",
        ROLE_ARN,
        "--profile",
        "ci",
        "--endpoint",
        t.issuer.url,
    ]
    assert execution["interactiveMode"] == "Never"
    assert execution["provideClusterInfo"] is False
    assert "authbridge configure" in execution["installHint"]
    # How the README installs it (a clone + scripts/bootstrap), not a package it never names.
    assert "scripts/bootstrap" in execution["installHint"]
    assert ".venv/bin/authbridge" in execution["installHint"]
    assert "pip install" not in execution["installHint"]


def test_kubeconfig_login_writes_a_signed_in_user_that_may_prompt(t: Env) -> None:
    r = t.cli.ok(
        "kubeconfig --login --cluster-id prod --server https://10.0.0.1:6443 --profile dev",
        t.env(),
    )
    [user] = yaml.safe_load(r.out)["users"]
    assert user["name"] == "authbridge-login@prod"
    execution = user["user"]["exec"]
    assert execution["args"] == ["token", "--cluster-id", "prod", "--profile", "dev"]
    assert execution["interactiveMode"] == "IfAvailable"
    assert "authbridge login" in execution["installHint"]
    assert "configure" not in execution["installHint"]


def test_kubeconfig_minimal_and_refusals(t: Env) -> None:
    r = t.cli.ok("kubeconfig --cluster-id dev --server https://k8s.example.com --name lab", t.env())
    doc = yaml.safe_load(r.out)
    assert doc["clusters"] == [{"name": "lab", "cluster": {"server": "https://k8s.example.com"}}]
    assert doc["users"][0]["name"] == "authbridge@lab"
    assert doc["users"][0]["user"]["exec"]["args"] == ["token", "--cluster-id", "dev"]
    as_json = t.cli.ok(
        "kubeconfig --cluster-id dev --server https://k8s.example.com --name lab -o json", t.env()
    )
    assert json.loads(as_json.out) == doc
    t.cli.fails(
        "kubeconfig --cluster-id dev --server http://k8s.example.com", "--server:", "plain http"
    )
    t.cli.fails(
        f"kubeconfig --cluster-id dev --server https://k8s.example.com --ca-file {t.credentials}",
        "--ca-file: cannot read",
    )
    t.cli.fails(
        f"kubeconfig --cluster-id dev --server https://k.example.com --ca-file {AUTHBRIDGE}",
        "is not a PEM CA bundle",
    )


# -- break-glass ------------------------------------------------------------------------------


def test_break_glass_signs_locally_logs_and_never_caches(tmp_path: Path) -> None:
    from authbridge.keys import KeyDirectory
    from authbridge.tokens import verify

    home = tmp_path / "home"
    home.mkdir()
    issuer_url = "https://authbridge.test"
    cli = Cli(
        tmp_path,
        token_env(home, AUTHBRIDGE_CLUSTER_IDS="prod,dev", AUTHBRIDGE_ISSUER=issuer_url),
    )
    cli.ok("keys init")
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    user = cli.json("iam create-user --user-name alice")["User"]
    role = cli.json(
        f"iam create-role --role-name Admin --path /platform/ --trust {user['Arn']}"
        " --max-session-duration 7200"
    )["Role"]
    keys = KeyDirectory(tmp_path / "keys").load()
    log = tmp_path / "keys" / "break-glass.log"

    r = cli.run(f"token --local --principal {user['Arn']} --cluster-id prod")
    assert r.rc == 0, r
    [kid] = [k.kid for k in keys.keys]
    assert r.err == (
        f"authbridge: warning: break-glass token for {user['Arn']} signed locally with key"
        f" {kid}; this is logged\n"
    )
    doc = json.loads(r.out)
    assert doc["apiVersion"] == V1
    token = doc["status"]["token"]
    verified = verify(token, keys=keys, issuer=issuer_url, audiences=["prod"])
    assert verified.principal.arn == verified.principal.canonical_arn == user["Arn"]
    assert verified.principal.principal_id == user["UserId"]
    assert verified.principal.access_key_id is None
    assert verified.expires_at - verified.issued_at == 900
    assert doc["status"]["expirationTimestamp"] == rfc3339(verified.expires_at - 60)

    def tokens_logged() -> list[dict[str, Any]]:
        # the log also holds the store-mode IAM changes above (authbridge.cli.admin_call)
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        return [x for x in lines if x.get("event") == "break-glass-token"]

    [record] = tokens_logged()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert token not in log.read_text() and token.split(".")[2] not in log.read_text()
    assert record["principal"] == user["Arn"] and record["cluster"] == "prod"
    assert (record["kid"], record["jti"], record["exp"]) == (
        kid,
        verified.jti,
        verified.expires_at,
    )
    assert record["localUser"] and record["host"] == socket.gethostname()
    assert not (home / ".kube").exists()  # never cached

    # A role: the session ARN, the role's ARN (with its path) as sub, "break-glass" session.
    r = cli.run(
        f"token --local --principal {role['Arn']} --cluster-id dev --duration 7200 --token-only"
    )
    assert r.rc == 0 and "break-glass token for arn:aws:sts::" in r.err, r
    verified = verify(r.out.strip(), keys=keys, issuer=issuer_url, audiences=["dev"])
    assert verified.principal.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/break-glass"
    assert verified.principal.canonical_arn == role["Arn"]
    assert verified.principal.principal_id == f"{role['RoleId']}:break-glass"
    # No IAM user behind it: the session is its own source, checked as the role.
    assert verified.principal.source_identity == role["RoleId"]
    assert verified.principal.session_name == "break-glass"
    assert verified.expires_at - verified.issued_at == 7200
    assert len(tokens_logged()) == 2

    # Refusals: nothing minted, nothing logged.
    cli.fails(
        f"token --local --principal {user['Arn']} --cluster-id staging",
        "--cluster-id: 'staging' is not a cluster this authbridge issues for (prod, dev)",
    )
    cli.fails(
        f"token --local --principal {user['Arn']} --cluster-id prod --duration 7200",
        "--duration: 7200 s is over the 3600 s",
    )
    cli.fails(
        f"token --local --principal arn:aws:iam::{ACCOUNT}:user/nobody --cluster-id prod",
        "nobody",
    )
    cli.fails(
        f"token --local --principal arn:aws:iam::{ACCOUNT}:role/Admin --cluster-id prod",
        "the role of that name is " + role["Arn"],
    )
    cli.ok("iam update-user --user-name alice --disable")
    cli.fails(f"token --local --principal {user['Arn']} --cluster-id prod", "is disabled")
    assert len(tokens_logged()) == 2
    r = cli.run(f"token --local --principal {user['Arn']} --cluster-id prod --endpoint https://x")
    assert r.rc == 2 and "--endpoint cannot be used with --local" in r.err, r


# -- the cached path stays light ---------------------------------------------------------------


def test_cached_path_imports_nothing_heavy(t: Env) -> None:
    t.profile(cluster_id="prod")
    t.token("")
    assert t.issuer.count() == 1
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(AUTHBRIDGE), "token"],
        cwd=t.cli.cwd,
        env=t.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["kind"] == "ExecCredential"
    assert t.issuer.count() == 1  # served from the cache
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "authbridge.client.fastpath" in imported  # the measurement saw our modules
    heavy = sorted(m for m in imported if m in HEAVY or m.split(".")[0] in HEAVY)
    # A module-level import of one of these in anything authbridge.cli.main imports
    # (every command module) lands on kubectl's hot path: import it inside the command.
    assert heavy == [], f"the cached `authbridge token` path imported {heavy}"
    # Answered by the stdlib-only fast path, before click and the command tree load
    # (pathlib and re: see tests/test_client_fastpath.py, run without site).
    slow = sorted(m for m in imported if m.split(".")[0] in SLOW_PATH or m in SLOW_PATH)
    assert slow == [], f"the cached `authbridge token` path imported {slow}"


# -- lazy subcommands --------------------------------------------------------------------------

_LOADED_COMMANDS = """\
import sys
from authbridge.cli.main import COMMANDS
modules = {spec.partition(":")[0] for spec in COMMANDS.values()}
print(sorted(m for m in modules if m in sys.modules))
"""


def test_importing_the_cli_loads_no_subcommand_module() -> None:
    assert python_prints(_LOADED_COMMANDS) == "[]"


def test_every_lazy_subcommand_loads_under_its_name_and_help_lists_them_all() -> None:
    from click.testing import CliRunner

    from authbridge.cli.main import COMMANDS, main

    for name in COMMANDS:
        command = main.commands[name]
        assert command.name == name, COMMANDS[name]
        assert command.get_short_help_str()
    assert sorted(main.commands) == sorted(COMMANDS)
    listed = CliRunner().invoke(main, ["--help"], env={}).output.split("Commands:\n", 1)[1]
    assert sorted(line.split()[0] for line in listed.splitlines() if line.strip()) == sorted(
        COMMANDS
    )
