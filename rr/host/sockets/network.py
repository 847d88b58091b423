"""wasi:sockets/network and instance-network: error codes, addresses, the network handle.

Error codes follow wasmtime's mapping of OS errors (crates/wasi/src/sockets/util.rs), so a
guest's libc sees what it sees under the wasmtime CLI: wasi-libc traps on some codes
(`invalid-state`, `not-in-progress` from the wrong call), so a different code is a
different program.

Addresses cross in two forms. WIT values (as rr/abi.py lifts them):
    ('ipv4', (port, (a, b, c, d)))
    ('ipv6', (port, flow-info, (h0, ..., h7), scope-id))
and trace values, readable in `rr inspect`: "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80"
(the scope id after %), with " flow N" appended for a non-zero IPv6 flow label.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

from ...abi import WasiError
from ...typecheck import BadValue, show
from ..context import HostContext
from ..wit import Interface
from .grant import IpAddress, SocketGrant

network_if = Interface("wasi:sockets/network")
instance_network_if = Interface("wasi:sockets/instance-network")

ERROR_CODES = frozenset({
    "unknown", "access-denied", "not-supported", "invalid-argument", "out-of-memory", "timeout",
    "concurrency-conflict", "not-in-progress", "would-block", "invalid-state", "new-socket-limit",
    "address-not-bindable", "address-in-use", "remote-unreachable", "connection-refused",
    "connection-reset", "connection-aborted", "datagram-too-large", "name-unresolvable",
    "temporary-resolver-failure", "permanent-resolver-failure"})

_BY_ERRNO = {
    errno.EPERM: "access-denied", errno.EACCES: "access-denied",
    errno.EADDRINUSE: "address-in-use", errno.EADDRNOTAVAIL: "address-not-bindable",
    errno.ETIMEDOUT: "timeout", errno.ECONNREFUSED: "connection-refused",
    errno.ECONNRESET: "connection-reset", errno.ECONNABORTED: "connection-aborted",
    errno.EINVAL: "invalid-argument", errno.EHOSTUNREACH: "remote-unreachable",
    errno.EHOSTDOWN: "remote-unreachable", errno.ENETDOWN: "remote-unreachable",
    errno.ENETUNREACH: "remote-unreachable", errno.ENONET: "remote-unreachable",
    errno.EISCONN: "invalid-state", errno.ENOTCONN: "invalid-state", errno.EDESTADDRREQ: "invalid-state",
    errno.EMSGSIZE: "datagram-too-large", errno.ENOMEM: "out-of-memory", errno.ENOBUFS: "out-of-memory",
    errno.EOPNOTSUPP: "not-supported", errno.ENOPROTOOPT: "not-supported", errno.EPFNOSUPPORT: "not-supported",
    errno.EPROTONOSUPPORT: "not-supported", errno.EPROTOTYPE: "not-supported",
    errno.ESOCKTNOSUPPORT: "not-supported", errno.EAFNOSUPPORT: "not-supported",
    errno.EAGAIN: "would-block", errno.EINPROGRESS: "would-block",
    errno.EMFILE: "new-socket-limit", errno.ENFILE: "new-socket-limit",
}


def error_code(e: BaseException) -> str:
    """The wasi error-code wasmtime gives for an OS error."""
    if isinstance(e, socket.timeout) and not getattr(e, "errno", None):
        return "timeout"
    code = getattr(e, "errno", None)
    return _BY_ERRNO.get(code, "unknown") if code is not None else "unknown"


def fail(code: str) -> WasiError:
    return WasiError(code)


def nothing(args: list[Any], result: Any) -> None:
    """Replay: a call whose live side returns nothing (its value is built by the host)."""
    if result is not None:
        raise BadValue(f"{show(result)} where the call records no value", "nothing")


FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


# ---------------------------------------------------------------- addresses


@dataclass(frozen=True)
class SocketAddress:
    ip: IpAddress
    port: int
    flow: int = 0
    scope: int = 0

    @property
    def family(self) -> str:
        return "ipv4" if self.ip.version == 4 else "ipv6"

    # ---- WIT
    @classmethod
    def from_wit(cls, value: Any) -> "SocketAddress":
        case, rec = value
        if case == "ipv4":
            port, octets = rec
            return cls(ipaddress.IPv4Address(bytes(octets)), port)
        port, flow, segments, scope = rec
        packed = b"".join(s.to_bytes(2, "big") for s in segments)
        return cls(ipaddress.IPv6Address(packed), port, flow, scope)

    def to_wit(self) -> tuple[str, tuple[Any, ...]]:
        if self.ip.version == 4:
            return ("ipv4", (self.port, tuple(self.ip.packed)))
        packed = self.ip.packed
        segments = tuple(int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2))
        return ("ipv6", (self.port, self.flow, segments, self.scope))

    # ---- the OS
    def to_os(self) -> tuple[Any, ...]:
        if self.ip.version == 4:
            return (str(self.ip), self.port)
        return (str(self.ip), self.port, self.flow, self.scope)

    @classmethod
    def from_os(cls, family: int, address: tuple[Any, ...]) -> "SocketAddress":
        host = address[0].partition("%")[0]
        if family == socket.AF_INET:
            return cls(ipaddress.IPv4Address(host), address[1])
        return cls(ipaddress.IPv6Address(host), address[1], address[2], address[3])

    # ---- the trace
    def to_trace(self) -> str:
        if self.ip.version == 4:
            return f"{self.ip}:{self.port}"
        scope = f"%{self.scope}" if self.scope else ""
        flow = f" flow {self.flow}" if self.flow else ""
        return f"[{self.ip}{scope}]:{self.port}{flow}"

    @classmethod
    def from_trace(cls, text: Any) -> "SocketAddress":
        m = _TRACE_ADDRESS.match(text) if type(text) is str else None
        if m is None:
            raise BadValue(f"{show(text)} is not an address like 127.0.0.1:80 or [::1]:80", "ip-socket-address")
        try:
            if m["v4"] is not None:
                return cls(ipaddress.IPv4Address(m["v4"]), _u(m["port"], 16))
            return cls(ipaddress.IPv6Address(m["v6"]), _u(m["port"], 16), _u(m["flow"] or "0", 32),
                       _u(m["scope"] or "0", 32))
        except ValueError as e:
            raise BadValue(f"{show(text)}: {e}", "ip-socket-address") from None

    def __str__(self) -> str:
        return self.to_trace()


_TRACE_ADDRESS = re.compile(
    r"^(?:(?P<v4>[0-9.]+)|\[(?P<v6>[0-9a-fA-F:.]+)(?:%(?P<scope>\d+))?\]):(?P<port>\d+)(?: flow (?P<flow>\d+))?$")


def _u(text: str, bits: int) -> int:
    value = int(text)
    if value >= 1 << bits:
        raise ValueError(f"{value} does not fit in u{bits}")
    return value


def ip_to_wit(ip: IpAddress) -> tuple[str, tuple[int, ...]]:
    if ip.version == 4:
        return ("ipv4", tuple(ip.packed))
    p = ip.packed
    return ("ipv6", tuple(int.from_bytes(p[i:i + 2], "big") for i in range(0, 16, 2)))


# wasmtime's checks on addresses the guest passes (sockets/util.rs), done before anything else.

def valid_family(ip: IpAddress, family: str) -> bool:
    if family == "ipv4":
        return ip.version == 4
    if ip.version != 6:
        return False
    assert isinstance(ip, ipaddress.IPv6Address)
    words = ip.packed
    deprecated_v4_compatible = words[:12] == bytes(12) and ip not in (ipaddress.IPv6Address("::"),
                                                                        ipaddress.IPv6Address("::1"))
    return not deprecated_v4_compatible and ip.ipv4_mapped is None


def _canonical(ip: IpAddress) -> IpAddress:
    if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
        return ip.ipv4_mapped  # type: ignore[union-attr,no-any-return]
    return ip


def valid_unicast(ip: IpAddress) -> bool:
    ip = _canonical(ip)
    if ip.version == 4:
        return not ip.is_multicast and ip != ipaddress.IPv4Address("255.255.255.255")
    return not ip.is_multicast


def valid_remote(address: SocketAddress) -> bool:
    return not _canonical(address.ip).is_unspecified and address.port != 0


# ---------------------------------------------------------------- the network handle


class Network:
    """The guest's network: the grant it was given. Sockets carry it from their first use."""

    def __init__(self, grant: SocketGrant):
        self.grant = grant


