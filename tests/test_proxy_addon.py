"""The embedded mitmproxy's record and replay addons, end to end on loopback.

Real mitmproxy, real HTTP(S) servers on 127.0.0.1, and http.client sending absolute-form
requests to the proxy the way rr's host does.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from httpservers import (
    CHUNKS,
    GZIP_BODY,
    PLAIN_BODY,
    Fetched,
    RefusingPort,
    TestServer,
    TLSFiles,
    fetch_direct,
    fetch_via_proxy,
    make_tls_files,
    pattern_bytes,
)
from proxy_addon import ReplayAddon
from proxy_addon.errors import classify
from rr.proxy import EmbeddedProxy


class Sink:
    """A thread-safe on_flow callback: the proxy thread appends, the test thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict] = []

    def __call__(self, record: dict) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[dict]:
        with self._lock:
            return list(self._records)

    def by_id(self, flow_id: str) -> dict:
        matches = [r for r in self.records if r["id"] == flow_id]
        assert len(matches) == 1, f"expected one record for flow {flow_id}, got {len(matches)}"
        return matches[0]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mitmproxy-confdir")


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as s:
        yield s


@pytest.fixture
def tls_server(tls: TLSFiles) -> Iterator[TestServer]:
    with TestServer(tls) as s:
        yield s


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def recorder(sink: Sink, tls: TLSFiles, confdir: Path) -> Iterator[EmbeddedProxy]:
    with EmbeddedProxy("record", on_flow=sink, extra_ca=tls.ca_cert, confdir=confdir) as proxy:
        yield proxy


def replayer(records: list[dict], confdir: Path) -> EmbeddedProxy:
    return EmbeddedProxy("replay", flows=records, confdir=confdir)


# --- record mode -----------------------------------------------------------------------


