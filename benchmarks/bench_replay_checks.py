"""What replay's value checks cost per host call, isolated from everything else.

    python benchmarks/bench_replay_checks.py

A replayed host call first has its recorded result checked by the host module's contract
check (tap's `check(args, result)`), then what the function returns against its WIT
result type (`Replayer.guard` + rr/typecheck.py). Both are pure Python on values already
in memory, so they are timed directly (best of 5 x 200 000 calls) with the checks built
from the real component types of benchmarks/guests/hostcall_loop.wat: the same calls
`bench_run.py` times end to end. `rr run` and `rr record` do not run them.
"""

from __future__ import annotations

import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

from rr import abi, runner
from rr.host import clocks, io, random
from rr.tap import Replayer

HERE = Path(__file__).resolve().parent
N = 200_000


def per_call(fn: Callable[[], Any]) -> float:
    return min(timeit.repeat(fn, number=N, repeat=5)) / N * 1e6


def main() -> None:
    wasm = Path(tempfile.mkdtemp()) / "hostcall_loop.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((HERE / "guests" / "hostcall_loop.wat").read_text()))
    program = runner.load(wasm, fast_path=False)
    funcs = {item: it.ty for ext in program.imports.values() if isinstance(ext.ty, wc.ComponentInstanceType)
             for item, it in ext.ty.exports(program.engine).items() if isinstance(it.ty, wc.FuncType)}
    replayer = Replayer(iter([]))
    print(f"{'check':52s} {'us/call':>8s}  type")
    for item, value in [("get-random-u64", 12345678901234), ("now", (1796116015, 988563492)),
                        ("[method]pollable.ready", True), ("[method]output-stream.check-write", 1 << 20)]:
        ok, err = abi.result_checks(funcs[item])

        def impl(*_args: Any, _v: Any = value) -> Any:
            return _v
        cost = per_call(replayer.guard(item, impl, ok, err)) - per_call(impl)
        print(f"{item + ': guard + WIT check':52s} {cost:8.3f}  {ok[0]}")
    for label, check, args, result in [
            ("get-random-bytes(16): contract", random._exactly_n_bytes, [16], bytes(16)),
            ("wall-clock.now: datetime contract", clocks._datetime, [], [1796116015, 988563492]),
            ("blocking-read(65536): contract", io._at_most_n_bytes, ["stdin", 65536], bytes(4096))]:
        print(f"{label:52s} {per_call(lambda: check(args, result)):8.3f}")


if __name__ == "__main__":
    main()
