"""`rr replay` of a server trace: every recorded request to a fresh instance, offline.

Each request block (trace/served.py) is replayed on its own: a Replayer over the block's
events, the request as recorded (body fed whole), the handler's outgoing HTTP answered by
one replay proxy that holds every block's flow records (their ids are unique in the
trace), and the response the handler produces compared with the recorded one.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import netlock, redact, runner
from ..errors import EXIT_BAD_TRACE, EXIT_DIVERGED, UsageError
from ..host.http.errors import HttpFailure
from ..host.http.incoming import IncomingRequest
from ..merge import is_flow, record_problem
from ..session import BadTrace, _proxy_transport, _start_proxy, check_component, replay_sandbox, HttpOptions
from ..tap import Divergence, Replayer, ReplayStopped, TraceCorrupt
from ..trace import Event, TraceError, open_trace
from ..trace.served import BadBlock, RequestBlock, is_server_trace, request_blocks
from .handler import Exchange, Instance, body_chunks, handler_export
from .server import failed_response, flow_ids, guest_view, instance_sandbox


_BEFORE = Event("", [], None)   # stands for an event of the trace before a request's block


@dataclass
class Result:
    n: int
    method: str
    path: str
    verdict: str           # "match", "differs: ...", "diverged: ...", "stopped ...", "incomplete ..."
    ok: bool


def replay_server_trace(program: runner.Program, trace_path: str, stdout, stderr,  # type: ignore[no-untyped-def]
                        only: int | None, until: int | None, say: Callable[[str], None]) -> int:
    try:
        with open_trace(trace_path) as reader:
            header = reader.header
            events = list(reader)
            cut_short = None if reader.outcome is not None else (reader.problem or "it has no end")
    except TraceError as e:
        raise BadTrace(str(e)) from None
    if not is_server_trace(header):   # read from a pipe for a handler component (serve/cli.py)
        raise not_a_server_trace(trace_path, program)
    check_component(program, header, trace_path)
    try:
        rules = redact.recorded_rules(header)
    except redact.BadRedaction as e:
        raise BadTrace(f"{trace_path}: {e}") from None
    try:
        blocks = list(request_blocks(events))
    except BadBlock as e:
        raise BadTrace(f"{trace_path}: {e}") from None
    answered = sum(1 for b in blocks if b.response is not None)
    if until is not None and only is None:
        raise UsageError("--until in a server trace needs --request N (it stops within that request)")
    if only is not None:
        blocks = [b for b in blocks if b.n == only]
        if not blocks:
            raise BadTrace(f"{trace_path}: no request {only} (see rr inspect {trace_path})")
    flows = []
    ids: set[str] = set()
    for block in blocks:
        for event in block.events:
            if is_flow(event):
                problem = record_problem(event.result)
                if problem is None and event.result["id"] in ids:
                    problem = "recorded twice"
                if problem is not None:
                    raise BadTrace(f"{trace_path}: request {block.n}: flow {event.args[0]}: {problem}")
                ids.add(event.result["id"])
                flows.append(event.result)
    base = replay_sandbox(header, stdout, stderr, trace_path)
    limits = runner.Limits(max_memory=header.limits.get("max_memory"))
    export = handler_export(program)
    all_ok = True
    with contextlib.ExitStack() as stack:
        netlock.engage()
        stack.callback(netlock.release)
        proxy = stack.enter_context(_start_proxy(HttpOptions(), "replay", flows=flows, redaction=rules))
        services = _proxy_transport(proxy, stack)
        for block in blocks:
            result = _replay_block(program, export, base, limits, services, block, until, rules)
            say(f"request {result.n} {result.method} {result.path}: {result.verdict}")
            all_ok = all_ok and result.ok
    if cut_short is not None:
        # As for a command's trace cut short (122): what it holds replays, but it is not the
        # whole recording. rr serve always writes the end when stopped by a signal, so this
        # is a kill -9 (or a crash); a divergence above still decides the status (121).
        say(f"trace is incomplete ({cut_short}): the server did not stop cleanly (kill -9?), its "
            f"recording ends without its end record; it holds {answered} answered requests")
        return EXIT_BAD_TRACE if all_ok else EXIT_DIVERGED
    return 0 if all_ok else EXIT_DIVERGED


def not_a_server_trace(trace_path: str, program: runner.Program) -> BadTrace:
    """A handler component records only server traces: another trace for it is a bad one."""
    return BadTrace(f"{trace_path}: not a server trace (rr serve -t), and {program.path.name} is a "
                    "wasi:http handler: it replays only those")


def _replay_block(program: runner.Program, export: str, base: Any, limits: runner.Limits,
                  services: dict[str, Any], block: RequestBlock, until: int | None,
                  rules: dict[str, Any] | None = None) -> Result:
    req = block.request
    method, path = str(req.get("method")), str(req.get("path"))
    if block.response is None:
        return Result(block.n, method, path, "incomplete (the recording ends inside this request)", True)
    # The events before the block are stepped over as side data: the replayer then numbers
    # events as the trace does (rr inspect, divergence reports, --until).
    before = itertools.repeat(_BEFORE, block.first + 1)
    tap = Replayer(itertools.chain(before, block.events), until, side_data=lambda e: e is _BEFORE or is_flow(e))
    sandbox = instance_sandbox(base, int(req.get("instance", 0)))
    inst = Instance(program, export, sandbox, tap, {**services, "wasi:http/flow-ids": flow_ids(block.n)}, limits)
    body = inst.request_body()
    try:
        body.feed(bytes(req["body"]))
        body.finish()
        incoming = IncomingRequest(method, str(req.get("scheme", "http")), req.get("authority"), path,
                                   guest_view(req["headers"]), body)
    except (KeyError, TypeError, ValueError) as e:
        raise BadTrace(f"request {block.n}: unusable request record ({type(e).__name__}: {e})") from None
    exchange = Exchange()
    guest = threading.Thread(target=inst.handle, args=(incoming, exchange), name=f"rr-replay-{block.n}", daemon=True)
    guest.start()
    head = exchange.wait_head()
    sent = bytearray()
    if head is None:
        exchange.wait_done()
        status, headers, failed = failed_response(exchange)
        sent += failed
    else:
        status, headers = head.status, head.headers
        with contextlib.suppress(HttpFailure):
            for data in body_chunks(head):
                sent += data
        exchange.wait_done()
    fault = exchange.fault
    if isinstance(fault, ReplayStopped):
        return Result(block.n, method, path, f"stopped before event {fault.index} (--until)", True)
    if isinstance(fault, TraceCorrupt):
        raise BadTrace(f"request {block.n}: {fault}")
    if isinstance(fault, Divergence):
        return Result(block.n, method, path, f"diverged: {fault.message}", False)
    if fault is not None:
        raise fault
    leftover = tap.leftover()
    if leftover:
        return Result(block.n, method, path, f"diverged: the handler finished but request {block.n} has "
                      f"more recorded events (from event {leftover[0][0]})", False)
    body = bytes(sent)
    if rules is not None:
        # the recording kept the response redacted: compare the replayed one redacted alike
        from proxy_addon.redaction import Redactor
        redactor = Redactor(rules)
        body, fields = redactor.body(body, redactor.headers([[n.encode("latin-1"), v] for n, v in headers]))
        headers = [(bytes(n).decode("latin-1"), bytes(v)) for n, v in fields]
    difference = compare(block.response, status, headers, body, exchange.trap)
    return Result(block.n, method, path, "match" if difference is None else f"differs: {difference}",
                  difference is None)


def compare(recorded: dict[str, Any], status: int, headers: list[tuple[str, bytes]], body: bytes,
            trap: str | None) -> str | None:
    """How the replayed response differs from the recorded one (None: it does not)."""
    if recorded.get("status") != status:
        return f"status {status}, recorded {recorded.get('status')}"
    if (recorded.get("trap") is None) != (trap is None):
        return f"the handler {'trapped' if trap else 'did not trap'}, recorded {recorded.get('trap') or 'no trap'}"
    theirs = [(bytes(n).decode("latin-1"), bytes(v)) for n, v in recorded.get("headers", [])]
    if theirs != headers:
        for i, (a, b) in enumerate(zip(headers + [None] * len(theirs), theirs + [None] * len(headers))):  # type: ignore[operator]
            if a != b:
                return f"header {i}: {_header(a)}, recorded {_header(b)}"
    old = bytes(recorded.get("body", b""))
    if old != body:
        at = next((i for i, (x, y) in enumerate(zip(body, old)) if x != y), min(len(body), len(old)))
        return f"body differs from byte {at} ({len(body)} bytes, recorded {len(old)})"
    return None


def _header(h: tuple[str, bytes] | None) -> str:
    return "none" if h is None else f"{h[0]}: {h[1].decode('latin-1')}"
