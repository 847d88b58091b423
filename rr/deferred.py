"""Modules that mitmproxy imports at start but rr's proxy never runs, registered unexecuted.

rr's proxy speaks HTTP/1.1 and raw TCP only, yet starting mitmproxy imports its QUIC and
HTTP/3 layers with aioquic (~35-85 ms of a whole process, the largest part of its import), its
HTTP/2 layers (h2), zstandard, its command-line grammar (pyparsing, ~20 ms) and YAML (ruamel,
~10 ms, option files). Each GROUP
below is put in `sys.modules` unexecuted and runs, as a whole and as an ordinary import would,
the first time anything uses it: a name looked up on one of its modules, a call of a name some
module took out of it at import (`from m import f`: such names are handed out as forwarders),
or the import of any other module under its prefix (so aioquic's own modules never see a
forwarder in place of a class). Once a group has run, every forwarder left in a module's
globals is replaced by the real object, so isinstance and subclassing see real classes.
The forwarded names are used by mitmproxy 12.2.3 only by calling, indexing, iterating or
testing membership in them, or in annotations: the few modules whose annotations name a
deferred class at import (POSTPONED) are compiled as if they began with `from __future__
import annotations` (mitmproxy's serializable dataclasses resolve such strings on first use).
"""

from __future__ import annotations

import __future__
import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.RLock()


class _Forward:
    """Stands for `name` of a group's module until the group runs."""

    __slots__ = ("_group", "_module", "_name")

    def __init__(self, group: Group, module: str, name: str) -> None:
        self._group, self._module, self._name = group, module, name

    def _real(self) -> Any:
        self._group.run()
        return getattr(sys.modules[self._module], self._name)

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._real()(*args, **kw)

    def __getitem__(self, key: Any) -> Any:
        return self._real()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._real())

    def __len__(self) -> int:
        return len(self._real())

    def __contains__(self, item: Any) -> bool:
        return item in self._real()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def __repr__(self) -> str:
        return f"<rr deferred {self._module}.{self._name}>"


class Group:
    """`modules`: (name, names handed out as forwarders), in the order they run. `prefix`:
    importing any other module that starts with it (or with one of them) runs the group first."""

    def __init__(self, modules: tuple[tuple[str, tuple[str, ...]], ...],
                 prefix: str | tuple[str, ...] | None = None, after: tuple[Group, ...] = (),
                 finish: Callable[[], None] | None = None) -> None:
        self.modules = modules
        self.prefix = prefix
        self.after = after   # groups its modules import while they run: those run first
        self.finish = finish   # once it has run: what its importers did to the names they took
        self._pending: dict[str, tuple[types.ModuleType, importlib.machinery.ModuleSpec]] = {}
        self._running = False
        self._finder: _RunsGroupFirst | None = None

    def register(self) -> None:
        """Put the group's modules in sys.modules unexecuted (unless any of them is imported already)."""
        with _lock:
            if self._pending or any(name in sys.modules for name, _ in self.modules):
                return
            found = [(name, forward, _spec_without_importing(name)) for name, forward in self.modules]
            if any(spec is None or spec.loader is None for _, _, spec in found):
                return
            for name, forward, spec in found:
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                module.__dict__["__getattr__"] = self._lookup_on(module)
                module.__dict__.update({f: _Forward(self, name, f) for f in forward})
                self._pending[name] = (module, spec)  # type: ignore[assignment]
                sys.modules[name] = module
                _bind_in_parent(name, module)
            if self.prefix:
                self._finder = _RunsGroupFirst(self)
                sys.meta_path.insert(0, self._finder)

    def _lookup_on(self, module: types.ModuleType) -> Any:
        """The unexecuted module's `__getattr__`: a name it does not hold yet runs the group."""
        def lookup(attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            self.run()
            try:
                return module.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}") from None
        return lookup

    def run(self) -> None:
        with _lock:
            if not self._pending or self._running:
                return
            for group in self.after:
                group.run()
            self._running = True
            try:
                # The packages above the group's modules first, as an ordinary import would
                # (they take the forwarders they import, replaced below).
                names = {name for name, _ in self.modules}
                for name, _ in self.modules:
                    parent = name.rpartition(".")[0]
                    if parent and parent not in names:
                        importlib.import_module(parent)
                pending, self._pending = self._pending, {}
                for name, forward in self.modules:
                    module, spec = pending[name]
                    del module.__dict__["__getattr__"]
                    for f in forward:
                        del module.__dict__[f]
                    spec.loader.exec_module(module)  # type: ignore[union-attr]
            finally:
                self._running = False
                # A new list: an import may be iterating the old one (this finder runs the group).
                sys.meta_path = [f for f in sys.meta_path if f is not self._finder]
            _replace_forwarders(self)
            if self.finish is not None:
                self.finish()

    @property
    def pending(self) -> bool:
        return bool(self._pending)


