"""Trace values: validation, and the JSON mapping shared by the JSONL codec and `inspect --json`.

JSON mapping (a JSON object with exactly ONE key that starts with "$" is always an escape):
  bytes               -> {"$bytes": "<standard base64 with padding>"}
  nan, inf, -inf      -> {"$float": "nan" | "inf" | "-inf"}
  int over 13000 bits -> {"$int": "<hex, e.g. -0x1f>"}   (Python refuses to print/parse
                         decimal ints above ~4300 digits; hex has no such limit)
  dict whose only key starts with "$" -> {"$dict": {<that key>: <value>}}
  tuple               -> list
Anything else maps to itself. Escapes are written only where needed, and the reader
rejects unnecessary ones, so JSON -> value -> JSON is the identity on files rr writes.

NaN: sign and payload are not kept; every NaN reads back as the canonical quiet NaN
(CBOR writes it as the half float 0xf97e00). WASI 0.2 has no NaN-carrying calls rr records.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

_SCALARS = (type(None), bool, int, float, str, bytes)
_BIG_INT_BITS = 13000


def normalize(value: Any) -> Any:
    """Return `value` as a plain trace value (tuples -> lists, bytearray -> bytes) or raise TypeError."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is list or t is tuple:
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"trace dict keys must be str, not {type(k).__name__}")
            out[k] = normalize(v)
        return out
    if t is bytearray or t is memoryview:
        return bytes(value)
    raise TypeError(f"not a trace value: {t.__name__}")


def to_jsonable(value: Any) -> Any:
    t = type(value)
    if t is bytes or t is bytearray or t is memoryview:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if t is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if t is int:
        return {"$int": hex(value)} if value.bit_length() > _BIG_INT_BITS else value
    if value is None or t is bool or t is str:
        return value
    if t is list or t is tuple:
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"trace dict keys must be str, not {type(k).__name__}")
            out[k] = to_jsonable(v)
        return {"$dict": out} if _looks_like_escape(out) else out
    raise TypeError(f"not a trace value: {t.__name__}")


def from_jsonable(value: Any) -> Any:
    """Inverse of to_jsonable for values parsed by `json.loads`; raises ValueError on bad escapes."""
    t = type(value)
    if t is list:
        return [from_jsonable(v) for v in value]
    if t is dict:
        if _looks_like_escape(value):
            return _unescape(*next(iter(value.items())))
        return {k: from_jsonable(v) for k, v in value.items()}
    if t in _SCALARS:
        return value
    raise ValueError(f"not a JSON trace value: {t.__name__}")


def _looks_like_escape(d: dict[str, Any]) -> bool:
    return len(d) == 1 and next(iter(d)).startswith("$")


def _unescape(key: str, payload: Any) -> Any:
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
            return n
    if key == "$dict" and type(payload) is dict and _looks_like_escape(payload):
        return {k: from_jsonable(v) for k, v in payload.items()}
    raise ValueError(f"bad escape {key!r}: {str(payload)[:60]}")


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
