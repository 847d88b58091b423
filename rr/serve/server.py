"""`rr serve`: the listener, one instance per request, and the recording of each request.

    client -> mitmproxy (reverse mode, --addr) -> backend (127.0.0.1:<ephemeral>, here)
           -> one connection thread per connection -> a guest thread per request

The embedded proxy carries both directions in one process: its reverse-mode listener is
what clients connect to (so incoming requests show in --inspect and --dump, with Host
kept as the client sent it), and its regular-mode listener is where the handler's own
outgoing HTTP goes (recorded as flow records, as for `rr record`). The backend is a small
HTTP/1.1 server: for each request it makes an instance (runner.link, a store of its own),
feeds the request body, waits for the head the guest sets, and streams the body back.

Recording: every request has its own Recorder writing into a `Block` in memory; the
proxy's flow records (ids "<n>.<k>") are routed to their request's block; a finished
request's whole block goes into the trace with one write (trace/served.py).
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .. import runner, signals
from ..errors import RRError, UsageError
from ..host.context import Sandbox
from ..host.http.errors import HttpFailure
from ..host.http.fields import FORBIDDEN, grouped
from ..host.http.incoming import IncomingRequest
from ..tap import Recorder, Tap
from ..trace import Event, Outcome, TraceWriter
from ..trace.served import HEADER_SERVE, request_event, response_event
from .handler import Exchange, Head, Instance, body_chunks, handler_export, shared_linker

STOP_WAIT_S = 60.0   # how long a stop waits for in-flight requests
READ_SIZE = 65536
TRAP_BODY = b"500 Internal Server Error: the handler failed\n"
NO_RESPONSE_BODY = b"500 Internal Server Error: the handler set no response\n"


class PortInUse(RRError):
    pass


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_instance_reuse: int = 1       # requests one instance serves in sequence (as wasmtime's flag)
    dump: bool = False
    inspect: bool = False
    inspect_host: str = "127.0.0.1"
    inspect_port: int | None = None
    verbose: bool = False
    on_listening: Callable[[str], None] | None = None   # the URL, once clients can connect
    on_web_url: Callable[[str], None] | None = None
    redaction: dict[str, Any] | None = None   # rr/redact.py rules of a recording (None: not recording)


def guest_view(headers: list[list[bytes]]) -> list[tuple[str, bytes]]:
    """The request headers a handler sees: lower-case names, without hop-by-hop ones (as
    wasmtime strips them), same names grouped. One place for serve and replay."""
    pairs = [(bytes(n).decode("latin-1").lower(), bytes(v)) for n, v in headers]
    return grouped([(n, v) for n, v in pairs if n not in FORBIDDEN])


def instance_sandbox(sandbox: Sandbox, instance_id: int) -> Sandbox:
    """What wasmtime serve gives each instance: no argv, the --env values plus INSTANCE_ID."""
    env = [(k, v) for k, v in sandbox.env if k != "INSTANCE_ID"] + [("INSTANCE_ID", str(instance_id))]
    return Sandbox(argv=[], env=env, preopens=list(sandbox.preopens), cwd=sandbox.cwd, stdin=None,
                   stdout=sandbox.stdout, stderr=sandbox.stderr, http_allow=list(sandbox.http_allow))


def flow_ids(n: int) -> Iterator[str]:
    """The flow ids of request n's outgoing requests: unique in the whole trace."""
    return (f"{n}.{k}" for k in itertools.count(1))