class _RunsGroupFirst:
    """A meta-path finder that runs `group` before any other module under its prefix is imported."""

    def __init__(self, group: Group) -> None:
        self.group = group

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix = self.group.prefix
        if not (prefix and self.group.pending and name.startswith(prefix)):
            return None
        self.group.run()
        module = sys.modules.get(name)
        if module is None:
            return None   # the ordinary finders take it from here
        # The group imported `name` itself: the import under way must take that module, not
        # run the file a second time.
        return importlib.util.spec_from_loader(name, _Imported(module), is_package=hasattr(module, "__path__"))


class _Imported:
    """Hands an import the module that is already in sys.modules, spec and all. (A loader by
    protocol: importlib.abc would import importlib.resources, ~1.5 ms of every proxy start.)"""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec   # importlib set its own; the module keeps its real one


def _spec_without_importing(name: str) -> importlib.machinery.ModuleSpec | None:
    """`name`'s spec, found without importing (running) the packages above it."""
    parts = name.split(".")
    top = sys.modules.get(parts[0])
    spec = top.__spec__ if top is not None else importlib.util.find_spec(parts[0])
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:i + 1]), list(spec.submodule_search_locations))
    return spec


def _bind_in_parent(name: str, module: types.ModuleType) -> None:
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)


def _replace_forwarders(group: Group) -> None:
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if type(value) is _Forward and value._group is group:
                namespace[key] = value._real()
    for name, _ in group.modules:
        _bind_in_parent(name, sys.modules[name])


