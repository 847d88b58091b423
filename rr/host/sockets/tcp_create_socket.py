"""wasi:sockets/tcp-create-socket — a new TCP socket, if the grant switches TCP on."""

from __future__ import annotations

import socket

from ..context import HostContext
from ..wit import Interface
from .network import FAMILIES, error_code, fail, grant_of, next_label, nothing
from .tcp import TcpSocket

tcp_create_if = Interface("wasi:sockets/tcp-create-socket")


@tcp_create_if.func("create-tcp-socket")
def create_tcp_socket(host: HostContext, family: str) -> TcpSocket:
    made: list[socket.socket] = []

    def live() -> None:
        if not grant_of(host).protocol("tcp"):
            raise fail("access-denied")
        try:
            sock = socket.socket(FAMILIES[family], socket.SOCK_STREAM)
        except OSError as e:
            raise fail(error_code(e)) from None
        if family == "ipv6":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        made.append(sock)

    host.tap("wasi:sockets/tcp-create-socket.create-tcp-socket", [family], live, nothing)
    return TcpSocket(host, family, next_label(host, "tcp"), made[0] if made else None)
