"""JSON Lines codec: one JSON object per line, UTF-8, for people, editors and `jq`.

  {"t": "header", "format": "rr-trace", "version": 2, ...}
  {"call": "wasi:random/random.get-random-u64", "args": [], "result": 123}
  {"call": "wasi:filesystem/types.[method]descriptor.stat", "args": [3], "result": "no-entry", "failed": true}
  {"call": "wasi:io/streams.[method]input-stream.read", "args": [4, 4096], "result": {"$utf8": "hello\n"}}
  {"t": "outcome", "kind": "exit", "status": 0}

Values go through `values.to_jsonable`: text stays text (bytes that are UTF-8 text as
{"$utf8": "..."}, e.g. HTTP headers and bodies, stdin), other bytes are {"$bytes": base64}.
Floats are written with Python's shortest round-trip repr and ints in full, so both read back
exactly.

What JSONL promises: it is the form a person reads and edits. It carries NO checksums: a hand
edit is honoured exactly as written (the replay still checks each value against what the guest
expects); `rr convert` to CBOR seals it with fresh checksums, and CBOR -> JSONL -> CBOR gives
the same bytes. Lines are bounded (MAX_LINE) and values by the limits in values.py.
A last line without its newline that does not parse is a torn record (killed recording); a
line that does not parse anywhere else is corruption.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from typing import Any

from .errors import RecordError
from .model import Event
from .records import MAX_RECORD
from .streams import ByteSource
from .values import from_jsonable, to_jsonable

MAX_LINE = 2 * MAX_RECORD   # a record's bytes as base64 or escaped text

_EVENT_KEYS = {"call", "args", "result"}
_FAILED_EVENT_KEYS = {"call", "args", "result", "failed"}


def _dumps(obj: Any) -> bytes:
    line = (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    if len(line) > MAX_LINE:
        raise ValueError(f"a record of {len(line)} bytes is over the maximum line length ({MAX_LINE})")
    return line


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):   # e.g. 1e999: rr writes {"$float": "inf"} instead
        raise ValueError(f"number {text} does not fit a float")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(line: bytes) -> Any:
    """The JSON value of a line; ValueError (with a message for people) if it is none."""
    try:
        value = json.loads(line, parse_float=_finite, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as e:
        if "Exceeds the limit" in str(e):   # Python's int<->str guard
            raise ValueError("an int over 4300 digits (the trace limit)") from None
        raise
    if b"\\ud" in line or b"\\uD" in line:   # a surrogate escape: only a pair of them is text
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    return value


def _readline(src: ByteSource, number: int) -> bytes:
    line = src.readline(MAX_LINE)
    if line is None:
        raise RecordError(f"a line longer than the maximum ({MAX_LINE} bytes)", number)
    return line


class JsonlEncoder:
    def header(self, raw: dict[str, Any]) -> bytes:
        return _dumps(to_jsonable(raw))

    def event(self, e: Event) -> bytes:
        if type(e.call) is not str:
            raise TypeError(f"event call must be str, not {type(e.call).__name__}")
        obj = {"call": e.call, "args": to_jsonable(list(e.args), 1), "result": to_jsonable(e.result, 1)}
        if e.failed:
            obj["failed"] = True
        return _dumps(obj)

    def outcome(self, raw: dict[str, Any]) -> bytes:
        return _dumps(to_jsonable(raw))   # its output digests and bytes are bytes


class JsonlDecoder:
    unit = "line"

    def __init__(self, src: ByteSource):
        self._src = src
        self._line = 0

    def header(self) -> dict[str, Any] | None:
        """The raw header, None if the file ends inside it; RecordError if it is not a header."""
        self._line = 1
        line = _readline(self._src, 1)
        try:
            raw = from_jsonable(_loads(line))
        except ValueError as e:
            if not line.endswith(b"\n"):
                return None
            raise RecordError(f"not an rr trace: the first line is not a JSON trace header ({e})", 1) from None
        if type(raw) is not dict or raw.get("t") != "header":
            raise RecordError("not an rr trace: the first line is not an rr trace header", 1)
        return raw

    def records(self) -> Generator[tuple[str, Any, int], None, int | None]:
        """Yield ("event" | "outcome", raw, line number); return the line number of a torn
        last line, or None at a clean end."""
        while True:
            line = _readline(self._src, self._line + 1)
            if not line:
                return None
            self._line += 1
            try:
                obj = _loads(line)
            except ValueError as e:
                if not line.endswith(b"\n"):
                    return self._line
                raise RecordError(f"not JSON: {e}", self._line) from None
            try:
                record = self._record(obj)
            except RecordError as e:
                raise RecordError(str(e), self._line) from None
            yield record

    def _record(self, obj: Any) -> tuple[str, Any, int]:
        if type(obj) is not dict:
            raise RecordError("a record must be a JSON object")
        try:
            if "t" in obj:
                if obj["t"] != "outcome":
                    raise RecordError(f"unexpected record type {obj['t']!r}")
                return "outcome", from_jsonable(obj), self._line
            keys = obj.keys()
            if not (keys == _EVENT_KEYS or (keys == _FAILED_EVENT_KEYS and obj["failed"] is True)):
                raise RecordError(f"an event has keys call, args, result (+ failed: true), "
                                  f"not {sorted(keys)}")
            return "event", {"call": obj["call"], "args": from_jsonable(obj["args"], 1),
                             "result": from_jsonable(obj["result"], 1),
                             "failed": "failed" in obj}, self._line
        except RecordError:
            raise
        except ValueError as e:
            raise RecordError(str(e)) from None
