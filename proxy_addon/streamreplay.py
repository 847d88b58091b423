"""Replay of a streamed response: a recorded upstream that exists only inside the proxy.

mitmproxy sends a response an addon sets in the `request` hook whole, at once. A streamed
response is instead answered by an upstream made of the recording: the replay addon points the
flow at a reserved address (`HOST`, a port of its own), and the connection mitmproxy opens there
is not a socket but `_Upstream`, which serves the recorded status line, headers and body, pulled
piece by piece from the trace as mitmproxy reads it. mitmproxy reads an upstream only after the
guest's connection has drained (proxy/server.py, `drain_writers`), so the trace is read as far
as the guest has consumed and no more. mitmproxy parses those bytes and passes them on as it did
while recording: the guest gets the same head, body and trailers. No socket is opened, and the
`server_connect` hook (which refuses every connection on replay) is not asked.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

HOST = "rr-replay.invalid"   # never resolved: the name of the recorded upstream
PIECE = 1 << 17              # read whole up to this long (a larger one: the held start of a body)
_ports = itertools.count(1)
_lock = threading.Lock()
_waiting: dict[int, "RecordedBody"] = {}   # port -> the body the next connection there serves


class RecordedBody:
    """The wire bytes of one recorded response: head, then the body framed as its headers say,
    from `next_piece()` (None: no more) and `end()` (how it ended; None: the trace does not say,
    and the upstream closes where the recording stopped)."""

    def __init__(self, response: dict[str, Any], next_piece: Callable[[], bytes | None],
                 end: Callable[[], dict[str, Any] | None], drop: Callable[[], None]) -> None:
        self._response = response
        self._next = next_piece
        self._end = end
        self.drop = drop
        codings = [v for k, v in response["headers"] if bytes(k).lower() == b"transfer-encoding"]
        self._chunked = bool(codings) and codings[-1].split(b",")[-1].strip().lower() == b"chunked"
        self._state = "head"

    def head(self) -> bytes:
        r = self._response
        lines = [b"%s %d %s" % (r["http_version"].encode(), r["status"], r["reason"].encode())]
        lines += [bytes(k) + b": " + bytes(v) for k, v in r["headers"]]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def read(self) -> bytes:
        """The next bytes of the response on the wire, b"" at its end."""
        if self._state == "head":
            self._state = "body"
            return self.head()
        if self._state == "done":
            return b""
        piece = self._next()
        if piece is not None:
            return b"%x\r\n%s\r\n" % (len(piece), piece) if self._chunked else piece
        self._state = "done"
        end = self._end()
        if end is None or end["error"] is not None or not self._chunked:
            return b""   # cut short, failed part-way, or framed by its length / the close
        trailers = b"".join(bytes(k) + b": " + bytes(v) + b"\r\n" for k, v in end["trailers"] or ())
        return b"0\r\n" + trailers + b"\r\n"


def serve_at(body: RecordedBody) -> tuple[str, int]:
    """The address whose next connection serves `body`."""
    with _lock:
        port = next(_ports)
        _waiting[port] = body
    return HOST, port


def install() -> None:
    """Route connections to `HOST` to their recorded bodies (once per process)."""
    from mitmproxy.proxy import server

    opened = server.ConnectionHandler.open_connection
    if getattr(opened, "rr_recorded_upstream", False):
        return

    async def open_connection(self: Any, command: Any) -> None:
        address = command.connection.address
        if address and address[0] == HOST:
            with _lock:
                body = _waiting.pop(address[1], None)
            if body is not None:
                return await _serve(self, command, body)
        return await opened(self, command)

    open_connection.rr_recorded_upstream = True  # type: ignore[attr-defined]
    server.ConnectionHandler.open_connection = open_connection  # type: ignore[method-assign]


async def _serve(handler: Any, command: Any, body: RecordedBody) -> None:
    """As ConnectionHandler.open_connection after a connect, with `_Upstream` as the socket."""
    from mitmproxy.connection import ConnectionState
    from mitmproxy.proxy import events
    from mitmproxy.proxy.server import ConnectionIO

    # The caller registers the task's transport after starting it, and a task may start eagerly:
    # step aside first, as the real connect does, or that registration replaces this one.
    await asyncio.sleep(0)
    conn = command.connection
    conn.timestamp_start = conn.timestamp_tcp_setup = time.time()
    conn.state = ConnectionState.OPEN
    conn.peername = conn.sockname = ("127.0.0.1", 0)
    upstream = _Upstream(body)
    handler.transports[conn] = ConnectionIO(handler=asyncio.current_task(), reader=upstream, writer=upstream)
    await handler.server_event(events.OpenConnectionCompleted(command, None))
    try:
        await handler.handle_connection(conn)
    finally:
        conn.timestamp_end = time.time()
        body.drop()


class _Upstream:
    """The reader and writer mitmproxy uses for a connection: reads are the recorded response,
    writes (the request) go nowhere."""

    def __init__(self, body: RecordedBody) -> None:
        self._body = body
        self._buffer = memoryview(b"")
        self._closing = False

    async def read(self, n: int) -> bytes:
        if not self._buffer:
            data = self._body.read()   # a trace read on the proxy's loop, as the request hook's
            if len(data) <= max(n, PIECE):
                # As it was recorded, uncopied: a piece is one read of mitmproxy's while
                # recording (at most the 65535 bytes it asks for here), or that in its chunk.
                return data
            self._buffer = memoryview(data)
        piece, self._buffer = self._buffer[:n], self._buffer[n:]
        return bytes(piece)

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 0), "sockname": ("127.0.0.1", 0)}.get(name, default)
