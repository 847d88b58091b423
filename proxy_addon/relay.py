"""Raw TCP connections relayed through the proxy's SOCKS5 listeners, untouched but visible.

The embedded proxy gets SOCKS5 listeners besides its HTTP one, with `ignore_hosts=.*` and
`show_ignored_hosts` (set by rr.proxy): mitmproxy then makes the upstream connection itself,
parses nothing of what crosses it (no HTTP or TLS detection, which would hang on a line like
`word something`) and shows it as a TCPFlow in mitmweb and in flow dumps.

This addon
- admits only the connections its owner announced: the listeners are on loopback, where any local
  process could reach them, and SOCKS5's own user/password scheme would have to be switched on
  through the `proxyauth` option, which mitmweb's proxyauth addon would then also apply to the
  HTTP listener. A client announces the local address it will connect from (`expect`) before it
  connects; anything else is cut off at `client_connected`;
- tells the client what mitmproxy's upstream connection was (`outcome`): an `Upstream` with its
  local address (what a direct connection's getsockname() would have said), or why it failed
  (SOCKS5 only says "host unreachable" for every failure);
- hands the client the upstream socket itself (`Upstream.fd`, a duplicate of mitmproxy's): the
  bytes then go between the client and the upstream directly, never through mitmproxy's event
  loop. Relayed by mitmproxy, every 64 KiB read became an event, a flow message, a blocking
  `tcp_message` hook and a task on the loop, all on the one GIL the guest needs too: 10 MiB each
  way moved at ~50 MB/s and a round trip cost ~0.3 ms more than a direct connection. mitmproxy
  still owns the connection: it connects, its flow is made when the SOCKS5 exchange ends (not
  at the first byte), it closes the upstream once the client is done, and that ends the flow.
  The client reports what crossed the socket (`traffic`); the flow gets it as its messages, up to
  `KEPT_BYTES` of content each way (bounded memory for a long connection), the totals in its
  comment, in `flow.metadata[BYTES_KEY]` (sent, received) and in the flow end's `--dump` line;
- when mitmproxy's internals are not what this expects, hands nothing over (`Upstream.fd` is
  None): mitmproxy then relays the bytes itself, slower but the same to the guest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any

from mitmproxy import connection, ctx

logger = logging.getLogger(__name__)

Address = tuple[str, int]

KEPT_BYTES = 1 << 20          # flow message content kept per direction; the rest is counted
TICK_S = 0.02                 # handed-over connections' bytes go into their flows this often
VIEW_DELAY_S = 0.05           # the web UI is told of a flow's new messages at most this often
BYTES_KEY = "rr.tcp_bytes"    # flow.metadata: [bytes sent upstream, bytes received from it]


def _key(address: Any) -> Address:
    return (str(address[0]), int(address[1]))


@dataclasses.dataclass
class Upstream:
    """mitmproxy's connection upstream: its local address and, when handed over, a duplicate of
    its socket (the receiver owns and closes it) with the bytes mitmproxy had already read."""

    sockname: tuple  # type: ignore[type-arg]
    fd: int | None = None
    early: bytes = b""


class _Handover:
    """A connection whose bytes bypass mitmproxy: what the flow is told, and how to give the
    upstream back to mitmproxy when the client is done."""

    def __init__(self, loop: Any, transport: Any, read_ready: Any, handler: Any):
        self.loop = loop
        self.transport = transport
        self.read_ready = read_ready   # the transport's own read callback, given back at the end
        self.handler = handler
        self.flow: Any = None
        self.pending: list[tuple[bool, bytes]] = []   # (from_client, content) not in the flow yet
        self.view_due = False
        self.released = False                          # the client closed its duplicate
        self.totals = [0, 0]                           # sent, received
        self.kept = [0, 0]                             # content kept in the flow's messages


class RawRelay:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._expected: set[Address] = set()
        self._outcomes: dict[Address, Upstream | str] = {}   # client address -> upstream or error
        self._handovers: dict[Address, _Handover] = {}
        self._ticking = False
        self.refused = 0

    # ---- the client side (any thread) -------------------------------------------------------

    def expect(self, client_address: Any) -> None:
        """The next connection from `client_address` (host, port) is rr's own."""
        with self._lock:
            self._expected.add(_key(client_address))

    def outcome(self, client_address: Any, timeout: float) -> Upstream | str | None:
        """The upstream connection, or the error that ended it, once mitmproxy knows; None if it
        did not within `timeout` seconds. Forgets the client afterwards."""
        key = _key(client_address)
        with self._lock:
            self._lock.wait_for(lambda: key in self._outcomes, timeout)
            self._expected.discard(key)
            return self._outcomes.pop(key, None)

    def forget(self, client_address: Any) -> None:
        key = _key(client_address)
        with self._lock:
            self._expected.discard(key)
            outcome = self._outcomes.pop(key, None)
        if isinstance(outcome, Upstream) and outcome.fd is not None:
            os.close(outcome.fd)
        self.release(client_address)

    def traffic(self, client_address: Any, from_client: bool, data: bytes | memoryview) -> None:
        """`data` crossed a handed-over upstream socket (sent when from_client, else received)."""
        with self._lock:
            h = self._handovers.get(_key(client_address))
            if h is None or not data:
                return
            side = 0 if from_client else 1
            h.totals[side] += len(data)
            room = KEPT_BYTES - h.kept[side]
            if room > 0:
                content = bytes(data[:room])
                h.kept[side] += len(content)
                h.pending.append((from_client, content))

    def release(self, client_address: Any) -> None:
        """The client is done with a handed-over socket (it closed its duplicate): mitmproxy
        reads the upstream again, so it sees its end, closes it and ends the flow. (The handover
        is kept until then: its flow may not even have started yet.)"""
        with self._lock:
            h = self._handovers.get(_key(client_address))
            if h is None or h.released:
                return
            h.released = True
        h.loop.call_soon_threadsafe(self._give_back, h)

    # ---- mitmproxy hooks (the proxy's loop thread) ------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        if getattr(client.proxy_mode, "type_name", None) != "socks5":
            return
        with self._lock:
            if _key(client.peername) in self._expected:
                return
        self.refused += 1
        logger.warning("rr: refused a SOCKS5 connection from %s that is not the guest's", client.peername)
        client.error = "rr: this proxy serves the guest of one rr run only"

    def server_connected(self, data: Any) -> None:
        if not self._ours(data.client):
            return
        upstream = Upstream(tuple(data.server.sockname))
        handover = self._hand_over(data, upstream)
        key = _key(data.client.peername)
        with self._lock:
            if key in self._expected:
                if handover is not None:
                    self._handovers[key] = handover
                    if not self._ticking:
                        self._ticking = True
                        handover.loop.call_later(TICK_S, self._tick)
                self._outcomes[key] = upstream
                self._lock.notify_all()
                return
        if handover is not None:   # the client gave up meanwhile: mitmproxy sees the end
            os.close(upstream.fd)  # type: ignore[arg-type]
            self._give_back(handover)

    def server_connect_error(self, data: Any) -> None:
        if not self._ours(data.client):
            return
        key = _key(data.client.peername)
        with self._lock:
            if key in self._expected:
                self._outcomes[key] = str(data.server.error or "connection failed")
                self._lock.notify_all()

    def next_layer(self, nextlayer: Any) -> None:
        """Our connections are raw TCP with a flow, decided as soon as the SOCKS5 exchange is
        over (see decide_at_start): a handed-over connection never sends mitmproxy a byte."""
        if nextlayer.layer is None and self._ours(nextlayer.context.client):
            from mitmproxy.proxy.layers import TCPLayer
            nextlayer.layer = TCPLayer(nextlayer.context)

    def tcp_start(self, flow: Any) -> None:
        with self._lock:
            h = self._handovers.get(_key(flow.client_conn.peername))
            if h is None:
                return
            h.flow = flow
        self._flush(h)

    def tcp_end(self, flow: Any) -> None:
        """Before the addons after this one (rr's --dump line) read the flow's totals."""
        with self._lock:
            h = self._handovers.get(_key(flow.client_conn.peername))
            if h is None or h.flow is not flow:
                return
            del self._handovers[_key(flow.client_conn.peername)]
        self._flush(h)

    tcp_error = tcp_end

    # ---- helpers ----------------------------------------------------------------------------

    def _ours(self, client: connection.Client) -> bool:
        if getattr(client.proxy_mode, "type_name", None) != "socks5":
            return False
        with self._lock:
            return _key(client.peername) in self._expected or _key(client.peername) in self._handovers

    def _hand_over(self, data: Any, upstream: Upstream) -> _Handover | None:
        """Stops mitmproxy reading the upstream and duplicates its socket into `upstream`; None
        (nothing changed) where mitmproxy's or asyncio's internals are not the expected ones."""
        try:
            handler = ctx.master.addons.get("proxyserver").connections[data.client.id]
            io = handler.transports[data.server]
            transport, reader = io.writer.transport, io.reader
            buffered = reader._buffer
            sock = transport.get_extra_info("socket")
            fd = sock.fileno()
            read_ready = transport._read_ready_cb
            if not isinstance(buffered, bytearray) or fd < 0 or not isinstance(reader._paused, bool):
                return None
            import asyncio
            loop = asyncio.get_running_loop()
        except (AttributeError, KeyError, TypeError, RuntimeError) as e:
            logger.debug("rr: relaying %s through mitmproxy (%r)", data.client.peername, e)
            return None
        # No read of mitmproxy's from now on: pausing unregisters the socket, and a read asyncio
        # queued before that (to run later in this loop round) is made to do nothing.
        transport.pause_reading()
        transport._read_ready_cb = _no_read
        upstream.fd = os.dup(fd)
        # What mitmproxy's reader already took from the socket is the client's to read first.
        upstream.early = bytes(buffered)
        buffered.clear()
        reader._paused = False   # so that a later read does not resume the transport itself
        return _Handover(loop, transport, read_ready, handler)

    def _tick(self) -> None:
        """Every TICK_S while connections are handed over: their new bytes go into their flows.
        (A wake-up of the loop per write or read cost the guest more than the bytes did.)"""
        with self._lock:
            live = list(self._handovers.values())
            self._ticking = bool(live)
        for h in live:
            self._flush(h)
        if live:
            live[0].loop.call_later(TICK_S, self._tick)

    def settle(self, timeout: float) -> None:
        """Every byte reported so far is in its flow when this returns (any thread but the
        loop's): the recording's end is no time for the web UI to lag behind."""
        with self._lock:
            live = list(self._handovers.values())
        if not live:
            return
        done = threading.Event()

        def flush_all() -> None:
            for h in live:
                self._flush(h)
            done.set()

        live[0].loop.call_soon_threadsafe(flush_all)
        done.wait(timeout)

    def _flush(self, h: _Handover) -> None:
        with self._lock:
            flow = h.flow
            if flow is None:
                return
            pending, h.pending = h.pending, []
            totals = list(h.totals)
        from mitmproxy import tcp
        for from_client, content in pending:
            flow.messages.append(tcp.TCPMessage(from_client, content))
        _note_totals(flow, totals, h.kept)
        try:
            h.handler.timeout_watchdog.register_activity()   # mitmproxy's idle timeout: not idle
        except AttributeError:
            pass
        if pending and not h.view_due:
            h.view_due = True
            h.loop.call_later(VIEW_DELAY_S, self._update_view, h)

    def _update_view(self, h: _Handover) -> None:
        """mitmweb pushes every update of a flow to the browser: at most one per VIEW_DELAY_S."""
        h.view_due = False
        view = ctx.master.addons.get("view")
        if view is not None and h.flow is not None:
            view.update([h.flow])

    def _give_back(self, h: _Handover) -> None:
        self._flush(h)
        h.transport._read_ready_cb = h.read_ready
        h.transport.resume_reading()


