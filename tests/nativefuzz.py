"""The checks of benchmarks/fuzz_native.py on one input, shared with tests/test_fuzz_native.py
(which replays the inputs the fuzzer found, tests/data/fuzz_native/, with the installed build).

An input is a control byte and a trace file; bit 0 of the control byte: recompute the frames'
CRC chain first; bit 2: the trace's records after the first are bare CBOR items, each framed
here (reframe: a mutation may then change a record's length), CRCs included; bit 3: the last
4 bytes are a seed for restructure(), which first replaces CBOR items of those records with
items of the kinds the decoders treat apart; bit 1: also replay it (a guest of REPLAYED) with the native calls and with
RR_NATIVE=0, which must end alike (status, outcome, message, events, stdout, stderr). `one_input` reads it with rr.trace's TraceReader three ways -- through the C
cursor over the mapped file, streamed with the C event decoder, and with RR_NATIVE=0 (Python
alone) -- and raises AssertionError unless all three agree (records by repr, or the same
TraceError message); any other exception is a bug in itself. Then it drives the Cursor's methods
at every frame start and at arbitrary offsets, and checks C's event_record against cbor2 (as
CborDecoder._record decodes) on every frame body that starts like an event.
"""

from __future__ import annotations

import io
import mmap
import os
import random
import re
import zlib
from pathlib import Path
from typing import Any

MAGIC = b"\xd9\xd9\xf7"
NAMES = [f"call-{i}" for i in range(8)]   # call codes 0..7 for the bare-record check


def frames(data: bytes) -> list[tuple[int, int, int, int]]:
    """(start, body, tail, end) of each whole frame from the magic on, as far as they parse."""
    out, pos = [], len(MAGIC) if data.startswith(MAGIC) else 0
    while pos < len(data):
        h = data[pos]
        if 0x40 <= h < 0x58:
            n, hs = h - 0x40, 1
        elif 0x58 <= h <= 0x5b:
            hs = 1 + (1 << (h - 0x58))
            if pos + hs > len(data):
                break
            n = int.from_bytes(data[pos + 1:pos + hs], "big")
        else:
            break
        end = pos + hs + n
        if n <= 4 or end > len(data):
            break
        out.append((pos, pos + hs, end - 4, end))
        pos = end
    return out


def fix_crcs(data: bytes) -> bytes:
    buf, crc = bytearray(data), 0
    for start, _body, tail, end in frames(data):
        crc = zlib.crc32(buf[start:tail], crc)
        buf[tail:end] = crc.to_bytes(4, "big")
    return bytes(buf)


def item_end(data: bytes, at: int, depth: int = 0, spans: list[tuple[int, int]] | None = None) -> int:
    """The offset just after the CBOR item at `at` (len(data) when it runs past the end); with
    `spans`, the (start, end) of it and of every item inside it are appended there."""
    start, end = at, _item_end(data, at, depth, spans)
    if spans is not None and start < end:
        spans.append((start, end))
    return end


def _item_end(data: bytes, at: int, depth: int, spans: list[tuple[int, int]] | None) -> int:
    if at >= len(data) or depth > 80:
        return len(data)
    b = data[at]
    major, info, at = b >> 5, b & 31, at + 1
    if info == 31:   # indefinite: items up to the break
        while at < len(data) and data[at] != 0xff:
            at = item_end(data, at, depth + 1, spans)
        return min(at + 1, len(data))
    if info > 27:
        return at
    size = 0 if info < 24 else 1 << (info - 24)
    arg = info if info < 24 else int.from_bytes(data[at:at + size], "big")
    at += size
    if major in (2, 3):
        return min(at + arg, len(data))
    if major in (4, 5):
        for _ in range(min(arg * (major - 3), len(data))):
            at = item_end(data, at, depth + 1, spans)
        return at
    if major == 6:
        return item_end(data, at, depth + 1, spans)
    return min(at, len(data))


# bytes the decoders compare against: CBOR's simple values and breaks, extremes, UTF-8 leads
BYTES = (0x00, 0x01, 0x17, 0x18, 0x7f, 0x80, 0xc3, 0xed, 0xf4, 0xf5, 0xf6, 0xf7, 0xff)


def payload(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(BYTES) if rng.random() < 0.5 else rng.randrange(256) for _ in range(n))


