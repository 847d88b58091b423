"""What the guest may do with wasi:sockets: wasmtime's `-S` options and rr's `--allow-net`.

wasmtime's vocabulary, with wasmtime 49's meaning (`-S a,b` and `-S a -S b` alike):

    inherit-network         every address; switches TCP and UDP on
    allow-ip-name-lookup    ip-name-lookup may resolve any name
    tcp[=y|n]  udp[=y|n]    switch a protocol on or off (`inherit-network,tcp=n`: no TCP)

Nothing granted: creating a socket is `access-denied`, a lookup (even of an IP literal)
`permanent-resolver-failure`. A protocol on without an address: the socket is created and a
connect fails at finish-connect with `access-denied`, a bind at start-bind.

`--allow-net PATTERN` (rr's own, repeatable) grants one address, like inherit-network does
all of them, and switches TCP and UDP on unless `-S tcp=n` / `udp=n` says otherwise:

    127.0.0.1:5432   [::1]:8080      an IP and port (connect, send to, or bind that port)
    127.0.0.1  [::1]  127.0.0.1:*    an IP, any port
    10.0.0.0/8:*                     a network, any port
    db.example.com:5432              a name: the guest may look it up (without
    *.example.com:443                allow-ip-name-lookup) and use the addresses the lookup
                                     answered in this run, on that port
    *                                everything (as inherit-network)

Binding port 0 (a client's implicit bind, any local address) is allowed whenever some address
is granted; binding a given port needs that address and port granted (a server).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL = "*"
S_OPTIONS = ("inherit-network", "allow-ip-name-lookup", "tcp", "udp")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadGrant(ValueError):
    """An -S socket option or --allow-net pattern that cannot be read (the message says why)."""


@dataclass(frozen=True)
class _Rule:
    network: IpNetwork | None = None   # addresses; None: a name rule (or everything)
    name: str | None = None            # a lower-case name, ".domain" for *.domain, or "*"
    port: int | None = None            # None: any port

    def allows_port(self, port: int) -> bool:
        return self.port is None or self.port == port

    def allows_name(self, name: str) -> bool:
        if self.name is None:
            return False
        if self.name == ALL:
            return True
        if self.name.startswith("."):
            return name.endswith(self.name)
        return name == self.name


def _port(text: str, pattern: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadGrant(f"{pattern!r}: port {text!r} is not a number from 1 to 65535 or *")
    return int(text)


def _network(text: str) -> IpNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def normal_name(name: str) -> str:
    return name.lower().rstrip(".")


def parse(pattern: str) -> _Rule:
    text = pattern.strip()
    if text == ALL:
        return _Rule(name=ALL)
    port: int | None = None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise BadGrant(f"{pattern!r}: expected [IPv6] or [IPv6]:PORT")
        net = _network(inside)
        if net is None or net.version != 6:
            raise BadGrant(f"{pattern!r}: {inside!r} is not an IPv6 address")
        return _Rule(network=net, port=_port(rest[1:], pattern) if rest else None)
    if text.count(":") > 1:  # a bare IPv6 address or network: no port
        net = _network(text)
        if net is None:
            raise BadGrant(f"{pattern!r}: not an IPv6 address (write [IPv6]:PORT for a port)")
        return _Rule(network=net)
    host, colon, port_text = text.partition(":")
    if colon:
        port = _port(port_text, pattern)
    net = _network(host)
    if net is not None:
        return _Rule(network=net, port=port)
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    labels = name.rstrip(".").split(".")
    if not name or not all(labels) or any(c in name for c in "*/@?#[]% \t"):
        raise BadGrant(f"{pattern!r}: expected *, IP[:PORT], [IPv6][:PORT], NETWORK/BITS[:PORT], "
                       "NAME[:PORT] or *.DOMAIN[:PORT] (PORT a number or *)")
    return _Rule(name=("." if wildcard else "") + normal_name(name), port=port)


def _flag(option: str, setting: str) -> bool:
    value = setting.lower()
    if value in ("y", "yes", "true", "1"):
        return True
    if value in ("n", "no", "false", "0"):
        return False
    raise BadGrant(f"-S {option!r}: expected y or n")


@dataclass
class SocketGrant:
    """The parsed grant; `to_header()` is what a trace records (replay needs no flags)."""

    inherit_network: bool = False
    allow_lookup: bool = False
    tcp: bool | None = None        # None: as the address grants imply
    udp: bool | None = None
    allow_net: list[str] = field(default_factory=list)   # the user's patterns, as typed
    # Addresses that lookups of granted names answered in this run (live only).
    _looked_up: dict[IpAddress, list[_Rule]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rules = [parse(p) for p in self.allow_net]

    # ------------------------------------------------------------ building
    def s_option(self, option: str) -> None:
        """One wasmtime `-S` option (no commas) that names a socket grant."""
        name, eq, setting = option.strip().partition("=")
        value = _flag(option.strip(), setting) if eq else True
        if name == "inherit-network":
            self.inherit_network = value
        elif name == "allow-ip-name-lookup":
            self.allow_lookup = value
        elif name == "tcp":
            self.tcp = value
        elif name == "udp":
            self.udp = value
        else:
            raise BadGrant(f"-S {option.strip()!r}: not a socket option")

    def allow(self, pattern: str) -> None:
        rule = parse(pattern)
        self.allow_net.append(pattern.strip())
        self._rules.append(rule)

    # ------------------------------------------------------------ questions
    @property
    def any_address(self) -> bool:
        return self.inherit_network or bool(self._rules)

    def protocol(self, name: str) -> bool:
        """Whether `tcp` or `udp` sockets may be created."""
        explicit = self.tcp if name == "tcp" else self.udp
        return explicit if explicit is not None else self.any_address

    def lookup_allowed(self, name: str) -> bool:
        if self.allow_lookup:
            return True
        normal = normal_name(name)
        return any(rule.allows_name(normal) for rule in self._rules)

    def learned(self, name: str, addresses: Iterable[IpAddress]) -> None:
        """A granted name resolved to `addresses`: its rules now cover them too."""
        normal = normal_name(name)
        rules = [r for r in self._rules if r.allows_name(normal) and r.name != ALL]
        if rules:
            for address in addresses:
                self._looked_up.setdefault(address, []).extend(rules)

    def address_allowed(self, ip: IpAddress, port: int) -> bool:
        """Connect to, send to, or bind (a non-zero port) ip:port."""
        if self.inherit_network:
            return True
        for rule in self._rules:
            if rule.name == ALL:
                return True
            if rule.network is not None and ip in rule.network and rule.allows_port(port):
                return True
        return any(rule.allows_port(port) for rule in self._looked_up.get(ip, ()))

    def ip_granted(self, ip: IpAddress) -> bool:
        """Whether some rule grants `ip` on some port (its lookup as a literal is then answered)."""
        return self.inherit_network or any(rule.name == ALL or (rule.network is not None and ip in rule.network)
                                           for rule in self._rules)

    def bind_allowed(self, ip: IpAddress, port: int) -> bool:
        if port == 0:
            return self.any_address
        return self.address_allowed(ip, port)

    def __bool__(self) -> bool:
        return self.any_address or self.allow_lookup or bool(self.tcp) or bool(self.udp)

    # ------------------------------------------------------------ the trace header
    def to_header(self) -> dict[str, Any]:
        return {"inherit-network": self.inherit_network, "allow-ip-name-lookup": self.allow_lookup,
                "tcp": self.tcp, "udp": self.udp, "allow-net": list(self.allow_net)}

    @classmethod
    def from_header(cls, value: Any) -> "SocketGrant":
        """The grant a trace recorded; BadGrant if the field is not one."""
        if type(value) is not dict:
            raise BadGrant("not a map")
        allow = value.get("allow-net", [])
        if type(allow) is not list or not all(type(p) is str for p in allow):
            raise BadGrant("allow-net is not a list of patterns")
        flags = {k: value.get(k) for k in ("inherit-network", "allow-ip-name-lookup", "tcp", "udp")}
        if not all(v is None or type(v) is bool for v in flags.values()):
            raise BadGrant("a switch is not true, false or null")
        return cls(inherit_network=bool(flags["inherit-network"]), allow_lookup=bool(flags["allow-ip-name-lookup"]),
                   tcp=flags["tcp"], udp=flags["udp"], allow_net=list(allow))


def is_socket_option(option: str) -> bool:
    """Whether one `-S` option (no commas) is one of the socket grants above."""
    return option.strip().partition("=")[0] in S_OPTIONS
