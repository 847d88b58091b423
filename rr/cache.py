"""Compiled-component cache: compiling an 18 MB component takes 6-14 s, loading its
serialized artifact 1-80 ms. Keyed by the component's sha256, the wasmtime version
and the engine settings rr uses, stored in the user's cache directory."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import wasmtime
from wasmtime.component import Component


def cache_dir() -> Path:
    root = os.environ.get("RR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rr")
    return Path(root)


def store(path: Path, data: bytes) -> None:
    """Put `data` at `path` whole or not at all: concurrent rr processes never see half a file.
    A cache that cannot be written only costs time (the error is dropped, the partial file too).
    The partial file is named for this process and thread (no tempfile: the proxy's start
    writes here and leaves tempfile unimported, rr/deferred.py)."""
    part = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as f:
            f.write(data)
        os.replace(part, path)
    except OSError:
        try:
            part.unlink(missing_ok=True)
        except OSError:
            pass


def bytecode_file(stem: str, suffix: str) -> Path:
    """A file of compiled Python in the cache, named as a .pyc is: for this interpreter and
    optimisation level."""
    opt = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
    return cache_dir() / "pyc" / f"{stem}.{sys.implementation.cache_tag}{opt}{suffix}"


def load_component(engine: wasmtime.Engine, wasm: bytes, sha256: str, engine_key: str,
                   use_cache: bool = True) -> tuple[Component, bool]:
    """Returns (component, cache_hit)."""
    key = hashlib.sha256(f"{sha256}:{wasmtime_version()}:{engine_key}".encode()).hexdigest()
    path = cache_dir() / "compiled" / f"{key}.cwasm"
    if use_cache and path.exists():
        try:
            return Component.deserialize_file(engine, str(path)), True
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # stale or damaged: recompile below
    component = Component(engine, wasm)
    if use_cache:
        store(path, component.serialize())
    return component, False


_WASMTIME_VERSION: list[str] = []


def wasmtime_version() -> str:
    """wasmtime-py's version, from the name of its dist-info directory beside the package:
    importlib.metadata costs ~18 ms of every start-up (it is the fallback)."""
    if not _WASMTIME_VERSION:
        _WASMTIME_VERSION.append(_dist_info_version() or _metadata_version())
    return _WASMTIME_VERSION[0]


def _dist_info_version() -> str | None:
    site = os.path.dirname(os.path.dirname(wasmtime.__file__))
    try:
        names = [n for n in os.listdir(site) if n.startswith("wasmtime-") and n.endswith(".dist-info")]
    except OSError:
        return None
    if len(names) != 1:   # none (an odd install) or several (stale ones): ask the metadata
        return None
    version = names[0][len("wasmtime-"):-len(".dist-info")]
    return version if version[:1].isdigit() else None


def _metadata_version() -> str:
    from importlib.metadata import version
    return version("wasmtime")
