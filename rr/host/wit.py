"""Declaring host implementations by their WIT names.

Each module in rr/host/ creates an `Interface` per WASI interface it serves and
decorates plain functions `impl(host, *args)` with the exact WIT function name, so a
reader can grep for `"blocking-write-and-flush"` and land on its implementation.
Versions are not part of the key: one implementation serves wasi:io/streams@0.2.0
through @0.2.12; the linker binds it under whatever version the component imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Impl = Callable[..., Any]

INTERFACES: dict[str, "Interface"] = {}

# Interface groups imported only when a component imports them: wasi:http's module pulls
# in http.client & co, wasi:sockets' socket and ipaddress, start-up time that a guest
# without them should not pay.
LAZY: dict[str, str] = {"wasi:http/": "rr.host.http.register", "wasi:sockets/": "rr.host.sockets.register"}


def lookup(base: str) -> "Interface | None":
    """The implementation of an interface (no version), importing its module if needed."""
    if base not in INTERFACES:
        for prefix, module in LAZY.items():
            if base.startswith(prefix):
                importlib.import_module(module)
    return INTERFACES.get(base)


class Interface:
    def __init__(self, name: str):
        if name in INTERFACES:
            raise ValueError(f"interface {name} declared twice")
        self.name = name
        self.funcs: dict[str, Impl] = {}
        INTERFACES[name] = self

    def _register(self, wit_name: str) -> Callable[[Impl], Impl]:
        def decorate(impl: Impl) -> Impl:
            if wit_name in self.funcs:
                raise ValueError(f"{self.name}.{wit_name} implemented twice")
            self.funcs[wit_name] = impl
            return impl
        return decorate

    def func(self, name: str) -> Callable[[Impl], Impl]:
        return self._register(name)

    def method(self, resource: str, name: str) -> Callable[[Impl], Impl]:
        return self._register(f"[method]{resource}.{name}")

    def static(self, resource: str, name: str) -> Callable[[Impl], Impl]:
        return self._register(f"[static]{resource}.{name}")

    def constructor(self, resource: str) -> Callable[[Impl], Impl]:
        return self._register(f"[constructor]{resource}")


def split_versioned(import_name: str) -> tuple[str, str | None]:
    """'wasi:io/streams@0.2.12' -> ('wasi:io/streams', '0.2.12')."""
    base, sep, version = import_name.partition("@")
    return base, (version if sep else None)
