"""Recording and replaying a whole run: the trace header, the tap, the outcome.

`record` runs the guest live with a Recorder tap and writes the trace as it goes;
`replay` checks the component against the trace, rebuilds the sandbox from the
header alone, runs the guest with a Replayer tap and checks that it ended the way
the recording did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, output, redact, runner, signals
from .abi import Unwind
from .cache import wasmtime_version
from .errors import EXIT_BAD_TRACE, EXIT_DIVERGED, OutputError, RRError, UsageError
from .host.context import Preopen, Sandbox
from .merge import BadFlowRecord, FlowIndex, SharedWriter, is_side, stream_above
from .tap import Divergence, Recorder, Replayer, ReplayStopped, TraceCorrupt, format_event
from .trace import (ComponentInfo, Header, TraceError, TraceExistsError, TraceNameError, TraceOutputError,
                    TraceWriter, open_trace)
from .trace import Outcome as TraceOutcome
from .trace.model import STOP_KINDS


class BadTrace(RRError):
    status = EXIT_BAD_TRACE


class Diverged(RRError):
    status = EXIT_DIVERGED

    def __init__(self, message: str, divergence: Divergence | None = None):
        super().__init__(message)
        self.divergence = divergence   # the guest's call that departed, when that was it


HTTP_ALLOW = "http_allow"  # header extra: the --allow-http grant, so replay needs no flags
SOCKETS = "sockets"        # header extra: the socket grant (-S inherit-network ..., --allow-net)


def make_header(program: runner.Program, sandbox: Sandbox, limits: runner.Limits | None = None,
                redact_rules: dict[str, Any] | None = None) -> Header:
    limits = limits or runner.Limits()
    env = [(k, v) for k, v in sandbox.env]
    extra: dict[str, Any] = {HTTP_ALLOW: list(sandbox.http_allow)}
    if sandbox.sockets:
        extra[SOCKETS] = sandbox.sockets.to_header()
    if redact_rules is not None:
        env = redact.env(env, redact_rules)
        extra[redact.HEADER_FIELD] = redact_rules
    return Header(
        rr_version=__version__,
        wasmtime_version=wasmtime_version(),
        component=ComponentInfo(sha256=program.sha256, size=len(program.wasm), name=program.path.name),
        argv=list(sandbox.argv),
        env=env,
        dirs=[{"host": p.host, "guest": p.guest, "mode": "rw" if p.writable else "ro"}
              for p in sandbox.preopens],
        start_time=time.time(),
        extra=extra,
        limits={k: v for k, v in (("max_memory", limits.max_memory),
                                  ("timeout", None if limits.timeout is None else float(limits.timeout)))
                if v is not None},
    )


def to_trace_outcome(outcome: runner.Outcome, events: int) -> TraceOutcome:
    """The trace's outcome for a run that ended as `outcome` after the guest consumed `events`."""
    if outcome.kind == "exit":
        return TraceOutcome.exit(outcome.status)
    if outcome.kind == "memory":
        return TraceOutcome.memory(outcome.message or "memory")
    if outcome.kind in STOP_KINDS:
        return TraceOutcome.stop(outcome.kind, events, outcome.calls or 0)
    return TraceOutcome.trap(outcome.message or outcome.kind)


@dataclass
class Recorded:
    outcome: runner.Outcome
    events: int
    path: Path
    flows: int = 0
    output: dict[str, Any] | None = None   # what the guest wrote, as the trace records it
    withheld: list[str] = dataclasses.field(default_factory=list)   # record_output: streams kept as digests


@dataclass
class HttpOptions:
    """How the embedded proxy runs (only when the component imports wasi:http)."""

    extra_ca: Path | None = None      # a PEM CA trusted for upstream TLS besides the system's
    inspect: bool = False             # serve mitmproxy's web UI while recording
    inspect_host: str = "127.0.0.1"
    inspect_port: int | None = None
    dump: bool = False                # one line per flow on stderr
    verbose: bool = False
    on_web_url: Callable[[str], None] | None = None
    # Called once the guest has finished and the trace is complete, before the proxy (and its
    # web UI) stops: `--inspect` keeps the UI up there until Ctrl-C.
    after_run: Callable[[], None] | None = None


