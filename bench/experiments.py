"""Experiments behind the recommendations in bench/RESULTS.md (not part of ``bench/run``).

``.venv/bin/python -m bench.experiments threads``
    The webhook at different gunicorn worker/thread counts: the same app and
    settings as ``authbridge serve``, with only gunicorn's ``threads`` (and
    ``workers``) changed at run time in a subclass of
    :class:`authbridge.web.server.AuthbridgeServer` (nothing in authbridge is
    edited). Distinct-token max rate at 16 connections, p50/p99 at 500/s, and
    the repeated-token max rate, 5 s each.

``.venv/bin/python -m bench.experiments gil-switch``
    The default server against the same with the GIL switch interval at 1 ms
    instead of Python's 5 ms (``sys.setswitchinterval`` before the fork): how
    much of the tail latency is threads waiting for the GIL.

``.venv/bin/python -m bench.experiments coalesce``
    The default server against the same with gunicorn patched (in the bench's
    server process only) to send each answer's headers and body in one write
    instead of two.

``.venv/bin/python -m bench.experiments cold-cache``
    The same webhook request in-process (Flask test client, real store, keys
    and mapping), CPU time per request with the caches hot (back to back) and
    cold (8 MiB of memory and an unrelated Python workload touched between
    requests, as the server's other threads, the load generator and the
    kernel's TLS/TCP work do between two requests of one worker thread).

``.venv/bin/python -m bench.experiments hot-path``
    In-process prototypes of the recommended webhook fixes beside today's calls:
    signature check through PyJWT vs cryptography directly; the four store
    reads of a review vs one statement; the audit line's scrub.

``.venv/bin/python -m bench.experiments plugin-floor``
    Fresh-process wall times of the parts of a cached ``authbridge token``:
    the interpreter with and without site-packages, click, the client modules,
    the whole CLI.

``.venv/bin/python -m bench.experiments role-timing``
    ``sts.assume_role`` in-process (SQLite in a temp dir, an RS256 key, a real
    user token) for a role that does not exist and for one that exists but does
    not trust the caller: the same refusal, and it must cost the same. Median
    CPU time per path over interleaved batches, their ratio, and in how many
    batches the missing role was the faster. A few seconds.

``.venv/bin/python -m bench.experiments replicas [--seconds S] [--changes N]``
    Three `authbridge serve` replicas on one PostgreSQL against one on SQLite,
    reviews/s through the same load generator in the same run, and the
    propagation of a revocation and of a key rotation across the three (median
    and max over N changes, 50 by default): :mod:`bench.replicas`. Needs
    ``AUTHBRIDGE_BENCH_POSTGRES_DSN`` (or ``AUTHBRIDGE_TEST_POSTGRES_DSN``); a few
    minutes.

All are bounded (about a minute each, ``replicas`` a few) and clean up after themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _setup, inprocess, loadgen
from bench._setup import API_AUDIENCES, CLUSTER
from bench.loadgen import Target, build_request, percentile

# (workers, threads, GIL switch interval in s, coalesce, worker class). The first three
# experiments were made on gunicorn's gthread worker, before `authbridge serve` had its
# own (see RESULTS.md); they still run on gthread, where threads mean something.
THREAD_VARIANTS = tuple(
    (w, t, 0.005, False, "gthread") for w, t in ((2, 4), (2, 2), (2, 1), (4, 1))
)
SWITCH_VARIANTS = ((2, 4, 0.005, False, "gthread"), (2, 4, 0.001, False, "gthread"))
COALESCE_VARIANTS = ((2, 4, 0.005, False, "gthread"), (2, 4, 0.005, True, "gthread"))
EVENT_LOOP = "authbridge.web.worker.EventLoopWorker"  # what `authbridge serve` runs
WORKER_VARIANTS = ((2, 4, 0.005, False, "gthread"), (2, 4, 0.005, False, EVENT_LOOP))


def _coalesce_header_and_body() -> None:
    """Patch gunicorn (in this process only) to send the headers with the first body bytes.

    gunicorn's ``Response.write`` sends the status line and headers, then the
    body, in two ``sendall`` calls: two TLS records and, with TCP_NODELAY, two
    TCP segments and two wake-ups of the client per small answer.
    """
    from gunicorn import util
    from gunicorn.http import wsgi

    resp = wsgi.Response
    if not all(hasattr(resp, a) for a in ("_emit_body", "default_headers", "close")):
        raise SystemExit("gunicorn's Response changed: update the coalesce experiment")
    original_close = resp.close

    def flush(self: Any) -> None:
        pending = getattr(self, "_pending_head", None)
        if pending is not None:
            self._pending_head = None
            util.write(self.sock, pending)

    def send_headers(self: Any) -> None:  # gunicorn 27's, but kept until the body is written
        if self.headers_sent:
            return
        tosend = self.default_headers()
        tosend.extend(["%s: %s\r\n" % (k, v) for k, v in self.headers])  # noqa: UP031 - as gunicorn
        self._pending_head = util.to_bytestring("%s\r\n" % "".join(tosend), "latin-1")  # noqa: UP031
        self.headers_sent = True

    def emit_body(self: Any, data: bytes) -> None:
        pending = getattr(self, "_pending_head", None)
        if pending is not None and not self.chunked:
            self._pending_head = None
            util.write(self.sock, pending + data)
            return
        flush(self)
        util.write(self.sock, data, self.chunked)

    def close(self: Any) -> None:
        if not self.headers_sent:
            send_headers(self)
        flush(self)
        original_close(self)

    resp.send_headers = send_headers  # type: ignore[method-assign]
    resp._emit_body = emit_body  # type: ignore[method-assign]
    resp.close = close  # type: ignore[method-assign]


def _serve(
    root: Path,
    port: int,
    workers: int,
    threads: int,
    switch: float,
    coalesce: bool = False,
    worker_class: str | None = None,
) -> None:
    """Run in the child: `authbridge serve` (its own function) with ``threads`` per worker.

    ``switch`` is the GIL switch interval (seconds; Python's default is 0.005),
    inherited by the forked workers.
    """
    from authbridge.settings import load_settings
    from authbridge.web import server

    os.chdir(root)
    settings = load_settings(
        {"bind": f"127.0.0.1:{port}", "workers": workers},
        env={},
        config_file=root / "keys" / "authbridge.yaml",
        cwd=root,
    )
    if not hasattr(server, "THREADS_PER_WORKER"):
        raise SystemExit("authbridge.web.server.THREADS_PER_WORKER is gone: update the experiment")
    server.THREADS_PER_WORKER = threads  # read by AuthbridgeServer.load_config
    if worker_class is not None:
        server.WORKER_CLASS = worker_class
    sys.setswitchinterval(switch)
    if coalesce:
        _coalesce_header_and_body()
    server.serve(settings)


def _body(target: Target, token: str) -> bytes:
    doc = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": API_AUDIENCES},
    }
    return build_request(
        target,
        "POST",
        "/authenticate",
        json.dumps(doc).encode(),
        {"Content-Type": "application/json"},
    )


def _allowed(status: int, body: bytes) -> bool:
    return status == 200 and b'"authenticated": true' in body


def threads(variants: tuple[tuple[Any, ...], ...], rounds: int = 2) -> None:
    root = Path(tempfile.mkdtemp(prefix="authbridge-bench-x-"))
    try:
        keys, role_arn, port = _setup.setup(root, users=4)
        issuer = f"https://127.0.0.1:{port}"  # what init configured; variants bind elsewhere
        per = 25_000
        tokens = inprocess.mint_tokens(root / "keys", issuer, keys, per * len(variants) * rounds)
        print(
            "workers x threads, GIL switch | distinct c=16: rate p50 p99, server µs/req,"
            " other cores | 500/s open loop (32 conns): p50 p99 | repeated c=16"
        )
        n = 0
        for _ in range(rounds):  # interleaved rounds: the machine may be shared
            for workers, nthreads, switch, *more in variants:
                coalesce = bool(more and more[0])
                worker_class = more[1] if len(more) > 1 else None
                mine = tokens[n * per : (n + 1) * per]
                n += 1
                vport = _setup.free_port()
                log = root / f"serve-{workers}x{nthreads}.log"
                with log.open("wb") as sink:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bench.experiments", "_serve", str(root)]
                        + [str(vport), str(workers), str(nthreads), str(switch)]
                        + (["coalesce" if coalesce else "-"])
                        + ([worker_class] if worker_class else []),
                        cwd=Path(__file__).resolve().parent.parent,
                        env=_setup.clean_env(HOME=str(root)),
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                srv = _setup.Server(root, vport, proc, log, keys, role_arn)
                try:
                    label = f"{workers} x {nthreads}, {switch * 1000:g} ms"
                    if worker_class:
                        label = f"{worker_class.rsplit('.', 1)[-1][:16]} {workers}x{nthreads}"
                        label += f", {switch * 1000:g} ms" if switch != 0.005 else ""
                    _run_variant(srv, label + (", coalesced" if coalesce else ""), mine)
                finally:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _busy() -> float:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")


def _run_variant(srv: _setup.Server, label: str, tokens: list[str]) -> None:
    tls = srv.keys_dir / "tls"
    target = Target(
        "127.0.0.1",
        srv.port,
        str(tls / "ca.crt"),
        (str(tls / f"apiserver-{_setup.CALLER}.crt"), str(tls / f"apiserver-{_setup.CALLER}.key")),
    )
    healthz = build_request(target, "GET", "/healthz")
    deadline = time.monotonic() + 30
    while True:
        try:
            loadgen.closed_loop(
                target,
                [healthz],
                concurrency=1,
                processes=1,
                duration=0.2,
                max_requests=1,
                check=lambda s, b: s == 200,
                warmup=healthz,
            )
            break
        except (RuntimeError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    warm, distinct, latency = tokens[:500], tokens[500:22_000], tokens[22_000:]
    loadgen.closed_loop(
        target,
        [_body(target, t) for t in warm],
        concurrency=8,
        processes=1,
        duration=5,
        max_requests=len(warm),
        check=_allowed,
        warmup=healthz,
    )
    cpu0, busy0 = srv.cpu_seconds(), _busy()
    d = loadgen.closed_loop(
        target,
        [_body(target, t) for t in distinct],
        concurrency=16,
        processes=2,
        duration=5,
        max_requests=len(distinct),
        check=_allowed,
        warmup=healthz,
    )
    server_cpu, busy = srv.cpu_seconds() - cpu0, _busy() - busy0
    other = max(0.0, busy - server_cpu - d.gen_cpu) / d.wall
    o = loadgen.open_loop(
        target,
        [_body(target, t) for t in latency],
        rate=500,
        connections=32,
        duration=5,
        check=_allowed,
        warmup=healthz,
    )
    r = loadgen.closed_loop(
        target,
        [_body(target, warm[0])],
        concurrency=16,
        processes=2,
        duration=5,
        max_requests=10_000_000,
        check=_allowed,
        warmup=healthz,
    )
    bad = (d.count - d.ok) + (o.count - o.ok) + (r.count - r.ok)

    def p(res: loadgen.Result, q: float) -> float:
        return percentile(res.latencies, q) * 1000

    print(
        f"{label:39s} | {d.rate:5.0f}/s {p(d, 50):5.1f} {p(d, 99):5.1f} ms,"
        f" {server_cpu / max(d.count, 1) * 1e6:5.0f} µs, {other:4.2f}"
        f" | {o.rate:4.0f}/s {p(o, 50):6.2f} {p(o, 99):7.2f} ms | {r.rate:5.0f}/s"
        + (f"  ({bad} failed answers)" if bad else ""),
        flush=True,
    )


def cold_cache() -> None:
    import logging

    root = Path(tempfile.mkdtemp(prefix="authbridge-bench-x-"))
    try:
        keys, _, port = _setup.setup(root, users=4)
        issuer = f"https://127.0.0.1:{port}"
        tokens = inprocess.mint_tokens(root / "keys", issuer, keys, 6000)

        from authbridge.iam.credentials import load_or_create_pepper
        from authbridge.keys import KeyDirectory, KeyRing
        from authbridge.settings import load_settings
        from authbridge.store import open_store
        from authbridge.web.app import create_app
        from authbridge.web.peer import TEST_ENVIRON_KEY

        settings = load_settings(
            {"audit_log": str(root / "audit.log")},  # ignored by versions without the setting
            env={},
            config_file=root / "keys" / "authbridge.yaml",
            cwd=root,
        )
        store = open_store(
            settings.store,
            pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False),
            partition=settings.partition,
            migrate=False,
        )
        # Audit lines go to root/audit.log (the setting) or nowhere; never to our stdout.
        logging.getLogger("authbridge.audit").propagate = False
        logging.getLogger("authbridge.audit").addHandler(logging.NullHandler())
        app = create_app(settings, store=store, keys=KeyRing(KeyDirectory(root / "keys")))
        client = app.test_client()
        peer = {"subject": ((("commonName", _setup.CALLER),), (("organizationName", CLUSTER),))}
        big = bytearray(8 * 1024 * 1024)
        junk = {str(i): [i, str(i) * 3, {"a": i}] for i in range(20_000)}
        print("in-process webhook request (Flask test client), CPU time per request:")
        for round_, mode in enumerate(("hot", "cold", "hot", "cold")):
            spent = 0.0
            batch = tokens[round_ * 1500 : (round_ + 1) * 1500]
            for tok in batch:
                if mode == "cold":
                    big[::64] = bytes(len(big) // 64)  # touch 8 MiB: evicts L1/L2 and much of L3
                    json.dumps(junk)  # unrelated Python: evicts the interpreter's hot paths
                doc = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": tok, "audiences": API_AUDIENCES},
                }
                c0 = time.thread_time()
                resp = client.post("/authenticate", json=doc, environ_base={TEST_ENVIRON_KEY: peer})
                spent += time.thread_time() - c0
                if b'"authenticated": true' not in resp.data:
                    raise RuntimeError(f"refused: {resp.data[:200]!r}")
            print(f"  {mode:4s}: {spent / len(batch) * 1e6:6.0f} µs", flush=True)
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def hot_path() -> None:
    """What the recommended fixes would save, each measured in-process on the real data.

    Prototypes, not authbridge code: each line times today's call beside a
    leaner equivalent on the same token, store and record.
    """
    import base64
    import sqlite3

    import jwt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from authbridge import audit
    from authbridge.iam.credentials import load_or_create_pepper
    from authbridge.keys import KeyDirectory
    from authbridge.settings import load_settings
    from authbridge.store import open_store

    root = Path(tempfile.mkdtemp(prefix="authbridge-bench-x-"))
    try:
        keys, _, port = _setup.setup(root, users=4)
        issuer = f"https://127.0.0.1:{port}"
        tokens = inprocess.mint_tokens(root / "keys", issuer, keys, 2000, processes=1)
        keyset = KeyDirectory(root / "keys").load()
        key = keyset.signing_key(time.time())

        def rate(fn: Any, items: list[Any], seconds: float = 1.5) -> float:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for item in items[:500]:
                    fn(item)
                n += min(500, len(items))
            return n / (time.perf_counter() - t0)

        def b64(seg: str) -> bytes:
            return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))

        def pyjwt(tok: str) -> object:
            return jwt.decode(  # as tokens.verify calls it: the signature, no claim checks
                tok,
                key.public_key,
                algorithms=[key.alg],
                options={"verify_signature": True, "verify_aud": False, "verify_exp": False},
            )

        def direct(tok: str) -> object:
            # What tokens.verify has once _parse_compact split and decoded the segments.
            h, p, s = tok.split(".")
            key.public_key.verify(  # type: ignore[call-arg]
                b64(s), f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            return json.loads(b64(p))

        print("signature + payload of one token (today: jwt.decode inside tokens.verify):")
        print(f"  PyJWT jwt.decode, signature only     {rate(pyjwt, tokens):8.0f}/s")
        print(f"  cryptography verify + json.loads    {rate(direct, tokens):8.0f}/s")

        settings = load_settings(env={}, config_file=root / "keys" / "authbridge.yaml", cwd=root)
        store = open_store(
            settings.store,
            pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False),
            partition=settings.partition,
            migrate=False,
        )
        k = keys[0]

        def four(_: object) -> object:  # what review_token asks the store today
            store.is_token_revoked("some-jti")
            store.check_principal(k.user_id, k.access_key_id)
            user = store.get_user_by_id(k.user_id)
            return store.list_groups_for_user(user.account_id, user.name)

        db = sqlite3.connect(str(root / "data" / "authbridge.db"), isolation_level=None)
        one_sql = (
            "SELECT (SELECT 1 FROM revoked_tokens WHERE jti = ?), u.enabled, u.account_id,"
            " u.name, (SELECT status FROM iam_access_keys WHERE access_key_id = ?"
            " AND user_id = u.user_id), (SELECT group_concat(g.path || g.name, ',')"
            " FROM iam_group_members m JOIN iam_groups g ON g.group_id = m.group_id"
            " WHERE m.user_id = u.user_id) FROM iam_users u WHERE u.user_id = ?"
        )

        def one(_: object) -> object:
            return db.execute(one_sql, ("some-jti", k.access_key_id, k.user_id)).fetchall()

        print("store reads per review (revocation, principal, user, groups):")
        print(f"  today: 4 calls, 4 transactions       {rate(four, [None] * 500):8.0f}/s")
        print(f"  one statement, no transaction        {rate(one, [None] * 500):8.0f}/s")
        store.close()
        db.close()

        try:  # a realistic line; the audit API is young, so a change skips this part
            arn = k.user_arn
            line: Any = audit.record(
                "tokenreview",
                request_id="2f1e6c1e-5b1a-4d55-8a55-0d6c7f6f6a11",
                client="127.0.0.1",
                outcome="allowed",
                reason="ok",
                caller=_setup.CALLER,
                clusters=[CLUSTER],
                audience=[CLUSTER],
                arn=arn,
                canonical_arn=arn,
                principal_id=k.user_id,
                access_key_id=k.access_key_id,
                username=arn,
                groups=["authbridge:devs"],
                cache_hit=False,
            )
        except (AttributeError, TypeError) as e:
            print(f"audit line: skipped ({e})")
        else:

            def dumps(r: Any) -> str:
                return json.dumps(r, separators=(",", ":"))

            print("audit line (one per request):")
            print(f"  audit.scrub                         {rate(audit.scrub, [line] * 500):8.0f}/s")
            print(f"  json.dumps of the line              {rate(dumps, [line] * 500):8.0f}/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def plugin_floor(runs: int = 15) -> None:
    """Wall time of fresh processes: what the cached `authbridge token` path costs, by part."""
    import statistics

    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "python -S -c pass (no site-packages .pth)": [py, "-S", "-c", "pass"],
        "python -c 'import os, json, hashlib, time' (a stdlib-only fast path)": [
            py,
            "-c",
            "import os, json, hashlib, time",
        ],
        "python -c 'import click'": [py, "-c", "import click"],
        "python -c 'import authbridge.client.config, .cache, .exec_credential'": [
            py,
            "-c",
            "import authbridge.client.config, authbridge.client.cache,"
            " authbridge.client.exec_credential",
        ],
        "python -c 'import authbridge.cli.main' (every subcommand)": [
            py,
            "-c",
            "import authbridge.cli.main",
        ],
    }
    with tempfile.TemporaryDirectory(prefix="authbridge-bench-x-") as tmp:
        # A bytecode cache, as an installed authbridge has (see bench/plugin.py).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = tmp
        for name, argv in cases.items():
            subprocess.run(argv, check=True, capture_output=True, timeout=60, env=env)
            walls = []
            for _ in range(runs):
                t0 = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True, timeout=60, env=env)
                walls.append(time.perf_counter() - t0)
            print(f"  {statistics.median(walls) * 1000:6.1f} ms  {name}", flush=True)


def role_timing(batches: int = 40, per_batch: int = 50) -> None:
    """Role existence timing: a missing role vs one that does not trust the caller."""
    import statistics

    from authbridge.iam.credentials import Pepper
    from authbridge.keys import KeySet, generate_signing_key
    from authbridge.store import open_store
    from authbridge.sts import IssuerPolicy, RoleNotTrusted, assume_role, get_session_token

    now = time.time()
    policy = IssuerPolicy(
        issuer="https://authbridge.bench",
        cluster_ids=frozenset({CLUSTER}),
        default_lifetime=900,
        max_user_lifetime=3600,
        partition="aws",
    )
    keys = KeySet((generate_signing_key("RS256", now=int(now) - 3600),), max_token_lifetime=43200)
    with tempfile.TemporaryDirectory(prefix="authbridge-bench-x-") as tmp:
        store = open_store(f"sqlite:///{tmp}/authbridge.db", pepper=Pepper.generate())
        try:
            store.create_account(_setup.ACCOUNT)
            store.create_user(_setup.ACCOUNT, "alice")
            bob = store.create_user(_setup.ACCOUNT, "bob")
            for n in range(3):  # alice is in some groups; none is trusted
                store.create_group(_setup.ACCOUNT, f"team{n}")
                store.add_user_to_group(_setup.ACCOUNT, f"team{n}", "alice")
            store.create_role(_setup.ACCOUNT, "Deploy", trust=[bob.arn], path="/ci/")
            key = store.create_access_key(_setup.ACCOUNT, "alice")
            subject = get_session_token(
                store,
                keys,
                policy,
                access_key_id=key.key.access_key_id,
                secret=key.secret_access_key,
                audience=CLUSTER,
                duration=None,
                now=now,
            ).token
            roles = {
                "missing role": f"arn:aws:iam::{_setup.ACCOUNT}:role/ci/Ghost",
                "untrusting role": f"arn:aws:iam::{_setup.ACCOUNT}:role/ci/Deploy",
            }

            def batch(role_arn: str) -> float:
                # CPU time of this thread: what the two paths cost, without the time
                # other processes on a shared machine take the core away.
                t0 = time.thread_time()
                for _ in range(per_batch):
                    try:
                        assume_role(
                            store,
                            keys,
                            policy,
                            subject_token=subject,
                            role_arn=role_arn,
                            session_name="s1",
                            audience=CLUSTER,
                            duration=None,
                            now=now,
                        )
                    except RoleNotTrusted:
                        pass
                    else:
                        raise AssertionError(f"{role_arn} was assumed")
                return (time.thread_time() - t0) / per_batch

            for arn in roles.values():
                batch(arn)  # warm up
            seen: dict[str, list[float]] = {name: [] for name in roles}
            for i in range(batches):  # interleaved, the order alternating
                for name in sorted(roles, reverse=bool(i % 2)):
                    seen[name].append(batch(roles[name]))
        finally:
            store.close()
    medians = {name: statistics.median(v) for name, v in seen.items()}
    faster = sum(m < u for m, u in zip(seen["missing role"], seen["untrusting role"], strict=True))
    for name, median in medians.items():
        print(f"  {name:16} median {median * 1e6:8.1f} µs CPU per assume_role ({batches} batches)")
    diff = (medians["untrusting role"] - medians["missing role"]) * 1e6
    ratio = medians["untrusting role"] / medians["missing role"]
    print(f"  untrusting - missing: {diff:+.1f} µs, ratio {ratio:.3f};", end=" ")
    print(f"the missing role was faster in {faster}/{batches} batches")


def main(argv: list[str]) -> int:
    if argv[:1] == ["_serve"]:
        _serve(
            Path(argv[1]),
            int(argv[2]),
            int(argv[3]),
            int(argv[4]),
            float(argv[5]),
            coalesce=argv[6:7] == ["coalesce"],
            worker_class=argv[7] if len(argv) > 7 else None,
        )
        return 0
    names = {
        "threads": lambda: threads(THREAD_VARIANTS),
        "gil-switch": lambda: threads(SWITCH_VARIANTS),
        "coalesce": lambda: threads(COALESCE_VARIANTS, rounds=3),
        "worker": lambda: threads(WORKER_VARIANTS, rounds=2),
        "cold-cache": cold_cache,
        "hot-path": hot_path,
        "plugin-floor": plugin_floor,
        "role-timing": role_timing,
    }
    if argv[:1] == ["replicas"]:
        from bench import replicas

        replicas.main(argv[1:])
        return 0
    if not argv or argv[0] not in names:
        usage = "|".join([*names, "replicas"])
        print(f"usage: python -m bench.experiments {{{usage}}}", file=sys.stderr)
        return 2
    names[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
