"""The fast byte path: MB/s through stdout and stdin, plain vs fast vs wasmtime's Rust WASI.

    python benchmarks/bench_fast_path.py [--mib N] [--repeat K]

In-process, component loaded (and compiled, cached) once, the run timed alone:
  stdout  tests/guests/bin/bigout.wasm N  (64 KiB writes; the preview1 adapter cuts them to 4 KiB)
  stdin   tests/guests/bin/bigin.wasm with N MiB on stdin (read from a file)
for rr --no-fast-path, rr (fast path) and wasmtime-py's `linker.add_wasip2()`.
Then the time to compose the 18 MB componentize-py guest fs_ops_py.wasm: cold, and from the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from rr import runner
from rr.fastpath.cached import compose_cached
from rr.host.context import Sandbox

BIN = Path(__file__).resolve().parent.parent / "tests" / "guests" / "bin"


def rr_seconds(guest: str, argv: list[str], stdin: Path | None, fast: bool) -> float:
    program = runner.load(BIN / f"{guest}.wasm", fast_path=fast)
    assert program.fast_path == fast, program.fast_path_note
    with open(os.devnull, "wb") as sink, open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        outcome = runner.run(program, Sandbox(argv=argv, stdin=source, stdout=sink))
        elapsed = time.perf_counter() - start
    assert outcome.status == 0, outcome
    return elapsed


def rust_seconds(guest: str, argv: list[str], stdin: Path | None) -> float:
    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(BIN / f"{guest}.wasm"))
    linker = wc.Linker(engine)
    linker.add_wasip2()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    wasi.stdout_file = os.devnull
    wasi.stdin_file = str(stdin or os.devnull)
    store.set_wasi(wasi)
    start = time.perf_counter()
    instance = linker.instantiate(store, component)
    run_iface = next(n for n in component.type.exports(engine) if n.startswith("wasi:cli/run"))
    func = instance.get_func(store, instance.get_export_index(store, "run", instance.get_export_index(store, run_iface)))
    func(store)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    mib = args.mib
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "in.bin"
        data.write_bytes(os.urandom(mib << 20))
        cases = {"stdout": ("bigout", ["bigout", str(mib)], None), "stdin": ("bigin", ["bigin"], data)}
        for label, (guest, argv, stdin) in cases.items():
            rows = {
                "rr plain": lambda: rr_seconds(guest, argv, stdin, fast=False),
                "rr fast": lambda: rr_seconds(guest, argv, stdin, fast=True),
                "wasmtime Rust WASI": lambda: rust_seconds(guest, argv, stdin),
            }
            for name, measure in rows.items():
                best = statistics.median(measure() for _ in range(args.repeat))
                print(f"{label:6} {mib} MiB  {name:20} {mib * 1.048576 / best:8.1f} MB/s  ({best:.3f} s)")
    guest = (BIN / "fs_ops_py.wasm").read_bytes()
    sha = hashlib.sha256(guest).hexdigest()
    start = time.perf_counter()
    cold = compose_cached(guest, sha, use_cache=False)
    composed = time.perf_counter() - start
    compose_cached(guest, sha)  # fills the cache
    start = time.perf_counter()
    warm = compose_cached(guest, sha)
    cached = time.perf_counter() - start
    assert cold.wasm is not None and warm.cached, (cold.note, warm.note)
    print(f"compose fs_ops_py.wasm ({len(guest) / 1e6:.1f} MB): {composed * 1000:.0f} ms cold, "
          f"{cached * 1000:.1f} ms cached")


if __name__ == "__main__":
    sys.exit(main())
