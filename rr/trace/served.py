"""The records of a server trace (`rr serve -t`): one block of events per incoming request.

A server trace is an ordinary trace (same header, framing and checksums) whose header has
the extra field "serve" and whose events come in blocks, one per request, each written
whole once its request has been answered (so concurrent requests never interleave and a
killed server keeps every finished request):

    SERVE_REQUEST(n)  -> {"method", "url", "http_version", "headers": [[name, value]...],
                          "body", "authority", "path", "scheme", "env": [[k, v]...], "start"}
    ... the events the handler's instance received (tap events, HTTP flow records with
        ids "<n>.<k>") ...
    SERVE_RESPONSE(n) -> {"status", "headers", "body", "trap": str | None, "end"}

Headers are bytes pairs, as in flow records. Nothing here knows of wasmtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .model import Event, Header

SERVE_REQUEST = "rr:serve/incoming-request"
SERVE_RESPONSE = "rr:serve/response"
HEADER_SERVE = "serve"   # header extra: {"addr": "HOST:PORT"}


def is_server_trace(header: Header) -> bool:
    return isinstance(header.extra.get(HEADER_SERVE), dict)


def request_event(n: int, request: dict[str, Any]) -> Event:
    return Event(SERVE_REQUEST, [n], request)


def response_event(n: int, response: dict[str, Any]) -> Event:
    return Event(SERVE_RESPONSE, [n], response)


@dataclass
class RequestBlock:
    n: int
    request: dict[str, Any]
    first: int                                # trace index of its SERVE_REQUEST event
    events: list[Event] = field(default_factory=list)   # between request and response
    response: dict[str, Any] | None = None    # None: the trace ends inside this block


class BadBlock(ValueError):
    """Events of a server trace that are not in request blocks."""


def request_blocks(events: Iterable[Event]) -> Iterator[RequestBlock]:
    """The request blocks of a server trace's events, in trace order. A block the trace ends
    inside (a server killed while writing it) is yielded with no response."""
    block: RequestBlock | None = None
    for index, event in enumerate(events):
        if event.call == SERVE_REQUEST:
            if block is not None:
                raise BadBlock(f"event {index}: request {_n(event)} starts inside request {block.n}")
            if not isinstance(event.result, dict):
                raise BadBlock(f"event {index}: {SERVE_REQUEST} holds no request record")
            problem = request_problem(event.result)
            if problem is not None:
                raise BadBlock(f"event {index}: request {_n(event)}: {problem}")
            block = RequestBlock(_n(event), event.result, index)
        elif event.call == SERVE_RESPONSE:
            if block is None or _n(event) != block.n or not isinstance(event.result, dict):
                raise BadBlock(f"event {index}: a response of request {_n(event)} outside its block")
            problem = response_problem(event.result)
            if problem is not None:
                raise BadBlock(f"event {index}: the response of request {block.n}: {problem}")
            block.response = event.result
            yield block
            block = None
        elif block is None:
            raise BadBlock(f"event {index}: {event.call} belongs to no request")
        else:
            block.events.append(event)
    if block is not None:
        yield block


def _fields(record: dict[str, Any], wanted: dict[str, tuple[type, ...]], optional: dict[str, tuple[type, ...]]) -> str | None:
    for key, types in [*wanted.items(), *optional.items()]:
        if key not in record and key in optional:
            continue
        if type(record.get(key)) not in types:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"field {key!r} is {type(record.get(key)).__name__ if key in record else 'missing'}, not {names}"
    headers = record["headers"]
    if not all(type(h) is list and len(h) == 2 and type(h[0]) is bytes and type(h[1]) is bytes for h in headers):
        return "field 'headers' is not a list of [name, value] byte strings"
    return None


def request_problem(request: dict[str, Any]) -> str | None:
    """What makes a recorded request unusable for a replay (None: nothing)."""
    problem = _fields(request, {"method": (str,), "path": (str,), "headers": (list,), "body": (bytes,)},
                      {"scheme": (str,), "authority": (str, type(None)), "instance": (int,)})
    if problem is None and not 0 <= request.get("instance", 0) < 1 << 32:
        problem = f"field 'instance' is {request['instance']}, not an instance number"
    return problem


def response_problem(response: dict[str, Any]) -> str | None:
    """What makes a recorded response unusable for comparing a replay's with it (None: nothing)."""
    problem = _fields(response, {"status": (int,), "headers": (list,), "body": (bytes,)},
                      {"trap": (str, type(None))})
    if problem is None and not 100 <= response["status"] <= 999:
        problem = f"status {response['status']} is not an HTTP status"
    return problem


def _n(event: Event) -> int:
    args = event.args
    if len(args) != 1 or type(args[0]) is not int:
        raise BadBlock(f"{event.call} args must be [request number], not {args!r}")
    return args[0]


INCOMING_PREFIX = "in."   # flow id of request n's incoming exchange in exports: "in.<n>"


def incoming_record(n: int, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Request n's incoming exchange as a flow record (proxy_addon/flowrecord.py's shape), for
    export beside the handler's outgoing ones; `incoming` marks it."""
    start = request.get("start", 0.0)
    return {
        "id": f"{INCOMING_PREFIX}{n}", "incoming": True,
        "request": {k: request.get(k) for k in ("method", "url", "http_version", "headers", "body")},
        "response": {"status": response.get("status"), "reason": "", "http_version": "HTTP/1.1",
                     "headers": response.get("headers"), "body": response.get("body")},
        "error": None,
        "timings": {"start": start, "end": response.get("end", start)},
    }


class IncomingExchanges:
    """Watches a trace's events go by and collects each finished request's incoming exchange."""

    def __init__(self) -> None:
        self._requests: dict[int, dict[str, Any]] = {}
        self.done: list[dict[str, Any]] = []

    def see(self, event: Event) -> None:
        if event.call == SERVE_REQUEST and isinstance(event.result, dict):
            self._requests[_n(event)] = event.result
        elif event.call == SERVE_RESPONSE and isinstance(event.result, dict):
            request = self._requests.pop(_n(event), None)
            if request is not None:
                self.done.append(incoming_record(_n(event), request, event.result))


def exchange_order(flow_id: str) -> tuple[int, int, str]:
    """Sort key of flow ids: a command's "1", "2", ...; a server trace's request n as "in.<n>"
    and then its outgoing "<n>.<k>"; anything else last."""
    head, _, tail = flow_id.removeprefix(INCOMING_PREFIX).partition(".")
    if not head.isdigit() or (tail and not tail.isdigit()):
        return (1 << 62, 0, flow_id)
    if flow_id.startswith(INCOMING_PREFIX):
        return (int(head), -1, "") if not tail else (1 << 62, 0, flow_id)
    return (int(head), int(tail or 0), "")
