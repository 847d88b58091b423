"""wasi:http `error-code` values: from host failures, from the proxy's 502s, for stream errors.

An error code is a variant value as rr/abi.py lowers it: `(case, payload)`, the payload
None for cases without one. Upstream failures always reach the guest as one of these,
never as a made-up response.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from typing import Any

from ..context import HostContext
from ..io import IoError
from .interfaces import types_if

ErrorCode = tuple[str, Any]


def code(case: str, payload: Any = None) -> ErrorCode:
    return (case, payload)


def dns_error(rcode: str | None) -> ErrorCode:
    # DNS-error-payload {rcode: option<string>, info-code: option<u16>}
    return ("DNS-error", (rcode, None))


class HttpFailure(Exception):
    """A transfer failed; `code` is what the guest gets."""

    def __init__(self, error: ErrorCode, message: str = ""):
        super().__init__(message or error[0])
        self.code = error


class RequestDiffers(HttpFailure):
    """Replay: the proxy found no recorded exchange matching this request."""


class ErrorText(str):
    """A stream failure message that also carries its error-code.

    rr/host/io.py turns `StreamFailed(message)` into `IoError(message)`; carrying the code
    on the message itself lets `http-error-code` find it without io.py knowing about HTTP.
    """

    code: ErrorCode

    def __new__(cls, message: str, error: ErrorCode) -> "ErrorText":
        text = super().__new__(cls, message)
        text.code = error
        return text


def from_exception(exc: BaseException, phase: str) -> ErrorCode:
    """The error-code for a failure of the direct transport. `phase` is "connect",
    "response" (waiting for the head) or "body" (reading the body)."""
    if isinstance(exc, HttpFailure):
        return exc.code
    if isinstance(exc, socket.gaierror):
        return dns_error(exc.strerror or str(exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return code("TLS-certificate-error")
    if isinstance(exc, ssl.SSLError):
        return code("TLS-protocol-error")
    if isinstance(exc, TimeoutError):
        return code("connection-timeout" if phase == "connect" else "connection-read-timeout")
    if isinstance(exc, ConnectionRefusedError):
        return code("connection-refused")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return code("connection-terminated")  # includes http.client.RemoteDisconnected
    if isinstance(exc, http.client.IncompleteRead):
        return code("HTTP-response-incomplete")
    if isinstance(exc, http.client.HTTPException):
        return code("HTTP-protocol-error")
    if isinstance(exc, OSError):
        if exc.errno == errno.ENETUNREACH:
            return code("destination-IP-unroutable")
        if exc.errno == errno.EHOSTUNREACH:
            return code("destination-unavailable")
        return code("internal-error", f"{type(exc).__name__}: {exc.strerror or exc}")
    return code("internal-error", f"{type(exc).__name__}: {exc}")


def from_proxy(kind: str, message: str) -> ErrorCode:
    """The error-code for a 502 the embedded proxy made (`x-rr-error: <kind>`)."""
    lowered = message.lower()
    match kind:
        case "dns":
            return dns_error(message or None)
        case "refused":
            return code("connection-refused")
        case "reset":
            return code("connection-terminated")
        case "timeout":
            return code("connection-timeout")
        case "tls":
            certificate = "certificate" in lowered or "verify" in lowered
            return code("TLS-certificate-error" if certificate else "TLS-protocol-error")
        case "protocol":
            return code("HTTP-protocol-error")
        case _:
            return code("internal-error", message or kind)


def to_trace(error: ErrorCode) -> list[Any]:
    case, payload = error
    return [case, list(payload) if isinstance(payload, tuple) else payload]


def from_trace(value: list[Any]) -> ErrorCode:
    case, payload = value
    return (case, tuple(payload) if isinstance(payload, list) else payload)


@types_if.func("http-error-code")
def http_error_code(host: HostContext, err: IoError) -> ErrorCode | None:
    return getattr(err.message, "code", None)