def _no_read() -> None:
    pass


def _note_totals(flow: Any, totals: list[int], kept: list[int]) -> None:
    flow.metadata[BYTES_KEY] = totals
    if totals != kept:
        flow.comment = (f"rr: {totals[0]} bytes sent, {totals[1]} received; the messages hold the "
                        f"first {KEPT_BYTES >> 20} MiB each way (rr flows TRACE has every byte)")


def decide_at_start() -> None:
    """mitmproxy decides a connection's layer when the client's first bytes arrive (NextLayer
    asks its addons on DataReceived); a handed-over connection sends none through it, so ask
    (RawRelay.next_layer answers) when the SOCKS5 layer starts its child too. Its flow then
    exists from the connect on, as a direct connection would be seen."""
    from mitmproxy.proxy import events, layer

    handle = layer.NextLayer._handle_event
    if getattr(handle, "rr_decides_at_start", False):
        return

    def _handle_event(self: Any, event: Any) -> Any:
        yield from handle(self, event)
        if (isinstance(event, events.Start) and self.layer is None
                and getattr(self.context.client.proxy_mode, "type_name", None) == "socks5"):
            yield from self._ask()

    _handle_event.rr_decides_at_start = True  # type: ignore[attr-defined]
    layer.NextLayer._handle_event = _handle_event  # type: ignore[method-assign]
