"""The socket guests under `rr run` and `wasmtime run` (wasmtime 49 CLI), then recorded and replayed.

Real guests from two toolchains (tests/guests/README_SOCKETS.md: C over wasi:sockets, and
componentize-py's CPython `socket` module) talk to real loopback echo servers (tests/sockservers.py).
Side by side, with the grant and without, stdout and exit status must be the same as wasmtime's.
Then `rr record` against the servers, and `rr replay` twice (once while the servers still run and
count every connection and datagram they get: a replay must cause none; once after they stopped):
the same stdout and status as the recording.

Each rr process costs ~0.5 s of CPU, so the runs of each matrix go a few at a time in one module fixture.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import guests
from sockservers import TIMEOUT, TcpEchoServer, UdpEchoServer, closed_port

pytestmark = pytest.mark.timeout(600)

RR = [sys.executable, "-m", "rr"]
PARALLEL = 3
FULL = ("-S", "inherit-network,allow-ip-name-lookup")
TCP_ONLY = ("-S", "tcp")
NONE: tuple[str, ...] = ()
UDP_WAIT_MS = "300"   # how long udp_client waits for an answer that never comes


@dataclass(frozen=True)
class Ports:
    tcp4: int = 0            # echo servers on 127.0.0.1 and ::1
    tcp6: int = 0
    udp4: int = 0
    udp6: int = 0
    silent_udp: int = 0      # receives datagrams, never answers: the guest's wait runs out
    closed_tcp: int = 0      # nothing listens
    closed_udp: int = 0


@dataclass
class Net:
    """What the guests talk to: real servers, counting what reaches them."""

    tcp4: TcpEchoServer
    tcp6: TcpEchoServer
    udp4: UdpEchoServer
    udp6: UdpEchoServer
    ports: Ports

    def counts(self) -> tuple[int, ...]:
        return (self.tcp4.connections, self.tcp6.connections, self.udp4.datagrams, self.udp6.datagrams)

    def stop(self) -> None:
        for server in (self.tcp4, self.tcp6, self.udp4, self.udp6):
            server.stop()


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving() -> Iterator[Net]:
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        silent.bind(("127.0.0.1", 0))
        servers = [stack.enter_context(TcpEchoServer("127.0.0.1")), stack.enter_context(TcpEchoServer("::1")),
                   stack.enter_context(UdpEchoServer("127.0.0.1")), stack.enter_context(UdpEchoServer("::1"))]
        ports = Ports(*(s.port for s in servers), silent.getsockname()[1], closed_port("127.0.0.1"), _closed_udp_port())
        yield Net(*servers, ports)  # type: ignore[arg-type]


def guest(name: str) -> Path:
    path = guests.c_guest(name)
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return path


# name -> (component, args(net), {grant name: text stdout must contain under both runtimes})
def _cases(p: Ports) -> dict[str, tuple[str, list[str], dict[str, str]]]:
    t4, t6, u4, u6 = (str(port) for port in (p.tcp4, p.tcp6, p.udp4, p.udp6))
    denied_c, denied_py = {"none": "socket error access-denied"}, {"none": "socket error EACCES"}
    return {
        "c-tcp4": ("tcp_client", ["127.0.0.1", t4, "line", "hello v4"],
                   {"full": "reply hello v4\nclosed\n", **denied_c, "tcp-only": "connect error access-denied"}),
        "c-tcp6": ("tcp_client", ["::1", t6, "line", "hello v6"], {"full": "connected [::1]:" + t6, **denied_c}),
        "c-tcp-refused": ("tcp_client", ["127.0.0.1", str(p.closed_tcp)],
                          {"full": "connect error connection-refused"}),
        "c-tcp-rounds": ("tcp_client", ["127.0.0.1", t4, "rounds", "50"], {"full": "rounds 50 ok"}),
        "c-tcp-bulk": ("tcp_client", ["::1", t6, "bulk", str(1 << 20)],
                       {"full": "bulk sent 1048576 received 1048576 fnv1a64 "}),
        "c-udp4": ("udp_client", ["127.0.0.1", u4, "ping v4"],
                   {"full": f"reply ping v4 from 127.0.0.1:{u4}", **denied_c}),
        "c-udp6": ("udp_client", ["::1", u6, "ping v6"], {"full": f"reply ping v6 from [::1]:{u6}"}),
        "c-udp-silent": ("udp_client", ["127.0.0.1", str(p.silent_udp), "anyone?", UDP_WAIT_MS],
                         {"full": "sent 7 bytes\ntimeout\n"}),
        "c-udp-refused": ("udp_client", ["127.0.0.1", str(p.closed_udp), "x"],
                          {"full": "receive error connection-refused"}),
        "c-resolve": ("resolve", ["localhost", "127.0.0.1", "::1"],
                      {"full": "127.0.0.1 127.0.0.1\n::1 ::1\n", "none": "localhost error permanent-resolver-failure"}),
        "py-tcp4": ("sock_py", ["tcp", "127.0.0.1", t4, "py v4"],
                    {"full": "reply py v4\nclosed\n", **denied_py, "tcp-only": "connect error EACCES"}),
        "py-tcp6": ("sock_py", ["tcp", "::1", t6, "py v6"], {"full": "reply py v6\n"}),
        "py-tcp-refused": ("sock_py", ["tcp", "127.0.0.1", str(p.closed_tcp)],
                           {"full": "connect error ECONNREFUSED"}),
        "py-udp4": ("sock_py", ["udp", "127.0.0.1", u4, "py ping"],
                    {"full": f"reply py ping from 127.0.0.1:{u4}", **denied_py}),
        "py-udp-silent": ("sock_py", ["udp", "127.0.0.1", str(p.silent_udp), "anyone?", UDP_WAIT_MS],
                          {"full": "timeout\n"}),
        "py-resolve": ("sock_py", ["resolve", "localhost", "::1"],
                       {"full": "::1 ::1\n", "none": "localhost error EAI_FAIL"}),
    }


GRANTS = {"full": FULL, "none": NONE, "tcp-only": TCP_ONLY}


def _case_ids() -> list[tuple[str, str]]:
    """(case, grant) pairs: the table needs ports only for its values."""
    return [(name, grant) for name, (_, _, expect) in _cases(Ports()).items() for grant in expect]


CASE_IDS = _case_ids()


def rr(*args: str, timeout: float = 120) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, timeout=timeout, cwd=guests.REPO,
                          env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def assert_clean(ran: guests.Ran) -> None:
    assert b"Traceback" not in ran.stderr and b"internal error" not in ran.stderr, ran.err


@dataclass
class SideBySide:
    ours: guests.Ran
    reference: guests.Ran
    expect: str       # what both must print (checked on wasmtime's output: the case tests something)


@pytest.fixture(scope="module")
def side_by_side(wasmtime_bin: Path) -> dict[tuple[str, str], SideBySide]:
    with serving() as net:
        cases = _cases(net.ports)
        jobs = {(name, grant): (guest(cases[name][0]), cases[name][1], GRANTS[grant]) for name, grant in CASE_IDS}
        # The first rr run of the 18 MB Python guest compiles it into the cache: once, before the rest.
        first = next(key for key in jobs if key[0].startswith("py-"))
        path, args, flags = jobs[first]
        runs = {first: (guests.rr_run(path, *args, flags=flags, timeout=300), guests.wasmtime_run(path, *args, flags=flags))}
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = {key: (pool.submit(guests.rr_run, path, *args, flags=flags),
                             pool.submit(guests.wasmtime_run, path, *args, flags=flags))
                       for key, (path, args, flags) in jobs.items() if key != first}
            runs.update({key: (a.result(), b.result()) for key, (a, b) in futures.items()})
        return {key: SideBySide(*runs[key], cases[key[0]][2][key[1]]) for key in jobs}


@pytest.mark.parametrize("name,grant", CASE_IDS, ids=[f"{n}-{g}" for n, g in CASE_IDS])
def test_rr_run_prints_what_wasmtime_prints(name: str, grant: str, side_by_side: dict[tuple[str, str], SideBySide]) -> None:
    run = side_by_side[(name, grant)]
    assert_clean(run.ours)
    assert run.expect in run.reference.out, f"wasmtime itself printed {run.reference.out!r} {run.reference.err}"
    assert run.ours.out == run.reference.out, run.ours.err
    assert run.ours.status == run.reference.status, run.ours.err


# ---------------------------------------------------------------- a guest that serves TCP

def _serve_one_client(cmd: list[str], host: str, port: int) -> tuple[guests.Ran, bytes]:
    """Starts the tcp_server guest under `cmd`, connects once it says it listens, sends a line.
    Returns the guest's run and what the client got back."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=guests.REPO,
                            env=guests._clean_env(None))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()   # "listening ...", or b"" if the guest ended first
        answer = b""
        if first.startswith(b"listening "):
            with socket.create_connection((host, port), timeout=TIMEOUT) as c:
                c.sendall(b"hey there\n")
                while chunk := c.recv(65536):
                    answer += chunk
        out, err = proc.communicate(timeout=120)
        return guests.Ran(proc.returncode, first + out, err), answer
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _server_cmd(runtime: str, host: str, port: int, trace: Path | None = None) -> list[str]:
    component = str(guest("tcp_server"))
    if runtime == "wasmtime":
        return [str(guests.wasmtime_cli()), "run", "-S", "inherit-network", component, host, str(port)]
    if runtime == "record":
        return [*RR, "record", "-t", str(trace), "-S", "inherit-network", component, "--", host, str(port)]
    return [*RR, "run", "-S", "inherit-network", component, "--", host, str(port)]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_guest_server_answers_like_under_wasmtime(host: str, wasmtime_bin: Path) -> None:
    port = closed_port(host)
    reference, reference_answer = _serve_one_client(_server_cmd("wasmtime", host, port), host, port)
    ours, answer = _serve_one_client(_server_cmd("rr", host, port), host, port)
    assert reference_answer == b"echo hey there\n" and reference.status == 0, reference.err
    assert_clean(ours)
    assert answer == reference_answer
    assert ours.out == reference.out, ours.err
    assert ours.status == reference.status


