"""`authbridge serve` start-up checks, through the real executable.

Covers: an http:// issuer is refused unless --allow-insecure-http, and then
the server starts on plain HTTP and its log shouts about it; missing TLS
files, an unreadable private key and a world-readable signing key are each
one line on stderr with exit code 1, before any worker starts.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.serving import AUTHBRIDGE, clean_env, free_port, run_cli


def _serve(root: Path, *args: str, wait: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTHBRIDGE, "serve", *args],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=wait,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _one_line_refusal(proc: subprocess.CompletedProcess[str], *says: str) -> None:
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith("authbridge: ") and proc.stderr.count("\n") == 1, proc.stderr
    for text in says:
        assert text in proc.stderr, proc.stderr


def test_http_issuer_is_refused(tmp_path: Path) -> None:
    run_cli(tmp_path, "init --algorithm ES256")
    _one_line_refusal(_serve(tmp_path, "--issuer", "http://127.0.0.1:8080"), "https")


def test_insecure_http_only_when_asked_and_loudly(tmp_path: Path) -> None:
    run_cli(tmp_path, "init --algorithm ES256")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                AUTHBRIDGE,
                "serve",
                "--issuer",
                f"http://127.0.0.1:{port}",
                "--bind",
                f"127.0.0.1:{port}",
                "--allow-insecure-http",
                "--workers",
                "1",
            ],
            cwd=tmp_path,
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:  # noqa: S310
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert "INSECURE" in log.read_text()


def test_missing_tls_files_are_one_line(tmp_path: Path) -> None:
    run_cli(tmp_path, "init --algorithm ES256")
    (tmp_path / "keys" / "tls" / "server.crt").unlink()
    _one_line_refusal(_serve(tmp_path), "TLS files not found", "authbridge init")


def test_mismatched_tls_key_is_one_line(tmp_path: Path) -> None:
    run_cli(tmp_path, "init --algorithm ES256")
    tls = tmp_path / "keys" / "tls"
    (tls / "server.key").write_bytes((tls / "apiserver-client.key").read_bytes())
    _one_line_refusal(_serve(tmp_path), "cannot use the TLS certificate")


def test_world_readable_signing_key_is_one_line(tmp_path: Path) -> None:
    run_cli(tmp_path, "init --algorithm ES256")
    pem = next((tmp_path / "keys").glob("*.pem"))
    pem.chmod(0o644)
    _one_line_refusal(_serve(tmp_path), pem.name, "chmod 600")
