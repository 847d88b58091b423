"""Seeded mutations of a real `rr serve -t` trace replay honestly: identical, or one `rr:` line
with 121/122 (tests/tracefuzz.py; benchmarks/fuzz_traces.py --served-count runs hundreds).
A failure names the seed and mutant index that make it again (RR_FUZZ_SEED picks another)."""

from __future__ import annotations

import os

import pytest

import guests
import tracefuzz as tf
from httpservers import TestServer

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(guests.wasmtime_cli() is None, reason="as tests/test_serve.py")]

SEED = int(os.environ.get("RR_FUZZ_SEED", "20261201"))


def test_mutants_of_a_server_trace_replay_honestly(tmp_path):
    with TestServer() as upstream:
        served = tf.record_served(tmp_path, upstream.url("/bytes?n=3000"))
    # the original replays identically, from a file and from a pipe
    for pipe in (False, True):
        cls, replay = tf.replay_cli(served, tf.Mutant("served", "cbor", "none", "byte", served.data("cbor")),
                                    tmp_path / "orig.cbor", pipe=pipe)
        assert cls == "identical", (replay.status, replay.stderr[-500:])
    tally = tf.run_cli([served], SEED, 30_000, 16, tmp_path / "scratch", 2, tmp_path / "failures")
    assert tally.failed() == 0, "\n".join([f"seed {SEED}: {tally.classes}", *tally.failures])
    assert tally.mutants == 16 and tally.classes.get("rejected-122"), tally.classes
