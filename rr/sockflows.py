"""A trace's socket exchanges as mitmproxy flows: TCP connections as TCPFlows, UDP sockets as
UDPFlows, name lookups as DNSFlows, so `rr flows` files show them in `mitmweb -r` beside HTTP.

They come from the trace's own wasi:sockets events (what the guest was handed at the tap), not
from the proxy: UDP and lookups never pass through it, and a guest's server side neither.
What is read, per resource label (`tcp-1`, its streams `tcp-1-in` / `tcp-1-out`, `udp-1`,
`lookup-1`):
  tcp     start-connect (the remote address), finish-connect (an error ends the flow), accept
          (the next new tcp label is the accepted connection, its remote-address the peer),
          local-address, and the streams' bytes: writes (write, blocking-write-and-flush) and
          reads (read, blocking-read). For a connection the guest accepted, the peer is the flow's
          client;
  udp     stream (the connected remote), send (its datagrams), receive (datagrams and senders);
  lookup  resolve-addresses (the name) and each resolve-next-address answer, as one A/AAAA
          query and answer (NXDOMAIN for name-unresolvable, SERVFAIL for other errors).
Traces hold no times: flows are stamped with the recording's start time plus their event index
in microseconds, which keeps mitmweb's order the trace's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .trace.model import Event

TCP = "wasi:sockets/tcp."
UDP = "wasi:sockets/udp."
LOOKUP = "wasi:sockets/ip-name-lookup."
STREAMS = "wasi:io/streams."
_WRITES = {"write", "blocking-write-and-flush"}
_READS = {"read", "blocking-read"}
_NO_ADDRESS = ("0.0.0.0", 0)


def parse_address(text: Any) -> tuple[str, int]:
    """ "127.0.0.1:80" / "[::1]:80" as the trace writes socket addresses -> (ip, port)."""
    if not isinstance(text, str) or ":" not in text:
        return _NO_ADDRESS
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return _NO_ADDRESS


@dataclass
class _Socket:
    kind: str                                   # "tcp" or "udp"
    first: int                                  # event index where it appeared
    remote: tuple[str, int] = _NO_ADDRESS
    local: tuple[str, int] = _NO_ADDRESS
    accepted: bool = False                      # the guest accepted it: the peer is the client
    messages: list[tuple[bool, bytes, int]] = field(default_factory=list)   # (from guest, bytes, event)
    error: str | None = None
    used: bool = False                          # connected, accepted, or sent/received anything


@dataclass
class _Lookup:
    name: str
    first: int
    answers: list[str] = field(default_factory=list)
    error: str | None = None


class _Collector:
    def __init__(self) -> None:
        self.sockets: dict[str, _Socket] = {}
        self.lookups: dict[str, _Lookup] = {}
        self.accepting: list[_Socket] = []      # listeners whose accept returned a connection not yet seen

    def socket(self, label: Any, kind: str, index: int) -> _Socket | None:
        if not isinstance(label, str):
            return None
        s = self.sockets.get(label)
        if s is None and kind == "tcp" and self.accepting:
            listener = self.accepting.pop(0)
            s = self.sockets[label] = _Socket("tcp", index, local=listener.local, accepted=True, used=True)
        return s

    def event(self, index: int, e: Event) -> None:
        function = e.call.rpartition(".")[2]
        if e.call.startswith(TCP):
            self._tcp(index, e, function)
        elif e.call.startswith(UDP):
            self._udp(index, e, function)
        elif e.call.startswith(LOOKUP):
            self._lookup(index, e, function)
        elif e.call.startswith(STREAMS) and e.args and isinstance(e.args[0], str):
            self._bytes(index, e, function)

    def _tcp(self, index: int, e: Event, function: str) -> None:
        label = e.args[0] if e.args else None
        if function == "start-connect" and isinstance(label, str):
            s = self.sockets.setdefault(label, _Socket("tcp", index))
            s.remote = parse_address(e.args[1] if len(e.args) > 1 else None)
            s.used = True
            return
        s = self.socket(label, "tcp", index)
        if s is None:
            s = self.sockets.setdefault(label, _Socket("tcp", index)) if isinstance(label, str) else None
            if s is None:
                return
        if function == "finish-connect" and e.failed and e.result != "would-block":
            s.error = str(e.result)
        elif function in ("start-bind", "local-address") and not e.failed:
            address = e.args[1] if function == "start-bind" and len(e.args) > 1 else e.result
            if function == "local-address" or s.local == _NO_ADDRESS:
                s.local = parse_address(address)
        elif function == "remote-address" and not e.failed:
            s.remote = parse_address(e.result)
        elif function == "accept" and not e.failed:
            self.accepting.append(s)

    def _udp(self, index: int, e: Event, function: str) -> None:
        label = e.args[0] if e.args else None
        if not isinstance(label, str):
            return
        base = label.removesuffix("-in").removesuffix("-out")
        s = self.sockets.setdefault(base, _Socket("udp", index))
        if function == "stream" and not e.failed and len(e.args) > 1 and e.args[1] is not None:
            s.remote = parse_address(e.args[1])
        elif function in ("start-bind", "local-address") and not e.failed:
            s.local = parse_address(e.args[1] if function == "start-bind" and len(e.args) > 1 else e.result)
        elif function == "send" and len(e.args) > 1 and isinstance(e.args[1], list):
            sent = e.result if isinstance(e.result, int) and not e.failed else 0
            for datagram in e.args[1][:sent]:
                if isinstance(datagram, list) and datagram and isinstance(datagram[0], bytes):
                    if len(datagram) > 1 and datagram[1] is not None and s.remote == _NO_ADDRESS:
                        s.remote = parse_address(datagram[1])
                    s.messages.append((True, datagram[0], index))
                    s.used = True
        elif function == "receive" and not e.failed and isinstance(e.result, list):
            for datagram in e.result:
                if isinstance(datagram, list) and datagram and isinstance(datagram[0], bytes):
                    if s.remote == _NO_ADDRESS and len(datagram) > 1:
                        s.remote = parse_address(datagram[1])
                    s.messages.append((False, datagram[0], index))
                    s.used = True
        elif e.failed and function in ("send", "receive", "stream") and e.result != "would-block":
            s.error = str(e.result)
            s.used = True

    def _lookup(self, index: int, e: Event, function: str) -> None:
        label = e.args[0] if e.args else None
        if not isinstance(label, str):
            return
        if function == "resolve-addresses":
            lookup = self.lookups[label] = _Lookup(str(e.args[1]) if len(e.args) > 1 else "", index)
            if e.failed:
                lookup.error = str(e.result)
            return
        lookup = self.lookups.get(label)
        if lookup is None or function != "resolve-next-address":
            return
        if e.failed and e.result != "would-block":
            lookup.error = str(e.result)
        elif not e.failed and isinstance(e.result, str):
            lookup.answers.append(e.result)

    def _bytes(self, index: int, e: Event, function: str) -> None:
        label: str = e.args[0]
        base, _, direction = label.rpartition("-")
        if direction not in ("in", "out"):
            return
        s = self.socket(base, "tcp", index) if base.startswith("tcp") else None
        if s is None or s.kind != "tcp":
            return
        if direction == "out" and function in _WRITES and len(e.args) > 1 and isinstance(e.args[1], bytes):
            data = e.args[1]
        elif direction == "in" and function in _READS and not e.failed and isinstance(e.result, bytes):
            data = e.result
        else:
            return
        if data:
            s.messages.append((direction == "out", data, index))
            s.used = True


def socket_flows(events: Iterable[Event], start_time: float) -> Iterator[Any]:
    """mitmproxy TCPFlow / UDPFlow / DNSFlow objects, in the order their socket or lookup first
    appeared in `events` (a trace's events, in order)."""
    collector = _Collector()
    for index, e in enumerate(events):
        collector.event(index, e)
    built: list[tuple[int, Any]] = []
    for label, s in collector.sockets.items():
        if s.used:
            built.append((s.first, _socket_flow(label, s, start_time)))
    for label, lookup in collector.lookups.items():
        built.append((lookup.first, _dns_flow(label, lookup, start_time)))
    for _, f in sorted(built, key=lambda pair: pair[0]):
        yield f


def _stamp(start_time: float, index: int) -> float:
    return start_time + index * 1e-6


def _socket_flow(label: str, s: _Socket, start_time: float) -> Any:
    from mitmproxy import connection, flow, tcp, udp

    t0 = _stamp(start_time, s.first)
    guest, peer = s.local, s.remote
    client_address, server_address = (peer, guest) if s.accepted else (guest, peer)
    client = connection.Client(peername=client_address, sockname=server_address, timestamp_start=t0,
                               transport_protocol=s.kind)  # type: ignore[arg-type]
    server = connection.Server(address=server_address, peername=server_address, sockname=client_address,
                               timestamp_start=t0, transport_protocol=s.kind)  # type: ignore[arg-type]
    f: Any
    if s.kind == "tcp":
        f = tcp.TCPFlow(client, server)
        f.messages = [tcp.TCPMessage(from_guest != s.accepted, data, _stamp(start_time, i))
                      for from_guest, data, i in s.messages]
    else:
        f = udp.UDPFlow(client, server)
        f.messages = [udp.UDPMessage(from_guest, data, _stamp(start_time, i)) for from_guest, data, i in s.messages]
    end = _stamp(start_time, s.messages[-1][2]) if s.messages else t0
    client.timestamp_end = server.timestamp_end = end
    if s.error is not None:
        f.error = flow.Error(s.error, end)
    f.metadata["rr"] = {"socket": label, "guest": "server" if s.accepted else "client"}
    return f


_NXDOMAIN, _SERVFAIL = 3, 2
_A, _AAAA, _IN = 1, 28, 1


def _dns_flow(label: str, lookup: _Lookup, start_time: float) -> Any:
    from mitmproxy import connection, dns, flow

    t0 = _stamp(start_time, lookup.first)
    client = connection.Client(peername=_NO_ADDRESS, sockname=_NO_ADDRESS, timestamp_start=t0,
                               transport_protocol="udp")
    server = connection.Server(address=("system resolver", 53), transport_protocol="udp")
    f = dns.DNSFlow(client, server)
    questions = [dns.Question(lookup.name, _A, _IN), dns.Question(lookup.name, _AAAA, _IN)]
    f.request = dns.DNSMessage(id=0, query=True, op_code=0, authoritative_answer=False, truncation=False,
                               recursion_desired=True, recursion_available=False, reserved=0, response_code=0,
                               questions=questions, answers=[], authorities=[], additionals=[], timestamp=t0)
    answers = []
    for text in lookup.answers:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        answers.append(dns.ResourceRecord(lookup.name, _A if ip.version == 4 else _AAAA, _IN, 0, ip.packed))
    code = 0 if lookup.error is None else _NXDOMAIN if lookup.error == "name-unresolvable" else _SERVFAIL
    f.response = dns.DNSMessage(id=0, query=False, op_code=0, authoritative_answer=False, truncation=False,
                                recursion_desired=True, recursion_available=True, reserved=0, response_code=code,
                                questions=questions, answers=answers, authorities=[], additionals=[], timestamp=t0)
    if lookup.error is not None:
        f.error = flow.Error(lookup.error, t0)
    f.metadata["rr"] = {"lookup": label}
    return f
