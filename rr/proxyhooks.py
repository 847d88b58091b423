"""mitmproxy's hooks run in line: a flow's hooks cost a call per handler, not a task per hook.

mitmproxy (12.2.3, pinned) runs every hook a layer asks for as an asyncio task of its own
(`ConnectionHandler.server_event` -> `hook_task`), and through `AddonManager.handle_lifecycle`
every addon of the chain is awaited as a coroutine inside a `safecall()` context manager, for
the hook and again for its `update` hook. A request through rr's proxy has five such hooks
(next_layer, requestheaders, request, responseheaders, response): tasks, coroutines, lock
hand-offs and loop turns that were most of what the proxy spent per flow, while every handler
rr's proxy has is a plain function that returns at once.

Here a hook's handlers are called directly, in the chain's order, with mitmproxy's rules: an
`AddonHalt` ends the hook's chain, any other exception is logged as "Addon error" and the next
addon is called, a flow's hook is followed by its `update` hook. The hook's reply goes back to
the layer within the same `server_event`. As soon as a handler returns an awaitable (an async
hook: rr's record addon waiting for an intercepted flow, the web UI's) or leaves the flow
intercepted, the rest goes on in a task exactly as mitmproxy's own `hook_task` would: the rest
of the chain awaited, then `wait_for_resume`, then the reply. Hooks mitmproxy awaits itself
(client and server connects and disconnects) take the same path without the task.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Coroutine, Generator
from typing import Any

logger = logging.getLogger("mitmproxy.addonmanager")   # where safecall() reports addon errors

_VERSION = "12.2.3"   # the mitmproxy whose server_event is copied below


def install() -> None:
    import mitmproxy.version
    from mitmproxy import exceptions, flow, hooks
    from mitmproxy.proxy import commands, events, server
    from mitmproxy.proxy.mode_servers import ProxyConnectionHandler
    from mitmproxy.utils import asyncio_utils

    if getattr(server.ConnectionHandler.server_event, "rr_inline", False):
        return
    if mitmproxy.version.VERSION != _VERSION:
        return   # another mitmproxy: its own machinery, as it is

    def steps(handler: ProxyConnectionHandler, hook: Any, data: Any) -> Generator[Any, None, None]:
        """Call the hook's handlers; yield each awaitable one returns (the caller awaits it and
        sends its outcome back in)."""
        manager = handler.master.addons
        for event in (hook, hooks.UpdateHook([data])) if isinstance(data, flow.Flow) else (hook,):
            args = _args(event)
            for top, funcs in _handlers(manager, event.name):
                try:
                    for func in funcs if funcs is not None else (f for _, f in manager._iter_hooks(top, event)):
                        result = func(*args)
                        if result is not None and inspect.isawaitable(result):
                            yield result
                except exceptions.AddonHalt:
                    break
                except exceptions.OptionsError:
                    raise
                except Exception as e:  # noqa: BLE001 - mitmproxy's safecall(): logged, next addon
                    logger.error(f"Addon error: {e}", exc_info=True)

    async def rest(handler: ProxyConnectionHandler, data: Any, pending: Generator[Any, None, None],
                   awaitable: Any) -> None:
        """What mitmproxy's handle_hook does after the first handler that is not done at once."""
        with handler.timeout_watchdog.disarm():
            while awaitable is not None:
                try:
                    await awaitable
                except Exception as e:  # noqa: BLE001 - into steps(), where safecall's rules apply
                    awaitable = _next(pending, e)
                else:
                    awaitable = _next(pending, None)
            if isinstance(data, flow.Flow):
                await data.wait_for_resume()

    def begin(handler: ProxyConnectionHandler, hook: commands.StartHook) -> Coroutine[Any, Any, None] | None:
        """Call `hook`'s handlers now: None if they are all done (and the flow is not held), else
        the rest of the hook, to be awaited."""
        (data,) = _args(hook)
        pending = steps(handler, hook, data)
        awaitable = _next(pending, None)
        if awaitable is None and not (isinstance(data, flow.Flow) and data.intercepted):
            return None
        return rest(handler, data, pending, awaitable)

    async def handle_hook(self: ProxyConnectionHandler, hook: commands.StartHook) -> None:
        left = begin(self, hook)
        if left is not None:
            await left

    async def finish(self: ProxyConnectionHandler, hook: commands.StartHook, left: Coroutine[Any, Any, None]) -> None:
        await left
        if hook.blocking:
            await self.server_event(events.HookCompleted(hook))

    def in_line(self: Any, hook: commands.StartHook) -> bool:
        """Run `hook`'s handlers now: True if they are done (the reply is due), False if the
        rest went on in a task that replies itself."""
        left = begin(self, hook)
        if left is None:
            return True
        asyncio_utils.create_task(finish(self, hook, left), name=f"handle_hook({hook.name})",
                                  keep_ref=True, client=self.client.peername)
        return False

    async def server_event(self: Any, event: events.Event) -> None:
        # mitmproxy 12.2.3's server_event, with StartHook run in line (see the module).
        async with self._server_event_lock:
            self.timeout_watchdog.register_activity()
            try:
                queue = [event]
                while queue:
                    for command in self.layer.handle_event(queue.pop(0)):
                        if isinstance(command, commands.OpenConnection):
                            assert command.connection not in self.transports
                            handler = asyncio_utils.create_task(
                                self.open_connection(command),
                                name=f"server connection handler {command.connection.address}",
                                keep_ref=False, client=self.client.peername)
                            self.transports[command.connection] = server.ConnectionIO(handler=handler)
                        elif isinstance(command, commands.RequestWakeup):
                            task = asyncio_utils.create_task(
                                self.wakeup(command), name=f"wakeup timer ({command.delay:.1f}s)",
                                keep_ref=False, client=self.client.peername)
                            assert task is not None
                            self.wakeup_timer.add(task)
                        elif isinstance(command, commands.ConnectionCommand) and command.connection not in self.transports:
                            pass  # The connection has already been closed.
                        elif isinstance(command, commands.SendData):
                            writer = self.transports[command.connection].writer
                            assert writer
                            if not writer.is_closing():
                                writer.write(command.data)
                        elif isinstance(command, commands.CloseTcpConnection):
                            self.close_connection(command.connection, command.half_close)
                        elif isinstance(command, commands.CloseConnection):
                            self.close_connection(command.connection, False)
                        elif isinstance(command, commands.StartHook):
                            if not isinstance(self, ProxyConnectionHandler):
                                asyncio_utils.create_task(self.hook_task(command), name=f"handle_hook({command.name})",
                                                          keep_ref=True, client=self.client.peername)
                            elif in_line(self, command) and command.blocking:
                                queue.append(events.HookCompleted(command))
                        elif isinstance(command, commands.Log):
                            self.log(command.message, command.level)
                        else:
                            raise RuntimeError(f"Unexpected command: {command}")
            except Exception:
                self.log("mitmproxy has crashed!", logging.ERROR, exc_info=True)

    server_event.rr_inline = True  # type: ignore[attr-defined]
    server.ConnectionHandler.server_event = server_event  # type: ignore[method-assign]
    ProxyConnectionHandler.handle_hook = handle_hook  # type: ignore[method-assign]


