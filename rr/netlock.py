"""During replay the rr process may open no connection except to loopback.

A CPython audit hook sees every `socket.connect` in the process — the host's HTTP
transfers, mitmproxy's upstream connections, anything a library might try — and
refuses non-loopback addresses while the lock is engaged. Audit hooks cannot be
removed, so the hook is installed once and consults a count: several replays may run
at once in one process, and the lock holds until the last of them releases it.

A recording that runs at the same time still reaches its upstreams: its embedded proxy's
event-loop thread is exempt (`exempt_this_thread`), and a replay's proxy opens no upstream
connection at all (proxy_addon.replay refuses them in its server_connect hook).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Any

_engaged = 0
_installed = False
_lock = threading.Lock()
_exempt: set[int] = set()   # thread idents
refused: list[str] = []
_REFUSED_KEPT = 100          # a long-lived process keeps only the last ones


def _is_loopback(address: Any, family: int) -> bool:
    if family == socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _engaged or event != "socket.connect":
        return
    sock, address = args
    if not _is_loopback(address, sock.family) and threading.get_ident() not in _exempt:
        refused.append(repr(address))
        del refused[:-_REFUSED_KEPT]
        raise ConnectionRefusedError(f"rr replay: network disabled, refused connection to {address!r}")


def engage() -> None:
    global _engaged, _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
        _engaged += 1


def release() -> None:
    global _engaged
    with _lock:
        _engaged = max(0, _engaged - 1)


def exempt_this_thread(exempt: bool = True) -> None:
    """The calling thread (a recording proxy's loop) may connect anywhere while a replay runs."""
    with _lock:
        (_exempt.add if exempt else _exempt.discard)(threading.get_ident())
