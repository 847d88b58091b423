"""HAR 1.2 and .mitm export of flow records recorded through the real embedded proxy."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest

from httpservers import (GZIP_BODY, GZIP_PLAINTEXT, PLAIN_BODY, TestServer, make_tls_files, pattern_bytes,
                         record_through_proxy)
from proxy_addon import flow_to_record, record_to_flow
from rr.har import records_to_har, records_to_mitm

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
BINARY_POST = bytes(range(256)) * 4
BAD_JSON = b'{"name": "\xff\xfe not UTF-8"}'


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One recorded session: text, gzip, binary, 404, binary POST, a DELETE with body, a refused
    port, and a JSON POST whose body is not UTF-8."""
    return record_through_proxy(tmp_path_factory.mktemp("confdir"), lambda server, refusing: [
        dict(url=server.url("/plain?a=1&b=two")),
        dict(url=server.url("/gzip")),
        dict(url=server.url("/bytes?n=3000")),
        dict(url=server.url("/status/404")),
        dict(method="POST", url=server.url("/echo"), body=BINARY_POST),
        dict(method="DELETE", url=server.url("/echo"), body=b"text body"),
        dict(url=f"http://127.0.0.1:{refusing.port}/down"),
        dict(method="PUT", url=server.url("/echo"), body=BAD_JSON, headers={"content-type": "application/json"}),
    ])


def test_har_validates_against_the_har_1_2_schema(records: list[dict]) -> None:
    har = records_to_har(records)
    jsonschema.validate(json.loads(json.dumps(har)), SCHEMA)
    assert [e["request"]["method"] for e in har["log"]["entries"]] == [
        "GET", "GET", "GET", "GET", "POST", "DELETE", "GET", "PUT"]
    assert har["log"]["creator"]["name"] == "rr"


def test_har_schema_rejects_mitmproxys_raw_failed_entry(records: list[dict]) -> None:
    """The fix-up matters: mitmproxy's own output for a failed flow does not validate."""
    from mitmproxy.addons.savehar import SaveHar

    raw = SaveHar().make_har([record_to_flow(records[6])])
    with pytest.raises(jsonschema.ValidationError, match="size"):
        jsonschema.validate(raw, SCHEMA)


