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

``.venv/bin/python -m bench.experiments cold-cache``
    The same webhook request in-process (Flask test client, real store, keys
    and mapping), CPU time per request with the caches hot (back to back) and
    cold (8 MiB of memory and an unrelated Python workload touched between
    requests, as the server's other threads, the load generator and the
    kernel's TLS/TCP work do between two requests of one worker thread).

Both are bounded (about a minute each) and clean up after themselves.
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

from bench import _setup, inprocess, loadgen
from bench._setup import API_AUDIENCES, CLUSTER
from bench.loadgen import Target, build_request, percentile

# (workers, threads, GIL switch interval in s); (2, 4, 0.005) is what `authbridge serve` runs.
THREAD_VARIANTS = ((2, 4, 0.005), (2, 2, 0.005), (2, 1, 0.005), (4, 1, 0.005))
SWITCH_VARIANTS = ((2, 4, 0.005), (2, 4, 0.001))


def _serve(root: Path, port: int, workers: int, threads: int, switch: float) -> None:
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
    sys.setswitchinterval(switch)
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


def threads(variants: tuple[tuple[int, int, float], ...], rounds: int = 2) -> None:
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
            for workers, nthreads, switch in variants:
                mine = tokens[n * per : (n + 1) * per]
                n += 1
                vport = _setup.free_port()
                log = root / f"serve-{workers}x{nthreads}.log"
                with log.open("wb") as sink:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bench.experiments", "_serve", str(root)]
                        + [str(vport), str(workers), str(nthreads), str(switch)],
                        cwd=Path(__file__).resolve().parent.parent,
                        env=_setup.clean_env(HOME=str(root)),
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                srv = _setup.Server(root, vport, proc, log, keys, role_arn)
                try:
                    _run_variant(srv, f"{workers} x {nthreads}, {switch * 1000:g} ms", mine)
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
        f"{label:29s} | {d.rate:5.0f}/s {p(d, 50):5.1f} {p(d, 99):5.1f} ms,"
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


def main(argv: list[str]) -> int:
    if argv[:1] == ["_serve"]:
        _serve(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]))
        return 0
    names = {
        "threads": lambda: threads(THREAD_VARIANTS),
        "gil-switch": lambda: threads(SWITCH_VARIANTS),
        "cold-cache": cold_cache,
    }
    if not argv or argv[0] not in names:
        print(f"usage: python -m bench.experiments {{{'|'.join(names)}}}", file=sys.stderr)
        return 2
    names[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