@contextlib.contextmanager
def trace_output_errors() -> Iterator[None]:
    """Where rr writes a trace (record, convert): a taken or meaningless name is the user's to
    fix (125), a write that fails is an output error (74)."""
    try:
        yield
    except TraceExistsError as e:
        raise UsageError(f"{e} (use --force to replace it)") from None
    except TraceNameError as e:
        raise UsageError(str(e)) from None
    except TraceOutputError as e:
        raise OutputError(str(e)) from None


def record(program: runner.Program, sandbox: Sandbox, trace_path: str | os.PathLike[str],
           fmt: str | None = None, limits: runner.Limits | None = None,
           overwrite: bool = False, http: HttpOptions | None = None,
           redaction: redact.Redaction | None = None, record_output: bool = False) -> Recorded:
    """`redaction`: what the trace leaves out (default: redact.DEFAULT_HEADERS). The trace records
    digests of the guest's stdout and stderr, and with `record_output` the bytes too."""
    try:
        rules = (redaction or redact.Redaction()).rules()
    except redact.BadRedaction as e:
        raise UsageError(str(e)) from None
    with trace_output_errors():
        writer = TraceWriter(trace_path, fmt, overwrite=overwrite)
    http = http or HttpOptions()
    limits = limits or runner.Limits()
    try:
        # The writer closes last, after the proxy has stopped. A crash of rr itself leaves
        # the trace without an outcome: readable, and reported as incomplete.
        with writer, contextlib.ExitStack() as stack:
            writer.write_header(make_header(program, sandbox, limits, rules))
            shared = SharedWriter(writer)
            outputs = output.Outputs(sandbox.stdout, sandbox.stderr, keep=(1 << 62) if record_output else 0,
                                     on_failure=lambda *failed: shared.write_side(output.failure_event(*failed)))
            sandbox = dataclasses.replace(sandbox, stdout=outputs.stdout, stderr=outputs.stderr)
            tap = Recorder(redact.EnvRedactingWriter(shared, rules) if rules["env"] else shared)  # type: ignore[arg-type]
            services: dict[str, Any] = {}
            proxy = None
            try:
                relay = _relays_tcp(program, sandbox)
                if program.imports_interface("wasi:http/") or relay:
                    # The web UI shows its address and the relay its listeners at once; else
                    # the proxy starts at the guest's first request.
                    proxy = stack.enter_context(_start_proxy(http, "record", on_flow=shared.write_flow,
                                                             redaction=rules, relay=relay, bodies=shared,
                                                             stream_above=stream_above(),
                                                             on_demand=not (http.inspect or relay)))
                    services.update(_proxy_transport(proxy, stack))
                    if relay:
                        from .host.sockets.connect import routed_through
                        stack.enter_context(routed_through(proxy))
                outcome = runner.run(program, sandbox, tap, limits, services, on_stop=shared.seal)
                if relay:
                    from .host.sockets.connect import settle
                    settle()   # the web UI shows every byte once the guest has finished
            except (signals.Signalled, KeyboardInterrupt) as e:
                # Stopped before the guest ran: it had completed no host call, and its replay
                # is refused the first one.
                shared.seal()
                signals.stopped()
                outcome = runner.stopped(signals.reason_of(e), 0, limits)
            secrets = _redacted_values(sandbox, rules, proxy) if record_output else set()
            ended = dataclasses.replace(to_trace_outcome(outcome, shared.events),
                                        output=outputs.summary(with_data=record_output, secrets=secrets))
            if services and http.after_run:
                # The trace is finished first: the outcome is written and the writer takes no
                # more flows (an exchange the guest abandoned mid-flight is left out), so
                # Ctrl-C while the UI stays up loses nothing.
                with signals.held(drop=True):
                    shared.write_outcome(ended)
                http.after_run()
            # The run has ended: a signal now changes nothing in the trace, so it waits.
            with signals.held(drop=True):
                stack.close()  # stop the proxy: every finished flow is in the trace before the outcome
                if not shared.finished:
                    shared.write_outcome(ended)
    except BaseException:
        if writer.error is not None:   # the disk filled up (or failed) under the recording
            raise OutputError(_write_failure(writer)) from None
        raise
    return Recorded(outcome, shared.events, Path(trace_path), shared.flows, ended.output, outputs.withheld)


def _redacted_values(sandbox: Sandbox, rules: dict[str, Any], proxy: Any) -> set[bytes]:
    """What the trace left out, to keep it out of the recorded output bytes too."""
    names = set(rules["env"])
    values = {v.encode() for k, v in sandbox.env if k in names}
    if proxy is not None and proxy.addon is not None:
        values |= proxy.addon.redacted_values
    return values


