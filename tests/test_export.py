"""`rr har` / `rr flows` back ends: HTTP exchanges recorded through the real embedded proxy,
written into real traces as wasi:http/outgoing-handler.handle events, exported as HAR 1.2 and
as mitmproxy flow files, and read back by mitmproxy itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from httpservers import GZIP_PLAINTEXT, PLAIN_BODY, pattern_bytes, record_through_proxy
from rr.har import OutputError, OutputExistsError, export_har, export_mitm
from rr.merge import FLOW_CALL as HTTP_CALL
from rr.merge import flow_records
from rr.trace import ComponentInfo, Event, Header, Outcome, TraceError, TraceWriter

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
POST_BODY = b'{"name": "rr", "n": 1}'
TRACE_NAMES = ["t.cbor", "t.jsonl", "t.jsonl.gz"]
MITMDUMP = Path(sys.executable).parent / "mitmdump"


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One session through the record-mode proxy: text, binary, 404, gzip, a refused port, a POST."""
    return record_through_proxy(tmp_path_factory.mktemp("confdir"), lambda server, refusing: [
        dict(url=server.url("/plain")),
        dict(url=server.url("/bytes?n=5000")),
        dict(url=server.url("/status/404")),
        dict(url=server.url("/gzip")),
        dict(url=f"http://127.0.0.1:{refusing.port}/down"),
        dict(method="POST", url=server.url("/echo"), body=POST_BODY, headers={"content-type": "application/json"}),
    ])


def header() -> Header:
    return Header(rr_version="test", wasmtime_version="50.0.0", component=ComponentInfo("0" * 64, 1, "http_get.wasm"),
                  argv=["http_get.wasm"], env=[], dirs=[], start_time=time.time())


def http_event(rec: dict) -> Event:
    return Event(HTTP_CALL, [rec["id"], rec["request"]["method"], rec["request"]["url"]], rec)


