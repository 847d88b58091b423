"""The single choke point between the guest and everything nondeterministic.

Every host function that hands the guest a value it could not compute itself (a clock
reading, random bytes, stdin data, which pollables are ready, ...) obtains it as

    host.tap(call, args, live)

`call` names the WASI function ("wasi:clocks/wall-clock.now"), `args` are the
guest's arguments that identify the request, and `live()` produces the real value.
`Tap` itself just calls `live()` (`rr run`).  `Recorder` and `Replayer` below: the recorder writes (call, args, result) to the trace, the replayer checks
(call, args) against the next recorded event and returns its result without calling
`live()` at all.  A `WasiError` raised by `live()` is a result too (an `err`).

On replay every recorded value is checked before it reaches the guest (a bad one is a
corrupt trace, exit 122, never a crash): `check(args, result)`, given by the host
module that defines the call, states what the WIT contract implies beyond the type
(get-random-bytes(n) gives exactly n bytes, a read at most the length asked for ...);
`Replayer.guard` checks what each host function returns against the function's WIT
result type (rr/typecheck.py). Neither runs while live or recording.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .abi import Unwind, WasiError
from .host.io import IoError
from .trace.errors import TraceError
from .typecheck import BadValue, Check, show

if TYPE_CHECKING:
    from .trace import TraceWriter
    from .trace.model import Event

T = TypeVar("T")
# A host module's contract check of a recorded result against the guest's arguments:
# raises BadValue (with `expected`, the type it checked) when the result breaks it.
Contract = Callable[[list[Any], Any], None]


class Tap:
    """Pass-through: `rr run`."""

    replaying = False

    def __call__(self, call: str, args: list[Any], live: Callable[[], T],
                 check: Contract | None = None) -> T:
        return live()

    def block(self, wait: Callable[[], None]) -> None:
        """A wait with no result (pollable.block): real while live, skipped on replay."""
        wait()


# ---------------------------------------------------------------- trace values
# Host results are trace values already (ints, bytes, str, lists), except for the one
# resource that travels inside an error: wasi:io/error.error (stream errors).


_PLAIN = (int, bytes, str, bool, float, type(None))


def to_trace(value: Any) -> Any:
    if type(value) in _PLAIN:  # the common case first: this runs for every event
        return value
    if isinstance(value, IoError):
        return {"io-error": value.message}
    if isinstance(value, (list, tuple)):
        return [to_trace(v) for v in value]
    return value


def from_trace(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict) and value.keys() == {"io-error"} and type(value["io-error"]) is str:
        return IoError(value["io-error"])
    if isinstance(value, list):
        return [from_trace(v) for v in value]
    return value


class Recorder(Tap):
    """`rr record`: every value obtained live is also appended to the trace."""

    def __init__(self, writer: "TraceWriter"):
        from .trace.model import Event  # here, not at import: `rr run` never makes one (3 ms)
        self._event = Event
        self.writer = writer

    def __call__(self, call: str, args: list[Any], live: Callable[[], T],
                 check: Contract | None = None) -> T:
        try:
            result = live()
        except WasiError as e:
            self._write(self._event(call, to_trace(args), to_trace(e.payload), failed=True))
            raise
        self._write(self._event(call, to_trace(args), to_trace(result)))
        return result

    def _write(self, event: "Event") -> None:
        self.writer.write_event(event)


class _Progress:
    """A Replayer's counts while no trace cursor keeps them."""

    __slots__ = ("read", "consumed")

    def __init__(self) -> None:
        self.read = self.consumed = 0


class Divergence(Unwind):
    """Replay: the guest asked for something other than the next recorded event.
    `index`: that event's index; `recorded`: the event (None: the trace had no more);
    `asked`: the guest's call with its arguments, as text."""

    def __init__(self, message: str, index: int | None = None, recorded: Event | None = None,
                 asked: str | None = None):
        super().__init__(message)
        self.message = message
        self.index, self.recorded, self.asked = index, recorded, asked


class TraceCorrupt(Unwind):
    """Replay met an unreadable record, or a recorded value the guest must not get."""


class ReplayStopped(Unwind):
    """`rr replay --until N` reached event N."""

    def __init__(self, index: int):
        super().__init__(f"stopped before event {index}")
        self.index = index


# What host code raises when a recorded value has the wrong shape for it (unpacking,
# indexing, arithmetic on it): on replay, after reading an event, that is the trace's fault.
_UNDIGESTIBLE = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)


