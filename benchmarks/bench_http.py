"""HTTP through rr: the host's own requests (`rr run`) vs the embedded proxy (`rr record`,
`rr replay`) vs the wasmtime CLI, side by side.

    python benchmarks/bench_http.py [--quick] [--rounds K] [--requests N] [--mib M]
                                    [--whole-only | --requests-only | --body-only]

The upstream is tests/httpservers.py's TestServer on 127.0.0.1, in a subprocess of its own
(so it does not share rr's GIL). rr's modes run in this process (rr.runner.run,
rr.session.record / replay; component loaded once; run / record / replay back to back in each
round, median of K), on the plain and the fast byte path (cells read "plain | fast").
Replay plays the trace the same round's record wrote; every guest is first recorded and
replayed once with its output compared.

  one GET        http_get URL/plain  minus  http_get with no arguments (usage, exit 1: same
                 component, link, instantiate and, for record/replay, the trace; the proxy
                 starts at the first request, so for record/replay this includes its start)
  N in one run   http_concurrent with N copies of URL/plain minus it with one copy, / (N-1):
                 the cost each extra request adds (they are in flight together)
  10 MiB body    http_get URL/bytes?n=SIZE --summary minus the same with n=0: MB/s into the guest;
                 record's and replay's as a share of rr run's; the pieces a recording of it holds
  proxy start    record (or replay) of the usage run minus `rr run` of it (no request: no
                 proxy started, since it starts on demand); and whole
                 `python -m rr record` vs `python -m rr run` of one GET (mitmproxy's import too);
                 and the proxy's imports + start + stop alone in a fresh interpreter (PROXY_ALONE)
Targets (from the issue): record <= 2x direct per request, replay <= direct;
>= 50 MB/s for the body while recording.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import whole_process as wp
from inprocess_modes import (MODES, REPO, MiB, cell, check_replay, guests, load_paths, median_modes, print_table,
                             wasmtime_output, wasmtime_seconds)

RECORD_RATIO_TARGET = 2.0
RECORD_MBS_TARGET = 50.0

SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
import httpservers
# socketserver listens with a backlog of 5: the proxy's burst of upstream connects for 50
# requests in flight overflows it and the kernel drops SYNs (a 1 s retransmit, ~20-40 ms
# per request in the figures). Servers people run listen with 128 or more.
httpservers._Server.request_queue_size = 128
server = httpservers.TestServer().start()
print(server.port, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
"""


@contextmanager
def upstream() -> Iterator[str]:
    """A loopback TestServer in its own process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO / "tests")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def modes_of(wasm: Path, argv: list[str], work: Path, rounds: int, expect: int = 0) -> dict[str, dict[str, float]]:
    """{mode: {path: median seconds}} for `argv`, after checking replay against record."""
    result: dict[str, dict[str, float]] = {m: {} for m in MODES}
    for path_name, program in load_paths(wasm).items():
        trace = work / f"{wasm.stem}-{path_name}.cbor"
        out = check_replay(program, argv, trace, expect=expect)
        if expect == 0 and b"status 200" not in out:
            raise SystemExit(f"{' '.join(argv)}: printed {out[:200]!r}")
        for mode, seconds in median_modes(program, argv, trace, rounds, expect=expect).items():
            result[mode][path_name] = seconds
    return result


def minus(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], scale: float = 1.0) -> dict[str, dict[str, float]]:
    return {m: {p: (a[m][p] - b[m][p]) * scale for p in a[m]} for m in a}


def cli_rr_seconds(mode: str, wasm: Path, url: str, trace: Path, rounds: int) -> float:
    """Median wall seconds of a whole `python -m rr run|record` subprocess of one GET."""
    cmd = [sys.executable, "-m", "rr", mode, "--allow-http", "127.0.0.1", str(wasm)]
    cmd += ["-t", str(trace), "--force", "--", url] if mode == "record" else ["--", url]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"rr {mode}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
    return statistics.median(times)


# A fresh interpreter with what a recording has loaded before its first request, then (unless
# "none") the proxy started and stopped: minus "none", the proxy's own fixed cost per process.
PROXY_ALONE = """
import sys
import rr.runner, rr.session, rr.host.http.outgoing, rr.proxy
if sys.argv[1] != "none":
    rr.proxy.EmbeddedProxy(sys.argv[1], on_flow=lambda record: None).start().stop()
