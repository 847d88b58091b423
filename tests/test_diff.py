"""`rr diff A B`: real recordings of real guests (the clock guest, an HTTP guest against a
loopback server whose file changes between two recordings), compared through the CLI."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import guests
from rr.errors import EXIT_BAD_TRACE, EXIT_DIFFER
from rr.trace import open_trace

RR = [sys.executable, "-m", "rr"]


def rr(*args: str | Path, env: dict[str, str] | None = None) -> guests.Ran:
    done = subprocess.run([*RR, *map(str, args)], capture_output=True, timeout=guests.RUN_TIMEOUT,
                          cwd=guests.REPO, env=guests._clean_env(env))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def record(component: Path, trace: Path, *guest_args: str, flags: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> None:
    ran = rr("record", *flags, component, "-t", trace, "--", *guest_args, env=env)
    assert ran.status == 0, ran.err


@dataclass
class Clock:
    one: Path
    two: Path
    other_args: Path


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Clock:
    d = tmp_path_factory.mktemp("clock")
    c = Clock(d / "one.cbor", d / "two.cbor", d / "other.cbor")
    record(guests.c_guest("clock"), c.one, "1")
    record(guests.c_guest("clock"), c.two, "1")
    record(guests.c_guest("clock"), c.other_args, "2")
    return c


def events(trace: Path) -> list:
    with open_trace(trace) as reader:
        return list(reader)


def test_two_recordings_of_the_clock_guest_differ_at_the_first_clock_reading(clock: Clock) -> None:
    one, two = events(clock.one), events(clock.two)
    first = next(i for i, (a, b) in enumerate(zip(one, two)) if a != b)
    assert one[first].call == "wasi:clocks/wall-clock.now"   # the first value that can differ

    ran = rr("diff", clock.one, clock.two)
    assert ran.status == EXIT_DIFFER, ran.err
    assert ran.err == ""
    out = ran.out
    assert f"events     first difference at event {first} " in out
    seconds_a, nanos_a = one[first].result
    seconds_b, nanos_b = two[first].result
    assert f"{first:>7}  - wasi:clocks/wall-clock.now() -> [{seconds_a}, {nanos_a}]" in out
    assert f"{'':>7}  + wasi:clocks/wall-clock.now() -> [{seconds_b}, {nanos_b}]" in out
    # the events before it, same in both, as context; the header is the same
    assert f"{first - 1:>7}    {one[first - 1].call}" in out
    assert "header     same" in out
    # what the guest printed (the times) differs too: the traces record it (rr/output.py)
    assert "outcome    same ending: exit status 0; the output differs:" in out
    assert out.rstrip().splitlines()[-1].startswith(f"traces differ: events (first at event {first};")


def test_a_trace_and_its_copies_are_equal(clock: Clock, tmp_path: Path) -> None:
    copy = tmp_path / "copy.cbor"
    shutil.copy(clock.one, copy)
    jsonl = tmp_path / "one.jsonl.gz"
    assert rr("convert", clock.one, jsonl).status == 0
    for other in (copy, jsonl):
        ran = rr("diff", clock.one, other)
        assert ran.status == 0, ran.out + ran.err
        assert ran.out.rstrip().splitlines()[-1] == (
            f"traces are equal: same header, {len(events(clock.one))} events, same outcome (exit status 0)")


def test_how_a_trace_was_written_does_not_make_it_differ(clock: Clock, tmp_path: Path) -> None:
    """Another rr version, another date, another component file name: shown, not compared."""
    jsonl = tmp_path / "one.jsonl"
    assert rr("convert", clock.one, jsonl).status == 0
    lines = jsonl.read_text().splitlines()
    header = json.loads(lines[0])
    header["rr_version"] = "9.9.9"
    header["start_time"] = header["start_time"] + 86400
    header["component"]["name"] = "renamed.wasm"
    jsonl.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")

    ran = rr("diff", clock.one, jsonl)
    assert ran.status == 0, ran.out + ran.err
    assert "not compared (how the traces were written):" in ran.out
    assert "rr version       a: 0.1.0  b: 9.9.9" in ran.out
    assert "component name   a: clock.wasm  b: renamed.wasm" in ran.out


def test_other_arguments_are_a_header_difference(clock: Clock) -> None:
    ran = rr("diff", clock.one, clock.other_args, "-C", "0")
    assert ran.status == EXIT_DIFFER
    assert '  argv             a: "clock.wasm" "1"\n                   b: "clock.wasm" "2"\n' in ran.out
    # the guest reads its arguments first: that is the first differing event, alone with -C 0
    block = ran.out.split("events     first difference at event 0 ")[1].split("\n\n")[0].splitlines()[1:]
    assert block == ["        0  - wasi:cli/environment.get-arguments() -> ['clock.wasm', '1']",
                     "           + wasi:cli/environment.get-arguments() -> ['clock.wasm', '2']"]
    assert ran.out.rstrip().splitlines()[-1].startswith("traces differ: header (argv), events (first at event 0;")


def test_json_names_the_first_difference(clock: Clock) -> None:
    ran = rr("diff", "--json", clock.one, clock.two)
    assert ran.status == EXIT_DIFFER
    report = json.loads(ran.out)
    one = events(clock.one)
    first = report["first_difference"]
    assert report["equal"] is False and report["header"] == []
    assert one[first["event"]].call == "wasi:clocks/wall-clock.now"
    row = next(r for r in first["context"] if r["event"] == first["event"])
    assert row["same"] is False and row["a"]["result"] == list(one[first["event"]].result)
    assert report["a"]["counts"] == report["b"]["counts"]
    assert report["a"]["events"] == len(one)

    same = json.loads(rr("diff", "--json", clock.one, clock.one).out)
    assert same["equal"] is True and same["first_difference"] is None


def test_a_corrupt_or_missing_trace_is_a_bad_trace(clock: Clock, tmp_path: Path) -> None:
    data = bytearray(clock.two.read_bytes())
    data[len(data) // 2] ^= 0x40
    corrupt = tmp_path / "corrupt.cbor"
    corrupt.write_bytes(bytes(data))
    ran = rr("diff", clock.one, corrupt)
    assert ran.status == EXIT_BAD_TRACE
    assert ran.out == ""                     # no half report
    assert len(ran.err.splitlines()) == 1 and ran.err.startswith(f"rr: {corrupt}: corrupt record"), ran.err

    ran = rr("diff", tmp_path / "missing.cbor", clock.one)
    assert (ran.status, ran.err) == (EXIT_BAD_TRACE, f"rr: {tmp_path / 'missing.cbor'}: no such file\n")


def test_a_cut_short_trace_differs_by_its_outcome(clock: Clock, tmp_path: Path) -> None:
    cut = tmp_path / "cut.cbor"
    cut.write_bytes(clock.one.read_bytes()[:-3])   # the outcome record torn
    ran = rr("diff", clock.one, cut)
    assert ran.status == EXIT_DIFFER, ran.err
    assert "outcome    a: exit status 0\n           b: INCOMPLETE: truncated after" in ran.out
    assert ran.out.rstrip().splitlines()[-1] == "traces differ: outcome"


# ---- HTTP ---------------------------------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A real loopback file server over a directory the test changes between recordings."""
    root = tmp_path_factory.mktemp("site")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class Http:
    before: Path
    after: Path
    base: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def http_traces(site: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Http:
    """Two recordings of the HTTP guest fetching a file that changed between them."""
    root, base = site
    d = tmp_path_factory.mktemp("http")
    env = {"XDG_CACHE_HOME": str(d / "xdg")}   # mitmproxy's CA, private to the test
    grant = ("--allow-http", base.removeprefix("http://"))
    before, after = d / "before.cbor", d / "after.cbor"
    (root / "greeting.txt").write_text("hello\nfrom the server\n")
    record(guests.c_guest("http_get"), before, f"{base}/greeting.txt", flags=grant, env=env)
    (root / "greeting.txt").write_text("hello\nfrom the changed server\n")
    record(guests.c_guest("http_get"), after, f"{base}/greeting.txt", flags=grant, env=env)
    return Http(before, after, base, env)


def test_http_traces_with_a_changed_response_body(http_traces: Http) -> None:
    before, after, base = http_traces.before, http_traces.after, http_traces.base
    flow = next(i for i, e in enumerate(events(before)) if e.call == "wasi:http/outgoing-handler.handle")
    ran = rr("diff", before, after)
    assert ran.status == EXIT_DIFFER, ran.err
    out = ran.out
    assert f"events     first difference at event {flow} " in out
    assert f"{flow:>7}  - HTTP GET {base}/greeting.txt -> 200 OK  (flow 1)" in out
    exchange = out.split(f"  HTTP exchange at event {flow}, a -> b:\n")[1].split("\n\n")[0]
    assert {"      -Content-Length: 22", "      +Content-Length: 30"} <= set(exchange.splitlines())
    assert "    response body: 22 bytes text/plain (text, sha256 " in exchange
    assert "       hello\n      -from the server\n      +from the changed server" in exchange
    assert "request" not in exchange                     # the requests were the same

    report = json.loads(rr("diff", "--json", before, after).out)
    parts = {p["part"]: p for p in report["first_difference"]["http"]}
    assert set(parts) <= {"response.headers", "response.body"} and "response.body" in parts
    assert parts["response.body"]["a"]["size"] == 22 and parts["response.body"]["b"]["size"] == 30
    assert "+from the changed server" in parts["response.body"]["diff"]


def test_where_an_exchange_was_written_among_the_calls_does_not_matter(http_traces: Http, tmp_path: Path) -> None:
    """The proxy's thread writes an exchange when it finishes; replay serves it by request. A
    trace with the exchange one event later is the same run, for replay and for diff."""
    jsonl = tmp_path / "moved.jsonl"
    assert rr("convert", http_traces.before, jsonl).status == 0
    lines = jsonl.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"wasi:http/outgoing-handler.handle"' in line)
    lines[at], lines[at + 1] = lines[at + 1], lines[at]
    jsonl.write_text("\n".join(lines) + "\n")
    flow = at - 1                                    # line 0 is the header
    moved = events(jsonl)
    assert moved[flow + 1].call == "wasi:http/outgoing-handler.handle"

    replayed = rr("replay", guests.c_guest("http_get"), jsonl, env=http_traces.env)
    assert replayed.status == 0, replayed.err
    ran = rr("diff", http_traces.before, jsonl, "-C", "9")
    assert ran.status == 0, ran.out
    # against the changed recording, the exchange is found at its own place on each side
    ran = rr("diff", jsonl, http_traces.after)
    assert ran.status == EXIT_DIFFER
    assert f"events     first difference at event {flow + 1} (in b: {flow}) " in ran.out
    assert f"{flow + 1:>7}  - HTTP GET " in ran.out and f"{flow:>7}  + HTTP GET " in ran.out


def test_a_changed_binary_body_is_shown_by_size_and_digest(site: tuple[Path, str], tmp_path: Path) -> None:
    root, base = site
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    grant = ("--allow-http", base.removeprefix("http://"))
    one, two = tmp_path / "one.cbor", tmp_path / "two.cbor"
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    record(guests.c_guest("http_get"), one, f"{base}/blob.bin", "--summary", flags=grant, env=env)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4 + b"\x00\xff")
    record(guests.c_guest("http_get"), two, f"{base}/blob.bin", "--summary", flags=grant, env=env)

    ran = rr("diff", one, two)
    assert ran.status == EXIT_DIFFER, ran.err
    body = next(line for line in ran.out.splitlines() if line.startswith("    response body: "))
    assert body.startswith("    response body: 1024 bytes application/octet-stream (binary, sha256 ")
    assert " -> 1026 bytes application/octet-stream (binary, sha256 " in body
    after = ran.out.splitlines()[ran.out.splitlines().index(body) + 1]
    assert not after.startswith("      ")          # no line diff of binary data
