"""SIGINT, SIGTERM and --timeout end a guest blocked inside a host call, and the trace keeps
how the run ended so that it replays to the same end.

Each test starts the real CLI (`python -m rr record ...`) as a subprocess, waits until the
guest is provably blocked — the kernel says a thread of rr sleeps opening the FIFO or reading
the silent stdin pipe, the trace already holds the guest's subscribe to a 10-minute timer, the
loopback server has received the guest's request — and only then sends the signal. Every wait
is bounded; a run that does not end is killed and fails its test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import guests

pytestmark = pytest.mark.timeout(180)

END_WAIT_S = 30       # a stopped rr must exit well within this
BLOCKED_WAIT_S = 30   # the guest must reach its blocking call within this
EXPECTED = {"SIGINT": 130, "SIGTERM": 143, "timeout": 124}
# What /proc/<pid>/task/<tid>/wchan says for a thread asleep in the kernel (names vary by kernel).
FIFO_OPEN = {"wait_for_partner", "fifo_open"}
PIPE_READ = {"anon_pipe_read", "pipe_read", "pipe_wait", "pipe_read_wait"}


def _wchans(pid: int) -> set[str]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.add((task / "wchan").read_text().strip())
        except OSError:
            pass  # the thread has just ended
    return found


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + BLOCKED_WAIT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            pytest.fail(f"rr ended (status {proc.returncode}) before {what}")
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"not {what} within {BLOCKED_WAIT_S} s")


class SilentServer:
    """A loopback HTTP server that accepts, reads the request, sends a response head and the
    first bytes of a longer body (when `head` is set), then never sends anything more."""

    def __init__(self, head: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.head = head
        self.got_request = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return  # closed before anyone connected
        self._conns.append(conn)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        if self.head:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes")
        self.got_request.set()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self.sock.close()


@dataclass
class Blocked:
    """How to start a guest that blocks in one host call, and how to know it is there."""

    component: Path
    guest_args: list[str]
    flags: list[str] = field(default_factory=list)
    stdin: int | None = None
    is_blocked: Callable[[subprocess.Popen[bytes], Path], bool] = lambda proc, trace: True
    what: str = ""


def _trace_has(trace: Path, call: str) -> bool:
    from rr.trace import TraceError, open_trace
    try:
        with open_trace(trace) as reader:
            return any(e.call == call for e in reader)
    except (TraceError, OSError):
        return False  # not even the header yet


@pytest.fixture(params=["fifo", "stdin", "poll", "http-head", "http-body"])
def blocked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Blocked]:
    kind = request.param
    if kind == "fifo":
        data = tmp_path / "data"
        data.mkdir()
        os.mkfifo(data / "in.txt")  # fs_ops opens it first: open(2) waits for a writer forever
        yield Blocked(guests.c_guest("fs_ops"), ["/data"], ["--dir", f"{data}::/data"],
                      is_blocked=lambda proc, _t: bool(_wchans(proc.pid) & FIFO_OPEN),
                      what="asleep opening the FIFO")
    elif kind == "stdin":
        read_end, write_end = os.pipe()  # nobody ever writes; the write end stays open
        yield Blocked(guests.c_guest("echo_stdin"), [], stdin=read_end,
                      is_blocked=lambda proc, _t: bool(_wchans(proc.pid) & PIPE_READ),
                      what="reading the silent stdin")
        os.close(read_end)
        os.close(write_end)
    elif kind == "poll":
        yield Blocked(guests.c_guest("clock"), ["600000"],
                      is_blocked=lambda _p, trace: _trace_has(trace, "wasi:clocks/monotonic-clock.subscribe-duration"),
                      what="waiting on a 10-minute timer")
    else:
        server = SilentServer(head=kind == "http-body")
        yield Blocked(guests.c_guest("http_get"), [f"http://127.0.0.1:{server.port}/never"],
                      ["--allow-http", f"127.0.0.1:{server.port}"],
                      is_blocked=lambda _p, _t: server.got_request.is_set(),
                      what="waiting for the server's answer")
        server.close()


def _rr(*args: str) -> list[str]:
    return [sys.executable, "-m", "rr", *args]


@dataclass
class Ended:
    status: int
    stdout: bytes
    stderr: str


def _record_and_stop(b: Blocked, tmp_path: Path, how: str, command: str = "record") -> tuple[Ended, Path]:
    trace = tmp_path / "t.cbor"
    out, err = tmp_path / "out", tmp_path / "err"
    flags = [*b.flags, *(["--timeout", "2"] if how == "timeout" else [])]
    args = (["record", "-t", str(trace)] if command == "record" else ["run"]) + flags
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen(_rr(*args, str(b.component), "--", *b.guest_args), stdin=b.stdin or subprocess.DEVNULL,
                                stdout=fout, stderr=ferr, cwd=guests.REPO, env=guests._clean_env(None))
        try:
            if how != "timeout":
                _wait_until(lambda: b.is_blocked(proc, trace), proc, b.what)
                proc.send_signal(getattr(signal, how))
            status = proc.wait(END_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"rr {command} did not end within {END_WAIT_S} s after {how} ({b.what})")
    return Ended(status, out.read_bytes(), err.read_text(errors="replace")), trace


def _one_rr_line(ended: Ended) -> str:
    assert "Fatal Python error" not in ended.stderr and "Traceback" not in ended.stderr, ended.stderr
    lines = [ln for ln in ended.stderr.splitlines() if ln.startswith("rr: ")]
    assert len(lines) == 1, ended.stderr
    return lines[0]


def _replay(component: Path, trace: Path) -> Ended:
    done = subprocess.run(_rr("replay", str(component), str(trace)), capture_output=True, timeout=60,
                          cwd=guests.REPO, env=guests._clean_env(None), stdin=subprocess.DEVNULL)
    return Ended(done.returncode, done.stdout, done.stderr.decode(errors="replace"))


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "timeout"])
def test_a_blocked_recording_stops_and_replays_to_the_same_end(blocked: Blocked, how: str, tmp_path: Path) -> None:
    ended, trace = _record_and_stop(blocked, tmp_path, how)
    assert ended.status == EXPECTED[how], ended.stderr
    line = _one_rr_line(ended)
    assert {"SIGINT": "interrupted", "SIGTERM": "terminated", "timeout": "--timeout"}[how] in line
    assert f"to {trace}" in line  # what was kept is said on the same line

    from rr.trace import read_trace
    recorded = read_trace(trace)
    assert recorded.complete, recorded.problem
    assert recorded.outcome is not None
    assert recorded.outcome.kind == {"SIGINT": "interrupted", "SIGTERM": "terminated", "timeout": "timeout"}[how]
    guest_events = [e for e in recorded.events if e.call != "wasi:http/outgoing-handler.handle"]
    assert recorded.outcome.event == len(guest_events)
    if how == "timeout":
        assert recorded.header.limits == {"timeout": 2.0}

    replayed = _replay(blocked.component, trace)
    assert replayed.status == EXPECTED[how], replayed.stderr
    assert replayed.stdout == ended.stdout
    assert "same point" in _one_rr_line(replayed)


# `rr run` writes no trace, so the timer wait has no proof of being reached: the other three.
@pytest.mark.parametrize("blocked", ["fifo", "stdin", "http-body"], indirect=True)
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_rr_run_blocked_in_a_host_call_ends_on_a_signal(blocked: Blocked, how: str, tmp_path: Path) -> None:
    ended, _ = _record_and_stop(blocked, tmp_path, how, command="run")
    assert ended.status == EXPECTED[how], ended.stderr
    assert {"SIGINT": "interrupted", "SIGTERM": "terminated"}[how] in _one_rr_line(ended)


def test_ticker_stopped_by_sigterm_replays_the_same_number_of_lines(wat_dir: Path, tmp_path: Path) -> None:
    """Where the stop struck is visible in the output: replay prints exactly as many lines."""
    ticker = wat_dir / "ticker.wasm"
    b = Blocked(ticker, [], is_blocked=lambda _p, _t: (tmp_path / "out").read_bytes().count(b"\n") >= 5,
                what="printing its fifth line")
    ended, trace = _record_and_stop(b, tmp_path, "SIGTERM")
    assert ended.status == 143
    lines = ended.stdout.decode().splitlines()
    assert len(lines) >= 5 and lines == [f"tick {i}" for i in range(1, len(lines) + 1)]
    replayed = _replay(ticker, trace)
    assert (replayed.status, replayed.stdout) == (143, ended.stdout), replayed.stderr


def test_a_spinning_guest_stopped_by_sigint_replays_to_the_same_end(wat_dir: Path, tmp_path: Path) -> None:
    """No host call after its output: the stop reaches wasm code (epoch), and so does the replay's."""
    spin = wat_dir / "spin.wasm"
    b = Blocked(spin, [], is_blocked=lambda _p, _t: (tmp_path / "out").read_bytes() == b"spinning\n",
                what="spinning")
    ended, trace = _record_and_stop(b, tmp_path, "SIGINT")
    assert (ended.status, ended.stdout) == (130, b"spinning\n"), ended.stderr
    replayed = _replay(spin, trace)
    assert (replayed.status, replayed.stdout) == (130, b"spinning\n"), replayed.stderr


