"""Signing keys in the store through the real CLI and a real `authbridge serve`, on both stores.

Covers: `keys import` (files -> store, a second run is a no-op), `keys list`
saying where keys live, `keys rotate`, `keys revoke` (refusing the signing
key without --rotate), `keys export --public`; `keys revoke` refused with
files as the source; a `pg_dump` of the store holding no private key (DER,
PEM base64), no KEK and no pepper; `authbridge serve` refusing a missing,
unreadable or wrong KEK with one line naming the setting (exit 1, no
traceback, never falling back to the keys/ files); and a running server
(2 workers) publishing a key rotated by the CLI within keyRefreshSeconds,
then refusing a revoked key's tokens, with no restart — and no key
material in its log or /metrics.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authbridge.iam.credentials import Pepper
from authbridge.keys import KEK_BYTES, SigningKey, StoreKeys, load_kek
from authbridge.store import open_store
from tests.conftest import BACKENDS, _dsn_for, postgres_dsn
from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, _wait_ready, clean_env, free_port
from tests.test_cli import Cli
from tests.test_keys_store import private_forms

REFRESH_SECONDS = 1


def _kek_file(root: Path) -> Path:
    path = root / "keys" / "kek"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, base64.b64encode(os.urandom(KEK_BYTES)) + b"\n")
    os.close(fd)
    return path


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cli, Any]]:
    """The CLI on an empty store of each backend, files keys made, a KEK at keys/kek."""
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), str(request.param))
        cli.ok("keys init --algorithm ES256")
        cli.ok("keys rotate")
        kek = _kek_file(tmp_path)
        cli.env["AUTHBRIDGE_KEK_FILE"] = str(kek)
        yield cli, dsn
    finally:
        dsn.cleanup()


def _store_keys(cli: Cli) -> list[SigningKey]:
    store = open_store(cli.env["AUTHBRIDGE_STORE"], pepper=Pepper(b"p" * 32))
    try:
        kek = load_kek(Path(cli.env["AUTHBRIDGE_KEK_FILE"]), None)
        return list(StoreKeys(store, kek).load().keys)
    finally:
        store.close()


def test_import_list_rotate_revoke_export_through_the_cli(world: tuple[Cli, Any]) -> None:
    cli, _ = world
    files = {k["kid"] for k in cli.json("keys list", env=clean_env())["Keys"]}
    assert len(files) == 2
    first = cli.json("keys import")
    assert sorted(first["Imported"]) == sorted(files) and first["AlreadyInStore"] == []
    again = cli.ok("keys import").out
    assert again.count("already in the store") == 2 and "Imported" not in again
    listed = cli.json("keys list")
    assert listed["Source"].startswith("store: ")
    assert {k["kid"] for k in listed["Keys"]} == files
    assert cli.ok("keys list").out.splitlines()[-1].startswith("Keys live in store: ")

    now_env = {**cli.env, "AUTHBRIDGE_PREPUBLICATION_DELAY": "0"}
    rotated = cli.json("keys rotate", env=now_env)["Key"]
    assert rotated["state"] == "active" and rotated["kid"] not in files
    assert not (cli.cwd / "keys" / f"{rotated['kid']}.pem").exists()  # in the store only

    line = cli.fails(f"keys revoke --kid {rotated['kid']} --reason compromised", "--rotate")
    assert "signs now" in line
    revoked = cli.json(f"keys revoke --kid {rotated['kid']} --reason compromised --rotate")
    assert revoked["Key"]["state"] == "revoked" and revoked["Reason"] == "compromised"
    successor = revoked["NewKey"]
    assert successor["state"] == "active"

    jwks = json.loads(cli.ok("keys export --public").out)
    kids = {k["kid"] for k in jwks["keys"]}
    assert rotated["kid"] not in kids and successor["kid"] in kids
    assert all(
        set(k) <= {"kty", "kid", "use", "alg", "crv", "x", "y", "n", "e"} for k in jwks["keys"]
    )
    cli.usage_error("keys export", "--public")

    # files as the source: revoke says what to do instead
    files_env = {k: v for k, v in cli.env.items() if k != "AUTHBRIDGE_KEK_FILE"}
    cli.fails(
        f"keys revoke --kid {next(iter(files))} --reason compromised", "keys retire", env=files_env
    )

    secrets = [f for k in _store_keys(cli) for f in private_forms(k)]
    kek_text = Path(cli.env["AUTHBRIDGE_KEK_FILE"]).read_bytes().strip()
    for r in cli.history:
        output = (r.out + r.err).encode()
        assert b"PRIVATE KEY" not in output and kek_text not in output
        assert not [s for s in secrets if s in output]


@pytest.mark.postgres
def test_pg_dump_holds_no_private_key_kek_or_pepper(tmp_path: Path) -> None:
    pg_dump = shutil.which("pg_dump") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
    )
    if pg_dump is None:
        pytest.skip("pg_dump is not installed (it comes with the PostgreSQL server packages)")
    base = postgres_dsn()
    dsn = _dsn_for("postgres", tmp_path)
    try:
        cli = Cli(tmp_path, clean_env(AUTHBRIDGE_STORE=dsn.value), "postgres")
        cli.ok("keys init --algorithm ES256")
        cli.ok("keys rotate --algorithm RS256")
        cli.ok(f"iam create-account --account-id {ACCOUNT}")
        cli.ok("iam create-user --user-name alice")
        cli.json("iam create-access-key --user-name alice")  # makes the pepper
        cli.env["AUTHBRIDGE_KEK_FILE"] = str(_kek_file(tmp_path))
        cli.ok("keys import")
        cli.ok("keys rotate --algorithm ES256")  # a key that exists only in the store
        cli.ok("keys rotate --algorithm RS256")
        keys = _store_keys(cli)
        assert len(keys) == 4
        dump = subprocess.run(
            [pg_dump, "--schema", str(dsn._schema), "--data-only", "--inserts", base],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert b"signing_keys" in dump and all(k.kid.encode() in dump for k in keys)
        for key in keys:
            for form in private_forms(key):
                assert form not in dump, f"private key {key.kid} in the dump"
        kek_text = Path(cli.env["AUTHBRIDGE_KEK_FILE"]).read_bytes().strip()
        kek_raw = base64.b64decode(kek_text)
        pepper = (tmp_path / "keys" / "access-key-pepper").read_bytes()
        for secret in (
            kek_text,
            kek_raw,
            kek_raw.hex().encode(),
            pepper,
            base64.b64encode(pepper),
            pepper.hex().encode(),
        ):
            assert secret not in dump
    finally:
        dsn.cleanup()


# --------------------------------------------------------------------------- serve


def _serve(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTHBRIDGE, "serve", "--workers", "1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _refused(proc: subprocess.CompletedProcess[str], *says: str) -> None:
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith("authbridge: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for text in says:
        assert text in proc.stderr, proc.stderr


def test_serve_refuses_a_missing_unsafe_or_wrong_kek(tmp_path: Path) -> None:
    env = clean_env()
    subprocess.run(
        [AUTHBRIDGE, "init", "--algorithm", "ES256"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    kek = _kek_file(tmp_path)
    with_kek = clean_env(AUTHBRIDGE_KEK_FILE=str(kek))
    subprocess.run(
        [AUTHBRIDGE, "keys", "import"],
        cwd=tmp_path,
        env=with_kek,
        check=True,
        capture_output=True,
        timeout=60,
    )
    # keySource store and no KEK: never the keys/ files instead
    _refused(
        _serve(tmp_path, clean_env(AUTHBRIDGE_KEY_SOURCE="store")),
        "keySource is store",
        "kekFile (AUTHBRIDGE_KEK_FILE) or AUTHBRIDGE_KEK",
    )
    _refused(
        _serve(tmp_path, clean_env(AUTHBRIDGE_KEK_FILE=str(tmp_path / "nope"))),
        f"kekFile {tmp_path / 'nope'} does not exist",
    )
    kek.chmod(0o644)
    _refused(_serve(tmp_path, with_kek), f"kekFile {kek}", "chmod 600")
    kek.chmod(0o600)
    wrong = base64.b64encode(os.urandom(KEK_BYTES)).decode()
    proc = _serve(tmp_path, clean_env(AUTHBRIDGE_KEK=wrong))
    _refused(proc, "sealed with another key-encryption key", "AUTHBRIDGE_KEK")
    assert wrong not in proc.stderr
    _refused(_serve(tmp_path, clean_env(AUTHBRIDGE_KEK="c2hvcnQ=")), "AUTHBRIDGE_KEK is not")
    # Attack: two rows' sealed private keys swapped in the database.
    subprocess.run(
        [AUTHBRIDGE, "keys", "rotate"],
        cwd=tmp_path,
        env=with_kek,
        check=True,
        capture_output=True,
        timeout=60,
    )
    db = sqlite3.connect(tmp_path / "data" / "authbridge.db")
    with db:
        (a, sa), (b, sb) = db.execute("SELECT kid, sealed_private_key FROM signing_keys").fetchall()
        db.execute("UPDATE signing_keys SET sealed_private_key = ? WHERE kid = ?", (sb, a))
        db.execute("UPDATE signing_keys SET sealed_private_key = ? WHERE kid = ?", (sa, b))
    db.close()
    _refused(_serve(tmp_path, with_kek), "does not decrypt under the KEK", "altered or swapped")


def _start(
    root: Path, store_dsn: str, *, replicas: int = 1, **extra_env: str
) -> Iterator[list[LiveServer]]:
    """`authbridge serve` (2 workers each) with its keys in the store, refreshed every second.

    Several replicas share the store and the root (TLS files, config), each on its own port.
    """
    ports = [free_port() for _ in range(replicas)]
    env = clean_env(AUTHBRIDGE_STORE=store_dsn)

    def run(*args: str) -> str:
        return subprocess.run(
            [AUTHBRIDGE, *args],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    run(
        "init",
        "--no-admin",
        "--cluster-id",
        "prod",
        "--algorithm",
        "ES256",
        "--port",
        str(ports[0]),
    )
    env["AUTHBRIDGE_KEK_FILE"] = str(_kek_file(root))
    env["AUTHBRIDGE_KEY_REFRESH_SECONDS"] = str(REFRESH_SECONDS)
    run("keys", "import")
    run("iam", "create-account", "--account-id", ACCOUNT)
    run("iam", "create-user", "--user-name", "alice")
    key = json.loads(run("-o", "json", "iam", "create-access-key", "--user-name", "alice"))
    env.update(extra_env)
    issuer = f"https://127.0.0.1:{ports[0]}"
    servers = []
    try:
        for port in ports:
            log = root / f"serve-{port}.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    [
                        AUTHBRIDGE,
                        "serve",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--issuer",
                        issuer,
                        "--workers",
                        "2",
                    ],
                    cwd=root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            servers.append(
                LiveServer(
                    root=root,
                    url=f"https://127.0.0.1:{port}",
                    ca_file=root / "keys" / "tls" / "ca.crt",
                    access_key_id=key["AccessKey"]["AccessKeyId"],
                    secret=key["AccessKey"]["SecretAccessKey"],
                    role_arn="",
                    user_arn="",
                    proc=proc,
                    log=log,
                    extra={"env": env},
                )
            )
        for server in servers:
            _wait_ready(server)
        yield servers
    finally:
        for server in servers:
            server.proc.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        for servers in _start(tmp_path, dsn.value):
            yield servers[0]
    finally:
        dsn.cleanup()


def _basic(live: LiveServer) -> dict[str, str]:
    raw = f"{live.access_key_id}:{live.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _token(live: LiveServer) -> str:
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "audience": "prod"})
    status, _, body = live.request("/oauth2/token", data=form.encode(), headers=_basic(live))
    assert status == 200, body
    return str(json.loads(body)["access_token"])


def _active(live: LiveServer, token: str) -> bool:
    form = urllib.parse.urlencode({"token": token}).encode()
    status, _, body = live.request("/oauth2/introspect", data=form, headers=_basic(live))
    assert status == 200, body
    return bool(json.loads(body)["active"])


def _wait_until(what: str, check: Any, live: LiveServer, limit: float) -> float:
    """Seconds until ``check()`` held in 8 calls in a row (both workers), at most ``limit``."""
    started = time.monotonic()
    while not all(check() for _ in range(8)):
        assert time.monotonic() - started < limit, f"{what}: {live.log.read_text()[-2000:]}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_running_server_follows_rotation_and_revocation_in_the_store(live: LiveServer) -> None:
    env = live.extra["env"]

    def jwks() -> set[str]:
        return {k["kid"] for k in live.get_json("/openid/v1/jwks")["keys"]}

    old = jwks()
    rotated = json.loads(
        live.cli("-o json keys rotate", env={**env, "AUTHBRIDGE_PREPUBLICATION_DELAY": "0"})
    )["Key"]["kid"]
    took = _wait_until(
        "new key published", lambda: rotated in jwks(), live, limit=REFRESH_SECONDS + 10
    )
    print(f"rotation reached every worker after {took:.2f} s")  # the report quotes this
    token = _token(live)
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == rotated
    assert _active(live, token)

    revoked = json.loads(
        live.cli(f"-o json keys revoke --kid {rotated} --reason compromised --rotate", env=env)
    )
    successor = revoked["NewKey"]["kid"]
    took = _wait_until(
        "revoked key's token refused",
        lambda: not _active(live, token),
        live,
        limit=REFRESH_SECONDS + 10,
    )
    print(f"revocation reached every worker after {took:.2f} s")
    assert rotated not in jwks() and successor in jwks() and old <= jwks()
    assert jwt.get_unverified_header(_token(live))["kid"] == successor

    # no key material, KEK or pepper in the log or /metrics
    status, _, metrics_body = live.request("/metrics")
    assert status == 200
    seen = live.log.read_bytes() + metrics_body
    kek_text = Path(env["AUTHBRIDGE_KEK_FILE"]).read_bytes().strip()
    pepper = (live.root / "keys" / "access-key-pepper").read_bytes()
    for secret in (kek_text, base64.b64decode(kek_text), pepper, base64.b64encode(pepper)):
        assert secret not in seen
    assert b"PRIVATE KEY" not in seen
    assert b"Traceback" not in live.log.read_bytes()


ROTATION_PERIOD = 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_replicas_rotate_automatically_one_key_per_period(backend: str, tmp_path: Path) -> None:
    """Two replicas x two workers share a store: each period, exactly one of them rotates."""
    dsn = _dsn_for(backend, tmp_path)
    try:
        for servers in _start(
            tmp_path,
            dsn.value,
            replicas=2,
            AUTHBRIDGE_ROTATION_PERIOD=str(ROTATION_PERIOD),
            AUTHBRIDGE_PREPUBLICATION_DELAY="1",
        ):
            env = servers[0].extra["env"]
            cli = Cli(tmp_path, env, backend)
            deadline = time.monotonic() + 60
            while len(keys := cli.json("keys list")["Keys"]) < 3:
                assert time.monotonic() < deadline, (keys, servers[0].log.read_text()[-2000:])
                time.sleep(0.5)
            # every replica publishes the automatically made keys
            newest = keys[-1]["kid"]
            for server in servers:
                _wait_until(
                    "rotated key published",
                    lambda s=server, kid=newest: (
                        kid in {k["kid"] for k in s.get_json("/openid/v1/jwks")["keys"]}
                    ),
                    server,
                    limit=REFRESH_SECONDS + 10,
                )
            created = sorted(k.created_at for k in _store_keys(cli))
            gaps = [b - a for a, b in zip(created[1:], created[2:], strict=False)]
            # the imported key is first; after it, one key per period, never two at once
            assert gaps and all(g >= ROTATION_PERIOD for g in gaps), created
            states = [k["state"] for k in cli.json("keys list")["Keys"]]
            assert states.count("active") == 1 and states.count("pending") <= 1, states
    finally:
        dsn.cleanup()