def bind(sock: socket.socket | None, network: Network, address: SocketAddress, family: str, idle: bool,
         reuse_address: bool = False) -> None:
    """start-bind, TCP and UDP alike: wasmtime's checks in its order (access-denied: not
    granted; invalid-argument: not a unicast address of the socket's family; invalid-state:
    not a fresh socket), then the system's bind, its failure as wasmtime's code."""
    if not network.grant.bind_allowed(address.ip, address.port):
        raise fail("access-denied")
    if not valid_unicast(address.ip) or not valid_family(address.ip, family):
        raise fail("invalid-argument")
    if not idle:
        raise fail("invalid-state")
    assert sock is not None
    if reuse_address:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address.to_os())
    except OSError as e:
        raise fail("invalid-argument" if e.errno == errno.EAFNOSUPPORT else error_code(e)) from None


def grant_of(host: HostContext) -> SocketGrant:
    return host.sandbox.sockets or _NOTHING


_NOTHING = SocketGrant()


@instance_network_if.func("instance-network")
def instance_network(host: HostContext) -> Network:
    return Network(grant_of(host))


def next_label(host: HostContext, kind: str) -> str:
    """A name for a new socket or lookup, the same on every run of the same call sequence."""
    counts: dict[str, int] = host.service("sockets.labels", dict)
    counts[kind] = counts.get(kind, 0) + 1
    return f"{kind}-{counts[kind]}"
