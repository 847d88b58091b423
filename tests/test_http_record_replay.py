"""End to end: `rr record` then `rr replay` of the HTTP guests against real loopback servers.

Every run is a real `python -m rr` subprocess. A replay must print the same stdout and guest
stderr and exit with the same status as the recording, (a) while the recorded server still
runs and counts every TCP connection it accepts (it must see none) and (b) after it stopped.
Edited traces must stop the replay with exit 121 and a readable diff, and the recorder's
live views (--inspect's web UI, --dump) and the HAR export are checked on real recordings.

Each rr process costs ~0.7 s of CPU (most of it importing mitmproxy), so the recordings and replays
of the case matrix run a few at a time, in phases, inside one module fixture.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

import guests
from httpservers import (CHUNKS, GZIP_BODY, GZIP_PLAINTEXT, PLAIN_BODY, RefusingPort, TestServer, TLSFiles,
                         make_tls_files, pattern_bytes)

# Each test finishes in seconds, but the first one also waits for the case matrix (~45 rr
# processes: over 90 s on a loaded 2-core machine); the bound catches a hung replay.
pytestmark = pytest.mark.timeout(600)

RR = [sys.executable, "-m", "rr"]
RUN_TIMEOUT_S = 60
PARALLEL = 3          # rr processes at once: mostly CPU-bound start-up on a 2-core machine
from rr.errors import EXIT_BAD_TRACE, EXIT_DIVERGED  # noqa: E402 - beside the other constants
LARGE = 20 << 20
POST_BODY = bytes(range(256)) * 40 + b"\r\n\x00tail"    # every byte value, not UTF-8
BINARY_N = 100_000
SCHEMA = Path(__file__).parent / "data" / "har-1.2.schema.json"
GRANT = ("--allow-http", "127.0.0.1", "--allow-http", "localhost")   # TestServer's http and https hosts


# ---------------------------------------------------------------- running rr

@dataclass(frozen=True)
class Job:
    args: tuple[str, ...]
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)


def rr(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> guests.Ran:
    done = subprocess.run([*RR, *args], input=stdin, capture_output=True, timeout=RUN_TIMEOUT_S,
                          cwd=guests.REPO, env=guests._clean_env(env))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def rr_many(jobs: dict[str, Job]) -> dict[str, guests.Ran]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(rr, *job.args, stdin=job.stdin, env=job.env) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def guest_stderr(ran: guests.Ran) -> bytes:
    """The guest's own stderr: rr's lines (`rr: ...`) removed."""
    return b"".join(line for line in ran.stderr.splitlines(keepends=True) if not line.startswith(b"rr: "))


def without_date(stdout: bytes) -> bytes:
    """Two live fetches differ only in the server's Date header."""
    return b"\n".join(line for line in stdout.split(b"\n") if not line.startswith(b"header date: "))


def assert_clean(ran: guests.Ran) -> None:
    """rr reported no bug of its own."""
    assert b"Traceback" not in ran.stderr and b"internal error" not in ran.stderr, ran.err


def assert_same_run(replayed: guests.Ran, recorded: guests.Ran) -> None:
    assert_clean(replayed)
    assert replayed.stdout == recorded.stdout, replayed.err
    assert guest_stderr(replayed) == guest_stderr(recorded)
    assert replayed.status == recorded.status, replayed.err


def guest(name: str) -> str:
    path = guests.c_guest(name)
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return str(path)


@pytest.fixture(scope="module")
def proxy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private XDG_CACHE_HOME, so mitmproxy's CA lives in a tmp dir, not ~/.cache/rr.

    The CA is created here, once: rr processes started in parallel on an empty confdir
    would each generate one and race to write it."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    env = {"XDG_CACHE_HOME": str(cache)}
    with RefusingPort() as port:
        created = rr("record", *GRANT, guest("http_get"), "-t", str(cache / "warm-up.cbor"), "--",
                     f"http://127.0.0.1:{port.port}/", env=env)
    assert_clean(created)
    assert any((cache / "rr" / "mitmproxy").glob("mitmproxy-ca*.pem")), created.err
    return env


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# ---------------------------------------------------------------- the case matrix

