"""What recording and replaying cost: `rr run` vs `rr record` vs `rr replay`, side by side.

    python benchmarks/bench_record.py [--quick] [--repeat K] [--events N] [--path both|native|python]

Everything is measured on rr's native host-call path and on its Python path (RR_NATIVE=0), in
that order, and printed side by side (one table per path).

1. Wall time of run / record / replay for four guests, measured twice: in-process through the
   library (rr.runner.run, rr.session.record/replay; the component is loaded once, stdout goes
   to /dev/null) and as whole `python -m rr ...` subprocesses (interpreter start, imports and
   the compiled-component cache included). Median of K rounds; each round runs the three modes
   back to back, so drift on a shared machine hits them alike. Targets: record <= 1.20 x run,
   replay <= record.
     random_heavy  benchmarks/guests/random_heavy.wat: N get-random-u64 + N get-random-bytes(16),
                   nothing but recorded host calls (the worst case for the tap)
     clock         tests/guests/bin/clock.wasm 0 (C: a few clock readings)
     echo_stdin    tests/guests/bin/echo_stdin.wasm with 10 MiB of stdin (all of it recorded)
     bigout        tests/guests/bin/bigout.wasm 10 (10 MiB of stdout, nothing to record)
2. Trace size of the random_heavy recording: CBOR vs JSON Lines, plain and gzipped (the same
   events, re-encoded with rr.trace.convert). Target: CBOR <= 60% of JSON.
3. The tap's cost per event, recording and replaying: (mode - run) / events for random_heavy.

Before timing, each guest is recorded and replayed once with its stdout captured: replay must
print exactly what the recording printed, or the benchmark stops.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from rr import runner, session
from rr.cache import wasmtime_version
from rr.host.context import Sandbox
from rr.trace import convert, open_trace

ROOT = Path(__file__).resolve().parent.parent
C_GUESTS = ROOT / "tests" / "guests" / "bin"
MODES = ("run", "record", "replay")
PATHS = {"native": "1", "python": "0"}   # RR_NATIVE for each of rr's host-call paths
RECORD_OVERHEAD_TARGET = 1.20
CBOR_SIZE_TARGET = 0.60


@dataclass
class Case:
    name: str
    wasm: Path
    args: list[str]
    stdin: Path | None = None   # file fed as the guest's stdin


@dataclass
class Timings:
    seconds: dict[str, list[float]]

    def median(self, mode: str) -> float:
        return statistics.median(self.seconds[mode])


def build_random_heavy(out_dir: Path) -> Path:
    wat = (Path(__file__).parent / "guests" / "random_heavy.wat").read_text()
    path = out_dir / "random_heavy.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat))
    return path


def make_cases(work: Path, events: int, mib: int) -> list[Case]:
    stdin = work / "stdin.bin"
    stdin.write_bytes(os.urandom(mib << 20))
    half = str(events // 2)
    return [
        Case("random_heavy", build_random_heavy(work), [half, half]),
        Case("clock", C_GUESTS / "clock.wasm", ["0"]),
        Case(f"echo_stdin {mib} MiB", C_GUESTS / "echo_stdin.wasm", [], stdin),
        Case(f"bigout {mib} MiB", C_GUESTS / "bigout.wasm", [str(mib)]),
    ]


# ------------------------------------------------------------------ in-process (the library)

def _sandbox(case: Case, stdin: io.BufferedReader | None, out: io.RawIOBase | io.BytesIO) -> Sandbox:
    return Sandbox(argv=[case.wasm.name, *case.args], stdin=stdin, stdout=out, stderr=out)


def run_in_process(program: runner.Program, case: Case, mode: str, trace: Path,
                   out: io.RawIOBase | io.BytesIO) -> int:
    """One run in `mode` with stdout/stderr to `out`; returns the number of recorded events."""
    stdin = open(case.stdin, "rb") if case.stdin else None
    try:
        if mode == "run":
            outcome = runner.run(program, _sandbox(case, stdin, out))
            events = 0
        elif mode == "record":
            rec = session.record(program, _sandbox(case, stdin, out), trace, overwrite=True)
            outcome, events = rec.outcome, rec.events
        else:
            rep = session.replay(program, str(trace), out, out)
            outcome, events = rep.outcome, rep.events
    finally:
        if stdin:
            stdin.close()
    if (outcome.kind, outcome.status) != ("exit", 0):
        raise SystemExit(f"{case.name}: {mode} ended with {outcome}")
    return events


def check_replay_matches(program: runner.Program, case: Case, trace: Path) -> int:
    """Record and replay once with stdout captured; stop unless replay printed the same bytes."""
    recorded, replayed = io.BytesIO(), io.BytesIO()
    events = run_in_process(program, case, "record", trace, recorded)
    run_in_process(program, case, "replay", trace, replayed)
    if recorded.getvalue() != replayed.getvalue():
        raise SystemExit(f"{case.name}: replay printed something else than the recording")
    return events


def time_in_process(case: Case, trace: Path, repeat: int) -> tuple[Timings, int]:
    program = runner.load(case.wasm)
    events = check_replay_matches(program, case, trace)   # also warms every code path up
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    with open(os.devnull, "wb") as devnull:
        for _ in range(repeat):
            for mode in MODES:
                start = time.perf_counter()
                run_in_process(program, case, mode, trace, devnull)
                seconds[mode].append(time.perf_counter() - start)
    return Timings(seconds), events


# ------------------------------------------------------------------ CLI subprocesses

def cli_command(case: Case, mode: str, trace: Path) -> list[str]:
    rr = [sys.executable, "-m", "rr"]
    if mode == "run":
        return [*rr, "run", str(case.wasm), "--", *case.args]
    if mode == "record":
        return [*rr, "record", str(case.wasm), "-t", str(trace), "--force", "--", *case.args]
    return [*rr, "replay", str(case.wasm), str(trace)]


CRASH_RETRIES = 2
crashes: list[str] = []   # subprocesses killed by a signal, reported after the tables


def run_cli_once(case: Case, mode: str, trace: Path) -> float:
    """Seconds for one `rr <mode>` subprocess. A run killed by a signal is noted in `crashes` and
    retried (at most CRASH_RETRIES times): one rare crash should not hide every other number."""
    for _ in range(1 + CRASH_RETRIES):
        stdin = open(case.stdin, "rb") if case.stdin else subprocess.DEVNULL
        try:
            start = time.perf_counter()
            done = subprocess.run(cli_command(case, mode, trace), stdin=stdin,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
            seconds = time.perf_counter() - start
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()
        if done.returncode == 0:
            return seconds
        stderr = done.stderr.decode(errors="replace").strip()
        if done.returncode > 0:
            raise SystemExit(f"{case.name}: `rr {mode}` exited {done.returncode}: {stderr}")
        crashes.append(f"{case.name}: `rr {mode}` killed by signal {-done.returncode} {stderr[-200:]}")
    raise SystemExit(f"{case.name}: `rr {mode}` crashed {1 + CRASH_RETRIES} times:\n" + "\n".join(crashes))


def time_cli(case: Case, trace: Path, repeat: int) -> Timings:
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(repeat):
        for mode in MODES:
            seconds[mode].append(run_cli_once(case, mode, trace))
    return Timings(seconds)


# ------------------------------------------------------------------ report

def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def overhead_row(name: str, t: Timings) -> str:
    run, rec, rep = (t.median(m) for m in MODES)
    return (f"  {name:<26} {run:8.3f} {rec:8.3f} {rep:8.3f}   {rec / run:5.2f} "
            f"{verdict(rec <= RECORD_OVERHEAD_TARGET * run):>4}   {rep / rec:5.2f} {verdict(rep <= rec):>4}")


def print_overhead(results: list[tuple[Case, int, Timings, Timings]], repeat: int) -> None:
    print(f"\n1. Wall time, seconds (median of {repeat}); target record/run <= "
          f"{RECORD_OVERHEAD_TARGET:.2f}, replay/record <= 1.00")
    header = (f"  {'guest':<26} {'run':>8} {'record':>8} {'replay':>8}   {'rec/run':>10}   {'rep/rec':>10}")
    for title, column in (("in-process (library)", 0), ("CLI subprocess (python -m rr)", 1)):
        print(f"\n  {title}")
        print(header)
        for case, events, *timings in results:
            print(overhead_row(f"{case.name} ({events} ev)", timings[column]))


def print_sizes(trace: Path, work: Path) -> None:
    with open_trace(trace) as reader:
        events = sum(1 for _ in reader)
    variants = {}
    for name in ("trace.cbor", "trace.jsonl", "trace.cbor.gz", "trace.jsonl.gz"):
        target = work / name
        if target != trace:
            convert(trace, target, overwrite=True)
        variants[name] = target.stat().st_size
    json_size = variants["trace.jsonl"]
    print(f"\n2. Trace size, random_heavy ({events} events); target CBOR <= "
          f"{CBOR_SIZE_TARGET:.0%} of JSON")
    print(f"  {'encoding':<16} {'bytes':>12} {'bytes/event':>12} {'vs JSON':>8}")
    for name, size in variants.items():
        print(f"  {name.removeprefix('trace.'):<16} {size:>12} {size / events:>12.1f} {size / json_size:>8.0%}")
    cbor = variants["trace.cbor"] / json_size
    print(f"  CBOR/JSON = {cbor:.0%}: {verdict(cbor <= CBOR_SIZE_TARGET)}")


def print_per_event(events: int, in_proc: Timings, cli: Timings) -> None:
    print(f"\n3. Tap cost per event, random_heavy ({events} events), microseconds")
    print(f"  {'measured':<22} {'run/call':>9} {'record':>9} {'replay':>9}   (mode - run) / events")
    for title, t in (("in-process", in_proc), ("CLI subprocess", cli)):
        run = t.median("run")
        per = [1e6 * (t.median(m) - run) / events for m in ("record", "replay")]
        print(f"  {title:<22} {1e6 * run / events:9.2f} {per[0]:9.2f} {per[1]:9.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, 3 rounds (a smoke run)")
    p.add_argument("--repeat", type=int, help="rounds per measurement (default 5, --quick 3)")
    p.add_argument("--path", choices=["both", "native", "python"], default="both",
                   help="rr's host-call path(s) to time (default both: native, then RR_NATIVE=0)")
    p.add_argument("--events", type=int,
                   help="random_heavy host calls (default 200000, --quick 10000)")
    args = p.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    events = args.events or (10_000 if args.quick else 200_000)
    mib = 1 if args.quick else 10
    print(f"rr bench_record: python {sys.version.split()[0]}, wasmtime {wasmtime_version()}, "
          f"{os.cpu_count()} CPUs, {repeat} rounds")

    paths = {"native": "1", "python": "0"} if args.path == "both" else {args.path: PATHS[args.path]}
    old = os.environ.get("RR_NATIVE")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        work = Path(tmp)
        cases = make_cases(work, events, mib)
        per_path = {}
        try:
            for path, flag in paths.items():
                os.environ["RR_NATIVE"] = flag   # read by each run in this process and by each subprocess
                results = []
                for case in cases:
                    trace = work / f"{case.wasm.stem}.cbor"
                    print(f"  timing {case.name} ({path} host calls) ...", file=sys.stderr, flush=True)
                    in_proc, recorded = time_in_process(case, trace, repeat)
                    results.append((case, recorded, in_proc, time_cli(case, trace, repeat)))
                per_path[path] = results
        finally:
            if old is None:
                os.environ.pop("RR_NATIVE", None)
            else:
                os.environ["RR_NATIVE"] = old
        for path, results in per_path.items():
            print(f"\n=== {path} host-call path (RR_NATIVE={PATHS[path]}) ===")
            print_overhead(results, repeat)
        heavy_case = cases[0]
        heavy_trace = work / "trace.cbor"
        with open(os.devnull, "wb") as devnull:
            run_in_process(runner.load(heavy_case.wasm), heavy_case, "record", heavy_trace, devnull)
        print_sizes(heavy_trace, work)
        for path, results in per_path.items():
            _, heavy_events, heavy_in, heavy_cli = results[0]
            print(f"\n({path} host-call path)", end="")
            print_per_event(heavy_events, heavy_in, heavy_cli)
    for note in crashes:
        print(f"\nCRASH (retried): {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
