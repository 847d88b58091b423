"""The embedded mitmproxy that carries the guest's outgoing HTTP, in record or replay mode.

rr's host sends every guest request as plain HTTP/1.1 in absolute form to 127.0.0.1:<port>
with an `x-rr-flow: <id>` header and the run's `credentials` (Proxy-Authorization; anything
without them gets a 407: proxy_addon/gate.py); mitmproxy does any upstream TLS. The proxy runs on its
own event loop in a thread of its own (`anyio.run` there, asyncio backend); the guest's and the CLI's
synchronous threads only start it and ask mitmproxy's thread-safe `shutdown`, never touching its
objects. mitmproxy is imported lazily, and only the parts rr's proxy uses (`_lean_imports`).
Any number of proxies can run in one process, each with its own options, addons and port:
see `_loop_local_ctx`.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import threading
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import asyncio

    from mitmproxy.master import Master
    from proxy_addon import FlowRecord, RecordAddon, ReplayAddon

START_TIMEOUT_S = 30.0
# Starts one at a time: two masters creating the CA in the same confdir at once could each write
# half of it. Running proxies do not wait on it.
_starting = threading.Lock()


def default_confdir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rr" / "mitmproxy"


def upstream_trust(extra_ca: Path | None, confdir: Path) -> dict[str, str | None]:
    """mitmproxy options that verify upstream TLS against the system trust store (+ extra_ca).

    mitmproxy's default is certifi's bundle, and the OpenSSL bundled with pyOpenSSL does not
    know the system's paths, so they come from the Python ssl module (the system OpenSSL)."""
    paths = ssl.get_default_verify_paths()
    if paths.capath and Path(paths.capath).is_dir():
        # OpenSSL takes a hashed directory and one CA file together.
        return {"ssl_verify_upstream_trusted_confdir": paths.capath,
                "ssl_verify_upstream_trusted_ca": str(extra_ca) if extra_ca else None}
    cafile = paths.cafile if paths.cafile and Path(paths.cafile).is_file() else None
    if extra_ca is None:
        return {"ssl_verify_upstream_trusted_confdir": None, "ssl_verify_upstream_trusted_ca": cafile}
    # No hashed directory: one bundle of the system file (else certifi's) and the extra CA.
    import certifi

    bundle = confdir / "rr-upstream-trust.pem"
    bundle.write_bytes(Path(cafile or certifi.where()).read_bytes() + b"\n" + extra_ca.read_bytes())
    return {"ssl_verify_upstream_trusted_confdir": None, "ssl_verify_upstream_trusted_ca": str(bundle)}


def _free_loopback_port(host: str = "127.0.0.1") -> int:
    """A free port on `host`; 0 when the host has no such address (no IPv6 loopback)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    except OSError:
        if host == "127.0.0.1":
            raise
        return 0


def _route_mitmproxy_logs(verbose: bool) -> None:
    """mitmproxy logs must never reach stdout (the guest's stdout is the process's stdout):
    with verbose they go to stderr, otherwise nowhere."""
    log = logging.getLogger("mitmproxy")
    log.propagate = False
    for handler in list(log.handlers):
        if getattr(handler, "rr_handler", False):
            log.removeHandler(handler)
    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    handler.rr_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("mitmproxy: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _addons_package_deferred() -> None:
    """Let `mitmproxy.addons.<name>` import without the package's __init__, which imports all
    31 default addons (flask, werkzeug, ldap3, pyparsing, jinja2: ~60% of what starting
    the proxy costs) though rr's proxy uses five. The package is registered unexecuted; the
    first use of a name it defines itself (`default_addons()`, which mitmweb's master calls)
    runs the real __init__ then, so nothing that wants the whole package sees a difference."""
    import importlib
    import importlib.util

    if "mitmproxy.addons" in sys.modules:
        return
    import mitmproxy

    spec = importlib.util.find_spec("mitmproxy.addons")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)

    def finish(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{spec.name}.{name}") is not None:
            # a submodule (`from mitmproxy.addons import core` asks for it by hasattr first)
            return importlib.import_module(f"{spec.name}.{name}")
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, name)

    package.__dict__["__getattr__"] = finish
    sys.modules["mitmproxy.addons"] = package
    mitmproxy.addons = package  # type: ignore[attr-defined]


def _lean_imports() -> None:
    """Before mitmproxy is imported: leave out what rr's proxy does not use (rr/deferred.py,
    `_addons_package_deferred`)."""
    from . import deferred

    _addons_package_deferred()
    deferred.register()


def _loop_local_ctx() -> None:
    """Make mitmproxy's `ctx.master`, `ctx.options` and `ctx.log` belong to the thread that set them.

    mitmproxy keeps them as module globals that every Master overwrites when it is created, and it
    reads them all the time, not only in addons' hooks: each new client connection is handled by
    `ctx.master` with `ctx.options` (proxy/mode_servers.py), TLS settings come from `ctx.options`
    (addons/tlsconfig.py). With two masters in one process, connections to the first were handled
    by the second one's addons. Each EmbeddedProxy builds, runs and shuts down its master on its own
    event-loop thread, and all of mitmproxy's code for it runs on that loop, so per-thread values
    give every master its own context. Chosen over one proxy shared by all runs (routing flows by
    credentials) because a run keeps its own options (upstream trust, web UI) and its own port, and
    rr's addons stay as they are. A thread that set nothing (none of mitmproxy's own) sees the
    value set last, which is mitmproxy's behaviour with one master."""
    from mitmproxy import ctx

    if isinstance(ctx, _LoopLocalCtx):
        return
    for name in _LoopLocalCtx.NAMES:
        if name in ctx.__dict__:
            _LoopLocalCtx.last[name] = ctx.__dict__.pop(name)
    assert isinstance(ctx, types.ModuleType)
    ctx.__class__ = _LoopLocalCtx


