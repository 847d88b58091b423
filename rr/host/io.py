"""wasi:io/error and wasi:io/streams — the byte streams every other interface hands out.

Stream classes here are transport-agnostic: stdio, HTTP bodies and files subclass
`InputStream` / `OutputStream`.  Reads of a stream whose data is nondeterministic
(stdin, files, sockets) go through the tap under the stream's label; output is the
guest's own doing and is not recorded.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from ..abi import WasiError
from ..typecheck import BadValue, show
from .context import HostContext
from .poll import Pollable, always_ready
from .wit import Interface

error_if = Interface("wasi:io/error")
streams_if = Interface("wasi:io/streams")

# Bounded so that one guest->host list<u8> stays far below wasmtime's ~2.6 MiB hostcall
# fuel limit (FIELD-NOTES) and so that a read never returns more than this at once.
MAX_CHUNK = 1 << 20


class IoError:
    """wasi:io/error.error: an opaque error with a debug string."""

    def __init__(self, message: str):
        self.message = message


@error_if.method("error", "to-debug-string")
def error_to_debug_string(host: HostContext, err: IoError) -> str:
    return err.message


class StreamClosed(Exception):
    pass


class StreamFailed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _stream_error(exc: Exception) -> WasiError:
    if isinstance(exc, StreamFailed):
        return WasiError(("last-operation-failed", IoError(exc.message)))
    return WasiError("closed")


# ------------------------------------------------------------------ input streams


class InputStream:
    """Base input stream. Subclasses implement `available()` and `take(n)`.

    available() -> True when take() would return data or raise (EOF/error) at once.
    take(n)     -> up to n bytes now (b"" if none yet); raises StreamClosed/StreamFailed.
    """

    label = "input"
    recorded = False  # True: reads are nondeterministic input and go through the tap

    def available(self) -> bool:
        raise NotImplementedError

    def take(self, n: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BufferedInput(InputStream):
    """An input stream fed by a producer thread (stdin reader, HTTP transfer)."""

    def __init__(self, host: HostContext, label: str):
        self.host = host
        self.label = label
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False
        self._failure: str | None = None

    # producer side
    def feed(self, data: bytes) -> None:
        if data:
            with self._lock:
                self._chunks.append(data)
                self._size += len(data)
            self.host.notify()

    def finish(self, failure: str | None = None) -> None:
        with self._lock:
            self._eof = True
            self._failure = failure
        self.host.notify()

    # guest side
    def available(self) -> bool:
        return self._size > 0 or self._eof

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._size == 0:
                if self._failure is not None:
                    raise StreamFailed(self._failure)
                if self._eof:
                    raise StreamClosed()
                return b""
            out = bytearray()
            while self._chunks and len(out) < n:
                chunk = self._chunks[0]
                need = n - len(out)
                if len(chunk) <= need:
                    out += chunk
                    self._chunks.pop(0)
                else:
                    out += chunk[:need]
                    self._chunks[0] = chunk[need:]
            self._size -= len(out)
            return bytes(out)


class FileInput(BufferedInput):
    """Reads a host file object on a daemon thread, started at the guest's first use."""

    def __init__(self, host: HostContext, label: str, source: BinaryIO | None):
        super().__init__(host, label)
        self._source = source
        self._started = source is None
        if source is None:
            self.finish()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        threading.Thread(target=self._pump, name=f"rr-{self.label}", daemon=True).start()

    def _pump(self) -> None:
        assert self._source is not None
        try:
            read = getattr(self._source, "read1", self._source.read)
            while data := read(65536):
                self.feed(data)
            self.finish()
        except OSError as e:
            self.finish(f"{self.label}: {e.strerror or e}")

    def available(self) -> bool:
        self._start()
        return super().available()

    def take(self, n: int) -> bytes:
        self._start()
        return super().take(n)


def _at_most_n_bytes(args: list[Any], result: Any) -> None:
    """Replay: a read returns bytes, at most as many as the guest asked for."""
    if type(result) is not bytes:
        raise BadValue(f"{show(result)} is not bytes", "list<u8>")
    if len(result) > args[-1]:
        raise BadValue(f"{len(result)} bytes, the guest asked for at most {args[-1]}", "list<u8>")


def _read(host: HostContext, stream: InputStream, n: int, blocking: bool) -> bytes:
    n = min(n, MAX_CHUNK)

    def live() -> bytes:
        if blocking and n > 0:
            host.wait_for(stream.available)
        try:
            return stream.take(n)
        except (StreamClosed, StreamFailed) as e:
            raise _stream_error(e) from None

    if not stream.recorded:
        return live()
    call = "wasi:io/streams.blocking-read" if blocking else "wasi:io/streams.read"
    return host.tap(call, [stream.label, n], live, _at_most_n_bytes)


