"""Upstream failures: a small HTTP-level vocabulary and the 502 that carries it to rr's host.

When the upstream connection fails, mitmproxy writes a 502 of its own straight onto the
client connection; no addon hook can change that response (the error hook runs before it,
and it is assembled from the error message alone). So that rr's host can tell such a 502
from a real upstream 502, `install_error_response_headers()` wraps the one function
mitmproxy uses to build those responses and adds `x-rr-error: <kind>` and
`x-rr-error-message`. Replay builds the identical response with `error_response()`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mitmproxy import http

HEADER_FLOW: Final = "x-rr-flow"
HEADER_ERROR: Final = "x-rr-error"
HEADER_ERROR_MESSAGE: Final = "x-rr-error-message"
HEADER_MISMATCH: Final = "x-rr-mismatch"

# The host maps these to wasi:http error codes.
KINDS: Final = ("dns", "refused", "reset", "tls", "timeout", "protocol", "other")

# Ordered: the first pattern that matches mitmproxy's error message wins. The messages
# come from the OS (asyncio connect), OpenSSL/mitmproxy's TLS layer and its HTTP/1 parser.
_PATTERNS: Final = (
    ("dns", re.compile(r"name or service not known|nodename nor servname|no address associated|"
                       r"temporary failure in name resolution|getaddrinfo|\[errno -\d+\]", re.I)),
    ("refused", re.compile(r"connection refused|connect call failed|errno 111\b", re.I)),
    ("timeout", re.compile(r"timed out|timeout", re.I)),
    ("tls", re.compile(r"certificate|\btls\b|\bssl\b|openssl|handshake|alert", re.I)),
    ("reset", re.compile(r"reset by peer|server closed connection|closed by peer|broken pipe|"
                         r"connection aborted|errno 104\b", re.I)),
    ("protocol", re.compile(r"cannot parse|unexpected server response|malformed|invalid|protocol", re.I)),
)


def classify(message: str) -> str:
    """Map one of mitmproxy's upstream error messages to a kind in KINDS."""
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return kind
    return "other"


def header_safe(message: str, limit: int = 400) -> str:
    """A message usable as a header value: printable latin-1, one line, bounded length."""
    flat = " ".join(message.split())
    return "".join(c if " " <= c <= "~" else "?" for c in flat)[:limit]


def error_response(status: int, message: str, kind: str | None = None) -> "http.Response":
    """The response mitmproxy sends for a failed flow, plus rr's error headers."""
    from mitmproxy import http, version
    from mitmproxy.proxy.layers.http._base import format_error

    headers = [
        ("Server", version.MITMPROXY),
        ("Connection", "close"),
        ("Content-Type", "text/html"),
        (HEADER_ERROR, kind or classify(message)),
        (HEADER_ERROR_MESSAGE, header_safe(message)),
    ]
    return http.Response.make(
        status,
        format_error(status, message),
        http.Headers([(name.encode(), value.encode("latin-1")) for name, value in headers]),
    )


def install_error_response_headers() -> None:
    """Make mitmproxy's HTTP/1 error responses carry x-rr-error (idempotent, process-wide)."""
    from mitmproxy.net.http import http1
    from mitmproxy.proxy.layers.http import _http1

    if getattr(_http1.make_error_response, "rr_installed", False):
        return

    def make_error_response(status_code: int, message: str = "") -> bytes:
        return http1.assemble_response(error_response(status_code, message))

    make_error_response.rr_installed = True  # type: ignore[attr-defined]
    _http1.make_error_response = make_error_response
