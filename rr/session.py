"""Recording and replaying a whole run: the trace header, the tap, the outcome.

`record` runs the guest live with a Recorder tap and writes the trace as it goes;
`replay` checks the component against the trace, rebuilds the sandbox from the
header alone, runs the guest with a Replayer tap and checks that it ended the way
the recording did.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__, runner
from .cache import wasmtime_version
from .errors import EXIT_BAD_TRACE, EXIT_DIVERGED, RRError
from .host.context import Preopen, Sandbox
from .tap import Divergence, Recorder, Replayer, ReplayStopped, TraceCorrupt, format_event
from .trace import ComponentInfo, Header, TraceError, TraceWriter, open_trace
from .trace import Outcome as TraceOutcome


class BadTrace(RRError):
    status = EXIT_BAD_TRACE


class Diverged(RRError):
    status = EXIT_DIVERGED


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


def record(program: runner.Program, sandbox: Sandbox, trace_path: str | os.PathLike[str],
           fmt: str | None = None, limits: runner.Limits | None = None,
           overwrite: bool = False) -> Recorded:
    try:
        writer = TraceWriter(trace_path, fmt, overwrite=overwrite)
    except TraceError as e:
        raise RRError(f"{e} (use --force to replace it)" if "overwrite" in str(e) else str(e)) from None
    except OSError as e:
        raise RRError(f"{trace_path}: cannot create trace: {e.strerror}") from None
    with writer:
        writer.write_header(make_header(program, sandbox))
        tap = Recorder(writer)
        # A crash of rr itself leaves the trace without an outcome: readable, and
        # reported as incomplete, never silently truncated.
        outcome = runner.run(program, sandbox, tap, limits)
        writer.write_outcome(to_trace_outcome(outcome))
    return Recorded(outcome, tap.count, Path(trace_path))


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


def replay_sandbox(header: Header, stdout, stderr) -> Sandbox:  # type: ignore[no-untyped-def]
    # The host directories are never touched on replay: reads come from the trace.
    preopens = [Preopen(host="", guest=d["guest"], writable=d.get("mode") == "rw") for d in header.dirs]
    return Sandbox(argv=list(header.argv), env=[(k, v) for k, v in header.env], preopens=preopens,
                   stdin=None, stdout=stdout, stderr=stderr)


def replay(program: runner.Program, trace_path: str, stdout, stderr,  # type: ignore[no-untyped-def]
           until: int | None = None, limits: runner.Limits | None = None) -> Replayed:
    try:
        reader = open_trace(trace_path)
    except FileNotFoundError:
        raise BadTrace(f"{trace_path}: no such file") from None
    except TraceError as e:
        raise BadTrace(str(e)) from None
    with reader:
        check_component(program, reader.header, trace_path)
        tap = Replayer(iter(reader), until)
        sandbox = replay_sandbox(reader.header, stdout, stderr)
        try:
            outcome = runner.run(program, sandbox, tap, limits)
        except ReplayStopped as stop:
            return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=stop.index)
        except TraceCorrupt as e:
            raise BadTrace(str(e)) from None
        except Divergence as d:
            if not tap.leftover() and _cut_short(reader):
                # The recording itself was cut short (killed): replay ends where it ended.
                return Replayed(runner.Outcome("stopped", 0), tap.index, stopped_at=tap.index,
                                incomplete=reader.problem)
            raise Diverged(d.message) from None
        leftover = tap.leftover()
        if leftover:
            shown = "\n".join(f"   >> {tap.index + i:>6}  {format_event(e)}" for i, e in enumerate(leftover))
            raise Diverged(f"replay diverged: the guest finished ({_describe(outcome)}) but the trace "
                           f"has more events from event {tap.index}:\n{shown}")
        try:
            for _ in reader:  # drain to learn the recorded outcome
                pass
        except TraceError as e:
            raise BadTrace(str(e)) from None
        recorded = reader.outcome
        if recorded is not None and to_trace_outcome(outcome) != recorded:
            raise Diverged(f"replay diverged: the recording ended with {_describe_trace(recorded)}, "
                           f"the replay with {_describe(outcome)}")
        return Replayed(outcome, tap.index, incomplete=reader.problem)


def _cut_short(reader) -> bool:  # type: ignore[no-untyped-def]
    try:
        for _ in reader:
            pass
    except TraceError:
        return False
    return not reader.complete


def _describe(outcome: runner.Outcome) -> str:
    return f"exit status {outcome.status}" if outcome.kind == "exit" else f"{outcome.kind}: {outcome.message}"


def _describe_trace(outcome: TraceOutcome) -> str:
    return f"exit status {outcome.status}" if outcome.kind == "exit" else f"{outcome.kind}: {outcome.message}"