@dataclass(frozen=True)
class Case:
    guest: str
    path: str
    args: tuple[str, ...] = ()      # guest arguments after the URL
    stdin: bytes = b""
    server: str = "http"            # "http", "https", "https-untrusted" (no --ca-cert), "refused"
    status: int = 0
    head: bytes = b"status 200\n"   # the recorded stdout starts with this
    tail: bytes = b""               # ... and ends with this
    has: bytes = b""                # ... and contains this
    compare_direct: bool = False    # also run `rr run` (no proxy): same stdout apart from Date


def _http(name: str, case: Case) -> dict[str, Case]:
    return {f"{name}-http": case}


def _both_schemes(name: str, case: Case) -> dict[str, Case]:
    """Text, gzip and request bodies also over TLS (the proxy's upstream leg); the other
    cases run over plain HTTP only, to keep the suite fast."""
    return {**_http(name, case), f"{name}-https": dataclasses.replace(case, server="https")}


CASES: dict[str, Case] = {
    **_both_schemes("get-text", Case("http_get", "/plain", tail=b"\n\n" + PLAIN_BODY)),
    **_both_schemes("post-stdin", Case("http_post", "/echo", stdin=POST_BODY, tail=b"\n\n" + POST_BODY,
                                       has=b"\nheader x-method: POST\n")),
    **_http("404", Case("http_get", "/status/404", head=b"status 404\n", tail=b"\n\nstatus 404\n")),
    # The guest, not rr, decides about redirects: the 302 itself reaches it.
    **_http("redirect", Case("http_get", "/redirect", head=b"status 302\n", has=b"\nheader location: /plain\n")),
    **_http("chunked", Case("http_get", "/chunked", tail=b"\n\n" + b"".join(CHUNKS))),
    # Trailer fields after the last chunk: mitmproxy's HTTP/1 layer has none of its own (rr's
    # proxy adds them); the recording hung on the keep-alive connection before.
    **_both_schemes("trailers", Case("http_get", "/trailers", tail=b"\n\n" + b"".join(CHUNKS),
                                     has=b"\nheader trailer: x-checksum\n", compare_direct=True)),
    # The compressed bytes, exactly as a direct fetch gets them: the proxy must not decode.
    **_both_schemes("gzip", Case("http_get", "/gzip", tail=b"\n\n" + GZIP_BODY,
                                 has=b"\nheader content-encoding: gzip\n", compare_direct=True)),
    **_http("binary", Case("http_get", f"/bytes?n={BINARY_N}", tail=b"\n\n" + pattern_bytes(BINARY_N))),
    "large-http": Case("http_get", f"/bytes?n={LARGE}", args=("--summary",), has=f"\nbody_bytes {LARGE} ".encode()),
    "refused": Case("http_get", "/x", server="refused", status=1, head=b"error connection-refused\n",
                    tail=b"error connection-refused\n"),
    "tls-untrusted": Case("http_get", "/plain", server="https-untrusted", status=1,
                          head=b"error TLS-certificate-error\n", tail=b"error TLS-certificate-error\n"),
}


@dataclass
class CaseResult:
    recorded: guests.Ran
    direct: guests.Ran | None
    replay_live: guests.Ran
    replay_stopped: guests.Ran
    connections_recording: int | None      # None: nothing listens (refused)
    connections_replaying: int | None


