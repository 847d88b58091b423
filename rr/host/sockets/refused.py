"""wasi:sockets — the sandbox grants no network, and says so with error values.

Every way to obtain a socket or an address answers `not-supported`, a value the guest
can handle (C's socket() returns -1 with errno set) rather than a trap. The answer is
the same on every run, so nothing here is recorded. A component's outgoing HTTP goes
through wasi:http (rr/host/http), which rr does serve.
"""

from __future__ import annotations

from ...abi import WasiError
from ..context import HostContext
from ..wit import Interface

instance_network_if = Interface("wasi:sockets/instance-network")
network_if = Interface("wasi:sockets/network")
tcp_create_if = Interface("wasi:sockets/tcp-create-socket")
udp_create_if = Interface("wasi:sockets/udp-create-socket")
lookup_if = Interface("wasi:sockets/ip-name-lookup")

REFUSED = "not-supported"


class Network:
    """The guest's (empty) network: a handle to pass to calls that are all refused."""


@instance_network_if.func("instance-network")
def instance_network(host: HostContext) -> Network:
    return Network()


@tcp_create_if.func("create-tcp-socket")
def create_tcp_socket(host: HostContext, family: str) -> None:
    raise WasiError(REFUSED)


@udp_create_if.func("create-udp-socket")
def create_udp_socket(host: HostContext, family: str) -> None:
    raise WasiError(REFUSED)


@lookup_if.func("resolve-addresses")
def resolve_addresses(host: HostContext, network: Network, name: str) -> None:
    raise WasiError(REFUSED)
