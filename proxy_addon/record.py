"""Record mode: forward every request upstream and hand each finished exchange to a sink."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from .errors import HEADER_FLOW
from .flowrecord import META_FLOW_ID, FlowRecord, flow_to_record

logger = logging.getLogger(__name__)
_EMITTED = "rr.emitted"


class RecordAddon:
    """Strips x-rr-flow before the request goes upstream and calls `on_flow(record)` once per
    flow, on its response or its error, from the proxy's thread.

    Upstream failures reach the client as mitmproxy's own 502, which carries x-rr-error once
    `errors.install_error_response_headers()` is installed (rr.proxy does that)."""

    def __init__(self, on_flow: Callable[[FlowRecord], None]) -> None:
        self._on_flow = on_flow

    def request(self, flow: http.HTTPFlow) -> None:
        flow_id = flow.request.headers.pop(HEADER_FLOW, None)
        if flow_id is not None:
            flow.metadata[META_FLOW_ID] = flow_id

    def response(self, flow: http.HTTPFlow) -> None:
        self._emit(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._emit(flow)

    def _emit(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_EMITTED):
            return
        flow.metadata[_EMITTED] = True
        try:
            self._on_flow(flow_to_record(flow))
        except Exception:
            # mitmproxy would swallow the exception into its (silenced) log: say outside it
            # which flow the trace lost.
            logger.exception("rr: on_flow failed for flow %s", flow.metadata.get(META_FLOW_ID, flow.id))
