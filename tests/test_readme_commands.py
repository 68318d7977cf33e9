"""Every `authbridge …` command the README (and deploy/README.md) shows is real.

Each command line in a code block is walked through the real click command
tree: every subcommand must exist and every option it uses must be one that
command accepts. Blocks marked ```sh are also run, by the tests named in
RUN_BY (the tour against quickstart, the IAM block, the init block here);
the set-up block is what .ci/run runs. A new ```sh block must be added there.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from authbridge.cli.main import main
from tests.serving import clean_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md"]
VENV_BIN = str(Path(sys.executable).parent)

# README section -> how its ```sh blocks are run.
RUN_BY = {
    "Set up: two commands": ".ci/run runs scripts/test; test_scripts_run_execs_quickstart",
    "Five-minute tour": "test_readme_tour_works_as_written_against_quickstart",
    "Reference: the IAM store from the command line": "test_readme_iam_block_works_as_written",
    "Wiring a cluster: the TokenReview webhook": "test_readme_init_block_works_as_written",
    "Reference: signing keys": "test_readme_keys_block_works_as_written",
}


def _blocks(path: Path) -> list[tuple[str, str, str]]:
    """(section, language, text) for every fenced block."""
    out = []
    section = ""
    pattern = re.compile(r"^## ([^\n]+)$|^```(\w*)\n(.*?)^```", re.M | re.S)
    for m in pattern.finditer(path.read_text()):
        if m.group(1):
            section = m.group(1).strip()
        else:
            out.append((section, m.group(2), m.group(3)))
    return out


def _command_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        for segment in re.split(r"\||\$\(|\)", line):
            segment = segment.strip()
            if segment.startswith("authbridge "):
                lines.append(segment)
    return lines


def _resolve(tokens: list[str]) -> tuple[click.Command, list[str]]:
    """Walk the click tree; return the command reached and the tokens left."""
    cmd: click.Command = main
    rest = list(tokens)
    while rest:
        tok = rest[0]
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            opt = next(
                (
                    p
                    for p in cmd.params
                    if name in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
                ),
                None,
            )
            assert opt is not None, f"{cmd.name}: no option {name}"
            takes_value = isinstance(opt, click.Option) and not opt.is_flag and "=" not in tok
            rest = rest[2:] if takes_value else rest[1:]
            continue
        if isinstance(cmd, click.Group) and tok in cmd.commands:
            cmd = cmd.commands[tok]
            rest = rest[1:]
            continue
        break
    return cmd, rest


def _options_of(cmd: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in cmd.params:
        names.update(getattr(p, "opts", ()))
        names.update(getattr(p, "secondary_opts", ()))
    return names


def _all_command_lines() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for section, lang, text in _blocks(doc):
            if lang in ("yaml", "json"):
                continue
            out += [(f"{doc.name} / {section}", line) for line in _command_lines(text)]
    return out


COMMAND_LINES = _all_command_lines()


def test_the_readme_shows_commands() -> None:
    assert len(COMMAND_LINES) > 30


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES)
def test_every_command_and_option_exists(where: str, line: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)[1:]
    except ValueError:
        tokens = line.split()[1:]
    # Synopsis notation: [--opt X], A | B, … are not part of the command.
    tokens = [t.strip("[]") for t in tokens if t not in ("[", "]", "…", "...")]
    tokens = [t for t in tokens if t]
    cmd, rest = _resolve([t for t in tokens if not t.startswith("[")])
    assert cmd is not main, f"{where}: {line!r} names no command"
    if isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        raise AssertionError(f"{where}: `{line}`: {cmd.name} has no subcommand {rest[0]}")
    known = _options_of(cmd)
    for tok in rest:
        if tok.startswith("-") and not tok.startswith("---"):
            name = tok.split("=", 1)[0]
            assert name in known, f"{where}: `{line}`: {cmd.name} has no option {name}"


def test_every_sh_block_is_run_by_a_test() -> None:
    for section, lang, _ in _blocks(ROOT / "README.md"):
        if lang == "sh":
            assert section in RUN_BY, f"README section {section!r} has a ```sh block no test runs"


def _run_block(section: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (text,) = [t for s, lang, t in _blocks(ROOT / "README.md") if s == section and lang == "sh"]
    env = clean_env(HOME=str(cwd), PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            text.replace('export PATH="$PWD/.venv/bin:$PATH"\n', ""),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_readme_init_block_works_as_written(tmp_path: Path) -> None:
    proc = _run_block("Wiring a cluster: the TokenReview webhook", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("prod-cp", "stg-cp"):
        assert (tmp_path / "keys" / f"webhook-{name}.kubeconfig").is_file()
    assert "--authentication-token-webhook-config-file=" in proc.stdout


def test_readme_keys_block_works_as_written(tmp_path: Path) -> None:
    proc = _run_block("Reference: signing keys", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pending" in proc.stdout and "retired" in proc.stdout
