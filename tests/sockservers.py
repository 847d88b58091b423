"""Real loopback TCP and UDP servers for socket tests, counting what reaches them.

Nothing is mocked: each server is a real socket on 127.0.0.1 or ::1, port 0 (the kernel
picks a free one), served by a daemon thread. A replay must open no connection: tests
assert `connections == 0` (TCP) or `datagrams == 0` (UDP) after it.

    with TcpEchoServer("::1") as srv:          # echoes every byte back until the client closes
        srv.port, srv.connections, srv.received
    with TcpEchoServer(send=b"x" * N) as srv:  # sends N bytes on accept, then closes (no echo)
    with UdpEchoServer() as srv:               # sends every datagram back to where it came from
        srv.port, srv.datagrams
    closed_port("127.0.0.1")                   # a port nothing listens on (connection refused)
    tcp_exchange("127.0.0.1", port, b"hi\n")   # a test's own client: send, shut down, read all

Every blocking call has a timeout and every loop ends when the server stops.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

TIMEOUT = 10.0  # seconds any single socket operation of a server or test client may take


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _Server:
    kind = socket.SOCK_STREAM

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.family = _family(host)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sock = socket.socket(self.family, self.kind)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._sock.settimeout(0.2)  # the serving loop checks for stop() this often
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        """HOST:PORT as rr's --allow-net takes it ([::1]:PORT for IPv6)."""
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=target, args=args, daemon=True, name=f"sockserver-{self.port}")
        self._threads.append(t)
        t.start()

    def stop(self) -> None:
        self._stopped.set()
        for t in list(self._threads):
            t.join(TIMEOUT)
        self._sock.close()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class TcpEchoServer(_Server):
    """Counts accepted connections; echoes, or with `send` sends those bytes and closes."""

    def __init__(self, host: str = "127.0.0.1", send: bytes | None = None):
        super().__init__(host)
        self._send = send
        self.connections = 0
        self.received = b""          # everything the clients sent, in arrival order
        self._sock.listen(16)
        self._spawn(self._serve)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self._spawn(self._handle, conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        with conn:
            try:
                if self._send is not None:
                    conn.sendall(self._send)
                    return
                while not self._stopped.is_set():
                    data = conn.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        self.received += data
                    conn.sendall(data)
            except OSError:
                return


class UdpEchoServer(_Server):
    """Counts datagrams received; sends each back to its sender."""

    kind = socket.SOCK_DGRAM

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.datagrams = 0
        self.received: list[bytes] = []
        self._spawn(self._serve)

    @property
    def connections(self) -> int:
        """UDP has no connections: the datagrams received, so tests can treat both alike."""
        return self.datagrams

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                data, peer = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams += 1
                self.received.append(data)
            try:
                self._sock.sendto(data, peer)
            except OSError:
                pass


def closed_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on (bound, then released)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tcp_exchange(host: str, port: int, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """A test's own client: connect, send `data`, shut down the sending side, read to the end."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
