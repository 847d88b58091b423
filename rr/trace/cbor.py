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


class CborEncoder:
    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def header(self, raw: dict[str, Any]) -> bytes:
        return MAGIC + cbor2.dumps(raw)

    def event(self, e: Event) -> bytes:
        args, result = normalize(e.args), normalize(e.result)   # before interning: may raise
        code = self._codes.get(e.call)
        prefix = b""
        if code is None:
            if type(e.call) is not str:
                raise TypeError(f"event call must be str, not {type(e.call).__name__}")
            code = self._codes[e.call] = len(self._codes)
            prefix = cbor2.dumps({"t": "call", "code": code, "name": e.call})
        record = [code, args, result]
        if e.failed:
            record.append(True)
        return prefix + cbor2.dumps(record)

    def outcome(self, raw: dict[str, Any]) -> bytes:
        return cbor2.dumps(raw)


class CborDecoder:
    unit = "byte"

    def __init__(self, src: ByteSource):
        self._src = src
        self._dec = cbor2.CBORDecoder(src)  # type: ignore[arg-type]  # duck-typed stream
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
        last record, or None at a clean end."""
        src = self._src
        while True:
            pos = src.pos
            head = src.read(1)
            if not head:
                return None
            try:
                kind, raw = self._record(head[0])
            except cbor2.CBORDecodeEOF:
                return pos
            except RecordError as e:
                raise RecordError(str(e), pos) from None
            except (cbor2.CBORDecodeError, TypeError, ValueError, OverflowError) as e:
                # cbor2 turns some tags into other types or rejects their contents
                raise RecordError(f"undecodable record: {e}", pos) from None
            yield kind, raw, pos

    def _record(self, head: int) -> tuple[str, Any]:
        dec = self._dec
        if head in _EVENT_HEADS:
            code, args, result = dec.decode(), dec.decode(), dec.decode()
            if head == 0x84 and dec.decode() is not True:
                raise RecordError("the 4th item of an event must be true (failed)")
            if type(code) is not int or not 0 <= code < len(self._names):
                raise RecordError(f"event uses undefined call code {code!r}")
            if type(args) is not list:
                raise RecordError("event args must be an array")
            return "event", {"call": self._names[code], "args": normalize(args),
                             "result": normalize(result), "failed": head == 0x84}
        if head in _MAP_HEADS:
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

