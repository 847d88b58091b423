"""A connected TCP socket's wasi:io streams: io.py's stream classes over a real socket.

Reads go through io.py's tapped read path (the bytes of each read, end-of-stream, errors),
so they take the fast byte path like every other stream. What wasmtime decides from the
socket's state is taken through the tap here: how much check-write allows (0 while a write
is still going out), each write's outcome, and what flush / blocking-flush report. The
bytes the guest writes are part of each write event's arguments: a replay checks them
against the recording and stops with both sides shown when they differ.

While live, a pump thread reads the socket ahead of the guest (at most READ_AHEAD bytes),
and a write the socket cannot take at once finishes on a writer thread (as wasmtime's
background write), both notifying the guest's waits. On replay neither exists.
"""

from __future__ import annotations

import socket
import threading

from ...abi import WasiError
from ..context import HostContext
from ..io import BufferedInput, IoError, OutputStream, StreamClosed, StreamFailed
from ..poll import Pollable

READ_AHEAD = 4 << 20
RECV_SIZE = 1 << 20
WRITE_CAPACITY = 1 << 20   # what check-write offers (io.MAX_CHUNK: one call's list stays small)


def _failure(e: OSError) -> str:
    return e.strerror or str(e)


class TcpInput(BufferedInput):
    recorded = True

    def __init__(self, host: HostContext, label: str, sock: socket.socket | None):
        super().__init__(host, label)
        self._sock = sock
        self._room = threading.Condition(self._lock)
        self._offset = 0   # bytes of _chunks[0] already taken
        self._shut = False
        if sock is not None:
            threading.Thread(target=self._pump, name=f"rr-{label}", daemon=True).start()

    def _pump(self) -> None:
        assert self._sock is not None
        try:
            while True:
                with self._room:
                    while self._size >= READ_AHEAD and not self._shut:
                        self._room.wait(1.0)
                    if self._shut:
                        return
                data = self._sock.recv(RECV_SIZE)
                if not data:
                    self.finish()
                    return
                self.feed(data)
        except OSError as e:
            if not self._shut:
                self.finish(_failure(e))

    def take(self, n: int) -> bytes:
        """Up to n bytes: a whole received chunk is handed over as it is; a chunk bigger than the
        guest's reads is taken from an offset (slicing off its rest on every read copied a 1 MiB
        chunk 16 times over for 64 KiB reads)."""
        with self._room:
            if self._size == 0:
                if self._failure is not None:
                    raise StreamFailed(self._failure)
                if self._eof:
                    raise StreamClosed()
                return b""
            parts: list[bytes | memoryview] = []
            want = n
            while self._chunks and want > 0:
                chunk, start = self._chunks[0], self._offset
                left = len(chunk) - start
                if left <= want:
                    parts.append(memoryview(chunk)[start:] if start else chunk)
                    self._chunks.pop(0)
                    self._offset = 0
                    want -= left
                else:
                    parts.append(memoryview(chunk)[start:start + want])
                    self._offset += want
                    want = 0
            data = b"".join(parts)   # one chunk: that very bytes object
            self._size -= len(data)
            self._room.notify_all()
            return data

    def shut(self) -> None:
        """shutdown(receive): every later read is end-of-stream, as wasmtime's."""
        with self._room:
            self._shut = True
            self._chunks.clear()
            self._offset = 0
            self._size = 0
            self._eof = True
            self._failure = None
            self._room.notify_all()
        self.host.notify()

    def close(self) -> None:
        with self._room:
            self._shut = True
            self._room.notify_all()


class TcpOutput(OutputStream):
    """Writes are the guest's own bytes (recorded as arguments); what they return is recorded."""

    capacity = WRITE_CAPACITY

    def __init__(self, host: HostContext, label: str, sock: socket.socket | None):
        self.host = host
        self.label = label
        self._sock = sock
        self._lock = threading.Lock()
        self._pending = b""          # bytes a writer thread is still sending
        self._error: str | None = None
        self._closed = False
        self._shut_after = False     # shutdown(send) once the pending bytes are out

    # ------------------------------------------------------------ live state
    def _busy(self) -> bool:
        return bool(self._pending)

    def _idle(self) -> bool:
        return not self._pending

    def _state_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._closed = True
            raise StreamFailed(error)
        if self._closed:
            raise StreamClosed()

    def _send_now(self, data: bytes) -> None:
        assert self._sock is not None
        self._state_error()
        if self._busy():
            raise WasiError(("last-operation-failed", IoError("write without check-write permission")))
        view = memoryview(data)
        try:
            while view:
                try:
                    n = self._sock.send(view, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    with self._lock:
                        self._pending = bytes(view)
                    threading.Thread(target=self._drain, name=f"rr-{self.label}", daemon=True).start()
                    return
                view = view[n:]
        except BrokenPipeError:
            self._closed = True
            raise StreamClosed() from None
        except OSError as e:
            raise StreamFailed(_failure(e)) from None

    def _drain(self) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(self._pending)
            error = None
        except OSError as e:
            error = _failure(e)
        with self._lock:
            self._pending = b""
            self._error = error
            if self._shut_after:
                self._shutdown_now()
        self.host.notify()

    def _shutdown_now(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]
        except OSError:
            pass

    # ------------------------------------------------------------ through the tap
    def _tap(self, what: str, args: list, live):  # type: ignore[no-untyped-def,type-arg]
        def guarded():  # type: ignore[no-untyped-def]
            try:
                return live()
            except StreamClosed:
                raise WasiError("closed") from None
            except StreamFailed as e:
                raise WasiError(("last-operation-failed", IoError(e.message))) from None
        return self.host.tap(f"wasi:io/streams.{what}", [self.label, *args], guarded, _count)

    def check_write(self) -> int:
        def live() -> int:
            self._state_error()
            return 0 if self._busy() else self.capacity
        return self._tap("check-write", [], live)  # type: ignore[no-any-return]

    def write_bytes(self, data: bytes) -> None:
        self._tap("write", [data], lambda: self._send_now(data))

    def flush(self) -> None:
        def live() -> None:
            if self._closed and self._error is None:
                raise StreamClosed()
        self._tap("flush", [], live)

    def blocking_flush(self) -> None:
        def live() -> None:
            self.host.wait_for(self._idle)
            self._state_error()
        self._tap("blocking-flush", [], live)

    def pollable(self) -> Pollable:
        return Pollable(self._idle, label=self.label)

    def shut(self) -> None:
        """shutdown(send): after what is still being written, as wasmtime's."""
        if self._sock is None:
            return
        with self._lock:
            if self._pending:
                self._shut_after = True
            else:
                self._shutdown_now()

    def close(self) -> None:
        pass  # the socket's own drop closes it


def _count(args: list, result) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Replay: check-write's count fits the u64 the guest gets (flush and write return nothing)."""
    from ...typecheck import BadValue, show
    if result is not None and (type(result) is not int or not 0 <= result < 1 << 64):
        raise BadValue(f"{show(result)} is not a count of bytes", "u64")
