"""The fast-path composition of a guest, from the cache when it is there.

Apart from compose.py so that a cache hit, every run but a guest's first, imports
nothing of the composer (wasm-tools, the WAT printer, subprocess: ~5 ms of start-up).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..cache import cache_dir, store

# Bump when the generated adapter (adapter.py, compose.py) changes: cached compositions are keyed by it.
ADAPTER_REVISION = "3"


@dataclass
class Composition:
    wasm: bytes | None   # the outer component, or None: run the guest as it is
    note: str            # why not, or what was done (for -v)
    cached: bool


def compose_cached(guest: bytes, sha256: str, use_cache: bool = True) -> Composition:
    key = hashlib.sha256(f"{sha256}:rr-{__version__}:adapter-{ADAPTER_REVISION}".encode()).hexdigest()
    folder = cache_dir() / "fastpath"
    built, refused = folder / f"{key}.wasm", folder / f"{key}.refused"
    if use_cache:
        if built.exists():
            return Composition(built.read_bytes(), "fast byte path (cached composition)", True)
        if refused.exists():
            return Composition(None, refused.read_text(), True)
    from .compose import REFUSALS, compose
    try:
        wasm, note = compose(guest), "fast byte path (composed)"
    except REFUSALS as e:
        wasm, note = None, f"plain byte path: {e}"
    if use_cache:
        store(refused if wasm is None else built, note.encode() if wasm is None else wasm)
    return Composition(wasm, note, False)
