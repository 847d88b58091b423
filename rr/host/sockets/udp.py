"""wasi:sockets/udp — udp-socket and its datagram streams, wasmtime's semantics.

Recorded under "wasi:sockets/udp.<method>" with the socket's label (udp-1, ...): bind
outcomes, the addresses, how many datagrams check-send permits and send sent, and every
datagram received as [data, sender]. The datagrams the guest sends are arguments of its
send events ([data, address or null] each), so a replay checks them against the recording.

While live, a receiving thread queues datagrams (at most QUEUE of them, as a socket buffer
would) and notifies the guest's waits; the incoming stream's pollable is ready while the
queue holds something. A replay opens no socket.
"""

from __future__ import annotations

import collections
import errno
import select
import socket
import threading
from typing import Any

from ...typecheck import BadValue, show
from ..context import HostContext
from ..poll import Pollable
from ..wit import Interface
from .network import Network, SocketAddress, bind, error_code, fail, nothing, valid_family, valid_remote

udp_if = Interface("wasi:sockets/udp")

MAX_DATAGRAM = 65535
PERMIT = 16     # datagrams check-send allows at once (wasmtime's)
QUEUE = 1024    # datagrams read ahead of the guest

DEFAULT, BIND_STARTED, BOUND = "default", "bind-started", "bound"


class UdpSocket:
    def __init__(self, host: HostContext, family: str, label: str, sock: socket.socket | None):
        self.host = host
        self.family = family
        self.label = label
        self.sock = sock
        self.state = DEFAULT
        self.network: Network | None = None
        self.connected: SocketAddress | None = None
        self.incoming: IncomingDatagramStream | None = None
        self._closed = threading.Event()
        self._queue: collections.deque[tuple[bytes, Any] | OSError] = collections.deque()
        self._room = threading.Condition()
        self._receiving = False

    def start_receiving(self) -> None:
        if self._receiving or self.sock is None:
            return
        self._receiving = True
        threading.Thread(target=self._receive, name=f"rr-{self.label}-recv", daemon=True).start()

    def _receive(self) -> None:
        assert self.sock is not None
        while not self._closed.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.5)
            if not r:
                continue
            try:
                item: tuple[bytes, Any] | OSError = self.sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                continue
            except OSError as e:
                if self._closed.is_set():
                    return
                item = e
            with self._room:
                while len(self._queue) >= QUEUE and not self._closed.is_set():
                    self._room.wait(0.5)
                self._queue.append(item)
            self.host.notify()

    def close(self) -> None:
        self._closed.set()
        with self._room:
            self._room.notify_all()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


class IncomingDatagramStream:
    def __init__(self, socket_: UdpSocket, remote: SocketAddress | None):
        self.socket = socket_
        self.remote = remote
        self.label = f"{socket_.label}-in"

    def ready(self) -> bool:
        return bool(self.socket._queue)


class OutgoingDatagramStream:
    def __init__(self, socket_: UdpSocket, remote: SocketAddress | None):
        self.socket = socket_
        self.remote = remote
        self.label = f"{socket_.label}-out"
        self.state: int | str = "idle"     # "idle", a permitted count, or "waiting"

    def ready(self) -> bool:
        return self.state != "waiting" or self.ready_to_send()

    def ready_to_send(self) -> bool:
        sock = self.socket.sock
        return sock is None or bool(select.select([], [sock], [], 0)[1])


def _tap(host: HostContext, label: str, method: str, args: list[Any], live, check=nothing):  # type: ignore[no-untyped-def]
    return host.tap(f"wasi:sockets/udp.{method}", [label, *args], live, check)


def _address(args: list[Any], result: Any) -> None:
    SocketAddress.from_trace(result)


def _count(limit: int | None = None):  # type: ignore[no-untyped-def]
    def check(args: list[Any], result: Any) -> None:
        bound = limit if limit is not None else len(args[-1])
        if type(result) is not int or not 0 <= result <= bound:
            raise BadValue(f"{show(result)} is not a count of at most {bound}", "u64")
    return check


# ------------------------------------------------------------------ the socket


@udp_if.method("udp-socket", "start-bind")
def start_bind(host: HostContext, s: UdpSocket, network: Network, local: Any) -> None:
    address = SocketAddress.from_wit(local)

    def live() -> None:
        bind(s.sock, network, address, s.family, s.state == DEFAULT)
        s.state = BIND_STARTED

    _tap(host, s.label, "start-bind", [address.to_trace()], live)
    s.network = network


@udp_if.method("udp-socket", "finish-bind")
def finish_bind(host: HostContext, s: UdpSocket) -> None:
    def live() -> None:
        if s.state != BIND_STARTED:
            raise fail("not-in-progress")
        s.state = BOUND

    _tap(host, s.label, "finish-bind", [], live)
    s.state = BOUND


