"""Outgoing HTTP is a grant: denied unless `--allow-http PATTERN` (or wasmtime's `-S http`) allows it.

Real `python -m rr` processes against real loopback servers (127.0.0.1 and ::1) that count
the connections they accept: a denied request must reach none of them, reach the guest as
`error-code.HTTP-request-denied`, be recorded, and replay identically without any flag.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import guests
from httpservers import PLAIN_BODY, NoReverseLookup, TestServer
from rr.host.http.grant import BadPattern, HttpGrant, parse, wasmtime_s_option

pytestmark = pytest.mark.timeout(120)

RR = [sys.executable, "-m", "rr"]
V6_BODY = b"hello over IPv6\n"


def rr(*args: str) -> guests.Ran:
    done = subprocess.run([*RR, *args], capture_output=True, timeout=90, cwd=guests.REPO,
                          env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def guest(name: str) -> str:
    path = guests.c_guest(name)
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return str(path)


# ---------------------------------------------------------------- patterns

@pytest.mark.parametrize("pattern,host,port,allowed", [
    ("*", "example.com", 443, True),
    ("*", "::1", 1, True),
    ("example.com", "example.com", 8080, True),
    ("example.com", "EXAMPLE.com.", 80, True),
    ("example.com", "www.example.com", 80, False),
    ("example.com:8080", "example.com", 8080, True),
    ("example.com:8080", "example.com", 80, False),
    ("*.example.com", "api.example.com", 443, True),
    ("*.example.com", "a.b.example.com", 443, True),
    ("*.example.com", "example.com", 443, False),
    ("*.example.com", "badexample.com", 443, False),
    ("*.example.com:443", "api.example.com", 80, False),
    ("127.0.0.1", "127.0.0.1", 5000, True),
    ("127.0.0.1", "127.0.0.2", 5000, False),
    ("127.0.0.1", "localhost", 5000, False),      # names are never resolved
    ("localhost", "127.0.0.1", 5000, False),
    ("[::1]", "::1", 80, True),
    ("[::1]", "0:0::1", 80, True),                # addresses compare as addresses
    ("::1", "::1", 80, True),
    ("[::1]:8080", "::1", 8080, True),
    ("[::1]:8080", "::1", 8081, False),
    ("[::1]", "127.0.0.1", 80, False),
])
def test_pattern_matching(pattern: str, host: str, port: int, allowed: bool) -> None:
    assert HttpGrant([pattern]).allows(host, port) is allowed


def test_no_pattern_allows_nothing() -> None:
    grant = HttpGrant([])
    assert not grant and not grant.allows("127.0.0.1", 80)


@pytest.mark.parametrize("pattern", ["", "a:b", "a:0", "a:70000", "[::1", "[nope]", "[::1]x", "1::2::3",
                                     "a*.example.com", "http://x", "a..b", "user@host"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(BadPattern):
        parse(pattern)


@pytest.mark.parametrize("value,patterns", [("http", ["*"]), ("http=y", ["*"]), ("http=n", [])])
def test_wasmtime_s_http(value: str, patterns: list[str]) -> None:
    assert wasmtime_s_option(value) == patterns


@pytest.mark.parametrize("value", ["inherit-network", "http=maybe", "cli,http"])
def test_other_wasmtime_s_options_are_refused(value: str) -> None:
    with pytest.raises(BadPattern):
        wasmtime_s_option(value)


# ---------------------------------------------------------------- real runs

class _V6Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("content-length", str(len(V6_BODY)))
        self.end_headers()
        self.wfile.write(V6_BODY)

    def log_message(self, *args: object) -> None:
        pass


class _V6Server(NoReverseLookup):
    address_family = socket.AF_INET6


@pytest.fixture
def v6() -> Iterator[str]:
    """The base URL of a plain HTTP server on [::1]."""
    try:
        server = _V6Server(("::1", 0), _V6Handler)
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://[::1]:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_run_without_a_grant_reaches_no_server() -> None:
    with TestServer() as server:
        ran = rr("run", guest("http_get"), "--", server.url("/plain"))
        assert server.connections == 0
    assert (ran.status, ran.stdout) == (1, b"error HTTP-request-denied\n"), ran.err


def test_run_grants_by_host_port_and_ipv6_literal(v6: str) -> None:
    with TestServer() as allowed, TestServer() as other:
        urls = [allowed.url("/plain"), other.url("/plain"), f"{v6}/v6"]
        ran = rr("run", "--allow-http", f"127.0.0.1:{allowed.port}", "--allow-http", "[::1]",
                 guest("http_concurrent"), "--", *urls)
        assert other.connections == 0 and allowed.connections == 1
    lines = ran.stdout.splitlines()
    assert ran.status == 0, ran.err
    assert lines[0].startswith(f"0 status 200 body_bytes {len(PLAIN_BODY)} ".encode())
    assert lines[1] == b"1 error HTTP-request-denied"
    assert lines[2].startswith(f"2 status 200 body_bytes {len(V6_BODY)} ".encode())


@pytest.mark.parametrize("flags,message", [
    (("--allow-http", "127.0.0.1:http"), "rr: --allow-http '127.0.0.1:http': port 'http' is not a number"),
    (("-S", "cli"), "rr: -S 'cli': rr takes only -S http, inherit-network"),
])
def test_bad_grant_flags_are_one_line_usage_errors(flags: tuple[str, ...], message: str) -> None:
    ran = rr("run", *flags, guest("http_get"), "--", "http://127.0.0.1:1/")
    assert ran.status == 125
    assert ran.err.startswith(message) and ran.err.count("\n") == 1, ran.err


def test_denied_request_is_recorded_and_replays_without_flags(tmp_path: Path, v6: str) -> None:
    trace = tmp_path / "t.jsonl"
    with TestServer() as allowed, TestServer() as other:
        urls = [f"{v6}/v6", other.url("/plain"), allowed.url("/plain")]
        recorded = rr("record", "--allow-http", f"127.0.0.1:{allowed.port}", "--allow-http", "::1",
                      guest("http_concurrent"), "-t", str(trace), "--", *urls)
        assert other.connections == 0
        replayed = rr("replay", guest("http_concurrent"), str(trace))
        assert other.connections == 0 and allowed.connections == 1
    assert recorded.status == 0, recorded.err
    assert recorded.stdout.splitlines()[1] == b"1 error HTTP-request-denied"
    assert (replayed.status, replayed.stdout) == (recorded.status, recorded.stdout), replayed.err

    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert records[0]["http_allow"] == [f"127.0.0.1:{allowed.port}", "::1"]
    handled = [r for r in records if r.get("call") == "wasi:http/outgoing-handler.handle"]
    denied = [r for r in handled if r.get("failed")]
    assert [r["args"] for r in denied] == [["2", "GET", urls[1]]]
    assert denied[0]["result"] == "HTTP-request-denied"
    assert sorted(r["result"]["request"]["url"] for r in handled if not r.get("failed")) == \
        sorted([f"{v6}/v6", urls[2]])

    har = tmp_path / "t.har"
    assert rr("har", str(trace), "-o", str(har)).status == 0
    assert sorted(e["request"]["url"] for e in json.loads(har.read_text())["log"]["entries"]) == \
        sorted([f"{v6}/v6", urls[2]])

    # A hand-edited grant is the trace's problem (122), said in one line.
    records[0]["http_allow"] = "everything"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(r) + "\n" for r in records))
    bad = rr("replay", guest("http_concurrent"), str(edited))
    assert bad.status == 122 and bad.err.startswith("rr: ") and "'http_allow'" in bad.err, bad.err
