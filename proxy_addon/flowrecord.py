"""The flow record: one HTTP exchange as plain trace values, and back to a mitmproxy flow.

    {
      "id": "3",                                  # the host's x-rr-flow id
      "request": {"method": "GET", "url": "https://host/p?q", "http_version": "HTTP/1.1",
                  "headers": [[b"name", b"value"], ...],   # wire order, raw bytes
                  "body": b"..."},                          # de-chunked
      "response": None | {"status": 200, "reason": "OK", "http_version": "HTTP/1.1",
                          "headers": [[b"name", b"value"], ...],
                          "body": b"...",         # de-chunked, content-encoding NOT decoded
                          "streamed": True},      # only for a streamed body: then body is b""
                                                  # and the trace holds it in pieces (rr/merge.py)
      "error": None | {"kind": "refused", "message": "..."},   # kind in errors.KINDS
      "guest_request": {...},   # only when edited in the web UI: the request as the guest sent
                                # it ("request" is the one that went upstream); replay matches this
      "timings": {"start": t, "request_end": t?, "response_start": t?, "end": t,   # unix seconds
                  "connect_start": t?, "connect_end": t?, "tls_end": t?},  # when this flow
    }                                                     # opened its upstream connection

Header names and values are bytes: HTTP allows obs-text bytes in values, and bytes are the
only representation that is lossless for every header mitmproxy can receive.
The response is the one the guest got: after any edit made while the flow was intercepted.
A record has either a response or an error: mitmproxy buffers whole responses, so when the
exchange fails the client got no part of the response, only rr's error 502. (A streamed body
that fails part-way has its error in the trace's record of how the body ended.)
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import connection, http
from mitmproxy import flow as mflow

from .errors import classify

FlowRecord = dict[str, Any]
# Where the host's flow id travels on a mitmproxy flow (survives .mitm files).
META_FLOW_ID = "rr.flow"
# Set on a request a client sent to a reverse-mode listener (`rr serve`'s clients): not the
# guest's own request, so neither gated nor recorded as one.
META_INCOMING = "rr.incoming"


def _headers_to_record(headers: http.Headers) -> list[list[bytes]]:
    return [[bytes(name), bytes(value)] for name, value in headers.fields]


def _headers_from_record(fields: list[list[bytes]]) -> http.Headers:
    return http.Headers([(bytes(name), bytes(value)) for name, value in fields])


def request_url(req: http.Request) -> str:
    """The request's absolute URL. mitmproxy's `Request.url` leaves an IPv6 host unbracketed
    (http://::1:8080/), which no URL parser reads back."""
    if ":" not in req.host:
        return req.url
    default = {"http": 80, "https": 443}.get(req.scheme)
    port = "" if req.port == default else f":{req.port}"
    return f"{req.scheme}://[{req.host}]{port}{req.path}"


def request_to_record(req: http.Request) -> dict[str, Any]:
    return {
        "method": req.method,
        "url": request_url(req),
        "http_version": req.http_version,
        "headers": _headers_to_record(req.headers),
        "body": req.raw_content or b"",
    }


def response_to_record(resp: http.Response) -> dict[str, Any]:
    return {
        "status": resp.status_code,
        "reason": resp.reason,
        "http_version": resp.http_version,
        "headers": _headers_to_record(resp.headers),
        "body": resp.raw_content or b"",
    }


def guest_request(rec: FlowRecord) -> dict[str, Any]:
    """The request as the guest sent it: what a replayed request must match."""
    return rec.get("guest_request") or rec["request"]


def flow_to_record(flow: http.HTTPFlow, sent: dict[str, Any] | None = None,
                   from_guest: dict[str, Any] | None = None) -> FlowRecord:
    """`sent`: the request as it went upstream (default: the flow's request now);
    `from_guest`: as the guest sent it, if it may have been edited since."""
    req = flow.request
    timings: dict[str, float] = {"start": req.timestamp_start}
    if req.timestamp_end is not None:
        timings["request_end"] = req.timestamp_end
    timings |= _connect_timings(flow.server_conn, req.timestamp_start)
    response = None
    error = None
    if flow.error is not None:
        error = {"kind": classify(flow.error.msg), "message": flow.error.msg}
        timings["end"] = flow.error.timestamp
    elif flow.response is not None:
        resp = flow.response
        response = response_to_record(resp)
        timings["response_start"] = resp.timestamp_start
        timings["end"] = resp.timestamp_end if resp.timestamp_end is not None else time.time()
    else:
        timings["end"] = time.time()
    request = sent if sent is not None else request_to_record(req)
    record: FlowRecord = {
        "id": str(flow.metadata.get(META_FLOW_ID, flow.id)),
        "request": request,
        "response": response,
        "error": error,
        "timings": timings,
    }
    if from_guest is not None and from_guest != request:
        record["guest_request"] = from_guest
    return record


def _connect_timings(server: connection.Server, request_start: float) -> dict[str, float]:
    """The upstream connect (and TLS) times, for the flow that opened the connection: one that
    reuses a kept-alive connection (opened before its request began) has none (HAR: -1)."""
    if server.timestamp_start is None or server.timestamp_start < request_start:
        return {}
    out = {"connect_start": server.timestamp_start}
    if server.timestamp_tcp_setup is not None:
        out["connect_end"] = server.timestamp_tcp_setup
    if server.timestamp_tls_setup is not None:
        out["tls_end"] = server.timestamp_tls_setup
    return out


def response_from_record(rec_response: dict[str, Any], start: float, end: float) -> http.Response:
    return http.Response(
        rec_response["http_version"].encode(),
        rec_response["status"],
        rec_response["reason"].encode(),
        _headers_from_record(rec_response["headers"]),
        bytes(rec_response["body"]),
        None,
        start,
        end,
    )


def record_to_flow(rec: FlowRecord) -> http.HTTPFlow:
    """Rebuild a finished flow from a record, byte for byte (for HAR, .mitm files and replay)."""
    req_rec = rec["request"]
    timings = rec["timings"]
    start, end = timings["start"], timings["end"]
    url = urlsplit(req_rec["url"])
    scheme = url.scheme or "http"
    port = url.port or (443 if scheme == "https" else 80)
    host = url.hostname or ""
    path = url.path or "/"
    if url.query:
        path += "?" + url.query

    client = connection.Client(peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=start)
    server = connection.Server(address=(host, port), timestamp_start=timings.get("connect_start"),
                               timestamp_tcp_setup=timings.get("connect_end"),
                               timestamp_tls_setup=timings.get("tls_end"))
    flow = http.HTTPFlow(client, server)
    flow.request = http.Request(
        host,
        port,
        req_rec["method"].encode(),
        scheme.encode(),
        b"",
        path.encode("utf-8", "surrogateescape"),
        req_rec["http_version"].encode(),
        _headers_from_record(req_rec["headers"]),
        bytes(req_rec["body"]),
        None,
        start,
        timings.get("request_end", start),
    )
    if rec["response"] is not None:
        flow.response = response_from_record(rec["response"], timings.get("response_start", end), end)
    if rec["error"] is not None:
        flow.error = mflow.Error(rec["error"]["message"], timestamp=end)
    flow.metadata[META_FLOW_ID] = rec["id"]
    flow.live = False
    return flow
