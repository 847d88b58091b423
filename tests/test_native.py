"""The native host-call path (rr/_native.c) against the Python path, its reference.

Each path replays the other's recordings; a native recording is byte for byte what the Python
encoder writes for the same events; a bad or unexpected event is reported with the same
message and exit status; stops and --until land on the same host call. (The whole suite also
runs once with RR_NATIVE=0: see README, "Run the tests".)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import guests
from rr import native, runner, session
from rr.host.context import Sandbox
from rr.host.wit import INTERFACES
from rr.trace import Event, TraceWriter, convert, read_trace
from rr.trace.cbor import CborEncoder

pytestmark = pytest.mark.skipif(native._native is None, reason="rr._native is not built (no C compiler)")

BENCH = guests.REPO / "benchmarks" / "guests"
PATHS = {"native": "1", "python": "0"}
RR = [sys.executable, "-m", "rr"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("native-guests")
    return {
        "hostcall_loop": guests.build_wat(BENCH / "hostcall_loop.wat", out),
        "random_heavy": guests.build_wat(BENCH / "random_heavy.wat", out),
        "clock": guests.build_wat(guests.WAT_DIR / "clock.wat", out),
        "random": guests.build_wat(guests.WAT_DIR / "random.wat", out),
    }


def _record(program: runner.Program, argv: list[str], trace: Path, path: str,
            monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("RR_NATIVE", PATHS[path])
    out = io.BytesIO()
    rec = session.record(program, Sandbox(argv=argv, stdout=out, stderr=out), trace, overwrite=True)
    assert (rec.outcome.kind, rec.outcome.status) == ("exit", 0), rec.outcome
    return out.getvalue()


def _replay(program: runner.Program, trace: Path, path: str, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("RR_NATIVE", PATHS[path])
    out = io.BytesIO()
    rep = session.replay(program, str(trace), out, out)
    assert (rep.outcome.kind, rep.outcome.status) == ("exit", 0), rep.outcome
    return out.getvalue()


def _count_python_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the Python implementations of the native calls run (patched where link finds them)."""
    count = [0]
    for call in native.OPS:
        base, _, item = call.partition(".")
        funcs = INTERFACES[base].funcs
        def counted(*a, _impl=funcs[item]):  # type: ignore[no-untyped-def]
            count[0] += 1
            return _impl(*a)
        monkeypatch.setitem(funcs, item, counted)
    return count


CASES = [("hostcall_loop", ["random", "300"]), ("hostcall_loop", ["now", "300"]),
         ("random_heavy", ["150", "150"]), ("clock", []), ("random", [])]


@pytest.mark.parametrize("recorder", ["native", "python"])
@pytest.mark.parametrize("guest,args", CASES, ids=[f"{g}-{'-'.join(a)}" for g, a in CASES])
def test_each_path_replays_the_others_recording_byte_for_byte(
        built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        recorder: str, guest: str, args: list[str]) -> None:
    program = runner.load(built[guest])
    trace = tmp_path / "t.cbor"
    python_calls = _count_python_calls(monkeypatch)
    printed = _record(program, [guest, *args], trace, recorder, monkeypatch)
    events = read_trace(trace).events
    native_events = sum(e.call in native.OPS for e in events)
    # Natively, only the first event of each call is Python's (its call definition comes first).
    assert python_calls[0] == (len({e.call for e in events} & set(native.OPS)) if recorder == "native"
                               else native_events)
    other = "python" if recorder == "native" else "native"
    python_calls[0] = 0
    assert _replay(program, trace, other, monkeypatch) == printed
    assert python_calls[0] == (native_events if other == "python" else 0)
    assert _replay(program, trace, recorder, monkeypatch) == printed
    # The Python encoder writes the same events to the same bytes: the native frames are its own.
    again = tmp_path / "again.cbor"
    convert(trace, again)
    assert again.read_bytes() == trace.read_bytes()
    assert len(events) >= (300 if guest == "hostcall_loop" else 3)


