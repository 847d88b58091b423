"""Record mode: forward every request upstream and hand each finished exchange to a sink.

What is recorded is what the guest got. With mitmweb's intercept (an addon earlier in the
chain) a user may edit the request before it goes upstream and the response before it
reaches the guest; each hook of that flow then waits until the flow is resumed. So:

- `request`, which runs before anyone could edit, keeps the request as the guest sent it:
  replay compares the guest's request with that one;
- `responseheaders` keeps the request as it went upstream (any edit is made by then);
- `response` waits for the flow to be resumed, then records the response as it will be
  delivered, so the trace, --dump and the HAR show the edited exchange and replay hands the
  guest the edited response.

With a `bodies` sink, a response body longer than `stream_above` is streamed (mitmproxy's
`flow.response.stream`): its record goes out at `responseheaders` with `streamed: true` and no
body, each piece as it passes (`bodies.write_body`, before the guest can have it), and how it
ended at `response` / `error` (`bodies.write_body_end`). mitmproxy reads the upstream only as
fast as the guest's connection drains, so nothing holds the whole body. A body of unknown length
(chunked, or until close) is held back until it passes `stream_above`: one ending before that is
one record as before. A streamed response cannot be edited (its head and body are sent before
the `response` hook): the record is what the guest got. With body redaction rules nothing is
streamed (a match may straddle two pieces, and a redacted body's length must be in the headers
sent before it): such bodies are held whole as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from mitmproxy import http
from mitmproxy.net.http.http1.read import expected_http_body_size

from .errors import classify
from .flowrecord import (META_FLOW_ID, META_INCOMING, FlowRecord, flow_to_record, request_to_record,
                         response_to_record)
from .redaction import Redactor, Rules

logger = logging.getLogger(__name__)
_EMITTED = "rr.emitted"
# A streamed body's size, set when it ends (the --dump line shows it): plain data, as
# everything in a flow's metadata (the web UI and .mitm files serialise it).
META_STREAMED = "rr.streamed"


class BodySink(Protocol):
    def write_body(self, flow_id: str, data: bytes) -> None: ...
    def write_body_end(self, flow_id: str, end: dict[str, Any]) -> None: ...


class RecordAddon:
    """Calls `on_flow(record)` once per flow, on its response or its error, from the proxy's
    thread. The gate (proxy_addon.gate) has taken rr's own headers off the request already.

    Upstream failures reach the client as mitmproxy's own 502, which carries x-rr-error once
    `errors.install_error_response_headers()` is installed (rr.proxy does that)."""

    def __init__(self, on_flow: Callable[[FlowRecord], None], redaction: Rules | None = None,
                 bodies: BodySink | None = None, stream_above: int = 4 << 20) -> None:
        self._on_flow = on_flow
        self._bodies = bodies if not (redaction and redaction.get("body")) else None
        self._stream_above = stream_above
        # Secrets leave the record before anything else sees it (trace, HAR, .mitm).
        self._redactor = Redactor(redaction) if redaction else None
        # flow.id -> the request as the guest sent it / as it went upstream; dropped on emit
        self._from_guest: dict[str, dict[str, Any]] = {}
        self._upstream: dict[str, dict[str, Any]] = {}
        self._streamers: dict[str, _Streamer] = {}   # flow.id -> its body's streamer, until it ends

    @property
    def redacted_values(self) -> set[bytes]:
        """The secrets taken out of the records so far."""
        return set(self._redactor.replaced) if self._redactor else set()

    def request(self, flow: http.HTTPFlow) -> None:
        self._from_guest[flow.id] = request_to_record(flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._upstream[flow.id] = request_to_record(flow.request)
        if self._bodies is None or flow.metadata.get(META_INCOMING) or flow.response is None:
            return
        try:
            size = expected_http_body_size(flow.request, flow.response)
        except ValueError:
            return   # a malformed length: mitmproxy's own handling, buffered as before
        if size == 0 or size is not None and 0 < size <= self._stream_above:
            return
        streamer = self._streamers[flow.id] = _Streamer(self, flow, held=size is None or size < 0)
        flow.response.stream = streamer

    def response(self, flow: http.HTTPFlow) -> Any:
        # Awaitable only while an earlier addon (the web UI's intercept) holds the flow: a
        # plain call otherwise, which mitmproxy's hooks run without a task (rr/proxyhooks.py).
        if flow.intercepted:
            return self._response_resumed(flow)
        self._response(flow)
        return None

    async def _response_resumed(self, flow: http.HTTPFlow) -> None:
        await flow.wait_for_resume()
        self._response(flow)

    def _response(self, flow: http.HTTPFlow) -> None:
        streamer = self._streamers.pop(flow.id, None)
        if streamer is not None and streamer.started:
            streamer.end(None)
        else:
            self._emit(flow, streamer.sent if streamer is not None else None)

    def error(self, flow: http.HTTPFlow) -> None:
        streamer = self._streamers.pop(flow.id, None)
        if streamer is not None and not streamer.started:
            # A held body that failed: mitmproxy sent the guest the head when streaming began
            # (only the pieces were held back), so the trace has the head, then the failure,
            # as the guest got them; a failed flow without a response would replay the failure
            # at the head instead.
            streamer.start()
        if streamer is not None and streamer.started:
            assert flow.error is not None
            streamer.end({"kind": classify(flow.error.msg), "message": flow.error.msg})
        else:
            self._emit(flow)

    def _head(self, flow: http.HTTPFlow) -> str:
        """A streamed flow's record, without its body, out now; its id."""
        record = flow_to_record(flow, sent=self._upstream.get(flow.id), from_guest=self._from_guest.get(flow.id))
        if record["response"] is None and flow.response is not None:
            # failed after its head (error, above): the failure goes into the body's end
            record["response"], record["error"] = response_to_record(flow.response), None
        assert record["response"] is not None
        record["response"]["body"] = b""
        record["response"]["streamed"] = True
        self._out(flow, record)
        return record["id"]

    def _out(self, flow: http.HTTPFlow, record: FlowRecord) -> None:
        try:
            self._on_flow(self._redactor.record(record) if self._redactor else record)
        except Exception:
            # mitmproxy would swallow the exception into its (silenced) log: say outside it
            # which flow the trace lost.
            logger.exception("rr: on_flow failed for flow %s", flow.metadata.get(META_FLOW_ID, flow.id))

    def _emit(self, flow: http.HTTPFlow, sent: dict[str, Any] | None = None) -> None:
        """`sent`: the response as the guest got it, when that was before the `response` hook."""
        from_guest = self._from_guest.pop(flow.id, None)
        upstream = self._upstream.pop(flow.id, None)
        if flow.metadata.get(META_INCOMING):
            return   # a client's request to `rr serve`: recorded by rr serve, with its handling
        if flow.metadata.get(_EMITTED):
            return  # an error after the response
        flow.metadata[_EMITTED] = True
        record = flow_to_record(flow, sent=upstream, from_guest=from_guest)
        if sent is not None and record["response"] is not None:
            record["response"] = sent
        self._out(flow, record)


