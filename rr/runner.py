"""Engine, cache, linker, instantiate, call wasi:cli/run — one guest run.

The guest runs on its own thread: host functions block it (poll, blocking reads)
while producers on other threads feed data; the calling thread enforces --timeout,
SIGINT and SIGTERM by interrupting both the wasm code (epochs) and host waits.

Where a stop strikes is counted in host calls: every imported function goes through
`_counted`, which numbers the calls the guest makes and refuses any call past the
host's budget. A recording stores the count; a replay lets the guest make exactly
that many calls and refuses the next, so it ends at the same point with the same output
(between two host calls a guest can only compute, which nothing outside can see).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime._bindings as raw_api
import wasmtime._ffi as ffi
from wasmtime import component as wc

from . import abi, host as _host_modules, signals  # noqa: F401 - importing registers every interface
from .abi import Converters, GuestExit, HostFault, NotProvided, Unwind
from .cache import load_component
from .fastpath.cached import compose_cached
from .errors import EXIT_LIMIT, EXIT_TIMEOUT, EXIT_TRAP, ComponentError, UnsupportedError
from .host.context import GuestInterrupted, HostContext, Sandbox
from .host.wit import lookup, split_versioned
from .tap import Tap
from .typecheck import type_name

ENGINE_KEY = "concurrency=off,epoch=on"


@dataclass
class Limits:
    max_memory: int | None = None   # bytes each linear memory of the guest may grow to
    timeout: float | None = None    # wall seconds for the whole run


STOP_STATUS = {"timeout": EXIT_TIMEOUT, **signals.STATUS}
# How long a stopped guest may take to unwind. One blocked in a system call (opening a FIFO)
# never does: the run ends without it and the process exits without waiting for the thread.
STOP_GRACE_S = 1.0
# The main thread wakes this often while the guest runs: a signal the kernel handed to another
# thread only runs its Python handler once the main thread executes again.
WAKE_S = 0.5


@dataclass
class Outcome:
    """How the guest ended: kind is "exit" or "trap", "memory" (--max-memory did not fit), or a
    stop from outside: "timeout", "interrupted", "terminated" (`calls`: host calls made)."""

    kind: str
    status: int
    message: str | None = None
    calls: int | None = None
    replayed_stop: bool = False   # the stop a recording ended with, reproduced by a replay


class ReplayStop:
    """Replay of a recording that was stopped from outside: known once the trace's end is read
    (`arm`), possibly while the guest runs; from then on the guest's host calls are counted
    against the recorded number."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.calls = 0
        self.message: str | None = None
        self._bound: Callable[[], None] | None = None

    def arm(self, kind: str, calls: int, message: str) -> None:
        self.kind, self.calls, self.message = kind, calls, message
        if self._bound is not None:
            self._bound()

    def bind(self, host: HostContext, wake: Callable[[], None]) -> None:
        # `wake` interrupts wasm code: a guest that computes after its last allowed call
        # (a spin loop) is stopped at once instead of running to its end or forever.
        self._bound = lambda: host.refuse_after(self.calls, self.kind or "interrupted", wake)
        if self.kind is not None:
            self._bound()

    def reached(self, host: HostContext) -> bool:
        return self.kind is not None and host.calls >= self.calls


@dataclass
class Program:
    """A loaded, compiled command component.

    `path`, `wasm` and `sha256` always describe the user's component (traces name it);
    `component` and `imports` are what is instantiated: with the fast byte path, the
    composition of rr/fastpath/ that wraps it, which also imports rr:fast/streams.
    """

    path: Path
    wasm: bytes
    sha256: str
    engine: wasmtime.Engine
    component: wc.Component
    cache_hit: bool
    imports: dict[str, Any] = field(default_factory=dict)
    fast_path: bool = False      # whether `component` is the fast-path composition
    fast_path_note: str = ""     # what happened to the fast path, for -v

    def imports_interface(self, prefix: str) -> bool:
        """Whether any import's name starts with `prefix` (e.g. "wasi:http/")."""
        return any(name.startswith(prefix) for name in self.imports)


