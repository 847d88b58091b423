"""Trace values: validation, and the JSON mapping shared by the JSONL codec and `inspect --json`.

Limits (one place for reader and writer): containers nest at most MAX_DEPTH deep and ints
have at most MAX_INT_BITS bits (4,300 decimal digits, Python's int<->str limit), so every value
a trace holds can be decoded without recursion errors and printed.

JSON mapping (a JSON object with exactly ONE key that starts with "$" is always an escape):
  bytes that are text -> {"$utf8": "<the text>"}   (valid UTF-8 without control characters
                         other than tab, newline and carriage return: HTTP headers, text
                         bodies, typed stdin; readable and editable as written)
  other bytes         -> {"$bytes": "<standard base64 with padding>"}  (either escape is read
                         for any bytes; rr writes the first that fits)
  nan, inf, -inf      -> {"$float": "nan" | "inf" | "-inf"}
  int over 13000 bits -> {"$int": "<hex, e.g. -0x1f>"}   (Python refuses to print/parse
                         decimal ints above ~4300 digits; hex has no such limit)
  dict whose only key starts with "$" -> {"$dict": {<that key>: <value>}}
  tuple               -> list
Anything else maps to itself. Escapes are written only where needed, and the reader
rejects unnecessary ones (but reads {"$bytes"} of text as written), so JSON -> value -> JSON
is the identity on files rr writes.

NaN: sign and payload are not kept; every NaN reads back as the canonical quiet NaN
(CBOR writes it as the half float 0xf97e00). WASI 0.2 has no NaN-carrying calls rr records.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

_SCALARS = (type(None), bool, float, str, bytes)
_BIG_INT_BITS = 13000
MAX_DEPTH = 64          # containers inside containers; WASI values and flow records use < 10
MAX_INT_BITS = 14283    # 2**14283 < 10**4300: every trace int prints in decimal


class ValueLimitError(ValueError):
    """A value nests deeper than MAX_DEPTH or holds an int over MAX_INT_BITS."""


def check_int(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise ValueLimitError(f"an int of {value.bit_length()} bits is over the trace limit "
                              f"of {MAX_INT_BITS} bits (4300 digits)")
    return value


def too_deep() -> ValueLimitError:
    return ValueLimitError(f"values nest more than {MAX_DEPTH} deep")


def normalize(value: Any, depth: int = 0) -> Any:
    """Return `value` as a plain trace value (tuples -> lists, bytearray -> bytes); TypeError for
    what is not a trace value, ValueLimitError for one over the limits."""
    t = type(value)
    if t is int:
        return value if value.bit_length() <= MAX_INT_BITS else check_int(value)
    if t in _SCALARS:
        return value
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise too_deep()
        return [normalize(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise too_deep()
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"trace dict keys must be str, not {type(k).__name__}")
            out[k] = normalize(v, depth + 1)
        return out
    if t is bytearray or t is memoryview:
        return bytes(value)
    raise TypeError(f"not a trace value: {t.__name__}")


def _is_text(data: bytes) -> bool:
    """Bytes a person can read and edit as a JSON string (and that JSON does not bloat)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-ready data; TypeError for what is not a trace value, ValueLimitError
    past the limits (as the reader would refuse it)."""
    t = type(value)
    if t is bytes or t is bytearray or t is memoryview:
        data = bytes(value)
        if _is_text(data):
            return {"$utf8": data.decode("utf-8")}
        return {"$bytes": base64.b64encode(data).decode("ascii")}
    if t is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if t is int:
        return {"$int": hex(value)} if check_int(value).bit_length() > _BIG_INT_BITS else value
    if value is None or t is bool or t is str:
        return value
    if depth >= MAX_DEPTH and (t is list or t is tuple or isinstance(value, dict)):
        raise too_deep()
    if t is list or t is tuple:
        return [to_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"trace dict keys must be str, not {type(k).__name__}")
            out[k] = to_jsonable(v, depth + 1)
        return {"$dict": out} if _looks_like_escape(out) else out
    raise TypeError(f"not a trace value: {t.__name__}")


def from_jsonable(value: Any, depth: int = 0) -> Any:
    """Inverse of to_jsonable for values parsed by `json.loads`; raises ValueError on bad escapes
    and ValueLimitError past the limits."""
    t = type(value)
    if t is int:
        return check_int(value)
    if t in _SCALARS:
        return value
    if depth >= MAX_DEPTH:
        raise too_deep()
    if t is list:
        return [from_jsonable(v, depth + 1) for v in value]
    if t is dict:
        if _looks_like_escape(value):
            return _unescape(*next(iter(value.items())), depth)
        return {k: from_jsonable(v, depth + 1) for k, v in value.items()}
    raise ValueError(f"not a JSON trace value: {t.__name__}")


def _looks_like_escape(d: dict[str, Any]) -> bool:
    return len(d) == 1 and next(iter(d)).startswith("$")


def _unescape(key: str, payload: Any, depth: int) -> Any:
    if key == "$utf8" and type(payload) is str:
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:   # a lone surrogate escape (\ud800) is not text
            raise ValueError("$utf8 holds a lone surrogate, which is not UTF-8") from None
    if key == "$bytes" and type(payload) is str:
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as e:
            raise ValueError(f"bad base64 in $bytes: {e}") from None
    if key == "$float" and payload in ("nan", "inf", "-inf"):
        return float(payload)
    if key == "$int" and type(payload) is str:
        try:
            n = int(payload, 16)
        except ValueError:
            raise ValueError(f"bad hex in $int: {payload[:40]!r}") from None
        if n.bit_length() > _BIG_INT_BITS:
            return check_int(n)
    if key == "$dict" and type(payload) is dict and _looks_like_escape(payload):
        return {k: from_jsonable(v, depth + 1) for k, v in payload.items()}
    raise ValueError(f"bad escape {key!r}: {str(payload)[:60]!r}")


def byte_count(value: Any) -> int:
    """Total length of the bytes payloads inside a trace value."""
    t = type(value)
    if t is bytes:
        return len(value)
    if t is list:
        return sum(byte_count(v) for v in value)
    if t is dict:
        return sum(byte_count(v) for v in value.values())
    return 0
