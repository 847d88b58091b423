"""Regression replay (`rr replay NEW.wasm T --component-changed`): a trace of the random WAT
guest replayed against other builds of it, compiled here from its source with one change
each, through the CLI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

import guests
from httpservers import TestServer
from rr.errors import EXIT_BAD_TRACE, EXIT_DIVERGED, EXIT_USAGE

SOURCE = (guests.WAT_DIR / "random.wat").read_text()
# (what the build changes, the text it replaces, the replacement)
BUILDS = {
    "unchanged": ('(func (export "run") (result i32)',
                  '(func $unused (result i32) (i32.const 7))\n    (func (export "run") (result i32)'),
    "output": ('(data (i32.const 128) "bytes ")', '(data (i32.const 128) "BYTES ")'),
    "calls": ("(call $get-insecure-random-bytes (i64.const 8)", "(call $get-insecure-random-bytes (i64.const 4)"),
    "fewer": ("(call $insecure-seed (i32.const 0))", ""),
    "more": ("(call $flush)\n      (call $drop-output-stream",
             "(drop (call $get-random-u64))\n      (call $flush)\n      (call $drop-output-stream"),
    "exit": ("(i32.const 0)))  ;; result::ok", "(i32.const 1)))"),
}


def rr(*args: str | Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *map(str, args)], capture_output=True, input=stdin,
                          timeout=guests.RUN_TIMEOUT, cwd=guests.REPO, env=guests._clean_env(env))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


@dataclass
class Recorded:
    trace: Path
    stdout: bytes
    builds: dict[str, Path]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    d = tmp_path_factory.mktemp("builds")
    original = d / "random.wasm"
    original.write_bytes(wasmtime.wat2wasm(SOURCE))
    builds = {}
    for name, (old, new) in BUILDS.items():
        assert SOURCE.count(old) == 1, name
        builds[name] = d / f"random_{name}.wasm"
        builds[name].write_bytes(wasmtime.wat2wasm(SOURCE.replace(old, new)))
        assert builds[name].read_bytes() != original.read_bytes()
    trace = d / "random.cbor"
    ran = rr("record", original, "-t", trace)
    assert ran.status == 0, ran.err
    return Recorded(trace, ran.stdout, builds | {"original": original})


def regression(recorded: Recorded, build: str) -> guests.Ran:
    return rr("replay", recorded.builds[build], recorded.trace, "--component-changed")


def verdict(ran: guests.Ran) -> str:
    first = ran.err.splitlines()[0]
    assert first.startswith("rr: regression replay of "), ran.err
    return first.split(": ", 2)[2]


def test_a_build_that_behaves_the_same_runs_as_recorded(recorded: Recorded) -> None:
    ran = regression(recorded, "unchanged")
    assert ran.status == 0, ran.err
    assert ran.stdout == recorded.stdout
    assert verdict(ran) == "ran as recorded: the same 5 events in the same order, ended the same way (exit status 0)"
    assert f"recorded with random.wasm sha256 " in ran.err and "random_unchanged.wasm (sha256 " in ran.err
    # and the recorded build itself, given the flag, is the same run
    same = regression(recorded, "original")
    assert same.status == 0 and "the recorded build itself" in same.err, same.err


def test_a_build_with_other_output_departs_at_its_output(recorded: Recorded) -> None:
    """The same inputs, another stdout: the trace's output digests tell (121)."""
    ran = regression(recorded, "output")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert ran.stdout == recorded.stdout.replace(b"bytes ", b"BYTES ", 1)
    assert verdict(ran).startswith("the build departed from the recording: the guest's stdout differs from "
                                   "the recording within bytes 0-")
    same = regression(recorded, "unchanged")
    assert same.err.splitlines()[1] == f"  stdout and stderr as recorded (stdout {len(recorded.stdout)} bytes, " \
                                       "stderr 0 bytes)"


def test_with_the_bytes_recorded_the_report_names_the_byte(recorded: Recorded, tmp_path: Path) -> None:
    trace = tmp_path / "with_output.cbor"
    assert rr("record", "--record-output", recorded.builds["original"], "-t", trace).status == 0
    ran = rr("replay", recorded.builds["output"], trace, "--component-changed")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran).startswith("the build departed from the recording: the guest's stdout differs from "
                                   "the recording at byte 0 ")
    recorded_line, replayed_line = ran.err.splitlines()[1:3]
    assert recorded_line.startswith("  recorded: | 'bytes ") and replayed_line.startswith("  replayed: | 'BYTES ")


def test_a_build_that_asks_for_something_else_is_stopped_there(recorded: Recorded) -> None:
    ran = regression(recorded, "calls")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran) == "the build departed from the recording at event 2"
    lines = ran.err.splitlines()
    assert lines[1].startswith("  recorded next:    wasi:random/insecure.get-insecure-random-bytes(8) -> <8 bytes ")
    assert lines[2] == "  the build asked:  wasi:random/insecure.get-insecure-random-bytes(4)"
    context = lines[4:]
    assert [line.split()[0] for line in context] == ["0", "1", ">>", "3", "4"]
    assert "wasi:random/insecure.get-insecure-random-bytes(8)" in context[2]
    assert ran.stdout == b""   # the guest writes its lines at the end, which it never reached