def _ctx_property(name: str) -> property:
    def get(module: Any) -> Any:
        try:
            return getattr(_LoopLocalCtx.local, name)
        except AttributeError:
            try:
                return _LoopLocalCtx.last[name]
            except KeyError:
                raise AttributeError(f"module 'mitmproxy.ctx' has no attribute {name!r}") from None

    def set_(module: Any, value: Any) -> None:
        setattr(_LoopLocalCtx.local, name, value)
        _LoopLocalCtx.last[name] = value

    return property(get, set_)


class _LoopLocalCtx(types.ModuleType):
    NAMES = ("master", "options", "log")
    local = threading.local()
    last: dict[str, Any] = {}
    master = _ctx_property("master")
    options = _ctx_property("options")
    log = _ctx_property("log")


def _skip_ca_key_check() -> None:
    """mitmproxy loads its CA's RSA key at every start, and cryptography checks such a key's
    primes as it loads it: ~40-120 ms, most of what starting the proxy costs. The key is the
    one mitmproxy generated in rr's own confdir, and rr's host never speaks TLS to the proxy
    (it only signs leaf certificates for clients that do): load it without the check."""
    from cryptography.hazmat.primitives import serialization
    from mitmproxy import certs

    if getattr(certs.load_pem_private_key, "rr_unchecked", False):
        return

    def load_pem_private_key(data: bytes, password: bytes | None) -> Any:
        try:
            return serialization.load_pem_private_key(data, password, unsafe_skip_rsa_key_validation=True)
        except TypeError:   # as mitmproxy's own: an unencrypted key given a password
            if password is not None:
                return load_pem_private_key(data, None)
            raise

    load_pem_private_key.rr_unchecked = True  # type: ignore[attr-defined]
    certs.load_pem_private_key = load_pem_private_key  # type: ignore[assignment]


