"""Comparing a live request with a recorded one, and describing the difference readably."""

from __future__ import annotations

import hashlib
from typing import Any

# Per-connection headers (RFC 9110 7.6.1) can differ between runs without the guest's
# request being any different; x-rr-* are rr's own.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
     b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)

Request = dict[str, Any]  # the "request" part of a flow record
Difference = dict[str, Any]  # {"field": "method"|"url"|"header"|"body", "name"?, "recorded", "replayed"}


def comparable_headers(fields: list[list[bytes]]) -> list[tuple[bytes, bytes]]:
    named_by_connection = {
        token.strip().lower()
        for name, value in fields
        if bytes(name).lower() == b"connection"
        for token in bytes(value).split(b",")
    }
    return [
        (bytes(name).lower(), bytes(value))
        for name, value in fields
        if bytes(name).lower() not in HOP_BY_HOP
        and bytes(name).lower() not in named_by_connection
        and not bytes(name).lower().startswith(b"x-rr-")
    ]


def differences(recorded: Request, replayed: Request) -> list[Difference]:
    """Empty when the requests match (method, URL, end-to-end headers, body)."""
    diffs: list[Difference] = []
    for field in ("method", "url"):
        if recorded[field] != replayed[field]:
            diffs.append({"field": field, "recorded": recorded[field], "replayed": replayed[field]})
    rec_headers = comparable_headers(recorded["headers"])
    new_headers = comparable_headers(replayed["headers"])
    if rec_headers != new_headers:
        names = list(dict.fromkeys(name for name, _ in rec_headers + new_headers))
        for name in names:
            rec_values = [v for n, v in rec_headers if n == name]
            new_values = [v for n, v in new_headers if n == name]
            if rec_values != new_values:
                diffs.append({"field": "header", "name": name, "recorded": rec_values, "replayed": new_values})
        if not any(d["field"] == "header" for d in diffs):
            diffs.append({"field": "header", "name": b"(order)", "recorded": [n for n, _ in rec_headers],
                          "replayed": [n for n, _ in new_headers]})
    if bytes(recorded["body"]) != bytes(replayed["body"]):
        diffs.append({"field": "body", "recorded": bytes(recorded["body"]), "replayed": bytes(replayed["body"])})
    return diffs


def describe_body(body: bytes, limit: int = 120) -> str:
    """Printable text shown as text (shortened), anything else as size + sha256 prefix."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        shown = text if len(text) <= limit else text[:limit] + "..."
        return repr(shown)
    return f"{len(body)} bytes sha256:{hashlib.sha256(body).hexdigest()[:12]}"


def _show_values(values: list[bytes]) -> str:
    if not values:
        return "(absent)"
    return ", ".join(repr(v.decode("latin-1")) for v in values)


def format_mismatch(mismatch: dict[str, Any]) -> list[str]:
    """A few readable lines for one entry of ReplayAddon.mismatches."""
    req = mismatch["request"]
    head = f"flow {mismatch['id']}: {req['method']} {req['url']}"
    if mismatch["closest_id"] is None:
        return [f"{head}: no recorded request with this id or this method and URL"]
    lines = [f"{head}: differs from recorded flow {mismatch['closest_id']}"]
    for d in mismatch["differences"]:
        if d["field"] == "header":
            name = d["name"].decode("latin-1")
            lines.append(f"  header {name}: recorded {_show_values(d['recorded'])}, now {_show_values(d['replayed'])}")
        elif d["field"] == "body":
            lines.append(f"  body: recorded {describe_body(d['recorded'])}, now {describe_body(d['replayed'])}")
        else:
            lines.append(f"  {d['field']}: recorded {d['recorded']}, now {d['replayed']}")
    return lines

