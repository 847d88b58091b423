"""Large HTTP bodies streamed through record and replay (rr/merge.py BODY_CALL, proxy_addon/record.py,
proxy_addon/streamreplay.py), against the real loopback servers of tests/httpservers.py.

The threshold is lowered (RR_HTTP_STREAM_ABOVE) so that bodies of a few MiB stream: the 400 MiB
case is benchmarks/bench_http.py's. Recordings run in-process through rr's Python API (one
embedded proxy per run), the CLI tools and the kill -9 as subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import guests
import rr
from httpservers import TestServer, make_tls_files, pattern_bytes
from rr.redact import Redaction
from rr.merge import BODY_CALL, BODY_END_CALL, FLOW_CALL, flow_records, is_streamed
from rr.trace import open_trace

pytestmark = pytest.mark.timeout(300)

ABOVE = 1 << 20
BIG = 6 << 20
RR = [sys.executable, "-m", "rr"]


@pytest.fixture(autouse=True)
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RR_HTTP_STREAM_ABOVE", str(ABOVE))


@pytest.fixture(scope="module")
def server() -> TestServer:
    with TestServer() as s:
        yield s


@pytest.fixture(scope="module")
def http_get() -> Path:
    return guests.c_guest("http_get")


def events(trace: Path) -> list:
    with open_trace(trace) as reader:
        return list(reader)


def record(http_get: Path, trace: Path, url: str, *args: str, **kw) -> rr.Result:
    return rr.record(http_get, trace, [url, *args], allow_http=["127.0.0.1"], overwrite=True, **kw)


def summary(n: int) -> bytes:
    return f"body_bytes {n} ".encode()


@pytest.mark.parametrize("route", ["bytes", "chunked-bytes"])
def test_a_large_body_is_recorded_in_pieces_and_replays_offline(route: str, server: TestServer, http_get: Path,
                                                                 tmp_path: Path) -> None:
    url = server.url(f"/{route}?n={BIG}")
    direct = rr.run(http_get, [url, "--summary"], allow_http=["127.0.0.1"])
    trace = tmp_path / "big.cbor"
    recorded = record(http_get, trace, url, "--summary")
    assert recorded.exit_status == 0 and summary(BIG) in recorded.stdout
    got = events(trace)
    (head,) = [e for e in got if e.call == FLOW_CALL]
    assert is_streamed(head.result) and head.result["response"]["body"] == b""
    pieces = [e.result for e in got if e.call == BODY_CALL]
    assert b"".join(pieces) == pattern_bytes(BIG) and len(pieces) > 1
    (end,) = [e.result for e in got if e.call == BODY_END_CALL]
    assert end["size"] == BIG and end["error"] is None
    # Pieces come after the head and before the end, in order with the guest's reads.
    calls = [e.call for e in got]
    assert calls.index(FLOW_CALL) < calls.index(BODY_CALL) < calls.index(BODY_END_CALL)
    assert recorded.stdout.split(b"\n\n")[-1] == direct.stdout.split(b"\n\n")[-1]

    connections = server.connections
    replayed = rr.replay(http_get, trace)
    assert (replayed.exit_status, replayed.stdout, replayed.stderr) == (0, recorded.stdout, recorded.stderr), \
        replayed.message
    assert server.connections == connections   # served from the trace alone

    # Export joins the pieces of the exchange: one record, the whole body.
    (rec,) = flow_records(trace)
    assert rec["response"]["body"] == pattern_bytes(BIG) and "streamed" not in rec["response"]


def test_a_large_body_over_tls_replays_offline(http_get: Path, tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    tls = make_tls_files(tmp_path / "tls")
    with TestServer(tls) as server:
        trace = tmp_path / "tls.cbor"
        recorded = rr.record(http_get, trace, [server.url(f"/bytes?n={BIG}"), "--summary"], allow_http=["localhost"],
                             ca_cert=tls.ca_cert)
        assert recorded.exit_status == 0 and summary(BIG) in recorded.stdout, recorded.stderr
        assert sum(e.call == BODY_CALL for e in events(trace)) > 1
    replayed = rr.replay(http_get, trace)
    assert (replayed.exit_status, replayed.stdout) == (0, recorded.stdout), replayed.message


def test_a_chunked_body_within_the_threshold_stays_one_record(server: TestServer, http_get: Path,
                                                               tmp_path: Path) -> None:
    trace = tmp_path / "small.cbor"
    recorded = record(http_get, trace, server.url("/chunked-bytes?n=300000"), "--summary")
    assert recorded.exit_status == 0
    got = events(trace)
    assert not [e for e in got if e.call in (BODY_CALL, BODY_END_CALL)]
    (head,) = [e for e in got if e.call == FLOW_CALL]
    assert not is_streamed(head.result) and head.result["response"]["body"] == pattern_bytes(300000)
    assert rr.replay(http_get, trace).stdout == recorded.stdout


def test_a_body_cut_short_by_the_server_replays_the_same(server: TestServer, http_get: Path, tmp_path: Path) -> None:
    trace = tmp_path / "cut.cbor"
    recorded = record(http_get, trace, server.url(f"/cut?n={BIG}"), "--summary")
    (end,) = [e.result for e in events(trace) if e.call == BODY_END_CALL]
    assert end["size"] < BIG
    replayed = rr.replay(http_get, trace)
    assert (replayed.exit_status, replayed.stdout) == (recorded.exit_status, recorded.stdout), replayed.message


def test_a_chunked_body_cut_short_within_the_threshold_replays_the_same(server: TestServer, http_get: Path,
                                                                         tmp_path: Path) -> None:
    """A body of unknown length is held back, but its head reaches the guest at once: cut short
    before the threshold, the trace has that head, then the failure (it replayed the failure at
    the head: 121)."""
    trace = tmp_path / "chunked-cut.cbor"
    recorded = record(http_get, trace, server.url("/chunked-cut?n=2000"))
    assert recorded.exit_status == 1 and b"status 200" in recorded.stdout, recorded.message
    (end,) = [e.result for e in events(trace) if e.call == BODY_END_CALL]
    assert end["error"] is not None
    replayed = rr.replay(http_get, trace)
    assert (replayed.exit_status, replayed.stdout) == (recorded.exit_status, recorded.stdout), replayed.message


def test_body_redaction_holds_the_body_whole_so_no_secret_is_split(server: TestServer, tmp_path: Path) -> None:
    """A match may straddle two pieces: with --redact-body nothing is streamed, and the secret
    (placed across a 64 KiB boundary, where pieces would be cut) is gone from the trace."""
    body = bytearray(pattern_bytes(BIG).replace(b"s", b"."))
    secret = b"token=s3cretvalue;"
    body[65536 - 8:65536 - 8 + len(secret)] = secret
    trace = tmp_path / "redacted.cbor"
    recorded = rr.record(guests.c_guest("http_post"), trace, [server.url("/echo")], stdin=bytes(body),
                         allow_http=["127.0.0.1"], redaction=Redaction(body=("token=([^;]*)",)))
    assert recorded.exit_status == 0
    got = events(trace)
    assert not [e for e in got if e.call == BODY_CALL]
    assert b"s3cretvalue" not in trace.read_bytes()
    (rec,) = flow_records(trace)
    assert b"token=[REDACTED];" in rec["response"]["body"]


def test_export_and_tools_read_a_streamed_trace(server: TestServer, http_get: Path, tmp_path: Path) -> None:
    url = server.url(f"/bytes?n={BIG}")
    one, two = tmp_path / "one.cbor", tmp_path / "two.cbor"
    for trace in (one, two):
        assert record(http_get, trace, url, "--summary").exit_status == 0
    env = {**os.environ, "RR_HTTP_STREAM_ABOVE": str(ABOVE)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*RR, *args], capture_output=True, cwd=guests.REPO, env=env, timeout=120)

    har = cli("har", str(one), "-o", str(tmp_path / "t.har"))
    assert har.returncode == 0, har.stderr
    (entry,) = json.loads((tmp_path / "t.har").read_text())["log"]["entries"]
    assert entry["response"]["content"]["size"] == BIG and entry["response"]["status"] == 200
    inspected = cli("inspect", str(one))
    assert inspected.returncode == 0 and f"HTTP GET {url} -> 200 OK".encode() in inspected.stdout
    assert b"streamed" in inspected.stdout
    assert cli("convert", str(one), str(tmp_path / "one.jsonl")).returncode == 0
    same = cli("diff", str(one), str(tmp_path / "one.jsonl"))
    assert same.returncode == 0 and b"traces are equal" in same.stdout, same.stdout
    diffed = cli("diff", str(one), str(two))
    assert diffed.returncode in (0, 1), diffed.stderr
    # The same body cut into other pieces is the same exchange; another byte is not.
    recut, changed = tmp_path / "recut.cbor", tmp_path / "changed.cbor"
    _rewrite(one, recut, lambda pieces: [b"".join(pieces[i:i + 3]) for i in range(0, len(pieces), 3)])
    _rewrite(one, changed, lambda pieces: [pieces[0][:-1] + b"?", *pieces[1:]])
    assert cli("diff", str(one), str(recut)).returncode == 0
    differs = cli("diff", str(one), str(changed))
    assert differs.returncode == 1 and b"HTTP" in differs.stdout, differs.stdout
    again = cli("replay", str(http_get), str(one), "--component-changed")
    assert again.returncode == 0, again.stderr


def test_kill_9_during_a_streamed_download_keeps_every_piece(server: TestServer, http_get: Path,
                                                              tmp_path: Path) -> None:
    trace = tmp_path / "killed.cbor"
    env = {**os.environ, "RR_HTTP_STREAM_ABOVE": str(ABOVE)}
    proc = subprocess.Popen([*RR, "record", str(http_get), "-t", str(trace), "--allow-http", "127.0.0.1", "--",
                             server.url(f"/bytes?n={256 << 20}"), "--summary"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=guests.REPO, env=env)
    try:
        for _ in range(1200):   # bounded: at most ~120 s
            if proc.poll() is not None:
                break
            with_pieces = trace.exists() and sum(e.call == BODY_CALL for e in _readable(trace)) >= 8
            if with_pieces:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the recording ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    pieces = [e.result for e in _readable(trace) if e.call == BODY_CALL]
    assert len(pieces) >= 8 and pattern_bytes(256 << 20).startswith(b"".join(pieces))
    replayed = rr.replay(http_get, trace)
    assert replayed.exit_status == 122 and "incomplete" in replayed.message, replayed.message


def _rewrite(source: Path, target: Path, recut) -> None:  # type: ignore[no-untyped-def]
    """`source` with its body pieces replaced by `recut(pieces)`, written where the last one was."""
    from rr.trace import Event, TraceWriter
    with open_trace(source) as reader:
        got = list(reader)
        header, outcome = reader.header, reader.outcome
    pieces = [e.result for e in got if e.call == BODY_CALL]
    args = next(e.args for e in got if e.call == BODY_CALL)
    last = max(i for i, e in enumerate(got) if e.call == BODY_CALL)
    with TraceWriter(target) as w:
        w.write_header(header)
        for i, e in enumerate(got):
            if e.call != BODY_CALL:
                w.write_event(e)
            elif i == last:
                for piece in recut(pieces):
                    w.write_event(Event(BODY_CALL, args, piece))
        w.write_outcome(outcome)


def _readable(trace: Path) -> list:
    """The events of a trace being written (or cut short): up to its torn end."""
    with open_trace(trace) as reader:
        return list(reader)