def _write_failure(writer: TraceWriter) -> str:
    """What a failed write left: one line for the user."""
    why = f"{writer.path}: cannot write the trace: {writer.error.strerror or writer.error}"  # type: ignore[union-attr]
    n = writer.events_written
    if writer.kept == writer.path:
        return f"{why}; kept the {n} events recorded before (an incomplete trace)"
    if writer.kept is not None:
        return f"{why}; {writer.path} is unchanged, the {n} events recorded before are in {writer.kept}"
    return f"{why}; no event was recorded" + (" (the old trace is unchanged)" if os.path.exists(writer.path) else
                                             ", nothing was kept")


def _relays_tcp(program: runner.Program, sandbox: Sandbox) -> bool:
    """A recording sends the guest's TCP connections through the proxy (to show them where its
    HTTP shows) when it may make any."""
    grant = sandbox.sockets
    return bool(grant and grant.protocol("tcp") and program.imports_interface("wasi:sockets/"))


def _proxy_transport(proxy: Any, stack: contextlib.ExitStack) -> dict[str, Any]:
    """The run's services entry that sends the guest's HTTP to the embedded proxy (starting it
    at the first request if it is not running); its kept-alive connections close before the
    proxy stops (the stack unwinds in reverse)."""
    from .host.http.outgoing import TRANSPORT_SERVICE
    from .host.http.transport import ProxyTransport

    if proxy.port is not None:
        transport = ProxyTransport(proxy.port, proxy.credentials)
    else:
        transport = _starting_transport(proxy)

        def start_failure(kind: Any, error: BaseException | None, tb: Any) -> bool:
            if isinstance(error, _ProxyDidNotStart):
                raise error.error   # as the start at launch would have raised it
            return False
        stack.push(start_failure)
    stack.callback(transport.close)
    return {TRANSPORT_SERVICE: transport}


def _starting_transport(proxy: Any) -> Any:
    """A ProxyTransport that starts `proxy` at the guest's first request: a run that makes
    none pays nothing for mitmproxy (its import and start, ~100 ms of a whole process). The
    start happens on the guest's thread, inside its first `handle` call, so a proxy that cannot
    start ends the run with the error the start at launch gave (never an HTTP error the guest
    would see and a recording would keep as if an upstream had answered it)."""
    import threading

    from .host.http.transport import ProxyTransport

    class StartingTransport(ProxyTransport):
        def __init__(self) -> None:
            super().__init__(0, "")
            self._start_lock = threading.Lock()

        def ready(self) -> None:
            with self._start_lock:
                if proxy.port is None:
                    try:
                        proxy.start()
                    except Exception as e:  # noqa: BLE001 - carried out of the guest, re-raised
                        raise _ProxyDidNotStart(e) from e
                    self.port, self.credentials = proxy.port, proxy.credentials

    return StartingTransport()


class _ProxyDidNotStart(Unwind):
    """The on-demand proxy's start failed inside the guest's call: the guest stops, and
    _proxy_transport re-raises `error` once the run has unwound."""

    def __init__(self, error: Exception):
        super().__init__(f"the HTTP proxy did not start: {error}")
        self.error = error


@contextlib.contextmanager
def _start_proxy(http: HttpOptions, mode: str, on_demand: bool = False, **kw: Any) -> Iterator[Any]:
    """The embedded proxy in `mode`, configured from `http`, for the length of a run.
    `on_demand`: not started here (_proxy_transport's transport starts it); `proxy.addon` is
    None until then."""
    from .proxy import EmbeddedProxy
    try:
        proxy = EmbeddedProxy(mode=mode, extra_ca=http.extra_ca, web=http.inspect, web_host=http.inspect_host,
                              web_port=http.inspect_port, dump=http.dump, verbose=http.verbose, **kw)
    except FileNotFoundError as e:
        raise RRError(f"--ca-cert: {e}") from None
    from .proxy import WebUIError
    try:
        if not on_demand:
            proxy.start()
    except WebUIError as e:
        raise RRError(f"--inspect: {e}") from None
    try:
        if proxy.web_url and http.on_web_url:
            http.on_web_url(proxy.web_url)
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Replayed:
    outcome: runner.Outcome
    events: int
    stopped_at: int | None = None
    incomplete: str | None = None   # the trace's own problem, if the recording was cut short
    output: output.Outputs | None = None   # what the replayed guest wrote (digests, the first bytes)


