import os
from pathlib import Path

import pytest

GUESTS = Path(__file__).parents[2] / "tests" / "guests" / "bin"


def test_clock_sleeps(rr_component):
    result = rr_component(GUESTS / "clock.wasm", args=["20"], trace="traces/clock.cbor")
    assert result.exit_status == 0
    assert b"slept_ok 1" in result.stdout


@pytest.mark.rr(trace_dir="traces/http")  # this test's trace: traces/http/test_fetch.cbor
def test_fetch(rr_component):
    url = os.environ.get("DEMO_URL", "http://127.0.0.1:8000/hello.txt")
    result = rr_component(GUESTS / "http_get.wasm", args=[url], allow_http=["127.0.0.1"])
    assert result.stdout.endswith(b"hello from the rr demo upstream\n")
