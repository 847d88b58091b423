"""`rr record` then `rr replay`: same bytes out, same status, from the trace alone.

Every run is a real `python -m rr` subprocess, so each replay is a fresh process whose
real clock and entropy differ from the recording's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import guests

RR = [sys.executable, "-m", "rr"]


def rr(*args: str, stdin: bytes = b"", timeout: float = 60) -> guests.Ran:
    done = subprocess.run([*RR, *args], input=stdin, capture_output=True, timeout=timeout,
                          cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def guest_stderr(ran: guests.Ran) -> bytes:
    """The guest's stderr: rr's own lines (`rr: ...`) removed."""
    return b"".join(line for line in ran.stderr.splitlines(keepends=True) if not line.startswith(b"rr: "))


C_CASES = {
    "clock": (["5"], b""),
    "random": ([], b""),
    "args_env": (["one", "two words"], b""),
    "echo_stdin": ([], b"line one\nline two\n" * 100),
    "exit_code": (["3"], b""),
    "trap": ([], b""),
}
WAT_CASES = {
    "hello": [], "clock": [], "random": [], "args_env": ["a", "b"], "echo": [],
    "exit": [], "exit_code": [], "trap": [], "poll_many": [], "stderr_and_out": [], "sockets": [],
}


def _record_and_replay_twice(component: Path, args: list[str], stdin: bytes, tmp_path: Path,
                             flags: tuple[str, ...] = ()) -> None:
    trace = tmp_path / "t.cbor"
    recorded = rr("record", str(component), "-t", str(trace), *flags, "--", *args, stdin=stdin)
    assert trace.exists(), recorded.err
    assert b"internal error" not in recorded.stderr, recorded.err
    for _ in range(2):
        # No stdin at all on replay: what the guest read comes from the trace.
        replayed = rr("replay", str(component), str(trace))
        assert replayed.stdout == recorded.stdout
        assert guest_stderr(replayed) == guest_stderr(recorded)
        assert replayed.status == recorded.status, replayed.err


@pytest.mark.parametrize("name", sorted(C_CASES))
def test_c_guest_replays_identically(name: str, tmp_path: Path) -> None:
    args, stdin = C_CASES[name]
    _record_and_replay_twice(guests.c_guest(name), args, stdin, tmp_path, ("--env", "COLOR=blue"))


@pytest.mark.parametrize("name", sorted(WAT_CASES))
def test_wat_guest_replays_identically(name: str, wat_dir: Path, tmp_path: Path) -> None:
    component = wat_dir / f"{name}.wasm"
    if not component.exists():
        pytest.skip(f"{name}.wat does not compile yet")
    _record_and_replay_twice(component, WAT_CASES[name], b"echo me\n", tmp_path, ("--env", "K=V"))


def test_replayed_time_is_the_recorded_time(tmp_path: Path) -> None:
    trace = tmp_path / "clock.cbor"
    recorded = rr("record", str(guests.c_guest("clock")), "-t", str(trace), "--", "1")
    time.sleep(1.1)
    live = rr("run", str(guests.c_guest("clock")), "--", "1")
    replayed = rr("replay", str(guests.c_guest("clock")), str(trace))
    wall = lambda ran: [ln for ln in ran.out.splitlines() if ln.startswith("wall ")]  # noqa: E731
    assert wall(replayed) == wall(recorded)
    assert wall(live) != wall(recorded)


def test_statuses_replay(tmp_path: Path) -> None:
    for name, args, status in (("exit_code", ["3"], 1), ("trap", [], 134)):
        trace = tmp_path / f"{name}.cbor"
        assert rr("record", str(guests.c_guest(name)), "-t", str(trace), "--", *args).status == status
        replayed = rr("replay", str(guests.c_guest(name)), str(trace))
        assert replayed.status == status
    assert "unreachable" in rr("replay", str(guests.c_guest("trap")), str(tmp_path / "trap.cbor")).err


# ------------------------------------------------------------------ bad input


@pytest.fixture
def random_trace(tmp_path: Path) -> Path:
    trace = tmp_path / "random.cbor"
    assert rr("record", str(guests.c_guest("random")), "-t", str(trace)).status == 0
    return trace


def _one_line_error(ran: guests.Ran, status: int, *words: str) -> None:
    assert ran.status == status, ran.err
    lines = [ln for ln in ran.err.splitlines() if ln.startswith("rr: ")]
    assert lines, ran.err
    assert "Traceback" not in ran.err
    for word in words:
        assert word in ran.err


def test_modified_component_is_refused_with_both_hashes(random_trace: Path, tmp_path: Path) -> None:
    original = guests.c_guest("random").read_bytes()
    modified = tmp_path / "random.wasm"
    modified.write_bytes(original + b"\x00\x05\x04note")  # a valid extra custom section
    ran = rr("replay", str(modified), str(random_trace))
    import hashlib
    _one_line_error(ran, 122, hashlib.sha256(original).hexdigest(),
                    hashlib.sha256(modified.read_bytes()).hexdigest())


def test_truncated_trace_replays_up_to_the_cut_and_says_so(random_trace: Path, tmp_path: Path) -> None:
    data = random_trace.read_bytes()
    cut = tmp_path / "cut.cbor"
    cut.write_bytes(data[: len(data) - 30])  # the outcome and part of the last event are gone
    ran = rr("replay", str(guests.c_guest("random")), str(cut))
    _one_line_error(ran, 122, "incomplete")
    assert ran.out.startswith("random ")


def test_corrupt_byte_in_the_middle(random_trace: Path, tmp_path: Path) -> None:
    data = bytearray(random_trace.read_bytes())
    header_end = data.index(b"start_time") + 20
    data[header_end + 2] = 0xFF  # a reserved CBOR initial byte inside the first event
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(bytes(data))
    _one_line_error(rr("replay", str(guests.c_guest("random")), str(bad)), 122, "bad.cbor")


def test_empty_and_foreign_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.cbor"
    empty.write_bytes(b"")
    _one_line_error(rr("replay", str(guests.c_guest("random")), str(empty)), 122, "empty")
    png = tmp_path / "pic.cbor"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    _one_line_error(rr("replay", str(guests.c_guest("random")), str(png)), 122, "not an rr trace")
    _one_line_error(rr("replay", str(guests.c_guest("random")), str(tmp_path / "missing.cbor")), 122, "no such file")


def test_json_trace_named_cbor_still_replays(random_trace: Path, tmp_path: Path) -> None:
    as_json = tmp_path / "really-json.cbor"
    assert rr("convert", str(random_trace), str(as_json), "-f", "json").status == 0
    assert as_json.read_bytes().startswith(b"{")
    recorded_out = rr("replay", str(guests.c_guest("random")), str(random_trace)).stdout
    assert rr("replay", str(guests.c_guest("random")), str(as_json)).stdout == recorded_out


def test_record_never_overwrites(random_trace: Path) -> None:
    before = random_trace.read_bytes()
    ran = rr("record", str(guests.c_guest("random")), "-t", str(random_trace))
    _one_line_error(ran, 125, "--force")
    assert random_trace.read_bytes() == before


# ------------------------------------------------------------------ divergence


def test_divergence_names_event_expected_and_actual(tmp_path: Path) -> None:
    trace = tmp_path / "clock.json"
    assert rr("record", str(guests.c_guest("clock")), "-t", str(trace), "--", "20").status == 0
    lines = trace.read_text().splitlines()
    # Make the replayed guest sleep 30 ms instead of 20: its subscribe call then differs.
    edited = [ln.replace('"20"]', '"30"]') if "get-arguments" in ln else ln for ln in lines]
    assert edited != lines
    trace.write_text("\n".join(edited) + "\n")
    ran = rr("replay", str(guests.c_guest("clock")), str(trace))
    assert ran.status == 121, ran.err
    assert "replay diverged at event" in ran.err
    assert "expected" in ran.err and "30000000" in ran.err and "20000000" in ran.err
    assert "Traceback" not in ran.err


def test_unconsumed_events_are_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "echo.json"
    assert rr("record", str(guests.c_guest("echo_stdin")), "-t", str(trace), stdin=b"abc").status == 0
    lines = trace.read_text().splitlines()
    # Pretend the recording saw EOF at once: the guest stops reading, one event is left.
    first_read = next(i for i, ln in enumerate(lines) if "blocking-read" in ln)
    eof = next(ln for ln in lines if '"closed"' in ln)
    trace.write_text("\n".join([*lines[:first_read], eof, *lines[first_read:]]) + "\n")
    ran = rr("replay", str(guests.c_guest("echo_stdin")), str(trace))
    assert ran.status == 121
    assert "the trace has more events" in ran.err


# ------------------------------------------------------------------ partial replay, kill -9


def test_until_stops_cleanly(tmp_path: Path) -> None:
    trace = tmp_path / "random.cbor"
    full = rr("record", str(guests.c_guest("random")), "-t", str(trace))
    ran = rr("replay", str(guests.c_guest("random")), str(trace), "--until", "1")
    assert ran.status == 0
    assert "stopped before event 1" in ran.err
    assert full.stdout.startswith(ran.stdout) and ran.stdout != full.stdout


def test_sigkilled_recording_keeps_what_it_had(tmp_path: Path) -> None:
    trace = tmp_path / "killed.cbor"
    proc = subprocess.Popen([*RR, "record", str(guests.c_guest("echo_stdin")), "-t", str(trace)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=guests.REPO, env=guests._clean_env(None))
    assert proc.stdin is not None
    proc.stdin.write(b"first chunk\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while b"first chunk" not in (trace.read_bytes() if trace.exists() else b""):
        assert time.monotonic() < deadline, "the event never reached the trace file"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    inspected = rr("inspect", str(trace))
    assert inspected.status == 0
    assert "INCOMPLETE" in inspected.out
    replayed = rr("replay", str(guests.c_guest("echo_stdin")), str(trace))
    assert replayed.stdout == b"first chunk\n"
    assert replayed.status == 122 and "incomplete" in replayed.err


# ------------------------------------------------------------------ convert, inspect


def test_convert_roundtrip_is_byte_identical(random_trace: Path, tmp_path: Path) -> None:
    as_json, back = tmp_path / "t.jsonl", tmp_path / "back.cbor"
    assert rr("convert", str(random_trace), str(as_json)).status == 0
    assert rr("convert", str(as_json), str(back)).status == 0
    assert back.read_bytes() == random_trace.read_bytes()


def test_inspect_human_and_json(random_trace: Path) -> None:
    human = rr("inspect", str(random_trace))
    assert "component  random.wasm" in human.out
    assert "wasi:random/random.get-random-bytes(16)" in human.out
    lines = [json.loads(line) for line in rr("inspect", "--json", str(random_trace)).out.splitlines()]
    assert lines[0]["header"]["component"]["name"] == "random.wasm"
    outcome = lines[-1]["outcome"]
    assert (outcome["kind"], outcome["status"], outcome["output"]["stdout"]["size"]) == ("exit", 0, 81)
    assert lines[-1]["counts"]["wasi:random/random"] == 2
