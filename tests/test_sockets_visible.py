"""A recording's socket traffic is visible where its HTTP is: live in `--inspect` (mitmweb) and
`--dump` (the guest's TCP connections go through the embedded mitmproxy's SOCKS5 listeners), in
`rr flows` files (TCP, UDP and lookups as mitmproxy TCPFlow / UDPFlow / DNSFlow) and in `rr inspect`.

Real guests (tests/guests/README_SOCKETS.md), real loopback echo servers, a real mitmproxy.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import guests
from mitmweb_api import Lines, WebUI, wait_for_web_url, wait_until_recorded
from sockservers import TcpEchoServer, UdpEchoServer, closed_port

pytestmark = pytest.mark.timeout(600)

RR = [sys.executable, "-m", "rr"]
GRANT = ("-S", "inherit-network,allow-ip-name-lookup")


class PeerNotingServer(TcpEchoServer):
    """An echo server that also notes where each connection came from."""

    def __init__(self, host: str = "127.0.0.1"):
        self.peers: list[tuple[str, int]] = []
        super().__init__(host)

    def _handle(self, conn: socket.socket) -> None:
        self.peers.append(tuple(conn.getpeername()[:2]))  # type: ignore[arg-type]
        super()._handle(conn)


def guest(name: str) -> str:
    path = guests.c_guest(name)
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return str(path)


def rr(*args: str) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, timeout=120, cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def test_inspect_shows_the_tcp_connection_the_proxy_made(tmp_path: Path) -> None:
    with PeerNotingServer("::1") as server:
        proc = subprocess.Popen([*RR, "record", *GRANT, "--inspect-wait", "-t", str(tmp_path / "t.cbor"),
                                 guest("tcp_client"), "--", "::1", str(server.port), "line", "seen live"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=guests.REPO,
                                env=guests._clean_env(None))
        assert proc.stderr is not None and proc.stdout is not None
        lines = Lines(proc.stderr)
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            ui = WebUI(wait_for_web_url(lines))
            wait_until_recorded(lines)
            flows = ui.flows()
            proc.send_signal(signal.SIGINT)   # --inspect-wait keeps the web UI up until Ctrl-C
            status = proc.wait(timeout=90)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
    assert status == 0, lines.text()
    assert b"reply seen live\n" in out[0]
    (flow,) = [f for f in flows if f["type"] == "tcp"]
    assert flow["server_conn"]["address"][:2] == ["::1", server.port]
    assert flow["messages_meta"]["count"] == 2 and flow["messages_meta"]["contentLength"] == 2 * len(b"seen live\n")
    # The server's one connection is the proxy's upstream one, not one the guest opened itself.
    assert server.connections == 1
    assert server.peers == [tuple(flow["server_conn"]["sockname"][:2])]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[guests.Ran, Path, int]]:
    """tcp_client, udp_client and resolve recorded with --dump; each trace exported with `rr flows`."""
    out = tmp_path_factory.mktemp("visible")
    runs = {}
    with TcpEchoServer("127.0.0.1") as tcp, UdpEchoServer("::1") as udp:
        for name, component, args, port in [
                ("tcp", "tcp_client", ["127.0.0.1", str(tcp.port), "line", "hello proxy"], tcp.port),
                ("refused", "tcp_client", ["127.0.0.1", str(closed_port("127.0.0.1"))], 0),
                ("udp", "udp_client", ["::1", str(udp.port), "datagram"], udp.port),
                ("resolve", "resolve", ["localhost", "::1"], 0)]:
            trace = out / f"{name}.cbor"
            ran = rr("record", *GRANT, "--dump", "-t", str(trace), guest(component), "--", *args)
            assert ran.status == (1 if name == "refused" else 0), ran.err
            exported = rr("flows", str(trace), "-o", str(out / f"{name}.mitm"))
            assert exported.status == 0, exported.err
            runs[name] = (ran, out / f"{name}.mitm", port)
        assert tcp.connections == 1 and tcp.received == b"hello proxy\n"
        assert udp.datagrams == 1
    return runs


def read_flows(path: Path) -> list:  # type: ignore[type-arg]
    from mitmproxy import io
    with path.open("rb") as f:
        return list(io.FlowReader(f).stream())


def test_dump_prints_the_relayed_tcp_connection(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    ran, _, port = recorded["tcp"]
    assert f"rr-proxy tcp 127.0.0.1:{port} -> sent 12B received 12B\n" in ran.err


def test_a_refused_connection_through_the_proxy_is_refused(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    ran, path, _ = recorded["refused"]
    assert ran.out == "connect error connection-refused\n"
    (flow,) = read_flows(path)
    assert type(flow).__name__ == "TCPFlow" and flow.error.msg == "connection-refused" and not flow.messages


def test_flows_file_holds_the_tcp_exchange_bytes(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    _, path, port = recorded["tcp"]
    (flow,) = read_flows(path)
    assert type(flow).__name__ == "TCPFlow"
    assert flow.server_conn.address == ("127.0.0.1", port)
    assert [(m.from_client, m.content) for m in flow.messages] == [(True, b"hello proxy\n"), (False, b"hello proxy\n")]
    assert flow.error is None


def test_flows_file_holds_the_udp_datagrams(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    _, path, port = recorded["udp"]
    (flow,) = read_flows(path)
    assert type(flow).__name__ == "UDPFlow"
    assert flow.server_conn.address == ("::1", port)
    assert [(m.from_client, m.content) for m in flow.messages] == [(True, b"datagram"), (False, b"datagram")]


def test_flows_file_holds_the_lookups(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    import ipaddress
    _, path, _ = recorded["resolve"]
    flows = read_flows(path)
    assert [type(f).__name__ for f in flows] == ["DNSFlow", "DNSFlow"]
    asked = [f.request.questions[0].name for f in flows]
    answered = [[str(ipaddress.ip_address(a.data)) for a in f.response.answers] for f in flows]
    assert asked == ["localhost", "::1"]
    assert answered[1] == ["::1"]
    assert set(answered[0]) & {"127.0.0.1", "::1"}   # localhost, as /etc/hosts has it


def test_rr_inspect_says_what_went_over_the_socket(recorded: dict[str, tuple[guests.Ran, Path, int]]) -> None:
    _, path, port = recorded["tcp"]
    shown = rr("inspect", str(path.with_suffix(".cbor")))
    assert shown.status == 0, shown.err
    assert f"tcp-1 connects to 127.0.0.1:{port}\n" in shown.out
    assert 'tcp-1 > 12 bytes "hello proxy\\n"\n' in shown.out
    assert 'tcp-1 < 12 bytes "hello proxy\\n"\n' in shown.out
    udp_shown = rr("inspect", str(recorded["udp"][1].with_suffix(".cbor"))).out
    assert f'udp-1 < 8 bytes "datagram" from [::1]:{recorded["udp"][2]}\n' in udp_shown


def test_the_relay_serves_only_connections_rr_announced() -> None:
    """In process: a stranger's SOCKS5 connection to the recording proxy is cut off before any
    upstream connection; rr's own (connect.py) gets through."""
    from rr.host.sockets import connect
    from rr.proxy import EmbeddedProxy

    with TcpEchoServer() as server:
        proxy = EmbeddedProxy("record", on_flow=lambda record: None, relay=True).start()
        try:
            with socket.create_connection(proxy.socks_listeners[socket.AF_INET], timeout=10) as stranger:
                stranger.sendall(b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1")
                                 + server.port.to_bytes(2, "big"))
                got = b""
                try:
                    while chunk := stranger.recv(100):
                        got += chunk
                except ConnectionResetError:
                    pass     # cut off with its bytes unread: a reset rather than a close
            with connect.routed_through(proxy):
                ours = connect.connect(socket.AF_INET, ("127.0.0.1", server.port), None)
                with pytest.raises(ConnectionRefusedError):
                    connect.connect(socket.AF_INET, ("127.0.0.1", closed_port()), None)
            with ours:
                ours.sendall(b"ours\n")
                assert ours.recv(100) == b"ours\n"
                local = ours.getsockname()
        finally:
            proxy.stop()
    assert got == b""
    assert proxy.relay_addon.refused == 1
    assert server.connections == 1
    assert local[0] == "127.0.0.1" and local[1] != proxy.socks_listeners[socket.AF_INET][1]