def make_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    # wasmtime 50 traps with "deferred host scope has no call context" when a host
    # function receives two or more borrows (poll) unless this is off (FIELD-NOTES).
    ffi.wasmtime_config_concurrency_support_set(config.ptr(), False)
    config.epoch_interruption = True
    return wasmtime.Engine(config)


_ENGINE: wasmtime.Engine | None = None


def engine() -> wasmtime.Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = make_engine()
    return _ENGINE


def fast_path_default() -> bool:
    """RR_FAST_PATH=0 turns the fast byte path off when the caller does not say."""
    return os.environ.get("RR_FAST_PATH", "1") != "0"


def load(path: str | Path, use_cache: bool = True, fast_path: bool | None = None,
         check: Callable[[Program], None] | None = None) -> Program:
    """`check` says whether the component is what the caller runs (default: a wasi:cli
    command; `rr serve` checks for an incoming handler) and raises ComponentError if not."""
    path = Path(path)
    check = check or check_command
    try:
        wasm = path.read_bytes()
    except FileNotFoundError:
        raise ComponentError(f"{path}: no such file") from None
    except OSError as e:
        raise ComponentError(f"{path}: cannot read: {e.strerror}") from None
    if wasm[:4] != b"\0asm":
        raise ComponentError(f"{path}: not a WebAssembly file")
    if wasm[4:8] == b"\x01\x00\x00\x00":
        raise ComponentError(f"{path}: is a core wasm module, not a component "
                             "(build for wasm32-wasip2 or adapt it with `wasm-tools component new`)")
    sha = hashlib.sha256(wasm).hexdigest()
    eng = engine()
    if fast_path is None:
        fast_path = fast_path_default()
    note = "plain byte path (--no-fast-path)"
    if fast_path:
        composed = compose_cached(wasm, sha, use_cache)
        note = composed.note
        if composed.wasm is not None:
            try:
                component, hit = load_component(eng, composed.wasm, hashlib.sha256(composed.wasm).hexdigest(),
                                                ENGINE_KEY, use_cache)
                return _checked(Program(path, wasm, sha, eng, component, hit, fast_path=True,
                                        fast_path_note=note), check)
            except wasmtime.WasmtimeError as e:  # a shape the adapter got wrong: never fatal
                note = f"plain byte path: composition rejected: {_first_line(e)}"
    try:
        component, hit = load_component(eng, wasm, sha, ENGINE_KEY, use_cache)
    except wasmtime.WasmtimeError as e:
        raise ComponentError(f"{path}: invalid component: {_first_line(e)}") from None
    return _checked(Program(path, wasm, sha, eng, component, hit, fast_path_note=note), check)


def _checked(program: Program, check: Callable[[Program], None]) -> Program:
    program.imports = program.component.type.imports(program.engine)
    check(program)
    return program


def check_command(program: Program) -> None:
    exports = program.component.type.exports(program.engine)
    run_iface = next((name for name in exports if split_versioned(name)[0] == "wasi:cli/run"), None)
    if run_iface is None:
        raise ComponentError(f"{program.path}: not a wasi:cli command (it exports no wasi:cli/run)")
    _check_run_signature(program, run_iface, exports[run_iface].ty)


def _check_run_signature(program: Program, run_iface: str, ty: Any) -> None:
    """`run: func() -> result` exactly, as the wasmtime CLI demands before running anything."""
    items = ty.exports(program.engine) if isinstance(ty, wc.ComponentInstanceType) else {}
    run = items.get("run")
    fty = run.ty if run is not None else None
    if not isinstance(fty, wc.FuncType):
        raise ComponentError(f"{program.path}: {run_iface} exports no `run` function")
    result = fty.result
    if fty.params or not (isinstance(result, wc.ResultType) and result.ok is None and result.err is None):
        params = ", ".join(f"{name}: {type_name(t)}" for name, t in fty.params)
        returns = f" -> {type_name(result)}" if result is not None else ""
        raise ComponentError(f"{program.path}: {run_iface} exports `run: func({params}){returns}`; "
                             "a command's run must be `func() -> result`")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _not_implemented(name: str) -> Any:
    def trap(*_args: Any) -> None:
        raise NotProvided(f"the guest called {name}, which rr does not implement")
    return trap


ImportedInstance = tuple[str, str, dict[str, Any]]  # (versioned name, base name, item -> type)


