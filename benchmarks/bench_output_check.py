"""Output checks: what digesting the guest's stdout costs a recording and a replay.

    python benchmarks/bench_output_check.py [--mib N] [--repeat K]

In-process, tests/guests/bin/bigout.wasm N (N MiB to stdout, to /dev/null), fast path, compiled
once: `rr run` (no trace, no digest) against `rr record` (digests: sha256 + 1 KiB chunk digests),
`rr record --record-output` (the bytes too) and `rr replay` of the digest trace (digests computed
again and compared, the first 16 MiB kept for the report). Plus the digest alone on N MiB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rr import runner, session
from rr.host.context import Sandbox
from rr.output import StreamDigest

BIN = Path(__file__).resolve().parent.parent / "tests" / "guests" / "bin"


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    program = runner.load(BIN / "bigout.wasm")
    argv = ["bigout.wasm", str(a.mib)]
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as null:
        trace = Path(tmp, "t.cbor")
        for _ in range(a.repeat):
            rows.setdefault("run (no trace)", []).append(
                timed(lambda: runner.run(program, Sandbox(argv=argv, stdout=null))))
            rows.setdefault("record (digests)", []).append(
                timed(lambda: session.record(program, Sandbox(argv=argv, stdout=null), trace, overwrite=True)))
            rows.setdefault("replay (digests compared)", []).append(
                timed(lambda: session.replay(program, str(trace), null, null)))
            rows.setdefault("record --record-output", []).append(
                timed(lambda: session.record(program, Sandbox(argv=argv, stdout=null), Path(tmp, "o.cbor"),
                                             overwrite=True, record_output=True)))
            data = bytes(range(256)) * (a.mib * 4096)

            def digest_only() -> None:
                d = StreamDigest()
                for at in range(0, len(data), 4096):   # the preview1 adapter's 4 KiB writes
                    d.update(data[at:at + 4096])
                d.summary()
            rows.setdefault("digest alone (4 KiB writes)", []).append(timed(digest_only))
    print(f"bigout {a.mib} MiB to /dev/null, median of {a.repeat} (python {sys.version.split()[0]})")
    for name, times in rows.items():
        t = statistics.median(times)
        print(f"  {name:<30} {t * 1000:8.1f} ms  {a.mib / t:7.1f} MiB/s")


if __name__ == "__main__":
    main()