@streams_if.method("input-stream", "read")
def input_read(host: HostContext, s: InputStream, n: int) -> bytes:
    return _read(host, s, n, blocking=False)


@streams_if.method("input-stream", "blocking-read")
def input_blocking_read(host: HostContext, s: InputStream, n: int) -> bytes:
    return _read(host, s, n, blocking=True)


@streams_if.method("input-stream", "skip")
def input_skip(host: HostContext, s: InputStream, n: int) -> int:
    return len(_read(host, s, n, blocking=False))


@streams_if.method("input-stream", "blocking-skip")
def input_blocking_skip(host: HostContext, s: InputStream, n: int) -> int:
    return len(_read(host, s, n, blocking=True))


@streams_if.method("input-stream", "subscribe")
def input_subscribe(host: HostContext, s: InputStream) -> Pollable:
    return Pollable(s.available, label=s.label)


# ------------------------------------------------------------------ output streams


class OutputStream:
    """Base output stream: subclasses implement `write_bytes`."""

    label = "output"
    capacity = MAX_CHUNK

    def write_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    # A stream whose readiness is nondeterministic (a socket) overrides these three and
    # takes their answers through the tap.
    def check_write(self) -> int:
        return self.capacity

    def blocking_flush(self) -> None:
        self.flush()

    def pollable(self) -> Pollable:
        return always_ready()

    def close(self) -> None:
        pass


class FileOutput(OutputStream):
    """A stream into a host file object (the process's stdout/stderr), or nowhere."""

    def __init__(self, label: str, sink: BinaryIO | None):
        self.label = label
        self._sink = sink

    def write_bytes(self, data: bytes) -> None:
        if self._sink is None:
            return
        try:
            self._sink.write(data)
        except OSError as e:  # e.g. EPIPE when stdout is closed early
            raise StreamFailed(f"{self.label}: {e.strerror or e}") from None

    def flush(self) -> None:
        if self._sink is None:
            return
        try:
            self._sink.flush()
        except OSError as e:
            raise StreamFailed(f"{self.label}: {e.strerror or e}") from None


def _guard(action, *args):  # type: ignore[no-untyped-def]
    try:
        return action(*args)
    except (StreamClosed, StreamFailed) as e:
        raise _stream_error(e) from None


@streams_if.method("output-stream", "check-write")
def output_check_write(host: HostContext, s: OutputStream) -> int:
    return _guard(s.check_write)


@streams_if.method("output-stream", "write")
def output_write(host: HostContext, s: OutputStream, data: bytes) -> None:
    _guard(s.write_bytes, data)


@streams_if.method("output-stream", "blocking-write-and-flush")
def output_blocking_write_and_flush(host: HostContext, s: OutputStream, data: bytes) -> None:
    _guard(s.write_bytes, data)
    _guard(s.blocking_flush)


@streams_if.method("output-stream", "flush")
def output_flush(host: HostContext, s: OutputStream) -> None:
    _guard(s.flush)


@streams_if.method("output-stream", "blocking-flush")
def output_blocking_flush(host: HostContext, s: OutputStream) -> None:
    _guard(s.blocking_flush)


@streams_if.method("output-stream", "subscribe")
def output_subscribe(host: HostContext, s: OutputStream) -> Pollable:
    return s.pollable()


@streams_if.method("output-stream", "write-zeroes")
def output_write_zeroes(host: HostContext, s: OutputStream, n: int) -> None:
    _guard(s.write_bytes, bytes(n))


@streams_if.method("output-stream", "blocking-write-zeroes-and-flush")
def output_blocking_write_zeroes_and_flush(host: HostContext, s: OutputStream, n: int) -> None:
    _guard(s.write_bytes, bytes(n))
    _guard(s.blocking_flush)


def _splice(host: HostContext, dst: OutputStream, src: InputStream, n: int, blocking: bool) -> int:
    data = _read(host, src, min(n, dst.capacity), blocking)
    _guard(dst.write_bytes, data)
    return len(data)


@streams_if.method("output-stream", "splice")
def output_splice(host: HostContext, dst: OutputStream, src: InputStream, n: int) -> int:
    return _splice(host, dst, src, n, blocking=False)


@streams_if.method("output-stream", "blocking-splice")
def output_blocking_splice(host: HostContext, dst: OutputStream, src: InputStream, n: int) -> int:
    return _splice(host, dst, src, n, blocking=True)
