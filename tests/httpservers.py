"""Real loopback HTTP/HTTPS servers and a plain http.client client for tests.

Nothing here is mocked: servers are `http.server` instances on 127.0.0.1 in daemon
threads, TLS uses a CA and server certificate generated at test time with
`cryptography`, and the client speaks HTTP/1.1 over a real socket.

Routes of `TestServer` (GET unless said otherwise):
  /plain                 200 text/plain "hello, rr\n"
  /echo       (any)      200, body = request body, x-method = request method
  /chunked               200, Transfer-Encoding: chunked, several chunks
  /trailers              the same chunks, then a trailer field (x-checksum) after the last one
  /gzip                  200, Content-Encoding: gzip (body sent compressed)
  /bytes?n=N             200, N bytes of every value 0..255 repeated (binary, large)
  /chunked-bytes?n=N     the same N bytes, Transfer-Encoding: chunked (64 KiB chunks)
  /cut?n=N               content-length N, then N // 2 of those bytes and the connection closes
  /chunked-cut?n=N       chunked, N // 2 bytes in one chunk, then the connection closes (no last chunk)
  /status/N              status N, small text body
  /redirect              302 to /plain
  /slow?s=SECONDS        sleeps, then 200 "slow"
  /reset                 reads the request, then closes with a TCP RST
"""

from __future__ import annotations

import datetime
import gzip
import http.client
import http.server
import ipaddress
import socket
import socketserver
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLAIN_BODY = b"hello, rr\n"
CHUNKS = [b"first chunk\n", b"second\n", b"x" * 5000, b"last\n"]
GZIP_PLAINTEXT = b"compressible text " * 200
# mtime=0 makes the compressed bytes deterministic, so a direct fetch and a
# fetch through the proxy can be compared byte for byte.
GZIP_BODY = gzip.compress(GZIP_PLAINTEXT, mtime=0)
_PATTERN = bytes(range(256)) * 4096  # 1 MiB building block for /bytes


