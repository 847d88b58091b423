"""A replay checks every recorded value before the guest gets it.

Real recordings of real guests (C clock, random, stdin echo, filesystem, HTTP against a
loopback server) are edited the way a damaged or hand-written trace would be -- wrong
types, cases that are not in the enum or variant, integers out of range, byte strings
shorter or longer than the call allows -- and replayed by a real `python -m rr replay`.
Each must stop with exit 122 and ONE line naming the event index and the call, never
exit 70 ("internal error"), never a signal, never a traceback.

A property test then throws arbitrary trace values at a few calls, in-process, and
requires that nothing but a clean refusal (or a normal replay) comes out.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guests
from httpservers import TestServer

pytestmark = pytest.mark.timeout(120)

RR = [sys.executable, "-m", "rr"]
EXIT_BAD_TRACE = 122


def b64(n: int) -> dict[str, str]:
    """n bytes as a JSONL trace writes them."""
    return {"$bytes": base64.b64encode(bytes(range(256)) * (n // 256) + bytes(range(n % 256))).decode()}


def rr(*args: str, stdin: bytes = b"") -> guests.Ran:
    done = subprocess.run([*RR, *args], input=stdin, capture_output=True, timeout=90,
                          cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------- recordings (once per module)

@dataclass
class Recording:
    component: Path
    trace: Path
    lines: list[dict[str, Any]]   # the JSONL trace, line 0 is the header

    def index_of(self, call: str, nth: int = 0) -> int:
        """The trace index (as `rr inspect` numbers events) of the nth event of `call`."""
        found = [i - 1 for i, line in enumerate(self.lines) if line.get("call") == call]
        assert len(found) > nth, f"{call} not recorded {nth + 1} times: {[l.get('call') for l in self.lines]}"
        return found[nth]

    def edited(self, out: Path, index: int, edit: Callable[[dict[str, Any]], None]) -> Path:
        lines = [dict(line) for line in self.lines]
        edit(lines[index + 1])
        out.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return out


def _record(tmp: Path, name: str, component: Path, *args: str, flags: tuple[str, ...] = (),
            stdin: bytes = b"") -> Recording:
    trace = tmp / f"{name}.jsonl"
    done = rr("record", *flags, str(component), "-t", str(trace), "--", *args, stdin=stdin)
    assert done.status in (0, 1), done.err
    assert rr("replay", str(component), str(trace)).status == done.status  # the unedited trace replays
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    return Recording(component, trace, lines)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    tmp = tmp_path_factory.mktemp("recordings")
    data = tmp / "data"
    data.mkdir()
    (data / "in.txt").write_bytes(b"input data\n")
    return {
        "random": _record(tmp, "random", guests.c_guest("random")),
        "clock": _record(tmp, "clock", guests.c_guest("clock"), "5"),
        "echo": _record(tmp, "echo", guests.c_guest("echo_stdin"), stdin=b"hello\nworld\n"),
        "env": _record(tmp, "env", guests.c_guest("args_env"), "a", flags=("--env", "K=V")),
        "fs": _record(tmp, "fs", guests.c_guest("fs_ops"), "/data", flags=("--dir-rw", f"{data}::/data")),
    }


def refused(ran: guests.Ran, index: int, call: str, *words: str) -> str:
    """The replay stopped with exit 122 and one `rr:` line naming event `index` and `call`."""
    err = ran.stderr.decode("utf-8", "replace")
    assert ran.status == EXIT_BAD_TRACE, f"exit {ran.status}: {err}"
    assert "Traceback" not in err
    rr_lines = [line for line in err.splitlines() if line.startswith("rr: ")]
    assert len(rr_lines) == 1, err
    line = rr_lines[0]
    assert f"event {index}: {call} " in line, line
    assert "is not a valid" in line, line
    for word in words:
        assert word in line, line
    return line


def result(value: Any, failed: bool = False) -> Callable[[dict[str, Any]], None]:
    def edit(event: dict[str, Any]) -> None:
        event["result"] = value
        if failed:
            event["failed"] = True
        else:
            event.pop("failed", None)
    return edit


def field(i: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(event: dict[str, Any]) -> None:
        event["result"] = list(event["result"])
        event["result"][i] = value
    return edit


# (recording, call, nth occurrence, edit, words the message must contain)
CASES: dict[str, tuple[str, str, int, Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    # random: exactly the requested length, and bytes at all
    "random-15-bytes": ("random", "wasi:random/random.get-random-bytes", 0, result(b64(15)),
                        ("15 bytes, the guest asked for 16",)),
    "random-17-bytes": ("random", "wasi:random/random.get-random-bytes", 1, result(b64(17)),
                        ("17 bytes, the guest asked for 16",)),
    "random-a-string": ("random", "wasi:random/random.get-random-bytes", 0, result("sixteen bytes!!!"),
                        ("list<u8>", "is not bytes")),
    "random-cannot-fail": ("random", "wasi:random/random.get-random-bytes", 0, result("io", failed=True),
                           ("recorded error", "cannot fail")),
    # clocks: datetime shape and nanoseconds, integer ranges and types
    "wall-nanoseconds": ("clock", "wasi:clocks/wall-clock.now", 0, field(1, 1_000_000_000),
                         ("datetime", "nanoseconds 1000000000 is not below 1000000000")),
    "wall-negative-seconds": ("clock", "wasi:clocks/wall-clock.now", 0, field(0, -1),
                              ("-1 is out of range for u64",)),
    "wall-not-a-pair": ("clock", "wasi:clocks/wall-clock.now", 0, result(1796116015),
                        ("is not [seconds, nanoseconds]",)),
    "mono-too-big": ("clock", "wasi:clocks/monotonic-clock.now", 0, result(2**64),
                     ("18446744073709551616 is not a u64 instant",)),
    "mono-goes-back": ("clock", "wasi:clocks/monotonic-clock.now", 1, result(5),
                       ("5 is before the previous reading",)),
    "mono-a-float": ("clock", "wasi:clocks/monotonic-clock.now", 1, result(1.5),
                     ("1.5 is not a u64 instant",)),
    "mono-resolution-a-string": ("clock", "wasi:clocks/monotonic-clock.resolution", 0, result("1ns"),
                                 ("'1ns' is not an integer",)),
    "timer-start-a-string": ("clock", "wasi:clocks/monotonic-clock.subscribe-duration", 0, result("soon"),
                             ("instant",)),
    "poll-index-out-of-range": ("clock", "wasi:io/poll.poll", 0, result([1]),
                                ("1 is not an index into the guest's 1 pollables",)),
    "poll-nothing-ready": ("clock", "wasi:io/poll.poll", 0, result([]), ("non-empty",)),
    # stdin: reads no longer than asked for, stream-error cases, resources
    "stdin-too-long": ("echo", "wasi:io/streams.blocking-read", 0,
                       result(b64(65538)), ("65538 bytes, the guest asked for at most 65536",)),
    "stdin-list-of-ints": ("echo", "wasi:io/streams.blocking-read", 0, result([104, 105]), ("is not bytes",)),
    "stdin-bad-error-case": ("echo", "wasi:io/streams.blocking-read", 1, result("exploded", failed=True),
                             ("recorded error", "'exploded' is not a case of variant {last-operation-failed, closed}")),
    "stdin-error-without-resource": ("echo", "wasi:io/streams.blocking-read", 1,
                                     result(["last-operation-failed", {"io-error": 7}], failed=True),
                                     ("case last-operation-failed", "is not a resource")),
    # cli: environment pairs, arguments
    "env-not-pairs": ("env", "wasi:cli/environment.get-environment", 0, result([["K", "V", "W"]]),
                      ("[name, value] pair",)),
    "env-value-not-a-string": ("env", "wasi:cli/environment.get-environment", 0, result([["K", 5]]),
                               ("5 is not a string",)),
    "args-not-strings": ("env", "wasi:cli/environment.get-arguments", 0, result(["args_env.wasm", None]),
                         ("item 1: None is not a string",)),
    "args-bytes-not-text": ("env", "wasi:cli/environment.get-arguments", 1, result(["args_env.wasm", b64(3)]),
                            ("item 1: <3 bytes> is not a string",)),
    # filesystem: the stat-at that used to crash the process (exit 139), and friends
    "stat-at-bad-type": ("fs", "wasi:filesystem/types.stat-at", 1, field(0, "weird-file"),
                         ("field type: 'weird-file' is not a case of enum",)),
    "stat-at-size-a-string": ("fs", "wasi:filesystem/types.stat-at", 1, field(2, "big"),
                              ("field size: 'big' is not an integer (u64)",)),
    "stat-nanoseconds": ("fs", "wasi:filesystem/types.stat", 0, field(4, [1, 2_000_000_000]),
                         ("descriptor-stat", "nanoseconds 2000000000 is not below 1000000000")),
    "stat-short": ("fs", "wasi:filesystem/types.stat", 0, result(["regular-file", 1]),
                   ("is not [type, link-count, size, atime, mtime, ctime]",)),
    "stat-error-not-a-code": ("fs", "wasi:filesystem/types.stat", 0, result("on-fire", failed=True),
                              ("recorded error", "'on-fire' is not a case of enum")),
    "open-at-bad-type": ("fs", "wasi:filesystem/types.open-at", 0, result("teapot"),
                         ("'teapot' is not a case of descriptor-type",)),
    "file-read-too-long": ("fs", "wasi:io/streams.blocking-read", 0,
                           result(b64((1 << 20) + 1)),
                           ("1048577 bytes, the guest asked for at most 1048576",)),
    "readdir-bad-entry-type": ("fs", "wasi:filesystem/types.read-directory", 0, result([["pipe-dream", "a.txt"]]),
                               ("entry 0: 'pipe-dream' is not a case of descriptor-type",)),
    "readdir-bad-name": ("fs", "wasi:filesystem/types.read-directory", 0, result([["regular-file", "../x"]]),
                         ("is not a file name",)),
    "readdir-bad-error": ("fs", "wasi:filesystem/types.read-directory", 0, result(["oops"]),
                          ("'oops' is not a case of error-code",)),
    "metadata-hash-short": ("fs", "wasi:filesystem/types.metadata-hash", 0, result([1]),
                            ("is not [lower, upper]",)),
    "preopen-not-a-path": ("fs", "wasi:filesystem/preopens.get-directories", 0, result([[7, True]]),
                           ("is not [guest path, writable]",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_edited_value_is_refused(case: str, recordings: dict[str, Recording], tmp_path: Path) -> None:
    name, call, nth, edit, words = CASES[case]
    rec = recordings[name]
    index = rec.index_of(call, nth)
    trace = rec.edited(tmp_path / "edited.jsonl", index, edit)
    done = rr("replay", str(rec.component), str(trace))
    refused(done, index, call, *words)


def test_cbor_trace_is_checked_the_same(recordings: dict[str, Recording], tmp_path: Path) -> None:
    rec = recordings["fs"]
    index = rec.index_of("wasi:filesystem/types.stat-at", 1)
    edited = rec.edited(tmp_path / "edited.jsonl", index, field(0, "weird-file"))
    cbor = tmp_path / "edited.cbor"
    assert rr("convert", str(edited), str(cbor)).status == 0
    for fast in ([], ["--no-fast-path"]):
        refused(rr("replay", *fast, str(rec.component), str(cbor)), index, "wasi:filesystem/types.stat-at")


def test_lowering_a_bad_value_traps_instead_of_crashing(recordings: dict[str, Recording], tmp_path: Path) -> None:
    """Without the replay checks, the value reaches abi.py's lowerers: they must fail cleanly
    (a bug report, exit 70), not leave uninitialised memory for wasmtime to free (exit 139)."""
    rec = recordings["fs"]
    index = rec.index_of("wasi:filesystem/types.stat-at", 1)  # a second stat-at: its result slot was used
    trace = rec.edited(tmp_path / "edited.jsonl", index, field(2, "big"))
    script = ("import sys\nfrom rr import cli, tap\ndel tap.Replayer.guard\n"
              "sys.exit(cli.main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", script, "replay", str(rec.component), str(trace)],
                          capture_output=True, timeout=90, cwd=guests.REPO, env=guests._clean_env(None))
    assert done.returncode == 70, done.stderr
    assert b"stat-at failed: TypeError" in done.stderr


def test_unedited_values_replay_unchanged(recordings: dict[str, Recording]) -> None:
    """The checks accept everything rr itself records (the fixture replays each once too)."""
    rec = recordings["fs"]
    done = rr("replay", str(rec.component), str(rec.trace))
    assert done.status == 0 and b"read in.txt: ok 11 bytes" in done.stdout, done.err


# ---------------------------------------------------------------- HTTP


def test_http_recorded_values_are_checked(tmp_path: Path) -> None:
    with TestServer() as server:
        rec = _record(tmp_path, "http", guests.c_guest("http_get"), server.url("/plain"),
                      flags=("--allow-http", "127.0.0.1"))
    get = rec.index_of("wasi:http/types.future-incoming-response.get", 0)
    refused(rr("replay", str(rec.component), str(rec.edited(tmp_path / "a.jsonl", get, result("yes")))),
            get, "wasi:http/types.future-incoming-response.get", "'yes' is not a bool")
    read = rec.index_of("wasi:http/types.incoming-body.read", 0)
    asked = rec.lines[read + 1]["args"][1]
    refused(rr("replay", str(rec.component), str(rec.edited(tmp_path / "b.jsonl", read, result(asked + 1)))),
            read, "wasi:http/types.incoming-body.read", f"is not a count of at most {asked} bytes")


# ---------------------------------------------------------------- property: no value crashes a replay

trace_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=20)
    | st.sampled_from(["closed", "directory", "regular-file", "no-entry", "last-operation-failed", "ok", "err"]),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.sampled_from(["io-error", "x"]), inner, max_size=1),
    max_leaves=16)

PROPERTY_CALLS = [
    ("random", "wasi:random/random.get-random-bytes", 0),
    ("clock", "wasi:clocks/wall-clock.now", 0),
    ("clock", "wasi:io/poll.poll", 0),
    ("echo", "wasi:io/streams.blocking-read", 1),
    ("fs", "wasi:filesystem/types.stat-at", 1),
    ("fs", "wasi:filesystem/types.read-directory", 0),
    ("fs", "wasi:filesystem/types.open-at", 0),
]


@pytest.mark.parametrize(("name", "call", "nth"), PROPERTY_CALLS, ids=[c[1].split("/")[-1] for c in PROPERTY_CALLS])
def test_no_recorded_value_crashes_a_replay(name: str, call: str, nth: int, recordings: dict[str, Recording],
                                            tmp_path: Path) -> None:
    from rr import runner, session
    from rr.errors import EXIT_BAD_TRACE as BAD, EXIT_DIVERGED, RRError
    from rr.trace.values import to_jsonable

    rec = recordings[name]
    index = rec.index_of(call, nth)
    program = runner.load(rec.component)
    trace = tmp_path / "edited.jsonl"

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=trace_values, failed=st.booleans())
    def replay_never_crashes(value: Any, failed: bool) -> None:
        rec.edited(trace, index, result(to_jsonable(value), failed))
        with open(os.devnull, "wb") as null:
            try:
                session.replay(program, str(trace), null, null)  # every host call needs an event: finite
            except RRError as e:  # a clean refusal: corrupt trace, or the guest went elsewhere
                assert e.status in (BAD, EXIT_DIVERGED), str(e)
                assert "\n" not in str(e) or e.status == EXIT_DIVERGED, str(e)

    replay_never_crashes()
