"""Three replicas on PostgreSQL against one on SQLite; propagation of key changes across three.

``.venv/bin/python -m bench.experiments replicas [--seconds S] [--changes N] [--tokens T]``

Needs a PostgreSQL DSN in ``AUTHBRIDGE_BENCH_POSTGRES_DSN`` (or
``AUTHBRIDGE_TEST_POSTGRES_DSN``); the bench makes its own schema and drops it
at the end. Two worlds are set up through the real CLI, as an operator would:

* **SQLite**: `authbridge init` (ES256), IAM, a mapping, one `authbridge serve`
  (2 workers, the production defaults: keys in ``keys/``).
* **PostgreSQL**: the same, plus a KEK (0600) and `authbridge keys import`, and
  three `authbridge serve` processes (2 workers each) on one schema, each on
  its own port, one issuer, ``keyRefreshSeconds: 1``.

Then, in one run:

1. **Reviews/s**: ``--tokens`` (6000) distinct valid tokens per world, minted
   in-process with the key ``init`` made (every one a verdict-cache miss), through
   the same load generator (:mod:`bench.loadgen`, closed loop, 18 connections
   in all, 3 generator processes): 18 connections to the SQLite replica, or 6
   to each PostgreSQL replica. Each answer must say ``authenticated: true``.
2. **Propagation** over ``--changes`` (50) changes each, in the store (in this
   process, :class:`authbridge.keys.StoreKeys`, the code `authbridge keys` runs):
   a revocation (`revoke --reason compromised --rotate` of the key that signs a
   token; done when all three replicas' ``/verify`` refuse it, 4 calls in a row
   each, so both workers) and a rotation (a new pending key; done when it is in
   all three JWKS, 4 calls each). The time counts from the change's commit to
   the end of the first polling round that saw it everywhere (a round is about
   12 HTTPS calls; its length is printed as the resolution).

   An access-entry change (``Store.create_access_entry`` for the token's user,
   with a new username; done when all three ``/verify`` show that username, 4
   calls each), then its deletion (back to the mapping file's username) before
   the next one. ``/verify`` caches nothing, so this is the store-to-worker
   bound; the webhook's verdict cache follows the same access version. The figures
depend on the machine (2 shared cores here: six workers on PostgreSQL share
them with PostgreSQL and the generator); they are measured, never asserted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import ssl
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _setup, inprocess, loadgen
from bench._setup import AUTHBRIDGE, CALLER, CLUSTER, AccessKey, Server
from bench.loadgen import Target

CONCURRENCY = 18
GEN_PROCESSES = 3
REPLICAS = 3
REFRESH_SECONDS = 1


def _dsn() -> str:
    dsn = os.environ.get("AUTHBRIDGE_BENCH_POSTGRES_DSN") or os.environ.get(
        "AUTHBRIDGE_TEST_POSTGRES_DSN"
    )
    if not dsn:
        raise SystemExit(
            "replicas: set AUTHBRIDGE_BENCH_POSTGRES_DSN (or AUTHBRIDGE_TEST_POSTGRES_DSN),"
            " e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    return dsn


def _cli(root: Path, env: dict[str, str], *args: str) -> str:
    return _setup.cli(root, *args, env=env)


def _world(root: Path, env: dict[str, str], port: int, users: int = 4) -> list[AccessKey]:
    """init (ES256) + IAM + mapping in ``root`` with ``env``; the access keys."""
    _cli(
        root,
        env,
        "init",
        "--no-admin",  # the account is made below, by hand
        "--cluster-id",
        CLUSTER,
        "--algorithm",
        "ES256",
        "--port",
        str(port),
        "--apiserver-client",
        f"{CALLER}={CLUSTER}",
    )
    (root / "rbac").mkdir(exist_ok=True)
    (root / "rbac" / "mapping.yaml").write_text(_setup.MAPPING)
    if "AUTHBRIDGE_STORE" in env:
        kek = root / "keys" / "kek"
        fd = os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
        os.close(fd)
        env["AUTHBRIDGE_KEK_FILE"] = str(kek)
        _cli(root, env, "keys", "import")
    _cli(root, env, "iam", "create-account", "--account-id", _setup.ACCOUNT)
    _cli(root, env, "iam", "create-group", "--group-name", _setup.GROUP)
    keys: list[AccessKey] = []
    for i in range(users):
        name = f"user{i:02d}"
        user = json.loads(_cli(root, env, "-o", "json", "iam", "create-user", "--user-name", name))
        _cli(
            root, env, "iam", "add-user-to-group", "--group-name", _setup.GROUP, "--user-name", name
        )
        key = json.loads(
            _cli(root, env, "-o", "json", "iam", "create-access-key", "--user-name", name)
        )["AccessKey"]
        keys.append(
            AccessKey(
                user_name=name,
                user_id=user["User"]["UserId"],
                user_arn=user["User"]["Arn"],
                access_key_id=key["AccessKeyId"],
                secret=key["SecretAccessKey"],
            )
        )
    return keys


def _serve(
    root: Path, env: dict[str, str], port: int, issuer: str, keys: list[AccessKey]
) -> Server:
    log = root / f"serve-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [AUTHBRIDGE, "serve", "--bind", f"127.0.0.1:{port}", "--issuer", issuer]
            + ["--workers", "2"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(root=root, port=port, proc=proc, log=log, keys=keys, role_arn="")


def _target(server: Server) -> Target:
    cert, key = server.client_cert
    return Target("127.0.0.1", server.port, str(server.ca_file), (str(cert), str(key)))


def _requests(target: Target, tokens: list[str]) -> list[bytes]:
    out = []
    for tok in tokens:
        doc = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": tok, "audiences": _setup.API_AUDIENCES},
        }
        out.append(
            loadgen.build_request(
                target,
                "POST",
                "/authenticate",
                json.dumps(doc).encode(),
                {"Content-Type": "application/json"},
            )
        )
    return out


def _allowed(status: int, body: bytes) -> bool:
    return status == 200 and b'"authenticated": true' in body


def _load(servers: list[Server], tokens: list[str], seconds: float) -> loadgen.Result:
    """Closed loop over ``servers``: CONCURRENCY connections in all, split evenly."""
    per = len(tokens) // len(servers)
    results: list[loadgen.Result | BaseException] = []

    def one(i: int, server: Server) -> None:
        target = _target(server)
        reqs = _requests(target, tokens[i * per : (i + 1) * per])
        try:
            results.append(
                loadgen.closed_loop(
                    target,
                    reqs,
                    concurrency=CONCURRENCY // len(servers),
                    processes=GEN_PROCESSES // len(servers),
                    duration=seconds,
                    max_requests=len(reqs),
                    check=_allowed,
                    warmup=loadgen.build_request(target, "GET", "/healthz"),
                )
            )
        except BaseException as e:  # reported below, in the caller
            results.append(e)

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = loadgen.Result()
    for r in results:
        if isinstance(r, BaseException):
            raise r
        merged.merge(r)
    return merged


def _https(server: Server, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    req = urllib.request.Request(  # noqa: S310 - this bench's https loopback URL
        server.url + path, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _token(server: Server, key: AccessKey) -> str:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    basic = base64.b64encode(f"{key.access_key_id}:{key.secret}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "audience": CLUSTER})
    req = urllib.request.Request(  # noqa: S310 - this bench's https loopback URL
        server.url + "/oauth2/token",
        data=form.encode(),
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:  # noqa: S310
        return str(json.loads(r.read())["access_token"])


def _verified(server: Server, tok: str) -> bool:
    status, body = _https(server, "/verify", json.dumps({"token": tok}).encode())
    return status == 200 and bool(json.loads(body)["authenticated"])


def _kids(server: Server) -> set[str]:
    status, body = _https(server, "/openid/v1/jwks")
    return {k["kid"] for k in json.loads(body)["keys"]} if status == 200 else set()


def _until_everywhere(
    servers: list[Server], check: Callable[[Server], bool], limit: float = 60
) -> tuple[float, float]:
    """(seconds from now until a round saw ``check`` at every server 4 times, round length)."""
    t0 = time.monotonic()
    while True:
        r0 = time.monotonic()
        if all(check(s) for s in servers for _ in range(4)):
            end = time.monotonic()
            return end - t0, end - r0
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"not everywhere after {limit} s")


def _summary(name: str, values: list[float], rounds: list[float]) -> dict[str, Any]:
    out = {
        "changes": len(values),
        "median_s": statistics.median(values),
        "max_s": max(values),
        "min_s": min(values),
        "round_s": statistics.median(rounds),
    }
    print(
        f"  {name:11} over {len(values)} changes: median {out['median_s']:.2f} s,"
        f" max {out['max_s']:.2f} s, min {out['min_s']:.2f} s"
        f" (resolution: a polling round, median {out['round_s'] * 1000:.0f} ms)"
    )
    return out


def _username(server: Server, tok: str) -> str | None:
    status, body = _https(server, "/verify", json.dumps({"token": tok}).encode())
    answer = json.loads(body) if status == 200 else {}
    return answer["kubernetes"]["username"] if answer.get("authenticated") else None


def entry_propagation(servers: list[Server], store: Any, changes: int) -> dict[str, Any]:
    key = servers[0].keys[1]
    tok = _token(servers[0], key)
    mapped = _username(servers[0], tok)
    took_all: list[float] = []
    rounds: list[float] = []
    for i in range(changes):
        name = f"entry-{i}"
        store.create_access_entry(CLUSTER, key.user_arn, username=name)
        took, round_s = _until_everywhere(servers, lambda s, n=name: _username(s, tok) == n)
        took_all.append(took)
        rounds.append(round_s)
        store.delete_access_entry(CLUSTER, key.user_arn)
        _until_everywhere(servers, lambda s: _username(s, tok) == mapped)
    return _summary("entry", took_all, rounds)


def propagation(servers: list[Server], store: Any, store_keys: Any, changes: int) -> dict[str, Any]:
    import jwt

    key = servers[0].keys[0]
    revocations: list[float] = []
    rounds: list[float] = []
    for _ in range(changes):
        tok = _token(servers[0], key)
        kid = str(jwt.get_unverified_header(tok)["kid"])

        def accepted(s: Server, t: str = tok) -> bool:
            return _verified(s, t)

        def gone(s: Server, k: str = kid) -> bool:
            return k not in _kids(s)

        _until_everywhere(servers, accepted)  # accepted everywhere first
        store_keys.revoke(kid, "compromised", rotate=True)
        took, round_s = _until_everywhere(servers, lambda s: not accepted(s))
        revocations.append(took)
        rounds.append(round_s)
        # out of every JWKS (so every replica signs with the successor) before the next one
        _until_everywhere(servers, gone)
    rotations: list[float] = []
    rrounds: list[float] = []
    for _ in range(changes):
        new = str(store_keys.rotate().kid)

        def published(s: Server, k: str = new) -> bool:
            return k in _kids(s)

        took, round_s = _until_everywhere(servers, published)
        rotations.append(took)
        rrounds.append(round_s)
    print(f"propagation across {len(servers)} replicas (keyRefreshSeconds {REFRESH_SECONDS}):")
    return {
        "revocation": _summary("revocation", revocations, rounds),
        "rotation": _summary("rotation", rotations, rrounds),
        "access_entry": entry_propagation(servers, store, changes),
    }


def run(seconds: float = 5.0, changes: int = 50, tokens_per_world: int = 6000) -> dict[str, Any]:
    import tempfile

    import psycopg

    from authbridge.iam.credentials import Pepper
    from authbridge.keys import StoreKeys, load_kek
    from authbridge.store import open_store

    base = _dsn()
    schema = f"bench_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    dsn = f"{base}{sep}options=-csearch_path%3D{schema}"
    servers: list[Server] = []
    figures: dict[str, Any] = {"seconds": seconds, "concurrency": CONCURRENCY}
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        with tempfile.TemporaryDirectory(prefix="authbridge-replicas-") as tmp:
            lite_root, pg_root = Path(tmp) / "sqlite", Path(tmp) / "postgres"
            lite_root.mkdir()
            pg_root.mkdir()
            lite_env = _setup.clean_env(HOME=str(lite_root))
            pg_env = _setup.clean_env(HOME=str(pg_root), AUTHBRIDGE_STORE=dsn)
            lite_port = _setup.free_port()
            pg_ports = [_setup.free_port() for _ in range(REPLICAS)]
            lite_keys = _world(lite_root, lite_env, lite_port)
            pg_keys = _world(pg_root, pg_env, pg_ports[0])
            pg_env["AUTHBRIDGE_KEY_REFRESH_SECONDS"] = str(REFRESH_SECONDS)
            lite_issuer = f"https://127.0.0.1:{lite_port}"
            pg_issuer = f"https://127.0.0.1:{pg_ports[0]}"
            servers.append(_serve(lite_root, lite_env, lite_port, lite_issuer, lite_keys))
            for port in pg_ports:
                servers.append(_serve(pg_root, pg_env, port, pg_issuer, pg_keys))
            for s in servers:
                _setup._wait_ready(s)
            lite, pg = servers[:1], servers[1:]
            print(f"minting {tokens_per_world} tokens per world …")
            lite_tokens = inprocess.mint_tokens(
                lite_root / "keys", lite_issuer, lite_keys, tokens_per_world
            )
            # the PostgreSQL world's key is the one `keys import` copied from keys/
            pg_tokens = inprocess.mint_tokens(
                pg_root / "keys", pg_issuer, pg_keys, tokens_per_world
            )
            print(f"reviews/s, distinct tokens, {CONCURRENCY} connections, {seconds:g} s each:")
            for name, group, toks in (
                ("sqlite x1", lite, lite_tokens),
                ("postgres x3", pg, pg_tokens),
            ):
                r = _load(group, toks, seconds)
                p50 = loadgen.percentile(r.latencies, 0.50) * 1000
                p99 = loadgen.percentile(r.latencies, 0.99) * 1000
                print(
                    f"  {name:12} {r.rate:8.0f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                    f"  ({r.count} answers, {r.ok} authenticated, {r.errors} errors)"
                )
                figures[name] = {
                    "rate": r.rate,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "count": r.count,
                    "ok": r.ok,
                    "errors": r.errors,
                }
            store = open_store(dsn, pepper=Pepper(b"p" * 32), migrate=False)
            try:
                kek = load_kek(Path(pg_env["AUTHBRIDGE_KEK_FILE"]), None)
                figures["propagation"] = propagation(pg, store, StoreKeys(store, kek), changes)
            except BaseException:
                for s in pg:  # the temp dir goes: show why here
                    print(f"--- {s.log.name}:\n{s.log.read_text()[-3000:]}")
                raise
            finally:
                store.close()
            for s in servers:
                s.stop()
            servers.clear()
    finally:
        for s in servers:
            if s.proc.poll() is None:
                os.killpg(s.proc.pid, signal.SIGTERM)
                s.proc.wait(20)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "replicas.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv: list[str]) -> None:
    seconds, changes, tokens = 5.0, 50, 6000
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--seconds":
            seconds = float(args.pop(0))
        elif flag == "--changes":
            changes = int(args.pop(0))
        elif flag == "--tokens":
            tokens = int(args.pop(0))
        else:
            raise SystemExit(
                f"replicas: unknown option {flag} (--seconds S, --changes N, --tokens T)"
            )
    run(seconds=seconds, changes=changes, tokens_per_world=tokens)