def _walk_imports(program: Program) -> tuple[list[ImportedInstance], list[str]]:
    """The component's imported instances with their items, and any other kind of import."""
    instances: list[ImportedInstance] = []
    foreign: list[str] = []
    for name, ext in program.imports.items():
        ty = ext.ty
        if not isinstance(ty, wc.ComponentInstanceType):
            foreign.append(name)
            continue
        items = {item_name: item.ty for item_name, item in ty.exports(program.engine).items()}
        instances.append((name, split_versioned(name)[0], items))
    return instances, foreign


def _implementation(base: str, item_name: str) -> Any:
    iface = lookup(base)
    return iface.funcs.get(item_name) if iface else None


def link(program: Program, host: HostContext,
         current: Callable[[], HostContext] | None = None) -> wc.Linker:
    """Define every import under the exact name the component uses. `current`: the linker is
    shared by many runs (rr serve): each host function gets `current()`, the calling guest
    thread's host context; `host` stands for it in the linker itself (rr/serve/handler.py)."""
    instances, foreign = _walk_imports(program)
    if foreign:
        raise UnsupportedError(f"{program.path.name}: unsupported import {foreign[0]!r} "
                               "(rr serves WASI interfaces only)")
    resources: list[tuple[wc.ResourceType, int]] = []
    resource_ids: dict[tuple[str, str], int] = {}
    for name, base, items in instances:
        for item_name, item_ty in items.items():
            if isinstance(item_ty, wc.ResourceType):
                # `use wasi:io/error.{error}` re-exports the same type under another
                # interface: it must map to the same host type, so reuse its id.
                same = next((tid for rt, tid in resources if rt == item_ty), None)
                type_id = same or abi.resource_type_id(f"{base}/{item_name}")
                resources.append((item_ty, type_id))
                resource_ids[(name, item_name)] = type_id

    linker = wc.Linker(program.engine)
    conv = Converters(host.table, resources)
    guard = getattr(host.tap, "guard", None)  # replay: what the guest gets is checked first
    from .native import Linking
    # Clocks and random in C, unless RR_NATIVE=0 or the linker is shared (the C calls are
    # bound to one run's counter and tap).
    native = Linking(host, conv, guard) if current is None else None
    with linker.root() as root:
        for name, base, items in instances:
            with root.add_instance(name) as inst:
                for item_name, item_ty in items.items():
                    if isinstance(item_ty, wc.ResourceType):
                        inst.add_resource(item_name, wc.ResourceType.host(resource_ids[(name, item_name)]),
                                          lambda _store, rep: host.table.drop(rep))
                for item_name, item_ty in items.items():
                    if not isinstance(item_ty, wc.FuncType):
                        continue
                    impl = _implementation(base, item_name)
                    qualified = f"{name}.{item_name}"
                    if impl is None:
                        call = _not_implemented(qualified)
                    elif current is None:
                        call = partial(impl, host)
                    else:
                        call = partial(_with_current, impl, current)
                    fn = _counted(host, call) if current is None else _counted_per_call(current, call)
                    bound = abi.bind(conv, qualified, item_ty, fn, guard if impl else None)
                    if impl is None or native is None or not native.add(inst, f"{base}.{item_name}", item_name,
                                                                        item_ty, impl, bound):
                        abi.add_func(inst, item_name, bound)
    return linker


def _with_current(impl: Callable[..., Any], current: Callable[[], HostContext], *args: Any) -> Any:
    return impl(current(), *args)


def _counted(host: HostContext, fn: Callable[..., Any]) -> Callable[..., Any]:
    # Counted on entry (an interrupted wait takes its call back: HostContext.wait_for), so
    # that the common path is one compare and one add. rr/_native.c counts its calls in the
    # same counter and hands this function every call that reaches the budget.
    counter = host.counter

    def call(*args: Any) -> Any:
        if counter.calls >= counter.budget:
            raise host.refusal()
        counter.calls += 1
        if counter.calls == counter.budget:
            host.reached_budget()
        return fn(*args)
    return call


