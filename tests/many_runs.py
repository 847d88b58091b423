"""Many runs in one process (used by tests/test_many_runs.py; also a script).

    python tests/many_runs.py N WORKDIR

runs N runs through the Python API, one after another: every 10th an HTTP recording and its
replay through a loopback server, the others alternately a plain run and a recording + replay,
each checked. Prints one JSON line: the process's RSS (from /proc) after the first tenth
and at the end, and the counts of what must not grow (registered host functions, threads).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import guests  # noqa: E402
from httpservers import PLAIN_BODY, TestServer  # noqa: E402

import rr  # noqa: E402
from rr import abi  # noqa: E402


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def one(i: int, work: Path, server: TestServer) -> None:
    trace = work / f"t{i % 3}.cbor"
    if i % 10 == 9:
        http_get = guests.c_guest("http_get")
        url = server.url("/plain")
        rec = rr.record(http_get, trace, [url], allow_http=[url.split("/")[2]], overwrite=True)
        assert rec.exit_status == 0 and rec.stdout.endswith(PLAIN_BODY), rec
        rep = rr.replay(http_get, trace)
        assert (rep.exit_status, rep.stdout) == (0, rec.stdout), rep
    elif i % 2:
        ran = rr.run(guests.c_guest("args_env"), [f"run-{i}"], env={"I": str(i)})
        assert ran.exit_status == 0 and f"argv[1] run-{i}\nenv I={i}\n".encode() in ran.stdout, ran
    else:
        rec = rr.record(guests.c_guest("random"), trace, overwrite=True)
        rep = rr.replay(guests.c_guest("random"), trace)
        assert rec.exit_status == 0 and (rep.exit_status, rep.stdout) == (0, rec.stdout), rep


def main(n: int, work: Path) -> dict[str, int]:
    report: dict[str, int] = {}
    with TestServer() as server:
        for i in range(n):
            one(i, work, server)
            if i == n // 10 - 1:
                report |= {"rss_kib_early": rss_kib(), "bound_early": len(abi._BOUND),
                           "threads_early": threading.active_count()}
    return report | {"rss_kib_end": rss_kib(), "bound_end": len(abi._BOUND),
                     "threads_end": threading.active_count(), "runs": n}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), Path(sys.argv[2]))))