@contextlib.contextmanager
def serving(kind: str, tls: TLSFiles) -> Iterator[tuple[str, TestServer | None]]:
    """(base URL, the server that counts connections) for one case; stopped on exit."""
    if kind == "refused":
        with RefusingPort() as port:
            yield f"http://127.0.0.1:{port.port}", None
        return
    with TestServer(tls if kind.startswith("https") else None) as server:
        yield server.url(""), server


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, tls: TLSFiles,
           proxy_env: dict[str, str]) -> dict[str, CaseResult]:
    """Record every case, replay each while its server runs, stop the servers, replay again."""
    traces = tmp_path_factory.mktemp("traces")
    with contextlib.ExitStack() as servers:
        targets = {name: servers.enter_context(serving(case.server, tls)) for name, case in CASES.items()}
        jobs: dict[str, Job] = {}
        for name, case in CASES.items():
            url = targets[name][0] + case.path
            ca = ("--ca-cert", str(tls.ca_cert)) if case.server == "https" else ()
            jobs[name] = Job(("record", *GRANT, *ca, guest(case.guest), "-t", str(traces / f"{name}.cbor"),
                              "--", url, *case.args), case.stdin, proxy_env)
            if case.compare_direct:
                direct_env = {"RR_HTTP_EXTRA_CA": str(tls.ca_cert)} if case.server == "https" else {}
                jobs[f"{name}/direct"] = Job(("run", *GRANT, guest(case.guest), "--", url, *case.args), case.stdin,
                                             {**proxy_env, **direct_env})
        first = rr_many(jobs)
        counted = {name: server.connections if server else None for name, (_, server) in targets.items()}
        replays = {name: Job(("replay", guest(case.guest), str(traces / f"{name}.cbor")), env=proxy_env)
                   for name, case in CASES.items()}
        live = rr_many(replays)
        after_live = {name: server.connections if server else None for name, (_, server) in targets.items()}
    stopped = rr_many(replays)
    return {
        name: CaseResult(
            recorded=first[name],
            direct=first.get(f"{name}/direct"),
            replay_live=live[name],
            replay_stopped=stopped[name],
            connections_recording=counted[name],
            connections_replaying=None if counted[name] is None else after_live[name] - counted[name],
        )
        for name in CASES
    }


@pytest.mark.parametrize("name", list(CASES))
def test_recording_shows_the_real_exchange(name: str, matrix: dict[str, CaseResult]) -> None:
    case, result = CASES[name], matrix[name]
    recorded = result.recorded
    assert_clean(recorded)
    assert recorded.status == case.status, recorded.err
    assert recorded.stdout.startswith(case.head), recorded.stdout[:300]
    assert recorded.stdout.endswith(case.tail), recorded.stdout[-300:]
    assert case.has in recorded.stdout
    if case.server != "refused":
        assert result.connections_recording, "the recording never reached the server"
    if result.direct is not None:
        assert_clean(result.direct)
        assert without_date(result.direct.stdout) == without_date(recorded.stdout)
        assert result.direct.status == recorded.status


@pytest.mark.parametrize("name", list(CASES))
def test_replay_with_the_server_running_opens_no_connection(name: str, matrix: dict[str, CaseResult]) -> None:
    result = matrix[name]
    assert_same_run(result.replay_live, result.recorded)
    if result.connections_replaying is not None:
        assert result.connections_replaying == 0


@pytest.mark.parametrize("name", list(CASES))
def test_replay_after_the_server_stopped(name: str, matrix: dict[str, CaseResult]) -> None:
    assert_same_run(matrix[name].replay_stopped, matrix[name].recorded)


# ---------------------------------------------------------------- concurrency

def test_concurrent_requests_replay_identically_several_times(tmp_path: Path, proxy_env: dict[str, str]) -> None:
    trace = tmp_path / "concurrent.cbor"
    with TestServer() as server:
        # The slow one is first: it finishes last, so the guest polls several pollables at once.
        urls = [server.url("/slow?s=1"), server.url("/chunked"), server.url(f"/bytes?n={BINARY_N}")]
        recorded = rr("record", *GRANT, guest("http_concurrent"), "-t", str(trace), "--", *urls, env=proxy_env)
        assert_clean(recorded)
        assert recorded.status == 0, recorded.err
        assert [line.split()[:3] for line in recorded.stdout.splitlines()] == [
            [b"0", b"status", b"200"], [b"1", b"status", b"200"], [b"2", b"status", b"200"]]
        assert guest_stderr(recorded).startswith(b"poll 3 ready ")
        before = server.connections
        replays = rr_many({str(i): Job(("replay", guest("http_concurrent"), str(trace)), env=proxy_env)
                           for i in range(3)})
        assert server.connections == before
    for replayed in replays.values():
        assert_same_run(replayed, recorded)


