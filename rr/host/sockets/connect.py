"""The one place rr opens a live outgoing TCP connection for a guest (tcp.py's start-connect).

While recording, the connection goes through the embedded proxy's SOCKS5 listener of the same
address family (rr.proxy, proxy_addon/relay.py): mitmproxy connects upstream, shows the
connection as a TCP flow in `--inspect` and `--dump`, and hands its upstream socket over, so the
guest's bytes go to the server directly (not through the proxy's event loop) and are reported to
the flow. `routed_through` switches that on for the length of a recording. Otherwise (rr run) it
is a direct connection. tcp.py only relies on the contract of `connect`. Replay never calls it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import struct
from collections.abc import Iterator
from typing import Any

HANDSHAKE_TIMEOUT_S = 30.0   # the SOCKS5 exchange with the proxy on loopback (not the connect itself)

SETTLE_TIMEOUT_S = 5.0     # the proxy's loop takes the last reported bytes into its flows

_proxy: Any = None           # the running rr.proxy.EmbeddedProxy while a recording relays


@contextlib.contextmanager
def routed_through(proxy: Any) -> Iterator[None]:
    """Every connect() until the end of the block goes through `proxy` (an EmbeddedProxy started
    with relay=True). One proxy runs per process, so this is process-wide."""
    global _proxy
    _proxy = proxy
    try:
        yield
    finally:
        _proxy = None


def settle() -> None:
    """The guest has ended: every byte its connections moved is in the proxy's flows (the web UI
    and `--dump` show them) when this returns."""
    proxy = _proxy
    if proxy is not None and proxy.relay_addon is not None:
        proxy.relay_addon.settle(SETTLE_TIMEOUT_S)


def connect(family: int, address: tuple, timeout: float | None) -> socket.socket:  # type: ignore[type-arg]
    """A blocking socket connected to `address` (a (host, port) tuple for AF_INET, or (host,
    port, flowinfo, scope_id) for AF_INET6), or an OSError with the errno of the failure
    (ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...), which tcp.py maps to wasi error codes.
    `timeout` (seconds, None: the system's) bounds the connect only; the returned socket blocks.
    Called on a thread of its own: it may block as long as the connect takes."""
    proxy = _proxy
    if proxy is not None and family in proxy.socks_listeners:
        return _via_socks5(proxy, family, address, timeout)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.settimeout(timeout)
        sock.connect(address)
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


class _Relayed(socket.socket):
    """A connection to the proxy that answers getsockname() with the proxy's upstream connection's
    local address: what the guest would see connected directly (its local-address). Used only
    where the proxy could not hand the upstream socket over (the bytes cross mitmproxy)."""

    upstream_sockname: tuple = ()  # type: ignore[type-arg]

    def getsockname(self) -> tuple:  # type: ignore[type-arg, override]
        return self.upstream_sockname


class _HandedOver(socket.socket):
    """The proxy's own upstream socket (a duplicate of mitmproxy's), so the bytes go to the server
    directly while mitmproxy keeps the connection and its flow (proxy_addon/relay.py). What is
    sent and received is reported to the flow; closing gives the upstream back to mitmproxy and
    closes the SOCKS5 leg, which ends the flow. Socket options apply to the real connection."""

    def adopt(self, relay: Any, own: tuple, leg: socket.socket, early: bytes) -> None:  # type: ignore[type-arg]
        self._relay, self._own, self._leg, self._early = relay, own, leg, early

    def recv(self, n: int, flags: int = 0) -> bytes:  # type: ignore[override]
        if self._early:
            data, self._early = self._early[:n], self._early[n:]
        else:
            data = super().recv(n, flags)
        self._relay.traffic(self._own, False, data)
        return data

    def send(self, data: Any, flags: int = 0) -> int:  # type: ignore[override]
        n = super().send(data, flags)
        self._relay.traffic(self._own, True, memoryview(data)[:n])
        return n

    def sendall(self, data: Any, flags: int = 0) -> None:  # type: ignore[override]
        super().sendall(data, flags)
        self._relay.traffic(self._own, True, data)

    def close(self) -> None:
        leg = getattr(self, "_leg", None)
        if leg is None or self._closed:  # type: ignore[attr-defined]
            super().close()
            return
        try:
            self.setblocking(False)   # mitmproxy's own socket shares the flag: asyncio expects it
        except OSError:
            pass
        super().close()
        self._relay.release(self._own)
        leg.close()


def _via_socks5(proxy: Any, family: int, address: tuple, timeout: float | None) -> socket.socket:  # type: ignore[type-arg]
    relay = proxy.relay_addon
    listener = proxy.socks_listeners[family]
    sock = _Relayed(family, socket.SOCK_STREAM)
    own = None
    try:
        sock.bind((listener[0], 0))
        own = socket.socket.getsockname(sock)
        relay.expect(own)
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        sock.connect(listener)
        sock.sendall(b"\x05\x01\x00")                          # version 5, one method: no authentication
        if _read_exactly(sock, 2) != b"\x05\x00":
            raise OSError(errno.ECONNABORTED, "the proxy refused the SOCKS5 greeting")
        ip = ipaddress.ip_address(address[0])
        atyp = b"\x01" if ip.version == 4 else b"\x04"
        sock.settimeout(timeout)  # the proxy answers once its own connect upstream has ended
        sock.sendall(b"\x05\x01\x00" + atyp + ip.packed + struct.pack("!H", address[1]))
        try:
            reply = _read_exactly(sock, 4)      # version, status, 0, type of the bound address
            if reply[:2] == b"\x05\x00":
                _read_exactly(sock, {1: 4, 4: 16}.get(reply[3], 0) + 2)
        except (ConnectionError, TimeoutError):
            reply = b""                          # a failed upstream connect: mitmproxy just closes
        outcome = relay.outcome(own, HANDSHAKE_TIMEOUT_S)
        if reply[:2] != b"\x05\x00" and outcome is not None and not isinstance(outcome, str):
            if outcome.fd is not None:
                os.close(outcome.fd)
            outcome = "the proxy's SOCKS5 reply was not a success"
        if outcome is None or isinstance(outcome, str):
            raise _upstream_error(outcome)
        sock.settimeout(None)
        if outcome.fd is None:
            sock.upstream_sockname = outcome.sockname
            return sock
        try:
            upstream = _HandedOver(fileno=outcome.fd)
        except BaseException:
            os.close(outcome.fd)
            raise
        upstream.adopt(relay, own, sock, outcome.early)
        upstream.setblocking(True)
        return upstream
    except BaseException:
        if own is not None:
            relay.forget(own)
        sock.close()
        raise


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "the proxy closed the connection")
        data += chunk
    return data


_ERRNO = re.compile(r"\[Errno (\d+)\]")


def _upstream_error(outcome: Any) -> OSError:
    """The OSError a direct connect would have raised, from mitmproxy's text for its own failure
    ("[Errno 111] Connect call failed ('127.0.0.1', 9)", "timed out", ...)."""
    text = outcome if isinstance(outcome, str) else "the proxy gave no reason"
    m = _ERRNO.search(text)
    if m:
        code = int(m.group(1))
        return OSError(code, text)
    if "timed out" in text.lower():
        return TimeoutError(errno.ETIMEDOUT, text)
    return OSError(errno.EHOSTUNREACH, text)
