"""Compile the hand-written WAT guests in tests/guests/wat/ to component binaries.

Tests build guests at test time with `wasmtime.wat2wasm` (under 1 ms each), so no
toolchain and no checked-in binaries are needed.
"""

from functools import lru_cache
from pathlib import Path

import wasmtime

WAT_DIR = Path(__file__).parent / "wat"


@lru_cache(maxsize=None)
def build(name: str) -> bytes:
    """The component binary of tests/guests/wat/<name>.wat."""
    return wasmtime.wat2wasm((WAT_DIR / f"{name}.wat").read_text())


if __name__ == "__main__":   # python3 tests/guests/wat_build.py IN.wat OUT.wasm
    import sys
    source, out = sys.argv[1:]
    Path(out).write_bytes(wasmtime.wat2wasm(Path(source).read_text()))