class _Streamer:
    """`flow.response.stream` for one response: each piece to the trace, then on to the guest.
    `held`: a body of unknown length, kept back until it passes the threshold."""

    def __init__(self, addon: RecordAddon, flow: http.HTTPFlow, held: bool) -> None:
        self._addon = addon
        self._flow = flow
        self._held: list[bytes] | None = [] if held else None
        self._held_size = 0
        self.size = 0
        self.started = False
        self.flow_id = ""
        self.sent: dict[str, Any] | None = None   # a held body that ended small: as the guest got it
        if not held:
            self.start()

    def start(self) -> None:
        """The flow's head record, out now (its pieces follow)."""
        self.started = True
        self.flow_id = self._addon._head(self._flow)

    def __call__(self, data: bytes) -> list[bytes]:
        assert self._addon._bodies is not None
        if self._held is not None:
            if data:
                self._held.append(data)
                self._held_size += len(data)
                if self._held_size <= self._addon._stream_above:
                    return []   # never an empty piece: an empty chunk would end a chunked body
            data, self._held = b"".join(self._held), None
            if not self.started and not self._held_size > self._addon._stream_above:
                # Ended within the threshold: one record, as the guest gets it now.
                response = self._flow.response
                assert response is not None
                response.raw_content = data
                self.sent = response_to_record(response)
                return [data] if data else []
            self.start()
        if not data:
            return []
        self.size += len(data)
        self._addon._bodies.write_body(self.flow_id, data)
        return [data]

    def end(self, error: dict[str, str] | None) -> None:
        flow, addon = self._flow, self._addon
        addon._from_guest.pop(flow.id, None)
        addon._upstream.pop(flow.id, None)
        if flow.metadata.get(_EMITTED):
            return
        flow.metadata[_EMITTED] = True
        flow.metadata[META_STREAMED] = self.size
        response = flow.response
        trailers = None
        if response is not None and response.trailers is not None:
            trailers = [[bytes(n), bytes(v)] for n, v in response.trailers.fields]
            if addon._redactor is not None:
                trailers = addon._redactor.headers(trailers)
        end = response.timestamp_end if response is not None and response.timestamp_end else time.time()
        if error is not None and flow.error is not None:
            end = flow.error.timestamp
        try:
            assert addon._bodies is not None
            addon._bodies.write_body_end(self.flow_id, {"size": self.size, "trailers": trailers,
                                                        "error": error, "end": end})
        except Exception:
            logger.exception("rr: the end of flow %s's body was lost", self.flow_id)