class _TlsWhenNeeded:
    """mitmproxy's tlsconfig addon, made (with pyOpenSSL, cryptography and the CA, rr/deferred.py's
    TLS group: ~40 ms of every start) on the first TLS a connection needs: rr's host sends plain
    HTTP, so most runs need none. Stands where tlsconfig stood in the chain and hands it every
    hook tlsconfig has; made mid-run as mitmproxy's AddonManager.register says, under its own
    name, so `addons.get("tlsconfig")` finds it, and configured as its `running` hook does
    (the CA and `certs` loaded from the confdir)."""

    def __init__(self, master: "Master") -> None:
        self._master = master
        self._tls: Any = None

    def configured(self) -> None:
        """Once the options are set: a confdir without mitmproxy's CA gets it now, as before
        (a failure fails the start; processes started together later find it whole instead of
        each writing one while another reads it)."""
        from mitmproxy.options import CONF_BASENAME

        if not (Path(self._master.options.confdir).expanduser() / f"{CONF_BASENAME}-ca.pem").exists():
            self._real()

    def _real(self) -> Any:
        if self._tls is None:
            _skip_ca_key_check()
            from mitmproxy.addons import tlsconfig

            self._tls = self._master.addons.register(tlsconfig.TlsConfig())
            self._tls.configure({"confdir"})
        return self._tls

    def configure(self, updated: set[str]) -> None:
        if self._tls is not None:
            self._tls.configure(updated)

    def request(self, flow: Any) -> None:
        # tlsconfig answers a request for its CA's revocation list (/mitmproxy-<serial>.crl).
        if self._tls is not None or flow.request.path.endswith(".crl"):
            self._real().request(flow)

    def tls_clienthello(self, data: Any) -> None:
        self._real().tls_clienthello(data)

    def tls_start_client(self, data: Any) -> None:
        self._real().tls_start_client(data)

    def tls_start_server(self, data: Any) -> None:
        self._real().tls_start_server(data)

    def quic_start_client(self, data: Any) -> None:
        self._real().quic_start_client(data)

    def quic_start_server(self, data: Any) -> None:
        self._real().quic_start_server(data)


class _PlainHttpFirst:
    """Decides, before mitmproxy's next_layer addon, the layer of a connection to the regular
    listener whose first byte cannot begin a TLS record (rr's host sends HTTP/1.1 there): the
    HTTP layer next_layer would choose, without calling net.tls.starts_like_tls_record, whose
    module would run the TLS group at every recording's first request. Anything else (a byte
    0x16, another listener, ignore/allow hosts) is left to next_layer."""

    def next_layer(self, nextlayer: Any) -> None:
        from mitmproxy import ctx
        from mitmproxy.proxy import layers
        from mitmproxy.proxy.layers import modes
        from mitmproxy.proxy.layers.http import HTTPMode

        context = nextlayer.context
        if (nextlayer.layer is None and len(context.layers) == 1 and type(context.layers[0]) is modes.HttpProxy
                and context.client.transport_protocol == "tcp" and not ctx.options.ignore_hosts
                and not ctx.options.allow_hosts and nextlayer.data_client()[:1] != b"\x16"):
            nextlayer.layer = layers.HttpLayer(context, HTTPMode.regular)


def _decide_when_the_server_closes_first() -> None:
    """mitmproxy decides how to relay a connection only once data arrives (layer.NextLayer asks
    its addons on DataReceived). A raw TCP connection rr relays is connected upstream eagerly, so
    an upstream that closes before either side sent a byte closed a connection nobody relays yet:
    mitmproxy kept the close and the guest waited for the end of the stream forever, where a
    direct connection reads it at once. Asking then too decides the relay (ignore_hosts: raw
    TCP), which passes the close on. HTTP is unaffected: its upstream is connected lazily, after
    the request."""
    from mitmproxy.proxy import events, layer

    handle = layer.NextLayer._handle_event
    if getattr(handle, "rr_decides_on_close", False):
        return

    def _handle_event(self: Any, event: Any) -> Any:
        yield from handle(self, event)
        if (isinstance(event, events.ConnectionClosed) and event.connection == self.context.server
                and self.layer is None):
            yield from self._ask()

    _handle_event.rr_decides_on_close = True  # type: ignore[attr-defined]
    layer.NextLayer._handle_event = _handle_event  # type: ignore[method-assign]


def _edited(gen: Any, edit: Callable[[Any], list[Any]]) -> Any:
    """`yield from gen` for a mitmproxy layer's command generator, each command it yields
    replaced by the commands `edit` makes of it; the reply to the last goes back to `gen`."""
    reply = None
    while True:
        try:
            command = gen.send(reply)
        except StopIteration as stop:
            return stop.value
        for command in edit(command):
            reply = yield command


