"""Replay mode: answer every request from recorded flow records, never connecting upstream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from .errors import HEADER_MISMATCH, error_response
from .flowrecord import META_FLOW_ID, FlowRecord, guest_request, request_to_record, response_from_record
from .matching import differences, format_mismatch
from .redaction import Redactor, Rules
from .streamreplay import RecordedBody, serve_at

NO_UPSTREAM = "rr replay: upstream connections are disabled"
_STREAMED = "rr.streamed"


class BodySource(Protocol):
    """A streamed response's recorded body, piece by piece (rr/merge.py FlowIndex)."""

    def body_chunk(self, flow_id: str) -> bytes | None: ...
    def body_end(self, flow_id: str) -> dict[str, Any] | None: ...
    def drop_body(self, flow_id: str) -> None: ...


class ReplayAddon:
    """Matches a request to a record by its x-rr-flow id (the gate put it in the metadata),
    then checks method, URL, end-to-end headers and body against the request as the guest
    sent it while recording. A recorded response is answered as recorded, a recorded error
    as the same x-rr-error 502 that record mode produced. Anything else gets a 502 with
    x-rr-mismatch: 1 and is described in `mismatches`. A streamed response (`streamed` in its
    record) is served from `bodies` as the guest reads it (proxy_addon/streamreplay.py).

    Run it with connection_strategy=lazy: then the `server_connect` hook below is the only way
    a connection could still be opened, and it refuses."""

    def __init__(self, records: Iterable[FlowRecord] = (), redaction: Rules | None = None,
                 fetch: Callable[[str | None], Iterable[FlowRecord]] | None = None,
                 bodies: BodySource | None = None) -> None:
        """`records` up front, and/or `fetch(flow_id)`: the records known once the one for
        `flow_id` has been read (None: all of them), for records read as they are needed."""
        # The recording's redaction rules: the live request loses the same secrets before it
        # is compared with the (redacted) recorded one.
        self._redactor = Redactor(redaction) if redaction else None
        self._records: dict[str, FlowRecord] = {}
        for rec in records:
            if rec["id"] in self._records:
                raise ValueError(f"duplicate flow id in records: {rec['id']!r}")
            self._records[rec["id"]] = rec
        self._fetch = fetch
        self._bodies = bodies
        self._fetched_all = fetch is None
        self._used: set[str] = set()
        self._lock = threading.Lock()  # the proxy thread writes, the host's thread reads
        self._mismatches: list[dict[str, Any]] = []

    @property
    def mismatches(self) -> list[dict[str, Any]]:
        """One dict per mismatched request: id, request (as in a record), closest_id, differences."""
        with self._lock:
            return list(self._mismatches)

    def unused(self) -> list[FlowRecord]:
        """Records no request was answered from, in recorded order."""
        with self._lock:
            self._known(None)
            return [rec for flow_id, rec in self._records.items() if flow_id not in self._used]

    def format_diff(self) -> str:
        return "\n".join(line for m in self.mismatches for line in format_mismatch(m))

    def request(self, flow: http.HTTPFlow) -> None:
        flow_id = flow.metadata.get(META_FLOW_ID)   # the gate took it off the request
        live = request_to_record(flow.request)
        if self._redactor is not None:
            live = self._redactor.request(live)
        with self._lock:
            rec, mismatch = self._match(flow_id, live)
            if rec is not None:
                self._used.add(rec["id"])
            else:
                self._mismatches.append(mismatch)
        now = time.time()
        if rec is None:
            flow.response = http.Response.make(
                502, "\n".join(format_mismatch(mismatch)) + "\n",
                {"Content-Type": "text/plain; charset=utf-8", HEADER_MISMATCH: "1", "Connection": "close"},
            )
        elif rec["error"] is not None:
            flow.response = error_response(502, rec["error"]["message"], rec["error"]["kind"])
        elif rec["response"].get("streamed") and self._bodies is not None:
            self._stream(flow, rec)
        else:
            flow.response = response_from_record(rec["response"], now, now)
        flow.is_replay = "response"

    def _stream(self, flow: http.HTTPFlow, rec: FlowRecord) -> None:
        """Send the flow to its recorded upstream; what the guest sent goes nowhere."""
        bodies, flow_id = self._bodies, rec["id"]
        assert bodies is not None
        body = RecordedBody(rec["response"], lambda: bodies.body_chunk(flow_id), lambda: bodies.body_end(flow_id),
                            lambda: bodies.drop_body(flow_id))
        host, port = serve_at(body)
        flow.request.data.host, flow.request.data.port, flow.request.data.scheme = host, port, b"http"
        flow.metadata[_STREAMED] = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_STREAMED) and flow.response is not None:
            flow.response.stream = True   # passed on as it is read, never held whole

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        data.server.error = NO_UPSTREAM

    def _known(self, flow_id: str | None) -> None:
        """Take in the records fetched up to `flow_id`'s (None: all)."""
        if self._fetch is None or self._fetched_all or (flow_id is not None and flow_id in self._records):
            return
        for rec in self._fetch(flow_id):
            self._records.setdefault(rec["id"], rec)
        if flow_id is None or flow_id not in self._records:
            self._fetched_all = True   # the fetch went to the end

    def _match(self, flow_id: str | None, live: dict[str, Any]) -> tuple[FlowRecord | None, dict[str, Any]]:
        self._known(flow_id)
        if flow_id is None or flow_id not in self._records:
            self._known(None)   # no such id: the closest record may be anywhere
        if flow_id is not None and flow_id in self._records:
            closest = self._records[flow_id]
        elif flow_id is None:
            # No id (an admitted client that does not number its requests): first unused exact match.
            exact = (r for i, r in self._records.items() if i not in self._used and not differences(guest_request(r), live))
            if (found := next(exact, None)) is not None:
                return found, {}
            closest = self._same_method_url(live)
        else:
            closest = self._same_method_url(live)
        diffs = differences(guest_request(closest), live) if closest is not None else []
        if closest is not None and closest["id"] == flow_id and not diffs:
            return closest, {}
        if closest is not None and closest["id"] != flow_id:
            diffs.insert(0, {"field": "id", "recorded": closest["id"], "replayed": flow_id})
        return None, {
            "id": flow_id,
            "request": live,
            "closest_id": None if closest is None else closest["id"],
            "differences": diffs,
        }

    def _same_method_url(self, live: dict[str, Any]) -> FlowRecord | None:
        candidates = [r for r in self._records.values()
                      if guest_request(r)["method"] == live["method"] and guest_request(r)["url"] == live["url"]]
        unused = [r for r in candidates if r["id"] not in self._used]
        return (unused or candidates or [None])[0]
