"""The merger: the runner's stream and the proxy's stream become one ordered trace.

Two producers write events: the guest thread (every tap call) and the proxy's thread
(one event per finished HTTP exchange). Both go through one `SharedWriter`, so the
trace holds them in the order they happened and each is on disk as soon as it exists:
a crash of either side loses nothing already written.

An HTTP exchange is the event `FLOW_CALL(flow_id, method, url) -> flow record`. It is
data for the proxy, not a call the guest makes: a replay hands every flow record to the
proxy up front (`flow_records`) and the replayer steps over these events.
"""

from __future__ import annotations

import threading
from typing import Any

from .trace import Event, Outcome, TraceWriter, open_trace

FLOW_CALL = "wasi:http/outgoing-handler.handle"


def is_flow(event: Event) -> bool:
    return event.call == FLOW_CALL


def flow_event(record: dict[str, Any]) -> Event:
    request = record.get("request") or {}
    return Event(FLOW_CALL, [str(record.get("id")), request.get("method"), request.get("url")], record)


class SharedWriter:
    """A TraceWriter that several threads may write events to."""

    def __init__(self, writer: TraceWriter):
        self._writer = writer
        self._lock = threading.Lock()
        self.flows = 0
        self.late_flows = 0       # finished after the outcome was written: not in the trace
        self.finished = False

    def write_event(self, event: Event) -> None:
        with self._lock:
            self._writer.write_event(event)

    def write_flow(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self.finished:
                self.late_flows += 1
                return
            self._writer.write_event(flow_event(record))
            self.flows += 1

    def write_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self._writer.write_outcome(outcome)
            self.finished = True


def flow_records(trace_path: str) -> list[dict[str, Any]]:
    """Every HTTP exchange in a trace, in order (a first pass before a replay)."""
    with open_trace(trace_path) as reader:
        return [e.result for e in reader if is_flow(e)]