def _http1_trailers() -> None:
    """mitmproxy's HTTP/1 layer has no trailers (mitmproxy issue 2474): a chunked body that ends
    in trailer fields raised NotImplementedError inside the layer, so the guest's response never
    ended (a recording hung on a keep-alive connection where `rr run` reads the body), and a flow
    with trailers could not be sent to an HTTP/1 peer (AssertionError). Read: the fields become
    the flow's Request/ResponseTrailers event, as HTTP/2's do. Send: they go into the last chunk.
    (The guest does not see them either way: http.client drops trailers, see README.)"""
    import h11
    from h11._readers import ChunkedReader
    from mitmproxy import http
    from mitmproxy.proxy import commands
    from mitmproxy.proxy.layers.http import _events as ev
    from mitmproxy.proxy.layers.http import _http1
    from mitmproxy.proxy.layers.http._base import ReceiveHttp

    conn = _http1.Http1Connection
    if getattr(conn.read_body, "rr_trailers", False):
        return
    read_body = conn.read_body
    ends = {ev.RequestEndOfMessage: ev.RequestTrailers, ev.ResponseEndOfMessage: ev.ResponseTrailers}

    class KeepingTrailers:
        """h11's ChunkedReader that ends the message without its trailer fields, keeping them."""

        def __init__(self, inner: ChunkedReader) -> None:
            self.inner = inner
            self.trailers: Any = None

        def __call__(self, buf: Any) -> Any:
            event = self.inner(buf)
            if isinstance(event, h11.EndOfMessage) and event.headers:
                self.trailers = http.Headers([(bytes(n), bytes(v)) for n, v in event.headers.raw_items()])
                event = h11.EndOfMessage()
            return event

        def read_eof(self) -> Any:
            return self.inner.read_eof()

    def _read_body(self: Any, event: Any) -> Any:
        reader = self.body_reader
        if type(reader) is ChunkedReader:
            reader = self.body_reader = KeepingTrailers(reader)
        if not isinstance(reader, KeepingTrailers):   # no chunks, no trailers: as it is
            return (yield from read_body(self, event))

        def trailers_first(command: Any) -> list[Any]:   # before the end of the message
            kind = ends.get(type(command.event)) if isinstance(command, ReceiveHttp) else None
            if kind is None or not isinstance(reader, KeepingTrailers) or reader.trailers is None:
                return [command]
            trailers, reader.trailers = reader.trailers, None
            return [ReceiveHttp(kind(command.event.stream_id, trailers)), command]

        return (yield from _edited(read_body(self, event), trailers_first))

    def sending(send: Any) -> Any:
        def _send(self: Any, event: Any) -> Any:
            if isinstance(event, (ev.RequestTrailers, ev.ResponseTrailers)):
                self.rr_trailers = event.trailers   # sent with the end of the message
                return
            trailers = getattr(self, "rr_trailers", None) if type(event) in ends else None
            if not trailers:   # the common case: nothing to add
                return (yield from send(self, event))

            def in_last_chunk(command: Any) -> list[Any]:
                if trailers and isinstance(command, commands.SendData) and command.data == b"0\r\n\r\n":
                    self.rr_trailers = None
                    return [commands.SendData(command.connection, b"0\r\n" + bytes(trailers) + b"\r\n")]
                return [command]

            return (yield from _edited(send(self, event), in_last_chunk))
        return _send

    _read_body.rr_trailers = True  # type: ignore[attr-defined]
    conn.read_body = _read_body  # type: ignore[method-assign]
    for side in (_http1.Http1Server, _http1.Http1Client):
        side.send = sending(side.send)  # type: ignore[method-assign]


def _parsed_heads_unchecked() -> None:
    """mitmproxy type-checks every field of a request's and a response's data as it creates
    them (`MessageData.__post_init__`, under `__debug__` only: a check of mitmproxy's own
    code), ~12 typing checks per message, twice per recorded flow. The heads its HTTP/1 layer
    parses from the wire are made of bytes, ints and Headers by construction: those skip it.
    Messages made from anything else (a trace's records: flowrecord.py) are still checked."""
    from mitmproxy import http
    from mitmproxy.net.http import http1

    if getattr(http1.read_request_head, "rr_unchecked", False):
        return
    checked = http.MessageData.__dict__.get("__post_init__")
    if checked is None:
        return   # python -O: nothing to skip
    parsing = threading.local()

    def __post_init__(self: Any) -> None:
        if not getattr(parsing, "on", False):
            checked(self)

    def unchecked(read: Callable[..., Any]) -> Callable[..., Any]:
        def read_head(*args: Any, **kw: Any) -> Any:
            parsing.on = True
            try:
                return read(*args, **kw)
            finally:
                parsing.on = False
        read_head.rr_unchecked = True  # type: ignore[attr-defined]
        return read_head

    http.MessageData.__post_init__ = __post_init__  # type: ignore[attr-defined]
    http1.read_request_head = unchecked(http1.read_request_head)
    http1.read_response_head = unchecked(http1.read_response_head)


