"""During replay the rr process may open no connection except to loopback.

A CPython audit hook sees every `socket.connect` in the process — the host's HTTP
transfers, mitmproxy's upstream connections, anything a library might try — and
refuses non-loopback addresses while the lock is engaged. Audit hooks cannot be
removed, so the hook is installed once and consults a flag.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

_engaged = False
_installed = False
refused: list[str] = []


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
    if not _is_loopback(address, sock.family):
        refused.append(repr(address))
        raise ConnectionRefusedError(f"rr replay: network disabled, refused connection to {address!r}")


def engage() -> None:
    global _engaged, _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    _engaged = True


def release() -> None:
    global _engaged
    _engaged = False
