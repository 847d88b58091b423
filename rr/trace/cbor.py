"""CBOR codec: an RFC 8742 CBOR sequence (application/cbor-seq) of checksummed frames.

Layout (format version 2):
  d9 d9 f7                     self-described CBOR tag 55799: the file's magic number
  frame(header)                {"t": "header", ...} (see records.py)
  frame(call definition)       {"t": "call", "code": n, "name": "wasi:random/random.get-random-u64"}
                               defines call code n before its first use; codes are 0, 1, 2...
                               in order of first appearance, so re-encoding is byte-identical
  frame(event)                 [code, args, result]; [code, args, result, true] when failed
  frame(outcome)               {"t": "outcome", "kind": "exit", "status": 0}
A frame is one CBOR byte string holding the record (one CBOR item) and then 4 bytes: the
big-endian CRC-32 (zlib's) of every frame so far up to here, header included, i.e. a chain
crc[i] = crc32(head[i] + record[i], crc[i-1]) from crc[-1] = 0, where head[i] is the byte
string's head (so the length is covered too). A flipped bit anywhere fails the check of
the record it is in; a dropped, duplicated, reordered or inserted record fails the check of
the next one. CRC-32 guards against accidents, not against someone forging a trace. The
writer emits a call definition and its first event with one write.

Reading checks each frame before decoding its record: the byte string head must be there,
its length at most MAX_RECORD (+4) -- refused before anything is allocated -- and the
checksum must match. A frame the file ends inside is the torn last record of a killed
recording (incomplete, not corrupt); a length over the maximum is corruption. So is a 0x00
where a frame starts, unless no whole frame follows it: then it is the zero-filled, unwritten
end of a recording killed while writing through a mapping (writer._MappedSink).

Version 1 (no frames, bare records after the magic) is still read: see _V1Records.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
import zlib
from collections.abc import Generator
from typing import Any

import cbor2

from .errors import RecordError
from .model import Event
from .records import MAX_RECORD
from .streams import ByteSource
from .values import MAX_DEPTH, normalize, too_deep

MAGIC = b"\xd9\xd9\xf7"
_EVENT_HEADS = (0x83, 0x84)
_MAP_HEADS = range(0xa1, 0xb8)   # maps of 1..23 pairs
_CRC = 4
_MAX_FRAME = MAX_RECORD + _CRC
_FRAME_HEAD_SIZE = {0x58: 2, 0x59: 3, 0x5a: 5, 0x5b: 9}


def _head(out: bytearray, major: int, n: int) -> None:
    """A CBOR item head with the shortest length encoding, as cbor2 writes it."""
    if n < 24:
        out.append(major | n)
    elif n < 0x100:
        out += bytes((major | 24, n))
    elif n < 0x10000:
        out.append(major | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(major | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(major | 27)
        out += n.to_bytes(8, "big")


def _encode(value: Any, out: bytearray, depth: int = 0) -> None:
    """Append `value` as CBOR. The values events carry most (small ints, bytes, str, lists) are
    encoded here: cbor2.dumps costs ~2 us even for a 3-item list, which is most of the per-event
    cost of recording. Everything else (floats, dicts, bignums) is validated and handed to
    cbor2, so the bytes are the same as cbor2.dumps(normalize(value)) for every trace value."""
    t = type(value)
    if t is int and -0x10000000000000000 <= value < 0x10000000000000000:
        if value >= 0:
            _head(out, 0x00, value)
        else:
            _head(out, 0x20, -1 - value)
    elif t is bytes:
        _head(out, 0x40, len(value))
        out += value
    elif t is str:
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:   # lone surrogates: fail the way cbor2 does
            out += cbor2.dumps(value)
            return
        _head(out, 0x60, len(data))
        out += data
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise too_deep()
        _head(out, 0x80, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif value is None:
        out.append(0xf6)
    elif value is True:
        out.append(0xf5)
    elif value is False:
        out.append(0xf4)
    else:
        out += cbor2.dumps(normalize(value, depth))


class ChainState:
    """A trace writer's CRC chain, counts and flags (rr/_native.c's WriterState has the same
    fields: the one the writers use when the native paths are on, so the native recorder
    continues the same chain). `crc`: the chain so far; `written`: events written; `open`: events
    may be written (TraceWriter); `guest_open`, `guest_events`: merge.SharedWriter's."""

    __slots__ = ("crc", "written", "open", "guest_open", "guest_events")

    def __init__(self) -> None:
        self.crc = self.written = self.open = self.guest_events = 0
        self.guest_open = 1