def check_component(program: runner.Program, header: Header, trace_path: str) -> None:
    if header.component.sha256 != program.sha256:
        raise BadTrace(
            f"{trace_path} was recorded with a different component: trace has "
            f"{header.component.name} sha256 {header.component.sha256}, "
            f"{program.path.name} is sha256 {program.sha256}")


def replay_sandbox(header: Header, stdout, stderr,  # type: ignore[no-untyped-def]
                   trace_path: str = "the trace") -> Sandbox:
    # The host directories are never touched on replay: reads come from the trace.
    preopens = [Preopen(host="", guest=d["guest"], writable=d.get("mode") == "rw") for d in header.dirs]
    return Sandbox(argv=list(header.argv), env=[(k, v) for k, v in header.env], preopens=preopens,
                   stdin=None, stdout=stdout, stderr=stderr, http_allow=recorded_http_allow(header, trace_path),
                   sockets=recorded_sockets(header, trace_path))


def recorded_sockets(header: Header, trace_path: str):  # type: ignore[no-untyped-def]
    from .host.sockets.grant import BadGrant, SocketGrant
    if SOCKETS not in header.extra:
        return None
    try:
        return SocketGrant.from_header(header.extra[SOCKETS])
    except BadGrant as e:
        raise BadTrace(f"{trace_path}: header field {SOCKETS!r}: {e}") from None


def recorded_http_allow(header: Header, trace_path: str) -> list[str]:
    from .host.http.grant import ALL, BadPattern, HttpGrant   # here: a recording needs none of it
    # Traces from before the grant existed have no such field: their guests could reach anything.
    patterns = header.extra.get(HTTP_ALLOW, [ALL])
    try:
        if type(patterns) is not list or not all(type(p) is str for p in patterns):
            raise BadPattern("not a list of str")
        HttpGrant(patterns)
    except BadPattern as e:
        raise BadTrace(f"{trace_path}: header field {HTTP_ALLOW!r}: {e}") from None
    return patterns


