"""A corpus of recorded traces replayed as tests: `pytest --rr-traces DIR`, with pytest-xdist
`-n 2` against `-n 0` (one process).

    python benchmarks/bench_corpus.py            # 200 traces, 3 rounds
    python benchmarks/bench_corpus.py --quick    # 40 traces, 1 round

The corpus is made first through the Python API in a temporary directory: traces of five C
guests in turn (random, clock, args_env, fs_ops on a granted directory, http_get from a loopback
server that is gone by the time they replay, so each of those replays starts a proxy), each
component beside its traces. Each round runs both modes back to back as whole `python -m pytest` processes, on
the corpus and on a corpus of one trace (what starting the session and its workers costs), and
keeps the wall times; the table shows the medians and what each further trace costs. Every run
must pass every trace, or the benchmark stops.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import guests  # noqa: E402
from httpservers import TestServer  # noqa: E402

import rr  # noqa: E402


def make_corpus(where: Path, n: int) -> None:
    data = where / "data"
    data.mkdir()
    (data / "in.txt").write_text("hello\n")
    kinds = ["random", "clock", "args_env", "fs_ops", "http_get"]
    for name in kinds:
        shutil.copy(guests.c_guest(name), where / f"{name}.wasm")
    with TestServer() as server:
        for i in range(n):
            record_one(where, kinds[i % len(kinds)], i, data, server)


def record_one(where: Path, name: str, i: int, data: Path, server: TestServer) -> None:
    wasm, trace = where / f"{name}.wasm", where / f"{i:03d}-{name}.cbor"
    if name == "http_get":
        url = server.url(f"/plain?case={i}")
        got = rr.record(wasm, trace, [url], allow_http=[url.split("/")[2]])
    elif name == "clock":
        got = rr.record(wasm, trace, ["0"])
    elif name == "args_env":
        got = rr.record(wasm, trace, [f"case-{i}"], env={"CASE": str(i)})
    elif name == "fs_ops":
        work = where / f"work-{i}"
        shutil.copytree(data, work)
        got = rr.record(wasm, trace, ["/data"], dirs_rw={work: "/data"})
        shutil.rmtree(work)
    else:
        got = rr.record(wasm, trace)
    if got.exit_status != 0:
        raise SystemExit(f"recording {trace.name} failed: {got}")


def replay_corpus(where: Path, workers: int, n: int) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rr-traces", str(where),
               "-n", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=1800, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0 or f"{n} passed" not in done.stdout:
        raise SystemExit(f"-n {workers}: not every trace passed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    opts = p.parse_args()
    n, rounds = (40, 1) if opts.quick else (200, 3)
    with tempfile.TemporaryDirectory(prefix="rr-corpus-") as tmp:
        where = Path(tmp) / "corpus"
        where.mkdir()
        start = time.perf_counter()
        make_corpus(where, n)
        print(f"corpus: {n} traces of 5 guests recorded in {time.perf_counter() - start:.1f} s")
        one = Path(tmp) / "one"
        one.mkdir()
        for name in ("000-random.cbor", "random.wasm"):
            shutil.copy(where / name, one / name)
        times: dict[tuple[int, int], list[float]] = {(w, k): [] for w in (0, 2) for k in (1, n)}
        for _ in range(rounds):
            for workers in (0, 2):
                times[workers, 1].append(replay_corpus(one, workers, 1))
                times[workers, n].append(replay_corpus(where, workers, n))
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"\n| pytest --rr-traces, {rounds} rounds | {n} traces | 1 trace (start-up) | each further trace |")
    print("|---|---|---|---|")
    for workers, label in ((0, "-n 0 (one process)"), (2, "-n 2 (two xdist workers)")):
        further = (median[workers, n] - median[workers, 1]) / (n - 1)
        print(f"| {label} | {median[workers, n]:.2f} s | {median[workers, 1]:.2f} s | {further * 1000:.1f} ms |")
    print(f"\n-n 0 / -n 2: {median[0, n] / median[2, n]:.2f}x for the whole corpus, "
          f"{(median[0, n] - median[0, 1]) / (median[2, n] - median[2, 1]):.2f}x for the traces past start-up")


if __name__ == "__main__":
    main()