# ---------------------------------------------------------------- edited traces

MISMATCH_BODY = b"name=rr&value=1\n"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def as_bytes(value: dict[str, str]) -> bytes:
    """JSON Lines bytes: {"$utf8": text} when they are text, else {"$bytes": base64}."""
    if "$utf8" in value:
        return value["$utf8"].encode()
    return base64.b64decode(value["$bytes"])


def to_json_bytes(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode()}


@dataclass(frozen=True)
class PostTrace:
    records: list[dict[str, Any]]    # the recording as JSON Lines records (`rr convert`)
    url: str
    recorded: guests.Ran


@pytest.fixture(scope="module")
def post_trace(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str]) -> PostTrace:
    """http_post of a text body, recorded and converted to JSON Lines for editing; the server
    is gone before any edited replay runs."""
    out = tmp_path_factory.mktemp("post")
    with TestServer() as server:
        url = server.url("/echo")
        recorded = rr("record", *GRANT, guest("http_post"), "-t", str(out / "t.cbor"), "--", url,
                      stdin=MISMATCH_BODY, env=proxy_env)
    assert recorded.status == 0 and recorded.stdout.endswith(b"\n\n" + MISMATCH_BODY), recorded.err
    converted = rr("convert", str(out / "t.cbor"), str(out / "t.jsonl"))
    assert converted.status == 0, converted.err
    return PostTrace(read_jsonl(out / "t.jsonl"), url, recorded)


def replay_edited(records: list[dict[str, Any]], tmp_path: Path, env: dict[str, str]) -> guests.Ran:
    trace = tmp_path / "edited.jsonl"
    write_jsonl(trace, records)
    return rr("replay", guest("http_post"), str(trace), env=env)


def events(records: list[dict[str, Any]], call: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("call") == call]


def test_unedited_jsonl_trace_replays(post_trace: PostTrace, tmp_path: Path, proxy_env: dict[str, str]) -> None:
    """The control for the edits below: the converted trace itself replays."""
    assert_same_run(replay_edited(post_trace.records, tmp_path, proxy_env), post_trace.recorded)


def test_changed_url_stops_replay_with_a_url_diff(post_trace: PostTrace, tmp_path: Path,
                                                  proxy_env: dict[str, str]) -> None:
    records = json.loads(json.dumps(post_trace.records))
    changed = post_trace.url + "?changed=1"
    for event in events(records, "wasi:cli/environment.get-arguments"):
        event["result"] = [changed if arg == post_trace.url else arg for arg in event["result"]]
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_DIVERGED, replayed.err
    assert f"url: recorded {post_trace.url}, now {changed}" in replayed.err


def test_changed_body_stops_replay_with_a_body_diff(post_trace: PostTrace, tmp_path: Path,
                                                    proxy_env: dict[str, str]) -> None:
    records = json.loads(json.dumps(post_trace.records))
    edited = MISMATCH_BODY.replace(b"value=1", b"value=2")   # same length: same read sizes
    stdin_reads = [e for e in events(records, "wasi:io/streams.blocking-read")
                   if e["args"][0] == "stdin" and not e.get("failed")]
    assert [as_bytes(e["result"]) for e in stdin_reads] == [MISMATCH_BODY]
    stdin_reads[0]["result"] = to_json_bytes(edited)
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_DIVERGED, replayed.err
    assert f"body: recorded {MISMATCH_BODY.decode()!r}, now {edited.decode()!r}" in replayed.err


def test_changed_header_stops_replay_with_a_header_diff(post_trace: PostTrace, tmp_path: Path,
                                                        proxy_env: dict[str, str]) -> None:
    """The recorded request said text/plain; the guest sends application/octet-stream."""
    records = json.loads(json.dumps(post_trace.records))
    (flow,) = events(records, "wasi:http/outgoing-handler.handle")
    headers = flow["result"]["request"]["headers"]
    for header in headers:
        if as_bytes(header[0]).lower() == b"content-type":
            header[1] = to_json_bytes(b"text/plain")
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_DIVERGED, replayed.err
    assert "header content-type: recorded 'text/plain', now 'application/octet-stream'" in replayed.err