class WebUIError(RuntimeError):
    """The web UI cannot listen where it was asked to (port in use, address not local)."""


def check_web_address(host: str, port: int | None) -> None:
    """Raise WebUIError now if the web UI could not listen on host:port (None: any free port),
    before a recording starts."""
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise WebUIError(f"{host}: not an address to listen on ({e})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
        try:
            s.bind(address)
        except OSError as e:
            raise WebUIError(f"web UI cannot listen on {_host_port(host, port)}: {e.strerror}") from None


def _host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def _closable_web_master(opts: Any) -> "Master":
    """mitmweb's WebMaster, keeping a handle on its web server so stop() can close the port
    (WebMaster.running() creates it as a local and never closes it)."""
    import tornado.httpserver
    import tornado.ioloop
    from mitmproxy.master import Master
    from mitmproxy.tools.web.master import WebMaster

    class ClosableWebMaster(WebMaster):
        async def running(self) -> None:
            tornado.ioloop.IOLoop.current()  # registers tornado with this asyncio loop
            self.http_server = tornado.httpserver.HTTPServer(self.app, max_buffer_size=2**32)
            try:
                self.http_server.listen(self.options.web_port, self.options.web_host)
            except OSError as e:
                raise WebUIError(f"web UI cannot listen on {_host_port(self.options.web_host, self.options.web_port)}: "
                                 f"{e.strerror or e}") from None
            await Master.running(self)

    return ClosableWebMaster(opts, with_termlog=False)


def _log_loop_exception(loop: "asyncio.AbstractEventLoop", context: dict[str, Any]) -> None:
    import asyncio

    if not isinstance(context.get("exception"), asyncio.CancelledError):
        logging.getLogger("mitmproxy.rr").warning("asyncio: %s", context.get("message"), exc_info=context.get("exception"))


class _DumpLines:
    """One line per finished flow on stderr (its URL redacted: CI logs keep these lines)."""

    def __init__(self, redaction: dict[str, Any] | None = None) -> None:
        from proxy_addon.redaction import Redactor
        self._redactor = Redactor(redaction) if redaction else None

    def tcp_end(self, flow: Any) -> None:
        self._tcp_line(flow)

    def tcp_error(self, flow: Any) -> None:
        self._tcp_line(flow)

    def _tcp_line(self, flow: Any) -> None:
        from proxy_addon.relay import BYTES_KEY   # a handed-over connection's counts (relay.py)
        sent, received = flow.metadata.get(BYTES_KEY) or (
            sum(len(m.content) for m in flow.messages if m.from_client),
            sum(len(m.content) for m in flow.messages if not m.from_client))
        host, port = flow.server_conn.address[:2]
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        outcome = f"error: {flow.error.msg}" if flow.error is not None else f"sent {sent}B received {received}B"
        sys.stderr.write(f"rr-proxy tcp {where} -> {outcome}\n")
        sys.stderr.flush()

    def response(self, flow: Any) -> None:
        self._line(flow)

    def error(self, flow: Any) -> None:
        self._line(flow)

    def _line(self, flow: Any) -> None:
        from proxy_addon.flowrecord import META_FLOW_ID, request_url

        req = flow.request
        if flow.error is not None:
            outcome = f"error: {flow.error.msg}"
        else:
            streamed = flow.metadata.get("rr.streamed")   # proxy_addon/record.py: a streamed body's size
            size = streamed if streamed is not None else len(flow.response.raw_content or b"")
            outcome = f"{flow.response.status_code} {size}B"
        from proxy_addon.flowrecord import META_INCOMING
        incoming = flow.metadata.get(META_INCOMING)
        tag = "in" if incoming else flow.metadata.get(META_FLOW_ID, "-")
        url = req.pretty_url if incoming else request_url(req)   # as the client sent it
        if self._redactor:
            url = self._redactor.url(url)
        line = f"rr-proxy [{tag}] {req.method} {url} -> {outcome}\n"
        # One write of the whole line: the guest's stderr goes to the same stream from another
        # thread, and print() writes the newline separately, so a guest line could land between.
        sys.stderr.write(line)
        sys.stderr.flush()


class _Ready:
    """Signals the starting thread once mitmproxy's servers are up (the `running` hook)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def running(self) -> None:
        self._event.set()


def _run_loop(serve: Callable[[threading.Event], Any], ready: threading.Event) -> None:
    """The proxy thread's body: mitmproxy's master on an asyncio loop that anyio runs."""
    import anyio

    try:
        anyio.run(serve, ready, backend="asyncio")
    finally:
        ready.set()   # a failure to even start the loop must not leave start() waiting


class EmbeddedProxy:
    """mitmproxy on 127.0.0.1:<ephemeral port> with rr's record or replay addon.

    record: `on_flow(record)` is called from the proxy's thread for every finished flow.
    replay: `flows` (records), and those `fetch_flows(flow_id)` reads on demand, answer every
    request; see `addon.mismatches` / `addon.unused()`.
    web: also serve mitmweb on a free loopback port (`web_url` holds the access token).
    dump: one line per flow on stderr. verbose: mitmproxy's log on stderr.
    bodies: record: where streamed bodies' pieces go; replay: where they come from (rr/merge.py).
    relay (record only): also SOCKS5 listeners on 127.0.0.1 and ::1 (`socks_listeners`) that pass
    raw TCP through untouched and visible; `relay_addon` admits the connections rr announces."""

    def __init__(
        self,
        mode: Literal["record", "replay"] = "record",
        *,
        on_flow: Callable[["FlowRecord"], None] | None = None,
        flows: Sequence["FlowRecord"] = (),
        fetch_flows: Callable[[str | None], Sequence["FlowRecord"]] | None = None,
        extra_ca: Path | None = None,
        confdir: Path | None = None,
        web: bool = False,
        web_host: str = "127.0.0.1",
        web_port: int | None = None,
        dump: bool = False,
        verbose: bool = False,
        redaction: dict[str, Any] | None = None,
        reverse: str | None = None,
        relay: bool = False,
        bodies: Any = None,
        stream_above: int | None = None,
    ) -> None:
        if mode not in ("record", "replay"):
            raise ValueError(f"mode must be 'record' or 'replay', not {mode!r}")
        if mode == "record" and on_flow is None:
            raise ValueError("record mode needs on_flow")
        if extra_ca is not None and not extra_ca.is_file():
            raise FileNotFoundError(f"extra CA file not found: {extra_ca}")
        self.mode = mode
        self._on_flow = on_flow
        self._flows = list(flows)
        self._fetch_flows = fetch_flows
        self._extra_ca = extra_ca
        self.confdir = confdir or default_confdir()
        self._web = web
        self._web_host = web_host
        self._web_port = web_port
        self._dump = dump
        self._verbose = verbose
        self._redaction = redaction   # proxy_addon.redaction rules: records and --dump lose secrets
        # `rr serve`: a reverse-mode listener for the clients (mitmproxy's mode spec
        # "reverse:http://BACKEND@HOST:PORT"), beside the regular one the guest's HTTP uses.
        self._reverse = reverse
        self.reverse_port: int | None = None
        # Not beside `rr serve`'s reverse listener: ignore_hosts would turn its HTTP into raw TCP.
        self._relay = relay and mode == "record" and reverse is None
        # Streamed bodies (proxy_addon/record.py, streamreplay.py): record: where their pieces
        # go (merge.SharedWriter); replay: where they come from (merge.FlowIndex).
        self._bodies = bodies
        self._stream_above = stream_above
        self.port: int | None = None
        self.socks_listeners: dict[int, tuple[str, int]] = {}  # socket family -> SOCKS5 listener
        self.relay_addon: Any = None
        self.credentials: str | None = None   # the Proxy-Authorization value the host must send
        self.gate: Any = None                  # proxy_addon.gate.GuestGate once started
        self.web_url: str | None = None
        self.addon: RecordAddon | ReplayAddon | None = None
        self._master: Master | None = None
        self._thread: threading.Thread | None = None   # runs the proxy's event loop
        self._failure: BaseException | None = None
        self._holding_lock = False

    def start(self) -> "EmbeddedProxy":
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        _starting.acquire()
        self._holding_lock = True
        try:
            from .dataclass_cache import cached

            # mitmproxy's and anyio's imports (on both threads): their dataclasses' methods
            # come compiled from rr's cache (rr/dataclass_cache.py)
            with cached():
                self._launch()
            if isinstance(self._failure, WebUIError):
                raise self._failure
            if self._failure is not None:
                raise RuntimeError(f"mitmproxy failed to start: {self._failure}") from self._failure
            assert self._master is not None
            servers = self._master.addons.get("proxyserver").servers
            regular = next((s for s in servers if s.mode.type_name == "regular"), None)
            addrs = regular.listen_addrs if regular is not None else ()
            if not addrs:
                raise RuntimeError("mitmproxy is running but not listening (see its log with verbose=True)")
            self.port = addrs[0][1]
            if self._reverse is not None:
                server = servers[self._reverse]
                if not server.listen_addrs:
                    error = server.last_exception
                    raise OSError(getattr(error, "errno", None), getattr(error, "strerror", None) or str(error))
                self.reverse_port = server.listen_addrs[0][1]
            for instance in servers:
                if instance.mode.type_name == "socks5" and instance.listen_addrs:
                    host, port = instance.listen_addrs[0][:2]
                    self.socks_listeners[socket.AF_INET6 if ":" in host else socket.AF_INET] = (host, port)
            if self._web:
                self.web_url = self._master.web_url  # type: ignore[attr-defined]
        except BaseException:
            self.stop()
            raise
        finally:
            self._release_start_lock()
        return self

    def _launch(self) -> None:
        """Import what the proxy needs, make its addons and start its loop thread; returns once
        mitmproxy's servers are up or it failed."""
        _lean_imports()
        _loop_local_ctx()
        from proxy_addon import RecordAddon, ReplayAddon
        from proxy_addon.errors import install_error_response_headers
        from proxy_addon.gate import GuestGate, new_credentials

        install_error_response_headers()
        _route_mitmproxy_logs(self._verbose)
        self.confdir.mkdir(parents=True, exist_ok=True)
        if self.mode == "record":
            assert self._on_flow is not None
            self.addon = RecordAddon(self._on_flow, self._redaction, bodies=self._bodies,
                                     **({"stream_above": self._stream_above} if self._stream_above else {}))
        else:
            self.addon = ReplayAddon(self._flows, self._redaction, fetch=self._fetch_flows, bodies=self._bodies)
            if self._bodies is not None:
                from proxy_addon.streamreplay import install
                install()
        self.credentials = new_credentials()
        self.gate = GuestGate(self.credentials)
        ready = threading.Event()
        # The loop's own thread runs it with anyio (one of the project's chosen packages);
        # anyio is imported there, so its import overlaps whatever the caller does meanwhile.
        self._thread = threading.Thread(target=_run_loop, args=(self._serve, ready),
                                        name="rr-proxy-loop", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"mitmproxy did not start within {START_TIMEOUT_S} s")

    def _release_start_lock(self) -> None:
        if self._holding_lock:
            self._holding_lock = False
            _starting.release()

    async def _serve(self, ready: threading.Event) -> None:
        from . import netlock

        # A recording's upstream connections are made on this loop: a replay running at the
        # same time in this process must not refuse them.
        netlock.exempt_this_thread(self.mode == "record")
        try:
            await self._run_master(ready)
        except BaseException as e:  # noqa: BLE001 - reported to start() / stop()
            self._failure = e
        finally:
            netlock.exempt_this_thread(False)
            ready.set()

    async def _run_master(self, ready: threading.Event) -> None:
        _http1_trailers()
        _parsed_heads_unchecked()
        from . import proxyhooks
        proxyhooks.install()
        from mitmproxy import options
        from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver
        from mitmproxy.master import Master

        opts = options.Options()
        master: Master
        tls: _TlsWhenNeeded | None = None
        if self._web:
            _skip_ca_key_check()
            master = _closable_web_master(opts)  # brings mitmweb's default addons
        else:
            master = Master(opts, with_termlog=False)
            tls = _TlsWhenNeeded(master)
            master.addons.add(core.Core(), proxyserver.Proxyserver(), _PlainHttpFirst(), next_layer.NextLayer(), tls,
                              disable_h2c.DisableH2C())
        # The gate goes first in the chain (before mitmweb's view and intercept): a request that
        # is not the guest's is refused before any other addon sees it.
        master.addons.add(self.gate)
        master.addons.chain.insert(0, master.addons.chain.pop())
        master.addons.add(self.addon)
        if self._relay:
            from proxy_addon.relay import RawRelay, decide_at_start

            _decide_when_the_server_closes_first()
            decide_at_start()
            self.relay_addon = RawRelay()
            master.addons.add(self.relay_addon)
        if self._dump:
            master.addons.add(_DumpLines(self._redaction))
        master.addons.add(_Ready(ready))
        settings: dict[str, Any] = {
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "confdir": str(self.confdir),
            # Never connect before the request hook ran: replay must open no connection at all.
            "connection_strategy": "lazy",
            # Bodies are recorded whole, or streamed by rr's record addon (which records the
            # pieces): stream_large_bodies would record them empty.
            "stream_large_bodies": None,
            "body_size_limit": None,
            # HTTP/1.1 upstream, like wasmtime's own wasi:http client.
            "http2": False,
            **upstream_trust(self._extra_ca, self.confdir),
        }
        if self._reverse is not None:
            # The clients' Host header reaches the handler as they sent it.
            settings |= {"mode": ["regular", self._reverse], "keep_host_header": True}
        if self._web:
            # The proxy's port is chosen here, not by the OS at bind time, so that the web UI
            # (its Capture tab and Options) shows the real address instead of 8080 or 0.
            port = _free_loopback_port()
            settings |= {"web_host": self._web_host, "web_port": self._web_port or _free_loopback_port(),
                         "web_open_browser": False, "listen_port": port,
                         "mode": [f"regular@127.0.0.1:{port}", *([self._reverse] if self._reverse else [])]}
        if self._relay:
            # Every SOCKS5 connection (destination known up front) is relayed as raw TCP and still
            # shown; the HTTP listener's absolute-form requests are decided before a destination
            # is known, so they stay HTTP.
            # Ports are picked here: mitmproxy refuses two listeners on the same "127.0.0.1:0".
            regular = settings.get("mode", [f"regular@127.0.0.1:{_free_loopback_port()}"])
            v6 = _free_loopback_port("::1")
            settings |= {"mode": [*regular, f"socks5@127.0.0.1:{_free_loopback_port()}", *([f"socks5@::1:{v6}"] if v6 else [])],
                         "ignore_hosts": [".*"], "show_ignored_hosts": True,
                         # SOCKS5 answers the guest's connect only after its own connect upstream:
                         # a refused port is refused, a server that speaks first is heard. (For
                         # HTTP this only changes CONNECT, which the gate refuses to strangers
                         # before any connection and rr's host never sends.)
                         "connection_strategy": "eager"}
        opts.update(**settings)
        if tls is not None:
            tls.configured()
        self._master = master
        await master.run()
        # Master.run() returns without closing the listening socket; close it so the port is
        # freed (and refuses) once stop() returns.
        await master.addons.get("proxyserver").servers.update([])
        if self._web:
            master.http_server.stop()  # type: ignore[attr-defined]
        # asyncio.run() now cancels the handlers of still-open client connections; Python 3.12.1
        # reports each as "Exception in callback ... CancelledError" on stderr. Route such
        # reports to mitmproxy's (normally silent) log instead.
        import asyncio   # here, not at the top: a run that never starts the proxy needs none of it

        asyncio.get_running_loop().set_exception_handler(_log_loop_exception)

    def stop(self) -> None:
        """Shut down mitmproxy and its loop thread. Safe to call more than once."""
        thread, self._thread = self._thread, None
        if thread is not None:
            if self._master is not None and thread.is_alive():
                try:
                    self._master.shutdown()  # thread-safe: sets the master's exit event on its loop
                except RuntimeError:
                    pass  # its loop has just closed: the thread is ending by itself
            thread.join(timeout=10)
            if thread.is_alive():
                # a failed shutdown must not hide the run's outcome (the thread is a daemon)
                logging.getLogger("mitmproxy.rr").warning("proxy shutdown: its loop did not end within 10 s")
        self._release_start_lock()

    def __enter__(self) -> "EmbeddedProxy":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
