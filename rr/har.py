"""Export recorded HTTP flows (flow records) as HAR 1.2 or as a mitmproxy `.mitm` flow file.

HAR goes through mitmproxy's own `savehar` addon on flows rebuilt from the records, with two
fix-ups: a flow that failed without a response gets a valid (empty) `content` object instead
of mitmproxy's `{}`, and a binary request body is written base64 like response bodies.
HAR shows decoded (e.g. gunzipped) response text; the `.mitm` file keeps the exact bytes.

From a trace: each HTTP exchange is one event of merge.FLOW_CALL whose result is the flow record
(`export_har` / `export_mitm` below). Neither ever replaces an existing file unless told to.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

# Flow events, their validation and their streaming read are rr/merge.py's: one contract
# for the replay proxy and for export.
from .merge import iter_flow_records
from .trace import TraceReader, open_trace

if TYPE_CHECKING:
    from proxy_addon.flowrecord import FlowRecord



def records_to_har(records: Iterable["FlowRecord"]) -> dict[str, Any]:
    from mitmproxy.addons.savehar import SaveHar

    from proxy_addon.flowrecord import record_to_flow

    records = list(records)
    flows = [record_to_flow(rec) for rec in records]
    har = SaveHar().make_har(flows)
    har["log"]["creator"]["comment"] = "rr (via mitmproxy savehar)"
    for rec, flow, entry in zip(records, flows, har["log"]["entries"], strict=True):
        entry["comment"] = f"rr flow {rec['id']}"
        entry["request"]["url"] = rec["request"]["url"]  # savehar's leaves an IPv6 host unbracketed
        response = entry["response"]
        if not response["content"]:
            response["content"] = {"size": 0, "mimeType": "", "text": ""}
        elif flow.response is not None:
            try:
                content = flow.response.content or b""  # HAR holds the decoded body
            except ValueError:  # unknown or broken content-encoding: keep the wire bytes
                content = flow.response.raw_content or b""
            if not _is_utf8(content):
                # savehar base64-encodes only "mostly binary" bodies and writes the rest as
                # lossy text; any body that is not UTF-8 goes base64 here.
                response["content"]["text"] = base64.b64encode(content).decode()
                response["content"]["encoding"] = "base64"
        if rec["error"] is not None:
            response["_error"] = rec["error"]["message"]
            response["_rrErrorKind"] = rec["error"]["kind"]
        body = bytes(rec["request"]["body"])
        if body:
            entry["request"]["postData"] = _post_data(body, entry["request"].get("postData"), rec)
    return har


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _post_data(body: bytes, post: dict[str, Any] | None, rec: "FlowRecord") -> dict[str, Any]:
    """savehar writes postData for POST/PUT/PATCH only, and binary bodies as lossy text."""
    if post is None:
        content_type = next((bytes(v).decode("latin-1") for n, v in rec["request"]["headers"]
                             if bytes(n).lower() == b"content-type"), "")
        post = {"mimeType": content_type, "text": body.decode("utf-8", "replace"), "params": []}
    if not _is_utf8(body):
        # HAR 1.2 defines `encoding` only for response content; tools use the same convention
        # here (mitmproxy's HAR reader ignores it).
        post["text"] = base64.b64encode(body).decode()
        post["encoding"] = "base64"
    return post


def records_to_mitm(records: Iterable["FlowRecord"], path: Path) -> None:
    """A flow file that `mitmweb -r` / `mitmdump -nr` read; flows keep their rr id in metadata."""
    with open(path, "wb") as f:
        _write_mitm(records, f)


def _write_mitm(records: Iterable["FlowRecord"], f: IO[bytes]) -> None:
    from mitmproxy import io

    from proxy_addon.flowrecord import record_to_flow

    writer = io.FlowWriter(f)
    for rec in records:
        writer.add(record_to_flow(rec))


# ---- from a trace -------------------------------------------------------------------------

class OutputError(Exception):
    """The export's output file cannot be written (missing directory, permissions, ...)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output file exists and overwrite was not asked for."""


