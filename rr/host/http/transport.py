"""Where requests go: straight to the network, or in plaintext to rr's embedded proxy.

A `Transport` decides only the connection, the request target and the extra headers, and
how a response tells of an upstream failure; `exchange()` does the rest for both (HTTP/1.1
with http.client, the guest's headers as given, the body streamed from the guest).
`Transport.exchange` runs on the transfer thread; every failure leaves as `HttpFailure`.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import errors
from .bodies import RequestBodyPipe
from .errors import HttpFailure

DEFAULT_TIMEOUT_S = 600.0  # wasmtime's default for each of the three request-options


@dataclass(frozen=True)
class Timeouts:
    connect: float = DEFAULT_TIMEOUT_S
    first_byte: float = DEFAULT_TIMEOUT_S
    between_bytes: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class RequestHead:
    method: str
    scheme: str                       # "http" or "https"
    authority: str                    # host[:port] as the guest gave it
    path_with_query: str
    headers: list[tuple[str, bytes]]  # lower-case names, without forbidden ones

    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(f"//{self.authority}")
        try:
            port = parts.port
        except ValueError:
            port = None
            parts = None  # type: ignore[assignment]
        if parts is None or not parts.hostname or parts.username is not None:
            raise HttpFailure(errors.code("HTTP-request-URI-invalid"), f"bad authority {self.authority!r}")
        return parts.hostname, port or (443 if self.scheme == "https" else 80)


class Transport:
    """Direct: one connection per request to the origin, TLS verified against the system
    trust store plus `extra_ca` (a PEM file), if given."""

    def __init__(self, extra_ca: Path | None = None):
        self.extra_ca = extra_ca
        self._tls: ssl.SSLContext | None = None

    def ready(self) -> None:
        """Called on the guest's thread before a request's transfer starts, so that what must
        be in place first fails the run there, not the request (see session's on-demand proxy)."""

    def connection(self, head: RequestHead, timeouts: Timeouts) -> http.client.HTTPConnection:
        host, port = head.host_port()
        if head.scheme != "https":
            return http.client.HTTPConnection(host, port, timeout=timeouts.connect)
        if self._tls is None:
            context = ssl.create_default_context()
            if self.extra_ca is not None:
                context.load_verify_locations(cafile=str(self.extra_ca))
            self._tls = context
        return http.client.HTTPSConnection(host, port, timeout=timeouts.connect, context=self._tls)

    def target(self, head: RequestHead) -> str:
        return head.path_with_query

    def extra_headers(self, flow_id: str) -> list[tuple[str, str]]:
        return []

    def check(self, response: http.client.HTTPResponse) -> None:
        """Raise HttpFailure if `response` reports an upstream failure rather than being one."""

    def release(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                complete: bool) -> None:
        """The transfer is over (`complete`: its response was read to the end)."""
        conn.close()

    def close(self) -> None:
        """The run is over: drop any connection kept for reuse."""

    def exchange(self, head: RequestHead, body: RequestBodyPipe | None, timeouts: Timeouts,
                 flow_id: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self.connection(head, timeouts)
        reused = conn.sock is not None
        phase = "connect"
        try:
            if not reused:
                conn.connect()
            phase = "response"
            # Keep our own reference: http.client hands the socket to the response (and sets
            # conn.sock to None) when the server will close the connection (HTTP/1.0).
            sock = conn.sock
            assert sock is not None
            sock.settimeout(timeouts.first_byte)
            _send_head(conn, self.target(head), head, body, self.extra_headers(flow_id))
            if body is not None:
                _send_body(conn, body)
            response = conn.getresponse()
            self.check(response)
            sock.settimeout(timeouts.between_bytes)
            return conn, response
        except BaseException as e:
            conn.close()
            if reused and body is None and isinstance(e, (http.client.RemoteDisconnected, ConnectionError)):
                # A kept-alive connection the other side had closed: nothing of this request
                # was answered, and it has no body to replay, so send it again on a new one.
                return self.exchange(head, body, timeouts, flow_id)
            if body is not None:
                body.fail(errors.from_exception(e, phase))
            if isinstance(e, HttpFailure):
                raise
            raise HttpFailure(errors.from_exception(e, phase), str(e)) from e


class ProxyTransport(Transport):
    """Every request as plain HTTP/1.1 in absolute form to rr's embedded proxy on
    127.0.0.1:`port`, tagged `x-rr-flow: <id>` and carrying the run's `credentials` (the
    proxy serves no one else); the proxy does any TLS and reports an upstream failure as a
    502 with `x-rr-error: <kind>`."""

    def __init__(self, port: int, credentials: str):
        super().__init__()
        self.port = port
        self.credentials = credentials
        # Connections to the proxy are kept alive and reused: mitmproxy then keeps its
        # upstream connection too, so a recorded request costs no extra connects.
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def connection(self, head: RequestHead, timeouts: Timeouts) -> http.client.HTTPConnection:
        head.host_port()  # a malformed authority fails here, as it would direct
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeouts.connect)

    def release(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                complete: bool) -> None:
        # http.client can leave a fully read response open (then the connection refuses its
        # next request): only a closed response frees the connection for reuse.
        if complete and response.isclosed() and not response.will_close and conn.sock is not None:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def target(self, head: RequestHead) -> str:
        return f"{head.scheme}://{head.authority}{head.path_with_query}"

    def extra_headers(self, flow_id: str) -> list[tuple[str, str]]:
        return [("x-rr-flow", flow_id), ("proxy-authorization", self.credentials)]

    def check(self, response: http.client.HTTPResponse) -> None:
        if response.getheader("x-rr-mismatch"):
            response.close()
            raise errors.RequestDiffers(errors.code("internal-error", "request differs from the recording"))
        kind = response.getheader("x-rr-error")
        if kind is None:
            return
        message = response.getheader("x-rr-error-message") or ""
        response.close()
        raise HttpFailure(errors.from_proxy(kind, message), message or kind)


def transport_from_environment() -> Transport:
    """The default: direct, with RR_HTTP_EXTRA_CA (a PEM file) trusted besides the system store."""
    extra = os.environ.get("RR_HTTP_EXTRA_CA")
    return Transport(Path(extra) if extra else None)


def _send_head(conn: http.client.HTTPConnection, target: str, head: RequestHead,
               body: RequestBodyPipe | None, extra: list[tuple[str, str]]) -> None:
    # skip_host/skip_accept_encoding: send the guest's headers, not http.client's defaults.
    conn.putrequest(head.method, target, skip_host=True, skip_accept_encoding=True)
    conn.putheader("host", head.authority)
    for name, value in head.headers:
        conn.putheader(name, value)
    if body is not None and body.declared_length is None:
        conn.putheader("transfer-encoding", "chunked")
    for name, value in extra:
        conn.putheader(name, value)
    conn.endheaders()


def _send_body(conn: http.client.HTTPConnection, body: RequestBodyPipe) -> None:
    chunked = body.declared_length is None
    body.attach()
    while (data := body.get()) is not None:  # ends when the guest finishes (or fails) the body
        conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
    if chunked:
        trailer = b"".join(n.encode() + b": " + v + b"\r\n" for n, v in body.trailers or [])
        conn.send(b"0\r\n" + trailer + b"\r\n")


def shutdown(conn: http.client.HTTPConnection) -> None:
    """Wake a transfer thread blocked reading `conn` (the guest dropped the body)."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side
