"""The trace data model: a header, events in call order, and an outcome.

Trace values (event args and results, header extras) are: None, bool, int (any size),
float, str, bytes, lists of trace values and dicts with str keys. Tuples are written as
lists, so they read back as lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .versions import CURRENT_VERSION, FORMAT_NAME

OutcomeKind = Literal["exit", "trap", "stopped"]


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
    """How the run ended: exit(status), trap(message), or stopped(event) for a partial replay."""

    kind: OutcomeKind
    status: int | None = None     # exit only
    message: str | None = None    # trap only
    event: int | None = None      # stopped only: index of the event replay stopped at

    def __post_init__(self) -> None:
        wanted = {"exit": ("status", int), "trap": ("message", str), "stopped": ("event", int)}
        if self.kind not in wanted:
            raise ValueError(f"outcome kind must be exit, trap or stopped, not {self.kind!r}")
        name, typ = wanted[self.kind]
        for other in ("status", "message", "event"):
            value = getattr(self, other)
            if other == name and type(value) is not typ:
                raise ValueError(f"{self.kind} outcome needs {name}: {typ.__name__}, got {value!r}")
            if other != name and value is not None:
                raise ValueError(f"{self.kind} outcome cannot carry {other}={value!r}")

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
