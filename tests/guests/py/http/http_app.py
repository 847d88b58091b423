"""A wasi:http/proxy handler with one route per behaviour tests/test_serve.py checks.

Built with componentize-py (see tests/guests/README_SERVE.md); the same routes as
tests/guests/c/serve_c.c where both have them.

  GET  /            200 "hello from py\n"
  POST /echo        200 "method M\npath P\nbytes N\n" then the request body
  GET  /big?mib=N   200 N MiB (default 4) of byte i = i % 251, streamed in 4 KiB writes, no content-length
  GET  /random      200 "time <wall seconds>\nrandom <16 hex>\n" (wall clock + 8 random bytes)
  GET  /fetch?url=http://HOST:PORT/PATH
                    200 "upstream <status> bytes <n>\n" then the upstream body, or
                    502 "upstream error <error-code case>\n"
  GET  /trap        raises: componentize-py traps the instance before any response is set
  anything else     404 "no route P\n"
"""

import os
import time
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, streams, types

CHUNK = 4096  # blocking-write-and-flush takes at most 4096 bytes


def _method(m) -> str:
    if isinstance(m, types.Method_Other):
        return m.value
    return type(m).__name__.removeprefix("Method_").upper()


def _read_all(stream) -> bytes:
    data = bytearray()
    while True:
        try:
            data += stream.blocking_read(65536)
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                return bytes(data)
            raise


def _respond(response_out, status: int, chunks, content_type: str = "text/plain") -> None:
    headers = types.Fields.from_list([("content-type", content_type.encode())])
    response = types.OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    types.ResponseOutparam.set(response_out, Ok(response))
    with body.write() as out:
        for chunk in chunks:
            for i in range(0, len(chunk), CHUNK):
                out.blocking_write_and_flush(chunk[i:i + CHUNK])
    types.OutgoingBody.finish(body, None)


def _big(mib: int):
    block = bytes(i % 251 for i in range(65536 + 251))
    total = mib << 20
    sent = 0
    while sent < total:
        n = min(65536, total - sent)
        offset = sent % 251
        yield block[offset:offset + n]
        sent += n


def _fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    request = types.OutgoingRequest(types.Fields.from_list([("user-agent", b"rr-test-guest")]))
    request.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return 502, f"upstream error {type(e.value).__name__}\n".encode()
    with future:
        while (got := future.get()) is None:
            with future.subscribe() as ready:
                ready.block()
    inner = got.value
    if isinstance(inner, Err):
        return 502, f"upstream error {type(inner.value).__name__}\n".encode()
    with inner.value as response:
        status = response.status()
        with response.consume() as body:
            with body.stream() as stream:
                data = _read_all(stream)
    return 200, f"upstream {status} bytes {len(data)}\n".encode() + data


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out) -> None:
        method = _method(request.method())
        target = request.path_with_query() or "/"
        path, _, query = target.partition("?")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        if path == "/":
            _respond(response_out, 200, [b"hello from py\n"])
        elif path == "/echo":
            with request.consume() as body:
                with body.stream() as stream:
                    data = _read_all(stream)
            head = f"method {method}\npath {target}\nbytes {len(data)}\n".encode()
            _respond(response_out, 200, [head, data], "application/octet-stream")
        elif path == "/big":
            _respond(response_out, 200, _big(int(args.get("mib", "4"))), "application/octet-stream")
        elif path == "/random":
            text = f"time {time.time():.6f}\nrandom {os.urandom(8).hex()}\n"
            _respond(response_out, 200, [text.encode()])
        elif path == "/fetch":
            status, data = _fetch(args.get("url", ""))
            _respond(response_out, status, [data])
        elif path == "/trap":
            raise RuntimeError("the /trap route traps")
        else:
            _respond(response_out, 404, [f"no route {path}\n".encode()])
