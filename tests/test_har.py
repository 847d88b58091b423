"""HAR 1.2 and .mitm export of flow records recorded through the real embedded proxy."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from httpservers import GZIP_PLAINTEXT, PLAIN_BODY, pattern_bytes, record_through_proxy
from proxy_addon import flow_to_record, record_to_flow
from rr.har import records_to_har, records_to_mitm

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
BINARY_POST = bytes(range(256)) * 4


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One recorded session: text, gzip, binary, 404, binary POST, a DELETE with body, a refused port."""
    return record_through_proxy(tmp_path_factory.mktemp("confdir"), lambda server, refusing: [
        dict(url=server.url("/plain?a=1&b=two")),
        dict(url=server.url("/gzip")),
        dict(url=server.url("/bytes?n=3000")),
        dict(url=server.url("/status/404")),
        dict(method="POST", url=server.url("/echo"), body=BINARY_POST),
        dict(method="DELETE", url=server.url("/echo"), body=b"text body"),
        dict(url=f"http://127.0.0.1:{refusing.port}/down"),
    ])


def test_har_validates_against_the_har_1_2_schema(records: list[dict]) -> None:
    har = records_to_har(records)
    jsonschema.validate(json.loads(json.dumps(har)), SCHEMA)
    assert [e["request"]["method"] for e in har["log"]["entries"]] == ["GET", "GET", "GET", "GET", "POST", "DELETE", "GET"]


def test_har_schema_rejects_mitmproxys_raw_failed_entry(records: list[dict]) -> None:
    """The fix-up matters: mitmproxy's own output for a failed flow does not validate."""
    from mitmproxy.addons.savehar import SaveHar

    raw = SaveHar().make_har([record_to_flow(records[-1])])
    with pytest.raises(jsonschema.ValidationError, match="size"):
        jsonschema.validate(raw, SCHEMA)


def test_har_entries_carry_bodies_errors_and_ids(records: list[dict]) -> None:
    entries = records_to_har(records)["log"]["entries"]
    plain, gz, binary, missing, post, delete, failed = entries
    assert plain["response"]["content"]["text"] == PLAIN_BODY.decode()
    assert {"name": "b", "value": "two"} in plain["request"]["queryString"]
    assert gz["response"]["content"]["text"] == GZIP_PLAINTEXT.decode()  # HAR shows decoded text
    assert binary["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(binary["response"]["content"]["text"]) == pattern_bytes(3000)
    assert missing["response"]["status"] == 404
    assert post["request"]["postData"]["encoding"] == "base64"
    assert base64.b64decode(post["request"]["postData"]["text"]) == BINARY_POST
    assert delete["request"]["postData"]["text"] == "text body"
    assert failed["response"]["status"] == 0
    assert failed["response"]["content"] == {"size": 0, "mimeType": "", "text": ""}
    assert failed["response"]["_rrErrorKind"] == "refused"
    assert [e["comment"] for e in entries] == [f"rr flow {i}" for i in range(1, 8)]


def test_har_reads_back_with_mitmproxys_reader(records: list[dict], tmp_path: Path) -> None:
    from mitmproxy import io

    path = tmp_path / "flows.har"
    path.write_text(json.dumps(records_to_har(records)))
    flows = io.read_flows_from_paths([str(path)])
    assert [f.request.url for f in flows] == [r["request"]["url"] for r in records]
    assert flows[0].response.content == PLAIN_BODY
    assert flows[1].response.content == GZIP_PLAINTEXT  # re-encoded by the reader, same text
    assert flows[2].response.content == pattern_bytes(3000)
    assert flows[3].response.status_code == 404


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
