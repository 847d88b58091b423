"""Export recorded HTTP flows (flow records) as HAR 1.2 or as a mitmproxy `.mitm` flow file.

A HAR entry starts as mitmproxy's own (`savehar`'s `flow_entry`, on the flow rebuilt from
the record) and is then corrected where savehar is wrong or lossy:
  - `content.size` is the decoded size (savehar writes the wire size);
  - a body is written as text only when mitmproxy's HAR reader turns that text back into
    the same bytes and a viewer decodes it to the same text; otherwise base64;
  - a request body is written for every method, as the text mitmproxy's reader encodes back
    to the recorded bytes (postData has no base64 in HAR 1.2: binary bodies appear as their
    latin-1 or surrogate-escaped characters);
  - a failed exchange (refused, DNS, TLS, timeout, ...) is a response with status 0, a valid
    empty `content` and `_error` naming the failure, as Chrome and Firefox write them;
  - timings come from the record: `connect` (which includes `ssl`, as HAR 1.2 says) for the
    exchange that opened its upstream connection, -1 for one that reused it.
HAR shows decoded (e.g. gunzipped) bodies; the `.mitm` file keeps the exact bytes.

From a trace: each HTTP exchange is one event of merge.FLOW_CALL whose result is the flow
record. The trace holds them in the order they finished; both exports list them in the order
the guest made its requests (the host numbers flow ids in call order). They read the trace
twice, holding one flow (and the ones finished ahead of their turn), and write through
rr/outfile.py: the output appears complete or not at all.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import EXIT_USAGE
from .exchange import error_text
# Flow events, their validation and their streaming read are rr/merge.py's: one contract
# for the replay proxy and for export.
from .merge import iter_flow_records
from .outfile import OutputError, OutputExistsError, write_atomically
from .trace import open_trace
from .trace.served import exchange_order

if TYPE_CHECKING:
    from proxy_addon.flowrecord import FlowRecord

__all__ = ["Exported", "OutputError", "OutputExistsError", "export_har", "export_mitm", "har_entry",
           "records_to_har", "records_to_mitm"]


def records_to_har(records: Iterable["FlowRecord"], comment: str | None = None) -> dict[str, Any]:
    """A whole HAR document for `records`, in the order given."""
    log: dict[str, Any] = {"version": "1.2", "creator": _CREATOR, "pages": [],
                           "entries": [har_entry(rec) for rec in records]}
    if comment:
        log["comment"] = comment
    return {"log": log}


_CREATOR = {"name": "rr", "version": __version__, "comment": "entries built with mitmproxy's savehar"}


def har_entry(rec: "FlowRecord") -> dict[str, Any]:
    from mitmproxy.addons.savehar import SaveHar

    from proxy_addon.flowrecord import record_to_flow

    flow = record_to_flow(rec)
    entry = SaveHar().flow_entry(flow, set())
    entry["comment"] = f"rr flow {rec['id']}"
    if rec.get("incoming"):   # a request a client sent to `rr serve`, answered by the handler
        entry["comment"] = f"rr incoming request {rec['id'].partition('.')[2]}"
        entry["_rrDirection"] = "incoming"
    elif "." in rec["id"]:    # the handler's own request while serving one (id "<n>.<k>")
        entry["_rrDirection"] = "outgoing"
    request = entry["request"]
    request["url"] = rec["request"]["url"]  # savehar's leaves an IPv6 host unbracketed
    _text_headers(request["headers"], rec["request"]["headers"])
    body = bytes(rec["request"]["body"])
    if body:
        request["postData"] = _post_data(flow, body, request.get("postData"))
    else:
        request.pop("postData", None)
    if flow.response is not None:
        response = entry["response"]
        _text_headers(response["headers"], rec["response"]["headers"])
        response["content"] = _content(flow.response, response["content"])
    else:
        entry["response"] = _failed_response(rec)
    entry["timings"] = _timings(rec)
    entry["time"] = sum(v for k, v in entry["timings"].items() if k != "ssl" and v > 0)
    return entry


def _content(response: Any, content: dict[str, Any]) -> dict[str, Any]:
    from mitmproxy.net.http.headers import infer_content_encoding
    from mitmproxy.utils.strutils import is_mostly_bin

    raw = response.raw_content or b""
    try:
        data = response.content or b""
    except ValueError:  # unknown or broken content-encoding: the wire bytes
        data = raw
    out = {"size": len(data), "compression": len(data) - len(raw), "mimeType": content.get("mimeType", "")}
    content_type = response.headers.get("content-type", "")
    # mitmproxy's HAR reader encodes `text` with the charset it infers from the content type
    # alone (latin-1 for text/plain without one); a viewer also looks at the bytes. Text only
    # when both give the same characters, and they are not binary.
    text = _decoded(data, infer_content_encoding(content_type))
    if text is not None and not is_mostly_bin(data) and text == _decoded(data, _viewer_charset(content_type, data)):
        out["text"] = text
    else:
        out["text"] = base64.b64encode(data).decode()
        out["encoding"] = "base64"
    return out


def _viewer_charset(content_type: str, data: bytes) -> str:
    from mitmproxy.net.http.headers import infer_content_encoding

    inferred = infer_content_encoding(content_type, data)
    declared = "charset=" in content_type.lower()
    return inferred if declared or inferred.lower() not in ("latin-1", "latin1", "iso-8859-1") else "utf-8"


def _decoded(data: bytes, charset: str) -> str | None:
    try:
        text = data.decode(charset)
        return text if text.encode(charset) == data else None
    except (UnicodeError, LookupError):
        return None


def _post_data(flow: Any, body: bytes, post: dict[str, Any] | None) -> dict[str, Any]:
    """The request body as mitmproxy's HAR reader reads it back byte for byte: the reader sets
    `text` through Message.set_text (the content type's charset, else latin-1; on failure
    UTF-8 with surrogateescape)."""
    from mitmproxy.net.http.headers import infer_content_encoding

    content_type = flow.request.headers.get("content-type", "")
    text = _decoded(body, infer_content_encoding(content_type))
    if text is None:
        text = body.decode("utf-8", "surrogateescape")
    out = dict(post or {"params": []})
    out["mimeType"] = content_type
    out["text"] = text
    return out


def _text_headers(har_headers: list[dict[str, str]], raw: list[list[bytes]]) -> None:
    """savehar writes header bytes that are not UTF-8 as lone surrogates, which mitmproxy's
    reader cannot encode again: such a header is written as latin-1 text instead."""
    if len(har_headers) != len(raw):
        return
    for header, (name, value) in zip(har_headers, raw, strict=True):
        for key, original in (("name", name), ("value", value)):
            try:
                header[key].encode("utf-8")
            except UnicodeEncodeError:
                header[key] = bytes(original).decode("latin-1")


def _failed_response(rec: "FlowRecord") -> dict[str, Any]:
    error = rec["error"]
    return {
        "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
        "content": {"size": 0, "mimeType": "", "text": ""},
        "redirectURL": "", "headersSize": -1, "bodySize": -1,
        "_transferSize": 0,
        "_error": error_text(error),
        "_rrErrorKind": error["kind"],
    }


def _timings(rec: "FlowRecord") -> dict[str, float]:
    """HAR timings in ms from the record's timestamps; -1 where a phase did not apply or is
    not known. DNS is part of connect (mitmproxy does not time it apart); a failed exchange
    has no connect time (mitmproxy keeps no timestamps of a connection that failed)."""
    t = rec["timings"]
    start, end = t["start"], t["end"]
    request_end = t.get("request_end", start)
    response_start = t.get("response_start", end)

    def ms(a: float, b: float) -> float:
        return round(max(0.0, b - a) * 1000, 3)

    connect = ssl = -1.0
    if "connect_start" in t:
        tcp, tls = t.get("connect_end"), t.get("tls_end")
        https = rec["request"]["url"].startswith("https:")
        ready = tls if https else tcp
        if ready is not None:
            connect = ms(t["connect_start"], ready)
            if https and tcp is not None:
                ssl = ms(tcp, ready)
    send = ms(start, request_end)
    wait = max(0.0, round(ms(request_end, response_start) - max(connect, 0.0), 3))
    receive = ms(response_start, end)
    return {"blocked": -1.0, "dns": -1.0, "connect": connect, "ssl": ssl, "send": send,
            "wait": wait, "receive": receive}


def records_to_mitm(records: Iterable["FlowRecord"], path: Path) -> None:
    """A flow file that `mitmweb -r` / `mitmdump -nr` read; flows keep their rr id in metadata."""
    write_atomically(Path(path), lambda f: _write_mitm(records, f), overwrite=True)


def _write_mitm(records: Iterable["FlowRecord"], f: IO[bytes]) -> Any:
    from mitmproxy import io

    from proxy_addon.flowrecord import record_to_flow

    from proxy_addon.flowrecord import META_INCOMING

    writer = io.FlowWriter(f)
    for rec in records:
        flow = record_to_flow(rec)
        if rec.get("incoming"):
            flow.metadata[META_INCOMING] = True
            flow.comment = f"rr incoming request {rec['id'].partition('.')[2]}"
        writer.add(flow)
    return writer


def _write_socket_flows(trace_path: str | os.PathLike[str], writer: Any) -> int:
    """The trace's TCP, UDP and lookup exchanges (rr/sockflows.py) after its HTTP ones."""
    from .sockflows import socket_flows

    n = 0
    with open_trace(trace_path) as reader:
        for flow in socket_flows(reader, reader.header.start_time):
            writer.add(flow)
            n += 1
    return n