def test_extra_recorded_flow_is_reported_unused(post_trace: PostTrace, tmp_path: Path,
                                                proxy_env: dict[str, str]) -> None:
    records = json.loads(json.dumps(post_trace.records))
    (flow,) = events(records, "wasi:http/outgoing-handler.handle")
    extra = json.loads(json.dumps(flow))
    extra["args"][0] = extra["result"]["id"] = "2"
    records.insert(records.index(flow) + 1, extra)
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_DIVERGED, replayed.err
    assert f"never requested: 2 POST {post_trace.url}" in replayed.err
    # The guest itself got its (first) flow: its output is complete before the report.
    assert replayed.stdout == post_trace.recorded.stdout


def test_missing_flow_stops_replay_naming_the_request(post_trace: PostTrace, tmp_path: Path,
                                                      proxy_env: dict[str, str]) -> None:
    records = [r for r in post_trace.records if r.get("call") != "wasi:http/outgoing-handler.handle"]
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_DIVERGED, replayed.err
    assert f"flow 1: POST {post_trace.url}: no recorded request" in replayed.err


@pytest.mark.parametrize("edit", ["same-id-twice", "no-response-nor-error"])
def test_unusable_flow_record_is_a_bad_trace(edit: str, post_trace: PostTrace, tmp_path: Path,
                                             proxy_env: dict[str, str]) -> None:
    """Not a divergence of the guest, and not a crash of rr: the trace itself is bad (122)."""
    records = json.loads(json.dumps(post_trace.records))
    (flow,) = events(records, "wasi:http/outgoing-handler.handle")
    event_index = records.index(flow) - 1   # records[0] is the header
    if edit == "same-id-twice":
        records.insert(records.index(flow) + 1, json.loads(json.dumps(flow)))
        event_index += 1
        expected = "flow id '1' was recorded before"
    else:
        flow["result"]["response"] = None
        expected = "it has neither a response nor an error"
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == 122, replayed.err
    assert f"event {event_index} (wasi:http/outgoing-handler.handle): {expected}" in replayed.err


# ---------------------------------------------------------------- live views and export

def test_inspect_serves_the_flow_in_the_web_ui_while_recording(tmp_path: Path, proxy_env: dict[str, str]) -> None:
    with TestServer() as server:
        url = server.url("/slow?s=2")   # keeps the recording (and the web UI) up ~2 s
        stdout = tmp_path / "stdout"
        with stdout.open("wb") as out:
            proc = subprocess.Popen([*RR, "record", *GRANT, "--inspect", guest("http_get"),
                                     "-t", str(tmp_path / "t.cbor"), "--", url], stdout=out, stderr=subprocess.PIPE,
                                    cwd=guests.REPO, env=guests._clean_env(proxy_env))
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_lines_to_queue, args=(proc.stderr, lines), daemon=True).start()
        try:
            web_url = _wait_for_web_url(lines, deadline=time.monotonic() + 30)
            token = parse_qs(urlsplit(web_url).query)["token"][0]
            base = web_url.split("?")[0]
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(base + "flows", timeout=5)
            assert denied.value.code == 403   # the token is really required
            flows = _wait_for_flows(base + "flows", token, deadline=time.monotonic() + 10)
            status = proc.wait(timeout=RUN_TIMEOUT_S)   # stderr is no terminal: the UI closes with the guest
        finally:
            proc.kill()
            proc.wait(timeout=10)
    assert [(f["request"]["method"], f["request"]["path"]) for f in flows] == [("GET", "/slow?s=2")]
    assert status == 0
    assert stdout.read_bytes().startswith(b"status 200\n") and stdout.read_bytes().endswith(b"\n\nslow")


def _lines_to_queue(stream: Any, lines: "queue.Queue[bytes]") -> None:
    for line in stream:
        lines.put(line)


def _wait_for_web_url(lines: "queue.Queue[bytes]", deadline: float) -> str:
    prefix = b"rr: inspect HTTP live at "
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line.startswith(prefix):
            return line[len(prefix):].decode().strip()
    raise AssertionError("rr record --inspect printed no web UI URL")


