"""wasi:sockets recorded against real loopback servers, replayed with no network at all.

The guests are WAT (tests/guests/wat/tcp_client.wat, tcp_server.wat, udp_client.wat,
lookup_name.wat): each makes wasmtime's exact p2 call sequence, so what they print can be
compared with the wasmtime CLI's own run. Servers are tests/sockservers.py's, which count
the connections and datagrams that reach them: a replay adds none.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import guests
from sockservers import TcpEchoServer, UdpEchoServer, closed_port, tcp_exchange

RR = [sys.executable, "-m", "rr"]
LOOPBACK = {"4": "127.0.0.1", "6": "::1"}


def rr(*args: str, timeout: float = 60) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, timeout=timeout, cwd=guests.REPO,
                          env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def guest(wat_dir: Path, name: str) -> str:
    path = wat_dir / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{name}.wat does not compile: {(wat_dir / f'{name}.error').read_text()}")
    return str(path)


def replay_twice(component: str, trace: Path, recorded: guests.Ran) -> None:
    for _ in range(2):
        replayed = rr("replay", component, str(trace))
        assert (replayed.status, replayed.stdout) == (recorded.status, recorded.stdout), replayed.err
        assert replayed.err == "", replayed.err


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = ["4", pytest.param("6", marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback"))]


# ---------------------------------------------------------------- TCP client


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_client_replays_with_no_connection(family: str, wat_dir: Path, tmp_path: Path) -> None:
    client = guest(wat_dir, "tcp_client")
    trace = tmp_path / "t.cbor"
    with TcpEchoServer(LOOPBACK[family]) as server:
        recorded = rr("record", "--allow-net", server.address, client, "-t", str(trace), "--",
                      family, str(server.port), "hello")
        assert (recorded.status, recorded.out) == (0, "connected\ngot hello\n"), recorded.err
        assert server.connections == 1 and server.received == b"hello\n"
        replay_twice(client, trace, recorded)   # the server still listens: nothing reaches it
        assert server.connections == 1
    replay_twice(client, trace, recorded)       # and with no server at all


@pytest.mark.parametrize("family", FAMILIES)
def test_a_server_that_closes_before_a_byte_ends_the_stream_while_recording(
        family: str, wat_dir: Path, tmp_path: Path) -> None:
    """The guest sends nothing and the server closes at once: through the recording's relay
    (mitmproxy decides how to relay only once data arrives) the guest must still read the end
    of the stream, as `rr run`'s direct connection and the wasmtime CLI give it."""
    client, trace = guest(wat_dir, "tcp_client"), tmp_path / "t.cbor"
    with TcpEchoServer(LOOPBACK[family], send=b"") as server:
        args = (family, str(server.port), "-")
        ran = rr("run", "--allow-net", server.address, client, "--", *args)
        theirs = guests.wasmtime_run(client, *args, flags=("-S", "inherit-network"))
        recorded = rr("record", "--allow-net", server.address, client, "-t", str(trace), "--", *args, timeout=30)
    assert (ran.status, ran.out) == (0, "connected\nread 0 bytes\n"), ran.err
    assert (theirs.status, theirs.stdout) == (ran.status, ran.stdout)
    assert (recorded.status, recorded.out) == (ran.status, ran.out), recorded.err
    replay_twice(client, trace, recorded)


def test_refused_connection_is_recorded_and_replayed(wat_dir: Path, tmp_path: Path) -> None:
    client, trace = guest(wat_dir, "tcp_client"), tmp_path / "t.cbor"
    recorded = rr("record", "-S", "inherit-network", client, "-t", str(trace), "--", "4", str(closed_port()), "hi")
    assert (recorded.status, recorded.out) == (0, "finish-connect err 14\n"), recorded.err  # connection-refused
    replay_twice(client, trace, recorded)


def test_a_changed_payload_stops_the_replay_with_both_sides(wat_dir: Path, tmp_path: Path) -> None:
    """The guest sends what the (edited) trace's arguments say: not what the recording sent."""
    client, trace = guest(wat_dir, "tcp_client"), tmp_path / "t.jsonl"
    message = "a line longer than sixteen bytes"
    with TcpEchoServer() as server:
        rr("record", "--allow-net", server.address, client, "-t", str(trace), "--", "4", str(server.port), message)
    lines = trace.read_text().splitlines()
    edited = [line.replace("sixteen", "SIXTEEN") if 'environment.get-arguments"' in line else line for line in lines]
    assert edited != lines
    trace.write_text("\n".join(edited) + "\n")
    replayed = rr("replay", client, str(trace))
    assert replayed.status == 121, replayed.err
    assert "expected wasi:io/streams.write('tcp-1-out', <33 bytes 61206c696e65206c6f6e676572207468...>)" in replayed.err
    assert ("the bytes differ from byte 19 (recorded 33 bytes, the guest's 33):\n"
            "      recorded  b'er than sixteen bytes\\n'\n"
            "      guest     b'er than SIXTEEN bytes\\n'") in replayed.err


