"""`rr verify`: record a run, then replay it N times and say whether every replay matched.

The "run twice, compare" check of `hermit run --verify`, with rr's own notion of a match: each
replay must ask for the recorded inputs in the recorded order, send the recorded HTTP
requests, end the way the recording ended and write the same stdout and stderr (rr/output.py).
A replay that does not is the evidence of a nondeterminism rr does not capture. The recording
writes to rr's stdout and stderr as `rr record` does; the replays write nowhere (their output
is checked, not shown).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runner, session
from .errors import EXIT_DIVERGED
from .host.context import Sandbox


@dataclass
class ReplayCheck:
    number: int               # 1-based
    divergence: str | None    # None: the replay matched

    @property
    def matched(self) -> bool:
        return self.divergence is None


@dataclass
class Verification:
    recorded: session.Recorded
    replays: list[ReplayCheck] = field(default_factory=list)
    trace_kept: bool = True

    @property
    def matched(self) -> bool:
        return all(r.matched for r in self.replays)

    @property
    def status(self) -> int:
        """0 when every replay matched, else EXIT_DIVERGED."""
        return 0 if self.matched else EXIT_DIVERGED

    def report(self) -> list[str]:
        """rr's lines on stderr (without the `rr: ` prefix)."""
        rec = self.recorded
        where = f" to {rec.path}" if self.trace_kept else ""
        flows = f", {rec.flows} HTTP exchanges" if rec.flows else ""
        lines = [f"verify: recorded {rec.events} events{flows}{where} ({session.describe_outcome(rec.outcome)})"]
        n = len(self.replays)
        differing: dict[str, list[int]] = {}   # the same divergence every time is said once
        for r in self.replays:
            if r.divergence is not None:
                differing.setdefault(r.divergence, []).append(r.number)
        for why, numbers in differing.items():
            which = f"replay {numbers[0]}" if len(numbers) == 1 else f"replays {', '.join(map(str, numbers))}"
            lines.append(f"verify: {which} of {n} differ{'s' * (len(numbers) == 1)} from the recording: {why}")
        same = sum(r.matched for r in self.replays)
        verdict = "every replay matched the recording" if self.matched else \
            f"{same} of {n} replays matched the recording"
        lines.append(f"verify: {verdict}" + ("" if self.matched else f" (the trace: {rec.path})"))
        return lines


def verify(program: runner.Program, sandbox: Sandbox, trace_path: str | os.PathLike[str] | None = None,
           replays: int = 2, *, fmt: str | None = None, limits: runner.Limits | None = None,
           overwrite: bool = False, http: session.HttpOptions | None = None,
           redaction: Any = None, record_output: bool = False) -> Verification:
    """Record `program` in `sandbox`, then replay the trace `replays` times. Without
    `trace_path` the trace is temporary: removed unless a replay differed."""
    tmp = tempfile.mkdtemp(prefix="rr-verify-") if trace_path is None else None
    path = Path(tmp, "verify.cbor") if tmp else Path(trace_path)  # type: ignore[arg-type]
    result: Verification | None = None
    try:
        recorded = session.record(program, sandbox, path, fmt, limits, overwrite=overwrite, http=http,
                                  redaction=redaction, record_output=record_output)
        result = Verification(recorded, trace_kept=tmp is None)
        for number in range(1, replays + 1):
            try:
                session.replay(program, os.fspath(path), None, None)
                result.replays.append(ReplayCheck(number, None))
            except session.Diverged as d:
                result.replays.append(ReplayCheck(number, str(d)))
    finally:
        if tmp is not None:
            if result is not None and not result.matched:
                result.trace_kept = True   # the evidence
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return result