def test_the_native_encoder_writes_the_python_encoders_frames() -> None:
    """Every call at the CBOR head-size boundaries of its code, argument and values."""
    calls = list(native.OPS.items())
    edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    for name, (op, shape) in calls:
        for code in (0, 23, 24, 255, 256):
            enc = CborEncoder()
            enc._codes = {f"c{i}": i for i in range(code)} | {name: code}
            for crc in (0, 0xDEADBEEF):
                if shape == "bytes":
                    cases = [(n, b"\xa5" * n) for n in (0, 1, 23, 24, 255, 256, 70000)]
                    for n, data in cases:
                        enc.state.crc = crc
                        want = bytes(enc.event(Event(name, [n], data)))
                        got, got_crc = native._native.encode(op, code, n, 0, 0, data, crc)
                        assert (got, got_crc) == (want, enc.state.crc), (name, code, n)
                    continue
                for a in edges:
                    b = 999_999_999 if shape == "datetime" else a
                    result: object = a if shape == "u64" else [a, b]
                    enc.state.crc = crc
                    want = bytes(enc.event(Event(name, [], result)))
                    got, got_crc = native._native.encode(op, code, 0, a, b, b"", crc)
                    assert (got, got_crc) == (want, enc.state.crc), (name, code, a)


# ------------------------------------------------------------------ the same reports on both paths


def _rewrite(src: Path, dst: Path, edit) -> None:  # type: ignore[no-untyped-def]
    trace = read_trace(src)
    with TraceWriter(dst) as w:
        w.write_header(trace.header)
        for e in edit(list(trace.events)):
            w.write_event(e)
        assert trace.outcome is not None
        w.write_outcome(trace.outcome)


def _at(events: list[Event], call: str, nth: int = 0) -> int:
    return [i for i, e in enumerate(events) if e.call == call][nth]


def _set(which: str, nth: int, **change):  # type: ignore[no-untyped-def]
    def edit(events: list[Event]) -> list[Event]:
        i = _at(events, which, nth)
        e = events[i]
        events[i] = Event(change.get("call", e.call), change.get("args", e.args), change.get("result", e.result),
                          change.get("failed", e.failed))
        return events
    return edit


