"""The README's promises, run for real.

`authbridge quickstart` (what `scripts/run` executes) sets up idempotently,
shows the demo secret once and serves until Ctrl-C. Every ```sh block of the
README after the set-up runs as written through bash and curl, in the
README's order, against a quickstart serving on a free port (the port is
substituted for 8443 in the commands, so the tests pass while the user's own
`scripts/run` holds 8443): the tour (plugin, /verify, discovery, JWKS, token
endpoint, token exchange, introspection, revocation), the IAM and signing-key
blocks after it, then, with the server stopped, the reset, after which
quickstart makes a new demo. What quickstart prints to paste works too.
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

from tests.serving import free_port, start_server
from tests.test_cli import Cli, clean_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = str(Path(sys.executable).parent)
README_PORT = "8443"  # the port the README's commands name; the tests serve elsewhere

# Every ```sh block of the README, by section, in order. The set-up block is
# scripts/run and scripts/test (.ci/run runs the latter); the tour test runs all
# the others. A new block must be added here, and to what the tour test checks.
README_SH_SECTIONS = [
    "Set up: two commands",
    *["Five-minute tour"] * 4,
    "The IAM store from the command line",
    "Signing keys",
    "Reset the demo",
]


def readme_sh_blocks() -> list[tuple[str, str]]:
    """(section, text) of every ```sh block in the README, in order."""
    out, section = [], ""
    pattern = re.compile(r"^## ([^\n]+)$|^```(\w*)\n(.*?)^```", re.M | re.S)
    for m in pattern.finditer(README.read_text()):
        if m.group(1):
            section = m.group(1).strip()
        elif m.group(2) == "sh":
            out.append((section, m.group(3)))
    return out


def _on_port(script: str, port: int) -> str:
    """The README's commands, aimed at the test's server instead of 127.0.0.1:8443."""
    at = f"127.0.0.1:{README_PORT}"
    assert README_PORT not in script.replace(at, ""), f"the README names {README_PORT} not as {at}"
    return script.replace(at, f"127.0.0.1:{port}")


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


def _like_a_clone(path: Path) -> None:
    """The files of a clone that quickstart and the reset block rely on."""
    for name in (".gitignore", "keys/.gitignore", "keys/README.md", "rbac/mapping.yaml"):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, path / name)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)


def test_the_readme_sh_blocks_are_the_ones_the_tour_test_runs() -> None:
    assert [section for section, _ in readme_sh_blocks()] == README_SH_SECTIONS


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README tour uses curl")
@pytest.mark.skipif(shutil.which("git") is None, reason="the README's reset uses git")
def test_readme_tour_works_as_written_against_quickstart(tmp_path: Path) -> None:
    port = free_port()
    _like_a_clone(tmp_path)
    env = clean_env(
        HOME=str(tmp_path),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        AUTHBRIDGE_BIND=f"127.0.0.1:{port}",
        AUTHBRIDGE_ISSUER=f"https://127.0.0.1:{port}",
    )
    setup = Cli(tmp_path, env).json("quickstart --no-serve")
    env.update(
        AUTHBRIDGE_ACCESS_KEY_ID=setup["AccessKeyId"],
        AUTHBRIDGE_SECRET_ACCESS_KEY=setup["SecretAccessKey"],
    )
    blocks = readme_sh_blocks()
    assert [section for section, _ in blocks] == README_SH_SECTIONS
    tour = [text for _, text in blocks[1:5]]
    iam_block, keys_block, reset_block = (text for _, text in blocks[5:])
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
        while _port_free(port):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        plugin, verify, oidc, endpoint = (
            _bash(_on_port(block, port), tmp_path, env) for block in tour
        )
        for proc in (plugin, oidc, verify, endpoint):
            assert proc.returncode == 0, proc.stdout + proc.stderr
            # Nothing but `authbridge verify` saying which mode decided.
            said = proc.stderr.count("authbridge:")
            assert said == proc.stderr.count("authbridge: checked remotely at "), proc.stderr
        creds = [json.loads(doc) for doc in _json_docs(plugin.stdout)]
        assert [c["kind"] for c in creds] == ["ExecCredential"] * 2
        discovery, jwks = _json_docs(oidc.stdout)
        assert json.loads(discovery)["issuer"] == f"https://127.0.0.1:{port}"
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

        # After the tour, with the demo in place and still serving: the reference blocks.
        iam = _bash(_on_port(iam_block, port), tmp_path, env)
        assert iam.returncode == 0 and iam.stderr == "", iam.stdout + iam.stderr
        assert '"SecretAccessKey"' in iam.stdout
        demo = Cli(tmp_path, env).json("--account-id 111122223333 iam list-users")
        assert [u["UserName"] for u in demo["Users"]] == ["alice"]  # the demo is untouched
        keys = _bash(_on_port(keys_block, port), tmp_path, env)
        assert keys.returncode == 0 and keys.stderr == "", keys.stdout + keys.stderr
        assert "pending" in keys.stdout and "retired" in keys.stdout
        again = _bash(_on_port(tour[0], port), tmp_path, env)  # the demo still works
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            rc = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert rc == 0, log.read_text()
    assert "Shutting down" in log.read_text()

    # The reset, with scripts/run stopped: only what quickstart made goes ...
    reset = _bash(reset_block, tmp_path, env)
    assert reset.returncode == 0 and reset.stderr == "", reset.stdout + reset.stderr
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [".gitignore", "README.md"]
    assert not (tmp_path / "data").exists() and (tmp_path / "rbac" / "mapping.yaml").exists()
    # ... and the next scripts/run makes a new demo, with a new key in the profile.
    fresh = Cli(tmp_path, env).json("quickstart --no-serve")
    assert "account 111122223333" in fresh["Made"] and "keys/signing-keys.json" in fresh["Made"]
    assert fresh["SecretAccessKey"] != setup["SecretAccessKey"]
    assert fresh["AccessKeyId"] != setup["AccessKeyId"]


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


def test_readme_iam_block_works_as_written_against_a_fresh_server(tmp_path: Path) -> None:
    (script,) = [t for s, t in readme_sh_blocks() if s == "The IAM store from the command line"]
    for server in start_server(tmp_path / "server"):
        port = int(server.url.rsplit(":", 1)[1])
        env = clean_env(HOME=str(tmp_path), PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        proc = _bash(_on_port(script, port), server.root, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert '"SecretAccessKey"' in proc.stdout
        assert proc.stderr == ""
        # The break-glass half is in its audit file; the API half in the server's audit.
        audited = (server.root / "keys" / "break-glass.log").read_text()
        assert '"action":"iam:AttachUserPolicy"' in audited and "carol" not in audited
        assert not (server.root / "admin-key.json").exists()
