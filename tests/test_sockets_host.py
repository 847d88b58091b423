"""rr's wasi:sockets host: the grant (-S options, --allow-net), error codes, addresses, and
what a replay does with a recorded socket value it cannot use.

The runs here are real `rr` subprocesses against real loopback servers (tests/sockservers.py);
the record/replay and side-by-side-with-wasmtime runs are in test_sockets_record_replay.py.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import guests
from rr.host.sockets.grant import BadGrant, SocketGrant, parse
from rr.host.sockets.network import SocketAddress, error_code
from rr.typecheck import BadValue
from sockservers import TcpEchoServer

RR = [sys.executable, "-m", "rr"]
ip = ipaddress.ip_address


def rr(*args: str) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, timeout=60, cwd=guests.REPO,
                          env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def grant(*s_options: str, allow: tuple[str, ...] = ()) -> SocketGrant:
    g = SocketGrant()
    for value in s_options:
        for option in value.split(","):
            g.s_option(option)
    for pattern in allow:
        g.allow(pattern)
    return g


# ---------------------------------------------------------------- the grant


def test_nothing_is_granted_by_default() -> None:
    g = SocketGrant()
    assert not g.protocol("tcp") and not g.protocol("udp") and not g.lookup_allowed("localhost")
    assert not g.address_allowed(ip("127.0.0.1"), 80) and not g.bind_allowed(ip("0.0.0.0"), 0)
    assert not g


@pytest.mark.parametrize("options,tcp,udp,lookup,anywhere", [
    (("inherit-network",), True, True, False, True),
    (("inherit-network,allow-ip-name-lookup",), True, True, True, True),
    (("inherit-network", "allow-ip-name-lookup"), True, True, True, True),
    (("inherit-network,tcp=n",), False, True, False, True),
    (("udp=n", "inherit-network"), True, False, False, True),   # an explicit switch wins in any order
    (("tcp",), True, False, False, False),                      # a protocol, no address
    (("tcp=y,udp=yes",), True, True, False, False),
    (("allow-ip-name-lookup",), False, False, True, False),
])
def test_wasmtime_s_options(options: tuple[str, ...], tcp: bool, udp: bool, lookup: bool, anywhere: bool) -> None:
    g = grant(*options)
    assert (g.protocol("tcp"), g.protocol("udp"), g.lookup_allowed("example.com")) == (tcp, udp, lookup)
    assert g.address_allowed(ip("192.0.2.7"), 9) == anywhere


@pytest.mark.parametrize("option", ["tcp=maybe", "inherit-network=2", "udp=", "http"])
def test_bad_s_options_are_refused(option: str) -> None:
    with pytest.raises(BadGrant):
        SocketGrant().s_option(option)


@pytest.mark.parametrize("pattern,allowed,denied", [
    ("127.0.0.1:5432", [("127.0.0.1", 5432)], [("127.0.0.1", 5433), ("127.0.0.2", 5432)]),
    ("127.0.0.1", [("127.0.0.1", 1), ("127.0.0.1", 65535)], [("::1", 1)]),
    ("127.0.0.1:*", [("127.0.0.1", 7)], [("10.0.0.1", 7)]),
    ("[::1]:8080", [("::1", 8080)], [("::1", 8081), ("127.0.0.1", 8080)]),
    ("[::1]:*", [("::1", 1)], [("::2", 1)]),
    ("::1", [("::1", 443)], []),
    ("10.0.0.0/8:53", [("10.1.2.3", 53)], [("11.0.0.1", 53), ("10.1.2.3", 54)]),
    ("*", [("192.0.2.1", 1), ("::1", 2)], []),
    ("db.example.com:5432", [], [("127.0.0.1", 5432)]),   # a name grants nothing until it is looked up
])
def test_allow_net_patterns(pattern: str, allowed: list[tuple[str, int]], denied: list[tuple[str, int]]) -> None:
    g = grant(allow=(pattern,))
    assert g.protocol("tcp") and g.protocol("udp")          # an address grant switches both on
    for host, port in allowed:
        assert g.address_allowed(ip(host), port), (host, port)
    for host, port in denied:
        assert not g.address_allowed(ip(host), port), (host, port)


def test_a_granted_name_grants_what_its_lookup_answered() -> None:
    g = grant(allow=("DB.example.com:5432", "*.svc.internal:80"))
    assert g.lookup_allowed("db.example.com.") and g.lookup_allowed("a.svc.internal")
    assert not g.lookup_allowed("example.com") and not g.lookup_allowed("svc.internal")
    g.learned("db.example.com", [ip("192.0.2.10")])
    assert g.address_allowed(ip("192.0.2.10"), 5432) and not g.address_allowed(ip("192.0.2.10"), 5433)
    assert not g.address_allowed(ip("192.0.2.11"), 5432)
    g.learned("other.example.com", [ip("192.0.2.11")])   # not a granted name: learns nothing
    assert not g.address_allowed(ip("192.0.2.11"), 5432)


def test_binding_port_zero_needs_some_address_and_a_port_its_own_grant() -> None:
    assert not grant("tcp").bind_allowed(ip("0.0.0.0"), 0)
    g = grant(allow=("127.0.0.1:8080",))
    assert g.bind_allowed(ip("0.0.0.0"), 0) and g.bind_allowed(ip("127.0.0.1"), 8080)
    assert not g.bind_allowed(ip("127.0.0.1"), 8081)


@pytest.mark.parametrize("pattern", ["", "host:port", "127.0.0.1:0", "127.0.0.1:70000", "[::1", "[nope]:1",
                                     "a..b", "*.", "user@host", "::1:x:y:z"])
def test_bad_allow_net_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(BadGrant):
        parse(pattern)


def test_the_header_form_round_trips_and_is_checked() -> None:
    g = grant("inherit-network,tcp=n,allow-ip-name-lookup", allow=("127.0.0.1:5432",))
    back = SocketGrant.from_header(g.to_header())
    assert back.to_header() == g.to_header()
    for bad in ([], {"allow-net": "127.0.0.1"}, {"tcp": "yes"}, {"allow-net": ["host:port"]}):
        with pytest.raises(BadGrant):
            SocketGrant.from_header(bad)


# ---------------------------------------------------------------- error codes and addresses


@pytest.mark.parametrize("code,expected", [
    (errno.ECONNREFUSED, "connection-refused"), (errno.ECONNRESET, "connection-reset"),
    (errno.ETIMEDOUT, "timeout"), (errno.EHOSTUNREACH, "remote-unreachable"),
    (errno.ENETUNREACH, "remote-unreachable"), (errno.EADDRINUSE, "address-in-use"),
    (errno.EADDRNOTAVAIL, "address-not-bindable"), (errno.EAGAIN, "would-block"),
    (errno.EACCES, "access-denied"), (errno.EINVAL, "invalid-argument"), (errno.ENOTCONN, "invalid-state"),
    (errno.EMSGSIZE, "datagram-too-large"), (errno.EMFILE, "new-socket-limit"), (errno.EIO, "unknown"),
])
def test_os_errors_map_to_wasmtimes_codes(code: int, expected: str) -> None:
    assert error_code(OSError(code, "x")) == expected


@pytest.mark.parametrize("wit,text", [
    (("ipv4", (80, (127, 0, 0, 1))), "127.0.0.1:80"),
    (("ipv6", (443, 0, (0, 0, 0, 0, 0, 0, 0, 1), 0)), "[::1]:443"),
    (("ipv6", (1, 7, (0xfe80, 0, 0, 0, 0, 0, 0, 1), 3)), "[fe80::1%3]:1 flow 7"),
])
def test_addresses_cross_between_wit_and_trace_unchanged(wit: tuple, text: str) -> None:  # type: ignore[type-arg]
    address = SocketAddress.from_wit(wit)
    assert address.to_trace() == text
    assert SocketAddress.from_trace(text).to_wit() == wit


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:99999", "[::1]:1 flow 99999999999", "banana:1", 5, None])
def test_a_bad_recorded_address_is_a_bad_value(text: object) -> None:
    with pytest.raises(BadValue):
        SocketAddress.from_trace(text)


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("flags,message", [
    (("--allow-net", "127.0.0.1:port"), "rr: --allow-net '127.0.0.1:port': port 'port' is not a number"),
    (("-S", "tcp=maybe"), "rr: -S 'tcp=maybe': expected y or n"),
    (("-S", "inherit-network,cli"), "rr: -S 'cli': rr takes only -S http, inherit-network"),
])
def test_bad_socket_flags_are_one_line_usage_errors(flags: tuple[str, ...], message: str, wat_dir: Path) -> None:
    ran = rr("run", *flags, str(wat_dir / "tcp_client.wasm"), "--", "4", "1", "x")
    assert ran.status == 125
    assert ran.err.startswith(message) and ran.err.count("\n") == 1, ran.err


def test_allow_net_grants_one_server_and_not_another(wat_dir: Path) -> None:
    client = str(wat_dir / "tcp_client.wasm")
    with TcpEchoServer() as allowed, TcpEchoServer() as other:
        ok = rr("run", "--allow-net", allowed.address, client, "--", "4", str(allowed.port), "a")
        refused = rr("run", "--allow-net", allowed.address, client, "--", "4", str(other.port), "b")
        assert other.connections == 0 and allowed.connections == 1
    assert (ok.status, ok.out) == (0, "connected\ngot a\n"), ok.err
    assert (refused.status, refused.out) == (0, "finish-connect err 01\n"), refused.err  # access-denied


def test_the_trace_shows_the_grant(wat_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t.cbor"
    rr("record", "-S", "tcp=n", "--allow-net", "[::1]:*", str(wat_dir / "tcp_client.wasm"), "-t", str(trace))
    shown = rr("inspect", str(trace), "--no-events").out
    assert ('sockets    {"inherit-network": false, "allow-ip-name-lookup": false, "tcp": false, "udp": null, '
            '"allow-net": ["[::1]:*"]}') in shown


def test_a_recorded_address_that_is_no_address_is_a_corrupt_trace(wat_dir: Path, tmp_path: Path) -> None:
    client, trace = str(wat_dir / "tcp_client.wasm"), tmp_path / "t.jsonl"
    with TcpEchoServer() as server:
        rr("record", "--allow-net", server.address, client, "-t", str(trace), "--", "4", str(server.port), "x")
    lines = trace.read_text().splitlines()
    # The one socket call whose result the guest gets as a value: make it nonsense.
    edited = [line.replace('"result": null', '"result": "banana"') if '"wasi:sockets/tcp.start-connect"' in line
              else line for line in lines]
    trace.write_text("\n".join(edited) + "\n")
    replayed = rr("replay", client, str(trace))
    assert replayed.status == 122, replayed.err
    assert "wasi:sockets/tcp.start-connect recorded result 'banana'" in replayed.err


# ---------------------------------------------------------------- the host functions themselves


def test_options_set_before_connecting_hold_on_the_connected_socket() -> None:
    """connect.py connects a socket of its own: what the guest set before must be set on it."""
    from rr.abi import WasiError
    from rr.host.context import HostContext, Sandbox
    from rr.host.sockets import network, tcp, tcp_create_socket
    from rr.tap import Tap

    host = HostContext(Sandbox(argv=["t"], sockets=grant("inherit-network")), Tap())
    s = tcp_create_socket.create_tcp_socket(host, "ipv4")
    funcs = tcp.tcp_if.funcs
    funcs["[method]tcp-socket.set-keep-alive-enabled"](host, s, True)
    funcs["[method]tcp-socket.set-keep-alive-count"](host, s, 3)
    with TcpEchoServer() as server:
        tcp.start_connect(host, s, network.instance_network(host), ("ipv4", (server.port, (127, 0, 0, 1))))
        host.wait_for(s.readiness)
        try:
            inp, out = tcp.finish_connect(host, s)
        except WasiError as e:  # would-block cannot happen once the pollable is ready
            pytest.fail(f"finish-connect: {e.payload}")
        assert funcs["[method]tcp-socket.keep-alive-enabled"](host, s) is True
        assert funcs["[method]tcp-socket.keep-alive-count"](host, s) == 3
        with pytest.raises(WasiError) as bad:
            funcs["[method]tcp-socket.set-keep-alive-count"](host, s, 0)
        assert bad.value.payload == "invalid-argument"
        s.close()


def test_a_tcp_stream_hands_out_what_arrived_in_order_whatever_the_read_sizes() -> None:
    """TcpInput.take over a real connected pair: chunks bigger than the reads are taken from an
    offset, smaller ones joined up to the read's size, then the end of the stream."""
    from rr.host.context import HostContext, Sandbox
    from rr.host.io import StreamClosed
    from rr.host.sockets.streams import TcpInput
    from rr.tap import Tap

    host = HostContext(Sandbox(argv=["t"], sockets=grant("inherit-network")), Tap())
    ours, theirs = socket.socketpair()
    stream = TcpInput(host, "tcp-1-in", ours)
    sent = bytes(range(256)) * 1024 + b"tail"          # 256 KiB and 4 bytes
    theirs.sendall(sent)
    theirs.close()
    got, sizes = b"", (1000, 70000, 3, 65536)
    for i in range(10_000):                             # bounded: each read takes >= 1 byte once ready
        host.wait_for(stream.available)
        try:
            data = stream.take(sizes[i % len(sizes)])
        except StreamClosed:
            break
        assert 0 < len(data) <= sizes[i % len(sizes)]
        got += data
    assert got == sent
    stream.close()
    ours.close()


def test_a_header_grant_that_is_no_grant_is_a_bad_trace(wat_dir: Path, tmp_path: Path) -> None:
    client, trace = str(wat_dir / "tcp_client.wasm"), tmp_path / "t.jsonl"
    rr("record", "-S", "tcp", client, "-t", str(trace), "--", "4", "1", "x")
    lines = trace.read_text().splitlines()
    assert '"sockets": {' in lines[0]
    lines[0] = lines[0].replace('"allow-net": []', '"allow-net": ["no port:x"]')
    trace.write_text("\n".join(lines) + "\n")
    replayed = rr("replay", client, str(trace))
    assert replayed.status == 122 and replayed.err.startswith(f"rr: {trace}: header field 'sockets': "), replayed.err
