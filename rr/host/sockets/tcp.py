"""wasi:sockets/tcp — the tcp-socket resource: bind, connect, listen, accept, options.

Every method's outcome goes through the tap under "wasi:sockets/tcp.<method>" with the
socket's label (tcp-1, tcp-2, ... in creation order; accepted sockets too) and the guest's
arguments (addresses as text, see network.py). The live side is wasmtime's state machine
(crates/wasi/src/sockets/tcp.rs and p2/host/tcp.rs) over a real socket: the same checks in
the same order and the same error codes. A replay runs none of it: every answer comes from
the trace, no socket is opened, and the streams handed out read from the trace as well.

A connect runs on a thread of its own (connect.py), so start-connect returns at once and
finish-connect says `would-block` until it has finished, as under wasmtime; which of the two
happened is recorded. A listening socket accepts on a thread that queues the connections,
which makes the socket's pollable ready.
"""

from __future__ import annotations

import collections
import errno
import socket
import threading
from collections.abc import Callable
from typing import Any

from ...abi import WasiError
from ...typecheck import BadValue, show
from ..context import HostContext
from ..poll import Pollable
from ..wit import Interface
from . import connect as connect_module
from .network import (FAMILIES, Network, SocketAddress, bind, error_code, fail, next_label, valid_family,
                      valid_remote, valid_unicast, nothing)
from .streams import TcpInput, TcpOutput

tcp_if = Interface("wasi:sockets/tcp")
R = "tcp-socket"

DEFAULT_BACKLOG = 128
# Linux's accept() passes on a pending error of the new connection: wasmtime calls them all aborted.
_ACCEPT_ABORTED = {errno.ECONNRESET, errno.ENETRESET, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN,
                   errno.ENETUNREACH, errno.EPROTO, errno.ENOPROTOOPT, errno.ENONET, errno.EOPNOTSUPP}

# The states of wasmtime's TcpState that a p2 guest can reach.
DEFAULT, BIND_STARTED, BOUND, LISTEN_STARTED, LISTENING, CONNECTING, CONNECTED, CLOSED = (
    "default", "bind-started", "bound", "listen-started", "listening", "connecting", "connected", "closed")


class TcpSocket:
    def __init__(self, host: HostContext, family: str, label: str, sock: socket.socket | None,
                 state: str = DEFAULT):
        self.host = host
        self.family = family
        self.label = label
        self.sock = sock                # None on replay
        self.state = state
        self.backlog = DEFAULT_BACKLOG
        self.options: list[tuple[int, int, int]] = []   # setsockopt calls the guest made (live)
        self.network: Network | None = None
        self.streams: tuple[TcpInput, TcpOutput] | None = None
        self.remote: SocketAddress | None = None
        self._connect_done = threading.Event()
        self._connect_result: socket.socket | BaseException | None = None
        self._pending: collections.deque[tuple[socket.socket, Any] | OSError] = collections.deque()
        self._closed = threading.Event()

    # ------------------------------------------------------------ live helpers
    def readiness(self) -> bool:
        """The socket's pollable: a connect finished, or a connection waits to be accepted."""
        if self.state == CONNECTING:
            return self._connect_done.is_set()
        if self.state == LISTENING:
            return bool(self._pending)
        return True

    def fd_or_invalid(self) -> socket.socket:
        """wasmtime's as_std_view: options can be read in every state but these."""
        if self.state in (CONNECTING, CLOSED) or self.sock is None:
            raise fail("invalid-state")
        return self.sock

    def open_streams(self, sock: socket.socket) -> tuple[TcpInput, TcpOutput]:
        live = not self.host.tap.replaying
        self.streams = (TcpInput(self.host, f"{self.label}-in", sock if live else None),
                        TcpOutput(self.host, f"{self.label}-out", sock if live else None))
        return self.streams

    def close(self) -> None:
        self._closed.set()
        if self.streams:
            self.streams[0].close()
        if self.sock is not None:
            try:
                if self.state == CONNECTED:
                    # wakes the stream's pump thread out of recv(); close() alone would not
                    self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        for item in self._pending:
            if isinstance(item, tuple):
                item[0].close()
        self._pending.clear()


def tap(host: HostContext, s: TcpSocket, method: str, args: list[Any], live: Callable[[], Any],
        check: Callable[[list[Any], Any], None] | None = None) -> Any:
    return host.tap(f"wasi:sockets/tcp.{method}", [s.label, *args], live, check)


def _os_error(e: OSError) -> WasiError:
    return fail(error_code(e))


