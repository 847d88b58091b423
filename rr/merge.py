"""The merger: the runner's stream and the proxy's stream become one ordered trace.

Two producers write events: the guest thread (every tap call) and the proxy's thread
(one event per finished HTTP exchange). Both go through one `SharedWriter`, so the
trace holds them in the order they happened and each is on disk as soon as it exists:
a crash of either side loses nothing already written.

An HTTP exchange is the event `FLOW_CALL(flow_id, method, url) -> flow record`. It is
data for the proxy, not a call the guest makes: a replay hands every flow record to the
proxy up front (`flow_records`) and the replayer steps over these events.

A response body over the proxy's streaming threshold is not in its flow record: the record
is written when the response's headers arrive (`response.streamed: true`, `body: b""`), then
each piece of the body as it passes, `BODY_CALL(flow_id, "response") -> bytes`, and once it
ends `BODY_END_CALL(flow_id, "response") -> {size, trailers, error, end}` (see `end_problem`).
All three are side data, in order with the guest's events: a replay serves such a body piece
by piece, reading the trace only as far as the guest has consumed (FlowIndex.body_chunk).
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
BODY_CALL = "rr:http.body"           # one piece of a streamed body, in order
BODY_END_CALL = "rr:http.body-end"   # how a streamed body ended
_BODY_CALLS = (BODY_CALL, BODY_END_CALL)
# Response bodies longer than this (or of unknown length once they pass it) are streamed.
# 4 MiB: holding a body that size whole costs ~16 MB at most (mitmproxy's buffer, the record,
# its frame, a replay's copy), the guest-side read buffer is as large (host/http/bodies.py
# HIGH_WATER), and bodies up to it keep the web UI's intercept-and-edit.
STREAM_ABOVE = 4 << 20
STREAM_ABOVE_ENV = "RR_HTTP_STREAM_ABOVE"   # bytes; tests lower it


def stream_above() -> int:
    value = os.environ.get(STREAM_ABOVE_ENV, "")
    return int(value) if value.isdigit() else STREAM_ABOVE


def is_flow(event: Event) -> bool:
    # A failed event of this call would be a request refused before any exchange: no flow.
    return event.call == FLOW_CALL and not event.failed


def is_body(event: Event) -> bool:
    """A piece, or the end, of a streamed body."""
    return event.call in _BODY_CALLS


def is_side(event: Event) -> bool:
    """Data for the proxy, not a call of the guest: the replayer steps over it."""
    return is_flow(event) or event.call in _BODY_CALLS


def is_streamed(record: dict[str, Any]) -> bool:
    response = record.get("response")
    return isinstance(response, dict) and response.get("streamed") is True


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

    def write_body(self, flow_id: str, data: bytes) -> None:
        """A piece of a streamed body (the proxy's thread)."""
        self._write_side(Event(BODY_CALL, [flow_id, "response"], data))

    def write_body_end(self, flow_id: str, end: dict[str, Any]) -> None:
        self._write_side(Event(BODY_END_CALL, [flow_id, "response"], end))

    def _write_side(self, event: Event) -> None:
        with self._lock:
            if self.finished:
                return
            try:
                self._writer.write_event(event)
            except TraceOutputError:
                return   # as write_flow

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
        if "headers" in fields and not _header_pairs(value["headers"]):
            return f"{part}.headers is not a list of [name, value] bytes pairs"
    if rec.get("response") is None and rec.get("error") is None:
        return "it has neither a response nor an error"
    response = rec.get("response")
    if response is not None and "streamed" in response:
        if response["streamed"] is not True or response["body"] or rec.get("error") is not None:
            return "a streamed response must have streamed: true, an empty body and no error"
    return _framing_problem(rec)


def _header_pairs(fields: Any) -> bool:
    return isinstance(fields, list) and all(isinstance(h, list) and len(h) == 2 and all(isinstance(x, bytes) for x in h)
                                            for h in fields)


def end_problem(event: Event) -> str | None:
    """Why a BODY_CALL / BODY_END_CALL event is not usable, or None."""
    if type(event.args) is not list or len(event.args) != 2 or type(event.args[0]) is not str \
            or event.args[1] != "response" or event.failed:
        return "its args must be [flow id, 'response']"
    if event.call == BODY_CALL:
        return None if type(event.result) is bytes and event.result else "its result must be non-empty bytes"
    end = event.result
    if type(end) is not dict or set(end) != {"size", "trailers", "error", "end"}:
        return "its result must be {size, trailers, error, end}"
    if type(end["size"]) is not int or end["size"] < 0 or type(end["end"]) not in (int, float):
        return "its size must be an int >= 0 and its end a time"
    if end["trailers"] is not None and not _header_pairs(end["trailers"]):
        return "its trailers must be None or a list of [name, value] bytes pairs"
    error = end["error"]
    if error is not None and not (type(error) is dict and type(error.get("kind")) is str
                                  and type(error.get("message")) is str):
        return "its error must be None or {kind, message}"
    return None


def _framing_problem(rec: dict[str, Any]) -> str | None:
    """A body that disagrees with its own content-length cannot be served: replaying it would
    leave the guest waiting for bytes that never come (or cut its body short)."""
    method = rec["request"]["method"]
    for part in ("request", "guest_request", "response"):
        message = rec.get(part)
        if message is None:
            continue
        if part == "response" and (method.upper() == "HEAD" or message["status"] in (204, 304)
                                   or 100 <= message["status"] < 200 or message.get("streamed")):
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
    """The flow records of an open trace, one at a time, each once it is whole: a streamed
    response's record when its body has ended (its pieces joined, the end's error and time in),
    or at the end of the trace for one cut short (its error says so). So a streamed exchange
    is held whole while it is read: the memory this needs is its body's size.

    Raises BadFlowRecord for a record that is not usable or repeats a flow id (the replay
    proxy matches requests to records by id), TraceError for a corrupt trace."""
    seen: set[str] = set()
    streaming: dict[str, tuple[dict[str, Any], list[bytes]]] = {}
    for index, event in enumerate(reader):
        if is_body(event):
            problem = end_problem(event)
            flow_id = event.args[0] if problem is None else None
            if problem is None and flow_id not in streaming:
                problem = f"no streamed flow {flow_id!r} is open here"
            if problem is not None:
                raise BadFlowRecord(f"{reader.path}: event {index} ({event.call}): {problem}")
            if event.call == BODY_CALL:
                streaming[flow_id][1].append(event.result)
            else:
                yield joined(*streaming.pop(flow_id), event.result)
            continue
        if not is_flow(event):
            continue
        problem = record_problem(event.result)
        if problem is None and event.result["id"] in seen:
            problem = f"flow id {event.result['id']!r} was recorded before"
        if problem is not None:
            raise BadFlowRecord(f"{reader.path}: event {index} ({FLOW_CALL}): {problem}")
        seen.add(event.result["id"])
        if is_streamed(event.result):
            streaming[event.result["id"]] = (event.result, [])
        else:
            yield event.result
    for record, parts in streaming.values():
        yield joined(record, parts, None)


def joined(record: dict[str, Any], parts: list[bytes], end: dict[str, Any] | None) -> dict[str, Any]:
    """A streamed exchange as one record: the body's pieces joined; `end` None when the trace
    ended before the body did."""
    response = {k: v for k, v in record["response"].items() if k != "streamed"}
    response["body"] = b"".join(parts)
    if end is None:
        error = {"kind": "other", "message": "the recording ended before the response body did"}
        return {**record, "response": response, "error": error}
    if end["trailers"] is not None:
        response["trailers"] = end["trailers"]
    return {**record, "response": response, "error": end["error"], "timings": {**record["timings"], "end": end["end"]}}


class FlowIndex:
    """One pass over a trace for a replay: iterating it yields every event, as the reader does,
    for the replayer (guest thread); `find(flow_id)` gives the replay proxy (its own thread) a
    flow record, reading ahead as far as that record and keeping the events it passed for the
    replayer. So each record is read and decoded once, and a pipe needs no copy.

    A streamed body's pieces go to the proxy (`body_chunk`), whoever reads them: the replayer
    gets each as a placeholder without its bytes (so event indexes stay the trace's own). The
    proxy reads ahead only when it needs the next piece, so what is held is what the recording
    had passed on but the guest not yet read (bounded there by the proxy's back-pressure).

    A bad flow record (see `record_problem`) is raised to whoever reads it; one met by `find`
    is kept in `error` (the proxy answers what it has) for the session to report."""

    def __init__(self, reader: TraceReader):
        self._reader = reader
        self._it = iter(reader)
        self._index = 0                    # events read here (the trace index: + those native calls took)
        self.native: Any = None            # the Cursor native calls take events from past this reader
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()   # read by find(), not yet handed to the replayer
        self._records: dict[str, dict[str, Any]] = {}
        self._bodies: dict[str, deque[bytes]] = {}   # streamed flow id -> pieces not served yet
        self._ends: dict[str, dict[str, Any]] = {}
        self._dropped: set[str] = set()              # bodies the proxy stopped serving
        self._serving = True                         # False: the run is over, no body is kept
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
        index = self._index + (self.native.taken if self.native is not None else 0)
        self._index += 1
        if is_flow(event):
            problem = record_problem(event.result)
            if problem is None and event.result["id"] in self._records:
                problem = f"flow id {event.result['id']!r} was recorded before"
            if problem is not None:
                self._done = True
                raise BadFlowRecord(f"{self._reader.path}: event {index} ({FLOW_CALL}): {problem}")
            self._records[event.result["id"]] = event.result
            if is_streamed(event.result):
                self._bodies[event.result["id"]] = deque()
        elif is_body(event):
            problem = end_problem(event)
            flow_id = event.args[0] if problem is None else None
            if problem is None and (flow_id not in self._bodies or flow_id in self._ends):
                problem = f"no streamed flow {flow_id!r} is open here"
            if problem is not None:
                self._done = True
                raise BadFlowRecord(f"{self._reader.path}: event {index} ({event.call}): {problem}")
            if event.call == BODY_CALL:
                if self._serving and flow_id not in self._dropped:
                    self._bodies[flow_id].append(event.result)
                return Event(BODY_CALL, event.args, b"")
            self._ends[flow_id] = event.result
        return event

    def _read_ahead(self) -> bool:
        """Read one more event for later; False at the end of what can be read."""
        if self._done or self._held is not None:
            return False
        try:
            self._pending.append(self._read())
        except StopIteration:
            return False
        except TraceError as e:
            self._held = e
            self.error = self.error or e
            return False
        return True

    def find(self, flow_id: str | None) -> list[dict[str, Any]]:
        """Every flow record read so far, after reading ahead until `flow_id`'s is among them
        (None: to the end of the trace)."""
        with self._lock:
            while (flow_id is None or flow_id not in self._records) and self._read_ahead():
                pass
            return list(self._records.values())

    def body_chunk(self, flow_id: str) -> bytes | None:
        """The next piece of a streamed body, reading ahead as far as it; None once the body has
        ended, or the trace did first."""
        with self._lock:
            while True:
                pieces = self._bodies.get(flow_id)
                if pieces:
                    return pieces.popleft()
                if flow_id in self._ends or not self._read_ahead():
                    return None

    def body_end(self, flow_id: str) -> dict[str, Any] | None:
        """How a streamed body ended (BODY_END_CALL's result), None if the trace does not say."""
        with self._lock:
            return self._ends.get(flow_id)

    def drop_bodies(self) -> None:
        """The guest has finished: the rest of the trace is read for its end, keeping no body."""
        with self._lock:
            self._serving = False
            for pieces in self._bodies.values():
                pieces.clear()

    def drop_body(self, flow_id: str) -> None:
        """The proxy serves no more of this body: its pieces are not kept."""
        with self._lock:
            self._dropped.add(flow_id)
            if flow_id in self._bodies:
                self._bodies[flow_id].clear()


def flow_records(trace_path: str | os.PathLike[str], name: str | None = None) -> list[dict[str, Any]]:
    """Every HTTP exchange in a trace, in order (a first pass before a replay; export).
    `name`: what to call the trace in messages (default: its path)."""
    with open_trace(trace_path, name=name) as reader:
        return list(iter_flow_records(reader))
