"""`rr inspect`: a trace made readable, streamed event by event in trace order.

Text: the header, one line per event (an HTTP exchange is one block: request and response
with their headers and bodies as text), then the outcome and the counts per interface.
`--json`: JSON Lines, one object per line: {"header": ...}, one per shown event, and a last
{"outcome": ...} line with the counts. Either way one event is in memory at a time.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import hashlib
import json
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import UsageError
from .exchange import Body, body_of, error_text, header_text
from .merge import BODY_CALL, is_flow, record_problem
from .sockview import SocketNotes
from .tap import format_event
from .trace import Event, Header, Outcome, Summary, TraceReader, open_trace, summarize, to_jsonable

TEXT_BODY_LIMIT = 4096        # characters (text) or bytes (binary) of a body shown by default
_INDENT = " " * 11            # continuation lines of an event block, under the call


@dataclass(frozen=True)
class Selection:
    """Which events to show: `calls` (globs; any may match), index range [start, stop), limit."""

    calls: Sequence[str] = ()
    start: int = 0
    stop: int | None = None
    limit: int | None = None

    def matches(self, index: int, event: Event) -> bool:
        if index < self.start or (self.stop is not None and index >= self.stop):
            return False
        if not self.calls:
            return True
        names = [event.call, event.interface]
        if _is_exchange(event):
            request = event.result["request"]
            names += [request["url"], f"{request['method']} {request['url']}"]
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.calls for name in names)

    def describe(self) -> str:
        parts = [f"--call {shlex.quote(c)}" for c in self.calls]
        if self.start or self.stop is not None:
            parts.append(f"--events {self.start or ''}:{'' if self.stop is None else self.stop}")
        return ", ".join(parts)


def _is_exchange(event: Event) -> bool:
    """An HTTP exchange with a usable flow record (a damaged one is shown as a plain event)."""
    return is_flow(event) and record_problem(event.result) is None


def parse_range(text: str) -> tuple[int, int | None]:
    """'100:200' (200 excluded), '100:', ':200' or '150' (that event alone)."""
    start_s, colon, stop_s = text.partition(":")
    try:
        start = int(start_s) if start_s.strip() else 0
        stop = (int(stop_s) if stop_s.strip() else None) if colon else start + 1
    except ValueError:
        raise UsageError(f"--events {text}: expected START:STOP, START:, :STOP or INDEX (event indexes)") from None
    if start < 0 or (stop is not None and stop < start):
        raise UsageError(f"--events {text}: indexes count from 0 and STOP is not before START")
    return start, stop


def inspect_trace(path: str, *, as_json: bool = False, show_events: bool = True,
                  selection: Selection = Selection(), body_limit: int | None = None,
                  out: TextIO | None = None) -> None:
    """Print the trace at `path`. body_limit: characters of a text body, bytes of a binary
    one, shown (None: the default, 4096 in text and everything in JSON; 0: everything)."""
    out = out or sys.stdout
    if body_limit is None:
        body_limit = 0 if as_json else TEXT_BODY_LIMIT
    view = _JsonView(out, body_limit) if as_json else _TextView(out, path, body_limit)
    with open_trace(path) as reader:
        view.header(reader.header, reader.file_version)
        shown = _Shown(selection, view if show_events else None)
        summary = summarize(shown.walk(reader))
        view.end(reader, summary, shown, selection)


class _Shown:
    """Walks the events, showing the selected ones; counts what it showed."""

    def __init__(self, selection: Selection, view: _TextView | _JsonView | None):
        self.selection = selection
        self.view = view
        self.count = 0       # events shown
        self.more = 0        # selected but past --limit

    def walk(self, reader: TraceReader) -> Iterator[Event]:
        limit = self.selection.limit
        for index, event in enumerate(reader):
            if self.view is not None and self.selection.matches(index, event):
                if limit is None or self.count < limit:
                    self.view.event(index, event)
                    self.count += 1
                else:
                    self.more += 1
            yield event


# ---- text ---------------------------------------------------------------------------------

def _upgraded(h: Header, file_version: int) -> str:
    return f", read as v{h.version}" if file_version != h.version else ""


class _TextView:
    def __init__(self, out: TextIO, path: str, body_limit: int):
        self.out = out
        self.path = path
        self.body_limit = body_limit
        self.first_event = True
        self.sockets = SocketNotes(body_limit)

    def header(self, h: Header, file_version: int) -> None:
        started = datetime.datetime.fromtimestamp(h.start_time, datetime.UTC).isoformat(timespec="seconds")
        lines = [
            f"trace      {self.path} (format {h.format} v{file_version}{_upgraded(h, file_version)}, rr {h.rr_version}, wasmtime {h.wasmtime_version})",
            f"component  {h.component.name}  {h.component.size} bytes  sha256 {h.component.sha256}",
            f"recorded   {started}",
            f"argv       {' '.join(json.dumps(a) for a in h.argv)}",
            f"env        {', '.join(f'{k}={v}' for k, v in h.env) or '(none)'}",
        ]
        lines += [f"dir        {d['host']} -> {d['guest']} ({d.get('mode', 'ro')})" for d in h.dirs]
        if h.limits:
            lines.append(f"limits     {_limits(h.limits)}")
        # Fields rr writes beside the fixed ones (the HTTP grant, ...), and a newer rr's; empty
        # ones (no grant) are left to --json.
        lines += [f"{key:<10} {_extra(key, value)}" for key, value in h.extra.items()
                  if value not in (None, "", [], {})]
        self.out.write("\n".join(lines) + "\n")

    def event(self, index: int, event: Event) -> None:
        lead = "\n" if self.first_event else ""
        self.first_event = False
        served = _served_lines(event, self.body_limit)
        if served is not None:   # a server trace's request block starts or ends: its own block
            text = f"{index:>7}  {served[0]}\n" + "".join(f"{_INDENT}{line}\n" for line in served[1:])
        elif _is_exchange(event):
            lines = _exchange_lines(event.result, self.body_limit)
            text = f"{index:>7}  {lines[0]}\n" + "".join(f"{_INDENT}{line}\n" for line in lines[1:])
        else:
            text = f"{index:>7}  {format_event(event)}\n"
            text += "".join(f"{_INDENT}{line}\n" for line in self.sockets.lines(event))
        self.out.write(lead + text)

    def end(self, reader: TraceReader, summary: Summary, shown: _Shown, selection: Selection) -> None:
        lines = [""]
        if shown.more:
            lines = [f"    ... {shown.more} more selected event{'s' * (shown.more != 1)} (--limit)", ""]
        lines.append(f"outcome    {outcome_text(reader.outcome, reader.problem)}")
        if reader.outcome is not None and reader.outcome.output:
            from .output import describe
            lines.append(f"output     {describe(reader.outcome.output)}")
        filtered = selection.describe()
        note = f"  ({shown.count} shown: {filtered})" if filtered and shown.view is not None else ""
        lines.append(f"events     {summary.events}{note}")
        for iface, count in sorted(summary.calls.items()):
            payload = summary.bytes.get(iface, 0)
            extra = f"  ({payload} bytes of data)" if payload else ""
            lines.append(f"  {iface:<36} {count:>8}{extra}")
        self.out.write("\n".join(lines) + "\n")


def outcome_text(o: Any, problem: str | None) -> str:
    """How a trace's run ended, in words (`rr inspect`, `rr diff`); `o` None: it did not say."""
    if o is None:
        return f"INCOMPLETE: {problem or 'no outcome recorded'}"
    if o.kind == "exit":
        return f"exit status {o.status}"
    if o.kind in ("trap", "memory"):
        return f"{o.kind}: {o.message}"
    if o.kind == "stopped":
        return f"stopped at event {o.event}"
    # A stop from outside: a replay stops the guest at the same host call.
    cause = {"timeout": "--timeout", "interrupted": "SIGINT", "terminated": "SIGTERM"}[o.kind]
    return f"{o.kind} ({cause}) after {o.event} guest events and {o.calls} host calls"