def write_trace(path: Path, records: list[dict], *, outcome: bool = True) -> Path:
    """The flows as the host records them, between other calls; plus a request `handle`
    refused before any exchange (failed=True), which is not a flow."""
    with TraceWriter(path) as w:
        w.write_header(header())
        w.write_event(Event("wasi:random/random.get-random-u64", [], 7))
        w.write_event(Event(HTTP_CALL, ["0", "GET", "ftp://nowhere/"], ("HTTP-request-URI-invalid", None), failed=True))
        for i, rec in enumerate(records):
            w.write_event(http_event(rec))
            w.write_event(Event("wasi:clocks/monotonic-clock.now", [], 1000 + i))
        if outcome:
            w.write_outcome(Outcome.exit(0))
    return path


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_flow_records_are_the_http_events_in_order(records: list[dict], tmp_path: Path, name: str) -> None:
    assert flow_records(write_trace(tmp_path / name, records)) == records


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_har_export_validates_and_reads_back_in_mitmproxy(records: list[dict], tmp_path: Path, name: str) -> None:
    from mitmproxy import io

    out = tmp_path / "out.har"
    done = export_har(write_trace(tmp_path / name, records), out)
    assert (done.flows, done.failed, done.incomplete) == (6, 1, None)
    assert done.summary() == f"wrote 6 HTTP exchanges (1 failed) to {out}"
    har = json.loads(out.read_text())
    jsonschema.validate(har, SCHEMA)
    assert "comment" not in har["log"]
    assert [e["comment"] for e in har["log"]["entries"]] == [f"rr flow {i}" for i in range(1, 7)]
    assert har["log"]["entries"][4]["response"]["_rrErrorKind"] == "refused"

    flows = io.read_flows_from_paths([str(out)])
    assert [(f.request.method, f.request.url) for f in flows] == [
        (r["request"]["method"], r["request"]["url"]) for r in records]
    plain, binary, missing, gz, _refused, post = flows
    assert plain.response.content == PLAIN_BODY
    assert binary.response.content == pattern_bytes(5000)
    assert missing.response.status_code == 404
    assert gz.response.content == GZIP_PLAINTEXT
    assert post.request.content == POST_BODY and post.response.content == POST_BODY


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_mitm_export_reads_back_byte_exact(records: list[dict], tmp_path: Path, name: str) -> None:
    from mitmproxy import io

    from proxy_addon import flow_to_record

    out = tmp_path / "out.mitm"
    done = export_mitm(write_trace(tmp_path / name, records), out)
    assert (done.flows, done.failed) == (6, 1)
    with open(out, "rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert [flow_to_record(f) for f in flows] == records
    assert flows[4].error is not None and flows[4].response is None


def test_mitmdump_lists_the_exported_flows(records: list[dict], tmp_path: Path) -> None:
    out = tmp_path / "out.mitm"
    export_mitm(write_trace(tmp_path / "t.cbor", records), out)
    done = subprocess.run([str(MITMDUMP), "-n", "-r", str(out), "--set", f"confdir={tmp_path / 'conf'}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for path in ("/plain", "/bytes?n=5000", "/status/404", "/gzip", "/down", "/echo"):
        assert path in done.stdout, (path, done.stdout)


def test_a_trace_without_http_gives_an_empty_valid_har_with_a_note(tmp_path: Path) -> None:
    from mitmproxy import io

    trace = write_trace(tmp_path / "t.cbor", [])
    har_done = export_har(trace, tmp_path / "out.har")
    har = json.loads((tmp_path / "out.har").read_text())
    jsonschema.validate(har, SCHEMA)
    assert har["log"]["entries"] == []
    assert har["log"]["comment"] == "rr: the trace holds no HTTP exchanges"
    assert har_done.flows == 0
    assert har_done.summary() == f"the trace holds no HTTP exchanges: wrote an empty HAR to {tmp_path / 'out.har'}"

    mitm_done = export_mitm(trace, tmp_path / "out.mitm")
    assert mitm_done.flows == 0 and "empty flow file" in mitm_done.summary()
    assert io.read_flows_from_paths([str(tmp_path / "out.mitm")]) == []


@pytest.mark.parametrize("export,suffix", [(export_har, "har"), (export_mitm, "mitm")])
def test_an_existing_output_is_kept_unless_overwrite(records: list[dict], tmp_path: Path, export, suffix: str) -> None:
    trace = write_trace(tmp_path / "t.cbor", records)
    out = tmp_path / f"out.{suffix}"
    out.write_bytes(b"an earlier export")
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        export(trace, out)
    assert out.read_bytes() == b"an earlier export"

    assert export(trace, out, overwrite=True).flows == 6
    assert out.read_bytes() != b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out." + suffix, "t.cbor"]  # no temporary left


def corrupt_copy(trace: Path, dest: Path) -> Path:
    """A JSONL trace with its third flow's line replaced by garbage (not at the end: corrupt, not torn)."""
    lines = trace.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"3"' in line and HTTP_CALL.encode() in line)
    lines[index] = b'{"garbage'
    dest.write_bytes(b"\n".join(lines))
    return dest


@pytest.mark.parametrize("export,suffix", [(export_har, "har"), (export_mitm, "mitm")])
def test_a_corrupt_trace_raises_and_leaves_no_output(records: list[dict], tmp_path: Path, export, suffix: str) -> None:
    bad = corrupt_copy(write_trace(tmp_path / "t.jsonl", records), tmp_path / "bad.jsonl")
    with pytest.raises(TraceError, match="bad.jsonl"):
        flow_records(bad)
    out = tmp_path / f"out.{suffix}"
    with pytest.raises(TraceError):
        export(bad, out)
    assert not out.exists()

    out.write_bytes(b"an earlier export")
    with pytest.raises(TraceError):
        export(bad, out, overwrite=True)
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", f"out.{suffix}", "t.jsonl"]


def test_a_file_that_is_not_a_trace_raises_trace_error(tmp_path: Path) -> None:
    not_trace = tmp_path / "flows.har"
    not_trace.write_text('[{"log": 1}]')
    with pytest.raises(TraceError, match="not an rr trace"):
        export_har(not_trace, tmp_path / "out.har")
    assert not (tmp_path / "out.har").exists()


def test_an_http_event_without_a_flow_record_is_a_trace_error(tmp_path: Path) -> None:
    path = tmp_path / "t.cbor"
    with TraceWriter(path) as w:
        w.write_header(header())
        w.write_event(Event(HTTP_CALL, ["1", "GET", "http://127.0.0.1/"], {"id": "1", "request": "GET /"}))
        w.write_outcome(Outcome.exit(0))
    with pytest.raises(TraceError, match=r"event 0 .* 'request' is not a dict"):
        flow_records(path)


def test_a_recording_cut_short_exports_what_it_holds(records: list[dict], tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.cbor", records[:2], outcome=False)
    done = export_har(trace, tmp_path / "out.har")
    assert done.flows == 2 and done.incomplete is not None and "no outcome" in done.incomplete
    assert "the trace is incomplete" in done.summary()
    har = json.loads((tmp_path / "out.har").read_text())
    jsonschema.validate(har, SCHEMA)
    assert "incomplete" in har["log"]["comment"]


def test_missing_trace_and_unwritable_output(records: list[dict], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        export_har(tmp_path / "nope.cbor", tmp_path / "out.har")
    assert not (tmp_path / "out.har").exists()
    trace = write_trace(tmp_path / "t.cbor", records)
    with pytest.raises(OutputError, match="cannot create"):
        export_mitm(trace, tmp_path / "no-such-dir" / "out.mitm")
    with pytest.raises(OutputError, match="is the trace being exported"):
        export_har(trace, trace, overwrite=True)
    assert flow_records(trace) == records


def test_reading_flow_records_does_not_import_mitmproxy(records: list[dict], tmp_path: Path) -> None:
    """mitmproxy costs ~0.8 s to import: only the exporters' write paths may load it."""
    trace = write_trace(tmp_path / "t.cbor", records)
    code = ("import sys, rr.har, rr.merge; n = len(rr.merge.flow_records(sys.argv[1])); "
            "print(n, 'mitmproxy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(trace)], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["6", "False"], done.stderr


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_exports_list_exchanges_in_the_order_the_guest_made_them(records: list[dict], tmp_path: Path,
                                                                  name: str) -> None:
    """The trace holds flows in the order they finished (here: last request first)."""
    from mitmproxy import io

    trace = write_trace(tmp_path / name, list(reversed(records)))
    assert [r["id"] for r in flow_records(trace)] == ["6", "5", "4", "3", "2", "1"]
    export_har(trace, tmp_path / "out.har")
    har = json.loads((tmp_path / "out.har").read_text())
    assert [e["comment"] for e in har["log"]["entries"]] == [f"rr flow {i}" for i in range(1, 7)]
    export_mitm(trace, tmp_path / "out.mitm")
    assert [f.metadata["rr.flow"] for f in io.read_flows_from_paths([str(tmp_path / "out.mitm")])] == [
        str(i) for i in range(1, 7)]


def test_an_export_leaves_exactly_one_complete_file(records: list[dict], tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.cbor", records)
    for overwrite in (False, True):
        export_har(trace, tmp_path / "out.har", overwrite=overwrite)
        assert (tmp_path / "out.har").stat().st_nlink == 1   # the temporary name is gone
        jsonschema.validate(json.loads((tmp_path / "out.har").read_text()), SCHEMA)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.har", "t.cbor"]


def rr_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, text=True, timeout=60)


def test_cli_export_errors_are_one_line_with_the_usage_status(records: list[dict], tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.cbor", records)
    (tmp_path / "out.har").write_text("an earlier export")
    exists = rr_cli("har", str(trace), "-o", str(tmp_path / "out.har"))
    no_dir = rr_cli("flows", str(trace), "-o", str(tmp_path / "no-such-dir" / "out.mitm"))
    for done in (exists, no_dir):
        assert done.returncode == 125, done.stderr
        assert done.stderr.startswith("rr: ") and done.stderr.count("\n") == 1, done.stderr
    assert "use --force" in exists.stderr and "no-such-dir" in no_dir.stderr
    assert (tmp_path / "out.har").read_text() == "an earlier export"
    forced = rr_cli("har", str(trace), "-o", str(tmp_path / "out.har"), "--force")
    assert forced.returncode == 0 and forced.stderr == f"rr: wrote 6 HTTP exchanges (1 failed) to {tmp_path / 'out.har'}\n"