def new_state() -> Any:
    from ..nativelib import lib
    native = lib()
    return native.WriterState() if native is not None else ChainState()


class CborEncoder:
    def __init__(self, state: Any = None) -> None:
        self._codes: dict[str, int] = {}
        self.state = ChainState() if state is None else state

    @staticmethod
    def _unsealed(record: bytes, size: int | None = None) -> bytearray:
        """The frame head and the record, without the checksum yet (only the head for a record
        of `size` bytes that is elsewhere)."""
        size = len(record) if size is None else size
        if size > MAX_RECORD:
            raise ValueError(f"a record of {size} bytes is over the maximum record size "
                             f"({MAX_RECORD} bytes)")
        frame = bytearray()
        _head(frame, 0x40, size + _CRC)
        frame += record
        return frame

    def _seal(self, frame: bytearray) -> bytearray:
        """Append the checksum: this moves the chain on, so frames are sealed in file order."""
        st = self.state
        crc = st.crc = zlib.crc32(frame, st.crc)
        frame += crc.to_bytes(_CRC, "big")
        return frame

    def header(self, raw: dict[str, Any]) -> bytes:
        return MAGIC + self._seal(self._unsealed(cbor2.dumps(raw)))

    def event(self, e: Event) -> bytearray:
        # Encoded in place after two bytes kept for the frame head: one or two bytes for the
        # records most events make (dropping a bytearray's first byte costs nothing).
        frame = bytearray((0, 0, 0x84 if e.failed else 0x83))
        code = self._codes.get(e.call)
        _head(frame, 0x00, len(self._codes) if code is None else code)
        _encode(e.args, frame, 1)     # before interning the call: may raise
        _encode(e.result, frame, 1)
        if e.failed:
            frame.append(0xf5)
        n = len(frame) - 2 + _CRC
        if n < 24:
            del frame[0]
            frame[0] = 0x40 | n
        elif n < 0x100:
            frame[0] = 0x58
            frame[1] = n
        else:
            frame[0:2] = self._unsealed(b"", n - _CRC)
        if code is None:
            if type(e.call) is not str:
                raise TypeError(f"event call must be str, not {type(e.call).__name__}")
            definition = self._seal(self._unsealed(cbor2.dumps({"t": "call", "code": len(self._codes),
                                                                "name": e.call})))
            self._codes[e.call] = len(self._codes)
            return definition + self._seal(frame)
        st = self.state
        crc = st.crc = zlib.crc32(frame, st.crc)   # _seal, inlined on the hot path
        frame += crc.to_bytes(_CRC, "big")
        return frame

    def outcome(self, raw: dict[str, Any]) -> bytes:
        return bytes(self._seal(self._unsealed(cbor2.dumps(raw))))


def _fast_event_record() -> Any:
    """rr's C decoder of plain event records (rr/_native.c: same values, None for anything it
    does not decode itself), unless RR_NATIVE=0 or it is not built."""
    from ..nativelib import lib
    native = lib()
    return native.event_record if native is not None else None


def _cursor(src: ByteSource, crc: int, names: list[str]) -> tuple[Any, Any]:
    """(rr/_native.c's Cursor over a read-only mapping of the file from the first frame after the
    header on, the mapping) for a regular file read from its start; (None, None) otherwise (a pipe,
    gzip, RR_NATIVE=0, no extension): the records are then read through `src`."""
    from ..nativelib import OPS, lib
    native, f = lib(), getattr(src, "file", None)
    if native is None or f is None:
        return None, None
    try:
        fd = f.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, None
        data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError):
        return None, None
    return native.Cursor(data, src.pos, crc, names, OPS), data


def _damaged_length(n: int) -> str:
    return (f"the record's length ({n - _CRC} bytes) runs past the end of the file, but whole records "
            f"follow it: a damaged length, not a cut")


_MISMATCH = ("checksum mismatch: the record is damaged, or records before it were dropped, duplicated, "
             "reordered or inserted")
_UNFILLED = "the record does not fill its frame"


_RESYNC_SPAN = 1 << 16
# The cursor only moves forward: the pages of the mapping it has passed are given back every so
# often, or a replay's resident memory grows with the trace (a 400 MiB streamed body: +400 MB of
# mapped file). Read again, a page is faulted in from the file, the same bytes.
_RELEASE_EVERY = 8 << 20
_ZERO_TAIL = 2 << 20   # read at most this far to see that a mapped recording's zero tail ends the file
_CHUNK_SLACK = 1 << 16   # the streaming loop's window may hold up to a read chunk more than that