def _disconnect(sock: socket.socket) -> None:
    """connect(AF_UNSPEC): how POSIX dissolves a UDP socket's association (wasmtime's
    connect_unspec); Python's socket.connect cannot express it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    unspec = (ctypes.c_ubyte * 16)()   # a sockaddr whose sa_family is 0, AF_UNSPEC
    if libc.connect(sock.fileno(), unspec, ctypes.sizeof(unspec)) != 0:
        code = ctypes.get_errno()
        if code != errno.EAFNOSUPPORT:  # Linux answers this after dissolving it anyway
            raise fail(error_code(OSError(code, "disconnect")))


@udp_if.method("udp-socket", "stream")
def stream(host: HostContext, s: UdpSocket, remote: Any) -> tuple[IncomingDatagramStream, OutgoingDatagramStream]:
    address = None if remote is None else SocketAddress.from_wit(remote)

    def live() -> None:
        if s.state != BOUND:
            raise fail("invalid-state")
        assert s.sock is not None
        if s.connected is not None:
            _disconnect(s.sock)
            s.connected = None
        if address is not None:
            if s.network is None or not s.network.grant.address_allowed(address.ip, address.port):
                raise fail("access-denied")
            if not valid_remote(address) or not valid_family(address.ip, s.family):
                raise fail("invalid-argument")
            try:
                s.sock.connect(address.to_os())
            except OSError as e:
                raise fail(error_code(e)) from None
            s.connected = address
        s.start_receiving()

    _tap(host, s.label, "stream", [None if address is None else address.to_trace()], live)
    s.connected = address
    incoming = IncomingDatagramStream(s, address)
    s.incoming = incoming
    return incoming, OutgoingDatagramStream(s, address)


@udp_if.method("udp-socket", "local-address")
def local_address(host: HostContext, s: UdpSocket) -> Any:
    def live() -> str:
        if s.state != BOUND or s.sock is None:
            raise fail("invalid-state")
        return SocketAddress.from_os(s.sock.family, s.sock.getsockname()).to_trace()

    return SocketAddress.from_trace(_tap(host, s.label, "local-address", [], live, _address)).to_wit()


@udp_if.method("udp-socket", "remote-address")
def remote_address(host: HostContext, s: UdpSocket) -> Any:
    def live() -> str:
        if s.connected is None:
            raise fail("invalid-state")
        return s.connected.to_trace()

    return SocketAddress.from_trace(_tap(host, s.label, "remote-address", [], live, _address)).to_wit()


@udp_if.method("udp-socket", "address-family")
def address_family(host: HostContext, s: UdpSocket) -> str:
    return s.family


@udp_if.method("udp-socket", "subscribe")
def subscribe(host: HostContext, s: UdpSocket) -> Pollable:
    return Pollable(lambda: True, label=s.label)  # no socket-level operation of UDP blocks


def _option(name: str, read, check) -> None:  # type: ignore[no-untyped-def]
    def impl(host: HostContext, s: UdpSocket) -> Any:
        def live() -> Any:
            if s.sock is None:
                raise fail("invalid-state")
            try:
                return read(s)
            except OSError as e:
                raise fail(error_code(e)) from None
        return _tap(host, s.label, name, [], live, check)
    udp_if.method("udp-socket", name)(impl)


def _set_option(name: str, write) -> None:  # type: ignore[no-untyped-def]
    def impl(host: HostContext, s: UdpSocket, value: Any) -> None:
        def live() -> None:
            if value == 0:
                raise fail("invalid-argument")
            if s.sock is None:
                raise fail("invalid-state")
            try:
                write(s, value)
            except OSError as e:
                if e.errno != errno.ENOBUFS:  # on a buffer size: a hint, as wasmtime treats it
                    raise fail(error_code(e)) from None
        _tap(host, s.label, name, [value], live)
    udp_if.method("udp-socket", name)(impl)


def _hops(s: UdpSocket) -> tuple[int, int]:
    return (socket.IPPROTO_IP, socket.IP_TTL) if s.family == "ipv4" else (socket.IPPROTO_IPV6,
                                                                           socket.IPV6_UNICAST_HOPS)


def _u(bits: int):  # type: ignore[no-untyped-def]
    def check(args: list[Any], result: Any) -> None:
        if type(result) is not int or not 0 <= result < 1 << bits:
            raise BadValue(f"{show(result)} is not a u{bits}", f"u{bits}")
    return check


_option("unicast-hop-limit", lambda s: s.sock.getsockopt(*_hops(s)), _u(8))
_set_option("set-unicast-hop-limit", lambda s, v: s.sock.setsockopt(*_hops(s), v))
_option("receive-buffer-size", lambda s: s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2, _u(64))
_set_option("set-receive-buffer-size",
            lambda s, v: s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, min(v, (1 << 31) - 1)))
_option("send-buffer-size", lambda s: s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2, _u(64))
_set_option("set-send-buffer-size",
            lambda s, v: s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(v, (1 << 31) - 1)))


# ------------------------------------------------------------------ incoming datagrams


def _datagrams(args: list[Any], result: Any) -> None:
    if type(result) is not list or len(result) > args[-1]:
        raise BadValue(f"{show(result)} is not a list of at most {args[-1]} datagrams", "list<incoming-datagram>")
    for i, d in enumerate(result):
        if type(d) is not list or len(d) != 2 or type(d[0]) is not bytes or len(d[0]) > MAX_DATAGRAM:
            raise BadValue(f"datagram {i}: {show(d)} is not [data, sender]", "incoming-datagram")
        SocketAddress.from_trace(d[1])


@udp_if.method("incoming-datagram-stream", "receive")
def receive(host: HostContext, s: IncomingDatagramStream, max_results: int) -> list[Any]:
    def live() -> list[list[Any]]:
        if max_results == 0:
            return []
        sock = s.socket
        out: list[list[Any]] = []
        with sock._room:
            while sock._queue and len(out) < max_results:
                item = sock._queue[0]
                if isinstance(item, OSError):
                    if out:
                        break
                    sock._queue.popleft()
                    raise fail(error_code(item))
                sock._queue.popleft()
                data, peer = item
                sender = SocketAddress.from_os(sock.sock.family, peer)  # type: ignore[union-attr]
                if s.remote is not None and sender != s.remote:
                    continue  # not from the connected peer: dropped, as wasmtime does
                out.append([data, sender.to_trace()])
            sock._room.notify_all()
        return out

    got = host.tap("wasi:sockets/udp.receive", [s.label, max_results], live, _datagrams)
    return [(data, SocketAddress.from_trace(sender).to_wit()) for data, sender in got]


@udp_if.method("incoming-datagram-stream", "subscribe")
def incoming_subscribe(host: HostContext, s: IncomingDatagramStream) -> Pollable:
    return Pollable(s.ready, label=s.label)


# ------------------------------------------------------------------ outgoing datagrams


@udp_if.method("outgoing-datagram-stream", "check-send")
def check_send(host: HostContext, s: OutgoingDatagramStream) -> int:
    def live() -> int:
        if s.state == "idle" or (s.state == "waiting" and s.ready_to_send()):
            s.state = PERMIT
        return 0 if s.state == "waiting" else s.state  # type: ignore[return-value]

    permit = host.tap("wasi:sockets/udp.check-send", [s.label], live, _count(PERMIT))
    s.state = permit if permit else "waiting"
    return permit  # type: ignore[no-any-return]


def _send_one(s: OutgoingDatagramStream, data: bytes, remote: SocketAddress | None) -> None:
    if len(data) > MAX_DATAGRAM:
        raise fail("datagram-too-large")
    if s.remote is None and remote is not None:
        grant = s.socket.network.grant if s.socket.network else None
        if grant is None:
            raise fail("invalid-state")
        if not grant.address_allowed(remote.ip, remote.port):
            raise fail("access-denied")
        target = remote
    elif s.remote is not None and (remote is None or remote == s.remote):
        target = s.remote
    else:
        raise fail("invalid-argument")
    if not valid_remote(target) or not valid_family(target.ip, s.socket.family):
        raise fail("invalid-argument")
    sock = s.socket.sock
    assert sock is not None
    try:
        if s.remote is not None:
            sock.send(data, socket.MSG_DONTWAIT)
        else:
            sock.sendto(data, socket.MSG_DONTWAIT, target.to_os())
    except OSError as e:
        raise fail(error_code(e)) from None


@udp_if.method("outgoing-datagram-stream", "send")
def send(host: HostContext, s: OutgoingDatagramStream, datagrams: list[Any]) -> int:
    items = [(bytes(data), None if remote is None else SocketAddress.from_wit(remote)) for data, remote in datagrams]
    shown = [[data, None if remote is None else remote.to_trace()] for data, remote in items]
    permitted = s.state
    if isinstance(permitted, int) and permitted >= len(items):
        s.state = "idle"

    def live() -> int:
        if not isinstance(permitted, int) or permitted < len(items):
            # wasmtime traps here; an error value keeps the guest alive and says why in the trace
            raise fail("invalid-state")
        if not items:
            return 0
        count = 0
        for data, remote in items:
            try:
                _send_one(s, data, remote)
            except Exception as e:
                code = getattr(e, "payload", None)
                if count > 0:
                    return count
                if code == "would-block":
                    s.state = "waiting"
                    return 0
                raise
            count += 1
        return count

    sent = host.tap("wasi:sockets/udp.send", [s.label, shown], live, _count())
    s.state = "waiting" if (not sent and items) else "idle"
    return sent  # type: ignore[no-any-return]


@udp_if.method("outgoing-datagram-stream", "subscribe")
def outgoing_subscribe(host: HostContext, s: OutgoingDatagramStream) -> Pollable:
    return Pollable(s.ready, label=s.label)