class Block:
    """One request's events while it is handled (guest thread and proxy thread write)."""

    def __init__(self, n: int, request: dict[str, Any]):
        self.n = n
        self.request = request
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def write_event(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def write_flow(self, record: dict[str, Any]) -> None:
        from ..merge import flow_event
        self.write_event(flow_event(record))

    def close(self, response: dict[str, Any]) -> list[Event]:
        with self._lock:
            events, self.events = self.events, []
        return [request_event(self.n, self.request), *events, response_event(self.n, response)]


class TraceSink:
    """The one trace of a serving run: blocks in the order their requests finished."""

    def __init__(self, writer: TraceWriter, redaction: dict[str, Any] | None = None):
        self.writer = writer
        self._rules = redaction
        self._redactor = None
        if redaction is not None:
            from proxy_addon.redaction import Redactor
            self._redactor = Redactor(redaction)
        self._lock = threading.Lock()
        self._open: dict[int, Block] = {}
        self.requests = 0
        self.failed: BaseException | None = None
        self.ended = False

    def open(self, n: int, request: dict[str, Any]) -> Block:
        block = Block(n, request)
        with self._lock:
            self._open[n] = block
        return block

    def events_to(self, block: Block) -> Any:
        """Where a request's Recorder writes: its block, through the environment's redaction."""
        if self._rules is not None and self._rules.get("env"):
            from ..redact import EnvRedactingWriter
            return EnvRedactingWriter(block, self._rules)
        return block

    def redacted(self, request: dict[str, Any], response: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the trace keeps of an incoming exchange (the handler saw and sent the real one)."""
        if self._redactor is None:
            return request, response
        request = self._redactor.request(request)
        parts = urlsplit(request["url"])
        request["path"] = parts.path + (f"?{parts.query}" if parts.query else "")
        body, fields = self._redactor.body(bytes(response["body"]), self._redactor.headers(response["headers"]))
        return request, {**response, "headers": fields, "body": body}

    def on_flow(self, record: dict[str, Any]) -> None:
        n = str(record.get("id", "")).partition(".")[0]
        with self._lock:
            block = self._open.get(int(n)) if n.isdigit() else None
        if block is not None:
            block.write_flow(record)

    def close(self, block: Block, response: dict[str, Any]) -> bool:
        """Put a finished request's block in the trace. False once the trace has its end (a
        second signal stopped the server without waiting for this request): its client must
        not then get the whole response, which would tell it the request was recorded."""
        block.request, response = self.redacted(block.request, response)
        events = block.close(response)
        with self._lock:
            self._open.pop(block.n, None)
            if self.ended:
                return False
            if self.failed is not None:
                return True
            try:
                self.writer.write_block(events)
                self.requests += 1
            except Exception as e:  # noqa: BLE001 - the disk: reported when serving ends
                self.failed = e
        return True

    def end(self, outcome: Outcome) -> int:
        """Write the trace's end and close it (fsync; in place of the file it replaces). From
        now on no block is taken. Returns how many requests were still in flight."""
        with self._lock:
            self.ended = True
            in_flight = len(self._open)
            if self.failed is None:
                try:
                    self.writer.write_outcome(outcome)
                    self.writer.close()
                except Exception as e:  # noqa: BLE001 - reported below, as a block's failure
                    self.failed = e
        if self.failed is not None:
            from ..errors import OutputError
            raise OutputError(f"{self.writer.path}: cannot write the trace: {self.failed}; kept the "
                              f"{self.requests} requests recorded before")
        return in_flight


class Server:
    """`recording` (rr serve -t) opens the trace on the stack it is given and returns its sink;
    it is called once the server is about to start, so that from the trace's first byte a
    signal ends in the trace's end record."""

    def __init__(self, program: runner.Program, sandbox: Sandbox, limits: runner.Limits,
                 options: ServeOptions, recording: Callable[[contextlib.ExitStack], TraceSink] | None = None):
        self.program = program
        self.export = handler_export(program)
        self.sandbox = sandbox
        self.limits = limits
        self.options = options
        self._recording = recording
        self.sink: TraceSink | None = None
        self._numbers = itertools.count(1)
        self._instances = itertools.count(0)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.stopping = False
        self.served = 0
        self.abandoned = 0   # requests in flight when a second signal cut the stop short
        self.transport: Any = None
        self._reuse: list[tuple[Instance, int]] = []   # idle instances and the requests each served
        self._linker: Any = None

    # ------------------------------------------------------------------ lifecycle
    def serve(self) -> int:
        """Serve until SIGINT/SIGTERM; in-flight requests finish first (a second signal stops
        waiting for them), then the trace gets its end, then the listeners close. Returns
        requests served."""
        watched = self.options.dump or self.options.inspect
        with contextlib.ExitStack() as stack:
            try:
                # Start-up is not cut short by a signal (mitmproxy's start would hang): one that
                # arrives meanwhile stops the server as soon as it is up, as any other stop does.
                with signals.held():
                    if self._recording is not None:
                        self.sink = self._recording(stack)
                    check_port(self.options.host, self.options.port)
                    url = self._start(stack, watched)
                if self.options.on_listening:
                    self.options.on_listening(url)
                while True:
                    time.sleep(runner.WAKE_S)
            except (signals.Signalled, KeyboardInterrupt):
                signals.stopped()
            with signals.held(drop=True):
                self._drain()
                unrecorded = 0
                if self.sink is not None:
                    # Before the listeners and the proxy are torn down (the backend's shutdown
                    # alone waits up to its poll interval): the trace is whole as soon as it can be.
                    unrecorded = self.sink.end(Outcome.exit(0))
                if self.abandoned:
                    why = "a second signal" if signals.repeated() else f"{STOP_WAIT_S:.0f} s passed"
                    _report(f"stopped with {self.abandoned} request(s) still in flight ({why})"
                            + (f": {unrecorded} not in the trace" if unrecorded else ""))
        return self.served

    def _start(self, stack: contextlib.ExitStack, watched: bool) -> str:
        """Bind and start; returns the URL clients use. Watched (--dump, --inspect): the
        proxy's reverse listener takes the clients and the backend sits behind it on loopback;
        otherwise the backend takes them itself (the proxy hop costs ~5 ms of this process's
        time a request, and nobody would see it). The handler's own HTTP always goes through
        the proxy, which is up before the first request is accepted."""
        backend = _Backend(self, ("127.0.0.1", 0)) if watched else None
        port = backend.server_address[1] if backend is not None else self.options.port
        if watched or self.program.imports_interface("wasi:http/outgoing-handler"):
            proxy = stack.enter_context(self._proxy(port if watched else None))
            from ..host.http.transport import ProxyTransport
            self.transport = ProxyTransport(proxy.port, proxy.credentials)
            stack.callback(self.transport.close)
            if watched:
                port = proxy.reverse_port
        if backend is None:
            backend = _Backend(self, (self.options.host, self.options.port))
        stack.callback(backend.server_close)
        threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.2},
                         name="rr-serve-backend", daemon=True).start()
        stack.callback(backend.shutdown)
        return f"http://{_shown_host(self.options.host)}:{port}/"

    def _drain(self) -> None:
        """Wait for the requests in flight: at most STOP_WAIT_S, or until another signal."""
        with self._lock:
            self.stopping = True
            waiting = self._in_flight
        if waiting:
            _report(f"stopping: answering the {waiting} request(s) in flight first (another signal "
                    "stops without them)")
        with self._lock:
            deadline = time.monotonic() + STOP_WAIT_S
            while self._in_flight and time.monotonic() < deadline and not signals.repeated():
                self._idle.wait(0.2)
            self.abandoned = self._in_flight

    @contextlib.contextmanager
    def _proxy(self, backend_port: int | None) -> Iterator[Any]:
        """The embedded proxy for the handler's outgoing HTTP, and (backend_port given) with a
        reverse-mode listener on --addr in front of the backend."""
        from ..proxy import EmbeddedProxy, WebUIError
        reverse = (None if backend_port is None else
                   f"reverse:http://127.0.0.1:{backend_port}@{self.options.host}:{self.options.port}")
        on_flow = self.sink.on_flow if self.sink is not None else (lambda record: None)
        proxy = EmbeddedProxy(mode="record", on_flow=on_flow, web=self.options.inspect,
                              web_host=self.options.inspect_host, web_port=self.options.inspect_port,
                              dump=self.options.dump, verbose=self.options.verbose, reverse=reverse,
                              redaction=self.options.redaction)
        try:
            proxy.start()
        except WebUIError as e:
            raise RRError(f"--inspect: {e}") from None
        except OSError as e:
            raise PortInUse(f"--addr {self.options.host}:{self.options.port}: cannot listen: {e.strerror or e}") from None
        try:
            if proxy.web_url and self.options.on_web_url:
                self.options.on_web_url(proxy.web_url)
            yield proxy
        finally:
            proxy.stop()

    # ------------------------------------------------------------------ one request
    def begin(self) -> int | None:
        with self._lock:
            if self.stopping:
                return None
            self._in_flight += 1
        return next(self._numbers)

    def end(self, answered: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self.served += answered
            self._idle.notify_all()

    def instance(self, tap: Tap, n: int) -> tuple[Instance, int]:
        """A fresh instance, or (with --max-instance-reuse-count) an idle one that has served
        fewer requests than allowed."""
        with self._lock:
            if self._reuse:
                inst, uses = self._reuse.pop()
                inst.host.tap = tap
                inst.host.services["wasi:http/flow-ids"] = flow_ids(n)
                return inst, uses
        from ..host.http.outgoing import TRANSPORT_SERVICE
        with self._lock:
            if self._linker is None:
                self._linker = shared_linker(self.program)
            instance_id = next(self._instances)
        services = {TRANSPORT_SERVICE: self.transport, "wasi:http/flow-ids": flow_ids(n)}
        inst = Instance(self.program, self.export, instance_sandbox(self.sandbox, instance_id), tap,
                        services, self.limits, self._linker)
        inst.instance_id = instance_id
        return inst, 0

    def release(self, inst: Instance, uses: int, exchange: Exchange) -> None:
        if exchange.trap is None and exchange.fault is None and uses + 1 < self.options.max_instance_reuse:
            with self._lock:
                self._reuse.append((inst, uses + 1))


def failed_response(exchange: Exchange) -> tuple[int, list[tuple[str, bytes]], bytes]:
    """What the client gets when the handler set no response (it trapped, or returned
    without one, or set an error-code): a 500, as from wasmtime serve."""
    body = TRAP_BODY if exchange.trap is not None or exchange.fault is not None else NO_RESPONSE_BODY
    return 500, [("content-type", b"text/plain; charset=utf-8")], body


def _say_why(n: int, exchange: Exchange) -> None:
    if exchange.fault is not None:
        _report(f"request {n}: {exchange.fault}")
    elif exchange.trap is not None:
        _report(f"request {n}: guest trap: {exchange.trap}")
    elif exchange.error is not None:
        _report(f"request {n}: the handler answered with error {exchange.error[0]}")
    else:
        _report(f"request {n}: the handler returned without setting a response")


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_port(host: str, port: int) -> None:
    """A clear error now if clients could not connect to host:port (in use, not local)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--addr {host}:{port}: not an address to listen on ({e})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise PortInUse(f"--addr {_shown_host(host)}:{port}: cannot listen: {e.strerror}") from None


class _Backend(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, server: Server, address: tuple[str, int]):
        self.rr = server
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        try:
            super().__init__(address, _Handler)
        except OSError as e:
            raise PortInUse(f"--addr {_shown_host(address[0])}:{address[1]}: cannot listen: {e.strerror}") from None

    def server_bind(self) -> None:
        # http.server's own also asks the resolver for the address's name (socket.getfqdn): a
        # reverse DNS query at every start (for ::1 or 0.0.0.0 it leaves the machine, and waits
        # out the resolver's timeout where DNS is unreachable), for a name nothing here reads.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and each body chunk are separate writes: with Nagle's algorithm the client's
    # delayed ACK holds every response back by 40 ms.
    disable_nagle_algorithm = True
    server: _Backend

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass   # --dump shows every request (through the proxy)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        rr = self.server.rr
        n = rr.begin()
        if n is None:
            self._plain(503, b"rr serve is stopping\n", close=True)
            return
        answered = False
        try:
            answered = self._handle(rr, n)
        finally:
            rr.end(answered)

    def _handle(self, rr: Server, n: int) -> bool:
        """Serve request n; False if its client was not given its answer whole (the trace
        had its end by then)."""
        raw_headers = [[k.encode("latin-1"), v.encode("latin-1")] for k, v in self.headers.items()]
        authority = self.headers.get("host")
        path = self.path if self.path.startswith("/") or self.path == "*" else "/"
        request = {"method": self.command, "url": f"http://{authority or 'localhost'}{path}",
                   "http_version": self.request_version, "headers": raw_headers, "body": b"",
                   "authority": authority, "path": path, "scheme": "http", "start": time.time()}
        block = rr.sink.open(n, request) if rr.sink is not None else None
        tap: Tap = Recorder(rr.sink.events_to(block)) if block is not None and rr.sink is not None else Tap()
        exchange = Exchange()
        try:
            inst, uses = rr.instance(tap, n)
        except RRError as e:
            self._plain(500, f"rr: {e}\n".encode(), close=True)
            _report(f"request {n}: {e}")
            return True
        request["instance"] = inst.instance_id
        body = inst.request_body()
        incoming = IncomingRequest(self.command, "http", authority, path, guest_view(raw_headers), body)
        guest = threading.Thread(target=inst.handle, args=(incoming, exchange), name=f"rr-serve-{n}", daemon=True)
        guest.start()
        request["body"] = self._feed(body)
        head = exchange.wait_head()
        sent = bytearray()
        # The response's last bytes wait until its request is in the trace: a client that has
        # its whole response knows that a kill -9 from then on keeps it.
        if head is None:
            exchange.wait_done()
            _say_why(n, exchange)
            status, headers, failed_body = failed_response(exchange)
            sent += failed_body
            tail = self._plain(status, failed_body, send=False)
        else:
            status, headers = head.status, head.headers
            tail = self._stream(head, sent)
            if tail is None:
                self.close_connection = True
            exchange.wait_done()
            if exchange.fault is not None:
                _report(f"request {n}: {exchange.fault}")
        rr.release(inst, uses, exchange)
        if block is not None and rr.sink is not None:
            if not rr.sink.close(block, {"status": status, "headers": [[k.encode(), v] for k, v in headers],
                                         "body": bytes(sent), "trap": exchange.trap, "end": time.time()}):
                self.close_connection = True
                return False   # not in the trace: the client does not get the end of it
        if tail:
            with contextlib.suppress(OSError):
                self.wfile.write(tail)
                self.wfile.flush()
        return True

    def _feed(self, body: Any) -> bytes:
        """Read the request body off the connection into the guest's stream; returns it whole."""
        received = bytearray()
        try:
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    data = self.rfile.read(size)
                    self.rfile.readline()
                    received += data
                    body.feed_bounded(data)
            else:
                left = int(self.headers.get("content-length") or 0)
                while left > 0:
                    data = self.rfile.read(min(READ_SIZE, left))
                    if not data:
                        raise ConnectionError("the client closed the connection inside the body")
                    left -= len(data)
                    received += data
                    body.feed_bounded(data)
            body.finish()
        except (OSError, ValueError) as e:
            body.finish(f"reading the request body: {e}")
            self.close_connection = True
        return bytes(received)

    def _stream(self, head: Head, sent: bytearray) -> bytes | None:
        """Send the guest's response but its last bytes, which are returned; None if its body
        failed part-way (the client sees a truncated response, as from wasmtime)."""
        length = next((int(v) for k, v in head.headers if k == "content-length" and v.strip().isdigit()), None)
        self.send_response_only(head.status)
        for name, value in head.headers:
            if name not in FORBIDDEN:
                self.send_header(name, value.decode("latin-1"))
        chunked = length is None and self.command != "HEAD"
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]  # http.server's, as end_headers()
        held = self._headers_buffer   # type: ignore[attr-defined]
        self._headers_buffer = []
        last = b"".join(held)
        head_sent = False   # the head goes with the first chunk: a small response is one write
        try:
            for data in body_chunks(head):
                sent += data
                if self.command == "HEAD":
                    continue
                chunk = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                if not head_sent:
                    last, head_sent = last + chunk, True
                    continue
                self.wfile.write(last)
                last = chunk
            return last + (b"0\r\n\r\n" if chunked else b"")
        except (HttpFailure, OSError):
            return None

    def _plain(self, status: int, body: bytes, close: bool = False, send: bool = True) -> bytes:
        """A plain-text response: sent, or (send=False) returned as bytes to send."""
        self.send_response_only(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        data = b"".join(self._headers_buffer) + body  # type: ignore[attr-defined]
        self._headers_buffer = []
        if send:
            self.wfile.write(data)
            self.wfile.flush()
        return data


def _report(message: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"rr: {message}\n")
        sys.stderr.flush()
