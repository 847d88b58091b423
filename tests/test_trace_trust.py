"""Trusting a trace, end to end with real guests and the real CLI: corruption is always
caught (122), a cut-short trace always says so (122), replay reads a pipe, writing never
destroys a trace (kill -9, a failed link, a full tmpfs), and the format-v1 fixtures recorded
by an older rr still replay."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cbor2
import pytest

import guests
from httpservers import TestServer
from rr import runner, session
from rr.errors import EXIT_BAD_TRACE, EXIT_DIVERGED, EXIT_OUTPUT, EXIT_USAGE
from rr.trace import TraceWriter, open_trace, read_trace

RR = [sys.executable, "-m", "rr"]
V1 = guests.REPO / "tests" / "data" / "v1"
RANDOM = guests.c_guest("random")
ENV = guests._clean_env({"PYTHONPATH": str(guests.REPO)})


def rr(*argv: str | Path, cwd: Path, stdin: bytes = b"") -> guests.Ran:
    done = subprocess.run([*RR, *map(str, argv)], input=stdin, capture_output=True, cwd=cwd,
                          timeout=guests.RUN_TIMEOUT, env=ENV)
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def one_line(ran: guests.Ran) -> str:
    lines = ran.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rr: ") and "Traceback" not in ran.err, ran.err
    return lines[0]


def frames(data: bytes) -> list[bytes]:
    """The frames of a v2 CBOR trace after its magic, heads included."""
    out, at = [], 3
    while at < len(data):
        head = data[at]
        size = 1 if head < 0x58 else 1 + (1 << (head - 0x58))
        n = head - 0x40 if head < 0x58 else int.from_bytes(data[at + 1:at + size], "big")
        out.append(data[at:at + size + n])
        at += size + n
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    d = tmp_path_factory.mktemp("trust")
    ran = rr("record", RANDOM, "-t", "r.cbor", cwd=d)
    assert ran.status == 0, ran.err
    return d / "r.cbor", ran.stdout


def test_every_corruption_of_a_real_trace_is_refused(tmp_path: Path, recorded: tuple[Path, bytes]) -> None:
    """Each byte of a real recording flipped (three ways) and replayed in-process: every one
    ends as a bad trace (122) -- corrupt, or incomplete where a cut cannot be told apart --
    never as a replay that looks fine. Plus a sample of the same through `rr replay`."""
    trace, out = recorded
    data = trace.read_bytes()
    program = runner.load(RANDOM)
    bad = tmp_path / "bad.cbor"
    outcomes: dict[str, int] = {}
    for off in range(len(data)):
        for mask in (0x01, 0x40, 0xff):
            changed = bytearray(data)
            changed[off] ^= mask
            bad.write_bytes(changed)
            try:
                result = session.replay(program, str(bad), io.BytesIO(), io.BytesIO())
            except session.BadTrace as e:
                kind = "corrupt" if "corrupt" in str(e) or "after the outcome" in str(e) else "other bad trace"
            else:
                assert result.incomplete, (off, mask)   # the CLI turns it into 122
                kind = "incomplete"
            outcomes[kind] = outcomes.get(kind, 0) + 1
    print("\n", outcomes)
    # the outcome frame's own length bytes (two: with its output digests it is over 255 bytes)
    assert outcomes.get("incomplete", 0) <= 6
    for off in random.Random(7).sample(range(3, len(data)), 4):
        changed = bytearray(data)
        changed[off] ^= 0x10
        bad.write_bytes(changed)
        ran = rr("replay", RANDOM, bad, cwd=tmp_path)
        assert ran.status == EXIT_BAD_TRACE, (off, ran.err)
        assert "corrupt" in one_line(ran) or "incomplete" in ran.err


def test_gzipped_corruption_is_refused(tmp_path: Path) -> None:
    """Every flipped bit of a .cbor.gz: a TraceError, an incomplete trace, or -- where the bit
    only reshapes deflate's framing (the empty blocks of a sync flush) -- the very same trace."""
    assert rr("record", RANDOM, "-t", "r.cbor.gz", cwd=tmp_path).status == 0
    data = (tmp_path / "r.cbor.gz").read_bytes()
    original = read_trace(tmp_path / "r.cbor.gz")
    for off in range(10, len(data)):
        for mask in (0x04, 0x80):
            changed = bytearray(data)
            changed[off] ^= mask
            (tmp_path / "bad.cbor.gz").write_bytes(changed)
            try:
                t = read_trace(tmp_path / "bad.cbor.gz")
            except Exception as e:  # noqa: BLE001 - the assertion is on its type
                assert type(e).__name__ == "TraceError", repr(e)
            else:
                assert not t.complete or t == original, (off, mask)


