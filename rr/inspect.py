"""`rr inspect`: a trace made readable — header, outcome, counts, one line per event."""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, TextIO

from .tap import format_event
from .trace import Trace, read_trace, summarize, to_jsonable


def inspect_trace(path: str, as_json: bool, show_events: bool, limit: int | None,
                  out: TextIO = sys.stdout) -> None:
    trace = read_trace(path)
    if as_json:
        json.dump(_as_json(trace, show_events, limit), out, indent=2)
        out.write("\n")
        return
    h = trace.header
    started = datetime.datetime.fromtimestamp(h.start_time, datetime.UTC).isoformat(timespec="seconds")
    print(f"trace      {path} (format {h.format} v{h.version}, rr {h.rr_version}, wasmtime {h.wasmtime_version})", file=out)
    print(f"component  {h.component.name}  {h.component.size} bytes  sha256 {h.component.sha256}", file=out)
    print(f"recorded   {started}", file=out)
    print(f"argv       {' '.join(json.dumps(a) for a in h.argv)}", file=out)
    print(f"env        {', '.join(f'{k}={v}' for k, v in h.env) or '(none)'}", file=out)
    for d in h.dirs:
        print(f"dir        {d['host']} -> {d['guest']} ({d.get('mode', 'ro')})", file=out)
    print(f"outcome    {_outcome(trace)}", file=out)
    summary = summarize(trace)
    print(f"events     {len(trace.events)}", file=out)
    for iface, count in sorted(summary.calls.items()):
        payload = summary.bytes.get(iface, 0)
        extra = f"  ({payload} bytes of data)" if payload else ""
        print(f"  {iface:<36} {count:>8}{extra}", file=out)
    if show_events:
        print("", file=out)
        for i, event in enumerate(trace.events[:limit] if limit else trace.events):
            print(f"{i:>7}  {format_event(event)}", file=out)
        if limit and len(trace.events) > limit:
            print(f"    ... {len(trace.events) - limit} more (use --limit)", file=out)


def _outcome(trace: Trace) -> str:
    o = trace.outcome
    if o is None:
        return f"INCOMPLETE: {trace.problem or 'no outcome recorded'}"
    if o.kind == "exit":
        return f"exit status {o.status}"
    if o.kind == "trap":
        return f"trap: {o.message}"
    return f"stopped at event {o.event}"


def _as_json(trace: Trace, show_events: bool, limit: int | None) -> dict[str, Any]:
    h = trace.header
    summary = summarize(trace)
    doc: dict[str, Any] = {
        "header": {
            "format": h.format, "version": h.version, "rr_version": h.rr_version,
            "wasmtime_version": h.wasmtime_version,
            "component": {"name": h.component.name, "size": h.component.size, "sha256": h.component.sha256},
            "argv": h.argv, "env": [list(p) for p in h.env], "dirs": h.dirs, "start_time": h.start_time,
        },
        "outcome": None if trace.outcome is None else {
            k: v for k, v in vars(trace.outcome).items() if v is not None},
        "complete": trace.complete,
        "problem": trace.problem,
        "counts": dict(summary.calls),
    }
    if show_events:
        events = trace.events[:limit] if limit else trace.events
        doc["events"] = [to_jsonable({"call": e.call, "args": e.args, "result": e.result,
                                      **({"failed": True} if e.failed else {})}) for e in events]
    return doc
