"""One incoming request through one instance of a wasi:http/incoming-handler component.

`Exchange` is what the guest and the server share for one request: the guest thread sets
the response head (response-outparam.set) and writes the body into a pipe; the server's
side (a connection thread live, the replaying thread on replay) waits for the head and
drains the body. `run_handler` instantiates the component in a store of its own and
calls `handle` on the calling thread (the guest thread).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as wc

from .. import abi, runner
from ..abi import GuestExit, HostFault, NotProvided, Unwind
from ..errors import ComponentError, UnsupportedError
from ..host.context import GuestInterrupted, HostContext, Sandbox
from ..host.http.bodies import RequestBodyPipe, ResponseBody
from ..host.http.incoming import REQUEST_BODY_LABEL, IncomingRequest, OutgoingResponse, ResponseOutparam
from ..host.wit import split_versioned
from ..tap import Tap

HANDLER = "wasi:http/incoming-handler"
_REQUEST_TYPE = abi.resource_type_id("wasi:http/types/incoming-request")
_OUTPARAM_TYPE = abi.resource_type_id("wasi:http/types/response-outparam")


def handler_export(program: runner.Program) -> str:
    """The versioned name of the component's incoming-handler export."""
    exports = program.component.type.exports(program.engine)
    name = next((n for n in exports if split_versioned(n)[0] == HANDLER), None)
    if name is None:
        shown = ", ".join(sorted(exports)) or "nothing"
        raise ComponentError(f"{program.path}: not a wasi:http/proxy handler: it exports no {HANDLER} "
                             f"(it exports {shown})")
    return name


def check_handler(program: runner.Program) -> None:
    """runner.load's check for `rr serve`: an incoming handler whose `handle` takes the two resources."""
    name = handler_export(program)
    exports = program.component.type.exports(program.engine)
    ty = exports[name].ty
    items = ty.exports(program.engine) if isinstance(ty, wc.ComponentInstanceType) else {}
    handle = items.get("handle")
    if handle is None or not isinstance(handle.ty, wc.FuncType) or len(handle.ty.params) != 2:
        raise ComponentError(f"{program.path}: {name} exports no `handle(request, response-out)` function")


@dataclass
class Head:
    status: int
    headers: list[tuple[str, bytes]]
    pipe: RequestBodyPipe | None    # None: the guest never took the body (an empty one)