def _goes_on(data: bytes, start: int) -> bool:
    """Whether the bytes after the frame head at `start`, whose length runs past the end of the
    file, hold whole frames: two in a row whose checksums chain, or an outcome frame that ends
    the file. A killed recording leaves only a prefix of its last frame there (telling it from
    a damaged length is a guess, and this guess errs towards "incomplete")."""
    for p in range(start + 1, min(len(data), start + _RESYNC_SPAN)):
        if not 0x45 <= data[p] <= 0x5b:
            continue
        try:
            n, size = CborDecoder._frame_size(data, p)
        except RecordError:
            continue
        end = p + size + (n or 0)
        if n is None or end > len(data):
            continue
        if end == len(data):
            if data[p + size] in _MAP_HEADS and b"outcome" in data[p + size:end]:
                return True
            continue
        try:
            n2, size2 = CborDecoder._frame_size(data, end)
        except RecordError:
            continue
        end2 = end + size2 + (n2 or 0)
        if n2 is None or end2 > len(data):
            continue
        crc = int.from_bytes(data[end - _CRC:end], "big")
        if zlib.crc32(data[end:end2 - _CRC], crc) == int.from_bytes(data[end2 - _CRC:end2], "big"):
            return True
    return False


class CborDecoder:
    unit = "byte"

    def __init__(self, src: ByteSource):
        self._src = src
        # read_size=1: no read-ahead, so the stream position is exactly after each item
        self._dec = cbor2.CBORDecoder(src, read_size=1)  # type: ignore[arg-type]  # duck-typed stream
        self._names: list[str] = []
        self._crc = 0
        self.framed = True   # False for a version-1 file (no frames, no checksums)
        # The native cursor (see _cursor) the records are read from once the header is read
        self.cursor: Any = None
        self._mapped: Any = None

    def header(self) -> dict[str, Any] | None:
        """The raw header, None if the file ends inside it; RecordError if it is not a header."""
        src = self._src
        src.read(len(MAGIC))
        first = src.peek(1)
        if not first:
            return None
        self.framed = first[0] in range(0x40, 0x5c)
        if self.framed:
            try:
                n, size = self._frame_size(src.peek(9), 0)
            except RecordError as e:
                raise RecordError(f"corrupt header: {e}", 0) from None
            if n is None or not src.has(size + n):
                return None
            frame = src.read(size + n)
            record = frame[size:-_CRC]
            self._crc = zlib.crc32(frame[:-_CRC])
            if self._crc != int.from_bytes(frame[-_CRC:], "big"):
                raise RecordError("corrupt header: checksum mismatch", 0)
            try:
                raw = cbor2.loads(record)
            except Exception as e:  # noqa: BLE001 - any decoder failure: the bytes are not a header
                raise RecordError(f"not an rr trace: undecodable header ({e})", 0) from None
            if isinstance(raw, dict) and raw.get("t") == "header":
                self.cursor, self._mapped = _cursor(src, self._crc, self._names)
        else:
            try:
                raw = self._dec.decode()
            except cbor2.CBORDecodeEOF:
                return None
            except Exception as e:  # noqa: BLE001
                raise RecordError(f"not an rr trace: undecodable header ({e})", 0) from None
        if not isinstance(raw, dict) or raw.get("t") != "header":
            raise RecordError("not an rr trace: the first record is not a header", 0)
        try:
            return normalize(raw)  # type: ignore[no-any-return]
        except (TypeError, ValueError) as e:
            raise RecordError(f"corrupt header: {e}", 0) from None

    @staticmethod
    def _frame_size(data: bytes, at: int) -> tuple[int | None, int]:
        """(content length, head size) of the frame whose head starts at data[at]; None for the
        length when `data` ends inside the head. RecordError if it is no frame head or too long."""
        head = data[at]
        if 0x40 <= head < 0x58:
            n, size = head - 0x40, 1
        else:
            size = _FRAME_HEAD_SIZE.get(head, 0)
            if not size:
                raise RecordError(f"byte 0x{head:02x} cannot start a record")
            if at + size > len(data):
                return None, size
            n = int.from_bytes(data[at + 1:at + size], "big")
        if n <= _CRC:
            raise RecordError(f"a frame of {n} bytes is too short to hold a record and its checksum")
        if n > _MAX_FRAME:
            raise RecordError(f"the record claims {n - _CRC} bytes, over the maximum record size "
                              f"({MAX_RECORD} bytes)")
        return n, size

    def records(self) -> Generator[tuple[str, Any, int], None, int | None]:
        """Yield ("event" | "outcome" | "call", raw, byte offset); return the offset of a torn
        last record, or None at a clean end."""
        if not self.framed:
            return (yield from self._v1_records())
        if self.cursor is not None:
            return (yield from self._mapped_records())
        src = self._src
        window, start = b"", 0     # `start`: offset in `window` of the next frame
        base = src.pos             # file offset of window[0]
        mv = memoryview(b"")
        crc = self._crc
        fast = _fast_event_record()
        while True:
            if len(window) - start < 9:   # the longest frame head
                more = src.read_some()
                if more:
                    base += start
                    window, start = window[start:] + more, 0
                    mv = memoryview(window)
                    continue
                if start == len(window):
                    return None
            pos = base + start
            head = window[start]
            if 0x45 <= head < 0x58:   # the common short frames, inlined
                n, size = head - 0x40, 1
            elif head == 0x58 and start + 1 < len(window) and window[start + 1] > _CRC:
                n, size = window[start + 1], 2
            else:
                try:
                    n, size = self._frame_size(window, start)
                except RecordError as e:
                    if head == 0:
                        unwritten = self._unwritten(window[start:])
                        if unwritten is not None:
                            return pos if unwritten else None
                    raise RecordError(str(e), pos) from None
                if n is None:
                    return pos
            end = start + size + n
            if end > len(window):
                more = self._read_at_least(end - len(window))
                base += start
                window, end, start = window[start:] + more, end - start, 0
                mv = memoryview(window)
                if end > len(window):
                    if _goes_on(window, start):
                        raise RecordError(_damaged_length(n), pos)
                    return pos
            body, tail = start + size, end - _CRC
            crc = zlib.crc32(mv[start:tail], crc)
            if crc != int.from_bytes(mv[tail:end], "big"):
                raise RecordError(_MISMATCH, pos)
            if fast is not None and window[body] in _EVENT_HEADS:
                raw = fast(window, body, tail, self._names)
                if raw is not None:   # else the Python decoder decodes it, or says what is wrong
                    start = end
                    yield "event", raw, pos
                    continue
            kind, raw = self._framed_record(mv[body:tail], pos)
            start = end
            yield kind, raw, pos

    def _mapped_records(self) -> Generator[tuple[str, Any, int], None, int | None]:
        """records() from the native cursor over the mapped file: the cursor takes the frames it
        checks and decodes itself (and a native host call may take its own event from it between
        two of these steps: rr/_native.c, cursor_take); every other frame is read here, from the
        cursor's position and CRC chain, with the checks and messages of the streaming loop above."""
        cur, data = self.cursor, self._mapped
        size = len(data)
        released = 0   # the mapping's pages before this are given back (see _RELEASE_EVERY)
        try:
            while True:
                if cur.pos - released >= _RELEASE_EVERY:
                    done = cur.pos - cur.pos % mmap.PAGESIZE
                    if done > released:
                        data.madvise(mmap.MADV_DONTNEED, released, done - released)
                        released = done
                got = cur.step()
                if got is not None:
                    yield got
                    continue
                start = cur.pos
                if start == size:
                    self._src.pos = start   # the bytes read, for the reader's messages
                    return None
                head = data[start]
                try:
                    n, hs = self._frame_size(data, start)
                except RecordError as e:
                    if head == 0:
                        unwritten = self._unwritten(data[start:start + _ZERO_TAIL + _CHUNK_SLACK],
                                                    start + _ZERO_TAIL + _CHUNK_SLACK < size)
                        if unwritten is not None:
                            return start if unwritten else None
                    raise RecordError(str(e), start) from None
                if n is None:
                    return start
                end = start + hs + n
                if end > size:
                    if _goes_on(data, start):
                        raise RecordError(_damaged_length(n), start)
                    return start
                body, tail = start + hs, end - _CRC
                crc = zlib.crc32(memoryview(data)[start:tail], cur.crc)
                if crc != int.from_bytes(data[tail:end], "big"):
                    raise RecordError(_MISMATCH, start)
                kind, raw = self._framed_record(data[body:tail], start)
                cur.pos, cur.crc = end, crc
                if kind == "outcome":
                    cur.live = False   # what follows is an error for the reader to report
                yield kind, raw, start
        finally:
            cur.live = False

    def _framed_record(self, frame: bytes | memoryview, pos: int) -> tuple[str, Any]:
        """The record that must fill `frame` (a frame's body) exactly, decoded from it alone
        (cbor2 reads no further than the frame, streamed or mapped); a problem is at `pos`."""
        view = self._dec.fp = io.BytesIO(frame)
        try:
            kind, raw = self._record(frame[0])
        except RecordError as e:
            raise RecordError(str(e), pos) from None
        except Exception as e:  # noqa: BLE001 - cbor2 raises many types on bytes it rejects
            raise RecordError(f"undecodable record: {e}", pos) from None
        if view.tell() != len(frame):
            raise RecordError(_UNFILLED, pos)
        return kind, raw

    def _unwritten(self, rest: bytes, more: bool | None = None) -> bool | None:
        """Whether a 0x00 where a frame starts is the unwritten end of a recording killed while
        it wrote through a mapping (writer._MappedSink: the file is extended ahead with zeros, at
        most 1 MiB, and a record's first byte is stored last), not damage: False when only zeros
        follow (killed between records), True when no whole frame follows (killed while writing
        one: torn), None when whole frames follow (damage)."""
        if more is None:   # streaming: read on (mapped: `rest` is that much and `more` says if any follows)
            rest += self._read_at_least(_ZERO_TAIL)
            more = self._src.has(1)
        if not rest.strip(b"\0") and not more:
            return False
        return None if _goes_on(rest, 0) else True

    def _v1_records(self) -> Generator[tuple[str, Any, int], None, int | None]:
        """Version 1: bare records, no checksums. cbor2 decodes from an in-memory window of the
        file that starts at a record boundary; a record that runs past the window's end is
        decoded again from its start once the window has grown by at least its own size (up to
        MAX_RECORD), or is the torn last record when the file ends first."""
        src, dec = self._src, self._dec
        window, start = b"", 0
        base = src.pos
        view = io.BytesIO()
        while True:
            if start == len(window):
                more = src.read_some()
                if not more:
                    return None
                base += start
                window, start = more, 0
                view = dec.fp = io.BytesIO(window)
            pos = base + start
            view.seek(start)
            try:
                kind, raw = self._record(window[start])
            except cbor2.CBORDecodeEOF:
                if len(window) - start > _MAX_FRAME:
                    raise RecordError(f"a record longer than the maximum record size "
                                      f"({MAX_RECORD} bytes)", pos) from None
                more = self._read_at_least(len(window) - start)
                if not more:
                    return pos
                base += start
                window, start = window[start:] + more, 0
                view = dec.fp = io.BytesIO(window)
                continue
            except RecordError as e:
                raise RecordError(str(e), pos) from None
            except Exception as e:  # noqa: BLE001
                raise RecordError(f"undecodable record: {e}", pos) from None
            start = view.tell()
            yield kind, raw, pos

    def _read_at_least(self, n: int) -> bytes:
        """At least n more bytes (so a long record is re-decoded O(log size) times), fewer only
        at the end of the file."""
        parts, got = [], 0
        while got < max(n, 1):
            chunk = self._src.read_some()
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _record(self, head: int) -> tuple[str, Any]:
        """Decode the record that starts at the decoder's position; `head` is its first byte."""
        dec = self._dec
        if head in _EVENT_HEADS:
            record = dec.decode()
            code, args, result = record[0], record[1], record[2]
            if head == 0x84 and record[3] is not True:
                raise RecordError("the 4th item of an event must be true (failed)")
            if type(code) is not int or not 0 <= code < len(self._names):
                raise RecordError(f"event uses undefined call code {code!r}")
            if type(args) is not list:
                raise RecordError("event args must be an array")
            return "event", {"call": self._names[code], "args": normalize(args, 1),
                             "result": normalize(result, 1), "failed": head == 0x84}
        if head in _MAP_HEADS:
            dec.fp.read(1)   # the map head: its pairs are decoded one by one below
            raw = {}
            for _ in range(head - 0xa0):
                key = dec.decode()
                if type(key) is not str:
                    raise RecordError("record keys must be str")
                raw[key] = dec.decode()
            t = raw.get("t")
            if t == "call":
                if raw.get("code") != len(self._names) or type(raw.get("name")) is not str or len(raw) != 3:
                    raise RecordError(f"bad call definition (expected code {len(self._names)})")
                self._names.append(raw["name"])
                return "call", raw
            if t == "outcome":
                return "outcome", normalize(raw)
            raise RecordError(f"unexpected record type {t!r}")
        raise RecordError(f"byte 0x{head:02x} cannot start a record")
