"""A real `authbridge serve` for the benchmarks, set up the way an operator would.

Everything goes through the CLI in subprocesses, as ``tests/serving.py`` does
(copied here on purpose: bench/ does not import tests/): ``authbridge init``
(default RS256 key, TLS, a client CA and one kube-apiserver client
certificate), ``authbridge iam …`` (one account, users in a group, a role
trusting the group, two access keys per user), a mapping file, then
``authbridge serve`` with its default production settings: no ``--workers``
(2), gthread, TLS, client CA from the config ``init`` wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
AUTHBRIDGE = str(BIN / "authbridge")
ACCOUNT = "111122223333"
CLUSTER = "prod"
CALLER = "prod-cp"  # the kube-apiserver's client certificate (CN); O = CLUSTER
GROUP = "devs"
ROLE_PATH = "/platform/"
ROLE_NAME = "Admin"
API_AUDIENCES = ["https://kubernetes.default.svc"]  # what a kube-apiserver sends

MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role{ROLE_PATH}{ROLE_NAME}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapGroups:
  - grouparn: arn:aws:iam::{ACCOUNT}:group/{GROUP}
    groups: ["authbridge:devs"]
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any AUTHBRIDGE_* setting of the caller's."""
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


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
    """``authbridge ARGS`` in ``cwd`` (its stdout), with ``env`` or a clean one, ``stdin`` in."""
    proc = subprocess.run(
        [AUTHBRIDGE, *args],
        cwd=cwd,
        env=env if env is not None else clean_env(HOME=str(cwd)),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"authbridge {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class AccessKey:
    user_name: str
    user_id: str  # AIDA…
    user_arn: str
    access_key_id: str
    secret: str = field(repr=False)


@dataclass
class Server:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    keys: list[AccessKey]
    role_arn: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def ca_file(self) -> Path:
        return self.keys_dir / "tls" / "ca.crt"

    @property
    def client_cert(self) -> tuple[Path, Path]:
        tls = self.keys_dir / "tls"
        return tls / f"apiserver-{CALLER}.crt", tls / f"apiserver-{CALLER}.key"

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        out = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return out
        return out + [int(p) for p in children.split()]

    def worker_pids(self) -> list[int]:
        return self.pids()[1:]

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and workers so far (from /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def setup(root: Path, *, users: int) -> tuple[list[AccessKey], str, int]:
    """init + IAM + mapping in ``root``; returns the access keys, the role ARN and the port."""
    port = free_port()
    cli(
        root,
        "init",
        "--no-admin",  # the account is made below, by hand
        "--cluster-id",
        CLUSTER,
        "--port",
        str(port),
        "--apiserver-client",
        f"{CALLER}={CLUSTER}",
    )
    (root / "rbac").mkdir(exist_ok=True)
    (root / "rbac" / "mapping.yaml").write_text(MAPPING)
    cli(root, "iam", "create-account", "--account-id", ACCOUNT)
    cli(root, "iam", "create-group", "--group-name", GROUP)
    keys: list[AccessKey] = []
    for i in range(users):
        name = f"user{i:02d}"
        user = json.loads(cli(root, "-o", "json", "iam", "create-user", "--user-name", name))
        cli(root, "iam", "add-user-to-group", "--group-name", GROUP, "--user-name", name)
        for _ in range(2):  # IAM's limit per user
            out = cli(root, "-o", "json", "iam", "create-access-key", "--user-name", name)
            key = json.loads(out)["AccessKey"]
            keys.append(
                AccessKey(
                    user_name=name,
                    user_id=user["User"]["UserId"],
                    user_arn=user["User"]["Arn"],
                    access_key_id=key["AccessKeyId"],
                    secret=key["SecretAccessKey"],
                )
            )
    role = json.loads(
        cli(
            root,
            "-o",
            "json",
            "iam",
            "create-role",
            "--role-name",
            ROLE_NAME,
            "--path",
            ROLE_PATH,
            "--trust",
            f"arn:aws:iam::{ACCOUNT}:group/{GROUP}",
        )
    )["Role"]
    return keys, role["Arn"], port


def start(root: Path, keys: list[AccessKey], role_arn: str, port: int) -> Server:
    """`authbridge serve` with nothing but what `init` configured: the production defaults."""
    log = root / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [AUTHBRIDGE, "serve"],
            cwd=root,
            env=clean_env(HOME=str(root)),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it
        )
    server = Server(root=root, port=port, proc=proc, log=log, keys=keys, role_arn=role_arn)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"authbridge serve exited:\n{server.log.read_text()}")
        try:
            # S310: always this server's https:// loopback URL.
            with urllib.request.urlopen(server.url + "/readyz", context=ctx, timeout=5) as r:  # noqa: S310
                if r.status == 200 and len(server.worker_pids()) >= 1:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"authbridge serve not ready after {timeout}s:\n{server.log.read_text()}")
