"""`rr diff A B`: two traces side by side, streamed (one event of each in memory at a time).

What "equal" means: the guest got the same run. The header fields that shape the run are
compared (component sha256 and size, argv, env, the guest side of each directory grant, the
limits, and every extra field: the HTTP grant and whatever a newer rr adds), then the events
in order (call, arguments, result, failed), the guest's own events and the HTTP exchanges each
as a sequence of its own (a replay serves exchanges by request, wherever they sit among the
calls; an exchange is compared without its timings, which the guest never sees), then the
outcome and whether the trace is complete. What only
says how and when the trace was written is shown when it differs but never makes two traces
differ: the rr and wasmtime versions, the format version, the recording date, the
component's file name (same sha256) and the host side of a directory grant. So two recordings
of a deterministic guest are equal, and so are a trace and its `rr convert` copy.

The report is small whatever the traces' sizes: the header differences, the first differing
event with `context` events around it (an HTTP exchange as a request/response diff), how many
pairs of events differ, the counts per interface and the outcomes.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from .exchange import Body, body_of, error_text, header_text
from .inspect import outcome_text
from .merge import BODY_CALL, end_problem, is_body, is_flow, is_streamed, record_problem
from .output import DIGEST_BYTES, STREAMS
from .tap import format_event
from .trace import Event, Header, Outcome, TraceReader, open_trace, to_jsonable

CONTEXT = 3            # events shown before and after the first difference
BODY_DIFF_LINES = 40   # lines of a text body diff shown (the rest is counted)
# Text bodies longer than this (characters) are not diffed line by line (difflib's cost grows
# with the product of the lengths): the report gives the first differing character instead.
TEXT_DIFF_MAX = 256 << 10
# Flow record fields the guest never sees: when the exchange happened.
_FLOW_METADATA = ("timings",)


@dataclass
class Field:
    """A header field that differs: its name, and the value on each side, as text."""

    name: str
    a: str
    b: str


@dataclass
class Row:
    """A pair of events compared: the k-th guest event (or the k-th HTTP exchange) of each
    trace, with its index there (None: that trace has no k-th one)."""

    index_a: int | None
    a: Event | None
    index_b: int | None
    b: Event | None

    @property
    def index(self) -> int:
        return self.index_a if self.index_a is not None else self.index_b  # type: ignore[return-value]

    @property
    def same(self) -> bool:
        return self.a is not None and self.b is not None and same_event(self.a, self.b)


@dataclass
class Side:
    path: str
    header: Header | None = None
    file_version: int = 0
    events: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    outcome: str = ""
    outcome_raw: Outcome | None = None
    complete: bool = True
    problem: str | None = None


@dataclass
class Diff:
    a: Side
    b: Side
    header: list[Field]          # compared fields that differ
    metadata: list[Field]        # not compared, shown when they differ
    rows: list[Row]              # the first difference with its context (empty: none)
    differing: int               # pairs of events that differ
    compared: int                # pairs of events compared
    exchange: list[str]          # the first differing HTTP exchange, as diff lines
    exchange_parts: list[dict[str, Any]]
    output: list[Field]          # output streams that differ (traces that record them)

    @property
    def first_row(self) -> Row | None:
        return next((r for r in self.rows if not r.same), None)

    @property
    def first(self) -> int | None:
        row = self.first_row
        return None if row is None else row.index

    @property
    def same_outcome(self) -> bool:
        return ((_ending(self.a.outcome_raw), self.a.problem) == (_ending(self.b.outcome_raw), self.b.problem)
                and not self.output)

    @property
    def equal(self) -> bool:
        return not self.header and self.first is None and self.same_outcome


# ---- comparing ----------------------------------------------------------------------------

def same_event(a: Event, b: Event) -> bool:
    if is_flow(a) and is_flow(b) and isinstance(a.result, dict) and isinstance(b.result, dict):
        return a.args == b.args and _flow_view(a.result) == _flow_view(b.result)
    return a == b


def _flow_view(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in _FLOW_METADATA}


def diff_traces(a_path: str, b_path: str, context: int = CONTEXT) -> Diff:
    """Compare the traces at `a_path` and `b_path`; TraceError if either is not a readable trace."""
    a, b = Side(a_path), Side(b_path)
    with open_trace(a_path) as ra, open_trace(b_path) as rb:
        a.header, a.file_version = ra.header, ra.file_version
        b.header, b.file_version = rb.header, rb.file_version
        header, metadata = _header_fields(a, b)
        rows, differing, compared = _walk(ra, rb, a, b, context)
        for side, reader in ((a, ra), (b, rb)):
            side.outcome_raw, side.complete, side.problem = reader.outcome, reader.complete, reader.problem
            side.outcome = outcome_text(reader.outcome, reader.problem)
    output = _output_fields(a.outcome_raw, b.outcome_raw, metadata)
    exchange: list[str] = []
    parts: list[dict[str, Any]] = []
    d = Diff(a, b, header, metadata, rows, differing, compared, exchange, parts, output)
    first = d.first_row
    if first is not None and _usable_flow(first.a) and _usable_flow(first.b):
        parts += exchange_parts(first.a.result, first.b.result)  # type: ignore[union-attr]
        exchange += exchange_lines(parts)
    return d


# Events of one kind read ahead on one side, waiting for their counterpart on the other; past
# this, the oldest is compared with nothing (traces that far apart differ anyway).
MAX_PENDING = 10_000


def _walk(ra: TraceReader, rb: TraceReader, a: Side, b: Side, context: int) -> tuple[list[Row], int, int]:
    """Both traces' events in step: the counts, the first difference with `context` rows on
    each side of it, and how many pairs differ.

    The guest's own events are paired in order, and so are the HTTP exchanges, each stream on
    its own: a replay serves flow records by matching requests, not by their place among the
    guest's calls (they land where the proxy's thread finished them), so two traces that
    differ only in where an exchange was written are the same run."""
    pairs = _Pairs(context)
    sides = [(iter(ra), a, {False: deque(), True: deque()}), (iter(rb), b, {False: deque(), True: deque()})]
    (_, _, qa), (_, _, qb) = sides
    streams: list[dict[str, Any]] = [{}, {}]   # per side: streamed exchanges whose body is open
    live = [True, True]
    while any(live):
        for n, (events, side, queues) in enumerate(sides):
            if not live[n]:
                continue
            event = next(events, None)
            if event is None:
                live[n] = False
                for item in streams[n].values():
                    queues[True].append(item.exchange(None))
                continue
            side.counts[event.interface] += 1
            if _fold(event, streams[n], side.events, queues[True]):
                side.events += 1
                continue
            queues[is_flow(event)].append((side.events, event))
            side.events += 1
        for flow in (False, True):
            while qa[flow] and qb[flow]:
                pairs.add(qa[flow].popleft(), qb[flow].popleft())
            while len(qa[flow]) > MAX_PENDING:
                pairs.add(qa[flow].popleft(), None)
            while len(qb[flow]) > MAX_PENDING:
                pairs.add(None, qb[flow].popleft())
    for flow in (False, True):   # what one trace has and the other has not
        for item in qa[flow]:
            pairs.add(item, None)
        for item in qb[flow]:
            pairs.add(None, item)
    return pairs.rows, pairs.differing, pairs.total


class _Streamed:
    """A streamed exchange being read: its body digested piece by piece (how the pieces were cut
    depends on timing, so only the bytes count)."""

    def __init__(self, index: int, head: Event):
        self.index, self.head = index, head
        self.size, self.sha = 0, hashlib.sha256()

    def exchange(self, end: Any) -> tuple[int, Event]:
        rec = self.head.result
        response = {**rec["response"], "body_digest": f"{self.size} bytes, sha256 {self.sha.hexdigest()}"}
        if end is None:
            return self.index, Event(self.head.call, self.head.args, {**rec, "response": response,
                                                                      "error": {"kind": "other", "message": "the trace ends inside the body"}})
        return self.index, Event(self.head.call, self.head.args, {**rec, "response": response, "error": end.get("error"),
                                                                  "trailers": end.get("trailers")})


def _fold(event: Event, open_: dict[str, Any], index: int, flows: deque) -> bool:
    """Take a streamed exchange's head and body events into one exchange, put into `flows` at
    its end; False for any other event."""
    if is_flow(event) and isinstance(event.result, dict) and is_streamed(event.result) \
            and record_problem(event.result) is None:
        open_[event.result["id"]] = _Streamed(index, event)
        return True
    if not is_body(event) or end_problem(event) is not None or event.args[0] not in open_:
        return False
    if event.call == BODY_CALL:
        streamed = open_[event.args[0]]
        streamed.size += len(event.result)
        streamed.sha.update(event.result)
    else:
        flows.append(open_.pop(event.args[0]).exchange(event.result))
    return True


class _Pairs:
    """The compared pairs, keeping only the first difference and `context` pairs around it."""

    def __init__(self, context: int):
        self.behind: deque[Row] = deque(maxlen=context)
        self.rows: list[Row] = []
        self.context = context
        self.after = 0
        self.differing = 0
        self.total = 0

    def add(self, x: tuple[int, Event] | None, y: tuple[int, Event] | None) -> None:
        row = Row(*(x or (None, None)), *(y or (None, None)))
        same = row.same
        self.differing += not same
        self.total += 1
        if not self.rows:
            if same:
                self.behind.append(row)
            else:
                self.rows = [*self.behind, row]
                self.after = self.context
        elif self.after:
            self.rows.append(row)
            self.after -= 1


def _header_fields(a: Side, b: Side) -> tuple[list[Field], list[Field]]:
    ha, hb = a.header, b.header
    assert ha is not None and hb is not None
    compared: list[Field] = []
    metadata: list[Field] = []

    def check(into: list[Field], name: str, va: Any, vb: Any, show: Any = None) -> None:
        if va != vb:
            show = show or _show
            into.append(Field(name, show(va), show(vb)))

    ca, cb = ha.component, hb.component
    check(compared, "component", (ca.sha256, ca.size), (cb.sha256, cb.size),
          lambda v: f"sha256 {v[0]}  {v[1]} bytes")
    if ca.sha256 != cb.sha256:
        check(compared, "component name", ca.name, cb.name, str)
    check(compared, "argv", list(ha.argv), list(hb.argv), lambda v: " ".join(json.dumps(x) for x in v))
    check(compared, "env", [list(p) for p in ha.env], [list(p) for p in hb.env],
          lambda v: ", ".join(f"{k}={val}" for k, val in v) or "(none)")
    check(compared, "dirs", [(d.get("guest"), d.get("mode", "ro")) for d in ha.dirs],
          [(d.get("guest"), d.get("mode", "ro")) for d in hb.dirs],
          lambda v: ", ".join(f"{g} ({m})" for g, m in v) or "(none)")
    check(compared, "limits", ha.limits, hb.limits)
    for key in sorted(set(ha.extra) | set(hb.extra)):
        check(compared, key, ha.extra.get(key), hb.extra.get(key))
    # How the traces were written, not what the guest got.
    check(metadata, "rr version", ha.rr_version, hb.rr_version, str)
    check(metadata, "wasmtime", ha.wasmtime_version, hb.wasmtime_version, str)
    check(metadata, "format", a.file_version, b.file_version, lambda v: f"v{v}")
    check(metadata, "recorded", ha.start_time, hb.start_time, _date)
    if ca.sha256 == cb.sha256:
        check(metadata, "component name", ca.name, cb.name, str)
    check(metadata, "dir hosts", [d.get("host") for d in ha.dirs], [d.get("host") for d in hb.dirs])
    return compared, metadata


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def _date(t: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return repr(t)


def _output(outcome: Outcome | None) -> dict[str, Any] | None:
    """What the guest wrote, as the trace's outcome records it (traces of an older rr: None)."""
    return None if outcome is None else outcome.output


