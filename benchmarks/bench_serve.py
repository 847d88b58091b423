"""`rr serve` (plain and recording with -t) beside `wasmtime serve`: requests per second and
p50 / p99 latency for a small handler.

    python benchmarks/bench_serve.py [--requests N] [--concurrency C] [--guest serve_c|http_app_py]
                                     [--rounds R] [--baseline COMMIT | --no-baseline]

Each server runs as its own process on a free loopback port (tests/guests.py `Served`); the
client is this process: C threads, each with one keep-alive http.client connection, sending
GET / until N requests have been answered (after 20 warm-up requests that are not counted).
Latency is per request, from send to the last body byte. Target (from the issue): recording
adds at most 1.5x to plain rr serve's latency (p50). With a baseline (default: main before the
serve-trust work, BASELINE below; `git archive` of it, as benchmarks/whole_process.py does) its
`rr serve` and `rr serve -t` run beside this tree's, round by round (R rounds, medians), so the
"before" column is measured under the same load.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import guests  # noqa: E402

RECORD_TARGET = 1.5
WARM_UP = 20
BASELINE = "2ec7554"   # main before rr serve's stop, replay and per-request changes of this round


class ServedIn(guests.Served):
    """`rr serve` of the tree at `cwd` (`python -m rr` there imports that tree's rr)."""

    def __init__(self, cwd: Path, component: Path, *flags: str) -> None:  # noqa: D107 - as Served's
        self.port = guests.free_port()
        cmd = [sys.executable, "-m", "rr", "serve", "--addr", f"127.0.0.1:{self.port}", *flags, str(component)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=guests._clean_env(None), cwd=cwd)
        self._wait_listening()



def load(port: int, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Send `total` GET / with `concurrency` in flight; (seconds, latencies in s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [total]
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] <= 0 or failures:
                    break
                left[0] -= 1
            start = time.perf_counter()
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as e:
                failures.append(str(e))
                break
            took = time.perf_counter() - start
            if response.status != 200 or not body.startswith(b"hello"):
                failures.append(f"status {response.status}")
            with lock:
                latencies.append(took)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"requests failed: {failures[0]}")
    return time.perf_counter() - began, latencies


def measure(name: str, server: guests.Served, total: int, concurrency: int) -> dict[str, float]:
    try:
        load(server.port, WARM_UP, min(concurrency, 4))
        seconds, latencies = load(server.port, total, concurrency)
    finally:
        status, err = server.stop()
    if status not in (0, -2, 130):   # wasmtime serve dies of SIGINT
        raise SystemExit(f"{name} exited {status}: {err[-500:]}")
    latencies.sort()
    return {"rps": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--guest", default="serve_c", choices=["serve_c", "http_app_py"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline", default=BASELINE, help=f"the 'before' commit (default {BASELINE})")
    p.add_argument("--no-baseline", action="store_true")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from whole_process import baseline_tree
    component = guests.c_guest(args.guest)
    wasmtime_flags = ("-S", "cli") if args.guest == "http_app_py" else ()
    before = None if args.no_baseline else baseline_tree(args.baseline)
    runs: dict[str, list[dict[str, float]]] = {}
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "bench.cbor"
        cases = {"wasmtime serve": lambda: guests.Served(component, *wasmtime_flags, wasmtime=True),
                 "rr serve": lambda: ServedIn(REPO, component),
                 "rr serve -t": lambda: ServedIn(REPO, component, "-t", str(trace), "--force")}
        if before is not None:
            cases["rr serve (before)"] = lambda: ServedIn(before, component)
            cases["rr serve -t (before)"] = lambda: ServedIn(before, component, "-t", str(trace), "--force")
        for _ in range(args.rounds):   # every case once a round: the machine's load hits all alike
            for name, start in cases.items():
                runs.setdefault(name, []).append(measure(name, start(), args.requests, args.concurrency))
                if name == "rr serve -t":
                    size = trace.stat().st_size
    rows = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for name, rs in runs.items()}
    print(f"{args.guest}: {args.requests} x GET / with {args.concurrency} in flight, keep-alive, loopback; "
          f"median of {args.rounds} rounds" + (f"; before = {args.baseline}" if before is not None else ""))
    print(f"{'':22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s before':>13} {'vs wasmtime':>12}")
    wt = rows["wasmtime serve"]["rps"]
    for name in ("wasmtime serve", "rr serve", "rr serve -t"):
        row = rows[name]
        old = rows.get(f"{name} (before)")
        shown = f"{old['rps']:13.0f}" if old else f"{'':>13}"
        print(f"{name:22} {row['rps']:8.0f} {row['p50']:8.2f} {row['p99']:8.2f} {shown} {row['rps'] / wt:11.2f}x")
    ratio = rows["rr serve -t"]["p50"] / rows["rr serve"]["p50"]
    verdict = "meets" if ratio <= RECORD_TARGET else "misses"
    print(f"recording / plain rr serve p50: {ratio:.2f}x ({verdict} the <= {RECORD_TARGET}x target); "
          f"trace {size / (args.requests + WARM_UP):.0f} bytes per request")


if __name__ == "__main__":
    main()