def _counted_per_call(current: Callable[[], HostContext], fn: Callable[..., Any]) -> Callable[..., Any]:
    """_counted for a shared linker: the counter is the calling thread's run's."""
    def call(*args: Any) -> Any:
        host = current()
        counter = host.counter
        if counter.calls >= counter.budget:
            raise host.refusal()
        counter.calls += 1
        if counter.calls == counter.budget:
            host.reached_budget()
        return fn(*args)
    return call


def unsupported_imports(program: Program) -> list[str]:
    """Imported functions rr has no implementation for (they trap if called)."""
    instances, foreign = _walk_imports(program)
    return foreign + [f"{name}.{item_name}" for name, base, items in instances
                      for item_name, item_ty in items.items()
                      if isinstance(item_ty, wc.FuncType) and _implementation(base, item_name) is None]


def run(program: Program, sandbox: Sandbox, tap: Tap | None = None,
        limits: Limits | None = None, services: dict[str, Any] | None = None,
        replay_stop: ReplayStop | None = None, on_stop: Callable[[], None] | None = None) -> Outcome:
    """Run the guest to its end. `services` pre-sets per-interface state (the HTTP transport);
    `replay_stop` reproduces a recorded stop; `on_stop` is called on this thread the moment a
    stop (timeout, signal) is decided, before the guest is interrupted."""
    limits = limits or Limits()
    host = HostContext(sandbox, tap or Tap())
    host.services.update(services or {})
    linker = link(program, host)
    store = wasmtime.Store(program.engine)
    if limits.max_memory is not None:
        store.set_limits(memory_size=limits.max_memory)
    interrupt_wasm = _arm_epoch(store, program.engine)
    if replay_stop is not None:
        replay_stop.bind(host, interrupt_wasm)

    result: list[Outcome] = []
    failure: list[BaseException] = []

    # Not Thread.join: a signal's exception raised inside join() makes Python take the thread
    # for finished while it still runs (bpo-45274's fix releases its state lock).
    done = threading.Event()

    def guest_main() -> None:
        # SIGINT/SIGTERM go to the main thread, which stops the guest; this thread and those it
        # starts (stdin reader, HTTP transfers) inherit the mask.
        signals.block_here()
        try:
            result.append(_call_run(program, linker, store, host, limits))
        except BaseException as e:  # re-raised on the calling thread below
            failure.append(e)
        finally:
            with _running_lock:
                _running.discard(done)
            done.set()

    guest = threading.Thread(target=guest_main, name="rr-guest", daemon=True)
    reason: str | None = None
    deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
    try:
        with _running_lock:
            _running.add(done)
        guest.start()
        while not done.is_set():
            left = WAKE_S if deadline is None else min(WAKE_S, deadline - time.monotonic())
            if left <= 0:
                if threading.current_thread() is threading.main_thread():
                    # decided: a signal arriving now must not start a second stop. Only for the
                    # main thread's run (the CLI's): signals stop that one, and a run on another
                    # thread (the API's, a server's) must leave later signals to the process.
                    signals.stopped()
                reason = "timeout"
                break
            done.wait(left)
    except (signals.Signalled, KeyboardInterrupt) as e:
        reason = signals.reason_of(e)
    if reason is not None:
        with signals.held(drop=True):  # a second Ctrl-C must not cut the stop short
            if on_stop is not None:
                on_stop()
            host.interrupt(reason)
            interrupt_wasm()
            done.wait(STOP_GRACE_S)
            calls = host.calls
        if done.is_set() and failure and not isinstance(failure[0], GuestInterrupted):
            raise failure[0]
        return stopped(reason, calls, limits)
    if failure:
        raise failure[0]
    if replay_stop is not None and replay_stop.reached(host):
        return Outcome(replay_stop.kind or "interrupted", STOP_STATUS[replay_stop.kind or "interrupted"],
                       replay_stop.message, calls=host.calls, replayed_stop=True)
    return result[0]


_EpochCallback = raw_api._wasmtime_store_epoch_deadline_callback.argtypes[1]
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_CONTINUE = 0   # WASMTIME_UPDATE_DEADLINE_CONTINUE


