"""Model objects <-> format-neutral raw records (plain dicts), shared by both codecs.

Header and outcome records are maps with a "t" key; the CBOR codec writes them as CBOR
maps, the JSONL codec as JSON objects (values through `to_jsonable`). Header keys are
written in a fixed order followed by `extra`, so re-encoding a decoded header is exact.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import RecordError
from .model import ComponentInfo, Event, Header, Outcome
from .values import normalize
from .versions import CURRENT_VERSION, FORMAT_NAME

# The largest record either codec writes or reads (CBOR: the record's bytes; JSONL: twice
# that per line, for escapes). A 400 MiB HTTP body is one record. A longer length claim is
# refused before anything is allocated.
MAX_RECORD = 512 << 20

# start_time must be a date a reader can print: years 1..9999
_TIME_RANGE = (-62135596800.0, 253402300799.0)
_MAX_SIZE = 1 << 63

HEADER_KEYS = ("t", "format", "version", "rr_version", "wasmtime_version", "component",
               "argv", "env", "dirs", "start_time", "limits")
_LIMIT_TYPES = {"max_memory": int, "timeout": float}


def header_to_raw(h: Header) -> dict[str, Any]:
    """Raw header for writing; raises ValueError/TypeError for a header that would not read back."""
    if h.format != FORMAT_NAME or h.version != CURRENT_VERSION:
        raise ValueError(f"this rr writes {FORMAT_NAME} version {CURRENT_VERSION}, "
                         f"not {h.format!r} version {h.version!r}")
    c = h.component
    raw: dict[str, Any] = {
        "t": "header", "format": h.format, "version": h.version,
        "rr_version": h.rr_version, "wasmtime_version": h.wasmtime_version,
        "component": {"sha256": c.sha256, "size": c.size, "name": c.name},
        "argv": list(h.argv), "env": [[k, v] for k, v in h.env],
        "dirs": [dict(d) for d in h.dirs],
        "start_time": float(h.start_time),
    }
    if h.limits:
        raw["limits"] = dict(h.limits)
    clash = raw.keys() & h.extra.keys()
    if clash:
        raise ValueError(f"header extra fields clash with standard ones: {sorted(clash)}")
    raw.update(normalize(h.extra))
    try:
        header_from_raw(raw)
    except RecordError as e:
        raise ValueError(f"invalid header: {e}") from None
    return raw


def header_from_raw(raw: dict[str, Any]) -> Header:
    """Build a Header from an (already version-upgraded) raw header; RecordError if malformed."""
    comp = _field(raw, "component", dict)
    for key, typ in (("sha256", str), ("size", int), ("name", str)):
        if type(comp.get(key)) is not typ:
            raise RecordError(f"header field 'component.{key}' must be {typ.__name__}")
    if not 0 <= comp["size"] < _MAX_SIZE:
        raise RecordError("header field 'component.size' is out of range")
    argv = _field(raw, "argv", list)
    if not all(type(a) is str for a in argv):
        raise RecordError("header field 'argv' must be a list of str")
    env = _field(raw, "env", list)
    if not all(type(p) is list and len(p) == 2 and all(type(s) is str for s in p) for p in env):
        raise RecordError("header field 'env' must be a list of [name, value] str pairs")
    dirs = _field(raw, "dirs", list)
    if not all(type(d) is dict and all(type(d.get(k)) is str for k in ("host", "guest", "mode"))
               for d in dirs):
        raise RecordError("header field 'dirs' must be a list of {host, guest, mode} str maps")
    start = raw.get("start_time")
    if type(start) is not float:
        raise RecordError("header field 'start_time' must be a float")
    if not (math.isfinite(start) and _TIME_RANGE[0] <= start <= _TIME_RANGE[1]):
        raise RecordError(f"header field 'start_time' is not a date: {start!r}")
    limits = raw.get("limits", {})
    if type(limits) is not dict or not all(k in _LIMIT_TYPES and type(v) is _LIMIT_TYPES[k]
                                           and 0 < v < _MAX_SIZE and math.isfinite(v) for k, v in limits.items()):
        raise RecordError("header field 'limits' must be a map of max_memory: int, timeout: float (> 0)")
    return Header(
        format=raw["format"], version=raw["version"],
        rr_version=_field(raw, "rr_version", str),
        wasmtime_version=_field(raw, "wasmtime_version", str),
        component=ComponentInfo(comp["sha256"], comp["size"], comp["name"]),
        argv=argv, env=[(k, v) for k, v in env], dirs=dirs, start_time=start, limits=limits,
        extra={k: v for k, v in raw.items() if k not in HEADER_KEYS},
    )


def event_from_raw(raw: dict[str, Any]) -> Event:
    call, args, failed = raw.get("call"), raw.get("args"), raw.get("failed", False)
    if type(call) is not str or type(args) is not list or type(failed) is not bool or "result" not in raw:
        raise RecordError("event must have call: str, args: list, result and optional failed: bool")
    return Event(call, args, raw["result"], failed)


def outcome_to_raw(o: Outcome) -> dict[str, Any]:
    raw = {"t": "outcome", "kind": o.kind, **{name: getattr(o, name) for name in Outcome.fields(o.kind) or ()}}
    if o.output is not None:
        raw["output"] = o.output
    return raw


# An outcome's optional `output`: per stream, what the guest wrote (rr/output.py makes it).
_OUTPUT_FIELDS = {"size": int, "sha256": str, "chunk": int, "digests": bytes}
_DIGEST_BYTES = 4   # a CRC-32 per chunk


def _output_from_raw(output: Any) -> dict[str, Any]:
    if type(output) is not dict or not output or not set(output) <= {"stdout", "stderr"}:
        raise RecordError("outcome field 'output' must map stdout and/or stderr to what the guest wrote")
    for name, s in output.items():
        if type(s) is not dict or not set(_OUTPUT_FIELDS) <= set(s) <= {*_OUTPUT_FIELDS, "data"} \
                or any(type(s[k]) is not t for k, t in _OUTPUT_FIELDS.items()):
            raise RecordError(f"outcome output.{name} must be {{size: int, sha256: str, chunk: int, "
                              f"digests: bytes, data?: bytes}}")
        chunk, size, digests = s["chunk"], s["size"], s["digests"]
        if not (0 <= size < _MAX_SIZE and chunk >= 4096 and chunk & (chunk - 1) == 0 and len(s["sha256"]) == 64
                and len(digests) == -(-size // chunk) * _DIGEST_BYTES
                and ("data" not in s or type(s["data"]) is bytes and len(s["data"]) == size)):
            raise RecordError(f"outcome output.{name}: size {size}, chunk {chunk}, {len(digests)} digest bytes "
                              f"and its data do not agree")
    return output


def outcome_from_raw(raw: dict[str, Any]) -> Outcome:
    kind = raw.get("kind")
    names = Outcome.fields(kind) if type(kind) is str else None
    if names is None or set(raw) - {"output"} != {"t", "kind", *names}:
        raise RecordError(f"outcome must be {{kind: exit|trap|stopped|memory|timeout|interrupted|terminated, "
                          f"and its fields}}, got keys {sorted(raw)}")
    try:
        outcome = Outcome(kind, **{name: raw[name] for name in names},  # type: ignore[arg-type]
                          output=_output_from_raw(raw["output"]) if "output" in raw else None)
    except ValueError as e:
        raise RecordError(str(e)) from None
    if kind == "exit" and not 0 <= outcome.status <= 255 or any(
            name in ("event", "calls") and not 0 <= raw[name] < _MAX_SIZE for name in names):
        raise RecordError(f"outcome {kind} {', '.join(f'{n} {raw[n]}' for n in names)} is out of range")
    return outcome


def _field(raw: dict[str, Any], key: str, typ: type) -> Any:
    value = raw.get(key)
    if type(value) is not typ:
        raise RecordError(f"header field {key!r} must be {typ.__name__}")
    return value
