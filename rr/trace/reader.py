"""Reading traces: format detection by content, streaming, truncation vs corruption.

`open_trace(path)` streams: `.header` is read at once, events are yielded one by one, and
`.outcome`, `.complete` and `.problem` are known once the events are exhausted.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

from . import cbor, jsonl
from .errors import RecordError, TraceError
from .model import Event, Header, Outcome, Trace
from .records import event_from_raw, header_from_raw, outcome_from_raw
from .streams import GZIP_MAGIC, ByteSource, Gunzip, file_source
from .versions import CURRENT_VERSION, upgrade_event, upgrade_header

Record = Header | Event | Outcome


def iter_records(f: BinaryIO, name: str = "<stream>") -> Generator[Record, None, str | None]:
    """Yield the Header, then each Event, then the Outcome if the trace has one.

    The generator's return value (StopIteration.value) is None for a complete trace, else the
    reason it is incomplete. Raises TraceError for anything that is not a torn end.
    """
    raw_src = file_source(f)
    src, gunzip = raw_src, None
    if raw_src.peek(2) == GZIP_MAGIC:
        gunzip = Gunzip(raw_src, name)
        src = ByteSource(gunzip)
    decoder = _detect(src, name, gunzip)
    label = f"{decoder.unit} {{}}" + (" (uncompressed)" if gunzip and decoder.unit == "byte" else "")

    def fail(e: RecordError, events: int) -> TraceError:
        return TraceError(f"{name}: {label.format(e.pos)} (after {events} events): {e}")

    try:
        raw_header = decoder.header()
        if raw_header is None:
            raise TraceError(f"{name}: truncated inside the header ({src.pos} bytes)")
        raw_header, file_version = upgrade_header(raw_header)
        header = header_from_raw(raw_header)
    except RecordError as e:
        raise TraceError(f"{name}: {e}") from None
    yield header

    events = 0
    outcome_seen = False
    records = decoder.records()
    try:
        while True:
            try:
                kind, raw, pos = next(records)
            except StopIteration as stop:
                torn = stop.value
                break
            if outcome_seen:
                raise RecordError("unexpected record after the outcome", pos)
            if kind == "call":   # a CBOR call definition: the codec has taken it in
                continue
            try:
                if kind == "event":
                    if file_version != CURRENT_VERSION:
                        raw = upgrade_event(file_version, raw)
                    record: Record = event_from_raw(raw)
                else:
                    record = outcome_from_raw(raw)
                    outcome_seen = True
            except RecordError as e:
                raise RecordError(str(e), pos) from None
            yield record
            events += kind == "event"
    except RecordError as e:
        raise fail(e, events) from None

    if torn is not None:
        if outcome_seen:
            raise fail(RecordError("unexpected data after the outcome", torn), events)
        return f"truncated after {events} events: torn record at {label.format(torn)}"
    if not outcome_seen:
        return f"no outcome: the recording ended after {events} events ({src.pos} bytes)"
    return None


def _detect(src: ByteSource, name: str, gunzip: Gunzip | None) -> cbor.CborDecoder | jsonl.JsonlDecoder:
    head = src.peek(len(cbor.MAGIC))
    if not head:
        if gunzip is not None and gunzip.truncated:
            raise TraceError(f"{name}: truncated inside the header (gzip holds no data yet)")
        raise TraceError(f"{name}: empty file" + (" (empty gzip stream)" if gunzip else ""))
    if head == cbor.MAGIC:
        return cbor.CborDecoder(src)
    if head[:1] == b"{":
        return jsonl.JsonlDecoder(src)
    if len(head) < len(cbor.MAGIC) and (cbor.MAGIC.startswith(head) or GZIP_MAGIC.startswith(head)):
        raise TraceError(f"{name}: truncated inside the header ({len(head)} bytes)")
    shown = src.peek(8).hex(" ")
    raise TraceError(f"{name}: not an rr trace (starts with bytes {shown})")


class TraceReader:
    """A trace being read: `.header` at once, events by iterating, then the outcome."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._f = open(self.path, "rb")
        try:
            self._records = iter_records(self._f, self.path)
            self.header: Header = next(self._records)  # type: ignore[assignment]
        except BaseException:
            self._f.close()
            raise
        self._outcome: Outcome | None = None
        self._problem: str | None = None
        self._done = False

    def __iter__(self) -> Iterator[Event]:
        if self._done:
            return
        try:
            while True:
                try:
                    record = next(self._records)
                except StopIteration as stop:
                    self._problem = stop.value
                    break
                if isinstance(record, Outcome):
                    self._outcome = record
                else:
                    yield record  # type: ignore[misc]
            self._done = True   # only when read to the end: a reader abandoned early knows no outcome
        finally:
            self._f.close()

    events = __iter__

    def _finished(self, what: str) -> Any:
        if not self._done:
            raise RuntimeError(f"read all events before asking for {what}")
        return getattr(self, "_" + what)

    @property
    def outcome(self) -> Outcome | None:
        return self._finished("outcome")

    @property
    def problem(self) -> str | None:
        return self._finished("problem")

    @property
    def complete(self) -> bool:
        return self._finished("problem") is None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trace(path: str | os.PathLike[str]) -> TraceReader:
    return TraceReader(path)


def read_trace(path: str | os.PathLike[str]) -> Trace:
    with open_trace(path) as reader:
        events = list(reader)
        return Trace(reader.header, events, reader.outcome, reader.complete, reader.problem)
