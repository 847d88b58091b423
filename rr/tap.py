"""The single choke point between the guest and everything nondeterministic.

Every host function that hands the guest a value it could not compute itself (a clock
reading, random bytes, stdin data, which pollables are ready, ...) obtains it as

    host.tap(call, args, live)

`call` names the WASI function ("wasi:clocks/wall-clock.now"), `args` are the
guest's arguments that identify the request, and `live()` produces the real value.
`Live` just calls `live()`.  The recorder and the replayer (rr/record.py) subclass
`Tap`: the recorder writes (call, args, result) to the trace, the replayer checks
(call, args) against the next recorded event and returns its result without calling
`live()` at all.  A `WasiError` raised by `live()` is a result too (an `err`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Tap:
    """Pass-through: `rr run`."""

    replaying = False

    def __call__(self, call: str, args: list[Any], live: Callable[[], T]) -> T:
        return live()

    def block(self, wait: Callable[[], None]) -> None:
        """A wait with no result (pollable.block): real while live, skipped on replay."""
        wait()
