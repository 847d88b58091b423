"""`rr inspect` on real recordings: HTTP exchanges as readable blocks in trace order, filters,
JSON Lines, and a 100,000-event trace of a host-call-heavy guest."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import guests
from rr.trace import from_jsonable
from httpservers import CHUNKS, GZIP_BODY, GZIP_PLAINTEXT, PLAIN_BODY, RefusingPort, TestServer, pattern_bytes

pytestmark = pytest.mark.timeout(180)

RR = [sys.executable, "-m", "rr"]
FLOW_CALL = "wasi:http/outgoing-handler.handle"
POST_TEXT = b"name=rr&lang=python\n"


def rr(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> guests.Ran:
    done = subprocess.run([*RR, *args], input=stdin, capture_output=True, timeout=120,
                          cwd=guests.REPO, env=guests._clean_env(env))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def json_lines(ran: guests.Ran) -> list[dict]:
    assert ran.status == 0, ran.err
    return [json.loads(line) for line in ran.out.splitlines()]


def shown_indexes(text: str) -> list[int]:
    """The event index that starts each event line (continuation lines are indented more)."""
    return [int(m) for m in re.findall(r"^ {0,6}(\d+)  \S", text, re.M)]


@dataclass(frozen=True)
class Recorded:
    trace: Path
    urls: list[str]


@pytest.fixture(scope="module")
def proxy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private XDG_CACHE_HOME: mitmproxy's CA in a tmp dir, created by the first recording."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("xdg-cache"))}


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str]) -> Recorded:
    """http_concurrent against a real loopback server: text, gzip, binary, a long text body and
    a refused port."""
    trace = tmp_path_factory.mktemp("concurrent") / "t.cbor"
    with TestServer() as server, RefusingPort() as refusing:
        urls = [server.url("/plain"), server.url("/gzip"), server.url("/bytes?n=5000"), server.url("/chunked"),
                f"http://127.0.0.1:{refusing.port}/down"]
        recorded = rr("record", str(guests.c_guest("http_concurrent")), "-t", str(trace), "--allow-http", "127.0.0.1",
                      "--", *urls, env=proxy_env)
    assert b"Traceback" not in recorded.stderr and trace.exists(), recorded.err
    return Recorded(trace, urls)


@pytest.fixture(scope="module")
def posted(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str]) -> Recorded:
    trace = tmp_path_factory.mktemp("post") / "t.cbor"
    with TestServer() as server:
        url = server.url("/echo")
        recorded = rr("record", str(guests.c_guest("http_post")), "-t", str(trace), "--allow-http", "127.0.0.1",
                      "--", url,
                      stdin=POST_TEXT, env=proxy_env)
    assert recorded.status == 0, recorded.err
    return Recorded(trace, [url])


def block(text: str, url: str) -> str:
    """The block of the exchange with `url`: its headline and the indented lines after it."""
    match = re.search(rf"^ *\d+  HTTP GET {re.escape(url)} .*\n(?: {{11}}.*\n)*", text, re.M)
    assert match, text
    return match.group()


def test_exchanges_are_readable_blocks(concurrent: Recorded) -> None:
    ran = rr("inspect", str(concurrent.trace))
    assert ran.status == 0, ran.err
    plain_url, gzip_url, bytes_url, chunked_url, refused_url = concurrent.urls

    plain = block(ran.out, plain_url)
    assert re.search(r"-> 200 OK  \(flow \d+, [\d.]+ ms\)\n", plain.splitlines(keepends=True)[0])
    assert "           < HTTP/1.1 200 OK\n" in plain
    assert "           < Content-Type: text/plain\n" in plain
    assert f"           < Content-Length: {len(PLAIN_BODY)}\n" in plain
    assert plain.endswith("           <\n           < hello, rr\n")
    assert re.search(r"           > host: 127\.0\.0\.1:\d+\n", plain)

    gz = block(ran.out, gzip_url)
    assert f"< (gzip: {len(GZIP_BODY)} bytes on the wire, {len(GZIP_PLAINTEXT)} decoded)" in gz
    assert "< compressible text compressible text" in gz

    binary = block(ran.out, bytes_url)
    digest = hashlib.sha256(pattern_bytes(5000)).hexdigest()[:16]
    assert (f"< <5000 bytes application/octet-stream, sha256 {digest}, "
            f"starts {pattern_bytes(16).hex()}...>") in binary
    assert "\\x00" not in binary       # no body dumped as escaped text

    long_text = block(ran.out, chunked_url)   # 5000+ characters: cut at --body-limit's default
    total = sum(len(c) for c in CHUNKS)
    assert f"... {total - 4096} more characters (--body-limit 0 shows all)" in long_text
    assert "< first chunk\n" in long_text and "xlast" not in long_text
    whole = block(rr("inspect", str(concurrent.trace), "--body-limit", "0").out, chunked_url)
    assert whole.endswith("xxlast\n") and "more characters" not in whole

    refused = block(ran.out, refused_url)
    assert re.search(r"-> failed: connection refused: .*\(flow \d+, [\d.]+ ms\)", refused.splitlines()[0])
    assert "< " not in refused   # no response


def test_exchanges_sit_in_trace_order_among_the_other_events(concurrent: Recorded) -> None:
    lines = json_lines(rr("inspect", "--json", str(concurrent.trace)))
    events = lines[1:-1]
    assert [e["event"] for e in events] == list(range(lines[-1]["events"]))
    flows_at = [e["event"] for e in events if "http" in e]
    assert len(flows_at) == 5
    # Each exchange lies between the guest's calls: events before and after are not all flows.
    assert flows_at[0] > 0 and flows_at[-1] < len(events) - 1
    text = rr("inspect", str(concurrent.trace)).out
    assert shown_indexes(text) == list(range(len(events)))
    for index in flows_at:
        assert re.search(rf"^ *{index}  HTTP GET ", text, re.M)


def test_json_lines_hold_header_events_and_outcome(concurrent: Recorded) -> None:
    lines = json_lines(rr("inspect", "--json", str(concurrent.trace)))
    header, outcome = lines[0]["header"], lines[-1]
    assert header["component"]["name"] == "http_concurrent.wasm" and header["argv"][1:] == concurrent.urls
    assert outcome["complete"] is True and outcome["outcome"]["kind"] == "exit"
    assert outcome["shown"] == outcome["events"] == len(lines) - 2
    assert outcome["counts"]["wasi:http/outgoing-handler"] == 5

    by_url = {e["http"]["url"]: e["http"] for e in lines[1:-1] if "http" in e}
    plain, gz, binary, chunked, refused = (by_url[u] for u in concurrent.urls)
    assert plain["response"]["status"] == 200
    assert ["Content-Type", "text/plain"] in plain["response"]["headers"]
    assert plain["response"]["body"] == {"size": len(PLAIN_BODY), "content_type": "text/plain",
                                         "text": PLAIN_BODY.decode()}
    assert gz["response"]["body"]["text"] == GZIP_PLAINTEXT.decode()
    assert gz["response"]["body"]["content_encoding"] == "gzip"
    assert gz["response"]["body"]["wire_size"] == len(GZIP_BODY)
    assert base64.b64decode(binary["response"]["body"]["base64"]) == pattern_bytes(5000)
    assert binary["response"]["body"]["sha256"] == hashlib.sha256(pattern_bytes(5000)).hexdigest()
    assert chunked["response"]["body"]["text"] == b"".join(CHUNKS).decode()    # --json: whole bodies
    assert refused["response"] is None and refused["error"]["kind"] == "refused"
    assert refused["error"]["text"].startswith("connection refused")
    other = next(e for e in lines[1:-1] if "http" not in e)
    assert set(other) == {"event", "call", "args", "result", "failed"}


def test_request_bodies_show_as_text(posted: Recorded) -> None:
    text = rr("inspect", str(posted.trace), "--call", f"POST {posted.urls[0]}").out
    assert f"HTTP POST {posted.urls[0]} -> 200 OK" in text
    assert "           > content-type: application/octet-stream\n" in text
    assert f"           > content-length: {len(POST_TEXT)}\n           >\n           > name=rr&lang=python\n" in text
    assert text.rstrip().count("< name=rr&lang=python") == 1    # the echo
    (flow,) = [e for e in json_lines(rr("inspect", "--json", str(posted.trace))) if "http" in e]
    assert flow["http"]["request"]["body"]["text"] == POST_TEXT.decode()


def test_call_filter_matches_calls_interfaces_and_urls(concurrent: Recorded) -> None:
    trace = str(concurrent.trace)
    only_http = json_lines(rr("inspect", "--json", trace, "--call", "wasi:http/*"))
    assert only_http[1:-1] and all(e["call"].startswith("wasi:http/") for e in only_http[1:-1])
    assert only_http[-1]["shown"] == len(only_http) - 2 < only_http[-1]["events"]

    by_url = json_lines(rr("inspect", "--json", trace, "--call", "http://127.0.0.1:*/gzip",
                           "--call", "GET */plain"))
    assert sorted(e["http"]["url"] for e in by_url[1:-1]) == sorted(concurrent.urls[:2])

    poll = json_lines(rr("inspect", "--json", trace, "--call", "wasi:io/poll"))   # an interface, no glob
    assert poll[1:-1] and {e["call"] for e in poll[1:-1]} == {"wasi:io/poll.poll"}

    text = rr("inspect", trace, "--call", "wasi:io/poll").out
    assert f"  ({poll[-1]['shown']} shown: --call wasi:io/poll)" in text
    nothing = json_lines(rr("inspect", "--json", trace, "--call", "wasi:sockets/*"))
    assert len(nothing) == 2 and nothing[-1]["shown"] == 0


def test_bad_filters_are_one_line_usage_errors(concurrent: Recorded, tmp_path: Path) -> None:
    for args in (["--events", "9:3"], ["--events", "a:b"], ["--limit", "-1"], ["--body-limit", "-5"]):
        ran = rr("inspect", str(concurrent.trace), *args)
        assert ran.status == 125, (args, ran.err)
        assert ran.err.startswith("rr: ") and ran.err.count("\n") == 1 and ran.out == "", (args, ran.err)
    missing = rr("inspect", str(tmp_path / "nope.cbor"))
    assert missing.status == 122 and missing.err == f"rr: {tmp_path / 'nope.cbor'}: no such file\n"


def test_a_corrupt_trace_prints_what_precedes_the_damage(concurrent: Recorded, tmp_path: Path) -> None:
    as_json = tmp_path / "t.jsonl"
    assert rr("convert", str(concurrent.trace), str(as_json)).status == 0
    lines = as_json.read_bytes().split(b"\n")
    lines[5] = b'{"garbage'
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines))
    ran = rr("inspect", str(tmp_path / "bad.jsonl"))
    assert ran.status == 122 and ran.err.startswith("rr: ") and ran.err.count("\n") == 1, ran.err
    assert "bad.jsonl" in ran.err
    assert shown_indexes(ran.out)[:3] == [0, 1, 2]
    assert "outcome" not in ran.out


# ---- a 100,000-event trace ----------------------------------------------------------------

@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """benchmarks/guests/random_heavy.wat recorded making 100,000 host calls (plus get-arguments)."""
    work = tmp_path_factory.mktemp("heavy")
    wasm = guests.build_wat(guests.REPO / "benchmarks" / "guests" / "random_heavy.wat", work)
    trace = work / "heavy.cbor"
    recorded = rr("record", str(wasm), "-t", str(trace), "--", "50000", "50000")
    assert recorded.status == 0, recorded.err
    assert recorded.out.startswith("u64 50000\nbytes 50000\n")
    return trace


def test_a_100k_event_trace_streams_as_json_lines(heavy: Path) -> None:
    lines = json_lines(rr("inspect", "--json", str(heavy)))
    assert len(lines) == 100_003     # header, 100,001 events, outcome
    assert lines[-1]["events"] == 100_001 and lines[-1]["counts"] == {"wasi:cli/environment": 1,
                                                                     "wasi:random/random": 100_000}
    assert [e["event"] for e in lines[1:-1]] == list(range(100_001))
    assert lines[50_000]["call"] == "wasi:random/random.get-random-u64"
    assert lines[50_002]["call"] == "wasi:random/random.get-random-bytes"


def test_a_100k_event_trace_filters_by_call_and_range(heavy: Path) -> None:
    everything = json_lines(rr("inspect", "--json", str(heavy)))
    picked = json_lines(rr("inspect", "--json", str(heavy), "--call", "wasi:random/*bytes",
                           "--events", "49990:50010"))
    assert [e["event"] for e in picked[1:-1]] == list(range(50_001, 50_010))
    assert [e["result"] for e in picked[1:-1]] == [everything[i + 1]["result"] for i in range(50_001, 50_010)]
    assert picked[-1]["shown"] == 9 and picked[-1]["events"] == 100_001

    text = rr("inspect", str(heavy), "--events", "99998:", "--limit", "2").out
    assert shown_indexes(text) == [99_998, 99_999]
    assert "    ... 1 more selected event (--limit)\n" in text
    value = from_jsonable(everything[100_000]["result"]).hex()
    assert f"  99999  wasi:random/random.get-random-bytes(16) -> <16 bytes {value}>\n" in text

    counts = rr("inspect", str(heavy), "--no-events").out
    assert "  wasi:random/random                     100000  (800000 bytes of data)" in counts
    assert not shown_indexes(counts)


def test_the_header_shows_the_http_grant(concurrent: Recorded) -> None:
    text = rr("inspect", str(concurrent.trace), "--no-events").out
    assert 'http_allow ["127.0.0.1"]\n' in text
    header = json_lines(rr("inspect", "--json", "--no-events", str(concurrent.trace)))[0]["header"]
    assert header["extra"]["http_allow"] == ["127.0.0.1"]   # beside the redaction rules (rr/redact.py)


def test_a_damaged_flow_record_is_shown_as_a_plain_event(tmp_path: Path) -> None:
    """A hand-edited trace: the exchange has no headers; inspect shows what is there, no crash."""
    import time

    from rr.trace import ComponentInfo, Event, Header, Outcome, TraceWriter

    trace = tmp_path / "t.cbor"
    with TraceWriter(trace) as w:
        w.write_header(Header(rr_version="test", wasmtime_version="50.0.0", component=ComponentInfo("0" * 64, 1, "x.wasm"),
                              argv=["x.wasm"], env=[], dirs=[], start_time=time.time()))
        w.write_event(Event(FLOW_CALL, ["1", "GET", "http://127.0.0.1/"], {"id": "1", "request": {"method": "GET"}}))
        w.write_outcome(Outcome.exit(0))
    ran = rr("inspect", str(trace), "--call", "wasi:http/*")
    assert ran.status == 0, ran.err
    assert f"      0  {FLOW_CALL}('1', 'GET', 'http://127.0.0.1/') -> {{id: '1', request: {{method: 'GET'}}}}\n" in ran.out
    (event,) = json_lines(rr("inspect", "--json", str(trace)))[1:-1]
    assert "http" not in event and event["result"]["request"] == {"method": "GET"}


def test_a_v1_trace_is_shown_as_the_version_it_was_written_in(tmp_path: Path) -> None:
    """The reader upgrades old traces; inspect still says what the file is."""
    v1 = guests.REPO / "tests" / "data" / "v1" / "random.cbor"
    text = rr("inspect", str(v1), "--no-events")
    assert text.status == 0, text.err
    assert "(format rr-trace v1, read as v2," in text.out.splitlines()[0]
    assert json_lines(rr("inspect", str(v1), "--json"))[0]["header"]["version"] == 1
    converted = tmp_path / "random.cbor"
    assert rr("convert", str(v1), str(converted)).status == 0
    assert "(format rr-trace v2, rr" in rr("inspect", str(converted), "--no-events").out.splitlines()[0]