def test_a_second_signal_does_not_cut_the_first_stop_short(tmp_path: Path) -> None:
    """SIGTERM and at once SIGINT: the one Python handles first decides (it runs pending handlers
    in signal-number order), the other cannot break the stop: one line, a whole trace, the same
    end on replay."""
    read_end, write_end = os.pipe()
    trace = tmp_path / "t.cbor"
    try:
        with open(tmp_path / "err", "wb") as ferr:
            proc = subprocess.Popen(_rr("record", "-t", str(trace), str(guests.c_guest("echo_stdin"))),
                                    stdin=read_end, stdout=subprocess.DEVNULL, stderr=ferr,
                                    cwd=guests.REPO, env=guests._clean_env(None))
            _wait_until(lambda: bool(_wchans(proc.pid) & PIPE_READ), proc, "reading the silent stdin")
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGINT)
            status = proc.wait(END_WAIT_S)
    finally:
        os.close(read_end)
        os.close(write_end)
    ended = Ended(status, b"", (tmp_path / "err").read_text())
    kind = {130: "interrupted", 143: "terminated"}[ended.status]
    assert kind in _one_rr_line(ended)
    from rr.trace import read_trace
    recorded = read_trace(trace)
    assert recorded.complete and recorded.outcome is not None and recorded.outcome.kind == kind
    replayed = _replay(guests.c_guest("echo_stdin"), trace)
    assert replayed.status == ended.status, replayed.stderr