@dataclass(frozen=True)
class Exported:
    path: Path
    kind: str                 # "HAR" or "flow file"
    flows: int                # HTTP exchanges written
    failed: int               # of them, exchanges that got no response (record `error` set)
    incomplete: str | None    # the trace's own problem when the recording was cut short

    def summary(self) -> str:
        """One line for the CLI."""
        if self.flows:
            failed = f" ({self.failed} failed)" if self.failed else ""
            line = f"wrote {self.flows} HTTP exchange{'s' * (self.flows != 1)}{failed} to {self.path}"
        else:
            line = f"the trace holds no HTTP exchanges: wrote an empty {self.kind} to {self.path}"
        if self.incomplete:
            line += f" (the trace is incomplete: {self.incomplete})"
        return line


def _request_order(record: "FlowRecord") -> tuple[int, str]:
    flow_id = str(record.get("id", ""))
    return (int(flow_id), "") if flow_id.isdigit() else (1 << 62, flow_id)


def export_har(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
               overwrite: bool = False) -> Exported:
    """Write the trace's HTTP exchanges as HAR 1.2 (the whole HAR is built in memory)."""

    def write(tally: _Tally, f: IO[bytes]) -> None:
        # The trace holds exchanges in the order they finished; a HAR lists them in the
        # order the guest made them (flow ids count the guest's requests).
        har = records_to_har(sorted(tally, key=_request_order))
        notes = []
        if not tally.flows:
            notes.append("the trace holds no HTTP exchanges")
        if tally.reader.problem:
            notes.append(f"the trace is incomplete ({tally.reader.problem}): exchanges up to where it ends")
        if notes:
            har["log"]["comment"] = "rr: " + "; ".join(notes)
        f.write(json.dumps(har, indent=2).encode())

    return _export(trace_path, Path(out_path), overwrite, "HAR", write)


def export_mitm(trace_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                overwrite: bool = False) -> Exported:
    """Write the trace's HTTP exchanges as a mitmproxy flow file, streaming: one flow in memory."""
    return _export(trace_path, Path(out_path), overwrite, "flow file", _write_mitm)


class _Tally:
    """The trace's flow records, counted as the writer consumes them."""

    def __init__(self, reader: TraceReader) -> None:
        self.reader = reader
        self.flows = 0
        self.failed = 0

    def __iter__(self) -> Iterator["FlowRecord"]:
        for rec in iter_flow_records(self.reader):
            self.flows += 1
            self.failed += rec["error"] is not None
            yield rec


def _export(trace_path: str | os.PathLike[str], out: Path, overwrite: bool, kind: str,
            write: Callable[[_Tally, IO[bytes]], None]) -> Exported:
    # The trace is opened (header checked) before the output exists: a missing or foreign
    # file raises FileNotFoundError / TraceError and leaves nothing behind.
    with open_trace(trace_path) as reader:
        if out.exists() and os.path.samefile(trace_path, out):
            raise OutputError(f"{out}: is the trace being exported; choose another output file")
        tally = _Tally(reader)
        if overwrite:
            _write_replacing(out, lambda f: write(tally, f))
        else:
            _write_new(out, lambda f: write(tally, f))
    return Exported(out, kind, tally.flows, tally.failed, reader.problem)


def _write_new(out: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create `out` atomically ("x": fails if it exists); remove it again if writing fails."""
    try:
        f = open(out, "xb")
    except FileExistsError:
        raise OutputExistsError(f"{out}: refusing to overwrite an existing file") from None
    except OSError as e:
        raise OutputError(f"{out}: cannot create: {e.strerror}") from None
    try:
        with f:
            write(f)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _write_replacing(out: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a temporary file beside `out`, then rename it over `out`: a failed export (e.g. a
    corrupt trace) leaves the existing file as it was."""
    tmp = out.with_name(f".{out.name}.rr-{os.getpid()}.tmp")
    try:
        f = open(tmp, "wb")
    except OSError as e:
        raise OutputError(f"{out}: cannot create: {e.strerror}") from None
    try:
        with f:
            write(f)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