class Replayer(Tap):
    """`rr replay`: results come from the trace; `live()` is never called."""

    replaying = True
    CONTEXT = 3  # events shown around a divergence

    def __init__(self, events: Iterator["Event"], until: int | None = None,
                 side_data: Callable[["Event"], bool] = lambda e: False):
        # Side data (HTTP flow records: the proxy serves them) is stepped over but still
        # counted, so event indices are the trace's own, as `rr inspect` numbers them.
        self._events = events
        self._side_data = side_data
        # events read from the trace so far (.read) and consumed (.consumed): the trace's cursor
        # once attached (native calls count there too)
        self._n: Any = _Progress()
        self._ahead: deque[tuple[int, Event]] = deque()  # (trace index, event) not yet consumed
        # (consumed count, trace index, event) consumed last (the cursor keeps those native calls take)
        self._behind: deque[tuple[int, int, Event]] = deque(maxlen=self.CONTEXT)
        self.until = until
        self._source: tuple[Any, ...] | None = None
        self._cursor: Any = None

    @property
    def index(self) -> int:
        """Trace index of the next event the guest will consume."""
        self._peek(1)
        return self._ahead[0][0] if self._ahead else self._n.read

    @property
    def consumed(self) -> int:
        """Events the guest has consumed."""
        return self._n.consumed  # type: ignore[no-any-return]

    def _peek(self, n: int) -> list[tuple[int, "Event"]]:
        if n == 1 and self._ahead:  # the hot path: one call, one event
            return [self._ahead[0]]
        while len(self._ahead) < n:
            try:
                nxt = next(self._events, None)
            except TraceError as e:  # corruption found mid-replay: stop the guest, say where
                raise TraceCorrupt(str(e)) from None
            if nxt is None:
                break
            progress = self._n
            progress.read += 1
            if not self._side_data(nxt):
                self._ahead.append((progress.read - 1, nxt))
        return list(self._ahead)[:n]

    def __call__(self, call: str, args: list[Any], live: Callable[[], T],
                 check: Contract | None = None) -> T:
        if self.until is not None and self.index >= self.until:
            raise ReplayStopped(self.index)
        upcoming = self._peek(1)
        wanted = to_trace(args)
        if not upcoming:
            asked = format_call(call, wanted)
            raise Divergence(self._describe(f"the guest called {asked} but the trace has no more events"),
                             self.index, None, asked)
        index, event = upcoming[0]
        if event.call != call or event.args != wanted:
            asked = format_call(call, wanted)
            raise Divergence(self._describe(
                f"expected {format_call(event.call, event.args)}, the guest called {asked}"
                + (first_difference(event.args, wanted) if event.call == call else "")),
                index, event, asked)
        self._ahead.popleft()
        progress = self._n
        progress.consumed += 1
        self._behind.append((progress.consumed, index, event))
        if event.failed:
            raise WasiError(from_trace(event.result))
        result = from_trace(event.result)
        if check is not None:
            try:
                check(args, result)
            except BadValue as e:
                raise self._invalid(index, event, e, e.expected or "result") from None
        return result  # type: ignore[no-any-return]

    def attach_cursor(self, cursor: Any, queues: tuple[Any, Any], flows: Any) -> None:
        """Let native calls take their events straight from the trace's cursor (rr/_native.c,
        cursor_take) when nothing is read ahead of it: this replayer's queue, and the two of the
        readers between it and the cursor (`queues`), are empty. `flows` (merge.FlowIndex) counts
        the events it passes on; the cursor, the reader's and this replayer's. Not with --until."""
        if self.until is not None:
            return
        cursor.read, cursor.consumed = self._n.read, self._n.consumed
        self._n = self._cursor = flows.native = cursor
        self._source = (cursor, *queues, flows)

    def native_target(self) -> tuple[Any, ...]:
        """What rr/_native.c replays from: this cursor (its read-ahead and context deques) and the
        trace's cursor, if attached. (The monotonic clock's last reading is in the host-call
        counter.)"""
        return (self, self._ahead, self._ahead.popleft, self._behind.append, self._source, self._n)

    def _recent(self) -> list[tuple[int, "Event"]]:
        """The events consumed last, oldest first."""
        entries: list[tuple[int, int, Any]] = list(self._behind)
        if self._cursor is not None:   # with those native calls took, by when they were consumed
            entries = sorted(entries + self._cursor.recent(), key=lambda e: e[0])[-self.CONTEXT:]
        out = []
        for _, index, event in entries:
            if type(event) is int:   # a frame offset: read the event again
                from .trace.records import event_from_raw
                event = event_from_raw(self._cursor.event_at(event))
            out.append((index, event))
        return out

    # ------------------------------------------------------------ checking what the guest gets
    def guard(self, name: str, impl: Callable[..., Any], ok: tuple[Callable[[], str], Check],
              err: tuple[Callable[[], str], Check] | None) -> Callable[..., Any]:
        """`impl` with its return value (`ok`) and its error payload (`err`; None: the
        function cannot fail) checked against the WIT types the guest expects.

        A value that fails comes from the trace (the host computes nothing else that
        could fail): it is reported against the event this call consumed. Host code that
        cannot digest a recorded value (a record too short to unpack ...) is the same
        corruption caught one step earlier.
        """
        ok_type, ok_check = ok

        def guarded(*args: Any) -> Any:
            mark = self.consumed
            try:
                value = impl(*args)
            except WasiError as e:
                if err is None:
                    if self.consumed == mark:
                        raise
                    raise self._blame(name, mark, e.payload, ok_type(),
                                      BadValue("an error, but the function cannot fail")) from None
                try:
                    err[1](e.payload)
                except BadValue as bad:
                    raise self._blame(name, mark, e.payload, err[0](), bad) from None
                raise
            except BadValue as bad:  # a host module's check that needs more than one event
                raise self._blame(name, mark, None, bad.expected or ok_type(), bad) from None
            except _UNDIGESTIBLE as e:
                if self.consumed == mark:
                    raise  # nothing recorded was read: a bug in rr, reported as one
                raise self._blame(name, mark, None, ok_type(),
                                  BadValue(f"rr cannot use it ({type(e).__name__}: {e})")) from None
            try:
                ok_check(value)
            except BadValue as bad:
                raise self._blame(name, mark, value, ok_type(), bad) from None
            return value

        return guarded

    def _blame(self, name: str, mark: int, value: Any, expected: str, bad: BadValue) -> TraceCorrupt:
        recent = self._recent()
        if self.consumed > mark and recent:
            index, event = recent[-1]
            return self._invalid(index, event, bad, expected)
        # Nothing read in this call: the value was kept from an earlier event.
        last = f" (last event read: {recent[-1][0]})" if recent else ""
        return TraceCorrupt(f"{name} would hand the guest {show(value)}, kept from the trace{last}, "
                            f"which is not a valid {expected}: {bad.describe()}")

    def _invalid(self, index: int, event: "Event", bad: BadValue, expected: str) -> TraceCorrupt:
        what = "recorded error" if event.failed else "recorded result"
        return TraceCorrupt(f"event {index}: {event.call} {what} {show(event.result)} "
                            f"is not a valid {expected}: {bad.describe()}")

    def block(self, wait: Callable[[], None]) -> None:
        # Time passing is visible to the guest only through recorded clock readings.
        return None

    def leftover(self) -> list[tuple[int, "Event"]]:
        """Events the guest never asked for (an error once the guest has finished)."""
        return self._peek(self.CONTEXT + 1)

    def _describe(self, what: str) -> str:
        lines = [f"replay diverged at event {self.index}: {what}"]
        for i, ev in self._recent():
            lines.append(f"      {i:>6}  {format_event(ev)}")
        for offset, (i, ev) in enumerate(self._peek(self.CONTEXT)):
            lines.append(f"   {'>>' if offset == 0 else '  '} {i:>6}  {format_event(ev)}")
        return "\n".join(lines)