class _Ends:
    """An addon noting the TCP flows the proxy ended (on its loop thread)."""

    def __init__(self) -> None:
        self.flows: list = []  # type: ignore[type-arg]
        self.ended = threading.Event()

    def tcp_end(self, flow) -> None:  # type: ignore[no-untyped-def]
        self.flows.append(flow)
        self.ended.set()


async def _on_loop(function, *args):  # type: ignore[no-untyped-def]
    return function(*args)


def _exchange_through_the_relay(payload: bytes) -> tuple[socket.socket, list, list, int]:  # type: ignore[type-arg]
    """In process: one connection through the recording proxy's SOCKS5 relay, `payload` sent and
    its echo read back, closed; (the socket rr got, the ended flows, the echo server's peers,
    its connection count)."""
    from rr.host.sockets import connect
    from rr.proxy import EmbeddedProxy

    ends = _Ends()
    with PeerNotingServer() as server:
        proxy = EmbeddedProxy("record", on_flow=lambda record: None, relay=True).start()
        try:
            loop = proxy._master.event_loop   # white-box: an addon of the test's, added on the loop
            added = asyncio.run_coroutine_threadsafe(_on_loop(proxy._master.addons.add, ends), loop)
            added.result(timeout=30)
            with connect.routed_through(proxy):
                ours = connect.connect(socket.AF_INET, ("127.0.0.1", server.port), None)
            with ours:
                ours.sendall(payload)
                got = b""
                while len(got) < len(payload) and (chunk := ours.recv(1 << 16)):
                    got += chunk
                assert got == payload
                peer = ours.getpeername()
            assert ends.ended.wait(30), "the proxy did not end the flow"
        finally:
            proxy.stop()
        return peer, ends.flows, server.peers, server.connections


