"""The README's promises, run for real.

`authbridge quickstart` (what `scripts/run` executes) sets up idempotently,
shows the demo secret once and serves on https://127.0.0.1:8443 until Ctrl-C;
the README's tour blocks (plugin, discovery, JWKS, token endpoint, token
exchange, introspection, revocation) run as written through bash and curl
against it; the README's IAM block works as written in a fresh directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import Cli, clean_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = str(Path(sys.executable).parent)
QUICKSTART_PORT = 8443


def _blocks(after_heading: str) -> list[str]:
    text = README.read_text()
    section = text.split(after_heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def _as_written(script: str) -> str:
    # The README puts the clone's venv on PATH; here the test's own interpreter
    # directory plays the venv, so that one line is dropped and PATH set instead.
    return script.replace('export PATH="$PWD/.venv/bin:$PATH"\n', "")


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _as_written(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_quickstart_no_serve_is_idempotent_and_shows_the_secret_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path, clean_env(HOME=str(tmp_path)))
    first = cli.json("quickstart --no-serve")
    secret = first["SecretAccessKey"]
    assert first["Role"]["Trust"] == ["arn:aws:iam::111122223333:group/admins"]
    again = cli.json("quickstart --no-serve")
    assert again["Made"] == [] and "SecretAccessKey" not in again
    assert again["AccessKeyId"] == first["AccessKeyId"]  # the same key, reused
    text = cli.ok("quickstart --no-serve").out
    assert "all in place" in text and secret not in text
    assert secret.encode() not in (tmp_path / "data" / "authbridge.db").read_bytes()
    creds = tmp_path / ".authbridge" / "credentials"
    assert creds.stat().st_mode & 0o777 == 0o600 and secret in creds.read_text()


def test_scripts_run_execs_quickstart() -> None:
    text = (ROOT / "scripts" / "run").read_text()
    assert 'exec authbridge quickstart "$@"' in text


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README tour uses curl")
def test_readme_tour_works_as_written_against_quickstart(tmp_path: Path) -> None:
    assert _port_free(QUICKSTART_PORT), "port 8443 is taken; the README tour needs it"
    env = clean_env(HOME=str(tmp_path), PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    setup = Cli(tmp_path, env).json("quickstart --no-serve")
    env.update(
        AUTHBRIDGE_ACCESS_KEY_ID=setup["AccessKeyId"],
        AUTHBRIDGE_SECRET_ACCESS_KEY=setup["SecretAccessKey"],
    )
    log = tmp_path / "quickstart.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [f"{VENV_BIN}/authbridge", "quickstart"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while _port_free(QUICKSTART_PORT):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        tour = _blocks("## Five-minute tour")
        assert len(tour) == 4, tour
        plugin, verify, oidc, endpoint = (_bash(block, tmp_path, env) for block in tour)
        for proc in (plugin, oidc, verify, endpoint):
            assert proc.returncode == 0, proc.stdout + proc.stderr
            # Nothing but `authbridge verify` saying which mode decided.
            said = proc.stderr.count("authbridge:")
            assert said == proc.stderr.count("authbridge: checked remotely at "), proc.stderr
        creds = [json.loads(doc) for doc in _json_docs(plugin.stdout)]
        assert [c["kind"] for c in creds] == ["ExecCredential"] * 2
        discovery, jwks = _json_docs(oidc.stdout)
        assert json.loads(discovery)["issuer"] == "https://127.0.0.1:8443"
        assert json.loads(jwks)["keys"]
        docs, rest = _leading_json_docs(verify.stdout)
        good, bad = (json.loads(d) for d in docs)
        assert good["authenticated"] is True, good
        assert good["kubernetes"]["username"] == "alice"
        assert good["kubernetes"]["groups"] == ["authbridge:devs", "authbridge:oncall"]
        assert good["matchedRule"]["section"] == "mapUsers"
        assert bad["authenticated"] is False and bad["reason"]
        assert "alice" in rest  # authbridge verify's text answer
        user_token, exchanged, introspected = (json.loads(d) for d in _json_docs(endpoint.stdout))
        assert user_token["token_type"] == "Bearer" and user_token["access_token"]
        assert exchanged["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
        assert introspected["active"] is True
        assert introspected["sub"] == "arn:aws:iam::111122223333:user/alice"
        # What quickstart itself printed to paste works as printed, too.
        printed = log.read_text().split("Try (in another terminal, in this directory):\n", 1)[1]
        commands = printed.split("\n\n", 1)[0]
        pasted = _bash(
            "\n".join(line.strip() for line in commands.splitlines()) + "\n", tmp_path, env
        )
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        docs, _ = _leading_json_docs(pasted.stdout)
        kinds = [json.loads(d).get("kind") or next(iter(json.loads(d))) for d in docs]
        assert kinds[0] == "ExecCredential" and len(docs) == 4, pasted.stdout
        assert json.loads(docs[-1])["authenticated"] is True
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            rc = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert rc == 0, log.read_text()
    assert "Shutting down" in log.read_text()


def _leading_json_docs(out: str) -> tuple[list[str], str]:
    """The JSON documents at the start of ``out``, and the text after them."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        try:
            _, end = decoder.raw_decode(out, i)
        except ValueError:
            break
        docs.append(out[i:end])
        i = end
    return docs, out[i:]


def _json_docs(out: str) -> list[str]:
    """Split concatenated JSON documents (curl prints no newline between them)."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        _, end = decoder.raw_decode(out, i)
        docs.append(out[i:end])
        i = end
    return docs


def test_readme_iam_block_works_as_written(tmp_path: Path) -> None:
    (script,) = _blocks("## Reference: the IAM store from the command line")
    env = clean_env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    proc = _bash(script, tmp_path, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"SecretAccessKey"' in proc.stdout
    assert proc.stderr == ""
