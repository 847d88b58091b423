"""Export recorded HTTP flows (flow records) as HAR 1.2 or as a mitmproxy `.mitm` flow file.

HAR goes through mitmproxy's own `savehar` addon on flows rebuilt from the records, with two
fix-ups: a flow that failed without a response gets a valid (empty) `content` object instead
of mitmproxy's `{}`, and a binary request body is written base64 like response bodies.
HAR shows decoded (e.g. gunzipped) response text; the `.mitm` file keeps the exact bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from mitmproxy import io

    from proxy_addon.flowrecord import record_to_flow

    with open(path, "wb") as f:
        writer = io.FlowWriter(f)
        for rec in records:
            writer.add(record_to_flow(rec))
