"""The admin API's calls per second through a real server, and the policy evaluator alone.

``.venv/bin/python -m bench.admin_api [--seconds S] [--calls N]``

Set up through the real CLI (:mod:`bench._setup`: `authbridge init`, an
account, 4 users with 2 keys each), `iam attach-user-policy` gives ``user00``
AdministratorAccess and IAMSelfManageCredentials, then `authbridge serve`
with its production defaults (2 workers, TLS). Through :mod:`bench.loadgen`
(closed loop, 8 keep-alive connections, 2 generator processes):

1. **ListUsers**, authenticated with the access key (HTTP Basic: a keyed
   hash and a store read per call) and with an admin-audience token (a
   signature check and the revocation read);
2. **CreateUser** then **CreateAccessKey**, ``--calls`` distinct users (a
   user holds at most two keys, so each call names its own user), with the
   token; every answer must be 200.

Then, in this process on one core: :func:`authbridge.iam.policy.evaluate`
alone for the caller's two managed policies (the decision every call
makes), and :class:`authbridge.admin.authorize.StorePolicies` (the store
read of the policies and tags, plus evaluation) against the server's
SQLite store, so the share of authorization in a call is visible. Figures
are printed, never asserted (2 shared cores here: the generator, both
workers and SQLite compete for them).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import _setup, loadgen
from bench._setup import ACCOUNT, Server
from bench.loadgen import Target

CONCURRENCY = 8
GEN_PROCESSES = 2
POLICIES = ("AdministratorAccess", "IAMSelfManageCredentials")


def _token(server: Server, key: _setup.AccessKey, audience: str) -> str:
    raw = base64.b64encode(f"{key.access_key_id}:{key.secret}".encode()).decode()
    req = urllib.request.Request(  # noqa: S310 - this server's https:// loopback URL
        server.url + "/oauth2/token",
        data=urllib.parse.urlencode(
            {"grant_type": "client_credentials", "audience": audience, "duration_seconds": "3600"}
        ).encode(),
        headers={"Authorization": f"Basic {raw}"},
    )
    ctx = _ssl(server)
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
        token: str = json.loads(resp.read())["access_token"]
    return token


def _ssl(server: Server) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(server.ca_file))


def _call(target: Target, surface: str, body: dict[str, Any], auth: str) -> bytes:
    return loadgen.build_request(
        target,
        "POST",
        f"/api/{surface}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": auth},
    )


def _ok(status: int, _body: bytes) -> bool:
    return status == 200


def _phase(
    name: str,
    target: Target,
    requests: list[bytes],
    server: Server,
    *,
    seconds: float,
    max_requests: int,
) -> dict[str, Any]:
    cpu0 = server.cpu_seconds()
    result = loadgen.closed_loop(
        target,
        requests,
        concurrency=CONCURRENCY,
        processes=GEN_PROCESSES,
        duration=seconds,
        max_requests=max_requests,
        check=_ok,
        warmup=loadgen.build_request(target, "GET", "/healthz"),
    )
    cpu = server.cpu_seconds() - cpu0
    lat = sorted(result.latencies)
    row = {
        "phase": name,
        "calls": result.count,
        "ok": result.ok,
        "per_second": round(result.rate, 1),
        "p50_ms": round(loadgen.percentile(lat, 50) * 1000, 2) if lat else None,
        "p99_ms": round(loadgen.percentile(lat, 99) * 1000, 2) if lat else None,
        "server_cpu_ms_per_call": round(cpu / max(result.count, 1) * 1000, 3),
        "server_cpu_s": round(cpu, 2),
        "generator_cpu_s": round(result.gen_cpu, 2),
        "wall_s": round(result.wall, 2),
        "reconnects": result.reconnects,
        "statuses": dict(result.statuses),
    }
    print(
        f"  {name:<34} {row['per_second']:>8} calls/s   p50 {row['p50_ms']} ms"
        f"   p99 {row['p99_ms']} ms   server CPU {row['server_cpu_ms_per_call']} ms/call"
        f"   ({result.ok}/{result.count} ok, {result.reconnects} reconnects;"
        f" {row['wall_s']} s, CPU server {row['server_cpu_s']} s"
        f" + generator {row['generator_cpu_s']} s)"
    )
    return row


def _rate(fn: Callable[[], object], seconds: float = 2.0) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def in_process(root: Path) -> dict[str, float]:
    """The evaluator alone, and with the store read, on one core."""
    from authbridge.admin.authorize import Caller, StorePolicies, request_context
    from authbridge.iam.credentials import load_or_create_pepper
    from authbridge.iam.policy import AWS_MANAGED_POLICIES, Request, SourcePolicy, evaluate
    from authbridge.settings import load_settings
    from authbridge.store import open_store

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    settings = load_settings({}, {}, root / "keys" / "authbridge.yaml", cwd=root)
    store = open_store(
        settings.store, pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False)
    )
    user = store.get_user(ACCOUNT, "user00")
    caller = Caller(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=ACCOUNT,
        principal_id=user.user_id,
        user_name=user.name,
        source_identity=user.user_id,
        method="access_key",
    )
    policies = [
        SourcePolicy(f"arn:aws:iam::aws:policy/{n}", "aws-managed", AWS_MANAGED_POLICIES[n])
        for n in POLICIES
    ]
    context = request_context(caller, source_ip="127.0.0.1", now=time.time(), tags={})
    # AdministratorAccess allows it; IAMSelfManageCredentials alone does not (another user).
    other = Request("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/user01", context)
    only_self = [policies[1]]
    authorizer = StorePolicies(store)
    figures = {
        "evaluate_allowed_per_s": _rate(lambda: evaluate(policies, other)),
        "evaluate_implicit_deny_per_s": _rate(lambda: evaluate(only_self, other)),
        "store_policies_decide_per_s": _rate(
            lambda: authorizer.decide(caller, other.action, other.resource, context)
        ),
        "store_principal_tags_per_s": _rate(lambda: authorizer.principal_tags(caller)),
    }
    store.close()
    print("  in-process, one core:")
    for name, value in figures.items():
        print(f"    {name:<34} {value:>12,.0f}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.admin_api")
    parser.add_argument("--seconds", type=float, default=8.0, help="per load phase (1-30)")
    parser.add_argument("--calls", type=int, default=3000, help="CreateUser/CreateAccessKey calls")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    seconds = min(30.0, max(1.0, args.seconds))
    root = Path(tempfile.mkdtemp(prefix="authbridge-bench-admin-"))
    print(f"admin API bench in {root} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    keys, role_arn, port = _setup.setup(root, users=4)
    for name in POLICIES:
        _setup.cli(
            root,
            "iam",
            "attach-user-policy",
            "--user-name",
            "user00",
            "--policy-arn",
            f"arn:aws:iam::aws:policy/{name}",
        )
    server = _setup.start(root, keys, role_arn, port)
    rows: list[dict[str, Any]] = []
    try:
        target = Target("127.0.0.1", port, str(server.ca_file))
        key = keys[0]
        basic = "Basic " + base64.b64encode(f"{key.access_key_id}:{key.secret}".encode()).decode()
        bearer = "Bearer " + _token(server, key, server.issuer + "/admin")
        list_users = {"Action": "ListUsers"}
        print("through the server (2 workers, TLS), 8 connections:")
        rows.append(
            _phase(
                "ListUsers (access key)",
                target,
                [_call(target, "iam", list_users, basic)],
                server,
                seconds=seconds,
                max_requests=200_000,
            )
        )
        rows.append(
            _phase(
                "ListUsers (admin token)",
                target,
                [_call(target, "iam", list_users, bearer)],
                server,
                seconds=seconds,
                max_requests=200_000,
            )
        )
        names = [f"bench{i:05d}" for i in range(args.calls)]
        rows.append(
            _phase(
                "CreateUser (admin token)",
                target,
                [
                    _call(target, "iam", {"Action": "CreateUser", "UserName": n}, bearer)
                    for n in names
                ],
                server,
                seconds=seconds * 4,
                max_requests=len(names),
            )
        )
        rows.append(
            _phase(
                "CreateAccessKey (admin token)",
                target,
                [
                    _call(target, "iam", {"Action": "CreateAccessKey", "UserName": n}, bearer)
                    for n in names
                ],
                server,
                seconds=seconds * 4,
                max_requests=len(names),
            )
        )
    finally:
        server.stop()
    figures = in_process(root)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "admin_api.json").write_text(
        json.dumps({"phases": rows, "in_process": figures}, indent=2)
    )
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
