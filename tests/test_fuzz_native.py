"""The inputs benchmarks/fuzz_native.py found (tests/data/fuzz_native/, each a control byte and
a trace; see that folder's README), read again by the C cursor, the C event decoder and the
Python reader with the installed build: each must read the same records, or be refused with the
same message, and only with rr's TraceError (tests/nativefuzz.py, the fuzzer's own check)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nativefuzz  # noqa: E402

from rr.nativelib import built  # noqa: E402

INPUTS = sorted((Path(__file__).resolve().parent / "data" / "fuzz_native").glob("*.bin"))
needs_native = pytest.mark.skipif(built() is None, reason="rr/_native.c is not built")


def test_the_regression_inputs_are_there() -> None:
    assert len(INPUTS) >= 2


@needs_native
@pytest.mark.parametrize("path", INPUTS, ids=[p.stem for p in INPUTS])
def test_c_and_python_read_a_found_input_alike(path: Path, tmp_path: Path) -> None:
    nativefuzz.one_input(path.read_bytes(), tmp_path)


@needs_native
@pytest.mark.parametrize("item", ["f900f5", "fa3f8000f4", "fb3ff00000000000f6", "f8f5", "f8f4", "f4", "f5", "f6"])
def test_the_c_decoder_reads_simple_values_by_their_head_byte(item: str) -> None:
    """C decoded a float (or a two-byte simple value) whose last byte is f4/f5/f6 as false /
    true / null; it must decode a value as Python does, or leave it to Python (None)."""
    record = bytes.fromhex("830080" + item)
    got = built().event_record(record, 0, len(record), nativefuzz.NAMES)
    assert got is None or repr(got) == repr(nativefuzz.python_event(record))
    if item in ("f4", "f5", "f6"):
        assert got is not None and got["result"] is {"f4": False, "f5": True, "f6": None}[item]
