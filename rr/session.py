"""Recording and replaying a whole run: the trace header, the tap, the outcome.

`record` runs the guest live with a Recorder tap and writes the trace as it goes;
`replay` checks the component against the trace, rebuilds the sandbox from the
header alone, runs the guest with a Replayer tap and checks that it ended the way
the recording did.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, netlock, runner
from .cache import wasmtime_version
from .errors import EXIT_BAD_TRACE, EXIT_DIVERGED, RRError
from .host.context import Preopen, Sandbox
from .host.http.grant import ALL, BadPattern, HttpGrant
from .merge import BadFlowRecord, SharedWriter, flow_records, is_flow
from .tap import Divergence, Recorder, Replayer, ReplayStopped, TraceCorrupt, format_event
from .trace import ComponentInfo, Header, TraceError, TraceWriter, open_trace
from .trace import Outcome as TraceOutcome


class BadTrace(RRError):
    status = EXIT_BAD_TRACE


class Diverged(RRError):
    status = EXIT_DIVERGED


HTTP_ALLOW = "http_allow"  # header extra: the --allow-http grant, so replay needs no flags


def make_header(program: runner.Program, sandbox: Sandbox) -> Header:
    return Header(
        rr_version=__version__,
        wasmtime_version=wasmtime_version(),
        component=ComponentInfo(sha256=program.sha256, size=len(program.wasm), name=program.path.name),
        argv=list(sandbox.argv),
        env=[(k, v) for k, v in sandbox.env],
        dirs=[{"host": p.host, "guest": p.guest, "mode": "rw" if p.writable else "ro"}
              for p in sandbox.preopens],
        start_time=time.time(),
        extra={HTTP_ALLOW: list(sandbox.http_allow)},
    )


def to_trace_outcome(outcome: runner.Outcome) -> TraceOutcome:
    if outcome.kind == "exit":
        return TraceOutcome.exit(outcome.status)
    return TraceOutcome.trap(outcome.message or outcome.kind)


@dataclass
class Recorded:
    outcome: runner.Outcome
    events: int
    path: Path
    flows: int = 0


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
    # Called once the guest has finished, before the proxy (and its web UI) stops:
    # `--inspect-wait` keeps the UI up there until Ctrl-C.
    after_run: Callable[[], None] | None = None


def record(program: runner.Program, sandbox: Sandbox, trace_path: str | os.PathLike[str],
           fmt: str | None = None, limits: runner.Limits | None = None,
           overwrite: bool = False, http: HttpOptions | None = None) -> Recorded:
    try:
        writer = TraceWriter(trace_path, fmt, overwrite=overwrite)
    except TraceError as e:
        raise RRError(f"{e} (use --force to replace it)" if "overwrite" in str(e) else str(e)) from None
    except OSError as e:
        raise RRError(f"{trace_path}: cannot create trace: {e.strerror}") from None
    http = http or HttpOptions()
    with writer, contextlib.ExitStack() as stack:
        writer.write_header(make_header(program, sandbox))
        shared = SharedWriter(writer)
        tap = Recorder(shared)  # type: ignore[arg-type]
        services: dict[str, Any] = {}
        if program.imports_interface("wasi:http/"):
            proxy = stack.enter_context(_start_proxy(http, "record", on_flow=shared.write_flow))
            services.update(_proxy_transport(proxy.port, stack))
        # A crash of rr itself leaves the trace without an outcome: readable, and
        # reported as incomplete, never silently truncated.
        outcome = runner.run(program, sandbox, tap, limits, services)
        if services and http.after_run:
            # The trace is finished first: the outcome is written and the writer takes no
            # more flows (an exchange the guest abandoned mid-flight is left out), so
            # Ctrl-C while the UI stays up loses nothing.
            shared.write_outcome(to_trace_outcome(outcome))
            http.after_run()
        stack.close()  # stop the proxy: every finished flow is in the trace before the outcome
        if not shared.finished:
            shared.write_outcome(to_trace_outcome(outcome))
    return Recorded(outcome, tap.count, Path(trace_path), shared.flows)


def _proxy_transport(port: int, stack: contextlib.ExitStack) -> dict[str, Any]:
    """The run's services entry that sends the guest's HTTP to the embedded proxy; its kept-
    alive connections close before the proxy stops (the stack unwinds in reverse)."""
    from .host.http.outgoing import TRANSPORT_SERVICE
    from .host.http.transport import ProxyTransport
    transport = ProxyTransport(port)
    stack.callback(transport.close)
    return {TRANSPORT_SERVICE: transport}


@contextlib.contextmanager
def _start_proxy(http: HttpOptions, mode: str, **kw: Any) -> Iterator[Any]:
    """The embedded proxy in `mode`, configured from `http`, for the length of a run."""
    from .proxy import EmbeddedProxy
    try:
        proxy = EmbeddedProxy(mode=mode, extra_ca=http.extra_ca, web=http.inspect, web_host=http.inspect_host,
                              web_port=http.inspect_port, dump=http.dump, verbose=http.verbose, **kw)
    except FileNotFoundError as e:
        raise RRError(f"--ca-cert: {e}") from None
    proxy.start()
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
                   stdin=None, stdout=stdout, stderr=stderr, http_allow=recorded_http_allow(header, trace_path))


def recorded_http_allow(header: Header, trace_path: str) -> list[str]:
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
           until: int | None = None, limits: runner.Limits | None = None) -> Replayed:
    try:
        reader = open_trace(trace_path)
    except FileNotFoundError:
        raise BadTrace(f"{trace_path}: no such file") from None
    except TraceError as e:
        raise BadTrace(str(e)) from None
    with reader, contextlib.ExitStack() as stack:
        check_component(program, reader.header, trace_path)
        tap = Replayer(iter(reader), until, side_data=is_flow)
        sandbox = replay_sandbox(reader.header, stdout, stderr, trace_path)
        services: dict[str, Any] = {}
        proxy = None
        if program.imports_interface("wasi:http/"):
            try:
                flows = flow_records(trace_path)
            except BadFlowRecord as e:
                raise BadTrace(str(e)) from None
            except TraceError:
                flows = []  # the corruption is reported when the replay reaches it
            # Nothing but loopback from here on: the proxy answers from the trace.
            netlock.engage()
            stack.callback(netlock.release)
            proxy = stack.enter_context(_start_proxy(HttpOptions(), "replay", flows=flows))
            services.update(_proxy_transport(proxy.port, stack))
        try:
            outcome = runner.run(program, sandbox, tap, limits, services)
        except ReplayStopped as stop:
            return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=stop.index)
        except TraceCorrupt as e:
            raise BadTrace(str(e)) from None
        except Divergence as d:
            _raise_http_mismatch(proxy)
            if not _leftover(tap) and _cut_short(reader):
                # The recording itself was cut short (killed): replay ends where it ended.
                return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=tap.index,
                                incomplete=reader.problem)
            raise Diverged(d.message) from None
        _raise_http_mismatch(proxy)
        leftover = _leftover(tap)
        if leftover:
            shown = "\n".join(f"   >> {i:>6}  {format_event(e)}" for i, e in leftover)
            raise Diverged(f"replay diverged: the guest finished ({describe_outcome(outcome)}) but the trace "
                           f"has more events from event {tap.index}:\n{shown}")
        try:
            for _ in reader:  # drain to learn the recorded outcome
                pass
        except TraceError as e:
            raise BadTrace(str(e)) from None
        if proxy is not None and proxy.addon.unused():
            ids = ", ".join(f"{r['id']} {r['request']['method']} {r['request']['url']}" for r in proxy.addon.unused())
            raise Diverged(f"replay diverged: recorded HTTP exchanges were never requested: {ids}")
        recorded = reader.outcome
        if recorded is not None and to_trace_outcome(outcome) != recorded:
            raise Diverged(f"replay diverged: the recording ended with {describe_outcome(recorded)}, "
                           f"the replay with {describe_outcome(outcome)}")
        return Replayed(outcome, tap.consumed, incomplete=reader.problem)


def _leftover(tap: Replayer) -> list[tuple[int, Any]]:
    # Looking ahead past the guest's last call can meet the corruption first.
    try:
        return tap.leftover()
    except TraceCorrupt as e:
        raise BadTrace(str(e)) from None


def _raise_http_mismatch(proxy: Any) -> None:
    if proxy is not None and proxy.addon.mismatches:
        raise Diverged("replay diverged: the guest's HTTP request differs from the recording\n"
                       + proxy.addon.format_diff())


def _cut_short(reader) -> bool:  # type: ignore[no-untyped-def]
    try:
        for _ in reader:
            pass
    except TraceError:
        return False
    return not reader.complete


def describe_outcome(outcome: runner.Outcome | TraceOutcome) -> str:
    """How a run ended, for messages: a live outcome or a recorded one."""
    return f"exit status {outcome.status}" if outcome.kind == "exit" else f"{outcome.kind}: {outcome.message}"
