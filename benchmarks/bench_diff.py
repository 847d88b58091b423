"""What `rr diff` costs on large traces, beside reading one of them (`rr inspect --no-events`).

    python benchmarks/bench_diff.py            # 1 000 000 events per trace
    python benchmarks/bench_diff.py --quick    # 100 000

Two CBOR traces of N `get-random-u64` events (written with rr's TraceWriter) that differ only in
their last 10 events, so the diff reads both to the end. Each command runs as a whole `python -m rr`
process; the table shows its wall time and peak RSS (the child's ru_maxrss), which must not grow
with N: both traces are streamed, one event of each in memory at a time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rr.trace import ComponentInfo, Event, Header, Outcome, TraceWriter


def write(path: Path, n: int, tail: int) -> None:
    header = Header(rr_version="bench", wasmtime_version="bench", component=ComponentInfo("0" * 64, 0, "bench.wasm"),
                    argv=["bench.wasm"], env=[], dirs=[], start_time=time.time())
    w = TraceWriter(path, overwrite=True)
    w.write_header(header)
    for i in range(n):
        w.write_event(Event("wasi:random/random.get-random-u64", [], i if i < n - 10 else i * tail))
    w.write_outcome(Outcome.exit(0))
    w.close()


def timed(*args: str) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in KiB (this child's own, from wait4) and exit status."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rr", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    n = 100_000 if parser.parse_args().quick else 1_000_000
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a.cbor", Path(d) / "b.cbor"
        write(a, n, 1)
        write(b, n, 2)
        size = os.path.getsize(a)
        print(f"{n} events per trace, {size / 1e6:.1f} MB each")
        print(f"{'command':<36} {'wall s':>8} {'peak RSS MB':>12} {'status':>7}")
        for args in (("inspect", "--no-events", str(a)), ("diff", str(a), str(b))):
            took, rss, status = timed(*args)
            print(f"{'rr ' + args[0] + ' ' + ' '.join(Path(x).name if '/' in x else x for x in args[1:]):<36} "
                  f"{took:>8.2f} {rss / 1024:>12.1f} {status:>7}")


if __name__ == "__main__":
    main()
