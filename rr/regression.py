"""Regression replay (`rr replay NEW.wasm T --component-changed`): a trace recorded with one
build of a component, replayed against another build.

The recorded inputs are served for as long as the new build asks for the same things in the
same order (the same calls with the same arguments, the same HTTP requests); where it asks
for something else, or stops asking early, or ends differently, the replay stops and the
report says where and how it departed: the event, what the recording had next, what the new
build asked for, and the events around it. The trace alone is the reference: how the run ended
is compared, and stdout and stderr where the trace records them (digests, rr/output.py); a
trace without them says so in the report.

Exit 0 when the new build ran through the recording as recorded, 121 when it departed, the
usual 122 for a bad trace.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import runner, session
from .errors import EXIT_BAD_TRACE, EXIT_DIVERGED, UsageError
from .output import STREAMS
from .tap import format_event
from .trace.model import STOP_KINDS
from .trace.served import is_server_trace


@dataclass
class Report:
    status: int          # 0: as recorded; 121: departed; 122: the trace is cut short
    lines: list[str]     # what to tell the user (stderr), the first line is the verdict

    @property
    def same(self) -> bool:
        return self.status == 0


def replay_other_build(program: runner.Program, trace_path: str, stdout: BinaryIO | None,
                       stderr: BinaryIO | None, check_output: bool = True) -> Report:
    """Replay `trace_path` against `program`, which need not be the recorded build.
    `check_output` False: stdout and stderr are not compared (`--no-output-check`)."""
    header = _header(trace_path)
    refuse_server_trace(trace_path, header)
    itself = header is not None and program.sha256 == header.component.sha256
    build = f"{program.path.name} (sha256 {program.sha256[:16]}{', the recorded build itself' if itself else ''})"
    recorded = "" if header is None else \
        f" (recorded with {header.component.name} sha256 {header.component.sha256[:16]})"
    against = f"{trace_path}{recorded} against {build}"
    try:
        result = session.replay(program, trace_path, stdout, stderr, other_build=True, check_output=check_output)
    except session.Diverged as e:
        return Report(EXIT_DIVERGED, departure(against, e))
    if result.incomplete:
        return Report(EXIT_BAD_TRACE, [
            f"regression replay of {against}: the build asked for the same {result.events} events as "
            f"recorded, but the trace is incomplete ({result.incomplete}): nothing to compare after that"])
    ended = session.describe_outcome(result.outcome)
    return Report(0, [
        f"regression replay of {against}: ran as recorded: the same {result.events} events in the same "
        f"order, ended the same way ({ended})",
        _output_note(trace_path) if check_output else "  stdout and stderr not compared (--no-output-check)"])


def _output_note(trace_path: str) -> str:
    """What the report can say of stdout and stderr: the replay compares them with the recording
    when the trace records them (an rr that keeps output digests), else they were not compared."""
    if _header(trace_path) is None:
        return "  stdout and stderr compared only if the trace records them (read from a pipe: rr cannot tell)"
    from .trace import open_trace
    with open_trace(trace_path) as reader:
        for _ in reader:
            pass
        ended = reader.outcome
    if ended is not None and ended.kind in STOP_KINDS:
        return (f"  stdout and stderr not compared: the recording was stopped from outside ({ended.kind}), "
                "maybe in the middle of a write")
    output = None if ended is None else ended.output
    if not isinstance(output, dict) or not output:
        return "  stdout and stderr not compared: the trace holds no record of the guest's output"
    sizes = ", ".join(f"{name} {output[name].get('size')} bytes" for name in STREAMS
                      if isinstance(output.get(name), dict))
    return f"  stdout and stderr as recorded ({sizes})"


def refuse_server_trace(trace_path: str, header: Any = None) -> None:
    """An `rr serve` trace replays request by request (`rr replay --request`), not as one run."""
    header = header or _header(trace_path)
    if header is not None and is_server_trace(header):
        raise UsageError(f"--component-changed: {trace_path} is a server trace (rr serve -t): a regression "
                         "replay takes a command's trace")


def departure(against: str, e: session.Diverged) -> list[str]:
    """Where and how the new build departed from the recording."""
    d = e.divergence
    if d is None or d.index is None:
        # It ended differently, left recorded events unused, or sent another HTTP request.
        what = str(e).removeprefix("replay diverged: ").replace(", the replay with ", ", the build with ")
        first, _, rest = what.partition("\n")
        return [f"regression replay of {against}: the build departed from the recording: {first}",
                *rest.splitlines()]
    context = d.message.splitlines()[1:]
    lines = [f"regression replay of {against}: the build departed from the recording at event {d.index}"]
    if d.recorded is None:
        lines.append("  recorded next:    nothing (the recording ends here)")
    else:
        lines.append(f"  recorded next:    {format_event(d.recorded)}")
    lines.append(f"  the build asked:  {d.asked}")
    if context:
        lines.append("  events around it (>> the recorded event it departed at):")
        lines += context
    return lines


def _header(trace_path: str) -> Any:
    """The trace's header, read ahead of the replay; None for a pipe (it can be read once)."""
    from .trace import TraceError, open_trace
    try:
        if not stat.S_ISREG(os.stat(trace_path).st_mode):
            return None
    except OSError:
        return None   # the replay says what is wrong with it
    try:
        with open_trace(trace_path) as reader:
            return reader.header
    except TraceError as e:
        raise session.BadTrace(str(e)) from None
