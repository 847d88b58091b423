"""Property: any trace rr can write survives CBOR -> JSONL -> CBOR byte for byte, JSONL -> CBOR
-> JSONL likewise, and reads back equal to what was written.

NaN: generated floats include NaN with any sign/payload. NaN never equals itself, so values are
compared through `comparable`, which maps every NaN to one marker; that matches the documented
rule that every NaN reads back as the canonical quiet NaN.
"""

from __future__ import annotations

import dataclasses

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rr.trace import ComponentInfo, Event, Header, Outcome, TraceWriter, convert, read_trace

# Every writer fsyncs on close; on tmpfs that is free, which keeps 200 examples near 2 s.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None
HUGE_INTS = st.sampled_from([2**13001 + 12345, -(2**14000) - 1])   # take the {"$int": hex} path
ESCAPE_LOOKALIKE_KEYS = st.sampled_from(["$bytes", "$dict", "$float", "$int", "$", "$x"])

leaves = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | HUGE_INTS
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.binary(max_size=24))
values = st.recursive(
    leaves,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=6) | ESCAPE_LOOKALIKE_KEYS, inner, max_size=3)),
    max_leaves=12)
call_names = st.sampled_from(["wasi:random/random.get-random-u64", "wasi:clocks/wall-clock.now",
                              "wasi:io/streams.[method]output-stream.write", "x:y/z.ü"])
events = st.builds(Event, call_names, st.lists(values, max_size=3), values, st.booleans())
headers = st.builds(
    Header, rr_version=st.text(max_size=8), wasmtime_version=st.text(max_size=8),
    component=st.builds(ComponentInfo, st.text("0123456789abcdef", min_size=64, max_size=64),
                        st.integers(0, 2**40), st.text(max_size=10)),
    argv=st.lists(st.text(max_size=10), max_size=3),
    env=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=3),
    dirs=st.lists(st.fixed_dictionaries({"host": st.text(max_size=6), "guest": st.text(max_size=6),
                                         "mode": st.sampled_from(["ro", "rw"])}), max_size=2),
    start_time=st.floats(0, 4e9),
    extra=st.dictionaries(st.text(min_size=1, max_size=6).map(lambda k: "x-" + k), values, max_size=2))
outcomes = st.none() | st.builds(Outcome.exit, st.integers(0, 255)) | st.builds(Outcome.trap, st.text()) \
    | st.builds(Outcome.stopped, st.integers(0, 100))


def comparable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "<nan>"
    if isinstance(v, (list, tuple)):
        return [comparable(x) for x in v]
    if isinstance(v, dict):
        return {k: comparable(x) for k, x in v.items()}
    return v


@settings(max_examples=200, deadline=None)
@given(header=headers, evs=st.lists(events, max_size=8), outcome=outcomes)
def test_cbor_jsonl_cbor_is_the_identity(header: Header, evs: list[Event], outcome: Outcome | None) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as d:
        tmp = Path(d)
        with TraceWriter(tmp / "a.cbor") as w:
            w.write_header(header)
            for e in evs:
                w.write_event(e)
            if outcome is not None:
                w.write_outcome(outcome)
        convert(tmp / "a.cbor", tmp / "b.jsonl")
        convert(tmp / "b.jsonl", tmp / "c.cbor")
        convert(tmp / "c.cbor", tmp / "d.jsonl")
        assert (tmp / "a.cbor").read_bytes() == (tmp / "c.cbor").read_bytes()
        assert (tmp / "b.jsonl").read_bytes() == (tmp / "d.jsonl").read_bytes()

        t = read_trace(tmp / "b.jsonl")
        # Header extras are trace values too: NaN there compares through `comparable`.
        assert dataclasses.replace(t.header, extra={}) == dataclasses.replace(header, extra={})
        assert comparable(t.header.extra) == comparable(header.extra)
        assert t.outcome == outcome and t.complete == (outcome is not None)
        assert comparable([(e.call, e.args, e.result, e.failed) for e in t.events]) == \
            comparable([(e.call, e.args, e.result, e.failed) for e in evs])
