"""wasi:io/poll — pollables and `poll`.

A Pollable is a readiness predicate plus an optional monotonic deadline (timers).
Whether a pollable was ready, and which ones `poll` reported, is nondeterministic, so
both go through the tap: a replay reports exactly what the recording saw, at once.
"""

from __future__ import annotations

from collections.abc import Callable

from typing import Any

from ..typecheck import BadValue, show
from .context import HostContext
from .wit import Interface

poll_if = Interface("wasi:io/poll")


class Pollable:
    def __init__(self, ready: Callable[[], bool], deadline_ns: int | None = None, label: str = ""):
        self.ready = ready
        self.deadline_ns = deadline_ns
        self.label = label


def always_ready() -> Pollable:
    return Pollable(lambda: True, label="ready")


@poll_if.method("pollable", "ready")
def pollable_ready(host: HostContext, p: Pollable) -> bool:
    return host.tap("wasi:io/poll.ready", [p.label], p.ready)


@poll_if.method("pollable", "block")
def pollable_block(host: HostContext, p: Pollable) -> None:
    host.tap.block(lambda: host.wait_for(p.ready, p.deadline_ns))


def _ready_indices(args: list[Any], result: Any) -> None:
    """Replay: poll returns one or more distinct indices into the guest's list."""
    n = len(args[0])
    if type(result) is not list or not result:
        raise BadValue(f"{show(result)} is not a non-empty list of indices", "list<u32>")
    for i in result:
        if type(i) is not int or not 0 <= i < n:
            raise BadValue(f"{show(i)} is not an index into the guest's {n} pollables", "list<u32>")
    if len(set(result)) != len(result):
        raise BadValue("an index appears twice", "list<u32>")


@poll_if.func("poll")
def poll(host: HostContext, pollables: list[Pollable]) -> list[int]:
    if not pollables:
        # The spec makes an empty list a trap; a guest doing it has a bug worth naming.
        raise ValueError("poll called with an empty list")

    def live() -> list[int]:
        def ready_now() -> list[int]:
            return [i for i, p in enumerate(pollables) if p.ready()]
        deadlines = [p.deadline_ns for p in pollables if p.deadline_ns is not None]
        found: list[int] = []

        def any_ready() -> bool:
            found[:] = ready_now()
            return bool(found)

        while not found:
            host.wait_for(any_ready, min(deadlines) if deadlines else None)
            if not found:
                any_ready()
        return found

    return host.tap("wasi:io/poll.poll", [[p.label for p in pollables]], live, _ready_indices)
