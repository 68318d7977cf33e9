"""Where the server's CPU goes under load: py-spy on every gunicorn worker, summarised.

``bench/run --profile`` samples each worker with ``py-spy record --format raw
--nonblocking`` (so the workers are never paused) for the length of a phase,
keeps the collapsed stacks in ``bench/out/`` and prints the top frames: *self*
(the frame on top of the stack: where the CPU actually is) and *inclusive*
(the frame anywhere on the stack: what the time is spent under). Idle threads
(waiting in ``select``/``accept``) are not sampled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"\s*\((?P<file>[^():]+?)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    procs: list[subprocess.Popen[bytes]]
    files: list[Path]

    def wait(self, timeout: float) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=10)


def start(pids: list[int], out: Path, name: str, seconds: float, rate: int = 250) -> Recording:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    procs, files = [], []
    for pid in pids:
        path = out / f"{name}-worker{pid}.txt"
        argv = [exe, "record", "--pid", str(pid), "--format", "raw", "--output", str(path)]
        argv += ["--rate", str(rate), "--duration", str(int(seconds + 1)), "--nonblocking"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        files.append(path)
    return Recording(procs, files)


def _frame(raw: str) -> str:
    """``handle (gunicorn/workers/gthread.py:300)`` -> ``handle (gunicorn/workers/gthread.py)``."""
    m = _LINE.search(raw)
    if not m:
        return raw.strip()
    return f"{raw[: m.start()].strip()} ({m.group('file')})"


def summarise(
    files: list[Path], top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, top self frames, top inclusive frames) with shares of all samples."""
    selfs: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame(f) for f in stack.split(";")]
            # The first frame is py-spy's thread label ("process 123:..." / "thread ...").
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            selfs[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    if total == 0:
        return 0, [], []

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, n / total) for f, n in c.most_common(top)]

    return total, share(selfs), share(incl)


def report(title: str, files: list[Path], top: int = 15) -> list[str]:
    total, selfs, incl = summarise(files, top)
    where = files[0].parent if files else "-"
    lines = [f"  profile: {title} ({total} samples over {len(files)} workers; stacks in {where})"]
    if not total:
        return [*lines, "    (no samples: is py-spy allowed to ptrace?)"]
    lines.append("    self (on-CPU leaf frame):")
    lines += [f"      {share:6.1%}  {frame}" for frame, share in selfs]
    lines.append("    inclusive (time spent under the frame):")
    lines += [f"      {share:6.1%}  {frame}" for frame, share in incl]
    return lines