def random_item(rng: random.Random) -> bytes:
    """A CBOR item of a kind the decoders treat apart: floats and simple values (any payload),
    ints of every width, byte and text strings (invalid UTF-8 too), deep arrays, tags, maps,
    indefinite lengths."""
    kind = rng.randrange(8)
    if kind == 0:
        size = rng.choice((2, 4, 8))
        return bytes([{2: 0xf9, 4: 0xfa, 8: 0xfb}[size]]) + payload(rng, size)
    if kind == 1:
        return bytes([0xe0 | rng.randrange(24)]) if rng.random() < 0.7 else b"\xf8" + payload(rng, 1)
    if kind == 2:
        info = rng.randrange(24, 28)
        return bytes([rng.choice((0x00, 0x20)) | info]) + payload(rng, 1 << (info - 24))
    if kind == 3:
        data = rng.choice((payload(rng, rng.randrange(6)), "é→\U0001f600".encode()[:rng.randrange(9)]))
        return bytes([rng.choice((0x40, 0x60)) | len(data)]) + data
    if kind == 4:
        depth = rng.randrange(1, 24)
        return b"\x81" * depth + b"\xf6"
    if kind == 5:
        return bytes([0xc0 | rng.randrange(24)]) + random_item(rng)
    if kind == 6:
        return b"\xa1\x61t" + random_item(rng)
    return bytes([rng.choice((0x5f, 0x7f, 0x9f))]) + random_item(rng) + b"\xff"


def restructure(data: bytes, seed: bytes) -> bytes:
    """`data` (a bare-record trace) with one to three CBOR items of its records replaced by
    random_item()s, chosen by `seed`: libFuzzer's mutations of the seed explore them (a custom
    mutator would, but libFuzzer preloaded with the sanitizer runtime never calls atheris's)."""
    rng = random.Random(seed)
    for _ in range(1 + rng.randrange(3)):
        fs = frames(data)
        at, spans = fs[0][3] if fs else 0, []
        while at < len(data):
            at = max(item_end(data, at, 0, spans), at + 1)
        if not spans:
            break
        a, b = rng.choice(spans)
        data = data[:a] + random_item(rng) + data[b:]
    return data


def reframe(data: bytes) -> bytes:
    """Magic, the first frame as it is, then bare CBOR records, each put in a frame of its own
    length (so a mutation that grows or shrinks a record still reaches the record decoders)."""
    fs = frames(data)
    if not fs:
        return data
    out, at = bytearray(data[:fs[0][3]]), fs[0][3]
    while at < len(data):
        end = max(item_end(data, at), at + 1)
        record = data[at:end]
        n = len(record) + 4
        out += bytes([0x40 | n]) if n < 24 else bytes([0x5b]) + n.to_bytes(8, "big") if n >> 32 else \
            bytes([0x5a]) + n.to_bytes(4, "big") if n >> 16 else bytes([0x59]) + n.to_bytes(2, "big") if n >> 8 \
            else bytes([0x58, n])
        out += record + b"\0\0\0\0"
        at = end
    return bytes(out)


def bare(trace: bytes) -> bytes:
    """A trace as reframe() takes it: the frames after the first one without heads and checksums."""
    fs = frames(trace)
    return trace[:fs[0][3]] + b"".join(trace[b:t] for _s, b, t, _e in fs[1:]) if fs else trace


def read(trace: bytes, path: Path, how: str) -> tuple[object, ...]:
    """What TraceReader makes of `trace`: ("ok", repr of every record, problem) or ("error", message)."""
    from rr.trace import TraceError
    from rr.trace.reader import TraceReader

    before = os.environ.get("RR_NATIVE")
    os.environ["RR_NATIVE"] = "0" if how == "python" else "1"
    src = open(path, "rb") if how == "mapped" else io.BytesIO(trace)
    try:
        with TraceReader(src, name="t") as r:
            if how == "mapped" and trace.startswith(MAGIC) and len(trace) > 3 and 0x40 <= trace[3] <= 0x5b \
                    and r.cursor is None and r.file_version >= 2:
                raise AssertionError("a framed trace in a regular file was not read through the C cursor")
            events = [repr(e) for e in r]
            return ("ok", repr(r.header), events, repr(r.outcome), r.problem)
    except TraceError as e:
        return ("error", str(e))
    finally:
        src.close()
        if before is None:
            del os.environ["RR_NATIVE"]
        else:
            os.environ["RR_NATIVE"] = before


def same(result: tuple[object, ...]) -> tuple[object, ...]:
    """A result as compared: cbor2's own words after "undecodable record:" say how much of the
    buffer it was given, which differs between the mapped frame and the streamed window."""
    if result[0] == "error":
        return ("error", re.sub(r"undecodable record: .*", "undecodable record: ...", result[1]))
    return result


def python_event(body: bytes) -> object:
    """A frame body decoded as CborDecoder._record decodes an event (cbor2 + normalize), or None
    when Python refuses it."""
    import cbor2

    from rr.trace.values import normalize
    f = io.BytesIO(body)
    try:
        record = cbor2.CBORDecoder(f, read_size=1).decode()
        code, args, result = record[0], record[1], record[2]
        if body[0] == 0x84 and record[3] is not True:
            return None
        if type(code) is not int or not 0 <= code < len(NAMES) or type(args) is not list:
            return None
        out = {"call": NAMES[code], "args": normalize(args, 1), "result": normalize(result, 1),
               "failed": body[0] == 0x84}
    except Exception:   # noqa: BLE001 - what cbor2 / normalize refuse, CborDecoder refuses
        return None
    return out if f.tell() == len(body) else None


