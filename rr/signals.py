"""SIGINT and SIGTERM as an exception on the main thread, so a run can end the way it records.

Python's default SIGTERM kills the process on the spot (no outcome in the trace, no line on
stderr); its SIGINT raises KeyboardInterrupt anywhere. `install()` makes both raise
`Signalled` on the main thread, where the runner waits for its guest thread and turns it into
a stop of the guest. Once one has been raised, or a run has been stopped (`stopped()`), the
outcome is decided: later signals are ignored. Inside `held()` (writing the trace's outcome)
a signal waits instead of cutting that work short.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED

REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
STATUS = {"interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED}
MESSAGE = {"interrupted": "interrupted (SIGINT)", "terminated": "terminated (SIGTERM)"}


class Signalled(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, as KeyboardInterrupt: no host code catches it."""

    def __init__(self, reason: str):
        super().__init__(MESSAGE[reason])
        self.reason = reason
        self.status = STATUS[reason]


_holding = 0
_held: list[str] = []
_decided = False   # a stop is decided: signals from now on change nothing
_after_stop = 0    # signals ignored since then (rr serve's drain gives up on one: repeated())


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    global _decided, _after_stop
    reason = REASONS[signal.Signals(signum)]
    if _decided:
        _after_stop += 1
        return  # a second Ctrl-C must not land inside the stop for the first, nor change its status
    if _holding:
        if not _held:
            _held.append(reason)
        return
    _decided = True
    raise Signalled(reason)


def stopped() -> None:
    """The run has been stopped (timeout, signal): from now on signals are ignored, so the
    status and the line rr ends with are the stop's."""
    global _decided
    _decided = True
    _held.clear()


def repeated() -> bool:
    """Another signal arrived after the stop was decided: whoever waits as part of that stop
    (a server finishing the requests in flight) should stop waiting."""
    return _after_stop > 0


def install() -> None:
    """Call on the main thread (signal handlers run there)."""
    for signum in REASONS:
        signal.signal(signum, _on_signal)


def block_here() -> None:
    """Keep SIGINT and SIGTERM off the calling thread (and the threads it starts)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, set(REASONS))


def reason_of(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, Signalled) else "interrupted"  # KeyboardInterrupt


@contextlib.contextmanager
def held(drop: bool = False) -> Iterator[None]:
    """Signals arriving inside are raised (the first of them) when the block ends, or
    forgotten with `drop` (the run has already ended or is stopping for one)."""
    global _holding, _decided
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    if not _holding and not _decided and _held:
        reason = _held.pop()
        if not drop:
            _decided = True   # as when raised by the handler: a later signal is a second one
            raise Signalled(reason)
