"""The README's promises, run for real: `authbridge quickstart` (what `scripts/run`
executes) is idempotent and shows the demo secret once; the README's IAM
command block works as written, in a fresh directory, through a real shell.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_cli import Cli, clean_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_quickstart_is_idempotent_and_shows_the_secret_once(tmp_path: Path) -> None:
    cli = Cli(tmp_path, clean_env())
    first = cli.ok("quickstart").out
    secret = re.search(r"^  secret\s+(\S+)$", first, re.MULTILINE)
    assert secret, first
    assert "made signing key" in first and "role Admin trusting admins" in first
    second = cli.ok("quickstart").out
    assert "all in place" in second and secret.group(1) not in second
    key_id = re.search(r"access key\s+(AKIA\w+)", first)
    assert key_id and key_id.group(1) in second  # the same key, reused
    role = cli.json("iam get-role --role-name Admin")["Role"]
    assert role["Trust"] == ["arn:aws:iam::111122223333:group/admins"]
    assert secret.group(1).encode() not in (tmp_path / "data" / "authbridge.db").read_bytes()


def test_scripts_run_execs_quickstart() -> None:
    text = (ROOT / "scripts" / "run").read_text()
    assert 'exec authbridge quickstart "$@"' in text


def _readme_block(after_heading: str) -> str:
    text = README.read_text()
    section = text.split(after_heading, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"no sh block after {after_heading!r}"
    return block.group(1)


def test_readme_iam_block_works_as_written(tmp_path: Path) -> None:
    script = _readme_block("## The IAM store from the command line")
    # The block starts by putting the venv on PATH relative to the clone; here the
    # test's own interpreter directory plays the venv.
    env = clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    script = script.replace('export PATH="$PWD/.venv/bin:$PATH"', "")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"SecretAccessKey"' in proc.stdout
    assert proc.stderr == ""


def test_quickstart_json(tmp_path: Path) -> None:
    cli = Cli(tmp_path, clean_env())
    doc = cli.json("quickstart")
    assert doc["Role"]["Arn"] == "arn:aws:iam::111122223333:role/platform/Admin"
    assert doc["SecretAccessKey"] and len(doc["AccessKeys"]) == 1
    again = cli.json("quickstart")
    assert again["Made"] == [] and "SecretAccessKey" not in again