def test_a_trace_missing_a_read_is_an_error_not_a_hang(wat_dir: Path, tmp_path: Path) -> None:
    client, trace = guest(wat_dir, "tcp_client"), tmp_path / "t.jsonl"
    with TcpEchoServer() as server:
        rr("record", "--allow-net", server.address, client, "-t", str(trace), "--", "4", str(server.port), "hello")
    lines = [line for line in trace.read_text().splitlines() if '"wasi:io/streams.blocking-read"' not in line]
    trace.write_text("\n".join(lines) + "\n")
    replayed = rr("replay", client, str(trace), timeout=30)
    assert replayed.status == 121, replayed.err
    assert "blocking-read('tcp-1-in', 4096)" in replayed.err and replayed.err.startswith("rr: ")


# ---------------------------------------------------------------- TCP server


def serve_one(cmd: list[str], host: str, line: bytes) -> tuple[guests.Ran, bytes]:
    """Run a tcp_server command, connect to the port it prints, send `line`: (its run, the reply)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=guests.REPO,
                            env=guests._clean_env(None))
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        reply = tcp_exchange(host, int(first.split()[1]), line) if first.startswith(b"listening ") else b""
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return guests.Ran(proc.returncode, first + out, err), reply


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_server_replays_with_no_client(family: str, wat_dir: Path, tmp_path: Path) -> None:
    server, trace = guest(wat_dir, "tcp_server"), tmp_path / "t.cbor"
    recorded, reply = serve_one([*RR, "record", "-S", "inherit-network", server, "-t", str(trace), "--", family, "0"],
                                LOOPBACK[family], b"ping\n")
    assert reply == b"echo: ping\n", recorded.err
    assert recorded.status == 0 and recorded.out.endswith("served ping\n"), recorded.err
    replay_twice(server, trace, recorded)   # no client: the port, the connection and its bytes are recorded


# ---------------------------------------------------------------- beside the wasmtime CLI


@pytest.mark.parametrize("flags,expected", [
    ((), "create err 01\n"),                    # access-denied: no TCP
    (("-S", "tcp"), "finish-connect err 01\n"),  # TCP on, no address granted
    (("-S", "inherit-network,tcp=n"), "create err 01\n"),
    (("-S", "inherit-network"), "connected\ngot same\n"),
])
def test_tcp_grants_answer_as_wasmtime(flags: tuple[str, ...], expected: str, wat_dir: Path,
                                       wasmtime_bin: Path) -> None:
    client = Path(guest(wat_dir, "tcp_client"))
    with TcpEchoServer() as server:
        args = ("4", str(server.port), "same")
        ours = guests.rr_run(client, *args, flags=flags)
        theirs = guests.wasmtime_run(client, *args, flags=flags)
    assert (ours.status, ours.out) == (theirs.status, theirs.out) == (0, expected), (ours.err, theirs.err)


# ---------------------------------------------------------------- UDP


@pytest.mark.parametrize("family", FAMILIES)
def test_udp_client_replays_with_no_datagram(family: str, wat_dir: Path, tmp_path: Path) -> None:
    client, trace = guest(wat_dir, "udp_client"), tmp_path / "t.cbor"
    with UdpEchoServer(LOOPBACK[family]) as server:
        recorded = rr("record", "--allow-net", server.address, client, "-t", str(trace), "--",
                      family, str(server.port), "hello")
        assert (recorded.status, recorded.out) == (0, "sent 1\ngot hello\n"), recorded.err
        assert server.datagrams == 1
        replay_twice(client, trace, recorded)
        assert server.datagrams == 1
    replay_twice(client, trace, recorded)


def test_udp_datagram_to_a_closed_port_times_out_and_replays_at_once(wat_dir: Path, tmp_path: Path) -> None:
    client, trace = guest(wat_dir, "udp_client"), tmp_path / "t.cbor"
    recorded = rr("record", "-S", "inherit-network", client, "-t", str(trace), "--", "4", str(closed_port()), "x")
    assert (recorded.status, recorded.out) == (0, "sent 1\ntimeout\n"), recorded.err
    replay_twice(client, trace, recorded)


@pytest.mark.parametrize("flags,expected", [
    ((), "create err 01\n"),
    (("-S", "udp"), "bind err 01\n"),           # UDP on, no address: even the implicit bind is refused
    (("-S", "inherit-network", "-S", "udp=n"), "create err 01\n"),
    (("-S", "inherit-network"), "sent 1\ngot same\n"),
])
def test_udp_grants_answer_as_wasmtime(flags: tuple[str, ...], expected: str, wat_dir: Path,
                                       wasmtime_bin: Path) -> None:
    client = Path(guest(wat_dir, "udp_client"))
    with UdpEchoServer() as server:
        args = ("4", str(server.port), "same")
        ours = guests.rr_run(client, *args, flags=flags)
        theirs = guests.wasmtime_run(client, *args, flags=flags)
    assert (ours.status, ours.out) == (theirs.status, theirs.out) == (0, expected), (ours.err, theirs.err)


# ---------------------------------------------------------------- name lookup


@pytest.mark.parametrize("name,flags,expected", [
    ("localhost", (), "resolve err 20\n"),      # permanent-resolver-failure without the grant
    ("127.0.0.1", (), "resolve err 20\n"),      # IP literals too
    ("localhost", ("-S", "allow-ip-name-lookup"), "ipv4 127.0.0.1\ndone\n"),
    ("::1", ("-S", "allow-ip-name-lookup"), "ipv6 0:0:0:0:0:0:0:1\ndone\n"),
    ("bad name", ("-S", "allow-ip-name-lookup"), "resolve err 03\n"),          # invalid-argument
    # What wasmtime's URL host parser makes of a name (rr/host/sockets/url_host.py). None of these
    # reaches a DNS server: glibc refuses the query for a 64-byte label or an empty one itself.
    ("a" * 64 + ".test", ("-S", "allow-ip-name-lookup"), "next err 18\n"),   # name-unresolvable
    ("a..b", ("-S", "allow-ip-name-lookup"), "next err 18\n"),
    ("0x7f.1", ("-S", "allow-ip-name-lookup"), "ipv4 127.0.0.1\ndone\n"),   # an IPv4 form: no lookup
    ("1.2.3.256", ("-S", "allow-ip-name-lookup"), "resolve err 03\n"),
    ("a\x01b", ("-S", "allow-ip-name-lookup"), "resolve err 03\n"),         # a C0 control
    ("fe80::1%eth0", ("-S", "allow-ip-name-lookup"), "resolve err 03\n"),     # no zone index
    ("%6c%6FcalHOST", ("-S", "allow-ip-name-lookup"), None),                  # percent-decoded, lowercased
])
def test_lookups_answer_as_wasmtime(name: str, flags: tuple[str, ...], expected: str | None, wat_dir: Path,
                                    wasmtime_bin: Path) -> None:
    lookup = Path(guest(wat_dir, "lookup_name"))
    ours = guests.rr_run(lookup, name, flags=flags)
    theirs = guests.wasmtime_run(lookup, name, flags=flags)
    # wasmtime polls the lookup once inside resolve-addresses (MaybeReady::poll_or_spawn): a
    # resolver that fails within that instant surfaces there, otherwise at resolve-next-address.
    # rr always answers the second way (a lookup that waits is recorded as such).
    same = {"next err 18\n", "resolve err 18\n"} if ours.out == "next err 18\n" else {ours.out}
    assert ours.status == theirs.status and theirs.out in same, (ours.out, theirs.out, ours.err, theirs.err)
    if expected is not None and (name != "localhost" or not flags):   # what localhost resolves to
        assert ours.out == expected                                    # is /etc/hosts' business


def test_a_lookup_replays_without_resolving(wat_dir: Path, tmp_path: Path) -> None:
    lookup, trace = guest(wat_dir, "lookup_name"), tmp_path / "t.cbor"
    recorded = rr("record", "--allow-net", "localhost:5432", lookup, "-t", str(trace), "--", "localhost")
    assert recorded.status == 0 and recorded.out.endswith("done\n") and "ipv4 127.0.0.1\n" in recorded.out
    replay_twice(lookup, trace, recorded)
    listing = rr("inspect", str(trace), "--call", "wasi:sockets/*").out
    assert "resolve-next-address('lookup-1') -> '127.0.0.1'" in listing


def test_a_taken_port_is_address_in_use_as_under_wasmtime(wat_dir: Path, wasmtime_bin: Path) -> None:
    server = Path(guest(wat_dir, "tcp_server"))
    with TcpEchoServer() as taken:
        ours = guests.rr_run(server, "4", str(taken.port), flags=("-S", "inherit-network"))
        theirs = guests.wasmtime_run(server, "4", str(taken.port), flags=("-S", "inherit-network"))
    assert (ours.status, ours.out) == (theirs.status, theirs.out) == (0, "bind err 12\n"), (ours.err, theirs.err)


def test_a_granted_name_lets_a_python_guest_look_it_up_and_connect(tmp_path: Path) -> None:
    """--allow-net NAME:PORT: getaddrinfo(NAME) is answered, and what it answered may be used on
    PORT only (sock_py: componentize-py, Python's socket module)."""
    sock_py, trace = str(guests.c_guest("sock_py")), tmp_path / "t.cbor"
    with TcpEchoServer() as server:
        recorded = rr("record", "--allow-net", f"localhost:{server.port}", sock_py, "-t", str(trace), "--",
                      "tcp", "localhost", str(server.port), "hi")
        other_port = rr("run", "--allow-net", "localhost:1", sock_py, "--", "tcp", "localhost", str(server.port), "x")
        assert server.connections == 1
    assert recorded.status == 0 and "reply hi\n" in recorded.out, recorded.err
    assert (other_port.status, other_port.out) == (1, "connect error EACCES\n"), other_port.err
    replay_twice(sock_py, trace, recorded)