def _limits(limits: dict[str, Any]) -> str:
    shown = []
    if "max_memory" in limits:
        shown.append(f"--max-memory {limits['max_memory']} bytes")
    if "timeout" in limits:
        shown.append(f"--timeout {limits['timeout']:g}s")
    return ", ".join(shown)


_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """One line of a header or body, with control characters escaped (a trace must not drive
    the terminal)."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _served_lines(event: Event, body_limit: int) -> list[str] | None:
    """A server trace's request (the events after it, up to its response, are its handling)
    and response, as blocks; None for any other event."""
    from .trace.served import SERVE_REQUEST, SERVE_RESPONSE

    if event.call not in (SERVE_REQUEST, SERVE_RESPONSE) or not isinstance(event.result, dict):
        return None
    n, rec = event.args[0] if event.args else "?", event.result
    try:
        if event.call == SERVE_REQUEST:
            head = (f"== request {n}: {rec.get('method')} {_printable(str(rec.get('url')))}"
                    f"  (instance {rec.get('instance', '?')}) ==")
            return [head, *_message_lines(">", None, rec, body_limit)]
        trap = f", the handler trapped: {rec['trap']}" if rec.get("trap") else ""
        return [f"== response {n}: {rec.get('status')}{trap} ==", *_message_lines("<", None, rec, body_limit)]
    except (KeyError, TypeError, ValueError):
        return None   # a malformed record is shown as a plain event


def _exchange_lines(rec: dict[str, Any], body_limit: int) -> list[str]:
    """An HTTP exchange: a headline, the request, then the response (curl -v style)."""
    request, response, error = rec.get("request") or {}, rec.get("response"), rec.get("error")
    timings = rec.get("timings") or {}
    took = ""
    if isinstance(timings.get("start"), (int, float)) and isinstance(timings.get("end"), (int, float)):
        took = f", {max(0.0, timings['end'] - timings['start']) * 1000:.1f} ms"
    if response is not None:
        result = f"{response['status']} {response['reason']}".rstrip()
    else:
        result = f"failed: {error_text(error or {})}"
    lines = [f"HTTP {request.get('method')} {_printable(str(request.get('url')))} -> {result}  (flow {rec.get('id')}{took})"]
    lines += _message_lines(">", None, request, body_limit)
    if response is not None:
        status_line = f"{response['http_version']} {response['status']} {response['reason']}".rstrip()
        lines += _message_lines("<", status_line, response, body_limit)
    return lines


def _message_lines(mark: str, first: str | None, message: dict[str, Any], body_limit: int) -> list[str]:
    lines = [f"{mark} {first}"] if first else []
    lines += [f"{mark} {_printable(header_text(n))}: {_printable(header_text(v))}" for n, v in message["headers"]]
    if message.get("streamed") is True:
        return [*lines, mark, f"{mark} (body streamed: in the {BODY_CALL} events that follow)"]
    body = body_of(message)
    if body.wire:
        lines.append(mark)
        lines += [f"{mark} {line}".rstrip() for line in _body_lines(body, body_limit)]
    return lines


def _body_lines(body: Body, limit: int) -> list[str]:
    notes = []
    if body.coding:
        notes.append(f"({body.coding}: {len(body.wire)} bytes on the wire, {body.size} decoded)")
    elif body.not_decoded:
        notes.append(f"(content-encoding not undone: {body.not_decoded})")
    if body.text is None:
        kind = f" {body.content_type}" if body.content_type else ""
        head = body.data[:16].hex()
        return notes + [f"<{body.size} bytes{kind}, sha256 {hashlib.sha256(body.data).hexdigest()[:16]}, "
                        f"starts {head}{'...' if body.size > 16 else ''}>"]
    text, more = _cut(body.text, limit)
    lines = notes + [_printable(line.rstrip("\r")) for line in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    if more:
        lines.append(f"... {more} more characters (--body-limit 0 shows all)")
    return lines


def _cut(text: str, limit: int) -> tuple[str, int]:
    """The first `limit` characters of `text` (all when limit is 0) and how many are left out."""
    if not limit or len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


# ---- JSON Lines ---------------------------------------------------------------------------

class _JsonView:
    def __init__(self, out: TextIO, body_limit: int):
        self.out = out
        self.body_limit = body_limit
        self._request: Any = None   # a server trace: the request block the events belong to

    def _line(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def header(self, h: Header, file_version: int) -> None:
        self._line({"header": {
            "format": h.format, "version": file_version, "rr_version": h.rr_version,
            "wasmtime_version": h.wasmtime_version,
            "component": {"name": h.component.name, "size": h.component.size, "sha256": h.component.sha256},
            "argv": h.argv, "env": [list(p) for p in h.env], "dirs": h.dirs, "start_time": h.start_time,
            "limits": to_jsonable(h.limits), "extra": to_jsonable(h.extra),
        }})

    def event(self, index: int, event: Event) -> None:
        from .trace.served import SERVE_REQUEST, SERVE_RESPONSE

        obj: dict[str, Any] = {"event": index, "call": event.call, "args": to_jsonable(event.args)}
        if event.call == SERVE_REQUEST and event.args:
            self._request = to_jsonable(event.args[0])
        if self._request is not None:
            # Its request block, as the text view groups them (`jq 'select(.request == 3)'`).
            obj["request"] = self._request
        if event.call == SERVE_RESPONSE:
            self._request = None
        if _is_exchange(event):
            obj["http"] = _exchange_json(event.result, self.body_limit)
        else:
            obj["result"] = to_jsonable(event.result)
            obj["failed"] = event.failed
        self._line(obj)

    def end(self, reader: TraceReader, summary: Summary, shown: _Shown, selection: Selection) -> None:
        outcome: Outcome | None = reader.outcome
        self._line({
            "outcome": None if outcome is None else _outcome_json(outcome),
            "complete": reader.complete, "problem": reader.problem,
            "events": summary.events, "shown": shown.count, "past_limit": shown.more,
            "counts": dict(sorted(summary.calls.items())),
            "bytes": {k: v for k, v in sorted(summary.bytes.items()) if v},
        })


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    shown = {k: v for k, v in vars(outcome).items() if v is not None}
    if outcome.output:
        from .output import as_json
        shown["output"] = as_json(outcome.output)
    return shown


def _exchange_json(rec: dict[str, Any], body_limit: int) -> dict[str, Any]:
    request, response, error = rec["request"], rec.get("response"), rec.get("error")
    out: dict[str, Any] = {
        "flow": rec.get("id"), "method": request.get("method"), "url": request.get("url"),
        "request": _message_json(request, body_limit),
        "response": None if response is None else {
            "status": response["status"], "reason": response["reason"], **_message_json(response, body_limit)},
        "error": None if error is None else {**error, "text": error_text(error)},
        "timings": rec.get("timings"),
    }
    return out


def _message_json(message: dict[str, Any], body_limit: int) -> dict[str, Any]:
    return {"http_version": message["http_version"],
            "headers": [[header_text(n), header_text(v)] for n, v in message["headers"]],
            # A streamed body is in the BODY_CALL events that follow, not here.
            "body": {"streamed": True} if message.get("streamed") is True else _body_json(body_of(message), body_limit)}


def _body_json(body: Body, limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {"size": body.size}
    if body.content_type:
        out["content_type"] = body.content_type
    if body.coding:
        out |= {"content_encoding": body.coding, "wire_size": len(body.wire)}
    elif body.not_decoded:
        out["not_decoded"] = body.not_decoded
    if body.text is not None:
        out["text"], more = _cut(body.text, limit)
    else:
        data = body.data[:limit] if limit else body.data
        out["sha256"] = hashlib.sha256(body.data).hexdigest()
        out["base64"] = base64.b64encode(data).decode()
        more = body.size - len(data)
    if more:
        out["truncated"] = True
    return out


def _extra(key: str, value: Any) -> str:
    """A header field beside the fixed ones, readable where rr knows it, else as JSON."""
    from . import redact
    if key == redact.HEADER_FIELD:
        try:
            rules = redact.recorded_rules_of(value)
        except redact.BadRedaction:
            pass
        else:
            return redact.describe(rules)
    return json.dumps(to_jsonable(value))
