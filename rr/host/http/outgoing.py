"""wasi:http/outgoing-handler.handle and the transfer thread behind each request.

`handle` checks the request, numbers it (flow ids "1", "2", ... in call order: a pure
function of the guest's calls, so a replay numbers the same way), returns the future at
once, and starts a daemon thread that runs the exchange through the run's transport,
resolves the future when the response head arrives and then feeds the body stream.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from ...abi import WasiError
from ...merge import FLOW_CALL
from ..context import HostContext
from . import errors
from .bodies import RequestBodyPipe, ResponseBody
from .errors import ErrorText, HttpFailure
from .fields import FORBIDDEN, Fields, grouped
from .grant import HttpGrant
from .interfaces import handler_if
from .transport import RequestHead, Timeouts, Transport, shutdown, transport_from_environment
from .types import FutureResponse, IncomingResponse, OutgoingRequest, RequestOptions

TRANSPORT_SERVICE = "wasi:http/transport"   # host.services key: the run's Transport
# A request the grant refuses is a failed FLOW_CALL event of its own (it never reaches the
# proxy, so no flow record): recorded and replayed through the tap like any host result.
DENIED = "HTTP-request-denied"
READ_SIZE = 65536

# Who makes the transport of a run that has none yet; `use_transport` replaces it (the
# recorder points it at its embedded proxy).
_transport_factory = transport_from_environment


def use_transport(factory: Callable[[], Transport]) -> None:
    global _transport_factory
    _transport_factory = factory


def _head(request: OutgoingRequest) -> RequestHead:
    scheme_case, scheme_other = request.scheme or ("HTTPS", None)  # wasmtime's default
    if scheme_case == "other" or not request.authority:
        raise WasiError(errors.code("HTTP-request-URI-invalid"))
    case, other = request.method
    head = RequestHead(
        method=other if case == "other" else case.upper(),  # type: ignore[arg-type]
        scheme=scheme_case.lower(),
        authority=request.authority,
        path_with_query=request.path_with_query or "/",
        headers=list(request.headers.entries),
    )
    try:
        head.host_port()
    except HttpFailure as e:
        raise WasiError(e.code) from None
    return head


class Transfer:
    def __init__(self, host: HostContext, flow_id: str, head: RequestHead,
                 body: RequestBodyPipe | None, timeouts: Timeouts, transport: Transport):
        self.host = host
        self.flow_id = flow_id
        self.head = head
        self.request_body = body
        self.timeouts = timeouts
        self.transport = transport
        self.future = FutureResponse(host, f"http-response-{flow_id}")

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"rr-http-{self.flow_id}", daemon=True).start()

    def _run(self) -> None:
        try:
            conn, response = self.transport.exchange(self.head, self.request_body, self.timeouts, self.flow_id)
        except errors.RequestDiffers:
            # Replay: stop the guest when it looks at this response; the session reports
            # the proxy's diff against the recorded request.
            self.future.resolve(("abort", None))
            return
        except HttpFailure as e:
            self.future.resolve(("err", e.code))
            return
        body = ResponseBody(self.host, f"http-body-{self.flow_id}")
        body.on_drop = lambda: shutdown(conn)
        # Hop-by-hop headers are the transport's business: wasmtime strips them too.
        pairs = [(n.lower(), v.encode("latin-1")) for n, v in response.getheaders()]
        headers = Fields(grouped([(n, v) for n, v in pairs if n not in FORBIDDEN]), immutable=True)
        self.future.resolve(("ok", IncomingResponse(response.status, headers, body)))
        complete = False
        try:
            while data := response.read1(READ_SIZE):
                if not body.feed_bounded(data):
                    return  # the guest dropped the body
            complete = True
            body.finish()
        except Exception as e:  # noqa: BLE001 - every failure becomes the stream's error
            error = errors.from_exception(e, "body")
            body.finish(ErrorText(f"reading the response body: {e}", error))
        finally:
            self.transport.release(conn, response, complete)


def _deny() -> FutureResponse:
    raise WasiError(DENIED)


@handler_if.func("handle")
def handle(host: HostContext, request: OutgoingRequest, options: RequestOptions | None) -> FutureResponse:
    head = _head(request)
    counter = host.service("wasi:http/flow-ids", lambda: itertools.count(1))
    grant = host.service("wasi:http/grant", lambda: HttpGrant(host.sandbox.http_allow))
    if not grant.allows(*head.host_port()):
        flow_id = str(next(counter))
        url = f"{head.scheme}://{head.authority}{head.path_with_query}"
        return host.tap(FLOW_CALL, [flow_id, head.method, url], _deny)
    transport = host.service(TRANSPORT_SERVICE, lambda: _transport_factory())
    timeouts = options.timeouts() if options is not None else Timeouts()
    transport.ready()
    transfer = Transfer(host, str(next(counter)), head, request.body, timeouts, transport)
    transfer.start()
    return transfer.future
