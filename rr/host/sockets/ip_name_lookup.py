"""wasi:sockets/ip-name-lookup — resolve-addresses and its address stream, as wasmtime does.

Without the grant every lookup is `permanent-resolver-failure`, IP literals included (what
wasmtime 49 answers; wasi-libc sends numeric names through the lookup too). A granted lookup
parses the name as wasmtime does (url_host.py: refused names are invalid-argument, IPv4 forms
like 0x7f.1 are addresses), answers an address at once, and resolves a domain through the
system resolver (getaddrinfo,
as wasmtime's tokio lookup_host) on a thread: resolve-next-address says `would-block` until it
has finished, then gives the addresses one by one, then none. Whether it had to wait and
every address are recorded; a replay resolves nothing.

rr's `--allow-net NAME:PORT` grants the lookup of NAME (and an `--allow-net IP` the lookup of
that literal), without `-S allow-ip-name-lookup`.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from ...typecheck import BadValue, show
from ..context import HostContext
from ..poll import Pollable
from ..wit import Interface
from .grant import IpAddress
from . import url_host
from .network import Network, fail, ip_to_wit, next_label, nothing

lookup_if = Interface("wasi:sockets/ip-name-lookup")
R = "resolve-address-stream"


class ResolveAddressStream:
    def __init__(self, label: str):
        self.label = label
        self.done = threading.Event()
        self.addresses: list[IpAddress] = []
        self.error: str | None = None

    def ready(self) -> bool:
        return self.done.is_set()


def _literal(name: str) -> IpAddress | None:
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if "%" in text:   # Python's parser takes a zone index (fe80::1%eth0); wasmtime's refuses it
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _canonical(ip: IpAddress) -> IpAddress:
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def _resolve(host: HostContext, network: Network, name: str, stream: ResolveAddressStream) -> None:
    try:
        # Bytes, so that Python does not run its own IDNA codec (which refuses a 64-byte label)
        # over a name url_host has already made ASCII: the resolver decides, as under wasmtime.
        infos = socket.getaddrinfo(name.encode("ascii"), 0, type=socket.SOCK_STREAM)
        stream.addresses = [_canonical(ipaddress.ip_address(info[4][0].partition("%")[0])) for info in infos]
        network.grant.learned(name, stream.addresses)
    except (OSError, UnicodeError, ValueError):
        stream.error = "name-unresolvable"
    stream.done.set()
    host.notify()


@lookup_if.func("resolve-addresses")
def resolve_addresses(host: HostContext, network: Network, name: str) -> ResolveAddressStream:
    stream = ResolveAddressStream(next_label(host, "lookup"))

    def live() -> None:
        literal = _literal(name)
        grant = network.grant
        if not (grant.lookup_allowed(name) or (literal is not None and grant.ip_granted(literal))):
            raise fail("permanent-resolver-failure")
        if literal is not None:
            stream.addresses = [_canonical(literal)]
            stream.done.set()
            return
        try:
            parsed = url_host.parse(name)
        except ValueError:
            raise fail("invalid-argument") from None
        if not isinstance(parsed, str):    # an IPv4 form such as 0x7f.1: an address, no lookup
            stream.addresses = [_canonical(parsed)]
            stream.done.set()
            return
        threading.Thread(target=_resolve, args=(host, network, parsed, stream), name=f"rr-{stream.label}",
                         daemon=True).start()

    host.tap("wasi:sockets/ip-name-lookup.resolve-addresses", [stream.label, name], live, nothing)
    return stream


def _address_or_none(args: list[Any], result: Any) -> None:
    if result is not None and (type(result) is not str or _literal(result) is None):
        raise BadValue(f"{show(result)} is not an IP address or null", "option<ip-address>")


@lookup_if.method(R, "resolve-next-address")
def resolve_next_address(host: HostContext, s: ResolveAddressStream) -> Any:
    def live() -> str | None:
        if not s.done.is_set():
            raise fail("would-block")
        if s.error is not None:
            raise fail(s.error)
        return str(s.addresses.pop(0)) if s.addresses else None

    text = host.tap("wasi:sockets/ip-name-lookup.resolve-next-address", [s.label], live, _address_or_none)
    return None if text is None else ip_to_wit(_literal(text))  # type: ignore[arg-type]


@lookup_if.method(R, "subscribe")
def subscribe(host: HostContext, s: ResolveAddressStream) -> Pollable:
    return Pollable(s.ready, label=s.label)