def replay(program: runner.Program, trace_path: str, stdout, stderr,  # type: ignore[no-untyped-def]
           until: int | None = None, other_build: bool = False, check_output: bool = True) -> Replayed:
    """Replay `trace_path` (a file, or a pipe such as `<(cat t.cbor)`) under the limits the trace
    records: the same --max-memory, and a recorded stop (timeout, SIGINT, SIGTERM) at the same host
    call; there is no wall-clock limit. The trace is read once: an HTTP guest's flow records
    are taken by the replay proxy as its requests come (merge.FlowIndex). `other_build`: `program`
    may be another build than the recorded one (a regression replay, rr/regression.py).
    `check_output`: the guest's stdout and stderr must be the recorded ones (when the trace
    records them)."""
    http = program.imports_interface("wasi:http/")
    with contextlib.ExitStack() as stack:
        if http or program.imports_interface("wasi:sockets/"):
            # HTTP and sockets are served from the trace: nothing but loopback (the replay
            # proxy) may connect from here on. (Imported here: socket is not needed before.)
            from . import netlock
            netlock.engage()
            stack.callback(netlock.release)
        try:
            reader = stack.enter_context(open_trace(trace_path))
        except TraceError as e:
            raise BadTrace(str(e)) from None
        if not other_build:
            check_component(program, reader.header, trace_path)
        stop = runner.ReplayStop()
        outputs = output.Outputs(stdout, stderr, keep=output.REPLAY_KEEP, replay=True)

        def side_data(event: Any) -> bool:
            """Flow records (the proxy serves them) and where the recording's stdio failed."""
            if output.is_failure(event):
                outputs.recorded_failure(event)   # when read: before the guest's next write
                return True
            return is_side(event)

        index = FlowIndex(reader)
        # Native calls take events straight from the trace's cursor when there is one and no
        # replay proxy reads ahead of them (FlowIndex.find, on its own thread)
        cursor = None if http else reader.cursor
        ahead = ReadAhead(index, side_data, lambda: _arm(stop, reader),
                          vouched=cursor.vouched if cursor is not None else None)
        tap = Replayer(ahead, until, side_data=side_data)
        if cursor is not None:
            tap.attach_cursor(cursor, (ahead._queue, index._pending), index)
        sandbox = replay_sandbox(reader.header, outputs.stdout, outputs.stderr, trace_path)
        limits = runner.Limits(max_memory=reader.header.limits.get("max_memory"))
        services: dict[str, Any] = {}
        proxy = None
        if http:
            try:
                rules = redact.recorded_rules(reader.header)
            except redact.BadRedaction as e:
                raise BadTrace(f"{trace_path}: {e}") from None
            proxy = stack.enter_context(_start_proxy(HttpOptions(), "replay", on_demand=True, fetch_flows=index.find,
                                                     redaction=rules, bodies=index))
            services.update(_proxy_transport(proxy, stack))
        try:
            outcome = runner.run(program, sandbox, tap, limits, services, replay_stop=stop)
        except ReplayStopped as s:
            return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=s.index)
        except TraceCorrupt as e:
            _bad_flow_record(index)
            raise BadTrace(str(e)) from None
        except Divergence as d:
            _bad_flow_record(index)
            if stop.kind is not None and not _leftover(tap):
                # The guest asked for the event the recording was stopped waiting for.
                outcome = runner.Outcome(stop.kind, runner.STOP_STATUS[stop.kind], stop.message,
                                         calls=stop.calls, replayed_stop=True)
            else:
                if _cut_short(tap, reader, index):
                    # The recording itself was cut short (killed): replay ends where it ended. An
                    # HTTP request the proxy has no record of is then the one it was making.
                    return _ended_with_the_recording(tap, reader)
                _raise_http_mismatch(proxy)
                raise Diverged(d.message, d) from None
        if outcome.kind in STOP_KINDS and not outcome.replayed_stop:
            return Replayed(outcome, tap.consumed)  # the replay itself was interrupted (Ctrl-C)
        if (proxy is not None and proxy.addon is not None and proxy.addon.mismatches and not outcome.replayed_stop
                and _cut_short(tap, reader, index)):
            return _ended_with_the_recording(tap, reader)
        _bad_flow_record(index)
        # A recorded stop may have cut HTTP exchanges short: those were never recorded.
        in_flight = {f["id"] for f in _all_flows(index)} if outcome.replayed_stop else None
        _raise_http_mismatch(proxy, in_flight)
        leftover = _leftover(tap)
        if leftover:
            shown = "\n".join(f"   >> {i:>6}  {format_event(e)}" for i, e in leftover)
            raise Diverged(f"replay diverged: the guest finished ({describe_outcome(outcome)}) but the trace "
                           f"has more events from event {tap.index}:\n{shown}")
        _drain(index)  # to learn the recorded outcome, and that nothing follows it
        # (A proxy the guest never asked to start answered nothing: every recorded flow is unused.)
        unused = [] if proxy is None or outcome.replayed_stop else \
            proxy.addon.unused() if proxy.addon is not None else _all_flows(index)
        if unused:
            ids = ", ".join(f"{r['id']} {r['request']['method']} {r['request']['url']}" for r in unused)
            raise Diverged(f"replay diverged: recorded HTTP exchanges were never requested: {ids}")
        recorded = reader.outcome
        replayed = to_trace_outcome(outcome, tap.consumed)
        if recorded is not None and not _same_end(replayed, recorded):
            raise Diverged(f"replay diverged: the recording ended with {describe_outcome(recorded)}, "
                           f"the replay with {describe_outcome(replayed)}")
        # A run the guest ended itself wrote exactly the recorded output (a stop may strike
        # mid-way through a write: not compared).
        why = None if recorded is None or recorded.kind in STOP_KINDS or not check_output \
            else outputs.difference(recorded.output)
        if why is not None:
            raise Diverged(f"replay diverged: {why}")
        return Replayed(outcome, tap.consumed, incomplete=reader.problem, output=outputs)


def _ended_with_the_recording(tap: Replayer, reader) -> Replayed:  # type: ignore[no-untyped-def]
    """A replay of a cut-short trace that reached its end: stopped there, saying why."""
    return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=tap.index, incomplete=reader.problem)


def _bad_flow_record(index: FlowIndex) -> None:
    """A bad flow record the replay proxy met while reading ahead is the trace's fault, whatever
    the guest made of the answer it got instead."""
    if isinstance(index.error, BadFlowRecord):
        raise BadTrace(str(index.error))


def _all_flows(index: FlowIndex) -> list[dict[str, Any]]:
    records = index.find(None)
    _bad_flow_record(index)
    return records