def check_records(native: Any, data: bytes) -> None:
    """C's event_record against Python on every frame body that starts like an event, and on
    the whole input as one bare record."""
    spans = [(b, t) for _s, b, t, _e in frames(data)] + [(0, len(data))]
    for body, tail in spans:
        if tail <= body or data[body] not in (0x83, 0x84):
            continue
        got = native.event_record(data, body, tail, NAMES)
        if got is not None and repr(got) != repr(python_event(data[body:tail])):
            raise AssertionError(f"event_record disagrees with Python on {data[body:tail].hex()}: "
                                 f"C {got!r}, Python {python_event(data[body:tail])!r}")


def check_cursor(native: Any, data: bytes) -> None:
    """The Cursor's methods at every frame start and at arbitrary offsets (ASan watches the reads):
    what step() reads at a frame start, event_at() gives again from there."""
    from rr.nativelib import OPS
    if not data:
        return
    crcs, crc = {}, 0
    for start, _b, tail, _e in frames(data):
        crcs[start] = crc
        crc = zlib.crc32(data[start:tail], crc)
    m = mmap.mmap(-1, len(data))
    m.write(data)
    cur = native.Cursor(m, 0, 0, list(OPS)[:5] + NAMES, OPS)
    try:
        cur.live = True
        offsets = [*crcs, *range(0, len(data), max(1, len(data) // 256)), len(data) - 1, len(data)]
        for at in offsets:
            cur.pos, cur.crc = at, crcs.get(at, 0)
            cur.vouched()
            got = cur.step()
            if got is not None:
                if got[2] != at or cur.pos <= at or repr(cur.event_at(at)) != repr(got[1]):
                    raise AssertionError(f"step at {at}: {got!r}, then at {cur.pos}, event_at {cur.event_at(at)!r}")
        cur.pos = len(data)
        for at in offsets:
            cur.event_at(at)
    finally:
        cur.close()
        del cur
        m.close()


# Guests whose traces bit 1 of the control byte replays in this process (by the header's
# component name); their clocks and random calls are the native ones (cursor_take).
# hostcall_loop (benchmarks/guests/hostcall_loop.wat, built by the harness): one native call in
# a loop, the traces whose events native calls take straight from the cursor (cursor_take)
GUEST_DIRS = [Path(__file__).resolve().parent / "guests" / "bin"]
REPLAYED = ("clock.wasm", "random.wasm", "echo_stdin.wasm", "bigout.wasm", "hostcall_loop.wasm")


def replay(path: Path, how: str) -> tuple[object, ...]:
    """rr.replay of the trace at `path` with the native calls on or off (RR_NATIVE), or None when
    its header does not name a guest of REPLAYED."""
    import rr
    from rr.trace import TraceError
    from rr.trace.reader import TraceReader
    try:
        with TraceReader(path) as r:
            name = r.header.component.name
    except TraceError:
        return ()
    wasm = next((d / name for d in GUEST_DIRS if (d / name).is_file()), None)
    if name not in REPLAYED or wasm is None:
        return ()
    before = os.environ.get("RR_NATIVE")
    os.environ["RR_NATIVE"] = "0" if how == "python" else "1"
    try:
        out, err = io.BytesIO(), io.BytesIO()
        got = rr.replay(wasm, path, stdout=out, stderr=err)
        return (got.exit_status, got.outcome, got.message, got.events, out.getvalue(), err.getvalue())
    finally:
        if before is None:
            del os.environ["RR_NATIVE"]
        else:
            os.environ["RR_NATIVE"] = before


def one_input(raw: bytes, scratch: Path) -> None:
    from rr.nativelib import built
    native = built()   # whatever RR_NATIVE says: read() chooses the path per reading
    assert native is not None, "rr/_native.c is not built"
    if not raw:
        return
    data = raw[1:]
    if raw[0] & 8:
        data = restructure(data[:-4], data[-4:])
    if raw[0] & 4:
        data = reframe(data)
    if raw[0] & 5:
        data = fix_crcs(data)
    path = scratch / "t.cbor"
    path.write_bytes(data)
    results = {how: read(data, path, how) for how in ("mapped", "stream", "python")}
    if not same(results["mapped"]) == same(results["stream"]) == same(results["python"]):
        shown = "\n".join(f"  {how}: {r!r}"[:2000] for how, r in results.items())
        raise AssertionError(f"the readers disagree:\n{shown}")
    check_records(native, data)
    check_cursor(native, data)
    if raw[0] & 2 and results["python"][0] == "ok":
        replays = {how: replay(path, how) for how in ("native", "python")}
        if replays["native"] != replays["python"]:
            shown = "\n".join(f"  {how}: {r!r}"[:2000] for how, r in replays.items())
            raise AssertionError(f"the native and the Python replay differ:\n{shown}")