# ------------------------------------------------------------------ contract checks (replay)

def _address(args: list[Any], result: Any) -> None:
    SocketAddress.from_trace(result)


def _flag(args: list[Any], result: Any) -> None:
    if type(result) is not bool:
        raise BadValue(f"{show(result)} is not a bool", "bool")


def _unsigned(bits: int) -> Callable[[list[Any], Any], None]:
    def check(args: list[Any], result: Any) -> None:
        if type(result) is not int or not 0 <= result < 1 << bits:
            raise BadValue(f"{show(result)} is not a u{bits}", f"u{bits}")
    return check


# ------------------------------------------------------------------ bind


@tcp_if.method(R, "start-bind")
def start_bind(host: HostContext, s: TcpSocket, network: Network, local: Any) -> None:
    address = SocketAddress.from_wit(local)

    def live() -> None:
        bind(s.sock, network, address, s.family, s.state == DEFAULT, reuse_address=True)
        s.state = BIND_STARTED
        s.network = network

    tap(host, s, "start-bind", [address.to_trace()], live, nothing)


@tcp_if.method(R, "finish-bind")
def finish_bind(host: HostContext, s: TcpSocket) -> None:
    def live() -> None:
        if s.state != BIND_STARTED:
            raise fail("not-in-progress")
        s.state = BOUND

    tap(host, s, "finish-bind", [], live, nothing)


# ------------------------------------------------------------------ connect


def _connect_thread(s: TcpSocket, address: SocketAddress, bound: bool) -> None:
    try:
        if bound:
            assert s.sock is not None
            s.sock.connect(address.to_os())
            result: socket.socket | BaseException = s.sock
        else:
            result = connect_module.connect(FAMILIES[s.family], address.to_os(), None)
    except OSError as e:
        result = e
    if s._closed.is_set() and isinstance(result, socket.socket) and result is not s.sock:
        result.close()
    s._connect_result = result
    s._connect_done.set()
    s.host.notify()


@tcp_if.method(R, "start-connect")
def start_connect(host: HostContext, s: TcpSocket, network: Network, remote: Any) -> None:
    address = SocketAddress.from_wit(remote)

    def live() -> None:
        if s.state == CONNECTING:
            raise fail("concurrency-conflict")
        if s.state not in (DEFAULT, BOUND):
            raise fail("invalid-state")
        if not valid_unicast(address.ip) or not valid_remote(address) or not valid_family(address.ip, s.family):
            raise fail("invalid-argument")
        bound = s.state == BOUND
        s.state, s.remote, s.network = CONNECTING, address, network
        if not network.grant.address_allowed(address.ip, address.port):
            # wasmtime 49 reports a refused address at finish-connect (FIELD-NOTES).
            s._connect_result = PermissionError(13, "address not granted")
            s._connect_done.set()
            return
        threading.Thread(target=_connect_thread, args=(s, address, bound), name=f"rr-{s.label}-connect",
                         daemon=True).start()

    tap(host, s, "start-connect", [address.to_trace()], live, nothing)


@tcp_if.method(R, "finish-connect")
def finish_connect(host: HostContext, s: TcpSocket) -> tuple[TcpInput, TcpOutput]:
    def live() -> None:
        if s.state != CONNECTING:
            raise fail("not-in-progress")
        if not s._connect_done.is_set():
            raise fail("would-block")
        result = s._connect_result
        if isinstance(result, BaseException):
            s.state = CLOSED
            raise _os_error(result) if isinstance(result, OSError) else fail("unknown")
        assert isinstance(result, socket.socket)
        if result is not s.sock and s.sock is not None:
            s.sock.close()
            for level, option, value in s.options:
                try:
                    result.setsockopt(level, option, value)
                except OSError:
                    pass  # the guest was told it worked; what the OS keeps is read back recorded
        s.sock, s.state = result, CONNECTED

    tap(host, s, "finish-connect", [], live, nothing)
    s.state = CONNECTED
    return s.open_streams(s.sock)  # type: ignore[arg-type]


# ------------------------------------------------------------------ listen / accept


def _accept_thread(s: TcpSocket) -> None:
    assert s.sock is not None
    while not s._closed.is_set():
        try:
            conn, peer = s.sock.accept()
            item: tuple[socket.socket, Any] | OSError = (conn, peer)
        except TimeoutError:
            continue
        except OSError as e:
            if s._closed.is_set():
                return
            item = e
        s._pending.append(item)
        s.host.notify()
        while len(s._pending) >= s.backlog and not s._closed.is_set():
            s._closed.wait(0.05)  # let the guest catch up before accepting more