def _arm_epoch(store: wasmtime.Store, engine: wasmtime.Engine) -> Callable[[], None]:
    """Arm `store` so that its wasm code can be interrupted; returns what interrupts it.

    Epochs belong to the engine, which every run of the process shares (compiled components
    are tied to it), so a tick reaches every running store. Each store therefore reaches its
    deadline at every tick and asks its own callback: a run that was not stopped carries on
    (deadline one tick further), the stopped one traps. Wasm code reads its deadline when it
    starts running, so it is armed now, before instantiation."""
    stopping = threading.Event()

    def on_deadline(_ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
        if stopping.is_set():
            err = ffi.wasmtime_error_new(b"rr: guest stopped")
            return ctypes.cast(err, ctypes.c_void_p).value or 0
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0

    callback = _EpochCallback(on_deadline)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _NO_FINALIZER)
    store.rr_epoch_callback = callback  # type: ignore[attr-defined]  # lives as long as the store
    store.set_epoch_deadline(1)

    def interrupt() -> None:
        stopping.set()
        engine.increment_epoch()
    return interrupt


def stopped(reason: str, calls: int, limits: Limits) -> Outcome:
    message = (f"guest exceeded --timeout {limits.timeout:g}s" if reason == "timeout"
               else signals.MESSAGE[reason])
    return Outcome(reason, STOP_STATUS[reason], message, calls=calls)


_running: set[threading.Event] = set()   # the `done` of each guest thread not finished yet
_running_lock = threading.Lock()


def guest_threads_left() -> bool:
    """Whether a stopped guest is still blocked in a system call (the process must not wait)."""
    with _running_lock:
        return bool(_running)


def _call_run(program: Program, linker: wc.Linker, store: wasmtime.Store,
              host: HostContext, limits: Limits) -> Outcome:
    try:
        instance = linker.instantiate(store, program.component)
    except wasmtime.Trap as e:
        # The guest's start-up code trapped (e.g. the preview1 adapter allocating its stack).
        return Outcome("trap", EXIT_TRAP, _trap_message(e, limits))
    except wasmtime.WasmtimeError as e:
        if "wasm backtrace" in str(e) or "wasm trap" in str(e):
            return Outcome("trap", EXIT_TRAP, _trap_message(e, limits))
        if limits.max_memory is not None and "memory" in str(e):
            return Outcome("memory", EXIT_LIMIT, f"guest needs more memory than --max-memory allows: {_first_line(e)}")
        raise UnsupportedError(f"{program.path.name}: cannot instantiate: {_first_line(e)}") from None
    run_iface = next(n for n in program.component.type.exports(program.engine)
                     if split_versioned(n)[0] == "wasi:cli/run")
    iface_idx = instance.get_export_index(store, run_iface)
    func_idx = instance.get_export_index(store, "run", iface_idx)
    func = instance.get_func(store, func_idx) if func_idx else None
    if func is None:
        raise ComponentError(f"{program.path.name}: {run_iface} has no `run` function")
    abi.take_pending()
    try:
        value = func(store)
        func.post_return(store)
    except GuestInterrupted as e:
        return Outcome(e.reason, STOP_STATUS[e.reason], e.reason)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
        pending = abi.take_pending()
        if isinstance(pending, GuestExit):
            return Outcome("exit", pending.status)
        if isinstance(pending, GuestInterrupted):
            return Outcome(pending.reason, STOP_STATUS[pending.reason], pending.reason)
        if isinstance(pending, NotProvided):
            raise UnsupportedError(str(pending))
        if isinstance(pending, (HostFault, Unwind)):
            raise pending  # a divergence, a partial replay's stop, or a bug in rr
        return Outcome("trap", EXIT_TRAP, _trap_message(e, limits))
    except GuestExit as e:
        return Outcome("exit", e.status)
    ok = getattr(value, "tag", "ok") == "ok"
    return Outcome("exit", 0 if ok else 1)


def _trap_message(e: BaseException, limits: Limits) -> str:
    text = str(e).strip()
    lines = text.splitlines()
    # wasmtime puts the cause last ("wasm trap: wasm `unreachable` instruction executed").
    cause = next((ln.strip() for ln in reversed(lines) if ln.strip().startswith(("wasm trap", "Caused by"))), None)
    message = cause or (lines[0] if lines else type(e).__name__)
    if limits.max_memory is not None:
        message += f" (--max-memory {limits.max_memory} bytes was in force)"
    return message
