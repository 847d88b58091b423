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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from .flowrecord import META_FLOW_ID, META_INCOMING, FlowRecord, flow_to_record, request_to_record
from .redaction import Redactor, Rules

logger = logging.getLogger(__name__)
_EMITTED = "rr.emitted"


class RecordAddon:
    """Calls `on_flow(record)` once per flow, on its response or its error, from the proxy's
    thread. The gate (proxy_addon.gate) has taken rr's own headers off the request already.

    Upstream failures reach the client as mitmproxy's own 502, which carries x-rr-error once
    `errors.install_error_response_headers()` is installed (rr.proxy does that)."""

    def __init__(self, on_flow: Callable[[FlowRecord], None], redaction: Rules | None = None) -> None:
        self._on_flow = on_flow
        # Secrets leave the record before anything else sees it (trace, HAR, .mitm).
        self._redactor = Redactor(redaction) if redaction else None
        # flow.id -> the request as the guest sent it / as it went upstream; dropped on emit
        self._from_guest: dict[str, dict[str, Any]] = {}
        self._upstream: dict[str, dict[str, Any]] = {}

    @property
    def redacted_values(self) -> set[bytes]:
        """The secrets taken out of the records so far."""
        return set(self._redactor.replaced) if self._redactor else set()

    def request(self, flow: http.HTTPFlow) -> None:
        self._from_guest[flow.id] = request_to_record(flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._upstream[flow.id] = request_to_record(flow.request)

    async def response(self, flow: http.HTTPFlow) -> None:
        await flow.wait_for_resume()
        self._emit(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._emit(flow)

    def _emit(self, flow: http.HTTPFlow) -> None:
        from_guest = self._from_guest.pop(flow.id, None)
        upstream = self._upstream.pop(flow.id, None)
        if flow.metadata.get(META_INCOMING):
            return   # a client's request to `rr serve`: recorded by rr serve, with its handling
        if flow.metadata.get(_EMITTED):
            return  # an error after the response
        flow.metadata[_EMITTED] = True
        try:
            record = flow_to_record(flow, sent=upstream, from_guest=from_guest)
            self._on_flow(self._redactor.record(record) if self._redactor else record)
        except Exception:
            # mitmproxy would swallow the exception into its (silenced) log: say outside it
            # which flow the trace lost.
            logger.exception("rr: on_flow failed for flow %s", flow.metadata.get(META_FLOW_ID, flow.id))