@tcp_if.method(R, "start-listen")
def start_listen(host: HostContext, s: TcpSocket) -> None:
    def live() -> None:
        if s.state != BOUND:
            raise fail("invalid-state")
        s.state = LISTEN_STARTED

    tap(host, s, "start-listen", [], live, nothing)


@tcp_if.method(R, "finish-listen")
def finish_listen(host: HostContext, s: TcpSocket) -> None:
    def live() -> None:
        if s.state != LISTEN_STARTED:
            raise fail("not-in-progress")
        assert s.sock is not None
        try:
            s.sock.listen(s.backlog)
        except OSError as e:
            s.state = CLOSED
            raise _os_error(e) from None
        s.state = LISTENING
        s.sock.settimeout(0.5)  # the accept thread looks at _closed this often
        threading.Thread(target=_accept_thread, args=(s,), name=f"rr-{s.label}-accept", daemon=True).start()

    tap(host, s, "finish-listen", [], live, nothing)
    s.state = LISTENING


@tcp_if.method(R, "accept")
def accept(host: HostContext, s: TcpSocket) -> tuple[TcpSocket, TcpInput, TcpOutput]:
    accepted: list[socket.socket] = []

    def live() -> None:
        if s.state != LISTENING:
            raise fail("invalid-state")
        if not s._pending:
            raise fail("would-block")
        item = s._pending.popleft()
        if isinstance(item, OSError):
            raise fail("connection-aborted" if item.errno in _ACCEPT_ABORTED else error_code(item))
        conn, _ = item
        conn.settimeout(None)
        accepted.append(conn)

    tap(host, s, "accept", [], live, nothing)
    child = TcpSocket(host, s.family, next_label(host, "tcp"), accepted[0] if accepted else None, state=CONNECTED)
    child.network = s.network
    inp, out = child.open_streams(child.sock)  # type: ignore[arg-type]
    return child, inp, out


# ------------------------------------------------------------------ addresses and state


@tcp_if.method(R, "local-address")
def local_address(host: HostContext, s: TcpSocket) -> Any:
    def live() -> str:
        if s.state not in (BOUND, CONNECTED, LISTENING) or s.sock is None:
            raise fail("invalid-state")
        try:
            return SocketAddress.from_os(s.sock.family, s.sock.getsockname()).to_trace()
        except OSError as e:
            raise _os_error(e) from None

    return SocketAddress.from_trace(tap(host, s, "local-address", [], live, _address)).to_wit()


@tcp_if.method(R, "remote-address")
def remote_address(host: HostContext, s: TcpSocket) -> Any:
    def live() -> str:
        if s.state != CONNECTED or s.sock is None:
            raise fail("invalid-state")
        if s.remote is not None:  # what the guest connected to, however connect.py got there
            return s.remote.to_trace()
        try:
            return SocketAddress.from_os(s.sock.family, s.sock.getpeername()).to_trace()
        except OSError as e:
            raise _os_error(e) from None

    return SocketAddress.from_trace(tap(host, s, "remote-address", [], live, _address)).to_wit()


@tcp_if.method(R, "is-listening")
def is_listening(host: HostContext, s: TcpSocket) -> bool:
    return s.state == LISTENING  # follows from recorded outcomes: the same on replay


@tcp_if.method(R, "address-family")
def address_family(host: HostContext, s: TcpSocket) -> str:
    return s.family


@tcp_if.method(R, "set-listen-backlog-size")
def set_listen_backlog_size(host: HostContext, s: TcpSocket, value: int) -> None:
    def live() -> None:
        if value == 0:
            raise fail("invalid-argument")
        size = max(1, min(value, (1 << 31) - 1))
        if s.state in (DEFAULT, BOUND):
            s.backlog = size
        elif s.state == LISTENING:
            try:
                s.sock.listen(size)  # type: ignore[union-attr]
            except OSError:
                raise fail("not-supported") from None
            s.backlog = size
        else:
            raise fail("invalid-state")

    tap(host, s, "set-listen-backlog-size", [value], live, nothing)


@tcp_if.method(R, "subscribe")
def subscribe(host: HostContext, s: TcpSocket) -> Pollable:
    return Pollable(s.readiness, label=s.label)


