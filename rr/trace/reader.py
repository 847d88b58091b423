"""Reading traces: format detection by content, streaming, truncation vs corruption.

`open_trace(path)` streams: `.header` is read at once, events are yielded one by one, and
`.outcome`, `.complete` and `.problem` are known once the events are exhausted.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from . import cbor
from .errors import RecordError, TraceError, TraceNotFoundError
from .model import Event, Header, Outcome, Trace
from .records import event_from_raw, header_from_raw, outcome_from_raw
from .streams import GZIP_MAGIC, ByteSource, Gunzip, file_source
from .versions import CURRENT_VERSION, upgrade_event, upgrade_header

if TYPE_CHECKING:
    from .jsonl import JsonlDecoder

Record = Header | Event | Outcome


def iter_records(f: BinaryIO, name: str = "<stream>", found: dict[str, Any] | None = None) -> Generator[Record, None, str | None]:
    """Yield the Header, then each Event, then the Outcome if the trace has one.

    The generator's return value (StopIteration.value) is None for a complete trace, else the
    reason it is incomplete. Raises TraceError (only) for anything that is not a torn end:
    corruption names the record index and its byte offset (CBOR) or line (JSONL).
    """
    try:
        raw_src = file_source(f)
        src, gunzip = raw_src, None
        if raw_src.peek(2) == GZIP_MAGIC:
            gunzip = Gunzip(raw_src, name)
            src = ByteSource(gunzip)
        decoder = _detect(src, name, gunzip)
        label = f"{decoder.unit} {{}}" + (" (uncompressed)" if gunzip and decoder.unit == "byte" else "")

        try:
            raw_header = decoder.header()
            if raw_header is None:
                raise TraceError(f"{name}: truncated inside the header ({src.pos} bytes)")
            raw_header, file_version = upgrade_header(raw_header)
            if getattr(decoder, "framed", file_version >= 2) != (file_version >= 2):
                raise RecordError(f"corrupt header: version {file_version} in the layout of another version")
            header = header_from_raw(raw_header)
            # The native cursor (cbor.py): its counts are these; native host calls may take
            # events from it only when they need no upgrade
            cursor = getattr(decoder, "cursor", None)
            if found is not None:
                found["file_version"] = file_version   # the header itself is upgraded
                found["cursor"] = cursor
        except RecordError as e:
            raise TraceError(f"{name}: {e}") from None
        counts = cursor if cursor is not None else _Counts()
        counts.index = 1   # records so far, the header being record 0
        if cursor is not None:
            cursor.live = file_version == CURRENT_VERSION
        yield header

        outcome_at: int | None = None   # where the outcome record starts

        def fail(e: RecordError) -> TraceError:
            why = " ".join(str(e).splitlines())   # one line, whatever the record held
            if outcome_at is not None:
                return TraceError(f"{name}: data after the outcome record, at {label.format(e.pos)} "
                                  f"(the trace is whole up to there: {counts.events} events and the outcome)")
            return TraceError(f"{name}: corrupt record {counts.index} at {label.format(e.pos)} "
                              f"(after {counts.events} events): {why}")

        records = decoder.records()
        try:
            while True:
                try:
                    kind, raw, pos = next(records)
                except StopIteration as stop:
                    torn = stop.value
                    break
                if outcome_at is not None:
                    raise RecordError("unexpected record after the outcome", pos)
                if kind != "call":   # a CBOR call definition: the codec has taken it in
                    try:
                        if kind == "event":
                            if file_version != CURRENT_VERSION:
                                raw = upgrade_event(file_version, raw)
                            record: Record = event_from_raw(raw)
                        else:
                            record = outcome_from_raw(raw)
                            outcome_at = pos
                    except RecordError as e:
                        raise RecordError(str(e), pos) from None
                    yield record
                    counts.events += kind == "event"
                counts.index += 1
        except RecordError as e:
            raise fail(e) from None

        if torn is not None:
            if outcome_at is not None:
                raise fail(RecordError("torn", torn))
            return f"truncated after {counts.events} events: torn record at {label.format(torn)}"
        if outcome_at is None:
            return f"no outcome: the recording ended after {counts.events} events ({src.pos} bytes)"
        return None
    except TraceError:
        raise
    except OSError as e:
        raise TraceError(f"{name}: cannot read: {e.strerror or e}") from None
    except (MemoryError, RecursionError) as e:   # bounded by design; never a traceback
        raise TraceError(f"{name}: cannot read: {type(e).__name__}") from None


class _Counts:
    """iter_records' counts when there is no native cursor to keep them."""

    __slots__ = ("events", "index")

    def __init__(self) -> None:
        self.events = self.index = 0


def _detect(src: ByteSource, name: str, gunzip: Gunzip | None) -> cbor.CborDecoder | JsonlDecoder:
    head = src.peek(len(cbor.MAGIC))
    if not head:
        if gunzip is not None and gunzip.truncated:
            raise TraceError(f"{name}: truncated inside the header (gzip holds no data yet)")
        raise TraceError(f"{name}: empty file" + (" (empty gzip stream)" if gunzip else ""))
    if head == cbor.MAGIC:
        return cbor.CborDecoder(src)
    if head[:1] == b"{":
        from .jsonl import JsonlDecoder   # here: a CBOR trace's reader needs no json
        return JsonlDecoder(src)
    if len(head) < len(cbor.MAGIC) and (cbor.MAGIC.startswith(head) or GZIP_MAGIC.startswith(head)):
        raise TraceError(f"{name}: truncated inside the header ({len(head)} bytes)")
    shown = src.peek(8).hex(" ")
    raise TraceError(f"{name}: not an rr trace (starts with bytes {shown})")


class TraceReader:
    """A trace being read: `.header` at once, events by iterating, then the outcome.

    `source` is a path, or an open binary file (then `name` says what to call it in messages).
    Every failure, opening the file included, is a TraceError."""

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, name: str | None = None):
        if hasattr(source, "read"):
            self._f = source
            self.path = name or getattr(source, "name", "<stream>")
        else:
            self.path = os.fspath(source)  # type: ignore[arg-type]
            self._f = _open(self.path)
        if name is not None:
            self.path = name
        try:
            found: dict[str, Any] = {}
            self._records = iter_records(self._f, self.path, found)
            self.header: Header = next(self._records)  # type: ignore[assignment]
            # The format version the file was written in (`header.version` is the upgraded one).
            self.file_version: int = found["file_version"]
            # rr/_native.c's cursor the events are read from (None: read through Python alone)
            self.cursor = found.get("cursor")
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
        if self.cursor is not None:
            self.cursor.close()
        self._f.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise TraceNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, not a trace") from None
    except OSError as e:
        raise TraceError(f"{path}: cannot read: {e.strerror}") from None


def open_trace(source: str | os.PathLike[str] | BinaryIO, name: str | None = None) -> TraceReader:
    return TraceReader(source, name)


def read_trace(path: str | os.PathLike[str]) -> Trace:
    with open_trace(path) as reader:
        events = list(reader)
        return Trace(reader.header, events, reader.outcome, reader.complete, reader.problem)
