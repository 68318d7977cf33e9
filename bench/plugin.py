"""``authbridge token`` as kubectl runs it: a fresh process per call, timed end to end.

Compared, each as N fresh processes run one after another (wall time from
``fork`` to exit, as kubectl waits for it):

* ``python -c pass``: the interpreter's own start, the floor for any Python plugin;
* ``authbridge token`` answered from its cache (the common case: kubectl runs
  the plugin before every request), with an access key and for a signed-in
  profile (``authbridge login``: no key; the fast path reads the session
  file to find the token);
* ``authbridge token --no-cache``: a fresh mint from the running server;
* ``aws eks get-token`` when ``aws`` is installed: what EKS users run today
  (it presigns an STS URL locally, no network; fake credentials suffice).

:func:`cached_imports` lists which heavy modules the cached path imports
(``python -X importtime``): it must load no Flask, kubernetes client or store.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench._setup import AUTHBRIDGE, CLUSTER, AccessKey, Server, clean_env
from bench.loadgen import percentile

# Module prefixes the cached path must not import (the rule), and ones worth seeing.
FORBIDDEN = ("flask", "werkzeug", "kubernetes", "authbridge.store", "sqlite3", "psycopg")
HEAVY = ("cryptography", "jwt", "ssl", "urllib.request", "yaml", "authlib", "gunicorn")


@dataclass(frozen=True)
class Timing:
    name: str
    runs: int
    median: float  # seconds
    p90: float
    best: float


def _time(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, runs: int, budget: float
) -> Timing:
    # One untimed run first: it writes the bytecode cache (see _bytecode_env), as the
    # first run after `pip install` would (pip compiles on install anyway).
    subprocess.run(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    walls: list[float] = []
    deadline = time.monotonic() + budget
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed: {proc.stderr.decode(errors='replace').strip()}")
        if time.monotonic() > deadline:
            break
    return Timing(
        name=name,
        runs=len(walls),
        median=statistics.median(walls),
        p90=percentile(walls, 90),
        best=min(walls),
    )


def _bytecode_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` with Python's bytecode cache on, kept under ``home``.

    As installed, every module has its ``.pyc``; a sandbox or CI job that sets
    PYTHONDONTWRITEBYTECODE=1 would instead make each fresh process compile
    authbridge's sources again (an editable install has no ``.pyc`` of its
    own). PYTHONPYCACHEPREFIX keeps the cache out of the source tree.
    """
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return out


def _plugin_env(server: Server, key: AccessKey, home: Path) -> dict[str, str]:
    return clean_env(
        HOME=str(home),
        AUTHBRIDGE_ACCESS_KEY_ID=key.access_key_id,
        AUTHBRIDGE_SECRET_ACCESS_KEY=key.secret,
        AUTHBRIDGE_ENDPOINT=server.url,
        AUTHBRIDGE_CA_FILE=str(server.ca_file),
        AUTHBRIDGE_CLUSTER_ID=CLUSTER,
    )


def _signed_in_env(server: Server, key: AccessKey, home: Path) -> dict[str, str]:
    """A home whose default profile has no key but a session, with a cached cluster token.

    The session holds a real ``sts`` token and the cache a real cluster token of
    the key's user (minted over HTTPS); the refresh token is a placeholder, never
    presented: every timed run is a cache hit.
    """
    from authbridge.client.cache import CachedToken, cache_key
    from authbridge.client.issuer import Issuer
    from authbridge.client.session import Session, SessionFiles, new_session_key

    (home / ".authbridge").mkdir(parents=True, mode=0o700, exist_ok=True)
    creds = home / ".authbridge" / "credentials"
    creds.write_text(
        f"[default]\nendpoint = {server.url}\nca_file = {server.ca_file}\ncluster_id = {CLUSTER}\n"
    )
    creds.chmod(0o600)
    env = clean_env(HOME=str(home))
    issuer = Issuer(server.url, ca_file=str(server.ca_file))
    sts = issuer.sts_token(key.access_key_id, key.secret)
    cluster = issuer.session_token(key.access_key_id, key.secret, audience=CLUSTER)
    files = SessionFiles.of(env, server.url, "default")
    session = Session(
        endpoint=server.url,
        profile="default",
        issuer=server.url,
        key=new_session_key(),
        user=None,
        refresh_token="bench-placeholder-never-presented",  # noqa: S106 - not a secret
        refresh_expires_at=None,
        access_token=sts.token,
        access_expires_at=sts.expires_at,
        role=None,
        session_name=None,
        signed_in_at=int(time.time()),
    )
    files.save(session)
    request = cache_key(
        endpoint=server.url,
        profile="default",
        access_key_id=f"session:{session.key}",
        cluster_id=CLUSTER,
        role=None,
        session_name=None,
        duration=None,
    )
    files.tokens.put(request, CachedToken(cluster.token, cluster.expires_at))
    return env