class _PostponedLoader(importlib.machinery.SourceFileLoader):
    """Compiles its module with postponed evaluation of annotations (PEP 563). The ordinary .pyc
    beside the source holds the other compilation (and stays as it is for every process that
    defers nothing): this one is cached in rr's cache directory, like its compiled components,
    whatever PYTHONDONTWRITEBYTECODE says (compiling mitmproxy.connection takes ~5-9 ms)."""

    def get_code(self, fullname: str) -> types.CodeType:
        import marshal
        import os

        st = os.stat(self.path)
        # A timestamp-based .pyc's header (PEP 552): it is stale once the source changes.
        header = b"".join((importlib.util.MAGIC_NUMBER, bytes(4), (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little"),
                           (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")))
        cached = self._cached()
        try:
            with open(cached, "rb") as f:
                data = f.read()
            if data[:16] == header:
                return marshal.loads(data[16:])  # type: ignore[no-any-return]
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(self.get_data(self.path), self.path, "exec", flags=__future__.annotations.compiler_flag,
                       dont_inherit=True)
        from .cache import store
        store(cached, header + marshal.dumps(code))
        return code

    def _cached(self) -> Path:
        from .cache import bytecode_file
        return bytecode_file(f"{self.name}-{hashlib.sha256(self.path.encode()).hexdigest()[:16]}", ".pyc")


class _Postponing:
    """A meta-path finder: the modules in `names` load through _PostponedLoader."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        spec = _spec_without_importing(name)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        return importlib.util.spec_from_file_location(name, spec.origin,
                                                      loader=_PostponedLoader(name, spec.origin))  # type: ignore[arg-type]


# Modules whose annotations name a class of a group below at import time, and nothing else in
# them uses those names before they are called (not mitmproxy.http: its message data check
# their fields' types at run time). Their serializable dataclasses resolve the strings.
POSTPONED = frozenset({
    "mitmproxy.connection",   # certs.Cert
    "mitmproxy.websocket",    # wsproto's Opcode
})

# TLS (pyOpenSSL, cryptography's x509, mitmproxy's certificates, TLS layers and tlsconfig):
# rr's host speaks plain HTTP to the proxy, so only an upstream https request, a TLS
# client of the proxy, or a recording's TCP relay (which looks for a ClientHello) runs it.
TLS = Group((("OpenSSL", ()), ("OpenSSL.SSL", ()),
            ("mitmproxy.certs", ()),
            ("mitmproxy.tls", ("ClientHello", "ClientHelloData", "TlsData")),
            ("mitmproxy.net.tls", ("starts_like_dtls_record", "starts_like_tls_record")),
            ("mitmproxy.proxy.layers.tls", ("ClientTLSLayer", "ServerTLSLayer", "dtls_parse_client_hello",
                                            "HTTP_ALPNS", "parse_client_hello")),
            ("mitmproxy.proxy.layers.quic._hooks", ("QuicStartClientHook", "QuicStartServerHook", "QuicTlsData",
                                                    "QuicTlsSettings")),
            ("mitmproxy.addons.tlsconfig", ())),
           prefix="OpenSSL.")

GROUPS = (
    TLS,
    # QUIC and HTTP/3: rr's listeners are TCP (regular, reverse:http, socks5).
    Group((("aioquic.tls", ("CipherSuite",)),
           ("aioquic.h3.connection", ("H3_ALPN",)),
           ("mitmproxy.proxy.layers.quic._client_hello_parser", ("quic_parse_client_hello_from_datagrams",)),
           ("mitmproxy.proxy.layers.quic._stream_layers", ("ClientQuicLayer", "ServerQuicLayer", "error_code_to_str")),
           ("mitmproxy.proxy.layers.quic._raw_layers", ("QuicStreamLayer", "RawQuicLayer")),
           ("mitmproxy.proxy.layers.http._http3", ("Http3Client", "Http3Server"))),
          prefix="aioquic.", after=(TLS,)),   # aioquic.tls imports service_identity, which takes pyOpenSSL
    # HTTP/2 (h2, hpack, hyperframe): rr's proxy runs with http2=False and h2c disabled.
    Group((("mitmproxy.proxy.layers.http._http2", ("Http2Client", "Http2Server", "format_h2_request_headers",
                                                    "format_h2_response_headers", "parse_h2_request_headers",
                                                    "parse_h2_response_headers")),)),
    # zstd content-encoding: decoded only when a body is shown or compared in that encoding.
    Group((("zstandard", ()),), prefix="zstandard."),
    # The command-line grammar: mitmproxy.command takes `unquote` out of its lexer at import.
    Group((("pyparsing", ()), ("mitmproxy.command_lexer", ("unquote",))), prefix="pyparsing."),
    # YAML: option files.
    Group((("ruamel.yaml", ()),), prefix="ruamel.yaml."),
    # WebSocket (wsproto): rr's guests speak HTTP/1.1 requests; a 101 upgrade runs it.
    Group((("wsproto.frame_protocol", ("Opcode",)), ("wsproto.utilities", ()), ("wsproto.extensions", ()),
           ("wsproto.handshake", ()), ("wsproto", ()),
           ("mitmproxy.proxy.layers.websocket", ("WebsocketLayer", "WebSocketMessageInjected"))),
          prefix="wsproto."),
)


_ANYIO_FILES = (("anyio._core._fileio", ("AsyncFile", "Path", "open_file", "wrap_file")),
                ("anyio._core._tempfile", ("NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory",
                                           "TemporaryFile", "gettempdir", "gettempdirb", "mkdtemp", "mkstemp")))


def _anyio_names() -> None:
    """anyio's __init__ renames what it re-exports to `anyio.<name>`; it met forwarders there."""
    anyio = sys.modules.get("anyio")
    for _, names in _ANYIO_FILES if anyio is not None else ():
        for name in names:
            value = getattr(anyio, name, None)
            if getattr(value, "__module__", "").startswith("anyio."):
                value.__module__ = "anyio"   # type: ignore[union-attr]


# anyio's async files and temporary files (tempfile, shutil, bz2, lzma: ~3 ms of each proxy
# start): the proxy's loop (anyio.run on asyncio) never opens a file through anyio.
ANYIO_FILES = Group(_ANYIO_FILES, finish=_anyio_names)


def register() -> None:
    """Before mitmproxy is imported."""
    with _lock:
        if not any(type(f) is _Postponing for f in sys.meta_path) and not POSTPONED & sys.modules.keys():
            sys.meta_path.insert(0, _Postponing(POSTPONED))
    for group in (*GROUPS, ANYIO_FILES):
        group.register()
