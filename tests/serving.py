"""A real `authbridge serve` for tests: gunicorn, TLS from `authbridge init`, 2 workers.

Everything is set up the way a person would, through the real CLI in
subprocesses: `authbridge init`, `authbridge iam …`, then `authbridge serve`
on a free loopback port. Tests talk to it over HTTPS, trusting only the CA
that `init` made.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUTHBRIDGE = str(Path(sys.executable).parent / "authbridge")
ACCOUNT = "111122223333"
CLUSTERS = ("prod", "staging")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTHBRIDGE_", "KUBERNETES_EXEC_INFO"))
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(cwd: Path, argv: str | list[str], env: dict[str, str] | None = None) -> str:
    args = shlex.split(argv) if isinstance(argv, str) else argv
    proc = subprocess.run(
        [AUTHBRIDGE, *args],
        cwd=cwd,
        env=env or clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@dataclass
class LiveServer:
    root: Path
    url: str
    ca_file: Path
    access_key_id: str
    secret: str
    role_arn: str
    user_arn: str
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        # S310: the URL is always this test server's https:// address.
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=10) as resp:  # noqa: S310
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_json(self, path: str) -> Any:
        status, _, body = self.request(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def cli(self, argv: str | list[str], env: dict[str, str] | None = None) -> str:
        return run_cli(self.root, argv, env)

    def plugin(
        self,
        *args: str,
        key: tuple[str, str] | None = None,
        home: Path | None = None,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        """`authbridge token` against this server, as kubectl runs it (fresh process)."""
        key_id, secret = key or (self.access_key_id, self.secret)
        return subprocess.run(
            [AUTHBRIDGE, "token", "--endpoint", self.url, "--ca-file", str(self.ca_file), *args],
            cwd=home or self.root,
            env=clean_env(
                HOME=str(home or self.root),
                AUTHBRIDGE_ACCESS_KEY_ID=key_id,
                AUTHBRIDGE_SECRET_ACCESS_KEY=secret,
                **env,
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def mint(self, cluster: str, *args: str, key: tuple[str, str] | None = None) -> str:
        """A fresh token (no cache) for ``cluster``; ``args`` e.g. --role ARN."""
        proc = self.plugin("--cluster-id", cluster, "--token-only", "--no-cache", *args, key=key)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def start_server(
    root: Path,
    *,
    workers: int = 2,
    mapping: str | None = None,
    init_args: str = "",
    port: int | None = None,
) -> Iterator[LiveServer]:
    """Set up IAM and keys in ``root`` and run `authbridge serve`; stop it afterwards.

    ``mapping`` is written to ``root/rbac/mapping.yaml`` (where the config that
    `init` writes points) before the server starts; ``init_args`` go to `init`.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    clusters = " ".join(f"--cluster-id {c}" for c in CLUSTERS)
    run_cli(root, f"init --no-admin {clusters} --algorithm ES256 --port {port} {init_args}")
    if mapping is not None:
        (root / "rbac").mkdir(exist_ok=True)
        (root / "rbac" / "mapping.yaml").write_text(mapping)
    run_cli(root, f"iam create-account --account-id {ACCOUNT}")
    user = json.loads(run_cli(root, "-o json iam create-user --user-name alice"))["User"]
    run_cli(root, "iam create-group --group-name admins")
    run_cli(root, "iam add-user-to-group --group-name admins --user-name alice")
    role = json.loads(
        run_cli(
            root,
            "-o json iam create-role --role-name Admin --path /platform/"
            f" --trust arn:aws:iam::{ACCOUNT}:group/admins",
        )
    )["Role"]
    key = json.loads(run_cli(root, "-o json iam create-access-key --user-name alice"))["AccessKey"]

    url = f"https://127.0.0.1:{port}"
    log = root / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                AUTHBRIDGE,
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--issuer",
                url,
                "--workers",
                str(workers),
            ],
            cwd=root,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        root=root,
        url=url,
        ca_file=root / "keys" / "tls" / "ca.crt",
        access_key_id=key["AccessKeyId"],
        secret=key["SecretAccessKey"],
        role_arn=role["Arn"],
        user_arn=user["Arn"],
        proc=proc,
        log=log,
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(server: LiveServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"authbridge serve exited: {server.log.read_text()}")
        try:
            status, _, _ = server.request("/healthz")
            if status == 200:
                return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(
        f"authbridge serve not ready after {timeout}s ({last}): {server.log.read_text()}"
    )
