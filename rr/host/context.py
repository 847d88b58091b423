"""The state of one guest run that every interface module shares."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from ..abi import ResourceTable, Unwind

if TYPE_CHECKING:
    from ..tap import Tap
    from .sockets.grant import SocketGrant


class GuestInterrupted(Unwind):
    """The run was stopped from outside (timeout, SIGINT, SIGTERM, or a replay reaching the
    recorded stop): raised by a host call the guest was waiting in or was about to make.
    `reason` is the stop's outcome kind: "timeout", "interrupted" or "terminated"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Preopen:
    host: str          # directory on the host ("" during replay: never touched)
    guest: str         # path the guest sees
    writable: bool = False


@dataclass
class Sandbox:
    """What the guest is granted. Nothing else of the host is visible to it."""

    argv: list[str]
    env: list[tuple[str, str]] = field(default_factory=list)
    preopens: list[Preopen] = field(default_factory=list)
    cwd: str | None = None
    stdin: BinaryIO | None = None    # None: empty stdin
    stdout: BinaryIO | None = None   # None: discard
    stderr: BinaryIO | None = None
    http_allow: list[str] = field(default_factory=list)   # host/http/grant.py patterns; none: no HTTP
    sockets: "SocketGrant | None" = None                   # host/sockets/grant.py; None: no network


class HostContext:
    """Per-run state: granted resources, the resource table, the tap and the waker.

    The guest runs on its own thread. Producers (stdin reader, HTTP transfers) run on
    other threads and call `notify()`; a guest blocked in poll/block/blocking-read
    waits on `cond` with a timeout at its nearest clock deadline.
    """

    def __init__(self, sandbox: Sandbox, tap: "Tap"):
        self.sandbox = sandbox
        self.tap = tap
        self.table = ResourceTable()
        self.cond = threading.Condition()
        self.interrupted: str | None = None
        self.services: dict[str, Any] = {}   # lazily created per-interface state
        # Host calls the guest has made, less one a stop interrupted; so the calls that
        # returned to it (ok or err), plus one still blocked in a system call. The guest is
        # refused every call from number `budget` + 1 on: at once after a stop (-1), or
        # where a replayed stop struck in the recording. Both live in `counter`, which the
        # native host calls (rr/native.py) count in too.
        from ..native import new_counter
        self.counter = new_counter()
        self.on_budget: Callable[[], None] | None = None   # called when `calls` reaches `budget`
        self.stop_reason = "interrupted"

    @property
    def calls(self) -> int:
        return self.counter.calls  # type: ignore[no-any-return]

    @calls.setter
    def calls(self, n: int) -> None:
        self.counter.calls = n

    @property
    def budget(self) -> int:
        return self.counter.budget  # type: ignore[no-any-return]

    @budget.setter
    def budget(self, n: int) -> None:
        self.counter.budget = n

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def interrupt(self, reason: str) -> None:
        self.budget = -1
        with self.cond:
            self.interrupted = reason
            self.cond.notify_all()

    def refuse_after(self, calls: int, reason: str, on_budget: Callable[[], None]) -> None:
        """Replay of a stop: let the guest make `calls` host calls, refuse the next one with
        GuestInterrupted(reason), and call `on_budget` (on the guest thread) when the last
        allowed call is made, or now if the guest is already past it."""
        self.stop_reason = reason
        self.on_budget = on_budget
        self.budget = calls
        if self.calls >= calls:
            on_budget()

    def reached_budget(self) -> None:
        if self.on_budget is not None:
            self.on_budget()

    def refusal(self) -> GuestInterrupted:
        return GuestInterrupted(self.interrupted or self.stop_reason)

    def wait_for(self, ready: Callable[[], bool], deadline_ns: int | None = None) -> None:
        """Block the guest thread until `ready()` or the monotonic deadline passes."""
        with self.cond:
            while not ready():
                if self.interrupted:
                    self.calls -= 1  # this call never returns to the guest
                    raise GuestInterrupted(self.interrupted)
                timeout = None
                if deadline_ns is not None:
                    timeout = (deadline_ns - time.monotonic_ns()) / 1e9
                    if timeout <= 0:
                        return
                self.cond.wait(timeout if timeout is None else min(timeout, 1.0))

    def service(self, key: str, factory: Callable[[], Any]) -> Any:
        svc = self.services.get(key)
        if svc is None:
            svc = self.services[key] = factory()
        return svc
