"""CBOR codec: an RFC 8742 CBOR sequence (application/cbor-seq).

Layout, each item one record:
  d9 d9 f7                     self-described CBOR tag 55799: the file's magic number
  {"t": "header", ...}         header map (see records.py), right after the magic
  {"t": "call", "code": n, "name": "wasi:random/random.get-random-u64"}
                               defines call code n before its first use; codes are 0, 1, 2...
                               in order of first appearance, so re-encoding is byte-identical
  [code, args, result]         an event; [code, args, result, true] when failed
  {"t": "outcome", "kind": "exit", "status": 0}
The writer emits a call definition and its first event with one write.

Reading: every record must start with an array head of 3 or 4 items or a small map head, checked
before decoding; so a flipped record head is reported as corruption instead of swallowing the
rest of the file. Running out of bytes inside a record means the last record is torn (a
killed recording). A corrupted length field that points past the end of the file looks the
same as truncation: the format has no checksums to tell them apart.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from typing import Any

import cbor2

from .errors import RecordError
from .model import Event
from .streams import ByteSource
from .values import normalize

MAGIC = b"\xd9\xd9\xf7"
_EVENT_HEADS = (0x83, 0x84)
_MAP_HEADS = range(0xa1, 0xb8)   # maps of 1..23 pairs


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


def _encode(value: Any, out: bytearray) -> None:
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
        _head(out, 0x80, len(value))
        for item in value:
            _encode(item, out)
    elif value is None:
        out.append(0xf6)
    elif value is True:
        out.append(0xf5)
    elif value is False:
        out.append(0xf4)
    else:
        out += cbor2.dumps(normalize(value))


class CborEncoder:
    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def header(self, raw: dict[str, Any]) -> bytes:
        return MAGIC + cbor2.dumps(raw)

    def event(self, e: Event) -> bytes:
        record = bytearray((0x84 if e.failed else 0x83,))
        code = self._codes.get(e.call)
        _head(record, 0x00, len(self._codes) if code is None else code)
        _encode(e.args, record)     # before interning the call: may raise
        _encode(e.result, record)
        if e.failed:
            record.append(0xf5)
        if code is None:
            if type(e.call) is not str:
                raise TypeError(f"event call must be str, not {type(e.call).__name__}")
            code = self._codes[e.call] = len(self._codes)
            return cbor2.dumps({"t": "call", "code": code, "name": e.call}) + record
        return bytes(record)

    def outcome(self, raw: dict[str, Any]) -> bytes:
        return cbor2.dumps(raw)


class CborDecoder:
    unit = "byte"

    def __init__(self, src: ByteSource):
        self._src = src
        # read_size=1: no read-ahead, so the stream position is exactly after each item
        self._dec = cbor2.CBORDecoder(src, read_size=1)  # type: ignore[arg-type]  # duck-typed stream
        self._names: list[str] = []

    def header(self) -> dict[str, Any] | None:
        """The raw header, None if the file ends inside it; RecordError if it is not a header."""
        self._src.read(len(MAGIC))
        try:
            raw = self._dec.decode()
        except cbor2.CBORDecodeEOF:
            return None
        except (cbor2.CBORDecodeError, ValueError) as e:
            raise RecordError(f"not an rr trace: undecodable header ({e})", 0) from None
        if not isinstance(raw, dict) or raw.get("t") != "header":
            raise RecordError("not an rr trace: the first record is not a header", 0)
        try:
            return normalize(raw)
        except TypeError as e:
            raise RecordError(f"corrupt header: {e}", 0) from None

    def records(self) -> Generator[tuple[str, Any, int], None, int | None]:
        """Yield ("event" | "outcome" | "call", raw, byte offset); return the offset of a torn
        last record, or None at a clean end.

        cbor2 decodes from an in-memory window of the file (`io.BytesIO`, whose C-level reads
        cost a fraction of a Python `read` method's) that starts at a record boundary. A record
        that runs past the window's end is decoded again from its start once the window has
        grown by at least its own size, or is the torn last record when the file ends first."""
        src, dec = self._src, self._dec
        window, start = b"", 0     # `start`: offset in `window` of the next record
        base = src.pos             # file offset of window[0]
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
                more = self._read_at_least(len(window) - start)
                if not more:
                    return pos
                base += start
                window, start = window[start:] + more, 0
                view = dec.fp = io.BytesIO(window)
                continue
            except RecordError as e:
                raise RecordError(str(e), pos) from None
            except (cbor2.CBORDecodeError, TypeError, ValueError, OverflowError) as e:
                # cbor2 turns some tags into other types or rejects their contents
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
            return "event", {"call": self._names[code], "args": normalize(args),
                             "result": normalize(result), "failed": head == 0x84}
        if head in _MAP_HEADS:
            dec.fp.read(1)   # the map head: its pairs are decoded one by one below
            raw = {}
            for _ in range(head - 0xa0):
                key = dec.decode()
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