def _same_end(replayed: TraceOutcome, recorded: TraceOutcome) -> bool:
    if recorded.kind in STOP_KINDS:
        # `calls` may differ by the one call a stop caught mid-way (see SharedWriter.write_event).
        return (replayed.kind, replayed.event) == (recorded.kind, recorded.event)
    return replayed.without_output() == recorded.without_output()


def _arm(stop: runner.ReplayStop, reader) -> None:  # type: ignore[no-untyped-def]
    ended = reader.outcome
    if ended is None or ended.kind not in STOP_KINDS:
        return
    what = {"timeout": f"guest exceeded --timeout {reader.header.limits.get('timeout', 0):g}s",
            **signals.MESSAGE}[ended.kind]
    stop.arm(ended.kind, ended.calls, f"{what} while recording; replay stopped at the same point "
                                      f"(after {ended.event} events)")


class ReadAhead:
    """The trace's events, read one guest event ahead of the consumer, so that the recorded
    outcome is known (and `at_end` called) before the last guest event is handed out: a
    replayed stop must be armed while the guest still makes the calls after that event.
    A read error is held back until the events before it have been handed out.
    `vouched()`: whether the reader's next record is known to be a guest event (the native
    cursor's check, rr/_native.c): then it need not be read ahead, and native calls can take it
    from the cursor themselves."""

    def __init__(self, reader, side_data: Callable[[Any], bool], at_end: Callable[[], None],  # type: ignore[no-untyped-def]
                 vouched: Callable[[], bool] | None = None):
        self._it = iter(reader)
        self._side = side_data
        self._at_end = at_end
        self._vouched = vouched
        self._queue: deque[Any] = deque()
        self._guest_events = 0      # guest events in the queue
        self._done = False
        self._error: BaseException | None = None
        self._fill(1)

    def _fill(self, want: int) -> None:
        while not self._done and self._guest_events < want:
            try:
                record = next(self._it)
            except StopIteration:
                self._done = True
                self._at_end()
                return
            except TraceError as e:
                self._done, self._error = True, e
                return
            self._queue.append(record)
            if not self._side(record):
                self._guest_events += 1

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> Any:
        if not self._queue:
            self._fill(1)   # not read ahead: it was vouched for
        if not self._queue:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            raise StopIteration
        record = self._queue.popleft()
        if not self._side(record):
            self._guest_events -= 1
            if not (self._guest_events == 0 and self._vouched is not None and self._vouched()):
                self._fill(1)
        return record


def _raise_http_mismatch(proxy: Any, in_flight_ok: set[str] | None = None) -> None:
    """A request the recording did not make is a divergence, except (`in_flight_ok`: the ids
    recorded) one a recorded stop caught before its exchange finished."""
    if proxy is None or proxy.addon is None:
        return
    mismatches = proxy.addon.mismatches
    if in_flight_ok is not None:
        mismatches = [m for m in mismatches if m["id"] in in_flight_ok]
    if mismatches:
        raise Diverged("replay diverged: the guest's HTTP request differs from the recording\n"
                       + proxy.addon.format_diff())


def _leftover(tap: Replayer) -> list[tuple[int, Any]]:
    try:
        return tap.leftover()
    except TraceCorrupt as e:   # found after the guest finished: still a bad trace
        raise BadTrace(str(e)) from None


def _drain(reader) -> None:  # type: ignore[no-untyped-def]
    if isinstance(reader, FlowIndex):
        reader.drop_bodies()   # the guest has finished: bodies it never read are not kept
    try:
        for _ in reader:
            pass
    except TraceError as e:
        raise BadTrace(str(e)) from None


def _cut_short(tap: Replayer, reader, rest: FlowIndex) -> bool:  # type: ignore[no-untyped-def]
    """Whether the guest used up every event (`rest`) of a trace that ends without an outcome.
    A corrupt rest of the trace is a BadTrace."""
    if _leftover(tap):
        return False
    _drain(rest)
    return not reader.complete


def describe_outcome(outcome: runner.Outcome | TraceOutcome) -> str:
    """How a run ended, for messages: a live outcome or a recorded one."""
    if outcome.kind == "exit":
        return f"exit status {outcome.status}"
    if isinstance(outcome, TraceOutcome) and outcome.kind in STOP_KINDS:
        return f"{outcome.kind} after {outcome.event} events"
    return f"{outcome.kind}: {outcome.message}"