# ---------------------------------------------------------------- record, then replay twice

RECORDED = ["c-tcp4", "c-tcp6", "c-tcp-refused", "c-tcp-bulk", "c-udp4", "c-udp6", "c-udp-silent", "c-udp-refused",
            "c-resolve", "py-tcp4", "py-udp4", "py-resolve"]


COUNTS: dict[str, tuple[int, ...]] = {}   # (tcp4, tcp6 connections, udp4, udp6 datagrams) after each phase


@dataclass
class Recorded:
    recording: guests.Ran
    replays: list[guests.Ran]
    expect: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    traces = tmp_path_factory.mktemp("socket-traces")
    replays: dict[str, list[guests.Ran]] = {name: [] for name in [*RECORDED, "server4", "server6"]}

    def replay_all() -> None:
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = {name: pool.submit(rr, "replay", str(guest(component[name])), str(traces / f"{name}.cbor"))
                       for name in replays}
            for name, f in futures.items():
                replays[name].append(f.result())

    with serving() as net:
        cases = _cases(net.ports)
        component = {name: cases[name][0] for name in RECORDED} | {"server4": "tcp_server", "server6": "tcp_server"}
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = {name: pool.submit(rr, "record", "-t", str(traces / f"{name}.cbor"), *FULL,
                                         str(guest(cases[name][0])), "--", *cases[name][1], timeout=300)
                       for name in RECORDED}
            recordings = {name: f.result() for name, f in futures.items()}
        for name, host in (("server4", "127.0.0.1"), ("server6", "::1")):
            port = closed_port(host)
            recordings[name], answer = _serve_one_client(_server_cmd("record", host, port, traces / f"{name}.cbor"),
                                                         host, port)
            assert answer == b"echo hey there\n", recordings[name].err
        COUNTS["recorded"] = net.counts()
        replay_all()       # the servers still run and count: a replay must reach none of them
        COUNTS["replayed"] = net.counts()
        net.stop()
        replay_all()       # and nothing is needed from them
    expect = {name: cases[name][2]["full"] for name in RECORDED} | \
             {"server4": "accepted 127.0.0.1\nreceived hey there\ndone\n", "server6": "accepted ::1\n"}
    return {name: Recorded(recordings[name], replays[name], expect[name]) for name in replays}


@pytest.mark.parametrize("name", [*RECORDED, "server4", "server6"])
def test_replay_twice_prints_what_the_recording_printed(name: str, recorded: dict[str, Recorded]) -> None:
    run = recorded[name]
    assert_clean(run.recording)
    assert run.expect in run.recording.out, run.recording.err
    for replay in run.replays:
        assert_clean(replay)
        assert replay.out == run.recording.out, replay.err
        assert replay.status == run.recording.status, replay.err


def test_replay_opens_no_connection_and_sends_no_datagram(recorded: dict[str, Recorded]) -> None:
    assert all(COUNTS["recorded"]), f"every server was used while recording: {COUNTS['recorded']}"
    assert COUNTS["replayed"] == COUNTS["recorded"]