def test_the_proxy_hands_its_upstream_socket_over_and_keeps_a_bounded_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes go to the server on mitmproxy's own upstream socket (not through its event loop);
    the flow gets them from rr, its messages holding the first KEPT_BYTES each way, its totals
    all of them."""
    from proxy_addon import relay

    monkeypatch.setattr(relay, "KEPT_BYTES", 1000)
    payload = bytes(range(256)) * 20   # 5120 bytes each way
    peer, flows, server_peers, connections = _exchange_through_the_relay(payload)
    (flow,) = flows
    assert tuple(peer[:2]) == tuple(flow.server_conn.address[:2])   # connected to the server itself
    assert connections == 1 and server_peers == [tuple(flow.server_conn.sockname[:2])]
    sent = b"".join(m.content for m in flow.messages if m.from_client)
    received = b"".join(m.content for m in flow.messages if not m.from_client)
    assert sent == received == payload[:1000]
    assert flow.metadata[relay.BYTES_KEY] == [len(payload), len(payload)]
    assert f"{len(payload)} bytes sent, {len(payload)} received" in flow.comment


def test_without_a_handover_mitmproxy_relays_the_bytes_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where mitmproxy's internals are not what relay.py expects it hands nothing over: the same
    exchange then crosses the proxy, every byte in the flow."""
    from proxy_addon import relay

    monkeypatch.setattr(relay.RawRelay, "_hand_over", lambda self, data, upstream: None)
    payload = b"through the proxy\n" * 100
    peer, flows, server_peers, connections = _exchange_through_the_relay(payload)
    (flow,) = flows
    assert tuple(peer[:2]) != tuple(flow.server_conn.address[:2])   # connected to the SOCKS5 listener
    assert connections == 1 and server_peers == [tuple(flow.server_conn.sockname[:2])]
    assert b"".join(m.content for m in flow.messages if m.from_client) == payload
    assert b"".join(m.content for m in flow.messages if not m.from_client) == payload
    assert relay.BYTES_KEY not in flow.metadata


def test_a_server_that_speaks_first_is_heard_whole_through_the_handover() -> None:
    """Bytes the server sends at once may reach mitmproxy's reader before the socket is handed
    over: the client still gets every one of them first, in order."""
    from rr.host.sockets import connect
    from rr.proxy import EmbeddedProxy

    greeting = bytes(range(256)) * 800   # 200 KiB on accept, then the server closes
    with TcpEchoServer(send=greeting) as server:
        proxy = EmbeddedProxy("record", on_flow=lambda record: None, relay=True).start()
        try:
            for _ in range(5):
                with connect.routed_through(proxy):
                    ours = connect.connect(socket.AF_INET, ("127.0.0.1", server.port), 10)
                with ours:
                    ours.settimeout(30)
                    got = b""
                    while chunk := ours.recv(1 << 16):
                        got += chunk
                assert got == greeting
        finally:
            proxy.stop()
    assert server.connections == 5
