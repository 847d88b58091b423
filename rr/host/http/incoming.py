"""wasi:http/types resources of the server side: incoming-request, outgoing-response,
response-outparam (what `rr serve` hands a wasi:http/incoming-handler).

The request is plain state plus a body stream fed by the server (bodies.ResponseBody, so
how many bytes each read returns goes through the tap like any timing-dependent count).
The response's body is a RequestBodyPipe, drained by the server's connection thread;
`response-outparam.set` hands the head to the `Exchange` (rr/serve/exchange.py) that
is waiting for it on that thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...abi import WasiError
from ..context import HostContext
from .bodies import RequestBodyPipe, ResponseBody
from .fields import Fields
from .interfaces import types_if
from .types import IncomingBody, Method, OutgoingBody, Scheme

_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
REQUEST_BODY_LABEL = "http-incoming-request-body"
RESPONSE_BODY_LABEL = "http-outgoing-response-body"


def method_variant(method: str) -> Method:
    return (method.lower(), None) if method in _METHODS else ("other", method)


class IncomingRequest:
    def __init__(self, method: str, scheme: str, authority: str | None, path_with_query: str,
                 headers: list[tuple[str, bytes]], body: ResponseBody):
        self.method = method_variant(method)
        self.scheme: Scheme = ("HTTPS", None) if scheme == "https" else ("HTTP", None)
        self.authority = authority
        self.path_with_query = path_with_query
        self.headers = Fields(headers, immutable=True)
        self.body = body
        self.consumed = False

    def close(self) -> None:
        if not self.consumed:
            self.body.close()


class OutgoingResponse:
    def __init__(self, headers: Fields):
        headers.immutable = True
        self.headers = headers
        self.status = 200
        self.pipe: RequestBodyPipe | None = None
        self.body_taken = False

    def declared_length(self) -> int | None:
        values = self.headers.values("content-length")
        if len(values) == 1 and values[0].strip().isdigit():
            return int(values[0])
        return None


class ResponseOutparam:
    """Set once: `deliver(("ok", OutgoingResponse) | ("err", error-code))`."""

    def __init__(self, deliver: Callable[[tuple[str, Any]], None]):
        self.deliver = deliver


# ------------------------------------------------------------------ incoming-request


@types_if.method("incoming-request", "method")
def request_method(host: HostContext, r: IncomingRequest) -> Method:
    return r.method


@types_if.method("incoming-request", "path-with-query")
def request_path(host: HostContext, r: IncomingRequest) -> str | None:
    return r.path_with_query


@types_if.method("incoming-request", "scheme")
def request_scheme(host: HostContext, r: IncomingRequest) -> Scheme | None:
    return r.scheme


@types_if.method("incoming-request", "authority")
def request_authority(host: HostContext, r: IncomingRequest) -> str | None:
    return r.authority


@types_if.method("incoming-request", "headers")
def request_headers(host: HostContext, r: IncomingRequest) -> Fields:
    return r.headers.frozen_view()


@types_if.method("incoming-request", "consume")
def request_consume(host: HostContext, r: IncomingRequest) -> IncomingBody:
    if r.consumed:
        raise WasiError(None)
    r.consumed = True
    return IncomingBody(r.body)


# ------------------------------------------------------------------ outgoing-response


@types_if.constructor("outgoing-response")
def response_new(host: HostContext, headers: Fields) -> OutgoingResponse:
    return OutgoingResponse(headers)


@types_if.method("outgoing-response", "status-code")
def response_status(host: HostContext, r: OutgoingResponse) -> int:
    return r.status


@types_if.method("outgoing-response", "set-status-code")
def response_set_status(host: HostContext, r: OutgoingResponse, status: int) -> None:
    if not 100 <= status <= 999:   # what http::StatusCode accepts, as wasmtime checks it
        raise WasiError(None)
    r.status = status


@types_if.method("outgoing-response", "headers")
def response_headers(host: HostContext, r: OutgoingResponse) -> Fields:
    return r.headers.frozen_view()


@types_if.method("outgoing-response", "body")
def response_body(host: HostContext, r: OutgoingResponse) -> OutgoingBody:
    if r.body_taken:
        raise WasiError(None)
    r.body_taken = True
    r.pipe = RequestBodyPipe(r.declared_length(), host.notify)
    return OutgoingBody(host, r.pipe, RESPONSE_BODY_LABEL)


# ------------------------------------------------------------------ response-outparam


@types_if.static("response-outparam", "set")
def outparam_set(host: HostContext, param: ResponseOutparam, response: tuple[str, Any]) -> None:
    param.deliver(response)
