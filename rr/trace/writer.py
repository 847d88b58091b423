"""Writing traces: straight to the target path, one flushed write per record.

A recording killed at any point leaves a file that reads back up to its last whole event.
The writer never replaces an existing file unless told to (`overwrite=True`): losing an earlier
recording by accident is worse than a failed start. Not thread-safe: one writer per thread.
"""

from __future__ import annotations

import os
from types import TracebackType

from .cbor import CborEncoder
from .errors import TraceExistsError
from .jsonl import JsonlEncoder
from .model import Event, Header, Outcome
from .records import header_to_raw, outcome_to_raw
from .streams import GzipSink, Sink

FORMATS = ("cbor", "jsonl")
_EXTENSIONS = {".cbor": "cbor", ".json": "jsonl", ".jsonl": "jsonl"}


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[str, bool]:
    """(format, gzip?) for writing `path`: gzip iff the name ends in .gz; the format from `fmt`
    ("cbor", "jsonl" or "json") or else from the extension before any .gz."""
    name = os.fspath(path).lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if fmt is not None:
        fmt = "jsonl" if fmt == "json" else fmt
        if fmt not in FORMATS:
            raise ValueError(f"unknown trace format {fmt!r}; use cbor or jsonl")
        return fmt, gz
    for ext, found in _EXTENSIONS.items():
        if name.endswith(ext):
            return found, gz
    raise ValueError(f"cannot tell the trace format from the name {os.fspath(path)!r}: "
                     f"use .cbor, .json or .jsonl (optionally + .gz) or pass fmt")


class TraceWriter:
    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None, *, overwrite: bool = False):
        self.path = os.fspath(path)
        self.fmt, gz = format_for(path, fmt)
        try:
            # "x": fail if it exists, atomically; unbuffered: Sink writes each record to the OS
            f = open(self.path, "wb" if overwrite else "xb", buffering=0)
        except FileExistsError:
            raise TraceExistsError(f"{self.path}: refusing to overwrite an existing file") from None
        self._sink: Sink = GzipSink(f) if gz else Sink(f)
        self._encoder = CborEncoder() if self.fmt == "cbor" else JsonlEncoder()
        self._state = "header"   # -> "events" -> "ended" -> "closed"
        self.events_written = 0

    def _expect(self, state: str, what: str) -> None:
        if self._state != state:
            raise RuntimeError(f"cannot write {what}: the writer is at {self._state!r}")

    def write_header(self, header: Header) -> None:
        self._expect("header", "the header")
        self._sink.write(self._encoder.header(header_to_raw(header)))
        self._state = "events"

    def write_event(self, event: Event) -> None:
        self._expect("events", "an event")
        self._sink.write(self._encoder.event(event))
        self.events_written += 1

    def write_outcome(self, outcome: Outcome) -> None:
        self._expect("events", "the outcome")
        self._sink.write(self._encoder.outcome(outcome_to_raw(outcome)))
        self._state = "ended"

    def close(self) -> None:
        """Flush and fsync. A trace closed without an outcome reads back as incomplete."""
        if self._state != "closed":
            self._state = "closed"
            self._sink.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
