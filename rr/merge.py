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

import os
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from .nativelib import new_lock
from .trace import Event, Outcome, TraceError, TraceOutputError, TraceReader, TraceWriter, open_trace

FLOW_CALL = "wasi:http/outgoing-handler.handle"


def is_flow(event: Event) -> bool:
    # A failed event of this call would be a request refused before any exchange: no flow.
    return event.call == FLOW_CALL and not event.failed


def flow_event(record: dict[str, Any]) -> Event:
    request = record.get("request") or {}
    return Event(FLOW_CALL, [str(record.get("id")), request.get("method"), request.get("url")], record)


class SharedWriter:
    """A TraceWriter that several threads may write events to."""

    def __init__(self, writer: TraceWriter):
        self._writer = writer
        # The guest's count and whether it may still write live in the writer's state, and the
        # lock is one rr/_native.c takes too: native recording writes through this same writer
        self._state = writer.state
        self._lock = new_lock()
        self.flows = 0
        self.late_flows = 0       # finished after the outcome was written: not in the trace
        self.finished = False
        self.sealed = False       # a stop was decided: the guest's events are over

    @property
    def events(self) -> int:
        """The guest's own events written."""
        return self._state.guest_events  # type: ignore[no-any-return]

    def write_event(self, event: Event) -> None:
        with self._lock:
            if self.sealed or self.finished:
                # A host call that was still running when the run was stopped: the stop's
                # outcome counts the events before it, and the replay refuses that call.
                return
            self._writer.write_event(event)
            self._state.guest_events += 1

    def seal(self) -> None:
        with self._lock:
            self.sealed = True
            self._state.guest_open = 0

    def write_side(self, event: Event) -> None:
        """Side data from the guest's thread (not one of its events: not counted)."""
        with self._lock:
            if not (self.sealed or self.finished):
                self._writer.write_event(event)

    def write_flow(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self.finished:
                self.late_flows += 1
                return
            try:
                self._writer.write_event(flow_event(record))
            except TraceOutputError:
                return   # on the proxy's thread: the guest's next write, or the outcome, reports it
            self.flows += 1

    def write_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self._state.guest_open = 0
            self._writer.write_outcome(outcome)
            self.finished = True


class BadFlowRecord(TraceError):
    """A flow event that holds no usable flow record (hand-edited or foreign trace)."""


# What a flow record must hold, for the replay proxy and for export (see proxy_addon.flowrecord).
_MESSAGE_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "request": {"method": str, "url": str, "http_version": str, "headers": list, "body": bytes},
    "guest_request": {"method": str, "url": str, "http_version": str, "headers": list, "body": bytes},
    "response": {"status": int, "reason": str, "http_version": str, "headers": list, "body": bytes},
    "error": {"kind": str, "message": str},
    "timings": {"start": (int, float), "end": (int, float)},
}


def record_problem(rec: Any) -> str | None:
    """Why `rec` is not a usable flow record, or None."""
    if not isinstance(rec, dict):
        return f"the result is a {type(rec).__name__}, not a flow record"
    if not isinstance(rec.get("id"), str):
        return "it has no str 'id'"
    for part, fields in _MESSAGE_FIELDS.items():
        value = rec.get(part)
        if value is None and part in ("response", "error", "guest_request"):
            continue
        if not isinstance(value, dict):
            return f"{part!r} is not a dict"
        for name, typ in fields.items():
            if not isinstance(value.get(name), typ):
                return f"{part}.{name} is missing or has the wrong type"
        if "headers" in fields and not all(isinstance(h, list) and len(h) == 2 and all(isinstance(x, bytes) for x in h)
                                           for h in value["headers"]):
            return f"{part}.headers is not a list of [name, value] bytes pairs"
    if rec.get("response") is None and rec.get("error") is None:
        return "it has neither a response nor an error"
    return _framing_problem(rec)