def format_value(value: Any, limit: int = 48) -> str:
    if isinstance(value, bytes):
        shown = value[:16].hex()
        return f"<{len(value)} bytes {shown}{'...' if len(value) > 16 else ''}>"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 4] + "...'"
    if isinstance(value, list):
        inner = ", ".join(format_value(v, limit) for v in value[:6])
        return f"[{inner}{', ...' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {format_value(v, limit)}" for k, v in list(value.items())[:6])
        return "{" + inner + "}"
    return repr(value)


def first_difference(recorded: list[Any], actual: list[Any]) -> str:
    """Where two argument lists' first differing bytes argument (data written or sent) differs,
    as a line to add to a divergence: the call shows only the first 16 bytes of each."""
    for a, b in zip(recorded, actual):
        if type(a) is bytes and type(b) is bytes and a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            start = max(0, at - 8)
            return (f"\n    the bytes differ from byte {at} (recorded {len(a)} bytes, the guest's {len(b)}):"
                    f"\n      recorded  {a[start:at + 24]!r}\n      guest     {b[start:at + 24]!r}")
    return ""


def format_call(call: str, args: list[Any]) -> str:
    return f"{call}({', '.join(format_value(a) for a in args)})"


def format_event(event: "Event") -> str:
    arrow = "-> err" if event.failed else "->"
    return f"{format_call(event.call, event.args)} {arrow} {format_value(event.result)}"