def _ending(outcome: Outcome | None) -> Outcome | None:
    """How the run ended, without what it wrote (compared on its own)."""
    return None if outcome is None else outcome.without_output()


def _output_fields(oa: Any, ob: Any, metadata: list[Field]) -> list[Field]:
    """The output streams whose size or sha256 differ; the bytes themselves, kept only with
    --record-output, are how a trace was written. A trace without output records is not
    compared (shown under metadata)."""
    a, b = _output(oa), _output(ob)
    if a is None or b is None:
        if (a is None) != (b is None) and oa is not None and ob is not None:
            metadata.append(Field("output", "recorded" if a else "not recorded", "recorded" if b else "not recorded"))
        return []
    fields = []
    for name in [*STREAMS, *sorted((set(a) | set(b)) - set(STREAMS))]:
        if name not in a and name not in b:
            continue
        sa, sb = a.get(name) or {}, b.get(name) or {}
        if (sa.get("size"), sa.get("sha256")) != (sb.get("size"), sb.get("sha256")):
            fields.append(Field(name, _stream(sa), _stream(sb) + _where(sa, sb)))
    return fields


def _stream(s: dict[str, Any]) -> str:
    return f"{s.get('size')} bytes, sha256 {str(s.get('sha256'))[:16]}"


def _where(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Where two outputs first differ, as closely as the traces tell."""
    da, db = a.get("data"), b.get("data")
    if isinstance(da, bytes) and isinstance(db, bytes):
        at = _first_difference(da, db)
        return f"; first difference at byte {at}: a {da[at:at + 16]!r}, b {db[at:at + 16]!r}"
    chunk, ga, gb = a.get("chunk"), a.get("digests"), b.get("digests")
    if isinstance(chunk, int) and chunk == b.get("chunk") and isinstance(ga, bytes) and isinstance(gb, bytes):
        step = DIGEST_BYTES
        at = next((i for i in range(0, min(len(ga), len(gb)), step) if ga[i:i + step] != gb[i:i + step]),
                  min(len(ga), len(gb)))
        first = at // step * chunk
        last = min(first + chunk, max(int(a.get("size") or 0), int(b.get("size") or 0))) - 1
        return f"; first difference within bytes {first}-{last}" if first <= last else ""
    return ""


def _first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    at, step = 0, 1 << 16
    while at < n and a[at:at + step] == b[at:at + step]:   # bounded: `at` grows each round
        at += step
    return next((i for i in range(at, min(at + step, n)) if a[i] != b[i]), n)


# ---- HTTP exchanges -----------------------------------------------------------------------

def _usable_flow(event: Event | None) -> bool:
    return event is not None and is_flow(event) and record_problem(event.result) is None


def exchange_headline(rec: dict[str, Any]) -> str:
    request, response = rec.get("request") or {}, rec.get("response")
    result = (f"{response['status']} {response['reason']}".rstrip() if response is not None
              else f"failed: {error_text(rec.get('error') or {})}")
    return _printable(f"HTTP {request.get('method')} {request.get('url')} -> {result}  (flow {rec.get('id')})")


def exchange_parts(ra: dict[str, Any], rb: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two flow records: one entry per part (request.url,
    response.headers, response.body, ...), with both sides and, for lines, a diff."""
    parts: list[dict[str, Any]] = []
    for message in ("request", "guest_request", "response"):
        ma, mb = ra.get(message), rb.get(message)
        if ma is None or mb is None:
            if (ma is None) != (mb is None):
                parts.append({"part": message, "a": _presence(ma), "b": _presence(mb)})
            continue
        for name in ("method", "url", "status", "reason", "http_version"):
            if name in ma and ma.get(name) != mb.get(name):
                parts.append({"part": f"{message}.{name}", "a": ma.get(name), "b": mb.get(name)})
        if ma["headers"] != mb["headers"]:
            la, lb = _header_lines(ma["headers"]), _header_lines(mb["headers"])
            parts.append({"part": f"{message}.headers", "diff": line_diff(la, lb, 0)})
        if ma["body"] != mb["body"]:
            parts.append({"part": f"{message}.body", **_body_diff(body_of(ma), body_of(mb))})
    ea, eb = ra.get("error"), rb.get("error")
    if ea != eb:
        parts.append({"part": "error", "a": None if ea is None else error_text(ea),
                      "b": None if eb is None else error_text(eb)})
    return parts


def _presence(message: Any) -> str:
    return "(none)" if message is None else "(present)"


def _header_lines(headers: list[list[bytes]]) -> list[str]:
    return [_printable(f"{header_text(n)}: {header_text(v)}") for n, v in headers]


def _body_diff(a: Body, b: Body) -> dict[str, Any]:
    out: dict[str, Any] = {"a": _body_summary(a), "b": _body_summary(b)}
    if a.text is not None and b.text is not None:
        if max(len(a.text), len(b.text)) <= TEXT_DIFF_MAX:
            out["diff"] = line_diff(a.text.splitlines(), b.text.splitlines(), 2)
        else:
            at = next((i for i, (x, y) in enumerate(zip(a.text, b.text)) if x != y), min(len(a.text), len(b.text)))
            out["first_difference"] = at
    return out


def _body_summary(body: Body) -> dict[str, Any]:
    out: dict[str, Any] = {"size": body.size, "sha256": hashlib.sha256(body.data).hexdigest()}
    if body.content_type:
        out["content_type"] = body.content_type
    if body.coding:
        out["content_encoding"] = body.coding
    out["text"] = body.text is not None
    return out


def line_diff(a: list[str], b: list[str], n: int) -> list[str]:
    """A unified diff of two lists of lines without its ---/+++ lines (hunks and lines only)."""
    return [_printable(line) for line in difflib.unified_diff(a, b, n=n, lineterm="")][2:]


def exchange_lines(parts: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for part in parts:
        name = part["part"].replace(".", " ").replace("_", " ")
        if "diff" in part and part["part"].endswith(".headers"):
            lines.append(f"{name}:")
            lines += [f"  {line}" for line in part["diff"] if not line.startswith("@@")]
        elif part["part"].endswith(".body"):
            lines.append(f"{name}: {_body_text(part['a'])} -> {_body_text(part['b'])}")
            if "first_difference" in part:
                lines.append(f"  (too long for a line diff: the texts first differ at character "
                             f"{part['first_difference']})")
            shown = part.get("diff", [])
            lines += [f"  {line}" for line in shown[:BODY_DIFF_LINES]]
            if len(shown) > BODY_DIFF_LINES:
                lines.append(f"  ... {len(shown) - BODY_DIFF_LINES} more diff lines")
        else:
            lines.append(f"{name}: {_show_plain(part['a'])} -> {_show_plain(part['b'])}")
    return lines


def _body_text(summary: dict[str, Any]) -> str:
    kind = "text" if summary["text"] else "binary"
    ctype = f" {summary['content_type']}" if summary.get("content_type") else ""
    return f"{summary['size']} bytes{ctype} ({kind}, sha256 {summary['sha256'][:16]})"


def _show_plain(value: Any) -> str:
    return "(none)" if value is None else _printable(str(value))


_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Control characters escaped: a trace must not drive the terminal."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# ---- showing ------------------------------------------------------------------------------

def event_text(event: Event) -> str:
    if _usable_flow(event):
        return exchange_headline(event.result)
    return _printable(format_event(event))


def summary_line(d: Diff) -> str:
    if d.equal:
        return (f"traces are equal: same header, {d.a.events} events, same outcome ({d.a.outcome})")
    what = []
    if d.header:
        what.append(f"header ({', '.join(f.name for f in d.header)})")
    if d.first is not None:
        what.append(f"events (first at event {d.first}; {d.differing} of {d.compared} differ)")
    if not d.same_outcome:
        ended_alike = _ending(d.a.outcome_raw) == _ending(d.b.outcome_raw) and d.a.problem == d.b.problem
        if not ended_alike:
            what.append("outcome")
        if d.output:
            what.append(f"output ({', '.join(f.name for f in d.output)})")
    return "traces differ: " + ", ".join(what)


def write_text(d: Diff, out: TextIO) -> None:
    lines: list[str] = []
    for mark, side in (("a", d.a), ("b", d.b)):
        h = side.header
        assert h is not None
        lines.append(f"{mark}  {_printable(side.path)}: {_printable(h.component.name)}, "
                     f"{side.events} events, {side.outcome}")
    lines.append("")
    if d.header:
        lines.append("header     differs:")
        for f in d.header:
            lines += [f"  {f.name:<16} a: {_printable(f.a)}", f"  {'':<16} b: {_printable(f.b)}"]
    else:
        lines.append("header     same")
    if d.metadata:
        lines.append("  not compared (how the traces were written):")
        lines += [f"  {f.name:<16} a: {_printable(f.a)}  b: {_printable(f.b)}" for f in d.metadata]
    lines.append("")
    if d.first is None:
        lines.append(f"events     same ({d.a.events})")
    else:
        first = d.first_row
        assert first is not None
        in_b = f" (in b: {first.index_b})" if None not in (first.index_a, first.index_b) \
            and first.index_a != first.index_b else ""
        lines.append(f"events     first difference at event {d.first}{in_b} "
                     f"({d.differing} of {d.compared} differ, compared in order):")
        lines += [line for row in d.rows for line in _row_lines(row)]
        if d.exchange:
            lines.append(f"  HTTP exchange at event {d.first}, a -> b:")
            lines += [f"    {line}" for line in d.exchange]
    lines.append("")
    lines.append(f"{'counts':<42} {'a':>8} {'b':>8}")
    for iface in sorted(set(d.a.counts) | set(d.b.counts)):
        ca, cb = d.a.counts.get(iface, 0), d.b.counts.get(iface, 0)
        lines.append(f"  {iface:<40} {ca:>8} {cb:>8}{'  *' if ca != cb else ''}")
    lines.append("")
    if d.same_outcome:
        lines.append(f"outcome    same: {d.a.outcome}")
    elif _ending(d.a.outcome_raw) == _ending(d.b.outcome_raw) and d.a.problem == d.b.problem:
        lines.append(f"outcome    same ending: {d.a.outcome}; the output differs:")
    else:
        lines += [f"outcome    a: {d.a.outcome}", f"           b: {d.b.outcome}"]
    for f in d.output:
        lines += [f"  {f.name:<16} a: {_printable(f.a)}", f"  {'':<16} b: {_printable(f.b)}"]
    lines.append("")
    lines.append(summary_line(d))
    out.write("\n".join(lines) + "\n")


def _row_lines(row: Row) -> list[str]:
    """A pair of events: one line when they are the same, else `-` (a) and `+` (b) lines,
    each led by its index in its trace (b's only where it is another)."""
    if row.same:
        moved = f"   (b: event {row.index_b})" if row.index_b != row.index_a else ""
        return [f"  {row.index_a:>7}    {event_text(row.a)}{moved}"]  # type: ignore[arg-type]
    lines = []
    for mark, index, event, other in (("-", row.index_a, row.a, row.b), ("+", row.index_b, row.b, row.a)):
        if event is None:
            shown = "(no more HTTP exchanges)" if other is not None and is_flow(other) else "(no more events)"
        else:
            shown = event_text(event)
        lead = "" if index is None or (mark == "+" and index == row.index_a) else str(index)
        lines.append(f"  {lead:>7}  {mark} {shown}")
    return lines


def write_json(d: Diff, out: TextIO) -> None:
    def side(s: Side) -> dict[str, Any]:
        h = s.header
        assert h is not None
        return {"trace": s.path, "component": {"name": h.component.name, "sha256": h.component.sha256,
                                               "size": h.component.size},
                "events": s.events, "counts": dict(sorted(s.counts.items())), "outcome": s.outcome,
                "complete": s.complete, "problem": s.problem}

    def event(e: Event | None) -> Any:
        if e is None:
            return None
        if _usable_flow(e):
            return {"call": e.call, "args": to_jsonable(e.args), "http": exchange_headline(e.result)}
        return {"call": e.call, "args": to_jsonable(e.args), "result": to_jsonable(e.result), "failed": e.failed}

    obj = {
        "equal": d.equal, "summary": summary_line(d), "a": side(d.a), "b": side(d.b),
        "header": [vars(f) for f in d.header], "not_compared": [vars(f) for f in d.metadata],
        "first_difference": None if d.first is None else {
            "event": d.first, "differing": d.differing,
            "compared": d.compared,
            "context": [{"event": r.index, "event_a": r.index_a, "event_b": r.index_b, "same": r.same,
                         "a": event(r.a), "b": event(r.b)} for r in d.rows],
            "http": d.exchange_parts or None},
        "same_outcome": d.same_outcome, "output": [vars(f) for f in d.output],
    }
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