U64 = "wasi:random/random.get-random-u64"
NOW = "wasi:clocks/wall-clock.now"
MONO = "wasi:clocks/monotonic-clock.now"
BYTES = "wasi:random/random.get-random-bytes"
MUTANTS = {
    "u64 negative": ("hostcall_loop", ["random", "5"], _set(U64, 2, result=-1)),
    "u64 too big": ("hostcall_loop", ["random", "5"], _set(U64, 3, result=2**64)),
    "u64 not an int": ("hostcall_loop", ["random", "5"], _set(U64, 1, result="7")),
    "u64 bool": ("hostcall_loop", ["random", "5"], _set(U64, 1, result=True)),
    "u64 failed": ("hostcall_loop", ["random", "5"], _set(U64, 2, failed=True)),
    "u64 with args": ("hostcall_loop", ["random", "5"], _set(U64, 2, args=[1])),
    "another call": ("hostcall_loop", ["random", "5"], _set(U64, 2, call=NOW, result=[1, 2])),
    "trace ends": ("hostcall_loop", ["random", "5"], lambda evs: evs[:-2]),
    "nanoseconds": ("hostcall_loop", ["now", "5"], _set(NOW, 2, result=[5, 1_000_000_000])),
    "datetime short": ("hostcall_loop", ["now", "5"], _set(NOW, 1, result=[5])),
    "monotonic goes back": ("clock", [], _set(MONO, 1, result=0)),
    "bytes too short": ("random", [], _set(BYTES, 0, result=b"\1" * 15)),
    "bytes asked for 17": ("random", [], _set(BYTES, 0, args=[17])),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_a_bad_or_unexpected_event_is_reported_alike(built: dict[str, Path], tmp_path: Path, mutant: str) -> None:
    guest, args, edit = MUTANTS[mutant]
    trace, bad = tmp_path / "t.cbor", tmp_path / "bad.cbor"
    recorded = guests._run([*RR, "record", str(built[guest]), "-t", str(trace), "--", *args], b"",
                           guests._clean_env({"RR_NATIVE": "0"}), guests.RUN_TIMEOUT)
    assert recorded.status == 0, recorded.err
    _rewrite(trace, bad, edit)
    ran = {path: guests._run([*RR, "replay", str(built[guest]), str(bad)], b"",
                             guests._clean_env({"RR_NATIVE": flag}), guests.RUN_TIMEOUT)
           for path, flag in PATHS.items()}
    assert ran["native"].status in (121, 122), ran["native"].err
    assert (ran["native"].status, ran["native"].err, ran["native"].out) == \
           (ran["python"].status, ran["python"].err, ran["python"].out)





@pytest.mark.parametrize("recorder", ["native", "python"])
def test_a_stopped_recording_replays_to_the_same_host_call_on_both_paths(
        built: dict[str, Path], tmp_path: Path, recorder: str) -> None:
    trace = tmp_path / "t.cbor"
    loop = str(built["hostcall_loop"])
    rec = guests._run([*RR, "record", loop, "-t", str(trace), "--timeout", "0.5", "--", "now", "1000000000"],
                      b"", guests._clean_env({"RR_NATIVE": PATHS[recorder]}), guests.RUN_TIMEOUT)
    assert rec.status == 124, rec.err
    outcome = read_trace(trace).outcome
    assert outcome is not None and outcome.kind == "timeout" and outcome.calls > 10
    for path, flag in PATHS.items():
        rep = guests._run([*RR, "replay", loop, str(trace)], b"", guests._clean_env({"RR_NATIVE": flag}),
                          guests.RUN_TIMEOUT)
        assert rep.status == 124, (path, rep.err)
        assert f"(after {outcome.event} events)" in rep.err, (path, rep.err)


def test_until_stops_at_the_same_event_on_both_paths(built: dict[str, Path], tmp_path: Path) -> None:
    trace = tmp_path / "t.cbor"
    rand = str(built["random"])
    assert guests._run([*RR, "record", rand, "-t", str(trace)], b"", guests._clean_env(None), 60).status == 0
    got = {path: guests._run([*RR, "replay", rand, str(trace), "--until", "3"], b"",
                             guests._clean_env({"RR_NATIVE": flag}), 60) for path, flag in PATHS.items()}
    assert got["native"].stdout == got["python"].stdout and got["native"].err == got["python"].err
    assert got["native"].status == got["python"].status


def test_verbose_says_which_path(built: dict[str, Path]) -> None:
    for flag, says in (("1", "native path"), ("0", "Python path (RR_NATIVE=0)")):
        ran = guests.rr_run(built["random"], flags=["-v"], env={"RR_NATIVE": flag})
        assert ran.status == 0 and f"host calls: {says}" in ran.err, ran.err


def test_the_native_event_reader_reads_what_the_python_reader_reads(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Values the C decoder reads itself and values it leaves to cbor2, side by side."""
    values = [0, 23, 24, 2**64 - 1, 2**64, -1, -2**64, -2**64 - 1, 2**200, b"", b"\0" * 300, "", "é€𝄞",
              True, False, None, 1.5, [], [[[]]], [1, [b"x", ["y", None]]], {"io-error": "closed"},
              [[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]
    trace = tmp_path / "v.cbor"
    from rr.trace import ComponentInfo, Header, Outcome
    events = [Event(f"wasi:x/y.f{i % 3}", [v, i], v, failed=i % 4 == 3) for i, v in enumerate(values)]
    with TraceWriter(trace) as w:
        w.write_header(Header(rr_version="t", wasmtime_version="50", component=ComponentInfo("0" * 64, 1, "a"),
                              argv=[], env=[], dirs=[], start_time=0.0))
        for e in events:
            w.write_event(e)
        w.write_outcome(Outcome.exit(0))
    read = {}
    for path, flag in PATHS.items():
        monkeypatch.setenv("RR_NATIVE", flag)
        read[path] = read_trace(trace)
    assert read["native"] == read["python"]
    assert read["native"].events == events


# ------------------------------------------------------------------ the replay cursor


def _cursors(monkeypatch: pytest.MonkeyPatch) -> list:  # type: ignore[type-arg]
    """The native cursors the trace reader makes (rr/trace/cbor.py), as they are made."""
    from rr.trace import cbor
    made = []
    def keep(*a):  # type: ignore[no-untyped-def]
        cursor, data = real(*a)
        if cursor is not None:
            made.append(cursor)
        return cursor, data
    real = cbor._cursor
    monkeypatch.setattr(cbor, "_cursor", keep)
    return made


@pytest.mark.parametrize("guest,args", [("hostcall_loop", ["random", "300"]), ("hostcall_loop", ["now", "300"]),
                                        ("random_heavy", ["150", "150"])], ids=["random", "now", "heavy"])
def test_native_calls_take_their_events_from_the_cursor(built: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, guest: str,
                                                        args: list[str]) -> None:
    program = runner.load(built[guest])
    trace = tmp_path / "t.cbor"
    printed = _record(program, [guest, *args], trace, "native", monkeypatch)
    events = read_trace(trace).events
    made = _cursors(monkeypatch)
    python_calls = _count_python_calls(monkeypatch)
    assert _replay(program, trace, "native", monkeypatch) == printed
    assert python_calls[0] == 0
    [cursor] = made
    # All but the first event, the last and those beside other calls (stdout writes, ...).
    native_events = sum(e.call in native.OPS for e in events)
    assert native_events - 10 <= cursor.taken < native_events, (cursor.taken, native_events)
    made.clear()
    assert _replay(program, trace, "python", monkeypatch) == printed
    assert made == []   # RR_NATIVE=0: no cursor


def _read_all(source, name: str):  # type: ignore[no-untyped-def]
    from rr.trace import TraceError, open_trace
    try:
        with open_trace(source, name=name) as reader:
            events = list(reader)
            return ("read", reader.header, events, reader.outcome, reader.problem)
    except TraceError as e:
        return ("error", str(e))


def test_the_cursor_reads_and_refuses_what_the_streaming_reader_does(built: dict[str, Path], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded mutants of real recordings (tests/tracefuzz.py's byte and sealed mutations): read from
    the mapped file through the cursor, streamed (an open stream is never mapped) and on the Python
    path, each gives the same events, outcome and problem, or the same message."""
    import random

    import tracefuzz as tf
    sources = []
    for guest, args in (("hostcall_loop", ["random", "40"]), ("clock", []), ("random", [])):
        trace = tmp_path / f"{guest}.cbor"
        _record(runner.load(built[guest]), [guest, *args], trace, "native", monkeypatch)
        sources.append(trace.read_bytes())
    kinds = [*tf.BYTE_MUTATIONS, *tf.SEALED_MUTATIONS]
    rng = random.Random(11)
    made = _cursors(monkeypatch)
    mutant, compared, mapped_ones = tmp_path / "m.cbor", 0, 0
    for i in range(400):
        data, kind = rng.choice(sources), kinds[i % len(kinds)]
        try:
            out, _ = (tf.BYTE_MUTATIONS.get(kind) or tf.SEALED_MUTATIONS[kind])(rng, data, "cbor")
        except tf.NotApplicable:
            continue
        mutant.write_bytes(out)
        monkeypatch.setenv("RR_NATIVE", "1")
        made.clear()
        mapped = _read_all(mutant, "m.cbor")
        mapped_ones += bool(made)
        streamed = _read_all(io.BytesIO(out), "m.cbor")
        monkeypatch.setenv("RR_NATIVE", "0")
        python = _read_all(mutant, "m.cbor")
        assert mapped == streamed == python, (i, kind)
        compared += 1
    assert compared > 300 and mapped_ones > compared / 2


def test_the_pages_behind_the_cursor_are_given_back_and_read_alike(built: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay gives back the mapping's pages the cursor has passed (rr/trace/cbor.py
    _RELEASE_EVERY, or its memory grows with the trace); given back at every page, a real
    recording still reads as it does streamed, and replays."""
    import mmap

    from rr.trace import cbor
    program = runner.load(built["hostcall_loop"])
    trace = tmp_path / "r.cbor"
    printed = _record(program, ["hostcall_loop", "random", "5000"], trace, "native", monkeypatch)
    assert trace.stat().st_size > 8 * mmap.PAGESIZE
    monkeypatch.setenv("RR_NATIVE", "1")
    streamed = _read_all(io.BytesIO(trace.read_bytes()), "r.cbor")
    monkeypatch.setattr(cbor, "_RELEASE_EVERY", 1)
    made = _cursors(monkeypatch)
    assert _read_all(trace, "r.cbor") == streamed and made
    assert _replay(program, trace, "native", monkeypatch) == printed


def test_native_recording_counts_in_the_writers_state(built: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The events the recording reports are the trace's, on both paths: the C recorder counts in
    the same state object as TraceWriter and SharedWriter (rr/trace/cbor.py ChainState)."""
    program = runner.load(built["random_heavy"])
    for path, flag in PATHS.items():
        monkeypatch.setenv("RR_NATIVE", flag)
        trace = tmp_path / f"{path}.cbor"
        out = io.BytesIO()
        rec = session.record(program, Sandbox(argv=["random_heavy", "40", "40"], stdout=out, stderr=out), trace)
        assert rec.events == len(read_trace(trace).events) >= 80, path


def test_the_trace_lock_behaves_as_a_threading_lock() -> None:
    import threading
    lock = native._native.Lock()
    assert not lock.locked()
    with lock:
        assert lock.locked()
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(lock.locked()))
        t.start()
        t.join(30)
        assert got == [True]
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    waited: list[int] = []
    lock.acquire()
    t = threading.Thread(target=lambda: (lock.acquire(), waited.append(1), lock.release()))
    t.start()
    lock.release()   # the waiting thread gets it once this one lets go
    t.join(30)
    assert waited == [1] and not lock.locked()


def test_the_benchmarks_floor_callback_answers_the_native_calls_with_a_constant(
        built: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """bench_run.py's floor column: `rr run` with the native calls bound to a no-op C callback
    (rr/_native.c floor_call) returning (1, 2) for a datetime and 1 for a u64."""
    program = runner.load(built["clock"])
    monkeypatch.setenv("RR_NATIVE", "1")
    monkeypatch.setattr(native, "FLOOR_FOR_BENCHMARK", True)
    out = io.BytesIO()
    outcome = runner.run(program, Sandbox(argv=["clock"], stdout=out, stderr=out))
    assert outcome.kind == "exit", outcome
    assert b"wall 1 2\n" in out.getvalue() and b"mono 1\n" in out.getvalue(), out.getvalue()
    monkeypatch.setattr(native, "FLOOR_FOR_BENCHMARK", False)
    out = io.BytesIO()
    runner.run(program, Sandbox(argv=["clock"], stdout=out, stderr=out))
    assert b"wall 1 2\n" not in out.getvalue(), out.getvalue()


def test_a_killed_mapped_sink_leaves_its_records_then_zeros(tmp_path: Path) -> None:
    """kill -9 of a process writing through MapSink past its first chunks, with more reserved
    ahead: the file holds exactly the records written, then only zero bytes (the reader's end of
    the trace)."""
    import os
    import signal
    path = tmp_path / "sink.bin"
    record = bytes(range(1, 18))   # 17 bytes, as a u64 event's frame
    count = (3 << 20) // len(record) + 5
    pid = os.fork()
    if pid == 0:   # the child: no pytest machinery, just the sink and the kill
        try:
            with open(path, "wb+") as f:
                sink = native._native.MapSink(f.fileno())
                for _ in range(count):
                    sink.write(record)
                sink.reserve(2 << 20)
                sink.reserve(4 << 20)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    data = path.read_bytes()
    written = count * len(record)
    assert len(data) >= written + (4 << 20)
    assert data[:written] == record * count
    assert data[written:].count(0) == len(data) - written