# ---- from a trace -------------------------------------------------------------------------

@dataclass(frozen=True)
class Exported:
    path: Path
    kind: str                 # "HAR" or "flow file"
    flows: int                # HTTP exchanges written
    failed: int               # of them, exchanges that got no response (record `error` set)
    incomplete: str | None    # the trace's own problem when the recording was cut short
    sockets: int = 0          # flow file only: TCP connections, UDP sockets and name lookups written

    def summary(self) -> str:
        """One line for the CLI."""
        socks = f"{self.sockets} socket exchange{'s' * (self.sockets != 1)} (TCP, UDP, lookups)"
        if self.flows:
            failed = f" ({self.failed} failed)" if self.failed else ""
            also = f" and {socks}" if self.sockets else ""
            line = f"wrote {self.flows} HTTP exchange{'s' * (self.flows != 1)}{failed}{also} to {self.path}"
        elif self.sockets:
            line = f"wrote {socks} to {self.path}"
        else:
            line = f"the trace holds no HTTP exchanges: wrote an empty {self.kind} to {self.path}"
        if self.incomplete:
            line += f" (the trace is incomplete: {self.incomplete})"
        return line


class _Watched:
    """A trace reader whose events an IncomingExchanges also sees (server traces)."""

    def __init__(self, reader: Any, incoming: Any):
        self.path = reader.path
        self._reader = reader
        self._incoming = incoming

    def __iter__(self) -> Iterator[Any]:
        for event in self._reader:
            self._incoming.see(event)
            yield event


