"""The trace data model: a header, events in call order, and an outcome.

Trace values (event args and results, header extras) are: None, bool, int (any size),
float, str, bytes, lists of trace values and dicts with str keys. Tuples are written as
lists, so they read back as lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .versions import CURRENT_VERSION, FORMAT_NAME

OutcomeKind = Literal["exit", "trap", "stopped", "memory", "timeout", "interrupted", "terminated"]
# A run stopped from outside: --timeout, SIGINT, SIGTERM. `event` is how many of the guest's
# own events (HTTP flow records not counted) it had consumed and `calls` how many host calls
# it had completed when the stop struck; a replay refuses the next call and ends the same way.
STOP_KINDS = ("timeout", "interrupted", "terminated")
_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "exit": (("status", int),), "trap": (("message", str),), "stopped": (("event", int),),
    "memory": (("message", str),),   # the guest's memory did not fit --max-memory
    **{kind: (("event", int), ("calls", int)) for kind in STOP_KINDS},
}


@dataclass(frozen=True)
class ComponentInfo:
    sha256: str   # hex digest of the component file
    size: int
    name: str


@dataclass(frozen=True, kw_only=True)
class Header:
    rr_version: str
    wasmtime_version: str
    component: ComponentInfo
    argv: list[str]
    env: list[tuple[str, str]]
    dirs: list[dict[str, str]]          # {"host": ..., "guest": ..., "mode": ...}
    start_time: float                   # unix seconds
    # The run's limits, applied again on replay: {"max_memory": bytes, "timeout": seconds}
    # (each only when set); written only when not empty.
    limits: dict[str, Any] = field(default_factory=dict)
    # Fields written by a newer rr of the same format version; kept and re-written as is.
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    version: int = CURRENT_VERSION


@dataclass(frozen=True)
class Event:
    call: str            # "wasi:clocks/wall-clock.now": interface without version, '.', function
    args: list[Any]
    result: Any
    failed: bool = False  # True when `result` is an error payload returned to the guest as `err`

    @property
    def interface(self) -> str:
        return self.call.partition(".")[0]


@dataclass(frozen=True)
class Outcome:
    """How the run ended: exit(status), trap(message), stopped(event) for a partial replay,
    memory(message), or a stop from outside: timeout/interrupted/terminated(event, calls)."""

    kind: OutcomeKind
    status: int | None = None     # exit only
    message: str | None = None    # trap and memory
    event: int | None = None      # stopped: index of the event replay stopped at; stops: events consumed
    calls: int | None = None      # stops only: host calls the guest had completed
    # What the guest wrote, per stream ("stdout", "stderr"): size, sha256, chunk digests and,
    # with --record-output, the bytes (rr/output.py). Absent in traces from before rr had it.
    output: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _FIELDS:
            raise ValueError(f"outcome kind must be one of {', '.join(_FIELDS)}, not {self.kind!r}")
        wanted = dict(_FIELDS[self.kind])
        for other in ("status", "message", "event", "calls"):
            value = getattr(self, other)
            if other in wanted and type(value) is not wanted[other]:
                raise ValueError(f"{self.kind} outcome needs {other}: {wanted[other].__name__}, got {value!r}")
            if other not in wanted and value is not None:
                raise ValueError(f"{self.kind} outcome cannot carry {other}={value!r}")

    @classmethod
    def fields(cls, kind: str) -> tuple[str, ...] | None:
        """The fields a `kind` outcome carries (None: not a kind)."""
        return tuple(name for name, _ in _FIELDS[kind]) if kind in _FIELDS else None

    def without_output(self) -> Outcome:
        """How the run ended, whatever it wrote (for comparing endings)."""
        return replace(self, output=None)

    @classmethod
    def stop(cls, kind: str, event: int, calls: int) -> Outcome:
        return cls(kind, event=event, calls=calls)  # type: ignore[arg-type]

    @classmethod
    def memory(cls, message: str) -> Outcome:
        return cls("memory", message=message)

    @classmethod
    def exit(cls, status: int) -> Outcome:
        return cls("exit", status=status)

    @classmethod
    def trap(cls, message: str) -> Outcome:
        return cls("trap", message=message)

    @classmethod
    def stopped(cls, event: int) -> Outcome:
        return cls("stopped", event=event)


@dataclass(frozen=True)
class Trace:
    header: Header
    events: list[Event]
    outcome: Outcome | None
    complete: bool               # False when the file ended without an outcome or with a torn record
    problem: str | None = None   # why it is incomplete
