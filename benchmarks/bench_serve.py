"""`rr serve` (plain and recording with -t) beside `wasmtime serve`: requests per second and
p50 / p99 latency for a small handler.

    python benchmarks/bench_serve.py [--requests N] [--concurrency C] [--guest serve_c|http_app_py]

Each server runs as its own process on a free loopback port (tests/guests.py `Served`); the
client is this process: C threads, each with one keep-alive http.client connection, sending
GET / until N requests have been answered (after 20 warm-up requests that are not counted).
Latency is per request, from send to the last body byte. Target (from the issue): recording
adds at most 1.5x to plain rr serve's latency (p50).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
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
    args = p.parse_args()
    component = guests.c_guest(args.guest)
    wasmtime_flags = ("-S", "cli") if args.guest == "http_app_py" else ()
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows["wasmtime serve"] = measure("wasmtime serve", guests.Served(component, *wasmtime_flags, wasmtime=True),
                                         args.requests, args.concurrency)
        rows["rr serve"] = measure("rr serve", guests.Served(component), args.requests, args.concurrency)
        trace = Path(tmp) / "bench.cbor"
        rows["rr serve -t"] = measure("rr serve -t", guests.Served(component, "-t", str(trace)),
                                      args.requests, args.concurrency)
        size = trace.stat().st_size
    print(f"{args.guest}: {args.requests} x GET / with {args.concurrency} in flight, keep-alive, loopback")
    print(f"{'':16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in rows.items():
        print(f"{name:16} {row['rps']:8.0f} {row['p50']:8.2f} {row['p99']:8.2f}")
    ratio = rows["rr serve -t"]["p50"] / rows["rr serve"]["p50"]
    verdict = "meets" if ratio <= RECORD_TARGET else "misses"
    print(f"recording / plain rr serve p50: {ratio:.2f}x ({verdict} the <= {RECORD_TARGET}x target); "
          f"trace {size / (args.requests + WARM_UP):.0f} bytes per request")


if __name__ == "__main__":
    main()