def test_a_trace_cut_short_says_so_even_when_it_covers_the_run(tmp_path: Path,
                                                               recorded: tuple[Path, bytes]) -> None:
    trace, out = recorded
    data = trace.read_bytes()
    parts = frames(data)
    (tmp_path / "no-outcome.cbor").write_bytes(data[:3] + b"".join(parts[:-1]))
    (tmp_path / "torn.cbor").write_bytes(data[:3] + b"".join(parts[:-1]) + parts[-1][:4])
    for name in ("no-outcome.cbor", "torn.cbor"):
        ran = rr("replay", RANDOM, name, cwd=tmp_path)
        assert ran.status == EXIT_BAD_TRACE and ran.stdout == out
        assert "trace is incomplete" in one_line(ran)


def test_sigkilled_recording_replays_as_incomplete(tmp_path: Path) -> None:
    trace = tmp_path / "k.cbor"
    proc = subprocess.Popen([*RR, "record", str(guests.c_guest("echo_stdin")), "-t", str(trace)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=ENV, cwd=tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(b"first line\n")
    proc.stdin.flush()
    for _ in range(400):   # until the stdin chunk is on disk (bounded: 20 s)
        if trace.exists() and b"first line" in trace.read_bytes():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ran = rr("replay", guests.c_guest("echo_stdin"), trace, cwd=tmp_path)
    assert ran.status == EXIT_BAD_TRACE and ran.stdout.startswith(b"first line\n")
    assert "trace is incomplete" in one_line(ran)


def test_corruption_found_after_the_guest_finished_is_one_line(tmp_path: Path, recorded: tuple[Path, bytes]) -> None:
    trace, out = recorded
    data = trace.read_bytes()
    last = len(frames(data)[-1])
    changed = bytearray(data)
    changed[len(data) - last + 3] ^= 0x01            # inside the outcome record
    (tmp_path / "bad-outcome.cbor").write_bytes(changed)
    (tmp_path / "garbage.cbor").write_bytes(data + b"\x00 trailing garbage")
    ran = rr("replay", RANDOM, "bad-outcome.cbor", cwd=tmp_path)
    assert ran.status == EXIT_BAD_TRACE and ran.stdout == out
    assert "corrupt record" in one_line(ran) and "checksum mismatch" in ran.err
    ran = rr("replay", RANDOM, "garbage.cbor", cwd=tmp_path)
    assert ran.status == EXIT_BAD_TRACE and ran.stdout == out
    assert f"data after the outcome record, at byte {len(data)}" in one_line(ran)


def _http_trace(directory: Path, server: TestServer) -> Path:
    ran = rr("record", "--allow-http", "127.0.0.1", guests.c_guest("http_get"), "-t", "h.cbor", "--",
             server.url("/plain"), cwd=directory)
    assert ran.status == 0, ran.err
    return directory / "h.cbor"


def test_http_trace_from_a_pipe_and_cut_short(tmp_path: Path) -> None:
    with TestServer() as server:
        trace = _http_trace(tmp_path, server)
        live = rr("replay", guests.c_guest("http_get"), trace, cwd=tmp_path)
    assert live.status == 0, live.err
    # replay reads the trace from a pipe (as from `<(cat h.cbor)`), server gone
    ran = rr("replay", guests.c_guest("http_get"), "/dev/stdin", cwd=tmp_path, stdin=trace.read_bytes())
    assert (ran.status, ran.stdout) == (0, live.stdout), ran.err
    # cut just before the exchange's record, as a kill during the request leaves it
    with open_trace(trace) as reader:
        events = list(reader)
        header = reader.header
    flow = next(i for i, e in enumerate(events) if e.call == "wasi:http/outgoing-handler.handle")
    with TraceWriter(tmp_path / "cut.cbor") as w:
        w.write_header(header)
        for e in events[:flow]:
            w.write_event(e)
    ran = rr("replay", guests.c_guest("http_get"), "cut.cbor", cwd=tmp_path)
    assert ran.status == EXIT_BAD_TRACE
    assert "trace is incomplete" in ran.err.splitlines()[-1] and "diverged" not in ran.err, ran.err


def test_jsonl_holds_text_as_text_and_a_hand_edit_is_honoured(tmp_path: Path) -> None:
    echo = guests.c_guest("echo_stdin")
    assert rr("record", echo, "-t", "e.cbor", cwd=tmp_path, stdin=b"hello, world\n").status == 0
    assert rr("convert", "e.cbor", "e.jsonl", cwd=tmp_path).status == 0
    text = (tmp_path / "e.jsonl").read_text()
    assert '{"$utf8": "hello, world\\n"}' in text and "aGVsbG8" not in text
    (tmp_path / "edited.jsonl").write_text(text.replace("hello, world", "HELLO, WORLD"))
    # The edit changes what the guest prints: not the recorded output, which replay checks
    ran = rr("replay", echo, "edited.jsonl", cwd=tmp_path)
    assert ran.status == EXIT_DIVERGED and "the guest's stdout differs" in ran.err
    ran = rr("replay", "--no-output-check", echo, "edited.jsonl", cwd=tmp_path)
    assert (ran.status, ran.stdout) == (0, b"HELLO, WORLD\n"), ran.err
    # sealed again: CBOR with fresh checksums, and back to the same JSONL byte for byte
    assert rr("convert", "edited.jsonl", "sealed.cbor", cwd=tmp_path).status == 0
    assert rr("convert", "sealed.cbor", "again.jsonl", cwd=tmp_path).status == 0
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "edited.jsonl").read_bytes()
    assert rr("replay", "--no-output-check", echo, "sealed.cbor", cwd=tmp_path).stdout == b"HELLO, WORLD\n"


def test_cbor_jsonl_cbor_is_byte_identical_on_real_traces(tmp_path: Path, recorded: tuple[Path, bytes]) -> None:
    trace, _ = recorded
    for gz in ("", ".gz"):
        assert rr("convert", trace, f"a.jsonl{gz}", cwd=tmp_path).status == 0
        assert rr("convert", f"a.jsonl{gz}", f"b.cbor{gz}", cwd=tmp_path).status == 0
        assert rr("convert", f"b.cbor{gz}", "c.cbor", cwd=tmp_path).status == 0
        assert (tmp_path / "c.cbor").read_bytes() == trace.read_bytes()
        (tmp_path / "c.cbor").unlink()


@pytest.mark.parametrize("name,guest,args,output", [
    ("random.cbor", "random", [], b"random 9f5d7c7ed81031bc4dbc11ca6beec172\nrandom2 5395195550c9cf1a68c3305f8f6de521\n"),
    ("random.jsonl", "random", [], b"random 9f5d7c7ed81031bc4dbc11ca6beec172\nrandom2 5395195550c9cf1a68c3305f8f6de521\n"),
    ("clock.cbor.gz", "clock", [], b"wall 1796115529.763924410\n"),
])
def test_format_v1_traces_still_replay(tmp_path: Path, name: str, guest: str, args: list[str], output: bytes) -> None:
    ran = rr("replay", guests.c_guest(guest), V1 / name, cwd=tmp_path)
    assert ran.status == 0 and ran.stdout.startswith(output), ran.err
    v1 = read_trace(V1 / name)
    assert v1.complete and v1.header.version == 2   # migrated on reading
    assert rr("convert", V1 / name, "v2.cbor", cwd=tmp_path).status == 0
    assert (tmp_path / "v2.cbor").read_bytes()[3] in range(0x40, 0x5c)   # now framed
    v2 = read_trace(tmp_path / "v2.cbor")
    assert (v2.header, v2.events, v2.outcome) == (v1.header, v1.events, v1.outcome)
    assert rr("inspect", V1 / name, cwd=tmp_path).out.splitlines()[0].endswith("wasmtime 50.0.1)")


# ------------------------------------------------------------------ writing never destroys

LINK_FAILS = """(component (import "f" (func))
  (core module $m (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $r (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $r)))"""


def test_record_force_keeps_the_old_trace_until_the_new_one_is_whole(tmp_path: Path,
                                                                       recorded: tuple[Path, bytes]) -> None:
    import wasmtime
    old = recorded[0].read_bytes()
    target = tmp_path / "t.cbor"
    target.write_bytes(old)
    (tmp_path / "bad.wasm").write_bytes(wasmtime.wat2wasm(LINK_FAILS))
    ran = rr("record", "bad.wasm", "-t", target, "--force", cwd=tmp_path)
    assert ran.status not in (0, 70) and "unsupported import" in one_line(ran)
    assert target.read_bytes() == old and sorted(os.listdir(tmp_path)) == ["bad.wasm", "t.cbor"]
    # killed while replacing: the old trace is whole, the new prefix is beside it
    proc = subprocess.Popen([*RR, "record", str(guests.c_guest("echo_stdin")), "-t", str(target), "--force"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=ENV, cwd=tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(b"partial\n")
    proc.stdin.flush()
    partial = None
    for _ in range(400):
        partial = next((p for p in tmp_path.glob("t.cbor.*.partial") if b"partial" in p.read_bytes()), None)
        if partial:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert partial is not None and target.read_bytes() == old
    assert not read_trace(partial).complete
    # a finished replacement takes the old one's place
    ran = rr("record", RANDOM, "-t", target, "--force", cwd=tmp_path)
    assert ran.status == 0 and target.read_bytes() != old and read_trace(target).complete


def test_convert_force_with_a_corrupt_input_keeps_the_old_output(tmp_path: Path, recorded: tuple[Path, bytes]) -> None:
    data = recorded[0].read_bytes()
    (tmp_path / "out.jsonl").write_bytes(b"precious\n")
    bad = bytearray(data)
    bad[-8] ^= 0x20
    (tmp_path / "bad.cbor").write_bytes(bad)
    ran = rr("convert", "bad.cbor", "out.jsonl", "--force", cwd=tmp_path)
    assert ran.status == EXIT_BAD_TRACE and "corrupt" in one_line(ran)
    assert (tmp_path / "out.jsonl").read_bytes() == b"precious\n"
    assert sorted(os.listdir(tmp_path)) == ["bad.cbor", "out.jsonl"]


def test_one_line_usage_errors(tmp_path: Path, recorded: tuple[Path, bytes]) -> None:
    shutil.copy(recorded[0], tmp_path / "a.cbor")
    (tmp_path / "link.cbor").symlink_to("a.cbor")
    (tmp_path / "dir.cbor").mkdir()
    for argv, status, said in [
        (["record", RANDOM, "-t", "t.txt"], EXIT_USAGE, "t.txt: cannot tell the trace format from the name"),
        (["record", RANDOM, "-t", "dir.cbor"], EXIT_USAGE, "dir.cbor: is a directory"),
        (["record", RANDOM, "-t", "dir.cbor", "--force"], EXIT_USAGE, "dir.cbor: is a directory"),
        (["convert", "a.cbor", "a.cbor"], EXIT_USAGE, "a.cbor: is the input trace itself"),
        (["convert", "a.cbor", "link.cbor", "--force"], EXIT_USAGE, "link.cbor: is the input trace itself"),
        (["convert", "a.cbor", f"../{tmp_path.name}/a.cbor", "--force"], EXIT_USAGE, "is the input trace itself"),
        (["convert", "a.cbor", "dir.cbor"], EXIT_USAGE, "dir.cbor: is a directory"),
        (["convert", "a.cbor", "x.txt"], EXIT_USAGE, "x.txt: cannot tell the trace format"),
        (["convert", "dir.cbor", "x.jsonl"], EXIT_BAD_TRACE, "dir.cbor: is a directory, not a trace"),
        (["replay", RANDOM, "dir.cbor"], EXIT_BAD_TRACE, "dir.cbor: is a directory, not a trace"),
        (["inspect", "dir.cbor"], EXIT_BAD_TRACE, "dir.cbor: is a directory, not a trace"),
        (["har", "dir.cbor", "-o", "x.har"], EXIT_BAD_TRACE, "dir.cbor: is a directory, not a trace"),
    ]:
        ran = rr(*argv, cwd=tmp_path)
        assert ran.status == status and said in one_line(ran), (argv, ran.status, ran.err)
    assert (tmp_path / "a.cbor").read_bytes() == recorded[0].read_bytes()


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30)


def test_full_disk_keeps_what_was_recorded(tmp_path: Path, tiny_disk: Path) -> None:
    heavy = guests.build_wat(guests.REPO / "benchmarks" / "guests" / "random_heavy.wat", tmp_path)
    ran = rr("record", heavy, "-t", tiny_disk / "t.cbor", "--", "20000", "0", cwd=tmp_path)
    assert ran.status == EXIT_OUTPUT, ran.err
    line = one_line(ran)
    assert f"{tiny_disk / 't.cbor'}: cannot write the trace: No space left on device" in line
    kept = int(line.split("kept the ")[1].split(" events")[0])
    t = read_trace(tiny_disk / "t.cbor")
    assert not t.complete and len(t.events) in (kept, kept - 1) and kept > 1000
    # a disk too full for even the header leaves no file behind to block the next recording
    (tiny_disk / "t.cbor").unlink()
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        for _ in range(10_000):   # 64 KiB fill up after 16
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    ran = rr("record", RANDOM, "-t", tiny_disk / "t.cbor", cwd=tmp_path)
    assert ran.status == EXIT_OUTPUT and "nothing was kept" in one_line(ran)
    assert not (tiny_disk / "t.cbor").exists()
    (tiny_disk / "filler").unlink()
    assert rr("record", RANDOM, "-t", tiny_disk / "t.cbor", cwd=tmp_path).status == 0
    assert read_trace(tiny_disk / "t.cbor").complete
