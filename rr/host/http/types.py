"""wasi:http/types resources of the client side, besides `fields` (fields.py).

outgoing-request / request-options / outgoing-body are plain state the guest builds;
incoming-response / incoming-body / future-trailers / future-incoming-response are
views of a `Transfer` (outgoing.py) that runs on another thread. Whether a future is
ready when the guest asks depends on timing, so `get` asks the tap.
"""

from __future__ import annotations

import re
from typing import Any

from ...abi import WasiError
from ...typecheck import BadValue, show
from ..context import HostContext
from ..io import InputStream
from ..poll import Pollable
from .bodies import OutgoingBodyStream, RequestBodyPipe, ResponseBody
from .fields import Fields, valid_name
from .interfaces import types_if
from .transport import Timeouts

Method = tuple[str, str | None]   # variant method: ("get", None) ... ("other", "PURGE")
Scheme = tuple[str, str | None]   # variant scheme: ("HTTP", None), ("HTTPS", None), ("other", s)

# What http::uri accepts, roughly: printable ASCII, no spaces; the path starts with "/"
# (or is "*"); an authority has no path, query or fragment characters.
_PATH = re.compile(r"(/[\x21-\x7e]*|\*)")
_AUTHORITY = re.compile(r"[\x21-\x7e]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


class OutgoingRequest:
    def __init__(self, headers: Fields):
        headers.immutable = True  # attached: the guest changes it no more
        self.headers = headers
        self.method: Method = ("get", None)
        self.scheme: Scheme | None = None
        self.authority: str | None = None
        self.path_with_query: str | None = None
        self.body: RequestBodyPipe | None = None
        self.body_taken = False

    def declared_length(self) -> int | None:
        values = self.headers.values("content-length")
        if len(values) == 1 and values[0].strip().isdigit():
            return int(values[0])
        return None


class OutgoingBody:
    def __init__(self, host: HostContext, pipe: RequestBodyPipe, label: str):
        self.host = host
        self.pipe = pipe
        self.label = label
        self.stream_taken = False

    def close(self) -> None:
        # Dropped without finish: the request must not look complete to the server.
        self.pipe.fail(("HTTP-request-body-size", self.pipe.written))


class RequestOptions:
    def __init__(self) -> None:
        self.connect: int | None = None          # nanoseconds
        self.first_byte: int | None = None
        self.between_bytes: int | None = None

    def timeouts(self) -> Timeouts:
        default = Timeouts()
        return Timeouts(
            connect=self.connect / 1e9 if self.connect is not None else default.connect,
            first_byte=self.first_byte / 1e9 if self.first_byte is not None else default.first_byte,
            between_bytes=self.between_bytes / 1e9 if self.between_bytes is not None else default.between_bytes,
        )


class IncomingResponse:
    def __init__(self, status: int, headers: Fields, body: ResponseBody):
        self.status = status
        self.headers = headers
        self.body = body
        self.consumed = False

    def close(self) -> None:
        if not self.consumed:
            self.body.close()  # nobody will read it: end the transfer


class IncomingBody:
    def __init__(self, body: ResponseBody):
        self.body = body
        self.stream_taken = False

    def close(self) -> None:
        if not self.stream_taken:
            self.body.close()


class FutureTrailers:
    """HTTP/1.1 trailers are not passed on by http.client: ready with none at body end."""

    def __init__(self, body: ResponseBody):
        self.body = body
        self.taken = False


class FutureResponse:
    """future-incoming-response: resolved once by the transfer thread."""

    def __init__(self, host: HostContext, label: str):
        self.host = host
        self.label = label
        self.outcome: tuple[str, Any] | None = None   # ("ok", IncomingResponse) | ("err", ErrorCode)
        self.taken = False

    def resolve(self, outcome: tuple[str, Any]) -> None:
        self.outcome = outcome  # one assignment: the guest thread sees None or the whole outcome
        self.host.notify()

    def done(self) -> bool:
        return self.outcome is not None


# ------------------------------------------------------------------ request-options


@types_if.constructor("request-options")
def options_new(host: HostContext) -> RequestOptions:
    return RequestOptions()


def _option_accessors(wit: str, attr: str) -> None:
    @types_if.method("request-options", wit)
    def get(host: HostContext, o: RequestOptions) -> int | None:
        return getattr(o, attr)

    @types_if.method("request-options", f"set-{wit}")
    def set_(host: HostContext, o: RequestOptions, value: int | None) -> None:
        setattr(o, attr, value)


_option_accessors("connect-timeout", "connect")
_option_accessors("first-byte-timeout", "first_byte")
_option_accessors("between-bytes-timeout", "between_bytes")


# ------------------------------------------------------------------ outgoing-request


@types_if.constructor("outgoing-request")
def request_new(host: HostContext, headers: Fields) -> OutgoingRequest:
    return OutgoingRequest(headers)


@types_if.method("outgoing-request", "body")
def request_body(host: HostContext, r: OutgoingRequest) -> OutgoingBody:
    if r.body_taken:
        raise WasiError(None)
    r.body_taken = True
    r.body = RequestBodyPipe(r.declared_length(), host.notify)
    return OutgoingBody(host, r.body, "http-request-body")


@types_if.method("outgoing-request", "method")
def request_method(host: HostContext, r: OutgoingRequest) -> Method:
    return r.method


@types_if.method("outgoing-request", "set-method")
def request_set_method(host: HostContext, r: OutgoingRequest, method: Method) -> None:
    case, name = method
    if case == "other" and not valid_name(name or ""):
        raise WasiError(None)
    r.method = method


@types_if.method("outgoing-request", "path-with-query")
def request_path(host: HostContext, r: OutgoingRequest) -> str | None:
    return r.path_with_query


@types_if.method("outgoing-request", "set-path-with-query")
def request_set_path(host: HostContext, r: OutgoingRequest, path: str | None) -> None:
    if path is not None and not _PATH.fullmatch(path):
        raise WasiError(None)
    r.path_with_query = path


@types_if.method("outgoing-request", "scheme")
def request_scheme(host: HostContext, r: OutgoingRequest) -> Scheme | None:
    return r.scheme


@types_if.method("outgoing-request", "set-scheme")
def request_set_scheme(host: HostContext, r: OutgoingRequest, scheme: Scheme | None) -> None:
    if scheme is not None and scheme[0] == "other" and not _SCHEME.fullmatch(scheme[1] or ""):
        raise WasiError(None)
    r.scheme = scheme


@types_if.method("outgoing-request", "authority")
def request_authority(host: HostContext, r: OutgoingRequest) -> str | None:
    return r.authority


@types_if.method("outgoing-request", "set-authority")
def request_set_authority(host: HostContext, r: OutgoingRequest, authority: str | None) -> None:
    if authority is not None and not (_AUTHORITY.fullmatch(authority) and not set("/?#") & set(authority)):
        raise WasiError(None)
    r.authority = authority


@types_if.method("outgoing-request", "headers")
def request_headers(host: HostContext, r: OutgoingRequest) -> Fields:
    return r.headers.frozen_view()


# ------------------------------------------------------------------ outgoing-body


@types_if.method("outgoing-body", "write")
def body_write(host: HostContext, b: OutgoingBody) -> OutgoingBodyStream:
    if b.stream_taken:
        raise WasiError(None)
    b.stream_taken = True
    return OutgoingBodyStream(host, b.pipe, b.label)


@types_if.static("outgoing-body", "finish")
def body_finish(host: HostContext, b: OutgoingBody, trailers: Fields | None) -> None:
    failure = b.pipe.finish(list(trailers.entries) if trailers is not None else None)
    if failure is not None:
        raise WasiError(failure)


# ------------------------------------------------------------------ future-incoming-response


def _ready(args: list[Any], result: Any) -> None:
    """Replay: whether a future was ready is a bool (the value itself comes from the flow)."""
    if type(result) is not bool:
        raise BadValue(f"{show(result)} is not a bool", "bool")


@types_if.method("future-incoming-response", "subscribe")
def future_subscribe(host: HostContext, f: FutureResponse) -> Pollable:
    return Pollable(f.done, label=f.label)


@types_if.method("future-incoming-response", "get")
def future_get(host: HostContext, f: FutureResponse) -> Any:
    if f.taken:
        return ("err", None)
    ready = host.tap("wasi:http/types.future-incoming-response.get", [f.label], f.done, _ready)
    if not ready:
        return None
    host.wait_for(f.done)  # at once when live; a replay waits for the replayed flow
    if f.outcome is not None and f.outcome[0] == "abort":
        from ...tap import Divergence
        raise Divergence(f"HTTP request {f.label} differs from the recording")
    f.taken = True
    return ("ok", f.outcome)


# ------------------------------------------------------------------ incoming-response / body


@types_if.method("incoming-response", "status")
def response_status(host: HostContext, r: IncomingResponse) -> int:
    return r.status


@types_if.method("incoming-response", "headers")
def response_headers(host: HostContext, r: IncomingResponse) -> Fields:
    return r.headers.frozen_view()


@types_if.method("incoming-response", "consume")
def response_consume(host: HostContext, r: IncomingResponse) -> IncomingBody:
    if r.consumed:
        raise WasiError(None)
    r.consumed = True
    return IncomingBody(r.body)


@types_if.method("incoming-body", "stream")
def incoming_body_stream(host: HostContext, b: IncomingBody) -> InputStream:
    if b.stream_taken:
        raise WasiError(None)
    b.stream_taken = True
    return b.body


@types_if.static("incoming-body", "finish")
def incoming_body_finish(host: HostContext, b: IncomingBody) -> FutureTrailers:
    return FutureTrailers(b.body)


@types_if.method("future-trailers", "subscribe")
def trailers_subscribe(host: HostContext, t: FutureTrailers) -> Pollable:
    return Pollable(lambda: t.body.done, label=f"{t.body.label}-trailers")


@types_if.method("future-trailers", "get")
def trailers_get(host: HostContext, t: FutureTrailers) -> Any:
    if t.taken:
        return ("err", None)
    ready = host.tap("wasi:http/types.future-trailers.get", [t.body.label], lambda: t.body.done, _ready)
    if not ready:
        return None
    host.wait_for(lambda: t.body.done)
    t.taken = True
    failure = t.body.failure_code()
    return ("ok", ("err", failure) if failure is not None else ("ok", None))