"""
WHOLE_BODY_X = 1.5        # record / replay of the body GET <= 1.5x rr run of it
MEMORY_ABOVE_RUN_MB = 200  # record / replay of a big body: peak RSS above rr run's


def whole_processes(base: str, rounds: int, n: int, mib: int, big_mib: int, work: Path) -> list[list[str]]:
    """Rows of whole `python -m rr` processes, this tree vs the baseline commit vs the wasmtime CLI
    (start-up, mitmproxy's import and the proxy start included, as a user sees them)."""
    get, concurrent = str(guests.c_guest("http_get")), str(guests.c_guest("http_concurrent"))
    trees = {"now": wp.REPO, "before": wp.baseline_tree()}
    allow = ["--allow-http", "127.0.0.1"]

    def modes(name: str, tree: Path | None, tag: str, wasm: str, args: list[str],
              expect: int) -> dict[str, wp.Case | None]:
        trace = str(work / f"whole-{tag}-{name}.cbor")
        return {"run": wp.rr(tree, "run", *allow, wasm, "--", *args, expect=expect),
                "record": wp.rr(tree, "record", *allow, wasm, "-t", trace, "--force", "--", *args, expect=expect),
                "replay": wp.rr(tree, "replay", wasm, trace, expect=expect)}

    def measure(tag: str, wasm: str, args: list[str], k: int, expect: int = 0) -> dict[str, dict[str, wp.Case | None]]:
        cases = {name: modes(name, tree, tag, wasm, args, expect) for name, tree in trees.items()}
        wp.interleaved([c for m in cases.values() for c in m.values()], k)
        return cases

    print("  whole processes: the usage run (no request) ...", file=sys.stderr, flush=True)
    usage = measure("usage", get, [], rounds, expect=1)
    cli_usage = wp.wasmtime("-S", "http", get, expect=1)
    wp.interleaved([cli_usage], rounds)
    print("  whole processes: the proxy's imports and start alone ...", file=sys.stderr, flush=True)
    alone = {name: {mode: wp.python(tree, PROXY_ALONE, mode) for mode in ("none", "record", "replay")}
             for name, tree in trees.items()}
    wp.interleaved([c for m in alone.values() for c in m.values()], rounds)
    print(f"  whole processes: a {mib} MiB GET ...", file=sys.stderr, flush=True)
    body = measure("body", get, [f"{base}/bytes?n={mib * MiB}", "--summary"], rounds)
    cli_body = wp.wasmtime("-S", "http", get, f"{base}/bytes?n={mib * MiB}", "--summary")
    wp.interleaved([cli_body], rounds)
    print(f"  whole processes: {n} GETs in flight ...", file=sys.stderr, flush=True)
    many = measure("many", concurrent, [f"{base}/plain"] * n, rounds)
    one = measure("one", concurrent, [f"{base}/plain"], rounds)
    print(f"  whole processes: peak memory of a {big_mib} MiB body ...", file=sys.stderr, flush=True)
    big = measure("big", get, [f"{base}/bytes?n={big_mib * MiB}", "--summary"], 1)
    # The same body without a content-length (chunked): streamed once it passes the threshold.
    big_chunked = measure("bigc", get, [f"{base}/chunked-bytes?n={big_mib * MiB}", "--summary"], 1)

    def per_request(name: str, mode: str) -> float | None:
        a, b = many[name][mode], one[name][mode]
        return None if a is None or b is None else (a.median - b.median) / (n - 1) * 1e3

    def both(fmt: str, value: "Callable[[str], float | None]") -> str:
        now, old = value("now"), value("before")
        return f"{fmt.format(now)} (before {'-' if old is None else fmt.format(old)})"

    def secs(cases: dict[str, dict[str, wp.Case | None]], mode: str) -> "Callable[[str], float | None]":
        return lambda name: None if cases[name][mode] is None else cases[name][mode].median * 1e3  # type: ignore[union-attr]

    def above_run(name: str, mode: str, cases: dict[str, dict[str, wp.Case | None]] = big) -> float | None:
        c, r = cases[name][mode], cases[name]["run"]
        return None if c is None or r is None else c.peak_mb - r.peak_mb

    def memory_row(what: str, cases: dict[str, dict[str, wp.Case | None]]) -> list[str]:
        over = {m: above_run("now", m, cases) or 0.0 for m in ("record", "replay")}
        return [f"{big_mib} MiB {what}, peak RSS, MB",
                *(both("{:.0f}", lambda name, m=m: cases[name][m].peak_mb  # type: ignore[union-attr]
                       if cases[name][m] is not None else None) for m in MODES), "",
                f"rec, rep <= run + {MEMORY_ABOVE_RUN_MB}",
                " / ".join(f"{m} +{over[m]:.0f} {'ok' if over[m] <= MEMORY_ABOVE_RUN_MB else 'MISS'}" for m in over)]

    run_body = body["now"]["run"].median  # type: ignore[union-attr]
    body_x = {m: body["now"][m].median / run_body for m in ("record", "replay")}  # type: ignore[union-attr]
    each = {m: per_request("now", m) or 0.0 for m in MODES}
    fixed = {m: (usage["now"][m].median - usage["now"]["run"].median) * 1e3  # type: ignore[union-attr]
             for m in ("record", "replay")}
    # The proxy starts at the first request: one small GET carries its import and start.
    started = {m: (one["now"][m].median - one["now"]["run"].median) * 1e3  # type: ignore[union-attr]
               for m in ("record", "replay")}
    def start_alone(name: str, mode: str) -> float | None:
        case, none = alone[name][mode], alone[name]["none"]
        return None if case is None or none is None else (case.median - none.median) * 1e3

    return [
        ["the proxy's import + start + stop alone (fresh interpreter), ms", "",
         *(both("{:.0f}", lambda name, m=m: start_alone(name, m)) for m in ("record", "replay")), "", "", ""],
        ["no request (usage run; before: the proxy's import and start), ms",
         *(both("{:.0f}", secs(usage, m)) for m in MODES),
         f"{cli_usage.median * 1e3:.0f}", "", " / ".join(f"{m} +{fixed[m]:.0f} ms" for m in fixed)],
        ["one small GET (the proxy's import and start), ms", *(both("{:.0f}", secs(one, m)) for m in MODES),
         "", "", " / ".join(f"{m} +{started[m]:.0f} ms" for m in started)],
        [f"{mib} MiB GET, whole process, ms", *(both("{:.0f}", secs(body, m)) for m in MODES),
         f"{cli_body.median * 1e3:.0f}", f"rec, rep <= {WHOLE_BODY_X:g}x run",
         " / ".join(f"{m} {body_x[m]:.2f}x {'ok' if body_x[m] <= WHOLE_BODY_X else 'MISS'}" for m in body_x)],
        [f"each of {n} GETs in flight, whole process, ms", *(both("{:.2f}", lambda name, m=m: per_request(name, m))
                                                            for m in MODES), "",
         "rec <= 2x run, rep <= run",
         f"rec {'ok' if each['record'] <= 2 * each['run'] else 'MISS'} / "
         f"rep {'ok' if each['replay'] <= each['run'] else 'MISS'}"],
        memory_row("body", big),
        memory_row("chunked body (no length)", big_chunked),
    ]


def request_timings(get: Path, concurrent: Path, base: str, n: int, rounds: int, work: Path
                    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(the usage run in s, one small GET in ms, each of n GETs in flight in ms), {mode: {path: value}}."""
    small = f"{base}/plain"
    print("  timing one GET ...", file=sys.stderr, flush=True)
    usage = modes_of(get, ["http_get"], work, rounds, expect=1)
    one = minus(modes_of(get, ["http_get", small], work, rounds), usage, 1e3)
    print(f"  timing {n} requests in one run ...", file=sys.stderr, flush=True)
    many = modes_of(concurrent, ["http_concurrent", *[small] * n], work, rounds)
    each = minus(many, modes_of(concurrent, ["http_concurrent", small], work, rounds), 1e3 / (n - 1))
    return usage, one, each


def request_rows(get: Path, concurrent: Path, base: str, n: int, rounds: int,
                 work: Path) -> tuple[list[str], list[list[str]]]:
    """The in-process table's per-request rows alone (`--requests-only`)."""
    _, one, each = request_timings(get, concurrent, base, n, rounds, work)
    paths = list(one["run"])
    print(f"\nbench_http --requests-only: loopback upstream in its own process; median of {rounds}; "
          f"cells are {' | '.join(paths)}\n")
    return (["measure", "rr run (direct)", "rr record (proxy)", "rr replay (proxy)", "target", "verdict"], [
        ["one small GET, ms", *(cell(one[m], "{:.2f}") for m in MODES), "rec <= 2x run",
         verdicts({p: one["record"][p] <= RECORD_RATIO_TARGET * one["run"][p] for p in paths})],
        ["", "", "", "", "rep <= run", verdicts({p: one["replay"][p] <= one["run"][p] for p in paths})],
        [f"each of {n} GETs in one run, ms", *(cell(each[m], "{:.2f}") for m in MODES), "rec <= 2x run",
         verdicts({p: each["record"][p] <= RECORD_RATIO_TARGET * each["run"][p] for p in paths})],
        ["", "", "", "", "rep <= run", verdicts({p: each["replay"][p] <= each["run"][p] for p in paths})],
    ])


def verdicts(ok: dict[str, bool]) -> str:
    return " / ".join(f"{p} {'ok' if v else 'MISS'}" for p, v in ok.items())


BODY_VS_RUN = 0.9   # record / replay of the body: at least this share of rr run's MB/s (plain: 1.0)


def body_mbs(get: Path, big: str, empty: str, size: int, rounds: int, work: Path) -> dict[str, dict[str, float]]:
    """{mode: {path: MB/s}} of the body into the guest: the big GET minus the empty one."""
    big_s = modes_of(get, ["http_get", big, "--summary"], work, rounds)
    empty_s = modes_of(get, ["http_get", empty, "--summary"], work, rounds)
    return {m: {p: size / 1e6 / max(big_s[m][p] - empty_s[m][p], 1e-9) for p in big_s[m]} for m in MODES}


def body_pieces(get: Path, big: str, work: Path) -> dict[str, int]:
    """{path: records of body pieces} in a recording of the big GET (streamed above 4 MiB:
    each piece is a trip through the proxy's layers, a trace record and a send to the guest)."""
    from rr.merge import BODY_CALL
    from rr.trace import open_trace

    pieces = {}
    for path_name, program in load_paths(get).items():
        trace = work / f"pieces-{path_name}.cbor"
        check_replay(program, ["http_get", big, "--summary"], trace)
        with open_trace(trace) as reader:
            pieces[path_name] = sum(1 for event in reader if event.call == BODY_CALL)
    return pieces


def body_rows(mib: int, mbs: dict[str, dict[str, float]], pieces: dict[str, int], cli_mbs: str) -> list[list[str]]:
    """The body's rows: MB/s, record and replay as a share of rr run's, pieces in the trace."""
    paths = list(mbs["run"])
    share = {m: {p: mbs[m][p] / mbs["run"][p] for p in paths} for m in ("record", "replay")}
    floor = {p: 1.0 if p == "plain" else BODY_VS_RUN for p in paths}
    return [
        [f"{mib} MiB body into the guest, MB/s", *(cell(mbs[m], "{:.1f}") for m in MODES), cli_mbs,
         f">= {RECORD_MBS_TARGET:g} MB/s rec", verdicts({p: mbs["record"][p] >= RECORD_MBS_TARGET for p in paths})],
        [f"{mib} MiB body, MB/s vs rr run's", "", cell(share["record"], "{:.2f}x"), cell(share["replay"], "{:.2f}x"), "",
         f"rec, rep >= {BODY_VS_RUN:g}x run (plain 1x)",
         verdicts({p: min(share["record"][p], share["replay"][p]) >= floor[p] for p in paths})],
        [f"{mib} MiB body, pieces in the trace", "", cell(pieces, "{}"), "", "", "", ""],
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 rounds, 10 requests, 4 MiB (a smoke run)")
    p.add_argument("--rounds", type=int, help="rounds per measurement (default 9, --quick 3)")
    p.add_argument("--requests", type=int, help="N for http_concurrent (default 50, --quick 10)")
    p.add_argument("--mib", type=int, help="body size in MiB (default 10, --quick 4)")
    p.add_argument("--big-mib", type=int, help="body size for peak memory, MiB (default 400, --quick 64)")
    p.add_argument("--whole-only", action="store_true", help="only the whole-process table")
    p.add_argument("--body-only", action="store_true",
                   help="only the in-process body rows (MB/s, vs rr run, pieces in the trace): ~1 min")
    p.add_argument("--requests-only", action="store_true",
                   help="only the in-process per-request rows (one GET, each of N in flight): ~1-2 min")
    opts = p.parse_args()
    rounds = opts.rounds or (3 if opts.quick else 9)
    n = opts.requests or (10 if opts.quick else 50)
    mib = opts.mib or (4 if opts.quick else 10)
    size = mib * MiB
    get, concurrent = guests.c_guest("http_get"), guests.c_guest("http_concurrent")

    big_mib = opts.big_mib or (64 if opts.quick else 400)
    with tempfile.TemporaryDirectory(prefix="rr-bench-http-") as tmp, upstream() as base:
        work = Path(tmp)
        if opts.requests_only:
            print_table(*request_rows(get, concurrent, base, n, rounds, work))
            return 0
        big, empty = f"{base}/bytes?n={size}", f"{base}/bytes?n=0"
        if opts.body_only:
            print(f"  timing a {mib} MiB body ...", file=sys.stderr, flush=True)
            mbs = body_mbs(get, big, empty, size, rounds, work)
            pieces = body_pieces(get, big, work)
            print(f"\nbench_http --body-only: loopback upstream in its own process; median of {rounds}; "
                  f"cells are {' | '.join(mbs['run'])}\n")
            print_table(["measure", "rr run (direct)", "rr record (proxy)", "rr replay (proxy)", "wasmtime CLI",
                         "target", "verdict"], body_rows(mib, mbs, pieces, ""))
            return 0
        whole = whole_processes(base, max(3, rounds // 2), n, mib, big_mib, work)
        whole_header = ["whole `python -m rr` (now vs before " + wp.BASELINE + ")", "rr run", "rr record",
                        "rr replay", "wasmtime CLI", "target", "verdict"]
        if opts.whole_only:
            print(f"\nbench_http: loopback upstream in its own process; median of {max(3, rounds // 2)} "
                  "(peak memory: one run)\n")
            print_table(whole_header, whole)
            return 0
        small = f"{base}/plain"
        usage, one, each = request_timings(get, concurrent, base, n, rounds, work)
        print(f"  timing a {mib} MiB body ...", file=sys.stderr, flush=True)
        mbs = body_mbs(get, big, empty, size, max(3, rounds // 2), work)
        pieces = body_pieces(get, big, work)
        start_ms = {m: {p: (usage[m][p] - usage["run"][p]) * 1e3 for p in usage[m]} for m in ("record", "replay")}

        print("  timing the wasmtime CLI and whole rr processes ...", file=sys.stderr, flush=True)
        http = ["-S", "http", str(get)]
        reference = wasmtime_output([*http, big, "--summary"]).splitlines()[-1]
        ours = check_replay(load_paths(get)["plain"], ["http_get", big, "--summary"], work / "check.cbor")
        if ours.splitlines()[-1] != reference:
            raise SystemExit(f"body summary differs: rr {ours.splitlines()[-1]!r}, wasmtime {reference!r}")
        cli_one = (wasmtime_seconds([*http, small], rounds) - wasmtime_seconds([*http], rounds, expect=1)) * 1e3
        cli_mbs = size / 1e6 / max(wasmtime_seconds([*http, big, "--summary"], max(3, rounds // 2))
                                   - wasmtime_seconds([*http, empty, "--summary"], max(3, rounds // 2)), 1e-9)
        cli_rr = {m: cli_rr_seconds(m, get, small, work / "cli.cbor", max(3, rounds // 2)) * 1e3
                  for m in ("run", "record")}

    paths = list(one["run"])
    record_ok = verdicts({p: one["record"][p] <= RECORD_RATIO_TARGET * one["run"][p] for p in paths})
    replay_ok = verdicts({p: one["replay"][p] <= one["run"][p] for p in paths})
    each_ok = verdicts({p: each["record"][p] <= RECORD_RATIO_TARGET * each["run"][p]
                        and each["replay"][p] <= each["run"][p] for p in paths})
    print(f"\nbench_http: loopback upstream in its own process; median of {rounds} "
          f"({max(3, rounds // 2)} for the body and whole processes); cells are {' | '.join(paths)}\n")
    print_table(
        ["measure", "rr run (direct)", "rr record (proxy)", "rr replay (proxy)", "wasmtime CLI", "target", "verdict"],
        [
            ["one small GET, ms", *(cell(one[m], "{:.2f}") for m in MODES), f"{cli_one:.2f}",
             "rec <= 2x run", record_ok],
            ["", "", "", "", "", "rep <= run", replay_ok],
            [f"each of {n} GETs in one run, ms", *(cell(each[m], "{:.2f}") for m in MODES), "",
             "rec <= 2x, rep <= run", each_ok],
            *body_rows(mib, mbs, pieces, f"{cli_mbs:.1f}"),
            ["proxy start+stop per run, ms", "", cell(start_ms["record"], "{:.1f}"),
             cell(start_ms["replay"], "{:.1f}"), "", "", ""],
            ["whole `python -m rr` one GET, ms", f"{cli_rr['run']:.0f}", f"{cli_rr['record']:.0f}", "", "", "", ""],
        ])
    print()
    print_table(whole_header, whole)
    return 0


if __name__ == "__main__":
    sys.exit(main())