def _exchange_records(reader: Any) -> Iterator["FlowRecord"]:
    """The trace's flow records and, in a server trace (rr serve -t), each request's incoming
    exchange as a record too (id "in.<n>", `incoming` set)."""
    from .trace.served import IncomingExchanges

    incoming = IncomingExchanges()
    for rec in iter_flow_records(_Watched(reader, incoming)):  # type: ignore[arg-type]
        yield from _taken(incoming.done)
        yield rec
    yield from _taken(incoming.done)


def _taken(records: list["FlowRecord"]) -> Iterator["FlowRecord"]:
    while records:
        yield records.pop(0)


class _FlowsInRequestOrder:
    """The trace's flow records in request order. The first pass (at construction) checks every
    record and learns the order, so a bad trace fails before any output exists."""

    def __init__(self, trace_path: str | os.PathLike[str]):
        self.path = trace_path
        with open_trace(trace_path) as reader:
            ids, self.failed = [], 0
            for rec in _exchange_records(reader):
                ids.append(rec["id"])
                self.failed += rec["error"] is not None
            self.problem = reader.problem
        self.order = sorted(ids, key=exchange_order)

    @property
    def count(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator["FlowRecord"]:
        wanted = iter(self.order)
        next_id = next(wanted, None)
        early: dict[str, FlowRecord] = {}   # finished before a request made earlier
        with open_trace(self.path) as reader:
            for rec in _exchange_records(reader):
                early[rec["id"]] = rec
                while next_id is not None and next_id in early:
                    yield early.pop(next_id)
                    next_id = next(wanted, None)
        if next_id is not None:
            raise OutputError(f"{self.path}: the trace changed while it was exported")


def export_har(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
               overwrite: bool = False) -> Exported:
    """Write the trace's HTTP exchanges as HAR 1.2, one entry at a time."""

    def write(flows: _FlowsInRequestOrder, f: IO[bytes]) -> None:
        notes = []
        if not flows.count:
            notes.append("the trace holds no HTTP exchanges")
        if flows.problem:
            notes.append(f"the trace is incomplete ({flows.problem}): exchanges up to where it ends")
        head = records_to_har([], "rr: " + "; ".join(notes) if notes else None)
        # The document without entries, split where they go: entries are written one by one.
        before, after = json.dumps(head, indent=2).split('"entries": []')
        f.write(f'{before}"entries": ['.encode())
        for i, rec in enumerate(flows):
            entry = json.dumps(har_entry(rec), indent=2).replace("\n", "\n      ")
            f.write(f'{"," if i else ""}\n      {entry}'.encode())
        f.write(f'{chr(10) + "    " if flows.count else ""}]{after}\n'.encode())

    return _export(trace_path, Path(out_path), overwrite, "HAR", write)


def export_mitm(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                overwrite: bool = False) -> Exported:
    """Write the trace's HTTP exchanges, then its socket exchanges, as a mitmproxy flow file."""
    sockets = [0]

    def write(flows: _FlowsInRequestOrder, f: IO[bytes]) -> None:
        sockets[0] = _write_socket_flows(trace_path, _write_mitm(flows, f))

    return dataclasses.replace(_export(trace_path, Path(out_path), overwrite, "flow file", write), sockets=sockets[0])


def _export(trace_path: str | os.PathLike[str], out: Path, overwrite: bool, kind: str,
            write: Callable[[_FlowsInRequestOrder, IO[bytes]], None]) -> Exported:
    # The trace is read (header and every flow record checked) before the output exists: a
    # missing or bad file raises FileNotFoundError / TraceError and leaves nothing behind.
    flows = _FlowsInRequestOrder(trace_path)
    if out.exists() and os.path.samefile(trace_path, out):
        raise OutputError(f"{out}: is the trace being exported; choose another output file", EXIT_USAGE)
    write_atomically(out, lambda f: write(flows, f), overwrite)
    return Exported(out, kind, flows.count, flows.failed, flows.problem)
