"""rr/deferred.py: what the embedded proxy leaves unexecuted (TLS, WebSocket, QUIC and HTTP/3, the
command-line grammar, YAML) runs as an ordinary import would once anything uses it.

Each case is a fresh interpreter: in this one, other tests have imported mitmproxy already (and
then nothing is deferred)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

START_PROXY = """
    import sys
    from rr.proxy import EmbeddedProxy
    with EmbeddedProxy("record", on_flow=lambda record: None) as proxy:
        assert proxy.port
    for name in ("aioquic.quic.connection", "pylsqpack", "service_identity", "pyparsing.core", "ruamel.yaml.main",
                 "h2.connection", "zstandard.backend_c", "OpenSSL.crypto", "cryptography.x509", "wsproto.connection",
                 "tempfile"):
        assert name not in sys.modules, name   # left unexecuted by a proxy that ran
"""


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_forwarded_names_become_the_real_objects_once_used() -> None:
    out = python(START_PROXY + """
    from mitmproxy.addons import next_layer, tlsconfig
    from mitmproxy.proxy import layers
    from mitmproxy.proxy.layers import http as http_layers, quic
    from mitmproxy.proxy.layers.quic import _stream_layers
    # a use of one name runs the whole group: then every module holds the real objects
    assert tlsconfig.CipherSuite["AES_128_GCM_SHA256"] == 0x1301
    import aioquic.tls
    from mitmproxy.proxy.layers.http import _http3
    assert tlsconfig.CipherSuite is aioquic.tls.CipherSuite
    assert next_layer.ClientQuicLayer is layers.ClientQuicLayer is quic.ClientQuicLayer is _stream_layers.ClientQuicLayer
    assert isinstance(next_layer.ClientQuicLayer, type) and quic._stream_layers is _stream_layers
    assert http_layers.Http3Client is _http3.Http3Client
    from mitmproxy.net import encoding
    assert encoding.decode(encoding.encode(b"x" * 100, "zstd"), "zstd") == b"x" * 100
    from mitmproxy.proxy.layers.http import _http2
    assert _http2.h2.connection.H2Connection   # a name it does not forward: runs its group
    assert isinstance(http_layers.Http2Server, type) and http_layers.Http2Server is _http2.Http2Server and _http3.parse_h2_request_headers is _http2.parse_h2_request_headers
    assert list(tlsconfig.H3_ALPN) == ["h3"]
    from mitmproxy import command
    assert command.unquote("'a b'") == "a b" and "pyparsing.core" in sys.modules
    print("ok")
    """)
    assert out == "ok\n"


def test_importing_aioquic_directly_runs_the_group_first() -> None:
    out = python(START_PROXY + """
    from aioquic.quic.configuration import QuicConfiguration
    import aioquic.tls
    from mitmproxy.addons import tlsconfig
    assert QuicConfiguration().cipher_suites is None and tlsconfig.CipherSuite is aioquic.tls.CipherSuite
    assert sys.modules["aioquic.quic"].__spec__.origin.endswith("__init__.py")
    print("ok")
    """)
    assert out == "ok\n"


def test_tls_and_websocket_run_on_first_use_and_postponed_annotations_resolve() -> None:
    out = python(START_PROXY + """
    from mitmproxy import connection, http, websocket
    from mitmproxy.addons import next_layer, proxyserver
    from mitmproxy.proxy import layers
    from mitmproxy.proxy.layers import http as http_layers
    # the TLS layer's name, called by next_layer on a TLS ClientHello, runs the whole group
    assert next_layer.starts_like_tls_record(bytes.fromhex("160301")) is True
    import OpenSSL.SSL
    from mitmproxy import certs, tls
    from mitmproxy.proxy.layers import tls as tls_layers
    assert isinstance(next_layer.ServerTLSLayer, type) and next_layer.ServerTLSLayer is layers.ServerTLSLayer is tls_layers.ServerTLSLayer
    assert issubclass(sys.modules["mitmproxy.proxy.layers.quic._hooks"].QuicTlsData, tls.TlsData)
    assert http_layers.tls is tls_layers and "h1" not in next_layer.HTTP_ALPNS and b"http/1.1" in next_layer.HTTP_ALPNS
    # postponed annotations: the serializable dataclasses resolve them to the real classes
    server = connection.Server(address=("example.com", 443))
    assert connection.Server.from_state(server.get_state()).address == ("example.com", 443)
    assert [f.type for f in connection.Server._SerializableDataclass__fields() if f.name == "certificate_list"] \
        == [connection.Sequence[certs.Cert]]
    # WebSocket: wsproto's Opcode is real once used
    message = websocket.WebSocketMessage(1, True, b"hi")
    assert message.is_text and proxyserver.Opcode is websocket.Opcode is sys.modules["wsproto.frame_protocol"].Opcode
    assert isinstance(layers.WebsocketLayer, type) and "wsproto.connection" in sys.modules
    from mitmproxy.test import tflow
    flow = tflow.tflow(ws=True)
    flow.websocket.messages.append(message)
    assert http.HTTPFlow.from_state(flow.get_state()).websocket.messages[-1].content == b"hi"
    print("ok")
    """)
    assert out == "ok\n"


def test_anyio_files_run_on_first_use_as_anyio_would_have_them() -> None:
    out = python(START_PROXY + """
    import anyio

    async def main() -> bytes:
        async with anyio.TemporaryFile() as f:   # a forwarder's call runs the group
            await f.write(b"hi")
            await f.seek(0)
            return await f.read()

    assert anyio.run(main, backend="asyncio") == b"hi" and "tempfile" in sys.modules
    from anyio._core import _fileio, _tempfile
    assert anyio.Path is _fileio.Path and isinstance(anyio.Path, type) and anyio.mkstemp is _tempfile.mkstemp
    assert anyio.Path.__module__ == anyio.TemporaryFile.__module__ == anyio.mkstemp.__module__ == "anyio"
    assert anyio.run(anyio.Path(sys.executable).exists, backend="asyncio")
    print("ok")
    """)
    assert out == "ok\n"


def test_a_plain_http_exchange_leaves_tls_unexecuted() -> None:
    out = python("""
    import http.client, sys
    sys.path.insert(0, "tests")
    import httpservers
    from rr.proxy import EmbeddedProxy
    server = httpservers.TestServer().start()
    flows = []
    with EmbeddedProxy("record", on_flow=flows.append) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        conn.request("GET", server.url("/plain"), headers={"x-rr-flow": "1", "proxy-authorization": proxy.credentials})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, httpservers.PLAIN_BODY)
        conn.close()
    server.stop()
    assert len(flows) == 1 and "OpenSSL.crypto" not in sys.modules and "wsproto.connection" not in sys.modules
    print("ok")
    """)
    assert out == "ok\n"


def test_a_run_that_makes_no_request_starts_no_proxy(tmp_path: Path) -> None:
    """http_get without a URL imports wasi:http and prints its usage: record and replay import
    no mitmproxy (the proxy starts at the guest's first request)."""
    sys.path.insert(0, str(REPO / "tests"))
    import guests

    wasm, trace = str(guests.c_guest("http_get")), str(tmp_path / "usage.cbor")
    for argv in (["record", "--allow-http", "127.0.0.1", wasm, "-t", trace, "--"], ["replay", wasm, trace]):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "rr", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1 and "usage: http_get" in done.stderr, done.stderr[-500:]
        assert "| rr.session" in done.stderr and "mitmproxy" not in done.stderr, argv


def test_a_proxy_that_cannot_start_at_the_first_request_ends_the_run(tmp_path: Path) -> None:
    """The on-demand start fails (its confdir cannot be made): the run ends with the one line
    and status a failed start at launch gave, never an HTTP error handed to the guest (which
    the recording would keep as if an upstream had answered it)."""
    import os
    sys.path.insert(0, str(REPO / "tests"))
    import guests

    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file where the proxy's confdir should go\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(not_a_dir)}
    wasm, trace = str(guests.c_guest("http_get")), tmp_path / "t.cbor"
    done = subprocess.run([sys.executable, "-m", "rr", "record", "--allow-http", "127.0.0.1", wasm, "-t", str(trace),
                           "--", "http://127.0.0.1:9/"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 125, done.stderr
    assert done.stdout == "" and done.stderr == f"rr: {not_a_dir}/rr/mitmproxy: Not a directory\n"