def _wait_for_flows(url: str, token: str, deadline: float) -> list[dict[str, Any]]:
    """GET /flows as mitmweb's API expects (token as a Bearer header) until one flow is listed."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5) as response:
            flows = json.loads(response.read())
        if flows:
            return flows
        time.sleep(0.1)
    raise AssertionError("the web UI listed no flow while the request was in flight")


@dataclass(frozen=True)
class Dumped:
    trace: Path
    recorded: guests.Ran
    urls: list[str]


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory, proxy_env: dict[str, str]) -> Dumped:
    """http_concurrent recorded with --dump: a text, a gzip and a refused exchange."""
    trace = tmp_path_factory.mktemp("dump") / "t.cbor"
    with TestServer() as server, RefusingPort() as refusing:
        urls = [server.url("/plain"), server.url("/gzip"), f"http://127.0.0.1:{refusing.port}/down"]
        recorded = rr("record", *GRANT, "--dump", guest("http_concurrent"), "-t", str(trace), "--", *urls,
                      env=proxy_env)
    assert_clean(recorded)
    assert recorded.status == 0, recorded.err
    return Dumped(trace, recorded, urls)


def test_dump_prints_one_line_per_flow(dumped: Dumped) -> None:
    # Each dump line is written whole, but the guest writes its own stderr lines in pieces
    # from another thread, so a dump line may start in the middle of one of them.
    lines = sorted(re.findall(r"rr-proxy \[(\d+)\] GET (\S+) -> ([^\n]*)\n", dumped.recorded.err))
    assert [(flow_id, url) for flow_id, url, _ in lines] == [("1", dumped.urls[0]), ("2", dumped.urls[1]),
                                                             ("3", dumped.urls[2])], dumped.recorded.err
    assert [outcome for *_, outcome in lines[:2]] == [f"200 {len(PLAIN_BODY)}B", f"200 {len(GZIP_BODY)}B"]
    assert lines[2][2].startswith("error: ")
    assert dumped.recorded.out.splitlines()[2] == "2 error connection-refused"


def test_har_export_of_a_recorded_trace_validates(dumped: Dumped, tmp_path: Path) -> None:
    out = tmp_path / "out.har"
    exported = rr("har", str(dumped.trace), "-o", str(out))
    assert exported.status == 0, exported.err
    har = json.loads(out.read_text())
    jsonschema.validate(har, json.loads(SCHEMA.read_text()))
    # Entries follow the trace, where flows are in the order they finished: match them by URL.
    entries = {e["request"]["url"]: e for e in har["log"]["entries"]}
    assert sorted(entries) == sorted(dumped.urls)
    plain, gzipped, refused = (entries[url]["response"] for url in dumped.urls)
    assert plain["content"]["text"] == PLAIN_BODY.decode()
    assert gzipped["content"]["text"] == GZIP_PLAINTEXT.decode()   # HAR holds the decoded text
    assert refused["_rrErrorKind"] == "refused"




def test_response_body_shorter_than_its_content_length_is_a_bad_trace(post_trace: PostTrace, tmp_path: Path,
                                                                     proxy_env: dict[str, str]) -> None:
    """A hand-cut body keeps its content-length: served as is, the guest would wait forever for
    the missing bytes (found by benchmarks/fuzz_traces.py). The record is refused instead."""
    records = json.loads(json.dumps(post_trace.records))
    (flow,) = events(records, "wasi:http/outgoing-handler.handle")
    response = flow["result"]["response"]
    body = as_bytes(response["body"])
    assert any(k.lower() == "content-length" for k, _ in
               ((as_bytes(k).decode(), v) for k, v in response["headers"])), response["headers"]
    response["body"] = to_json_bytes(body[:-5])
    replayed = replay_edited(records, tmp_path, proxy_env)
    assert_clean(replayed)
    assert replayed.status == EXIT_BAD_TRACE, replayed.err
    assert f"response body is {len(body) - 5} bytes but its content-length says {len(body)}" in replayed.err