@tcp_if.method(R, "shutdown")
def shutdown(host: HostContext, s: TcpSocket, how: str) -> None:
    def live() -> None:
        if s.state != CONNECTED or s.streams is None:
            raise fail("invalid-state")
        if how in ("receive", "both"):
            try:
                s.sock.shutdown(socket.SHUT_RD)  # type: ignore[union-attr]
            except OSError:
                pass
        if how in ("send", "both"):
            s.streams[1].shut()

    tap(host, s, "shutdown", [how], live, nothing)
    if s.streams is not None and how in ("receive", "both"):
        s.streams[0].shut()


# ------------------------------------------------------------------ socket options


def _get(name: str, read: Callable[[socket.socket], Any], check: Callable[[list[Any], Any], None]):  # type: ignore[no-untyped-def]
    def impl(host: HostContext, s: TcpSocket) -> Any:
        def live() -> Any:
            try:
                return read(s.fd_or_invalid())
            except OSError as e:
                raise _os_error(e) from None
        return tap(host, s, name, [], live, check)
    tcp_if.method(R, name)(impl)


class _Remembered:
    """A socket whose setsockopt calls are kept: connect.py connects a socket of its own, and
    what the guest set before connecting must hold for it too (finish-connect sets them again)."""

    def __init__(self, s: TcpSocket):
        self._s = s
        self._sock = s.fd_or_invalid()
        self.family = self._sock.family

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self._sock.setsockopt(level, option, value)
        self._s.options.append((level, option, value))


def _set(name: str, write: Callable[[Any, Any, TcpSocket], None]) -> None:
    def impl(host: HostContext, s: TcpSocket, value: Any) -> None:
        def live() -> None:
            try:
                write(_Remembered(s), value, s)
            except OSError as e:
                raise _os_error(e) from None
        tap(host, s, name, [value], live, nothing)
    tcp_if.method(R, name)(impl)


NS = 1_000_000_000
_I32_MAX = (1 << 31) - 1


def _positive(value: int) -> None:
    if value == 0:
        raise fail("invalid-argument")


def _set_seconds(option: int) -> Callable[[socket.socket, int, TcpSocket], None]:
    def write(sock: socket.socket, ns: int, s: TcpSocket) -> None:
        _positive(ns)
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, min(ns, 32767 * NS)) // NS)
    return write


def _set_count(sock: socket.socket, value: int, s: TcpSocket) -> None:
    _positive(value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, min(value, 127)))


def _hop_option(s: TcpSocket) -> tuple[int, int]:
    return (socket.IPPROTO_IP, socket.IP_TTL) if s.family == "ipv4" else (socket.IPPROTO_IPV6,
                                                                           socket.IPV6_UNICAST_HOPS)


def _get_hops(sock: socket.socket) -> int:
    level, option = ((socket.IPPROTO_IP, socket.IP_TTL) if sock.family == socket.AF_INET
                     else (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))
    value = sock.getsockopt(level, option)
    if not 0 <= value < 256:
        raise fail("not-supported")
    return value


def _set_hops(sock: socket.socket, value: int, s: TcpSocket) -> None:
    _positive(value)
    sock.setsockopt(*_hop_option(s), value)


def _set_buffer(option: int) -> Callable[[socket.socket, int, TcpSocket], None]:
    def write(sock: socket.socket, value: int, s: TcpSocket) -> None:
        _positive(value)
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, max(1, min(value, _I32_MAX)))
        except OSError as e:
            if e.errno != errno.ENOBUFS:  # a hint, as wasmtime treats it
                raise
    return write


_get("keep-alive-enabled", lambda k: bool(k.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)), _flag)
_set("set-keep-alive-enabled", lambda k, v, s: k.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(v)))
_get("keep-alive-idle-time", lambda k: k.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) * NS, _unsigned(64))
_set("set-keep-alive-idle-time", _set_seconds(socket.TCP_KEEPIDLE))
_get("keep-alive-interval", lambda k: k.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) * NS, _unsigned(64))
_set("set-keep-alive-interval", _set_seconds(socket.TCP_KEEPINTVL))
_get("keep-alive-count", lambda k: k.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), _unsigned(32))
_set("set-keep-alive-count", _set_count)
_get("hop-limit", _get_hops, _unsigned(8))
_set("set-hop-limit", _set_hops)
_get("receive-buffer-size", lambda k: k.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2, _unsigned(64))
_set("set-receive-buffer-size", _set_buffer(socket.SO_RCVBUF))
_get("send-buffer-size", lambda k: k.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2, _unsigned(64))
_set("set-send-buffer-size", _set_buffer(socket.SO_SNDBUF))
