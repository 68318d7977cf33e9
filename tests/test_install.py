"""Installs are reproducible: one lock, used by every install, consistent with itself.

Covers:
* pyproject.toml: ``project.license`` is an SPDX string (setuptools deprecates the
  table form, warns on every build and refuses it after 2027-02-18); the build
  backend is pinned exactly;
* uv, the installer, is one version everywhere (scripts/uv-requirements.txt,
  ``[tool.uv] required-version``, the dev extra, uv.lock), and the hashes bootstrap
  installs it with are exactly the lock's;
* every package in uv.lock has an exact version and a sha256 for each of its files;
* the lock matches pyproject.toml (``uv lock --check --offline``), and a changed
  pyproject.toml without a new lock is refused, as ``uv sync --locked`` refuses it;
* every install uses the lock: scripts/bootstrap (``uv sync --locked``), .ci/run
  (through scripts/test, which runs scripts/bootstrap), the Dockerfile (the lock
  exported with ``--locked``, installed with ``--require-hashes``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK: dict[str, Any] = tomllib.loads((ROOT / "uv.lock").read_text())
UV_REQUIREMENTS = (ROOT / "scripts" / "uv-requirements.txt").read_text()
UV = Path(sys.executable).parent / "uv"


def _locked(name: str) -> dict[str, Any]:
    (package,) = [p for p in LOCK["package"] if p["name"] == name]
    return package


def test_license_is_an_spdx_string_and_the_build_backend_is_pinned() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (backend,) = PYPROJECT["build-system"]["requires"]
    assert re.fullmatch(r"setuptools==\d+\.\d+\.\d+", backend), backend


def test_uv_is_one_version_everywhere_with_the_locks_hashes() -> None:
    version = _locked("uv")["version"]
    assert PYPROJECT["tool"]["uv"]["required-version"] == f"=={version}"
    assert f"uv=={version}" in PYPROJECT["project"]["optional-dependencies"]["dev"]
    pinned = re.findall(r"^uv==(\S+)", UV_REQUIREMENTS, re.M)
    assert pinned == [version]
    hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", UV_REQUIREMENTS))
    package = _locked("uv")
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    assert hashes == {f["hash"].removeprefix("sha256:") for f in files}


def test_every_locked_package_is_pinned_with_a_hash_per_file() -> None:
    packages = [p for p in LOCK["package"] if p["name"] != "authbridge"]
    assert len(packages) > 30
    for package in packages:
        assert re.fullmatch(r"[\w.+-]+", package["version"]), package["name"]
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, package["name"]
        for f in files:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", f["hash"]), (package["name"], f)


def test_the_lock_matches_pyproject(tmp_path: Path) -> None:
    proc = _uv_check(ROOT, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_lock_that_no_longer_matches_pyproject_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "uv.lock", project)
    text = (ROOT / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace('    "flask>=3.0",\n', '    "flask>=3.0",\n    "requests>=2.0",\n', 1)
    )
    proc = _uv_check(project, tmp_path)
    assert proc.returncode != 0, proc.stderr  # offline, a new requirement cannot be locked


def _uv_check(project: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # Offline and with an empty cache: the check needs nothing but the two files.
    return subprocess.run(
        [str(UV), "lock", "--check", "--offline", "--project", str(project)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "UV_CACHE_DIR": str(tmp_path / "c")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_install_uses_the_lock() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert "uv sync --quiet --locked --extra dev" in bootstrap
    assert "--require-hashes" in bootstrap and "scripts/uv-requirements.txt" in bootstrap
    assert "pip install -e" not in bootstrap
    assert "scripts/bootstrap" in (ROOT / "scripts" / "test").read_text()
    assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text()
    dockerfile = "\n".join(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")
    )
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert "uv export --quiet --locked --no-emit-project" in dockerfile
    assert dockerfile.count("--require-hashes") == 2  # uv itself, then the lock's packages
    assert "--extra dev" not in dockerfile  # runtime dependencies only
