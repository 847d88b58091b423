"""Whole-trace operations built on the reader and writer: conversion and summaries."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import TraceNameError
from .model import Event, Trace
from .reader import open_trace
from .values import byte_count
from .writer import TraceWriter


def convert(src_path: str | os.PathLike[str], dst_path: str | os.PathLike[str],
            fmt: str | None = None, overwrite: bool = False) -> None:
    """Re-encode a trace (streaming); CBOR output gets fresh checksums. An incomplete source
    gives an incomplete copy without the torn record. The output appears only once it is whole:
    on a corrupt source (TraceError) or a failed write nothing is left of it, and a file it was
    to replace is untouched."""
    with open_trace(src_path) as reader:
        if os.path.exists(dst_path) and os.path.samefile(src_path, dst_path):
            raise TraceNameError(f"{os.fspath(dst_path)}: is the input trace itself: "
                                 f"convert into another file")
        writer = TraceWriter(dst_path, fmt, overwrite=overwrite)
        try:
            writer.write_header(reader.header)
            for event in reader:
                writer.write_event(event)
            if reader.outcome is not None:
                writer.write_outcome(reader.outcome)
        except BaseException:
            writer.discard()
            raise
        writer.close()


@dataclass(frozen=True)
class Summary:
    events: int
    calls: dict[str, int]   # interface ("wasi:random/random") -> number of events
    bytes: dict[str, int]   # interface -> total length of bytes payloads in args and results


def summarize(trace: Trace | Iterable[Event]) -> Summary:
    """Counts per interface; takes a Trace or any event iterable (e.g. an open_trace reader)."""
    events = trace.events if isinstance(trace, Trace) else trace
    calls: Counter[str] = Counter()
    payload: Counter[str] = Counter()
    for e in events:
        iface = e.interface
        calls[iface] += 1
        payload[iface] += byte_count(e.args) + byte_count(e.result)
    return Summary(sum(calls.values()), dict(calls), dict(payload))
