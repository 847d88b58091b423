"""`rr serve -t` stopped by SIGTERM or SIGINT at many points of its life: each time the trace
ends with its end record and holds a block for every request a client got a whole answer to,
and nothing else; a second signal stops the wait for requests in flight (README "Servers").

Each case is a real `rr serve` process of the C handler, real HTTP clients, a real upstream
for the handler's own request, and real signals; every wait is for something observable (the
trace file, a line on rr's stderr, the upstream receiving a request, a response's head)."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import guests

C_APP = guests.c_guest("serve_c")
WAIT_S = 60     # bound of every wait for an event (a hang fails the test instead of the suite)
STOPPED_S = 45  # a second signal must end rr serve well before its 60 s wait for requests in flight


class Gate:
    """An upstream whose answers wait until released: a handler fetching from it stays in flight."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                gate.arrived.set()
                gate.release.wait(WAIT_S)
                body = b"released"
                with contextlib.suppress(OSError):   # rr serve may be gone (a second signal)
                    self.send_response(200)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Serving:
    """`rr serve -t` as a subprocess; its stderr lines arrive in a queue as it writes them."""

    def __init__(self, trace: Path) -> None:
        self.trace = trace
        self.port = guests.free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rr", "serve", "--addr", f"127.0.0.1:{self.port}", "--allow-http",
             "127.0.0.1", "-t", str(trace), str(C_APP)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=guests._clean_env(None), cwd=guests.REPO)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        self.ended = False   # stderr read to its end
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def wait_line(self, part: str) -> None:
        while True:   # bounded by WAIT_S per line and by rr's stderr ending
            line = self.lines.get(timeout=WAIT_S)
            assert line is not None, f"rr serve ended before printing {part!r}: {''.join(self.err)}"
            self.err.append(line)
            if part in line:
                return

    def wait_trace(self) -> None:
        for _ in range(WAIT_S * 200):   # bounded: the trace appears once its header is written
            if self.trace.exists():
                return
            assert self.proc.poll() is None, f"rr serve exited {self.proc.returncode}"
            time.sleep(0.005)
        raise AssertionError("the trace never appeared")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, within: float = WAIT_S) -> tuple[int, str]:
        """rr's exit status and everything it wrote on stderr (again when called again)."""
        status = self.proc.wait(within)
        while not self.ended and (line := self.lines.get(timeout=WAIT_S)) is not None:
            self.err.append(line)
        self.ended = True
        return status, "".join(self.err)


def get(serving: Serving, path: str) -> tuple[int, bytes]:
    conn = serving.connect()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def recorded(trace: Path) -> tuple[bool, list[tuple[str, int, bytes]]]:
    """(the trace has its end, each block's path, status and body), read as `rr replay` does."""
    from rr.trace import open_trace
    from rr.trace.served import request_blocks

    with open_trace(trace) as reader:
        events = list(reader)
        ended = reader.outcome is not None
    blocks = [(b.request["path"], b.response["status"], bytes(b.response["body"]))
              for b in request_blocks(events) if b.response is not None]
    return ended, blocks


# Where in rr serve's life the signal lands, SIGTERM and SIGINT taking turns (one handler).
POINTS = ["trace-created", "listening", "answered-1", "answered-3", "in-flight", "streaming", "second-signal"]
CASES = [(point, [signal.SIGTERM, signal.SIGINT][i % 2]) for i, point in enumerate(POINTS)]


@pytest.mark.parametrize("point,sig", CASES, ids=[f"{p}-{s.name}" for p, s in CASES])
def test_a_signal_leaves_a_whole_trace(point, sig, tmp_path):
    gate = Gate()
    serving = Serving(tmp_path / "t.cbor")
    answered: list[tuple[str, int, bytes]] = []   # what clients got whole
    late: list[BaseException | tuple[int, bytes]] = []
    try:
        if point == "trace-created":
            serving.wait_trace()            # the server is starting: the proxy, the listener
            serving.signal(sig)
        else:
            serving.wait_line("serving serve_c.wasm on ")
        if point == "listening":
            serving.signal(sig)
        elif point.startswith("answered-"):
            for k in range(int(point.rpartition("-")[2])):
                path = "/random" if k % 2 == 0 else "/"
                answered.append((path, *get(serving, path)))
            serving.signal(sig)
        elif point in ("in-flight", "second-signal"):
            path = f"/fetch?url={gate.url}"
            client = threading.Thread(target=lambda: late.append(_try(serving, path)), daemon=True)
            client.start()
            assert gate.arrived.wait(WAIT_S), "the handler's request never reached the upstream"
            serving.signal(sig)
            serving.wait_line("stopping: answering the 1 request(s) in flight first")
            if point == "second-signal":
                serving.signal(sig)
                status, err = serving.finish(STOPPED_S)
                gate.release.set()
                client.join(WAIT_S)
                # Not in the trace, so its client never got the whole answer.
                assert late and not (isinstance(late[0], tuple) and late[0][0] == 200), late
                assert "stopped with 1 request(s) still in flight (a second signal): 1 not in the trace" in err, err
            else:
                gate.release.set()
                client.join(WAIT_S)
                assert late and late[0] == (200, b"upstream 200 bytes 8\nreleased"), late
                answered.append((path, 200, late[0][1]))
        elif point == "streaming":
            conn = serving.connect()
            conn.request("GET", "/big?mib=2")
            response = conn.getresponse()   # its head: the handler is writing the body
            serving.signal(sig)
            body = response.read()
            conn.close()
            assert response.status == 200 and len(body) == 2 << 20
            answered.append(("/big?mib=2", 200, body))
        status, err = serving.finish()
    finally:
        if serving.proc.poll() is None:
            serving.proc.kill()
        gate.close()
    assert status == 0, err
    assert f"served {len(answered)} requests; recorded {len(answered)} to " in err, err
    ended, blocks = recorded(serving.trace)
    assert ended, f"{point}: the trace has no end record"
    assert blocks == answered, point


def _try(serving: Serving, path: str) -> BaseException | tuple[int, bytes]:
    try:
        return get(serving, path)
    except (OSError, http.client.HTTPException) as e:
        return e


def test_a_trace_stopped_by_a_signal_replays(tmp_path):
    """What a signalled recording holds replays offline, request by request, with exit 0."""
    serving = Serving(tmp_path / "t.cbor")
    try:
        serving.wait_line("serving serve_c.wasm on ")
        answers = [get(serving, "/random"), get(serving, "/big?mib=1"), get(serving, "/trap")]
        serving.signal(signal.SIGTERM)
        status, err = serving.finish()
    finally:
        if serving.proc.poll() is None:
            serving.proc.kill()
    assert status == 0 and [a[0] for a in answers] == [200, 200, 500], err
    done = subprocess.run([sys.executable, "-m", "rr", "replay", str(C_APP), str(serving.trace)],
                          capture_output=True, text=True, timeout=120, cwd=guests.REPO,
                          env=guests._clean_env(None))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": match\n") == 3, done.stderr
    assert "incomplete" not in done.stderr
    # from a pipe too (read once: the handler component says it is a server trace)
    piped = subprocess.run([sys.executable, "-m", "rr", "replay", str(C_APP), "/dev/stdin"],
                           input=serving.trace.read_bytes(), capture_output=True, timeout=120,
                           cwd=guests.REPO, env=guests._clean_env(None))
    assert piped.returncode == 0 and piped.stderr.decode() == done.stderr, piped.stderr