def pattern_bytes(n: int) -> bytes:
    """The exact body /bytes?n=N serves."""
    whole, rest = divmod(n, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus delayed
    # ACK adds ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep test output (and stdout) clean

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _bytes_head(self, length: int | None) -> None:
        """A 200 of application/octet-stream: `length` bytes, or chunked (None)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _cut(self) -> None:
        """The connection ends here, whatever the head promised."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.server.lock:
            self.server.requests.append((self.command, self.path, list(self.headers.items()), body))
        path = url.path
        if path == "/plain":
            self._send(200, PLAIN_BODY, {"Content-Type": "text/plain"})
        elif path == "/echo":
            self._send(200, body, {"Content-Type": "application/octet-stream", "x-method": self.command})
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/trailers":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "x-checksum")
            self.end_headers()
            for chunk in CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\nx-checksum: %d\r\n\r\n" % sum(map(len, CHUNKS)))
        elif path == "/gzip":
            self._send(200, GZIP_BODY, {"Content-Type": "text/plain", "Content-Encoding": "gzip"})
        elif path == "/bytes":
            n = int(query.get("n", "256"))
            self._bytes_head(n)
            remaining = n
            while remaining:  # bounded: remaining strictly decreases
                block = _PATTERN[: min(remaining, len(_PATTERN))]
                self.wfile.write(block)
                remaining -= len(block)
        elif path == "/chunked-bytes":
            n = int(query.get("n", "256"))
            self._bytes_head(None)
            data = pattern_bytes(n)
            for at in range(0, n, 65536):
                chunk = data[at:at + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/cut":
            n = int(query.get("n", "256"))
            self._bytes_head(n)
            self.wfile.write(pattern_bytes(n // 2))
            self._cut()
        elif path == "/chunked-cut":
            n = int(query.get("n", "256"))
            self._bytes_head(None)
            self.wfile.write(b"%x\r\n%s\r\n" % (n // 2, pattern_bytes(n // 2)))
            self._cut()
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            self._send(status, f"status {status}\n".encode(), {"Content-Type": "text/plain"})
        elif path == "/cookie":   # a credential in a response header (redaction tests)
            self._send(200, b"cookie set\n", {"Content-Type": "text/plain", "Set-Cookie": "session=s3cret; HttpOnly"})
        elif path == "/redirect":
            self._send(302, b"", {"Location": "/plain"})
        elif path == "/slow":
            time.sleep(float(query.get("s", "1")))
            self._send(200, b"slow", {"Content-Type": "text/plain"})
        elif path == "/reset":
            # SO_LINGER with timeout 0 makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        else:
            self._send(404, b"no such route\n", {"Content-Type": "text/plain"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class NoReverseLookup(http.server.ThreadingHTTPServer):
    """http.server without its start's reverse DNS lookup of the address (socket.getfqdn): for
    ::1 that query leaves the machine, and tests talk to loopback only."""

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Server(NoReverseLookup):

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        with self.lock:
            self.connections += 1  # counted before TLS: any TCP connect counts
        if self.tls is not None:
            sock.settimeout(10)
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                sock.close()  # a failed handshake is an expected test outcome
                raise
        return sock, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # client-side resets are part of the tests


class TestServer:
    """A loopback HTTP (or HTTPS, given `tls`) server in a daemon thread."""

    __test__ = False  # not a pytest test class

    def __init__(self, tls: "TLSFiles | None" = None) -> None:
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
        self._server = _Server(context)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.scheme = "https" if tls else "http"
        self.port: int = self._server.server_address[1]

    def url(self, path: str) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def connections(self) -> int:
        with self._server.lock:
            return self._server.connections

    @property
    def requests(self) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
        with self._server.lock:
            return list(self._server.requests)

    def start(self) -> "TestServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "TestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RefusingPort:
    """A port that refuses connections: bound but never listening (Linux answers RST),
    held for the lifetime of the object so no other process can take it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def __enter__(self) -> "RefusingPort":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._sock.close()


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """A self-signed CA and a server certificate for localhost/127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=7))

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rr test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(pem_key(server_key))
    return files


@dataclass(frozen=True)
class Fetched:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes  # de-chunked, never content-decoded

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def fetch_via_proxy(
    proxy: Any,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    flow_id: str | None = None,
    timeout: float = 30,
) -> Fetched:
    """One request in absolute form (`GET https://host/path HTTP/1.1`) to the proxy, the way
    rr's host sends it: plain HTTP to the proxy, the proxy does any upstream TLS.

    `proxy` is an EmbeddedProxy (its credentials are sent, as rr's host does) or a bare
    port (nothing is: a client other than rr's host)."""
    all_headers = dict(headers or {})
    if flow_id is not None:
        all_headers["x-rr-flow"] = flow_id
    if isinstance(proxy, int):
        port = proxy
    else:
        port = proxy.port
        all_headers["Proxy-Authorization"] = proxy.credentials
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        # http.client derives Host from an absolute URL, as a forward-proxy client must.
        conn.request(method, url, body=body, headers=all_headers)
        return _read(conn.getresponse())
    finally:
        conn.close()


def fetch_direct(url: str, *, method: str = "GET", body: bytes | None = None, ca: Path | None = None, timeout: float = 30) -> Fetched:
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body)
        return _read(conn.getresponse())
    finally:
        conn.close()


def _read(response: http.client.HTTPResponse) -> Fetched:
    return Fetched(response.status, response.reason, list(response.getheaders()), response.read())


def record_through_proxy(confdir: Path, plan: Callable[[TestServer, RefusingPort], list[dict[str, Any]]]) -> list[dict]:
    """Send `plan`'s requests (keyword arguments of fetch_via_proxy) one by one through a real
    record-mode EmbeddedProxy, with flow ids "1", "2", ...; the flow records, in id order."""
    from rr.proxy import EmbeddedProxy

    lock = threading.Lock()
    out: list[dict] = []

    def sink(rec: dict) -> None:
        with lock:
            out.append(rec)

    with TestServer() as server, RefusingPort() as refusing, EmbeddedProxy("record", on_flow=sink, confdir=confdir) as proxy:
        requests = plan(server, refusing)
        for i, request in enumerate(requests, start=1):
            fetch_via_proxy(proxy, **request, flow_id=str(i))
    with lock:
        assert len(out) == len(requests)
        return sorted(out, key=lambda r: int(r["id"]))