def test_get_is_forwarded_and_recorded_without_the_flow_header(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/plain"), flow_id="1")
    assert (got.status, got.body, got.header("x-rr-error")) == (200, PLAIN_BODY, None)
    [(method, path, server_headers, _)] = server.requests
    assert (method, path) == ("GET", "/plain")
    assert not any(name.lower() == "x-rr-flow" for name, _ in server_headers)

    rec = sink.by_id("1")
    assert rec["request"]["method"] == "GET"
    assert rec["request"]["url"] == server.url("/plain")
    assert rec["request"]["http_version"] == "HTTP/1.1"
    assert [b"x-rr-flow"] not in [[n.lower()] for n, _ in rec["request"]["headers"]]
    assert [b"Host", f"127.0.0.1:{server.port}".encode()] in rec["request"]["headers"]
    assert rec["response"]["status"] == 200 and rec["response"]["reason"] == "OK"
    assert rec["response"]["body"] == PLAIN_BODY
    assert [b"Content-Type", b"text/plain"] in rec["response"]["headers"]
    assert rec["error"] is None
    t = rec["timings"]
    assert t["start"] <= t["request_end"] <= t["response_start"] <= t["end"]


def test_a_client_without_the_runs_credentials_gets_407_and_is_not_recorded(
        recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    refused = fetch_via_proxy(recorder.port, server.url("/plain"), flow_id="1")   # a bare port: no credentials
    assert refused.status == 407 and refused.header("Proxy-Authenticate") == 'Basic realm="rr"'
    got = fetch_via_proxy(recorder, server.url("/plain"), flow_id="2")
    assert got.status == 200
    assert [p for _, p, _, _ in server.requests] == ["/plain"]   # only the admitted one went upstream
    assert sink.by_id("2")["response"]["body"] == PLAIN_BODY
    assert [r["id"] for r in sink.records] == ["2"]
    assert recorder.gate.refused == 1
    assert not any(n.lower() == b"proxy-authorization" for n, _ in sink.by_id("2")["request"]["headers"])


def test_post_body_reaches_server_and_is_recorded(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    body = b"name=rr&payload=" + bytes(range(256))
    got = fetch_via_proxy(recorder, server.url("/echo"), method="POST", body=body, flow_id="7",
                          headers={"Content-Type": "application/octet-stream"})
    assert (got.status, got.body, got.header("x-method")) == (200, body, "POST")
    assert server.requests[0][3] == body
    rec = sink.by_id("7")
    assert rec["request"]["body"] == body and rec["response"]["body"] == body


def test_latin1_header_bytes_are_recorded_losslessly(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    fetch_via_proxy(recorder, server.url("/plain"), flow_id="1", headers={"x-latin": "caf\xe9"})
    assert [b"x-latin", b"caf\xe9"] in sink.by_id("1")["request"]["headers"]


def test_404_is_a_server_response_not_an_error(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/status/404"), flow_id="1")
    assert (got.status, got.header("x-rr-error")) == (404, None)
    rec = sink.by_id("1")
    assert rec["response"]["status"] == 404 and rec["error"] is None


def test_real_upstream_502_is_not_marked_as_proxy_error(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/status/502"), flow_id="1")
    assert (got.status, got.header("x-rr-error"), got.body) == (502, None, b"status 502\n")
    assert sink.by_id("1")["error"] is None


def test_redirect_is_passed_through_not_followed(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/redirect"), flow_id="1")
    assert (got.status, got.header("Location")) == (302, "/plain")
    assert [path for _, path, _, _ in server.requests] == ["/redirect"]


def test_chunked_body_is_recorded_dechunked(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/chunked"), flow_id="1")
    assert got.body == b"".join(CHUNKS)
    rec = sink.by_id("1")
    assert rec["response"]["body"] == b"".join(CHUNKS)
    assert [b"Transfer-Encoding", b"chunked"] in rec["response"]["headers"]


def test_gzip_arrives_still_encoded_and_identical_to_a_direct_fetch(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    direct = fetch_direct(server.url("/gzip"))
    proxied = fetch_via_proxy(recorder, server.url("/gzip"), flow_id="1")
    assert proxied.header("Content-Encoding") == "gzip"
    assert proxied.body == direct.body == GZIP_BODY
    assert sink.by_id("1")["response"]["body"] == GZIP_BODY


def test_binary_body_with_every_byte_value(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/bytes?n=4096"), flow_id="1")
    assert got.body == pattern_bytes(4096) and set(got.body) == set(range(256))
    assert sink.by_id("1")["response"]["body"] == pattern_bytes(4096)


def test_20_mb_body_is_forwarded_and_recorded_whole(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    n = 20 * 1024 * 1024
    got = fetch_via_proxy(recorder, server.url(f"/bytes?n={n}"), flow_id="1")
    expected = hashlib.sha256(pattern_bytes(n)).hexdigest()
    assert len(got.body) == n and hashlib.sha256(got.body).hexdigest() == expected
    assert hashlib.sha256(sink.by_id("1")["response"]["body"]).hexdigest() == expected


def test_https_upstream_verified_with_extra_ca(recorder: EmbeddedProxy, sink: Sink, tls_server: TestServer, tls: TLSFiles) -> None:
    url = tls_server.url("/plain")
    assert url.startswith("https://")
    got = fetch_via_proxy(recorder, url, flow_id="1")
    assert (got.status, got.body, got.header("x-rr-error")) == (200, PLAIN_BODY, None)
    assert got.body == fetch_direct(url, ca=tls.ca_cert).body
    assert sink.by_id("1")["request"]["url"] == url


def test_extra_ca_is_bundled_with_the_system_file_without_a_ca_directory(
    sink: Sink, tls: TLSFiles, tls_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))  # read by ssl.get_default_verify_paths
    with EmbeddedProxy("record", on_flow=sink, extra_ca=tls.ca_cert, confdir=tmp_path) as proxy:
        assert fetch_via_proxy(proxy, tls_server.url("/plain"), flow_id="1").body == PLAIN_BODY
    bundle = (tmp_path / "rr-upstream-trust.pem").read_bytes()
    assert tls.ca_cert.read_bytes() in bundle and bundle.count(b"BEGIN CERTIFICATE") > 10


def test_refused_port_gives_error_502(recorder: EmbeddedProxy, sink: Sink) -> None:
    with RefusingPort() as refusing:
        got = fetch_via_proxy(recorder, f"http://127.0.0.1:{refusing.port}/x", flow_id="1")
    assert (got.status, got.header("x-rr-error")) == (502, "refused")
    assert "111" in (got.header("x-rr-error-message") or "")
    rec = sink.by_id("1")
    assert rec["response"] is None and rec["error"]["kind"] == "refused"


def test_connection_reset_gives_error_502(recorder: EmbeddedProxy, sink: Sink, server: TestServer) -> None:
    got = fetch_via_proxy(recorder, server.url("/reset"), flow_id="1")
    assert (got.status, got.header("x-rr-error")) == (502, "reset")
    assert sink.by_id("1")["error"]["kind"] == "reset"


def test_untrusted_server_certificate_gives_tls_error(sink: Sink, confdir: Path, tls_server: TestServer) -> None:
    with EmbeddedProxy("record", on_flow=sink, confdir=confdir) as proxy:  # no extra CA
        got = fetch_via_proxy(proxy, tls_server.url("/plain"), flow_id="1")
    assert (got.status, got.header("x-rr-error")) == (502, "tls")
    assert "certificate" in (got.header("x-rr-error-message") or "").lower()
    assert sink.by_id("1")["error"]["kind"] == "tls"


@pytest.mark.parametrize(
    ("message", "kind"),
    [  # messages as mitmproxy 12 reports them on this platform
        ("[Errno -2] Name or service not known", "dns"),
        ("[Errno 111] Connect call failed ('127.0.0.1', 1)", "refused"),
        ("server closed connection", "reset"),
        ("Certificate verify failed: unable to get local issuer certificate", "tls"),
        ("The remote server does not speak TLS.", "tls"),
        ("[Errno 110] Connection timed out", "timeout"),
        ("Cannot parse HTTP response: bad status line", "protocol"),
        ("something new", "other"),
    ],
)
def test_error_kinds(message: str, kind: str) -> None:
    # DNS failure is not provoked in tests: that would query a real resolver.
    assert classify(message) == kind


# --- replay mode -----------------------------------------------------------------------

REPLAYED_PATHS = ["/plain", "/status/404", "/redirect", "/chunked", "/gzip", "/bytes?n=70000", "/status/502", "/reset"]


def _record_session(recorder: EmbeddedProxy, server: TestServer, tls_server: TestServer, refusing: int) -> list[tuple[str, str, bytes | None, Fetched]]:
    requests: list[tuple[str, str, bytes | None]] = [("GET", server.url(p), None) for p in REPLAYED_PATHS]
    requests += [("POST", server.url("/echo"), b"posted body"),
                 ("GET", tls_server.url("/plain"), None),
                 ("GET", f"http://127.0.0.1:{refusing}/", None)]
    return [(str(i), url, body, fetch_via_proxy(recorder, url, method=method, body=body, flow_id=str(i)))
            for i, (method, url, body) in enumerate(requests, start=1)]


def test_replay_gives_identical_responses_with_servers_stopped(sink: Sink, tls: TLSFiles, confdir: Path) -> None:
    with (RefusingPort() as refusing, TestServer() as server, TestServer(tls) as tls_server,
          EmbeddedProxy("record", on_flow=sink, extra_ca=tls.ca_cert, confdir=confdir) as recorder):
        recorded = _record_session(recorder, server, tls_server, refusing.port)
    # every server is gone now: only the records can answer
    with replayer(sink.records, confdir) as proxy:
        for flow_id, url, body, original in recorded:
            method = "POST" if body is not None else "GET"
            again = fetch_via_proxy(proxy, url, method=method, body=body, flow_id=flow_id)
            assert again == original, f"flow {flow_id} {url}"
        assert isinstance(proxy.addon, ReplayAddon)
        assert proxy.addon.mismatches == [] and proxy.addon.unused() == []
    assert {rec["error"]["kind"] for rec in sink.records if rec["error"]} == {"reset", "refused"}


def test_replay_opens_no_connection_to_a_live_server(sink: Sink, recorder: EmbeddedProxy, server: TestServer, confdir: Path) -> None:
    fetch_via_proxy(recorder, server.url("/plain"), flow_id="1")
    recorder.stop()
    before = server.connections
    with replayer(sink.records, confdir) as proxy:
        assert fetch_via_proxy(proxy, server.url("/plain"), flow_id="1").body == PLAIN_BODY
        # unknown id and URL: must not fall through to the (reachable) server either
        miss = fetch_via_proxy(proxy, server.url("/echo"), method="POST", body=b"x", flow_id="2")
    assert (miss.status, miss.header("x-rr-mismatch")) == (502, "1")
    assert server.connections == before


def test_replay_refuses_a_client_without_the_runs_credentials(sink: Sink, recorder: EmbeddedProxy,
                                                              server: TestServer, confdir: Path) -> None:
    fetch_via_proxy(recorder, server.url("/plain"), flow_id="1")
    recorder.stop()
    with replayer(sink.records, confdir) as proxy:
        assert fetch_via_proxy(proxy.port, server.url("/plain"), flow_id="1").status == 407
        assert fetch_via_proxy(proxy.port, server.url("/other"), flow_id="2").status == 407
        assert isinstance(proxy.addon, ReplayAddon)
        # neither consumed the record nor counted as a mismatch
        assert proxy.addon.mismatches == [] and [r["id"] for r in proxy.addon.unused()] == ["1"]
        assert fetch_via_proxy(proxy, server.url("/plain"), flow_id="1").body == PLAIN_BODY
        assert proxy.addon.unused() == []


def test_mismatch_is_answered_502_and_diffed_against_the_same_id(sink: Sink, recorder: EmbeddedProxy, server: TestServer, confdir: Path) -> None:
    fetch_via_proxy(recorder, server.url("/echo"), method="POST", body=b"hello", flow_id="1", headers={"x-a": "1"})
    fetch_via_proxy(recorder, server.url("/echo"), method="POST", body=bytes(range(256)), flow_id="2")
    recorder.stop()
    with replayer(sink.records, confdir) as proxy:
        got = fetch_via_proxy(proxy, server.url("/echo"), method="POST", body=b"hallo", flow_id="1", headers={"x-a": "2"})
        fetch_via_proxy(proxy, server.url("/echo"), method="POST", body=bytes(range(255)), flow_id="2")
        fetch_via_proxy(proxy, server.url("/nowhere"), flow_id="9")
        addon = proxy.addon
    assert isinstance(addon, ReplayAddon)
    assert (got.status, got.header("x-rr-mismatch"), got.header("x-rr-error")) == (502, "1", None)
    first, second, third = addon.mismatches
    assert first["closest_id"] == "1"
    assert [d["field"] for d in first["differences"]] == ["header", "body"]
    assert first["differences"][0] == {"field": "header", "name": b"x-a", "recorded": [b"1"], "replayed": [b"2"]}
    assert second["closest_id"] == "2" and [d["field"] for d in second["differences"]] == ["header", "body"]
    assert third["closest_id"] is None
    diff = addon.format_diff().splitlines()
    assert diff[0] == f"flow 1: POST {server.url('/echo')}: differs from recorded flow 1"
    assert "  header x-a: recorded '1', now '2'" in diff
    assert "  body: recorded 'hello', now 'hallo'" in diff
    assert any(line.startswith("  body: recorded 256 bytes sha256:") and "now 255 bytes sha256:" in line for line in diff)
    assert diff[-1] == f"flow 9: GET {server.url('/nowhere')}: no recorded request with this id or this method and URL"
    assert "differs from recorded flow 1" in got.body.decode()
    assert {r["id"] for r in addon.unused()} == {"1", "2"}


def test_replay_ignores_hop_by_hop_and_rr_headers(sink: Sink, recorder: EmbeddedProxy, server: TestServer, confdir: Path) -> None:
    fetch_via_proxy(recorder, server.url("/plain"), flow_id="1")
    recorder.stop()
    with replayer(sink.records, confdir) as proxy:
        got = fetch_via_proxy(proxy, server.url("/plain"), flow_id="1",
                              headers={"Connection": "keep-alive", "Keep-Alive": "timeout=5", "x-rr-debug": "1"})
        assert got.body == PLAIN_BODY and proxy.addon.mismatches == []  # type: ignore[union-attr]


def test_unused_lists_records_never_requested(sink: Sink, recorder: EmbeddedProxy, server: TestServer, confdir: Path) -> None:
    for i in ("1", "2", "3"):
        fetch_via_proxy(recorder, server.url("/plain"), flow_id=i)
    recorder.stop()
    with replayer(sink.records, confdir) as proxy:
        fetch_via_proxy(proxy, server.url("/plain"), flow_id="2")
        assert [r["id"] for r in proxy.addon.unused()] == ["1", "3"]  # type: ignore[union-attr]


def test_replay_rejects_duplicate_ids() -> None:
    rec = {"id": "1", "request": {}, "response": None, "error": None, "timings": {}}
    with pytest.raises(ValueError, match="duplicate"):
        ReplayAddon([rec, dict(rec)])


# --- lifecycle ---------------------------------------------------------------------------


def test_stop_is_idempotent_and_frees_the_port(sink: Sink, confdir: Path) -> None:
    proxy = EmbeddedProxy("record", on_flow=sink, confdir=confdir).start()
    port = proxy.port
    proxy.stop()
    proxy.stop()
    with pytest.raises(ConnectionRefusedError):
        fetch_via_proxy(port, "http://127.0.0.1:1/", timeout=5)


def test_proxies_running_at_once_keep_their_own_flows_and_options(
        sink: Sink, recorder: EmbeddedProxy, confdir: Path, server: TestServer, tls_server: TestServer,
        tls: TLSFiles) -> None:
    """mitmproxy's context is per master: each proxy's connections reach its own addons and use
    its own options (here the upstream trust), whichever proxy was created last."""
    other_sink = Sink()
    with EmbeddedProxy("record", on_flow=other_sink, confdir=confdir) as other, \
            replayer([], confdir) as third:
        assert len({recorder.port, other.port, third.port}) == 3
        for _ in range(2):  # the same connection order each way round
            assert fetch_via_proxy(recorder, tls_server.url("/plain"), flow_id="1").body == PLAIN_BODY
            assert fetch_via_proxy(other, tls_server.url("/plain"), flow_id="2").header("x-rr-error") == "tls"
            assert fetch_via_proxy(third, server.url("/plain"), flow_id="3").header("x-rr-mismatch") == "1"
            # one proxy's credentials are refused by another
            assert fetch_via_proxy(other.port, server.url("/plain"), flow_id="4",
                                   headers={"Proxy-Authorization": recorder.credentials}).status == 407
    assert [r["id"] for r in sink.records] == ["1", "1"] and all(r["error"] is None for r in sink.records)
    assert [r["id"] for r in other_sink.records] == ["2", "2"]
    assert all(r["error"]["kind"] == "tls" for r in other_sink.records)


def test_dump_and_verbose_write_to_stderr_never_stdout(sink: Sink, confdir: Path, server: TestServer, capfd: pytest.CaptureFixture[str]) -> None:
    with EmbeddedProxy("record", on_flow=sink, confdir=confdir, dump=True, verbose=True) as proxy:
        fetch_via_proxy(proxy, server.url("/plain"), flow_id="5")
    out, err = capfd.readouterr()
    assert out == ""
    assert f"rr-proxy [5] GET {server.url('/plain')} -> 200 10B" in err


def test_web_ui_is_served_with_its_token(sink: Sink, confdir: Path, server: TestServer) -> None:
    with EmbeddedProxy("record", on_flow=sink, confdir=confdir, web=True) as proxy:
        assert proxy.web_url is not None and proxy.web_url.startswith("http://127.0.0.1:")
        assert "token=" in proxy.web_url
        fetch_via_proxy(proxy, server.url("/plain"), flow_id="1")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(proxy.web_url, timeout=10) as page:
            assert page.status == 200 and b"mitmproxy" in page.read().lower()
    assert sink.by_id("1")["response"]["body"] == PLAIN_BODY
    with pytest.raises(urllib.error.URLError, match="Connection refused"):  # stop() closed the web port too
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(proxy.web_url, timeout=5)