def _aws() -> str | None:
    """The real ``aws`` executable; a pyenv shim (a bash script) is resolved first."""
    found = shutil.which("aws")
    if found is None:
        return None
    if "/.pyenv/shims/" in found and shutil.which("pyenv"):
        proc = subprocess.run(
            ["pyenv", "which", "aws"], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return found


def run(server: Server, *, runs: int, budget: float) -> tuple[list[Timing], dict[str, str]]:
    """The timings, and notes (what was compared, which binary)."""
    home = server.root / "plugin-home"
    home.mkdir(exist_ok=True)
    key = server.keys[0]
    plain = _plugin_env(server, key, home)
    env = _bytecode_env(plain, home)
    notes: dict[str, str] = {}
    python = sys.executable
    out = [_time("python -c pass", [python, "-c", "pass"], env, home, runs, budget)]

    token = [AUTHBRIDGE, "token"]
    first = subprocess.run(token, cwd=home, env=env, capture_output=True, timeout=60, check=False)
    if first.returncode != 0:
        raise RuntimeError(f"authbridge token failed: {first.stderr.decode(errors='replace')}")
    out.append(_time("authbridge token (cached)", token, env, home, runs, budget))
    signed_in = _bytecode_env(_signed_in_env(server, key, home / "signed-in"), home)
    out.append(_time("authbridge token (cached, signed in)", token, signed_in, home, runs, budget))
    out.append(
        _time("authbridge token --no-cache (mint)", [*token, "--no-cache"], env, home, runs, budget)
    )
    if plain.get("PYTHONDONTWRITEBYTECODE"):
        notes["bytecode"] = (
            "PYTHONDONTWRITEBYTECODE is set here: every row runs with a bytecode cache"
            " (PYTHONPYCACHEPREFIX) as an installed authbridge has, except 'no .pyc', which"
            " runs as this environment would (authbridge's modules compiled on every start)"
        )
        out.append(
            _time(
                "authbridge token (cached), no .pyc",
                token,
                {**plain, "PYTHONDONTWRITEBYTECODE": "1"},
                home,
                runs,
                budget,
            )
        )

    aws = _aws()
    if aws is None:
        notes["aws"] = "aws not on PATH: skipped"
    else:
        notes["aws"] = aws
        aws_env = _bytecode_env(
            clean_env(
                HOME=str(home),
                AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
                AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # noqa: S106 - AWS's doc example
                AWS_CONFIG_FILE=os.devnull,
                AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                AWS_EC2_METADATA_DISABLED="true",
            ),
            home,
        )
        argv = [aws, "eks", "get-token", "--region", "us-east-1", "--cluster-name", "x"]
        out.append(_time("aws eks get-token", argv, aws_env, home, max(3, runs // 2), budget))
    return out, notes


def cached_imports(server: Server) -> tuple[list[str], list[str]]:
    """(forbidden, heavy) top-level modules the cached path imports, from ``-X importtime``."""
    home = server.root / "plugin-home"
    env = _bytecode_env(_plugin_env(server, server.keys[0], home), home)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", AUTHBRIDGE, "token"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"authbridge token failed: {proc.stderr.strip()[-500:]}")
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())

    forbidden = sorted(
        m for m in modules if m in FORBIDDEN or m.startswith(tuple(p + "." for p in FORBIDDEN))
    )
    return forbidden, sorted(m for m in modules if m in HEAVY)
