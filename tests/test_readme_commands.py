"""Every `authbridge …` command the README, docs/ and deploy/README.md show is real.

Each command line in a code block is walked through the real click command
tree: every subcommand must exist and every option it uses must be one that
command accepts. Blocks marked ```sh are also run: the README's by
tests/test_quickstart_and_readme.py (in order, after the tour), those of
docs/ by the tests named in DOCS_RUN_BY. A new ```sh block must be added
there.
"""

from __future__ import annotations

import json
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
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = str(Path(sys.executable).parent)

# (file under docs/, section) -> the test that runs its ```sh blocks.
DOCS_RUN_BY = {
    ("cluster.md", "The TokenReview webhook"): "test_docs_init_block_works_as_written",
    ("reference.md", "The admin API"): "test_docs_admin_api_block_works_as_written",
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
    assert {where.split(" / ")[0] for where, _ in COMMAND_LINES} >= {
        "README.md",
        "mapping.md",
        "reference.md",
        "operations.md",
        "cluster.md",
    }


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lowercased, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_docs_link_only_to_what_the_repository_holds() -> None:
    for doc in DOCS:
        text = doc.read_text()
        # Nothing outside the repository: the design notes the project grew from are not
        # shipped, so no doc may send a reader to them (spelled in parts: this is no link).
        assert "../" + "shared" not in text and "DESIGN" + ".md" not in text, doc
        for target, anchor in re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", text):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve() if target else doc
            assert path.exists(), f"{doc.name}: link to {target}"
            if anchor:
                assert anchor in _anchors(path), f"{doc.name}: no heading for {target}#{anchor}"


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


def test_every_sh_block_of_docs_is_run_by_a_test() -> None:
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for section, lang, _ in _blocks(doc):
            if lang == "sh":
                assert (doc.name, section) in DOCS_RUN_BY, (
                    f"docs/{doc.name} section {section!r} has a ```sh block no test runs"
                )


def _run_block(doc: str, section: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = ROOT / "docs" / doc
    (text,) = [t for s, lang, t in _blocks(path) if s == section and lang == "sh"]
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


def test_docs_admin_api_block_works_as_written(tmp_path: Path) -> None:
    """The curl example, against a real server: its host and CA swapped in, nothing else."""
    from tests.serving import run_cli, start_server

    path = ROOT / "docs" / "reference.md"
    (text,) = [t for s, lang, t in _blocks(path) if s == "The admin API" and lang == "sh"]
    served = start_server(tmp_path / "srv", workers=1)
    live = next(served)
    try:
        admin = "arn:aws:iam::aws:policy/AdministratorAccess"
        run_cli(live.root, f"iam attach-user-policy --user-name alice --policy-arn {admin}")
        script = text.replace("https://authbridge.example", live.url).replace(
            "ca.crt", str(live.ca_file)
        )
        env = clean_env(AKID=live.access_key_id, SECRET=live.secret)
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        served.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    created = json.loads(proc.stdout)["User"]
    assert created["UserName"] == "bob" and created["Path"] == "/team/"


def test_docs_init_block_works_as_written(tmp_path: Path) -> None:
    proc = _run_block("cluster.md", "The TokenReview webhook", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("prod-cp", "stg-cp"):
        assert (tmp_path / "keys" / f"webhook-{name}.kubeconfig").is_file()
    assert "--authentication-token-webhook-config-file=" in proc.stdout
