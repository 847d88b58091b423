"""Fuzz rr's trace readers and replay with seeded mutations of real recordings.

    python benchmarks/fuzz_traces.py [--seed S] [--count N] [--cli-count M] [--served-count K] [--workdir DIR]
    python benchmarks/fuzz_traces.py --seed S --only I [--cli] --workdir DIR   # one mutant again

1. Records the corpus with `python -m rr record` (random, clock, echo_stdin with stdin, fs_ops
   with a --dir-rw grant, bigout 1 MiB, and http_get against a loopback server) and one
   `python -m rr serve -t` of the C handler (a request per route, its own HTTP included,
   stopped by SIGTERM), .cbor plus the .jsonl and .cbor.gz made from it by rr.trace.convert.
2. N mutants (default 100 000) in-process, by one worker process (HTTP guests excluded: one
   proxy per process): each read with rr.trace's reader, then replayed through
   rr.session.replay unless it decodes to the original records; of those the reader refuses,
   only every K-th is replayed (--replay-every, default 8; 1 replays all), the rest counted as
   reader-122. A worker killed by a signal is counted as that mutant's failure and replaced.
3. M mutants (default 1 000) of every guest, HTTP included, each a `python -m rr replay`
   subprocess, 2 at a time (their indices follow the in-process ones), while 2. runs.
4. K mutants (default 300) of the server trace alone, through the CLI as 3. (a server trace's
   replay tells its story in `rr: request N ...: verdict` lines: another story with exit 0 from
   a corrupted .cbor is a silent wrong replay).
Prints the outcome counts per class and per mutation kind, every failure with the seed and
mutant index that make it again (and the file it was saved to), and the time taken.
The classes are described in tests/tracefuzz.py. Mutants depend on the corpus: `--workdir`
keeps it (and the failures) so `--only` remakes the very same mutant.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import tracefuzz as tf  # noqa: E402
from httpservers import TestServer  # noqa: E402


def print_tally(title: str, tally: tf.Tally, seconds: float, max_failures: int) -> None:
    print(f"\n== {title}: {tally.mutants} mutants in {seconds:.1f} s "
          f"({seconds / max(tally.mutants, 1) * 1000:.1f} ms each), {tally.failed()} failures")
    for cls, n in sorted(tally.classes.items(), key=lambda kv: (kv[0].startswith("FAIL"), kv[0])):
        print(f"  {cls:<22} {n:>8}")
    classes = sorted(tally.classes, key=lambda c: (c.startswith("FAIL"), c))
    kinds = sorted({k for k, _ in tally.by_kind})
    print("\n  per kind".ljust(20) + "".join(f"{c[:14]:>15}" for c in classes))
    for kind in kinds:
        print(f"  {kind:<17}" + "".join(f"{tally.by_kind.get((kind, c), 0):>15}" for c in classes))
    if tally.failures:
        print(f"\n  failures ({min(len(tally.failures), max_failures)} of {len(tally.failures)} shown):")
        for line in tally.failures[:max_failures]:
            print("   ", line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=100_000, help="in-process mutants")
    p.add_argument("--cli-count", type=int, default=1_000, help="mutants replayed by `python -m rr replay`")
    p.add_argument("--served-count", type=int, default=300,
                   help="mutants of the rr serve trace alone, replayed by `python -m rr replay`")
    p.add_argument("--workers", type=int, default=2, help="CLI replays at once")
    p.add_argument("--jobs", type=int, default=1, help="in-process worker processes (each one process)")
    p.add_argument("--replay-every", type=int, default=8, metavar="K",
                   help="in-process: of the mutants rr.trace's reader refuses, replay every K-th (1: all); "
                        "every other mutant is replayed unless it decodes to the original records")
    p.add_argument("--workdir", type=Path, help="corpus and failures here (kept); default a temp dir")
    p.add_argument("--only", type=int, metavar="I", help="replay only mutant I (from an existing --workdir)")
    p.add_argument("--cli", action="store_true", help="with --only: through the CLI")
    p.add_argument("--max-failures", type=int, default=60, help="failures printed per part")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="stop making mutants after S seconds and report those done")
    args = p.parse_args()

    started = time.monotonic()
    keep = args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rr-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rr-fuzz-scratch-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    saved = work / "failures"
    corpus = work / "corpus.json"
    try:
        if corpus.exists():
            recs = tf.load_corpus(corpus)
            print(f"corpus: {corpus} (reused)")
        else:
            with TestServer() as server:
                cases = tf.guest_cases(work, server.url("/bytes?n=3000"))
                recs = [tf.record(case, work) for case in cases]
                recs.append(tf.record_served(work, server.url("/bytes?n=3000")))
            tf.save_corpus(recs, work)
            print(f"corpus: {corpus}")
        for r in recs:
            sizes = ", ".join(f"{len(r.data(fmt))} bytes {fmt}" for fmt in tf.FORMATS)
            print(f"  {r.name:<11} {sizes}; exit {r.status}, stdout {len(r.stdout)} bytes")

        if args.only is not None:
            if args.cli:
                tally = tf.run_cli(recs, args.seed, args.only, 1, scratch, 1, saved)
            else:
                tally = tf.run_inprocess(corpus, args.seed, args.only, 1, scratch, saved, every=1)
            print_tally(f"mutant {args.only} of seed {args.seed}", tally, time.monotonic() - started, 10)
            return 1 if tally.failed() else 0

        t0 = time.monotonic()
        last = [t0]
        deadline = t0 + args.time_limit if args.time_limit else None

        def progress(what: str) -> Callable[[int], None]:
            def report(i: int) -> None:
                now = time.monotonic()
                if now - last[0] > 30:
                    last[0] = now
                    print(f"  ... {what}: {i} mutants, {now - t0:.0f} s", flush=True)
            return report

        # The in-process worker and the CLI replays run side by side (one core each, roughly).
        results: dict[str, tuple[tf.Tally, float]] = {}

        # --jobs splits the in-process range into that many worker processes (mutant i is the same
        # whichever worker makes it); each worker replays its mutants in its own one process.
        bounds = [args.count * j // args.jobs for j in range(args.jobs + 1)]

        def inprocess(j: int) -> None:
            sub = scratch / f"in-{j}"
            sub.mkdir()
            tally = tf.run_inprocess(corpus, args.seed, bounds[j], bounds[j + 1] - bounds[j], sub, saved,
                                     every=args.replay_every, progress=progress(f"in-process {j}"),
                                     deadline=deadline)
            results[f"in-{j}"] = (tally, time.monotonic() - t0)

        workers = [threading.Thread(target=inprocess, args=(j,)) for j in range(args.jobs)]
        for w in workers:
            w.start()
        cli = tf.run_cli(recs, args.seed, args.count, args.cli_count, scratch, args.workers, saved,
                         progress=progress("CLI"), deadline=deadline)
        cli_s = time.monotonic() - t0
        for w in workers:
            w.join()
        served = [r for r in recs if r.served]
        served_t0 = time.monotonic()
        first = args.count + args.cli_count
        served_tally = tf.run_cli(served, args.seed, first, args.served_count if served else 0, scratch,
                                  args.workers, saved, progress=progress("served"), deadline=deadline)
        served_s = time.monotonic() - served_t0
        inproc, in_s = tf.Tally(), 0.0
        for j in range(args.jobs):
            inproc.merge(results[f"in-{j}"][0])
            in_s = max(in_s, results[f"in-{j}"][1])
        print_tally(f"in-process (seed {args.seed}, mutants 0..{args.count - 1}, {args.jobs} worker process(es), "
                    f"every {args.replay_every}th reader-refused one replayed)", inproc, in_s, args.max_failures)
        print_tally(f"CLI (seed {args.seed}, mutants {args.count}..{args.count + args.cli_count - 1}, "
                    f"{args.workers} workers)", cli, cli_s, args.max_failures)
        print_tally(f"served trace alone, CLI (seed {args.seed}, mutants {first}..{first + args.served_count - 1}, "
                    f"{args.workers} workers)", served_tally, served_s, args.max_failures)
        total = tf.Tally()
        total.merge(inproc)
        total.merge(cli)
        total.merge(served_tally)
        print(f"\ntotal: {total.mutants} mutants, {total.failed()} failures, "
              f"{time.monotonic() - started:.0f} s")
        if total.failures:
            keep = True
            print(f"failing mutants saved in {saved}; corpus kept in {work}: "
                  f"--workdir {work} --seed {args.seed} --only I [--cli] replays one again")
        return 1 if total.failed() else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
