"""`kill -9` of `rr record` at seeded random moments: what is left must read and replay honestly.

Three kinds of recording, each killed ~10 times (SIGKILL: no handler, no flush, no outcome):
stdout-heavy (C bigout), host-call-heavy (benchmarks/guests/random_heavy.wat: every call an
event) and HTTP (C http_get through the embedded proxy against a loopback server). The
moment of each kill is drawn from a seeded generator: an offset after the trace file appears,
within the time an unkilled recording of the same guest takes (measured first), so kills land
at start-up, mid-stream, mid-exchange and after the end. For every trace left:

- `rr inspect` exits 0 (saying INCOMPLETE where it is) or 122 with one line saying so;
- `rr replay` of a complete trace (the kill came after the outcome was written) prints what the
  recording printed (and the rest its killed process had not flushed yet), with the recording's
  exit status; of an incomplete one it exits 122 saying so, its output and the recording's
  agreeing as far as both go; never 70, a traceback, or a divergence (121) that blames the guest.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import guests
import tracefuzz
from httpservers import TestServer

pytestmark = pytest.mark.timeout(600)   # a hang guard: ~1 min alone, several on a loaded machine

SEED = int(os.environ.get("RR_KILL9_SEED", "9"))
KILLS = 10                # per guest kind
RR = [sys.executable, "-m", "rr"]
WAIT_S = 60               # any one rr process
INCOMPLETE_WORDS = ("incomplete", "truncated", "empty file")


@dataclass(frozen=True)
class Kind:
    name: str
    wasm: Path
    args: tuple[str, ...]
    flags: tuple[str, ...] = ()


@dataclass
class Killed:
    kind: str
    wasm: Path
    n: int
    delay: float
    trace: Path
    stdout: bytes          # what the recording printed before it died
    status: int            # -9, or the recording's own status when it finished first


def _record_cmd(kind: Kind, trace: Path) -> list[str]:
    return [*RR, "record", str(kind.wasm), "-t", str(trace), *kind.flags, "--", *kind.args]


def _record(kind: Kind, trace: Path, out: Path, kill_after: float | None) -> tuple[int, float]:
    """Record; with `kill_after`, SIGKILL it that long after the trace file appeared. Returns
    the exit status and how long the recording ran after its trace appeared."""
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(_record_cmd(kind, trace), stdout=stdout, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, cwd=guests.REPO, env=guests._clean_env(None))
        try:
            deadline = time.monotonic() + WAIT_S
            while not trace.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            appeared = time.monotonic()
            if kill_after is not None:
                time.sleep(kill_after)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
            status = proc.wait(WAIT_S)
            return status, time.monotonic() - appeared
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _rr(*args: str) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, cwd=guests.REPO, env=guests._clean_env(None),
                          timeout=WAIT_S, stdin=subprocess.DEVNULL)
    return guests.Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kind]:
    wat = tmp_path_factory.mktemp("kill9-wat")
    heavy = guests.build_wat(guests.REPO / "benchmarks" / "guests" / "random_heavy.wat", wat)
    http_flags = ("--allow-http", "127.0.0.1") if tracefuzz.rr_help_mentions("--allow-http") else ()
    return {
            "stdout": Kind("stdout", guests.c_guest("bigout"), ("16",)),
        "hostcalls": Kind("hostcalls", heavy, ("15000", "15000")),
        "http": Kind("http", guests.c_guest("http_get"), ("URL",), http_flags),
    }


def _complete(trace: Path) -> bool | None:
    """Whether rr.trace reads the trace as complete; None if it refuses it altogether."""
    from rr.trace import TraceError, read_trace
    try:
        return read_trace(trace).complete
    except TraceError:
        return None


def _prefix_consistent(a: bytes, b: bytes) -> bool:
    return a.startswith(b) or b.startswith(a)


def _check(k: Killed) -> list[str]:
    """Problems with what the kill left, as one line each."""
    problems = []
    where = f"{k.kind} kill {k.n} after {k.delay:.3f} s (recording status {k.status})"
    if not k.trace.exists():
        return []   # killed before the trace was created: nothing left to read
    complete = _complete(k.trace)
    if complete is None:
        problems.append(f"{where}: rr.trace refuses the trace a kill left (corrupt, not incomplete)")
    inspected = _rr("inspect", str(k.trace), "--no-events")
    said = inspected.out + inspected.err
    says_incomplete = any(w in said.lower() for w in INCOMPLETE_WORDS)
    if inspected.status not in (0, 122) or "Traceback" in said:
        problems.append(f"{where}: rr inspect exited {inspected.status}: {said[-300:]}")
    elif inspected.status == 122 and not (says_incomplete and inspected.err.count("\n") == 1):
        problems.append(f"{where}: rr inspect 122 without one line saying incomplete: {inspected.err!r}")
    elif not complete and not says_incomplete:
        problems.append(f"{where}: rr inspect does not say the trace is incomplete: {said[-300:]!r}")
    replayed = _rr("replay", str(k.wasm), str(k.trace))
    print(f"{where}: complete {complete}, inspect {inspected.status}, {k.trace.stat().st_size} bytes, replay "
          f"{replayed.status} with {len(replayed.stdout)} bytes of stdout {replayed.err.strip()[-120:]!r}")  # -s
    err = replayed.err
    if replayed.status in (70, 121) or "Traceback" in err or replayed.status < 0:
        problems.append(f"{where}: replay exited {replayed.status}: {err.strip()[-400:]}")
    elif not _prefix_consistent(replayed.stdout, k.stdout):
        problems.append(f"{where}: the replay's {len(replayed.stdout)} bytes of stdout are not what the recording "
                        f"printed ({len(k.stdout)} bytes before the kill)")
    elif not complete:
        if replayed.status != 122 or not any(w in err.lower() for w in INCOMPLETE_WORDS):
            problems.append(f"{where}: replay of an incomplete trace exited {replayed.status} without saying "
                            f"so: {err.strip()[-300:]}")
    elif not replayed.stdout.startswith(k.stdout) or (k.status != -signal.SIGKILL and (
            replayed.status, replayed.stdout) != (k.status, k.stdout)):
        problems.append(f"{where}: replay of a complete trace exited {replayed.status} with "
                        f"{len(replayed.stdout)} bytes of stdout; the recording printed {len(k.stdout)} bytes: "
                        f"{err.strip()[-200:]}")
    return problems


@pytest.mark.parametrize("name", ["stdout", "hostcalls", "http"])
def test_kill9_leaves_a_readable_honest_trace(name: str, kinds: dict[str, Kind], tmp_path: Path) -> None:
    kind = kinds[name]
    server = TestServer().start() if name == "http" else None
    try:
        if server is not None:
            # the exchange takes 0.5 s upstream: many kills land while the proxy waits on it
            kind = Kind(kind.name, kind.wasm, (server.url("/slow?s=0.5"),), kind.flags)
        # An unkilled recording: the whole output, and how long one takes after the trace appears.
        trace = tmp_path / "full.cbor"
        full_status, span = _record(kind, trace, tmp_path / "full.out", None)
        full = (tmp_path / "full.out").read_bytes()
        replay_full = _rr("replay", str(kind.wasm), str(trace))
        assert (replay_full.status, replay_full.stdout) == (full_status, full), replay_full.err

        rng = random.Random(f"kill9:{SEED}:{name}")
        killed = []
        for n in range(KILLS):
            delay = rng.uniform(0, span)
            trace, out = tmp_path / f"k{n}.cbor", tmp_path / f"k{n}.out"
            status, _ = _record(kind, trace, out, delay)
            killed.append(Killed(name, kind.wasm, n, delay, trace, out.read_bytes(), status))
    finally:
        if server is not None:
            server.stop()
    assert any(k.status == -signal.SIGKILL for k in killed), "no recording was actually killed"
    with ThreadPoolExecutor(2) as pool:
        problems = [p for found in pool.map(_check, killed) for p in found]
    assert not problems, f"seed {SEED} (RR_KILL9_SEED):\n" + "\n".join(problems)
