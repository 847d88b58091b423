"""wasi:http/types `fields` (headers and trailers).

Names are kept lower-case, as wasmtime (the `http` crate) normalizes them; values are raw
bytes. A `Fields` is mutable until it is attached to a request or response; the views
handed out by `headers()` of a request or response are immutable.
"""

from __future__ import annotations

import re

from ...abi import WasiError
from ..context import HostContext
from .interfaces import types_if

# RFC 9110 token characters.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value may not hold control characters other than horizontal tab.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# Hop-by-hop and connection-managing headers the guest may not set (wasmtime's default
# list); they are also stripped from responses before the guest sees them, as wasmtime does.
FORBIDDEN = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "transfer-encoding", "upgrade", "host", "http2-settings",
})

Entry = tuple[str, bytes]


def valid_name(name: str) -> bool:
    return name.isascii() and _TOKEN.fullmatch(name.encode()) is not None


def valid_value(value: bytes) -> bool:
    return _BAD_VALUE.search(value) is None


class Fields:
    def __init__(self, entries: list[Entry] | None = None, immutable: bool = False):
        self.entries: list[Entry] = entries if entries is not None else []
        self.immutable = immutable

    def frozen_view(self) -> "Fields":
        """An immutable handle onto the same entries (request/response `headers()`)."""
        return Fields(self.entries, immutable=True)

    def values(self, name: str) -> list[bytes]:
        key = name.lower()
        return [v for n, v in self.entries if n == key]

    def _check_mutation(self, name: str, values: list[bytes]) -> str:
        if self.immutable:
            raise WasiError("immutable")
        if not valid_name(name) or not all(valid_value(v) for v in values):
            raise WasiError("invalid-syntax")
        key = name.lower()
        if key in FORBIDDEN:
            raise WasiError("forbidden")
        return key


def grouped(pairs: list[Entry]) -> list[Entry]:
    """Values of the same name next to each other, names in order of first appearance:
    the order wasmtime's header map reports them in."""
    order: dict[str, list[bytes]] = {}
    for name, value in pairs:
        order.setdefault(name, []).append(value)
    return [(name, v) for name, values in order.items() for v in values]


@types_if.constructor("fields")
def fields_new(host: HostContext) -> Fields:
    return Fields()


@types_if.static("fields", "from-list")
def fields_from_list(host: HostContext, entries: list[tuple[str, bytes]]) -> Fields:
    fields = Fields()
    for name, value in entries:
        key = fields._check_mutation(name, [value])
        fields.entries.append((key, value))
    return fields


@types_if.method("fields", "get")
def fields_get(host: HostContext, fields: Fields, name: str) -> list[bytes]:
    return fields.values(name)


@types_if.method("fields", "has")
def fields_has(host: HostContext, fields: Fields, name: str) -> bool:
    return bool(fields.values(name))


@types_if.method("fields", "set")
def fields_set(host: HostContext, fields: Fields, name: str, values: list[bytes]) -> None:
    key = fields._check_mutation(name, values)
    kept = [(n, v) for n, v in fields.entries if n != key]
    fields.entries[:] = kept + [(key, v) for v in values]


@types_if.method("fields", "delete")
def fields_delete(host: HostContext, fields: Fields, name: str) -> None:
    key = fields._check_mutation(name, [])
    fields.entries[:] = [(n, v) for n, v in fields.entries if n != key]


@types_if.method("fields", "append")
def fields_append(host: HostContext, fields: Fields, name: str, value: bytes) -> None:
    key = fields._check_mutation(name, [value])
    fields.entries.append((key, value))


@types_if.method("fields", "entries")
def fields_entries(host: HostContext, fields: Fields) -> list[tuple[str, bytes]]:
    return grouped(fields.entries)


@types_if.method("fields", "clone")
def fields_clone(host: HostContext, fields: Fields) -> Fields:
    return Fields(list(fields.entries))
