"""wasi:sockets/udp-create-socket — a new UDP socket, if the grant switches UDP on."""

from __future__ import annotations

import socket

from ..context import HostContext
from ..wit import Interface
from .network import FAMILIES, error_code, fail, grant_of, next_label, nothing
from .udp import UdpSocket

udp_create_if = Interface("wasi:sockets/udp-create-socket")


@udp_create_if.func("create-udp-socket")
def create_udp_socket(host: HostContext, family: str) -> UdpSocket:
    made: list[socket.socket] = []

    def live() -> None:
        if not grant_of(host).protocol("udp"):
            raise fail("access-denied")
        try:
            sock = socket.socket(FAMILIES[family], socket.SOCK_DGRAM)
        except OSError as e:
            raise fail(error_code(e)) from None
        if family == "ipv6":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        made.append(sock)

    host.tap("wasi:sockets/udp-create-socket.create-udp-socket", [family], live, nothing)
    return UdpSocket(host, family, next_label(host, "udp"), made[0] if made else None)
