"""Body streams: the guest's request body on its way out, the response body on its way in.

Both are bounded: the response body holds at most HIGH_WATER bytes the guest has not
read yet (the transfer thread waits, so TCP flow control slows the server), and the
request body makes the guest's write wait while the transfer lags behind by as much.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ...abi import WasiError
from ...typecheck import BadValue, show
from ..context import HostContext
from ..io import BufferedInput, OutputStream, StreamClosed, StreamFailed
from . import errors
from .errors import ErrorCode, ErrorText

HIGH_WATER = 4 << 20
WAIT_SLICE_S = 1.0  # condition waits re-check their exit conditions at least this often

Trailers = list[tuple[str, bytes]]


class RequestBodyPipe:
    """Bytes the guest wrote, waiting for the transfer thread to send them."""

    def __init__(self, declared_length: int | None, on_progress: Callable[[], None]):
        self.declared_length = declared_length
        self._on_progress = on_progress            # wakes a guest waiting in a write
        self.written = 0
        self.trailers: Trailers | None = None
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._finished = False
        self._failure: ErrorCode | None = None   # set by either side; ends the body
        self._attached = False                    # a transfer is consuming (backpressure on)

    # guest side
    def put(self, data: bytes) -> None:
        with self._cond:
            if self._failure is not None:
                raise StreamFailed(ErrorText("request failed", self._failure))
            if self._finished:
                raise StreamClosed()
            if not data:
                return  # an empty chunk would end a chunked body
            if self.declared_length is not None and self.written + len(data) > self.declared_length:
                self._fail(errors.code("HTTP-request-body-size", self.written + len(data)))
                raise StreamFailed(ErrorText("body longer than content-length", self._failure))  # type: ignore[arg-type]
            self._chunks.append(data)
            self._size += len(data)
            self.written += len(data)
            self._cond.notify_all()

    def has_room(self) -> bool:
        """False while a transfer is HIGH_WATER bytes behind the guest's writes."""
        with self._cond:
            return not self._attached or self._size <= HIGH_WATER or self._failure is not None

    def finish(self, trailers: Trailers | None) -> ErrorCode | None:
        with self._cond:
            if self._failure is None and self.declared_length not in (None, self.written):
                self._fail(errors.code("HTTP-request-body-size", self.written))
            self.trailers = trailers
            self._finished = True
            self._cond.notify_all()
            return self._failure

    @property
    def finished(self) -> bool:
        """Whether the writer finished the body (outgoing-body.finish)."""
        return self._finished

    def fail(self, error: ErrorCode) -> None:
        with self._cond:
            self._fail(error)
        self._on_progress()  # outside the lock: the guest holds host.cond, then ours

    def _fail(self, error: ErrorCode) -> None:
        if self._failure is None:
            self._failure = error
        self._cond.notify_all()

    # transfer side
    def attach(self) -> None:
        with self._cond:
            self._attached = True

    def get(self) -> bytes | None:
        """The next chunk to send, None at the end; raises HttpFailure if the body failed."""
        with self._cond:
            while not self._chunks and not self._finished and self._failure is None:
                self._cond.wait(WAIT_SLICE_S)
            if self._failure is not None:
                raise errors.HttpFailure(self._failure, "request body failed")
            if not self._chunks:
                return None
            data = self._chunks.popleft()
            self._size -= len(data)
        self._on_progress()
        return data


class OutgoingBodyStream(OutputStream):
    """The output-stream of an outgoing-body."""

    def __init__(self, host: HostContext, pipe: RequestBodyPipe, label: str):
        self.host = host
        self.pipe = pipe
        self.label = label
        self.capacity = 65536

    def write_bytes(self, data: bytes) -> None:
        self.pipe.put(data)
        # Backpressure: the guest thread waits here (interruptibly) while the transfer lags.
        self.host.wait_for(self.pipe.has_room)


def _count_at_most_n(args: list[Any], result: Any) -> None:
    """Replay: a body read's recorded count is at most what the guest asked for."""
    if type(result) is not int or not 0 <= result <= args[1]:
        raise BadValue(f"{show(result)} is not a count of at most {args[1]} bytes", "byte count")


class ResponseBody(BufferedInput):
    """The input-stream of an incoming-body, fed by the transfer thread.

    How many bytes a read returns depends on timing, so each read's *count* goes through
    the tap (not the bytes: the proxy records those). A replay takes exactly the recorded
    count from the replayed flow's bytes.
    """

    def __init__(self, host: HostContext, label: str):
        super().__init__(host, label)
        self._space = threading.Condition()
        self._dropped = False
        self.on_drop: Callable[[], None] | None = None   # aborts the transfer

    # producer side
    def feed_bounded(self, data: bytes) -> bool:
        """Queue data, waiting while the guest is HIGH_WATER behind; False once dropped."""
        with self._space:
            while self._size >= HIGH_WATER and not self._dropped:
                self._space.wait(WAIT_SLICE_S)
        if self._dropped:
            return False
        self.feed(data)
        return True

    @property
    def done(self) -> bool:
        return self._eof

    def failure_code(self) -> ErrorCode | None:
        """How the body failed, once done (None: it ended normally)."""
        failure = self._failure
        return None if failure is None else getattr(failure, "code", errors.code("internal-error", failure))

    # guest side
    def take(self, n: int) -> bytes:
        taken: list[bytes] = []

        def live() -> int:
            try:
                data = BufferedInput.take(self, n)
            except StreamClosed:
                raise WasiError("closed") from None
            except StreamFailed as e:
                error = getattr(e.message, "code", errors.code("internal-error", e.message))
                raise WasiError(["failed", str(e.message), errors.to_trace(error)]) from None
            taken.append(data)
            return len(data)

        try:
            count = self.host.tap("wasi:http/types.incoming-body.read", [self.label, n], live, _count_at_most_n)
        except WasiError as e:
            if e.payload == "closed":
                raise StreamClosed() from None
            _, message, error = e.payload
            raise StreamFailed(ErrorText(message, errors.from_trace(error))) from None
        if taken:
            data = taken[0]
        else:  # replay: the recorded count, out of the replayed flow's body
            self.host.wait_for(lambda: self._size >= count or self._eof)
            data = BufferedInput.take(self, count)
        with self._space:
            self._space.notify_all()
        return data

    def close(self) -> None:
        with self._space:
            self._dropped = True
            self._space.notify_all()
        if self.on_drop is not None and not self._eof:
            self.on_drop()