def test_a_build_that_asks_for_less_leaves_recorded_events(recorded: Recorded) -> None:
    ran = regression(recorded, "fewer")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran).startswith("the build departed from the recording: the guest finished (exit status 0) "
                                   "but the trace has more events from event 4")
    assert "wasi:random/insecure-seed.insecure-seed()" in ran.err.splitlines()[1]


def test_a_build_that_asks_for_more_than_was_recorded(recorded: Recorded) -> None:
    ran = regression(recorded, "more")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran) == "the build departed from the recording at event 5"
    assert ran.err.splitlines()[1:3] == ["  recorded next:    nothing (the recording ends here)",
                                         "  the build asked:  wasi:random/random.get-random-u64()"]


def test_a_build_that_ends_otherwise(recorded: Recorded) -> None:
    ran = regression(recorded, "exit")
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran) == ("the build departed from the recording: the recording ended with exit status 0, "
                            "the build with exit status 1")
    assert ran.stdout == recorded.stdout


def test_without_the_flag_another_build_is_refused(recorded: Recorded) -> None:
    ran = rr("replay", recorded.builds["unchanged"], recorded.trace)
    assert ran.status == EXIT_BAD_TRACE and "was recorded with a different component" in ran.err


def test_regression_replay_mistakes(recorded: Recorded, tmp_path: Path) -> None:
    ran = rr("replay", recorded.builds["calls"], recorded.trace, "--component-changed", "--until", "1")
    assert ran.status == EXIT_USAGE and len(ran.err.splitlines()) == 1, ran.err
    ran = rr("replay", recorded.builds["calls"], tmp_path / "missing.cbor", "--component-changed")
    assert (ran.status, ran.err) == (EXIT_BAD_TRACE, f"rr: {tmp_path / 'missing.cbor'}: no such file\n")
    corrupt = tmp_path / "corrupt.cbor"
    data = bytearray(recorded.trace.read_bytes())
    data[-10] ^= 1
    corrupt.write_bytes(bytes(data))
    ran = rr("replay", recorded.builds["unchanged"], corrupt, "--component-changed")
    assert ran.status == EXIT_BAD_TRACE and "corrupt record" in ran.err and len(ran.err.splitlines()) == 1, ran.err


def test_a_build_that_sends_another_http_request(tmp_path: Path) -> None:
    """The committed http_post guest, and a build of it whose content-type constant differs by
    one byte (patched in its data): the request it sends is not the recorded one."""
    original = guests.c_guest("http_post")
    data = original.read_bytes()
    assert data.count(b"application/octet-stream") == 1
    patched = tmp_path / "http_post_patched.wasm"
    patched.write_bytes(data.replace(b"application/octet-stream", b"application/octet-strean"))
    trace = tmp_path / "post.cbor"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}   # mitmproxy's CA, private to the test
    with TestServer() as server:
        ran = rr("record", "--allow-http", f"127.0.0.1:{server.port}", original, "-t", trace, "--",
                 server.url("/echo"), stdin=b"the body\n", env=env)
        assert ran.status == 0, ran.err

    same = rr("replay", original, trace, "--component-changed", env=env)
    assert same.status == 0 and same.stdout == ran.stdout, same.err
    ran = rr("replay", patched, trace, "--component-changed", env=env)
    assert ran.status == EXIT_DIVERGED, ran.err
    assert verdict(ran) == "the build departed from the recording: the guest's HTTP request differs from the recording"
    assert ran.err.splitlines()[1:] == [
        f"flow 1: POST {server.url('/echo')}: differs from recorded flow 1",
        "  header content-type: recorded 'application/octet-stream', now 'application/octet-strean'"]


def test_a_server_trace_is_refused(tmp_path: Path) -> None:
    """`rr serve` traces replay request by request (rr replay --request): not a command run."""
    import urllib.request
    trace = tmp_path / "serve.cbor"
    server = guests.Served(guests.c_guest("serve_c"), "-t", str(trace))
    try:
        with urllib.request.urlopen(server.url("/"), timeout=60) as response:
            assert response.status == 200
    finally:
        server.stop()
    ran = rr("replay", guests.c_guest("serve_c"), trace, "--component-changed")
    assert ran.status == EXIT_USAGE, ran.err
    assert ran.err == f"rr: --component-changed: {trace} is a server trace (rr serve -t): a regression " \
                      "replay takes a command's trace\n"


def test_a_cut_short_trace_is_said_to_be(recorded: Recorded, tmp_path: Path) -> None:
    cut = tmp_path / "cut.cbor"
    cut.write_bytes(recorded.trace.read_bytes()[:-3])     # the outcome record torn
    ran = rr("replay", recorded.builds["unchanged"], cut, "--component-changed")
    assert ran.status == EXIT_BAD_TRACE, ran.err
    assert verdict(ran).startswith("the build asked for the same 5 events as recorded, but the trace is "
                                   "incomplete (truncated after 5 events")