def _next(pending: Generator[Any, None, None], error: BaseException | None) -> Any:
    """The next awaitable of `pending` (None: it is done), given how the last one ended."""
    try:
        return pending.throw(error) if error is not None else next(pending)
    except StopIteration:
        return None


_FIELDS: dict[type, tuple[str, ...]] = {}


def _args(hook: Any) -> list[Any]:
    """`hook.args()` (its dataclass fields' values) without asking dataclasses every time."""
    names = _FIELDS.get(type(hook))
    if names is None:
        import dataclasses
        names = _FIELDS[type(hook)] = tuple(f.name for f in dataclasses.fields(hook))
    return [getattr(hook, name) for name in names]


def _handlers(manager: Any, name: str) -> list[tuple[Any, tuple[Any, ...] | None]]:
    """The chain's addons that have a `name` hook, each with its handler (None: an addon with
    children, whose hooks mitmproxy's `_iter_hooks` finds each time). Worked out once per hook
    name while the chain stays the same."""
    cache = manager.__dict__.get("_rr_handlers")
    if cache is None or cache[0] != manager.chain:
        cache = manager._rr_handlers = (list(manager.chain), {})
    found = cache[1].get(name)
    if found is None:
        found = []
        for top in manager.chain:
            if hasattr(top, "addons"):
                found.append((top, None))
            elif callable(func := getattr(top, name, None)):
                found.append((top, (func,)))
        cache[1][name] = found
    return found
