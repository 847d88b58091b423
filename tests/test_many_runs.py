"""Many guests in one process: one after another with nothing growing, and at once from threads,
each with its own output, status, limits and HTTP proxy (through the Python API, rr/api.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import guests
from httpservers import PLAIN_BODY, TestServer

import rr

MANY = 200
RSS_GROWTH_KIB = 48 * 1024   # generous: what 200 runs may add after the first 20 (measured: ~1.3 MiB)


def test_200_runs_in_one_process_keep_memory_flat(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "many_runs.py"), str(MANY), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["runs"] == MANY
    assert report["rss_kib_end"] - report["rss_kib_early"] < RSS_GROWTH_KIB, report
    # wasmtime lets go of a run's host functions with its linker: none are left registered
    assert report["bound_end"] <= report["bound_early"], report
    assert report["threads_end"] <= report["threads_early"], report


def _in_threads(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every job on its own thread, all started together; their results (or exceptions)."""
    results: dict[str, Any] = {}
    start = threading.Barrier(len(jobs))

    def work(name: str, job: Callable[[], Any]) -> None:
        start.wait(timeout=60)
        try:
            results[name] = job()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            results[name] = e

    threads = [threading.Thread(target=work, args=item, daemon=True) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a run did not finish"
    return results


def test_runs_at_once_from_threads_each_get_their_own_output_status_and_limits(
        tmp_path: Path, wat_dir: Path) -> None:
    spin = wat_dir / "spin.wasm"
    http_get, random = guests.c_guest("http_get"), guests.c_guest("random")
    with TestServer() as server:
        grant = [server.url("/").split("/")[2]]
        jobs: dict[str, Callable[[], Any]] = {
            f"args{i}": (lambda i=i: rr.run(guests.c_guest("args_env"), [f"a{i}"], env={"N": str(i)}))
            for i in range(4)}
        jobs |= {f"exit{i}": (lambda i=i: rr.run(guests.c_guest("exit_code"), [str(i)])) for i in range(3)}
        jobs |= {f"http{i}": (lambda i=i: rr.record(http_get, tmp_path / f"http{i}.cbor", [server.url(f"/plain?{i}")],
                                                    allow_http=grant)) for i in range(3)}
        jobs |= {"random": lambda: rr.record(random, tmp_path / "random.cbor")}
        # live random numbers come from a pool per thread (rr/_native.c): never the same bytes twice
        jobs |= {f"random{i}": (lambda: rr.run(random)) for i in range(4)}
        # one guest's --timeout must stop that guest only: the other one spinning goes on to its own
        jobs |= {"spin_short": lambda: rr.run(spin, timeout=0.5), "spin_long": lambda: rr.run(spin, timeout=1.5)}
        got = _in_threads(jobs)
        for i in range(4):
            assert got[f"args{i}"].exit_status == 0
            assert got[f"args{i}"].stdout == f"argc 2\nargv[0] args_env.wasm\nargv[1] a{i}\nenv N={i}\ncwd /\n".encode()
        for i in range(3):
            # the preview1 adapter exits with 1 for any status but 0, as under wasmtime
            assert (got[f"exit{i}"].exit_status, got[f"exit{i}"].stderr) == (min(i, 1), f"exiting with {i}\n".encode())
            rec = got[f"http{i}"]
            assert rec.exit_status == 0 and rec.stdout.endswith(PLAIN_BODY), rec
        lines = [ln for i in range(4) for ln in got[f"random{i}"].stdout.splitlines()] + \
            got["random"].stdout.splitlines()
        assert len(lines) == 10 and len(set(lines)) == 10, lines
        for name in ("spin_short", "spin_long"):
            assert (got[name].exit_status, got[name].outcome, got[name].stdout) == (124, "timeout", b"spinning\n")
        assert {path for _, path, _, _ in server.requests} == {f"/plain?{i}" for i in range(3)}

        # and their replays, all at once too: each proxy answers its own run from its own trace
        replays = _in_threads({f"http{i}": (lambda i=i: rr.replay(http_get, tmp_path / f"http{i}.cbor"))
                               for i in range(3)} | {"random": lambda: rr.replay(random, tmp_path / "random.cbor")})
        for name, rep in replays.items():
            assert (rep.exit_status, rep.stdout) == (0, got[name].stdout), rep
        assert len(server.requests) == 3