def _framing_problem(rec: dict[str, Any]) -> str | None:
    """A body that disagrees with its own content-length cannot be served: replaying it would
    leave the guest waiting for bytes that never come (or cut its body short)."""
    method = rec["request"]["method"]
    for part in ("request", "guest_request", "response"):
        message = rec.get(part)
        if message is None:
            continue
        if part == "response" and (method.upper() == "HEAD" or message["status"] in (204, 304)
                                   or 100 <= message["status"] < 200):
            continue   # these responses never carry a body, whatever content-length says
        lengths = [v for k, v in message["headers"] if k.lower() == b"content-length"]
        if not lengths or any(k.lower() == b"transfer-encoding" for k, _ in message["headers"]):
            continue
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            return f"{part} has an unusable content-length {b', '.join(lengths)!r}"
        if int(lengths[0]) != len(message["body"]):
            return f"{part} body is {len(message['body'])} bytes but its content-length says {int(lengths[0])}"
    return None


def iter_flow_records(reader: TraceReader) -> Iterator[dict[str, Any]]:
    """The flow records of an open trace, in trace order, one at a time.

    Raises BadFlowRecord for a record that is not usable or repeats a flow id (the replay
    proxy matches requests to records by id), TraceError for a corrupt trace."""
    seen: set[str] = set()
    for index, event in enumerate(reader):
        if not is_flow(event):
            continue
        problem = record_problem(event.result)
        if problem is None and event.result["id"] in seen:
            problem = f"flow id {event.result['id']!r} was recorded before"
        if problem is not None:
            raise BadFlowRecord(f"{reader.path}: event {index} ({FLOW_CALL}): {problem}")
        seen.add(event.result["id"])
        yield event.result


class FlowIndex:
    """One pass over a trace for a replay: iterating it yields every event, as the reader does,
    for the replayer (guest thread); `find(flow_id)` gives the replay proxy (its own thread) a
    flow record, reading ahead as far as that record and keeping the events it passed for the
    replayer. So each record is read and decoded once, and a pipe needs no copy.

    A bad flow record (see `record_problem`) is raised to whoever reads it; one met by `find`
    is kept in `error` (the proxy answers what it has) for the session to report."""

    def __init__(self, reader: TraceReader):
        self._reader = reader
        self._it = iter(reader)
        self._index = 0                    # trace index of the next event read
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()   # read by find(), not yet handed to the replayer
        self._records: dict[str, dict[str, Any]] = {}
        self._done = False
        self._held: TraceError | None = None   # a read error find() met, for the replayer to meet too
        self.error: TraceError | None = None   # the first bad flow record or read error find() met

    def __iter__(self) -> "FlowIndex":
        return self

    def __next__(self) -> Event:
        with self._lock:
            if self._pending:
                return self._pending.popleft()
            if self._held is not None:
                held, self._held = self._held, None
                raise held
            if self._done:
                raise StopIteration
            return self._read()

    def _read(self) -> Event:
        try:
            event = next(self._it)
        except StopIteration:
            self._done = True
            raise
        except TraceError:
            self._done = True
            raise
        index, self._index = self._index, self._index + 1
        if is_flow(event):
            problem = record_problem(event.result)
            if problem is None and event.result["id"] in self._records:
                problem = f"flow id {event.result['id']!r} was recorded before"
            if problem is not None:
                self._done = True
                raise BadFlowRecord(f"{self._reader.path}: event {index} ({FLOW_CALL}): {problem}")
            self._records[event.result["id"]] = event.result
        return event

    def find(self, flow_id: str | None) -> list[dict[str, Any]]:
        """Every flow record read so far, after reading ahead until `flow_id`'s is among them
        (None: to the end of the trace)."""
        with self._lock:
            while (flow_id is None or flow_id not in self._records) and not self._done and self._held is None:
                try:
                    self._pending.append(self._read())
                except StopIteration:
                    break
                except TraceError as e:
                    self._held = e
                    self.error = self.error or e
            return list(self._records.values())


def flow_records(trace_path: str | os.PathLike[str], name: str | None = None) -> list[dict[str, Any]]:
    """Every HTTP exchange in a trace, in order (a first pass before a replay; export).
    `name`: what to call the trace in messages (default: its path)."""
    with open_trace(trace_path, name=name) as reader:
        return list(iter_flow_records(reader))
