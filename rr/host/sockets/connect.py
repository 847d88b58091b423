"""The one place rr opens a live outgoing TCP connection for a guest (tcp.py's start-connect).

Recording may route it elsewhere (through the embedded proxy, so the flow shows where HTTP
does) by replacing `connect`'s body; tcp.py only relies on the contract below. Replay never
calls it.
"""

from __future__ import annotations

import socket


def connect(family: int, address: tuple, timeout: float | None) -> socket.socket:  # type: ignore[type-arg]
    """A blocking socket connected to `address` (a (host, port) tuple for AF_INET, or (host,
    port, flowinfo, scope_id) for AF_INET6), or an OSError with the errno of the failure
    (ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...), which tcp.py maps to wasi error codes.
    `timeout` (seconds, None: the system's) bounds the connect only; the returned socket blocks.
    Called on a thread of its own: it may block as long as the connect takes."""
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