class Exchange:
    """The response of one request, as the guest produces it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.head: Head | None = None
        self.error: Any = None            # the error-code the guest set instead of a response
        self.done = False
        self.trap: str | None = None      # how the guest failed, if it did
        self.fault: BaseException | None = None   # rr's own failure (a divergence on replay)

    def deliver(self, response: tuple[str, Any]) -> None:
        with self._cond:
            if self.head is not None or self.error is not None:
                return
            tag, value = response
            if tag == "ok":
                r: OutgoingResponse = value
                self.head = Head(r.status, list(r.headers.entries), r.pipe)
                if r.pipe is not None:
                    r.pipe.attach()
            else:
                self.error = value if value is not None else ("internal-error", None)
            self._cond.notify_all()

    def finished(self, trap: str | None = None, fault: BaseException | None = None) -> None:
        with self._cond:
            self.done, self.trap, self.fault = True, trap, fault
            pipe = self.head.pipe if self.head is not None else None
            self._cond.notify_all()
        if pipe is not None and not pipe.finished:
            # The guest is gone: a body it did not finish will never end.
            pipe.fail(("internal-error", trap or "the handler returned before finishing the response body"))

    def wait_head(self) -> Head | None:
        """The head once the guest has set it; None if it ended (or failed) without one."""
        with self._cond:
            while self.head is None and self.error is None and not self.done:
                self._cond.wait(1.0)
            return self.head

    def wait_done(self) -> None:
        with self._cond:
            while not self.done:
                self._cond.wait(1.0)


def body_chunks(head: Head):  # type: ignore[no-untyped-def]
    """The response body as the guest writes it; raises HttpFailure if it does not finish."""
    if head.pipe is None:
        return
    while (data := head.pipe.get()) is not None:
        yield data


class _Current(threading.local):
    host: HostContext | None = None


_current = _Current()


class _ThreadTable:
    """The resource table of the request the calling thread handles (ThreadHost)."""

    def __getattr__(self, name: str) -> Any:
        host = _current.host
        if host is None:
            if name == "drop":   # a store freed after its request (on the connection thread)
                return lambda rep: None
            raise RuntimeError("a host resource used outside a request")
        return getattr(host.table, name)


class ThreadHost:
    """Stands in for a HostContext in a linker shared by every request of a server (the host
    functions themselves get the real one: runner.link's `current`): each attribute is the
    one of the HostContext of the request the calling thread (the guest thread) is handling.
    Linking once per component instead of once per request saves the converters'
    compilation (several ms a request); a replay links per request (its tap guards every
    host function)."""

    _table = _ThreadTable()

    def __getattr__(self, name: str) -> Any:
        if name == "table":
            return ThreadHost._table
        host = _current.host
        if host is None:
            if name == "tap":
                return Tap()   # at link time: no replay guard
            raise RuntimeError(f"host.{name} used outside a request")
        return getattr(host, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_current.host, name, value)


def shared_linker(program: runner.Program) -> Any:
    """A linker for every request of a server (see ThreadHost)."""
    return runner.link(program, ThreadHost(), current=_host_of_this_thread)  # type: ignore[arg-type]


def _host_of_this_thread() -> HostContext:
    host = _current.host
    assert host is not None, "a host function called outside a request"
    return host


# (id of the component, export) -> (the ExportIndex of `handle`, the component: keeps the id's owner alive)
_HANDLE_INDEX: dict[tuple[int, str], tuple[Any, Any]] = {}


def handle_index(program: runner.Program, export: str) -> Any:
    """The index of `handle` in the component, looked up once: valid in each of its instances (a
    lookup in every request's instance cost ~4% of serving a small handler)."""
    key = (id(program.component), export)
    if key not in _HANDLE_INDEX:
        component = program.component
        iface = component.get_export_index(export)
        _HANDLE_INDEX[key] = (component.get_export_index("handle", iface) if iface else None, component)
    return _HANDLE_INDEX[key][0]


class Instance:
    """A store and an instance of the handler for one request (or, with reuse, several in
    sequence); `host` is the run's host context, its tap is the request's. `linker`: a
    shared_linker (else one is made for this instance's host alone)."""

    def __init__(self, program: runner.Program, export: str, sandbox: Sandbox, tap: Tap,
                 services: dict[str, Any], limits: runner.Limits, linker: Any = None):
        self.program = program
        self.host = HostContext(sandbox, tap)
        self.host.services.update(services)
        self.linker = linker if linker is not None else runner.link(program, self.host)
        self.store = wasmtime.Store(program.engine)
        if limits.max_memory is not None:
            self.store.set_limits(memory_size=limits.max_memory)
        arm = getattr(runner, "_arm_epoch", None)
        if arm is not None:
            self.interrupt = arm(self.store, program.engine)
        else:
            self.store.set_epoch_deadline(1)
            self.interrupt = program.engine.increment_epoch
        self.export = export
        self.instance_id = 0
        self._func: Any = None

    def request_body(self) -> ResponseBody:
        """The stream the server feeds the request body into (made before `handle` runs)."""
        return ResponseBody(self.host, REQUEST_BODY_LABEL)

    def handle(self, request: IncomingRequest, exchange: Exchange) -> None:
        """Call `handle` on this thread; the outcome goes to `exchange.finished`."""
        _current.host = self.host
        try:
            trap = self._call(request, exchange)
        except BaseException as e:  # noqa: BLE001 - reported by whoever waits on the exchange
            exchange.finished(trap=None, fault=e)
            return
        finally:
            _current.host = None
        exchange.finished(trap=trap)

    def _call(self, request: IncomingRequest, exchange: Exchange) -> str | None:
        try:
            if self._func is None:
                instance = self.linker.instantiate(self.store, self.program.component)
                index = handle_index(self.program, self.export)
                self._func = instance.get_func(self.store, index) if index else None
                if self._func is None:
                    raise ComponentError(f"{self.program.path.name}: {self.export} has no `handle` function")
            table = self.host.table
            req = wc.ResourceHost.own(table.add(request), _REQUEST_TYPE)
            out = wc.ResourceHost.own(table.add(ResponseOutparam(exchange.deliver)), _OUTPARAM_TYPE)
            abi.take_pending()
            self._func(self.store, req, out)
            self._func.post_return(self.store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
            pending = abi.take_pending()
            if isinstance(pending, NotProvided):
                raise UnsupportedError(str(pending)) from None
            if isinstance(pending, GuestExit):
                return f"the handler called exit({pending.status})"
            if isinstance(pending, (HostFault, Unwind)) and not isinstance(pending, GuestInterrupted):
                raise pending from None
            if isinstance(pending, GuestInterrupted):
                return pending.reason
            return runner._trap_message(e, runner.Limits())
        return None
