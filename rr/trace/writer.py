"""Writing traces: records reach the file as they are written, never at the cost of an existing file.

A new trace is started beside its path, `<path>.<pid>.partial`, and hard-linked into place as
soon as its header is whole; from then on it is written straight to its path, so a recording
killed at any point (kill -9) leaves either no trace at all or one that reads back up to its last
whole event, never a torn header that blocks the next recording. Replacing a trace (`overwrite=True`
and the file exists) writes beside it, `<path>.<pid>.partial`, and renames that over the old
file only when the writer is closed normally: until then the old trace stays intact, whatever
happens (a crash, a kill, a full disk). Without `overwrite` the writer refuses to touch an
existing file.

A failed write (disk full, I/O error) makes the writer fail every later write with
TraceOutputError; what was written before stays readable (an incomplete trace). A trace that
ends up holding no event (failed before the first one) is removed, so it never blocks the next
recording. Not thread-safe: one writer per thread (merge.SharedWriter serialises).

A plain CBOR trace is written through a shared mapping of the file when rr's C extension is there
(`_MappedSink`: a record is a memcpy, no system call, and still on the file when the process is
killed); otherwise, and with RR_NATIVE=0, with one write(2) per record. The bytes are the same.
"""

from __future__ import annotations

import errno
import os
from types import TracebackType
from typing import TYPE_CHECKING

from .cbor import CborEncoder, new_state
from .errors import TraceExistsError, TraceNameError, TraceOutputError
from .model import Event, Header, Outcome
from .records import header_to_raw, outcome_to_raw
from .streams import GzipSink, Sink

if TYPE_CHECKING:
    from .jsonl import JsonlEncoder

from ..nativelib import lib as _native_lib   # the C extension: no wasmtime in it or in that module

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
            raise TraceNameError(f"unknown trace format {fmt!r}: use cbor or json")
        return fmt, gz
    for ext, found in _EXTENSIONS.items():
        if name.endswith(ext):
            return found, gz
    raise TraceNameError(f"{os.fspath(path)}: cannot tell the trace format from the name: "
                         f"name it .cbor, .json or .jsonl (optionally + .gz)")


