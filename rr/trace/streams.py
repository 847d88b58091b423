"""Byte plumbing under the codecs: a counting read buffer (plain or gunzipping) and write sinks.

Readers go through `ByteSource` so that every codec can report exact byte offsets and peek at
the first bytes for format detection, on regular files and pipes alike. Gzip is decoded with
a raw zlib decompressor rather than `gzip.GzipFile`, because a killed recording leaves a gzip
stream without its trailer and GzipFile raises on that instead of returning what is there.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import BinaryIO

from .errors import TraceError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
_MAX_INFLATE = 1 << 20   # bound the output of one decompress call (a gzip bomb stays streaming)


class ByteSource:
    """Reads from `fill` (returns b"" at the end) with exact read/peek/readline and a byte position."""

    def __init__(self, fill: Callable[[], bytes]):
        self._fill = fill
        self._buf = bytearray()
        self._start = 0
        self._eof = False
        self.pos = 0   # bytes consumed so far

    def _want(self, n: int) -> bool:
        """Make n bytes available if the stream has them; False if it ends first."""
        while len(self._buf) - self._start < n:
            if self._eof:
                return False
            if self._start:
                del self._buf[:self._start]
                self._start = 0
            chunk = self._fill()
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
        return True

    def read(self, n: int) -> bytes:
        self._want(n)
        out = bytes(self._buf[self._start:self._start + n])
        self._start += len(out)
        self.pos += len(out)
        return out

    def peek(self, n: int) -> bytes:
        self._want(n)
        return bytes(self._buf[self._start:self._start + n])

    def has(self, n: int) -> bool:
        """True if n more bytes are there (buffers them)."""
        return self._want(n)

    def readline(self, limit: int) -> bytes | None:
        """The next line with its newline (without one at the end); None when no newline comes
        within `limit` bytes."""
        scanned = 0   # relative to _start: _want may move the buffered bytes
        while True:
            i = self._buf.find(b"\n", self._start + scanned)
            if i >= 0:
                if i - self._start >= limit:
                    return None
                return self.read(i + 1 - self._start)
            scanned = len(self._buf) - self._start
            if scanned > limit:
                return None
            if not self._want(scanned + 1):
                return self.read(len(self._buf) - self._start)

    def read_some(self) -> bytes:
        """Whatever is buffered, else the next chunk: lets a gunzipping source stack on this one."""
        if not self._want(1):
            return b""
        return self.read(len(self._buf) - self._start)

    # cbor2's decoder reads exactly what it needs from non-seekable streams
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class Gunzip:
    """`fill` function for a ByteSource that inflates a gzip stream read from `raw`."""

    def __init__(self, raw: ByteSource, name: str):
        self._raw = raw
        self._name = name
        self._z = zlib.decompressobj(wbits=31)   # 31: gzip wrapper only
        self.truncated = False                   # the stream ended before the gzip trailer

    def __call__(self) -> bytes:
        z = self._z
        while True:
            if z.eof:
                if z.unused_data or self._raw.read_some():
                    raise TraceError(f"{self._name}: data after the end of the gzip stream "
                                     f"(compressed byte {self._raw.pos - len(z.unused_data)})")
                return b""
            data = z.unconsumed_tail or self._raw.read_some()
            if not data:
                self.truncated = True
                return z.flush()
            try:
                out = z.decompress(data, _MAX_INFLATE)
            except zlib.error as e:
                raise TraceError(f"{self._name}: corrupt gzip data before compressed byte "
                                 f"{self._raw.pos}: {e}") from None
            if out:
                return out


def file_source(f: BinaryIO) -> ByteSource:
    src = ByteSource(lambda: f.read(_CHUNK))
    # A regular file read from its start can be mapped instead (cbor.CborDecoder: the native cursor)
    src.file = f if _at_start(f) else None   # type: ignore[attr-defined]
    return src


def _at_start(f: BinaryIO) -> bool:
    try:
        return f.seekable() and f.tell() == 0
    except (OSError, ValueError, AttributeError):
        return False


class Sink:
    """Writes each record straight to the OS with one write, so a killed process loses at most
    the record being written; fsyncs once on close. `f` must be unbuffered (`buffering=0`):
    a Python-level buffer plus a flush per record costs ~0.6 us more per event."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.written = 0   # bytes handed to the file so far

    def write(self, data: bytes) -> None:
        written = self._f.write(data)
        while written < len(data):   # a raw write may be short (e.g. interrupted by a signal)
            written += self._f.write(memoryview(data)[written:])
        self.written += written

    def close(self, finish: bool = True) -> None:
        """fsync and close; `finish=False` after a failed write: close only."""
        try:
            if finish:
                os.fsync(self._f.fileno())
        finally:
            self._f.close()


class GzipSink(Sink):
    """Gzip with a Z_SYNC_FLUSH after every record: each record's bytes are inflatable on disk
    as soon as it is written, at a cost of ~5 bytes per record."""

    def __init__(self, f: BinaryIO):
        super().__init__(f)
        # wbits=31 writes a gzip header with mtime 0, so identical content gives identical files
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        super().write(self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH))

    def close(self, finish: bool = True) -> None:
        try:
            if finish:
                Sink.write(self, self._z.flush())
        except BaseException:
            super().close(False)
            raise
        super().close(finish)
