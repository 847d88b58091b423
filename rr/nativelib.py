"""rr's C extension (rr/_native.c), if it is built and matches this source; the one place that
decides whether the native paths are used (RR_NATIVE=0 turns them all off).

Imports nothing from wasmtime: the trace codec uses it too (mapped writes, event decoding).
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Any

ABI = 7   # must equal ABI_VERSION in rr/_native.c: a stale build is not used

try:
    from . import _native as _lib
    why_not = "" if getattr(_lib, "ABI_VERSION", None) == ABI else \
        f"the built extension is stale (ABI {getattr(_lib, 'ABI_VERSION', 0)}, this source wants {ABI}: pip install -e . again)"
except ImportError as e:   # built without a C compiler
    _lib = None  # type: ignore[assignment]
    why_not = f"the native extension is not built: {e}"


# The calls rr/_native.c runs, by trace name -> its op code there (rr/native.py adds the WIT shapes).
OPS: dict[str, int] = {
    "wasi:clocks/wall-clock.now": 0,
    "wasi:clocks/wall-clock.resolution": 1,
    "wasi:clocks/monotonic-clock.now": 2,
    "wasi:clocks/monotonic-clock.resolution": 3,
    "wasi:random/random.get-random-bytes": 4,
    "wasi:random/random.get-random-u64": 5,
    "wasi:random/insecure.get-insecure-random-bytes": 6,
    "wasi:random/insecure.get-insecure-random-u64": 7,
    "wasi:random/insecure-seed.insecure-seed": 8,
}


def built() -> ModuleType | None:
    """The extension, whatever RR_NATIVE says (None when missing or stale)."""
    return None if why_not else _lib


def lib() -> ModuleType | None:
    """The extension when the native paths are on, else None."""
    if why_not or os.environ.get("RR_NATIVE", "1") == "0":
        return None
    return _lib


def new_lock() -> Any:
    """The trace's write lock (rr/merge.py SharedWriter): one the native recorder takes without
    a Python call when the native paths are on, else a threading.Lock."""
    native = lib()
    return native.Lock() if native is not None else threading.Lock()