class TraceWriter:
    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None, *, overwrite: bool = False):
        self.path = os.fspath(path)
        self.fmt, gz = format_for(path, fmt)
        if os.path.isdir(self.path):
            raise TraceNameError(f"{self.path}: is a directory, not a trace file name")
        self._target = self.path   # where the records go until close()
        self._replaces: str | None = None   # the file the trace takes the place of at close()
        try:
            if overwrite and os.path.lexists(self.path):
                self._replaces = os.path.realpath(self.path)   # a symlink stays one
                self._target, f = _create_beside(self._replaces)
            elif os.path.lexists(self.path):
                raise FileExistsError(self.path)
            else:
                # Linked to its name once the header is whole (write_header); unbuffered: Sink
                # writes each record to the OS
                self._target, f = _create_beside(self.path)
        except FileExistsError:
            raise TraceExistsError(f"{self.path}: refusing to overwrite an existing file") from None
        except (FileNotFoundError, NotADirectoryError):
            raise TraceNameError(f"{self.path}: cannot create the trace: no such directory") from None
        except OSError as e:
            raise TraceOutputError(f"{self.path}: cannot create the trace: {e.strerror}") from None
        self._sink: Sink = GzipSink(f) if gz else _MappedSink.or_plain(f) if self.fmt == "cbor" and _mapped() else Sink(f)
        # The CRC chain, counts and flags, shared with the native recorder (rr/_native.c)
        self.state = new_state()
        if self.fmt == "cbor":
            self._encoder: CborEncoder | JsonlEncoder = CborEncoder(self.state)
        else:
            from .jsonl import JsonlEncoder   # here: a CBOR trace's writer needs no json
            self._encoder = JsonlEncoder()
        self._state = "header"   # -> "events" -> "ended" -> "closed"
        self.error: OSError | None = None   # the write that failed, if one did
        self.kept: str | None = None        # after closing: the file that holds the records

    @property
    def events_written(self) -> int:
        return self.state.written  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        """Bytes of the trace file written so far (a mapped file is longer until it is closed)."""
        return self._sink.written

    def _expect(self, state: str, what: str) -> None:
        if self.error is not None:
            raise self._failure()
        if self._state != state:
            raise RuntimeError(f"cannot write {what}: the writer is at {self._state!r}")

    def _write(self, data: bytes) -> None:
        try:
            self._sink.write(data)
        except OSError as e:
            self.error = e
            self.state.open = 0
            raise self._failure() from None

    def _failure(self) -> TraceOutputError:
        assert self.error is not None
        return TraceOutputError(f"{self.path}: cannot write the trace: {self.error.strerror or self.error}",
                                self.events_written)

    def write_header(self, header: Header) -> None:
        self._expect("header", "the header")
        self._write(self._encoder.header(header_to_raw(header)))
        self._state = "events"
        self.state.open = 1
        if self._replaces is None:
            self._publish()

    def _publish(self) -> None:
        """Give the new trace its name, atomically and without replacing anything: os.link fails
        if the name was taken meanwhile (a rename would silently replace it)."""
        try:
            os.link(self._target, self.path)
        except FileExistsError:
            self.abort()
            raise TraceExistsError(f"{self.path}: refusing to overwrite an existing file") from None
        except OSError:   # a filesystem without hard links: rename, after checking the name again
            if os.path.lexists(self.path):
                self.abort()
                raise TraceExistsError(f"{self.path}: refusing to overwrite an existing file") from None
            os.rename(self._target, self.path)
        else:
            os.unlink(self._target)
        self._target = self.path

    def write_event(self, event: Event) -> None:
        self._expect("events", "an event")
        self._write(self._encoder.event(event))
        self.state.written += 1

    def write_block(self, events: list[Event]) -> None:
        """Several events with one write: a server trace's request block (trace/served.py),
        so that a kill leaves either the whole block or a torn last record."""
        self._expect("events", "an event")
        self._write(b"".join(self._encoder.event(event) for event in events))
        self.state.written += len(events)

    def write_outcome(self, outcome: Outcome) -> None:
        self._expect("events", "the outcome")
        self.state.open = 0
        self._write(self._encoder.outcome(outcome_to_raw(outcome)))
        self._state = "ended"

    def close(self) -> None:
        """Finish the trace: fsync, and put it in place of the file it replaces. A trace closed
        without an outcome reads back as incomplete. After a failed write this is abort()."""
        if self._state == "closed":
            return
        self.state.open = 0
        if self.error is None:
            try:
                self._sink.close()
            except OSError as e:
                self.error = e
            else:
                if self._target != self.path and self._replaces is None:   # never got a header
                    self._state = "closed"
                    self.discard()
                    return
                self._state = "closed"
                if self._replaces is not None:
                    os.replace(self._target, self._replaces)
                    _sync_dir(self._replaces)
                self.kept = self.path
                return
        self.abort()
        raise self._failure()

    def abort(self) -> None:
        """Stop without putting the trace in place: a file it replaces is left as it was. The
        records written so far are kept (at `.kept`) unless there is no event among them."""
        if self._state == "closed":
            return
        self._state = "closed"
        self.state.open = 0
        try:
            self._sink.close(finish=self.error is None)
        except OSError as e:
            self.error = self.error or e
        if self.events_written:
            self.kept = self._target
        else:
            self.discard()

    def discard(self) -> None:
        """Remove whatever this writer wrote (a replaced file is left as it was)."""
        if self._state != "closed":
            self.abort()
        try:
            os.unlink(self._target)
        except FileNotFoundError:
            pass
        self.kept = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()


def _mapped() -> bool:
    return _native_lib() is not None


class _MappedSink(Sink):
    """Records appended through a shared mapping of the file (rr/_native.c, MapSink): no system
    call per record, and every record written before a kill -9 is in the file. The file is
    extended ahead in 1 MiB chunks; a killed recording leaves zeros after its last record, read
    as its unwritten end (rr/trace/cbor.py); closing truncates it to the records."""

    def __init__(self, f: object):
        self._f = f  # type: ignore[assignment]
        self.map = _native_lib().MapSink(f.fileno())  # type: ignore[union-attr]

    @property
    def written(self) -> int:  # type: ignore[override]
        """Bytes of records written, by this sink and by native recording (rr/_native.c)."""
        return self.map.used  # type: ignore[no-any-return]

    @classmethod
    def or_plain(cls, f: object) -> Sink:
        """A mapped sink, or a plain one where the file cannot be mapped (a filesystem without
        shared writable mappings); a full disk is not that: it fails the first write."""
        sink = cls(f)
        try:
            sink.map.reserve(1)
        except OSError as e:
            if e.errno not in (errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
                return sink
            sink.map.close()
            return Sink(f)  # type: ignore[arg-type]
        return sink

    def write(self, data: bytes) -> None:
        self.map.write(data)

    def close(self, finish: bool = True) -> None:
        try:
            self.map.close()
        except OSError:
            super().close(False)
            raise
        super().close(finish)


def _create_beside(path: str) -> tuple[str, object]:
    """A new file next to `path` (same directory, so the final rename is atomic): `PATH.<pid>.partial`,
    or, when that is taken (a kept partial of an earlier aborted write in this process), a unique
    `PATH.<random>.partial`."""
    temp = f"{path}.{os.getpid()}.partial"
    try:
        return temp, open(temp, "xb+", buffering=0)   # read too: the mapping needs it
    except FileExistsError:
        import tempfile   # rarely: not at start-up
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                    prefix=os.path.basename(path) + ".", suffix=".partial")
        return temp, os.fdopen(fd, "wb", buffering=0)


def _sync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
