"""The trace codec on real files: round trips, conversion identity, truncation vs corruption,
format detection, versions, overwrite protection, and the size of a random-heavy trace."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cbor2
import pytest

from rr.trace import (ComponentInfo, Event, Header, Outcome, TraceError, TraceExistsError,
                      TraceWriter, convert, from_jsonable, iter_records, open_trace,
                      read_trace, summarize, to_jsonable)
from rr.trace import versions

REPO = Path(__file__).resolve().parents[1]
HEADER = Header(rr_version="0.0.test", wasmtime_version="50.0.0",
                component=ComponentInfo("ab" * 32, 4096, "app.wasm"),
                argv=["app", "--flag", "ünï"], env=[("HOME", "/"), ("LANG", "C.UTF-8")],
                dirs=[{"host": "/tmp/x", "guest": "/data", "mode": "ro"}], start_time=1732390000.123456)
EVENTS = [
    Event("wasi:random/random.get-random-u64", [], 2**64 - 1),
    Event("wasi:random/random.get-random-bytes", [16], bytes(range(16))),
    Event("wasi:clocks/wall-clock.now", [], {"seconds": 1732390000, "nanoseconds": 5}),
    Event("wasi:filesystem/types.[method]descriptor.stat", [3], "no-entry", failed=True),
    Event("wasi:random/random.get-random-u64", [], 7),
    Event("test:values/x.f", [-2**70, 0.1, -0.0, None, True, "€😀"],
          [{"$bytes": "not bytes"}, {"$dict": 1}, {"a": b"", "$b": [1.5e300]}]),
]
VARIANTS = ["t.cbor", "t.jsonl", "t.cbor.gz", "t.json.gz"]


def write(path: Path, events=EVENTS, outcome: Outcome | None = Outcome.exit(3), header=HEADER) -> list[int]:
    """Write a trace; return the file size after the header and after each event/outcome."""
    sizes = []
    with TraceWriter(path) as w:
        w.write_header(header)
        sizes.append(w.size)
        for e in events:
            w.write_event(e)
            sizes.append(w.size)
        if outcome is not None:
            w.write_outcome(outcome)
            sizes.append(w.size)
    return sizes


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("outcome", [Outcome.exit(3), Outcome.trap("unreachable\nat f"), Outcome.stopped(4)])
def test_round_trip(tmp_path: Path, name: str, outcome: Outcome) -> None:
    write(tmp_path / name, outcome=outcome)
    t = read_trace(tmp_path / name)
    assert (t.header, t.events, t.outcome, t.complete, t.problem) == (HEADER, EVENTS, outcome, True, None)
    assert type(t.events[5].args[1]) is float and str(t.events[5].args[2]) == "-0.0"


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_conversions_are_identities(tmp_path: Path, gz: str) -> None:
    write(tmp_path / f"a.cbor{gz}")
    convert(tmp_path / f"a.cbor{gz}", tmp_path / f"b.jsonl{gz}")
    convert(tmp_path / f"b.jsonl{gz}", tmp_path / f"c.cbor{gz}")
    convert(tmp_path / f"c.cbor{gz}", tmp_path / f"d.jsonl{gz}")
    assert (tmp_path / f"a.cbor{gz}").read_bytes() == (tmp_path / f"c.cbor{gz}").read_bytes()
    assert (tmp_path / f"b.jsonl{gz}").read_bytes() == (tmp_path / f"d.jsonl{gz}").read_bytes()


def test_format_is_detected_by_content_not_name(tmp_path: Path) -> None:
    write(tmp_path / "j.jsonl")
    write(tmp_path / "c.cbor.gz")
    (tmp_path / "j.jsonl").rename(tmp_path / "j.cbor")
    (tmp_path / "c.cbor.gz").rename(tmp_path / "c.bin")
    assert read_trace(tmp_path / "j.cbor").events == EVENTS
    assert read_trace(tmp_path / "c.bin").events == EVENTS
    convert(tmp_path / "c.bin", tmp_path / "out", fmt="json")
    assert (tmp_path / "out").read_text().startswith('{"t": "header"')


def test_jsonl_is_readable_and_escapes_lookalike_dicts(tmp_path: Path) -> None:
    write(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert lines[1] == '{"call": "wasi:random/random.get-random-u64", "args": [], "result": 18446744073709551615}'
    assert lines[4].endswith('"result": "no-entry", "failed": true}')
    assert '[{"$dict": {"$bytes": "not bytes"}}, {"$dict": {"$dict": 1}}' in lines[6]
    assert json.loads(lines[-1]) == {"t": "outcome", "kind": "exit", "status": 3}


def test_unknown_header_fields_are_kept(tmp_path: Path) -> None:
    header = Header(**{**HEADER.__dict__, "extra": {"future_field": {"k": b"\x00", "n": [1, 2]}}})
    write(tmp_path / "t.cbor", header=header)
    convert(tmp_path / "t.cbor", tmp_path / "t.jsonl")
    assert read_trace(tmp_path / "t.jsonl").header.extra == {"future_field": {"k": b"\x00", "n": [1, 2]}}


def _whole_events(sizes: list[int], cut: int, slack: int) -> int:
    """Events fully inside a prefix of `cut` bytes; JSONL tolerates a missing final newline."""
    return sum(1 for end in sizes[1:len(EVENTS) + 1] if cut >= end - slack)


@pytest.mark.parametrize("name,slack", [("t.cbor", 0), ("t.jsonl", 1)])
def test_truncation_at_every_offset_is_not_an_error(tmp_path: Path, name: str, slack: int) -> None:
    sizes = write(tmp_path / name)
    data = (tmp_path / name).read_bytes()
    cut_file = tmp_path / ("cut" + name[1:])
    for cut in range(1, len(data)):   # bounded by the file size
        cut_file.write_bytes(data[:cut])
        if cut < sizes[0] - slack:
            with pytest.raises(TraceError, match="truncated inside the header"):
                read_trace(cut_file)
            continue
        t = read_trace(cut_file)
        n = _whole_events(sizes, cut, slack)
        assert t.events == EVENTS[:n], cut
        if cut >= sizes[-1] - slack:
            assert t.complete and t.outcome == Outcome.exit(3)
        else:
            assert not t.complete and t.outcome is None and t.problem
            torn = re.fullmatch(rf"truncated after {n} events: torn record at (byte|line) (\d+)", t.problem)
            if torn is None:   # cut on a record boundary (CBOR: also between a call definition and its event)
                assert t.problem.startswith(f"no outcome: the recording ended after {n} events"), t.problem
                assert cut in (sizes[n], sizes[n] - slack) or slack == 0
            elif slack:
                assert torn.groups() == ("line", str(n + 2))
            else:
                assert torn[1] == "byte" and sizes[n] <= int(torn[2]) < cut


@pytest.mark.parametrize("name", ["t.cbor.gz", "t.json.gz"])
def test_truncated_gzip_reads_back_a_prefix(tmp_path: Path, name: str) -> None:
    sizes = write(tmp_path / name)
    data = (tmp_path / name).read_bytes()
    cut_file = tmp_path / "cut.gz"
    for cut in range(1, len(data)):
        cut_file.write_bytes(data[:cut])
        try:
            t = read_trace(cut_file)
        except TraceError as e:
            # the inflater may release the header a few bytes before its sync flush ends, never after
            assert cut < sizes[0] and "truncated inside the header" in str(e), cut
            continue
        # every record was sync-flushed, so whatever reached the disk before the cut is readable
        assert t.events == EVENTS[:len(t.events)]
        assert len(t.events) >= _whole_events(sizes, cut, 0), cut
        assert t.complete == (t.outcome is not None)


def test_killed_recording_reads_back(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, signal, sys
        from rr.trace import ComponentInfo, Event, Header, TraceWriter
        w = TraceWriter(sys.argv[1])
        w.write_header(Header(rr_version="t", wasmtime_version="50", component=ComponentInfo("0" * 64, 1, "a"),
                              argv=[], env=[], dirs=[], start_time=0.0))
        for i in range(41):
            w.write_event(Event("wasi:random/random.get-random-u64", [], i))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    for name in ["k.cbor", "k.json.gz"]:
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / name)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
        assert proc.returncode == -signal.SIGKILL
        t = read_trace(tmp_path / name)
        assert [e.result for e in t.events] == list(range(41))
        assert not t.complete and t.problem.startswith("no outcome: the recording ended after 41 events")


def frames(data: bytes) -> list[bytes]:
    """The v2 CBOR frames after the magic (each a byte string item, head included)."""
    out, at = [], 3
    while at < len(data):
        head = data[at]
        n, size = (head - 0x40, 1) if head < 0x58 else (int.from_bytes(data[at + 1:at + 1 + (1 << (head - 0x58))], "big"), 1 + (1 << (head - 0x58)))
        out.append(data[at:at + size + n])
        at += size + n
    return out


def test_every_corrupted_byte_is_caught(tmp_path: Path) -> None:
    """A changed byte anywhere in a CBOR trace is a TraceError, or (in the length of the last
    frames, where it cannot be told from a cut) an incomplete trace: never a complete trace
    with other content."""
    write(tmp_path / "t.cbor")
    data = (tmp_path / "t.cbor").read_bytes()
    bad = tmp_path / "bad.cbor"
    errors = incomplete = 0
    for off in range(len(data)):
        for mask in (0x01, 0x80, 0xff):
            changed = bytearray(data)
            changed[off] ^= mask
            bad.write_bytes(changed)
            try:
                t = read_trace(bad)
            except TraceError as e:
                errors += 1
                if off >= 3 and "not an rr trace" not in str(e) and "header" not in str(e):
                    assert re.search(r"corrupt record \d+ at byte \d+ |data after the outcome", str(e)), str(e)
                continue
            incomplete += 1
            assert not t.complete and t.events == EVENTS[:len(t.events)], (off, mask)
    print(f"\n{errors} errors, {incomplete} incomplete of {3 * len(data)} corruptions")
    assert incomplete <= 3   # the length byte of the last frame (the outcome), made to claim more


@pytest.mark.parametrize("edit,index", [
    (lambda f: f[:3] + f[4:], 3),                 # record 3 dropped: record 4 fails
    (lambda f: f[:4] + f[3:], 4),                 # record 3 twice: the copy fails
    (lambda f: f[:3] + [f[4], f[3]] + f[5:], 3),  # records 3 and 4 swapped
    (lambda f: f[:5] + [f[2]] + f[5:], 5),        # an old record inserted
    (lambda f: f[:-1] + [f[1]] + f[-1:], None),   # one from before, just before the outcome: it fails
])
def test_dropped_duplicated_swapped_inserted_records_are_caught(tmp_path: Path, edit, index: int) -> None:
    write(tmp_path / "t.cbor")
    data = (tmp_path / "t.cbor").read_bytes()
    parts = frames(data)
    assert b"".join(parts) == data[3:]
    index = len(parts) - 1 if index is None else index
    (tmp_path / "bad.cbor").write_bytes(data[:3] + b"".join(edit(parts)))
    with pytest.raises(TraceError, match=rf"bad.cbor: corrupt record {index} at byte \d+ .*checksum mismatch"):
        read_trace(tmp_path / "bad.cbor")


def test_a_recomputed_checksum_does_not_let_bad_records_through(tmp_path: Path) -> None:
    """Damage with a matching checksum (as a forger or a fuzzer would make) still meets the
    record checks: an undefined call code, a reserved head, content shorter than its frame."""
    import zlib
    write(tmp_path / "t.cbor")
    data = (tmp_path / "t.cbor").read_bytes()
    parts = frames(data)

    def seal(records: list[bytes]) -> bytes:
        out, crc = bytearray(b"\xd9\xd9\xf7"), 0
        for r in records:
            head = cbor2.dumps(bytes(len(r) + 4))[:-(len(r) + 4)]
            crc = zlib.crc32(head + r, crc)
            out += head + r + crc.to_bytes(4, "big")
        return bytes(out)

    records = [cbor2.loads(p)[:-4] for p in parts]
    assert seal(records) == data
    target = 9                                  # event 4, which reuses call code 0
    assert records[target][0] == 0x83
    for change, why in [(b"\x83\x09" + records[target][2:], "undefined call code 9"),
                        (records[target][:2] + b"\xfc" + records[target][3:], "undecodable record"),
                        (records[target] + b"\x00", "does not fill its frame"),
                        (b"\x83\x00\x9b" + b"\xff" * 8, "undecodable record"),       # 2**64 items
                        (b"\x83\x00\x80\x5a\x40\x00\x00\x00", "undecodable record"),  # a 1 GiB value
                        (b"\x83\x00" + b"\x81" * 100 + b"\x00\x00", "nest more than 64 deep"),
                        (b"\x83\x00" + b"\x81" * 100000 + b"\x00\x00", "undecodable record: maximum container"),
                        (b"\x83\x00\x80" + cbor2.dumps(10**5000), "over the trace limit of 14283 bits"),
                        (b"\x83\x00\x80\xc1\x1b" + b"\xff" * 8, "undecodable record"),  # a datetime tag
                        (b"\x83\x00\x80\xd8\x20\x61x", "not a trace value: CBORTag")]:
        (tmp_path / "bad.cbor").write_bytes(seal(records[:target] + [change] + records[target + 1:]))
        with pytest.raises(TraceError, match=f"bad.cbor: corrupt record {target} at byte {sum(map(len, parts[:target])) + 3} "
                                             f"\\(after 4 events\\): .*({why})"):
            read_trace(tmp_path / "bad.cbor")


def test_corrupt_jsonl_line_in_the_middle(tmp_path: Path) -> None:
    write(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_bytes().split(b"\n")
    for bad, why in [(b'{"call": "x", "args": [], "result": 1', "not JSON"),
                     (b'{"call": "x", "args": [], "result": 1, "failed": false}', "an event has keys"),
                     (b'{"call": "x", "args": [], "result": {"$bytes": "@@"}}', "bad base64"),
                     (b'{"call": "x", "args": [], "result": NaN}', "not JSON: NaN is not JSON")]:
        (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines[:3] + [bad] + lines[4:]))
        with pytest.raises(TraceError, match=f"bad.jsonl: corrupt record 3 at line 4 \\(after 2 events\\): {why}"):
            read_trace(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("name", ["t.cbor.gz", "t.json.gz"])
def test_any_flipped_byte_in_gzip_data_is_an_error(tmp_path: Path, name: str) -> None:
    write(tmp_path / name)
    data = (tmp_path / name).read_bytes()
    for off in range(10, len(data)):   # past the gzip header (mtime, flags: not checksummed)
        bad = bytearray(data)
        bad[off] ^= 0xff
        (tmp_path / "bad.gz").write_bytes(bad)
        with pytest.raises(TraceError):   # the gzip CRC catches what the decoders cannot
            read_trace(tmp_path / "bad.gz")


def test_data_after_the_outcome_is_corruption(tmp_path: Path) -> None:
    write(tmp_path / "t.cbor")
    with open(tmp_path / "t.cbor", "ab") as f:
        f.write(cbor2.dumps([0, [], 1])[:-1])
    with pytest.raises(TraceError, match="after the outcome"):
        read_trace(tmp_path / "t.cbor")


@pytest.mark.parametrize("content,why", [
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not an rr trace \\(starts with bytes 89 50 4e 47"),
    (b"hello, this is a text file\n", "not an rr trace"),
    (b'{"not": "a trace"}\n', "not an rr trace: the first line is not an rr trace header"),
    (b"\xd9\xd9\xf7\x83\x01\x02\x03", "not an rr trace: the first record is not a header"),
    (b'{"t": "header", "format": "other"}\n', "not an rr trace \\(format is 'other'"),
])
def test_not_a_trace(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / "x.cbor").write_bytes(content)
    with pytest.raises(TraceError, match=f"x.cbor: {why}"):
        read_trace(tmp_path / "x.cbor")


def _raw_header(version: int) -> dict:
    return {"t": "header", "format": "rr-trace", "version": version, "rr_version": "9",
            "wasmtime_version": "99", "component": {"sha256": "00", "size": 1, "name": "a"},
            "argv": [], "env": [], "dirs": [], "start_time": 0.0}


@pytest.mark.parametrize("fmt", ["cbor", "jsonl"])
def test_newer_version_is_refused(tmp_path: Path, fmt: str) -> None:
    raw = _raw_header(7)
    data = b"\xd9\xd9\xf7" + cbor2.dumps(raw) if fmt == "cbor" else json.dumps(raw).encode() + b"\n"
    (tmp_path / "new.trace").write_bytes(data)
    with pytest.raises(TraceError) as err:
        read_trace(tmp_path / "new.trace")
    assert str(err.value) == (f"{tmp_path / 'new.trace'}: trace format version 7 is newer than "
                              "this rr supports (2); upgrade rr")


def test_migration_hook_upgrades_old_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a pretend version 0 that called the field "arguments" instead of "args"
    old = {**_raw_header(0), "argv0": "app"}
    lines = [old, {"call": "a.f", "args": [], "result": 1}, {"t": "outcome", "kind": "exit", "status": 0}]
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(TraceError, match="version 0 is not supported"):
        read_trace(tmp_path / "old.jsonl")

    def header(raw: dict) -> dict:
        raw = dict(raw)
        raw["argv"] = [raw.pop("argv0")]
        return raw

    monkeypatch.setitem(versions.MIGRATIONS, 0, versions.Migration(
        header=header, event=lambda raw: {**raw, "call": "b." + raw["call"].partition(".")[2]}))
    t = read_trace(tmp_path / "old.jsonl")
    assert t.header.version == 2 and t.header.argv == ["app"] and t.events == [Event("b.f", [], 1)]


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "t.cbor"
    target.write_bytes(b"precious")
    with pytest.raises(TraceExistsError, match="refusing to overwrite"):
        TraceWriter(target)
    write(tmp_path / "src.jsonl")
    with pytest.raises(FileExistsError):
        convert(tmp_path / "src.jsonl", target)
    assert target.read_bytes() == b"precious"
    convert(tmp_path / "src.jsonl", target, overwrite=True)
    assert read_trace(target).events == EVENTS


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the trace format"):
        TraceWriter(tmp_path / "t.txt")
    with TraceWriter(tmp_path / "t.cbor") as w:
        with pytest.raises(RuntimeError, match="cannot write an event"):
            w.write_event(EVENTS[0])
        w.write_header(HEADER)
        with pytest.raises(TypeError, match="not a trace value: set"):
            w.write_event(Event("a.f", [{1, 2}], None))
        with pytest.raises(TypeError, match="keys must be str"):
            w.write_event(Event("a.f", [], {1: 2}))
        w.write_event(Event("a.f", [(1, bytearray(b"x"))], None))
    assert read_trace(tmp_path / "t.cbor").events == [Event("a.f", [[1, b"x"]], None)]
    with pytest.raises(ValueError, match="exit outcome needs status"):
        Outcome("exit", message="x")


def test_streaming_reader(tmp_path: Path) -> None:
    write(tmp_path / "t.cbor.gz")
    with open_trace(tmp_path / "t.cbor.gz") as reader:
        assert reader.header == HEADER
        with pytest.raises(RuntimeError, match="read all events"):
            reader.complete
        assert list(reader.events()) == EVENTS
        assert reader.complete and reader.outcome == Outcome.exit(3)
    records = iter_records(io.BytesIO((tmp_path / "t.cbor.gz").read_bytes()[:-30]))
    assert next(records) == HEADER
    got = []
    with pytest.raises(StopIteration) as stop:
        while True:
            got.append(next(records))
    assert got == EVENTS[:len(got)] and stop.value.value.startswith("truncated after")


def test_jsonable_helpers() -> None:
    value = [b"\x00\xff", {"$bytes": "x"}, {"$": 1, "b": 2}, float("inf"), -(2**13001), 2**64]
    js = to_jsonable(value)
    assert js == [{"$bytes": "AP8="}, {"$dict": {"$bytes": "x"}}, {"$": 1, "b": 2},
                  {"$float": "inf"}, {"$int": hex(-(2**13001))}, 2**64]
    assert from_jsonable(json.loads(json.dumps(js))) == value
    for bad in [{"$dict": {"a": 1}}, {"$int": "0x10"}, {"$float": "1.5"}, {"$what": 1}]:
        with pytest.raises(ValueError, match="bad escape"):
            from_jsonable(bad)


def test_summarize(tmp_path: Path) -> None:
    write(tmp_path / "t.cbor")
    s = summarize(read_trace(tmp_path / "t.cbor"))
    assert s.events == 6
    assert s.calls == {"wasi:random/random": 3, "wasi:clocks/wall-clock": 1,
                       "wasi:filesystem/types": 1, "test:values/x": 1}
    assert s.bytes["wasi:random/random"] == 16 and s.bytes["test:values/x"] == 0
    with open_trace(tmp_path / "t.cbor") as reader:
        assert summarize(reader) == s


def test_cbor_is_compact_for_a_random_heavy_trace(tmp_path: Path) -> None:
    events = [Event("wasi:random/random.get-random-u64", [], int.from_bytes(os.urandom(8)))
              for _ in range(10_000)]
    events += [Event("wasi:random/random.get-random-bytes", [16], os.urandom(16)) for _ in range(1000)]
    sizes = {}
    for name in ["r.cbor", "r.jsonl", "r.cbor.gz", "r.jsonl.gz"]:
        write(tmp_path / name, events=events)
        sizes[name] = (tmp_path / name).stat().st_size
    print("\nbytes per event (11000 random events):",
          ", ".join(f"{n} {s / len(events):.1f}" for n, s in sizes.items()))
    assert sizes["r.cbor"] <= 0.6 * sizes["r.jsonl"]
    for name in sizes:   # ~1 MB: records straddle the reader's 64 KiB chunks
        assert read_trace(tmp_path / name).events == events


@pytest.mark.parametrize("name", VARIANTS)
def test_large_payloads(tmp_path: Path, name: str) -> None:
    # 5 MiB of zeros inflates from a few KiB: exercises the bounded, streaming gunzip
    events = [Event("wasi:io/streams.[method]input-stream.read", [1], bytes(5 << 20)),
              Event("wasi:io/streams.[method]input-stream.read", [2], os.urandom(300_000))]
    write(tmp_path / name, events=events)
    assert read_trace(tmp_path / name).events == events


def _jsonl_with(tmp_path: Path, line: bytes, header: dict | None = None) -> Path:
    head = json.dumps(header or _raw_header(2)).encode()
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(head + b"\n" + line + b"\n" + b'{"t": "outcome", "kind": "exit", "status": 0}\n')
    return path


@pytest.mark.parametrize("line,why", [
    (b'{"call": "a.f", "args": [], "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"call": "a.f", "args": [], "result": ' + b"[" * 65 + b"]" * 65 + b"}", "nest more than 64 deep"),
    (b'{"call": "a.f", "args": [], "result": ' + b"9" * 5000 + b"}", "an int over 4300 digits"),
    (b'{"call": "a.f", "args": [], "result": {"$int": "0x' + b"f" * 4000 + b'"}}', "over the trace limit"),
    (b'{"call": "a.f", "args": [], "result": {"$utf8": "\\ud800"}}', "lone surrogate"),
    (b'{"call": "a.f", "args": [], "result": Infinity}', "Infinity is not JSON"),
    (b'{"call": "a.f", "args": [], "result": {"$f8": "two\\nlines"}}', "bad escape '.f8': 'two.nlines'"),
])
def test_hostile_jsonl_is_a_trace_error_naming_the_line(tmp_path: Path, line: bytes, why: str) -> None:
    with pytest.raises(TraceError, match=f"hostile.jsonl: corrupt record 1 at line 2 \\(after 0 events\\): .*{why}") as e:
        read_trace(_jsonl_with(tmp_path, line))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field,value,why", [
    ("start_time", float("nan"), "'start_time' is not a date"),
    ("start_time", float("inf"), "'start_time' is not a date"),
    ("start_time", 1e300, "'start_time' is not a date"),
    ("component", {"sha256": "00", "size": 2**64, "name": "a"}, "'component.size' is out of range"),
    ("argv", [10**5000], "over the trace limit"),
])
@pytest.mark.parametrize("fmt", ["cbor", "jsonl"])
def test_absurd_headers_are_refused(tmp_path: Path, fmt: str, field: str, value, why: str) -> None:
    raw = {**_raw_header(2), field: value}
    if fmt == "cbor":
        import zlib
        record = cbor2.dumps(raw)
        head = cbor2.dumps(bytes(len(record) + 4))[:-(len(record) + 4)]
        data = b"\xd9\xd9\xf7" + head + record + zlib.crc32(head + record).to_bytes(4, "big")
    else:
        import rr.trace.values as values
        try:
            data = json.dumps(values.to_jsonable(raw)).encode() + b"\n"
        except ValueError:   # Python will not even print the int
            data = b'{"argv": [' + b"1" * 5000 + b"]}\n"
            why = "int over 4300 digits"
    (tmp_path / "h.trace").write_bytes(data)
    with pytest.raises(TraceError, match=why):
        read_trace(tmp_path / "h.trace")


def test_length_claims_are_refused_before_allocating(tmp_path: Path) -> None:
    """A frame claiming 1 GiB, or 2**64 bytes, is refused from its head; one claiming more than
    the file holds is a torn end, read without allocating the claim."""
    write(tmp_path / "t.cbor")
    data = (tmp_path / "t.cbor").read_bytes()
    body = data[:3] + b"".join(frames(data)[:-1])
    for head, why in [(b"\x5a\x40\x00\x00\x00", "claims 1073741820 bytes, over the maximum record size"),
                      (b"\x5b" + b"\xff" * 8, "over the maximum record size")]:
        (tmp_path / "claim.cbor").write_bytes(body + head + b"\x83\x00\x80\x00")
        with pytest.raises(TraceError, match=f"corrupt record \\d+ at byte {len(body)} .*{why}"):
            read_trace(tmp_path / "claim.cbor")
    (tmp_path / "claim.cbor").write_bytes(body + b"\x5a\x10\x00\x00\x00" + b"\x83\x00")
    t = read_trace(tmp_path / "claim.cbor")
    assert not t.complete and t.problem == f"truncated after {len(EVENTS)} events: torn record at byte {len(body)}"


def test_a_jsonl_line_over_the_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rr.trace import jsonl
    assert jsonl.MAX_LINE == 2 * (512 << 20)
    monkeypatch.setattr(jsonl, "MAX_LINE", 4096)
    path = _jsonl_with(tmp_path, b'{"call": "a.f", "args": [], "result": "' + b"x" * 100_000 + b'"}')
    with pytest.raises(TraceError, match="line 2 .*a line longer than the maximum \\(4096 bytes\\)"):
        read_trace(path)


def test_v1_fixture_reads_and_upgrades(tmp_path: Path) -> None:
    fixture = REPO / "tests" / "data" / "v1"
    v1 = read_trace(fixture / "random.cbor")
    assert v1.complete and v1.header.version == 2 and len(v1.events) == 3
    assert read_trace(fixture / "random.jsonl").events == v1.events
    convert(fixture / "random.jsonl", tmp_path / "a.cbor")
    convert(fixture / "random.cbor", tmp_path / "b.cbor")
    assert (tmp_path / "a.cbor").read_bytes() == (tmp_path / "b.cbor").read_bytes()
    # a v1 layout that claims to be v2 (or the other way round) is refused
    (tmp_path / "lie.cbor").write_bytes((fixture / "random.cbor").read_bytes().replace(
        b"gversion\x01", b"gversion\x02", 1))
    with pytest.raises(TraceError, match="version 2 in the layout of another version"):
        read_trace(tmp_path / "lie.cbor")


def test_replacing_writes_beside_and_renames_at_close(tmp_path: Path) -> None:
    target = tmp_path / "t.cbor"
    target.write_bytes(b"old")
    with TraceWriter(target, overwrite=True) as w:
        w.write_header(HEADER)
        w.write_event(EVENTS[0])
        assert target.read_bytes() == b"old" and len(list(tmp_path.glob("t.cbor.*.partial"))) == 1
    assert read_trace(target).events == EVENTS[:1] and not list(tmp_path.glob("*.partial"))
    with pytest.raises(KeyError):
        with TraceWriter(target, overwrite=True) as w:   # fails before any event: nothing kept
            w.write_header(HEADER)
            raise KeyError("boom")
    assert read_trace(target).events == EVENTS[:1] and sorted(os.listdir(tmp_path)) == ["t.cbor"]
    with pytest.raises(KeyError):
        with TraceWriter(tmp_path / "new.cbor") as w:    # a new trace with no event: removed
            w.write_header(HEADER)
            raise KeyError("boom")
    assert not (tmp_path / "new.cbor").exists()
    (tmp_path / "link.cbor").symlink_to("t.cbor")      # replacing through a symlink keeps it
    with TraceWriter(tmp_path / "link.cbor", overwrite=True) as w:
        w.write_header(HEADER)
        w.write_event(EVENTS[1])
    assert (tmp_path / "link.cbor").is_symlink() and read_trace(target).events == EVENTS[1:2]


@pytest.mark.parametrize("name", ["t.cbor", "t.jsonl"])
def test_writers_refuse_what_readers_would(tmp_path: Path, name: str) -> None:
    deep: list = []
    for _ in range(70):
        deep = [deep]
    with TraceWriter(tmp_path / name) as w:
        w.write_header(HEADER)
        for value, why in [(deep, "nest more than 64 deep"), (10**5000, "over the trace limit")]:
            with pytest.raises(ValueError, match=why):
                w.write_event(Event("a.f", [], value))
        w.write_event(Event("a.f", [], 1))
    assert read_trace(tmp_path / name).events == [Event("a.f", [], 1)]


def test_many_aborted_replacements_in_one_process_never_block_the_next(tmp_path: Path) -> None:
    """Each aborted `overwrite=True` write keeps its partial file (it may hold events); the next
    replacement still finds a fresh name (found by the fuzz harness: after 101 it refused)."""
    target = tmp_path / "w.cbor"
    with TraceWriter(target) as w:
        w.write_header(HEADER)
    for _ in range(105):
        with pytest.raises(KeyError):
            with TraceWriter(target, overwrite=True) as w:
                w.write_header(HEADER)
                w.write_event(Event("wasi:random/random.get-random-u64", [], 1))
                raise KeyError("an error in the middle of a recording")
    with TraceWriter(target, overwrite=True) as w:
        w.write_header(HEADER)
        w.write_event(Event("wasi:random/random.get-random-u64", [], 7))
    assert [e.result for e in read_trace(target).events] == [7]


def test_a_new_trace_has_its_name_only_once_its_header_is_whole(tmp_path: Path) -> None:
    """A recording killed before its header was written leaves no file under the trace's name
    (found by tests/test_kill9.py: a kill 0 ms in left a torn header that read as corrupt)."""
    target = tmp_path / "t.cbor"
    w = TraceWriter(target)
    assert not target.exists()
    w.write_header(HEADER)
    assert target.exists() and list(tmp_path.iterdir()) == [target]
    w.write_event(Event("wasi:random/random.get-random-u64", [], 7))
    w.close()
    assert [e.result for e in read_trace(target).events] == [7]
    with pytest.raises(TraceExistsError):
        TraceWriter(target)
    # The name taken between the start and the header: refused, and nothing left behind.
    other = tmp_path / "u.cbor"
    w = TraceWriter(other)
    other.write_bytes(b"someone else's")
    with pytest.raises(TraceExistsError):
        w.write_header(HEADER)
    assert other.read_bytes() == b"someone else's" and sorted(tmp_path.iterdir()) == [target, other]