def test_har_entries_carry_bodies_errors_and_ids(records: list[dict]) -> None:
    entries = records_to_har(records)["log"]["entries"]
    plain, gz, binary, missing, post, delete, failed, bad_json = entries
    assert plain["response"]["content"]["text"] == PLAIN_BODY.decode()
    assert "encoding" not in plain["response"]["content"]
    assert {"name": "b", "value": "two"} in plain["request"]["queryString"]
    assert binary["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(binary["response"]["content"]["text"]) == pattern_bytes(3000)
    assert missing["response"]["status"] == 404
    assert delete["request"]["postData"]["text"] == "text body"   # savehar skips DELETE bodies
    assert [e["comment"] for e in entries] == [f"rr flow {i}" for i in range(1, 9)]


def test_content_size_is_the_decoded_size(records: list[dict]) -> None:
    gz = records_to_har(records)["log"]["entries"][1]["response"]
    assert gz["content"]["text"] == GZIP_PLAINTEXT.decode()        # HAR shows decoded text
    assert gz["content"]["size"] == len(GZIP_PLAINTEXT)
    assert gz["bodySize"] == len(GZIP_BODY)                          # what crossed the wire
    assert gz["content"]["compression"] == len(GZIP_PLAINTEXT) - len(GZIP_BODY)


def test_a_failed_exchange_says_what_failed(records: list[dict]) -> None:
    """As Chrome and Firefox write them: status 0, an empty but valid content, `_error`."""
    failed = records_to_har(records)["log"]["entries"][6]
    response = failed["response"]
    assert response["status"] == 0
    assert response["content"] == {"size": 0, "mimeType": "", "text": ""}
    assert response["_error"].startswith("connection refused")
    assert records[6]["error"]["message"] in response["_error"]
    assert response["_rrErrorKind"] == "refused"
    assert failed["timings"]["connect"] == -1 and failed["timings"]["receive"] == 0


def test_har_reads_back_with_mitmproxys_reader(records: list[dict], tmp_path: Path) -> None:
    from mitmproxy import io

    path = tmp_path / "flows.har"
    path.write_text(json.dumps(records_to_har(records)))
    flows = io.read_flows_from_paths([str(path)])
    assert [f.request.url for f in flows] == [r["request"]["url"] for r in records]
    plain, gz, binary, missing, post, delete, failed, bad_json = flows
    assert plain.response.content == PLAIN_BODY
    assert gz.response.content == GZIP_PLAINTEXT  # re-encoded by the reader, same text
    assert binary.response.content == pattern_bytes(3000)
    assert missing.response.status_code == 404
    assert failed.response.status_code == 0 and failed.response.content == b""


def test_request_bodies_round_trip_through_mitmproxys_har_reader(records: list[dict], tmp_path: Path) -> None:
    """Binary (no content type: latin-1), text, and a JSON body that is not UTF-8."""
    from mitmproxy import io

    path = tmp_path / "flows.har"
    path.write_text(json.dumps(records_to_har(records)))
    flows = io.read_flows_from_paths([str(path)])
    assert flows[4].request.content == BINARY_POST
    assert flows[5].request.content == b"text body"
    assert flows[7].request.content == BAD_JSON
    assert flows[7].request.method == "PUT"


def test_records_survive_a_round_trip_through_mitmproxy_flows(records: list[dict]) -> None:
    for rec in records:
        assert flow_to_record(record_to_flow(rec)) == rec


def test_mitm_file_reads_back_byte_exact(records: list[dict], tmp_path: Path) -> None:
    from mitmproxy import io

    path = tmp_path / "flows.mitm"
    records_to_mitm(records, path)
    flows = io.read_flows_from_paths([str(path)])
    assert [flow_to_record(f) for f in flows] == records


def test_mitmdump_reads_the_mitm_file(records: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "flows.mitm"
    records_to_mitm(records, path)
    mitmdump = Path(sys.executable).parent / "mitmdump"
    done = subprocess.run([str(mitmdump), "-n", "-r", str(path), "--set", f"confdir={tmp_path / 'conf'}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "/plain?a=1&b=two" in done.stdout and "/bytes?n=3000" in done.stdout


# ---- timings ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Two HTTPS requests on one client connection (the second reuses the upstream connection),
    one plain-HTTP request, and one to an HTTPS server whose CA is not trusted, through a real
    record-mode proxy trusting a test CA."""
    from rr.proxy import EmbeddedProxy

    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    untrusted = make_tls_files(tmp_path_factory.mktemp("untrusted"))
    out: list[dict] = []
    lock = threading.Lock()

    def sink(rec: dict) -> None:
        with lock:
            out.append(rec)

    with TestServer(tls) as https, TestServer() as plain, TestServer(untrusted) as bad_tls, \
            EmbeddedProxy("record", on_flow=sink, confdir=tmp_path_factory.mktemp("conf"), extra_ca=tls.ca_cert) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        try:
            for flow_id in ("1", "2"):
                conn.request("GET", https.url("/plain"),
                             headers={"x-rr-flow": flow_id, "Proxy-Authorization": proxy.credentials})
                response = conn.getresponse()
                assert response.read() == PLAIN_BODY and response.status == 200
            conn.request("GET", plain.url("/plain"),
                         headers={"x-rr-flow": "3", "Proxy-Authorization": proxy.credentials})
            assert conn.getresponse().read() == PLAIN_BODY
            conn.request("GET", bad_tls.url("/plain"),
                         headers={"x-rr-flow": "4", "Proxy-Authorization": proxy.credentials})
            assert conn.getresponse().status == 502   # mitmproxy's answer for a failed upstream
        finally:
            conn.close()
        assert https.connections == 1
    with lock:
        return sorted(out, key=lambda r: int(r["id"]))


def test_har_timings_show_connect_and_tls_when_known(tls_records: list[dict]) -> None:
    har = records_to_har(tls_records)
    jsonschema.validate(har, SCHEMA)
    first, reused, plain, failed = (e["timings"] for e in har["log"]["entries"])
    assert first["ssl"] >= 0 and first["connect"] >= first["ssl"]   # HAR 1.2: connect includes ssl
    assert reused["connect"] == -1 and reused["ssl"] == -1           # the connection was reused
    assert plain["connect"] >= 0 and plain["ssl"] == -1              # plain HTTP on a new upstream
    assert failed["connect"] == -1 and failed["receive"] == 0          # mitmproxy keeps no times of it
    for entry, rec in zip(har["log"]["entries"], tls_records, strict=True):
        t = entry["timings"]
        assert entry["time"] == pytest.approx(sum(max(t[k], 0) for k in ("blocked", "dns", "connect", "send",
                                                                          "wait", "receive")))
        assert entry["time"] == pytest.approx(1000 * (rec["timings"]["end"] - rec["timings"]["start"]), abs=0.01)

def test_a_tls_failure_says_so_and_reads_back(tls_records: list[dict], tmp_path: Path) -> None:
    from mitmproxy import io

    entry = records_to_har(tls_records)["log"]["entries"][3]
    assert tls_records[3]["error"]["kind"] == "tls"
    assert entry["response"]["status"] == 0 and entry["response"]["_rrErrorKind"] == "tls"
    assert entry["response"]["_error"].startswith("TLS handshake failed: ")
    path = tmp_path / "flows.har"
    path.write_text(json.dumps(records_to_har(tls_records)))
    flows = io.read_flows_from_paths([str(path)])
    assert [f.request.url for f in flows] == [r["request"]["url"] for r in tls_records]
    assert flows[3].response.status_code == 0


def test_connect_timings_survive_the_mitm_file(tls_records: list[dict], tmp_path: Path) -> None:
    from mitmproxy import io

    assert {"connect_start", "connect_end", "tls_end"} <= tls_records[0]["timings"].keys()
    assert "connect_start" not in tls_records[1]["timings"]
    path = tmp_path / "flows.mitm"
    records_to_mitm(tls_records, path)
    assert [flow_to_record(f) for f in io.read_flows_from_paths([str(path)])] == tls_records
