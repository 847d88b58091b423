"""wasi:clocks — wall-clock and monotonic-clock (incl. subscribe-instant/duration)."""

from __future__ import annotations

import time

from ..typecheck import BadValue, show
from .context import HostContext
from .poll import Pollable
from .wit import Interface

wall_if = Interface("wasi:clocks/wall-clock")
mono_if = Interface("wasi:clocks/monotonic-clock")


def _datetime(args: list[int], result: object) -> None:
    """Replay: a recorded datetime is [seconds, nanoseconds] with nanoseconds below 1e9."""
    if type(result) is not list or len(result) != 2:
        raise BadValue(f"{show(result)} is not [seconds, nanoseconds]", "datetime")
    nanos = result[1]
    if type(nanos) is int and not 0 <= nanos < 1_000_000_000:
        raise BadValue(f"nanoseconds {nanos} is not below 1000000000", "datetime")


def _instant(args: list[int], result: object) -> None:
    """Replay: the instant a timer starts from (not itself handed over: check it here)."""
    if type(result) is not int or not 0 <= result < 1 << 64:
        raise BadValue(f"{show(result)} is not a u64 instant", "instant")


def _not_before(host: HostContext, instant: int) -> int:
    """Replay: the monotonic clock never goes back, across now and the timers' starts."""
    counter = host.counter   # the last reading is kept there, where native replay (rr/_native.c) sees it
    if counter.mono_seen and instant < counter.mono_last:
        raise BadValue(f"{instant} is before the previous reading {counter.mono_last}", "instant")
    if type(instant) is int and 0 <= instant < 2**64:   # else not a u64: the WIT check says so next
        counter.mono_last, counter.mono_seen = instant, 1
    return instant


def _wall_now() -> tuple[int, int]:
    ns = time.time_ns()
    return (ns // 1_000_000_000, ns % 1_000_000_000)


@wall_if.func("now")
def wall_now(host: HostContext) -> tuple[int, int]:
    return tuple(host.tap("wasi:clocks/wall-clock.now", [], _wall_now, _datetime))  # type: ignore[return-value]


@wall_if.func("resolution")
def wall_resolution(host: HostContext) -> tuple[int, int]:
    def live() -> tuple[int, int]:
        res = time.get_clock_info("time").resolution
        return (0, max(1, int(res * 1e9)))
    return tuple(host.tap("wasi:clocks/wall-clock.resolution", [], live, _datetime))  # type: ignore[return-value]


@mono_if.func("now")
def mono_now(host: HostContext) -> int:
    now = host.tap("wasi:clocks/monotonic-clock.now", [], time.monotonic_ns, _instant)
    return _not_before(host, now) if host.tap.replaying else now


@mono_if.func("resolution")
def mono_resolution(host: HostContext) -> int:
    def live() -> int:
        return max(1, int(time.get_clock_info("monotonic").resolution * 1e9))
    return host.tap("wasi:clocks/monotonic-clock.resolution", [], live)


def _timer(when_ns: int) -> Pollable:
    return Pollable(lambda: time.monotonic_ns() >= when_ns, deadline_ns=when_ns, label=f"timer@{when_ns}")


@mono_if.func("subscribe-instant")
def mono_subscribe_instant(host: HostContext, when: int) -> Pollable:
    return _timer(when)


@mono_if.func("subscribe-duration")
def mono_subscribe_duration(host: HostContext, duration: int) -> Pollable:
    # The deadline depends on "now": recorded, so a replayed guest sees the same label.
    start = host.tap("wasi:clocks/monotonic-clock.subscribe-duration", [duration], time.monotonic_ns, _instant)
    if host.tap.replaying:
        _not_before(host, start)
    return Pollable(lambda: time.monotonic_ns() >= start + duration,
                    deadline_ns=start + duration, label=f"timer+{duration}")
