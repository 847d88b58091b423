"""The native host-call path: which calls go to C (rr/_native.c), and the one place they are bound.

Clocks and random are the calls a guest makes most that need no resource and no waiting; a
C callback registered through the same raw C API as rr.abi's trampoline runs them at a
fraction of the Python path's cost, live, recording (into the same trace writer, in call
order, byte-identical frames) and replaying (from the same Replayer cursor). Anything unusual
it hands back to the Python path before changing anything (see the top of _native.c), so
messages, exit statuses, host-call counts and stops are the Python path's own.

The Python path (rr/host/clocks.py, rr/host/random.py) stays the readable reference:
`RR_NATIVE=0` selects it, and so does a missing extension (no C compiler at install time).
`rr run -v` says which path is in use.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import partial
from typing import Any

import wasmtime._bindings as raw_api
from wasmtime import component as wc

from . import abi

from . import nativelib

_native = nativelib.built()   # None: the Python path serves every call

# The trace's call name -> (op code in _native.c, the WIT shape the C code lowers).
_DATETIME, _U64, _BYTES, _PAIR = "datetime", "u64", "bytes", "pair"
_SHAPES = {"wall-clock.now": _DATETIME, "wall-clock.resolution": _DATETIME, "monotonic-clock.now": _U64,
           "monotonic-clock.resolution": _U64, "random.get-random-bytes": _BYTES, "random.get-random-u64": _U64,
           "insecure.get-insecure-random-bytes": _BYTES, "insecure.get-insecure-random-u64": _U64,
           "insecure-seed.insecure-seed": _PAIR}
OPS: dict[str, tuple[int, str]] = {call: (op, _SHAPES[call.partition("/")[2]]) for call, op in nativelib.OPS.items()}


def enabled() -> bool:
    return nativelib.lib() is not None


def describe() -> str:
    """Which host-call path is in use, for `-v`."""
    if _native is None:
        return f"host calls: Python path ({nativelib.why_not})"
    if not enabled():
        return "host calls: Python path (RR_NATIVE=0)"
    return "host calls: native path for clocks and random (rr/_native.c; RR_NATIVE=0 for the Python path)"


class _Counter:
    """The Python path's host-call counter (the native one has the same fields); replay's last
    monotonic reading lives here too (rr/host/clocks.py), where native replay reads it."""

    __slots__ = ("calls", "budget", "mono_last", "mono_seen")

    def __init__(self) -> None:
        self.calls = 0
        self.budget = 2**63 - 1
        self.mono_last = 0
        self.mono_seen = 0


def new_counter() -> Any:
    return _native.Counter() if enabled() else _Counter()


def _shape_of(fty: wc.FuncType) -> str | None:
    params = [t for _, t in fty.params]
    r = fty.result
    if not params:
        if isinstance(r, wc.U64):
            return _U64
        if isinstance(r, wc.RecordType) and [(n, type(t)) for n, t in r.fields] == [
                ("seconds", wc.U64), ("nanoseconds", wc.U32)]:
            return _DATETIME
        if isinstance(r, wc.TupleType) and [type(t) for t in r.elements] == [wc.U64, wc.U64]:
            return _PAIR
    elif len(params) == 1 and isinstance(params[0], wc.U64) and isinstance(r, wc.ListType) \
            and isinstance(r.element, wc.U8):
        return _BYTES
    return None


# benchmarks/bench_run.py's floor: `rr run` registers a no-op C callback that returns a constant
# of the call's shape instead (the least a host on wasmtime-py's C API pays per call). Never set
# outside the benchmark.
FLOOR_FOR_BENCHMARK = False

_ready = False


def _setup() -> None:
    global _ready
    if _ready:
        return

    def addr(name: str) -> int:
        return ctypes.cast(getattr(raw_api.dll, name), ctypes.c_void_p).value or 0

    _native.setup(addr("wasmtime_component_vallist_new_uninit"), addr("wasmtime_component_valtuple_new_uninit"),
                  addr("wasmtime_component_valrecord_new_uninit"), addr("wasm_byte_vec_new"),
                  addr("wasmtime_error_new"))
    _ready = True


class Linking:
    """Binds the native calls of one run (one link), or nothing when the path is off or the
    run's tap is not one of the three the C code implements."""

    def __init__(self, host: Any, conv: abi.Converters, guard: abi.Guard | None):
        self.host, self.conv, self.guard = host, conv, guard
        self.mode: int | None = None
        self.state: Any = None
        if not enabled() or type(host.counter) is not _native.Counter:
            return
        from .tap import Recorder, Replayer, Tap
        tap = host.tap
        if type(tap) is Tap:
            self.mode = _native.MODE_RUN
        elif type(tap) is Recorder:
            self.state = record_target(tap)
            self.mode = _native.MODE_RECORD if self.state is not None else None
        elif type(tap) is Replayer:
            self.state = tap.native_target()
            self.mode = _native.MODE_REPLAY
        if self.mode is not None:
            _setup()

    def add(self, inst: wc.LinkerInstance, call: str, item_name: str, fty: wc.FuncType,
            impl: Callable[..., Any], counted: abi.BoundFunc) -> bool:
        """Register `call` natively if it is one of OPS with the shape C lowers; else False."""
        if self.mode is None or call not in OPS:
            return False
        op, shape = OPS[call]
        if _shape_of(fty) != shape:
            return False
        plain = abi.bind(self.conv, counted.name, fty, partial(impl, self.host), self.guard)
        callback, release = _native.addresses()
        if FLOOR_FOR_BENCHMARK and self.mode == _native.MODE_RUN and shape != _BYTES:
            callback = _native.floor_address()
        env = _native.make(op, self.mode, self.host.counter, abi.trampoline_address(), abi.register(counted),
                           abi.register(plain), abi.finalizer_address(), call,
                           self.state, abi.fail_call)
        abi.add_raw(inst, item_name, callback, env, release)
        return True


def record_target(recorder: Any) -> tuple[Any, ...] | None:
    """What the C recorder writes through: the TraceWriter (for its failure), its state (the CRC
    chain, counts and flags it shares with the Python path), the encoder's call codes, the
    SharedWriter's lock and the sink, so both paths append to one chain. None (Python path) for a
    writer C does not reproduce byte for byte (JSON Lines, gzip)."""
    from .merge import SharedWriter
    from .trace.cbor import CborEncoder
    from .trace.streams import Sink
    from .trace.writer import TraceWriter, _MappedSink
    shared = recorder.writer
    if type(shared) is not SharedWriter:
        return None
    writer = getattr(shared, "_writer", None)
    if type(writer) is not TraceWriter or writer.fmt != "cbor":
        return None
    encoder, sink, state, lock = writer._encoder, writer._sink, writer.state, shared._lock
    if type(encoder) is not CborEncoder or type(sink) not in (Sink, _MappedSink) \
            or type(state) is not _native.WriterState or type(lock) is not _native.Lock or shared._state is not state:
        return None
    target = sink.map if type(sink) is _MappedSink else sink._f.fileno()
    return (writer, state, encoder._codes, lock, target)
