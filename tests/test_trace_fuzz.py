"""Seeded mutations of real traces replay honestly: identical, or one `rr:` line with 121/122.

The corpus is recorded at test time by `python -m rr record` (tests/tracefuzz.py: random, clock,
echo_stdin with stdin, fs_ops with a --dir-rw grant, bigout, and http_get against a loopback
server), in .cbor and the .jsonl rr.trace.convert makes of it. Mutants are made at the byte
level and at the record level (through rr.trace's reader and writer); benchmarks/fuzz_traces.py
runs the same mutants by the hundred thousand. A failure names the seed and mutant index that
make it again (RR_FUZZ_SEED picks another seed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import guests
import tracefuzz as tf
from httpservers import TestServer

pytestmark = pytest.mark.timeout(600)   # a hang guard: ~30 s alone, minutes on a loaded machine

SEED = int(os.environ.get("RR_FUZZ_SEED", "20261201"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tf.Recording]]:
    work = tmp_path_factory.mktemp("fuzz-corpus")
    with TestServer() as server:
        recs = [tf.record(case, work) for case in tf.guest_cases(work, server.url("/bytes?n=3000"))]
    for r in recs:   # the originals themselves replay identically
        cls, replay = tf.replay_cli(r, tf.Mutant(r.name, "cbor", "none", "byte", r.data("cbor")), work / "orig.cbor")
        assert cls == "identical", (r.name, replay.status, replay.stderr[-500:])
    return tf.save_corpus(recs, work), recs


def _rr_replay(wasm: Path, trace: Path) -> guests.Ran:
    import subprocess
    done = subprocess.run([sys.executable, "-m", "rr", "replay", str(wasm), str(trace)], capture_output=True,
                          cwd=guests.REPO, env=guests._clean_env(None), timeout=60)
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def test_corruption_right_after_the_last_event_the_guest_reads_is_one_line_122(
        corpus: tuple[Path, list[tf.Recording]], tmp_path: Path) -> None:
    """Found by the fuzzer (seed 1 mutant 34): replay looks past the guest's last call for events
    it never asked for; meeting the corruption there escaped as a traceback with exit status 1."""
    rec = next(r for r in corpus[1] if r.name == "random")
    data = rec.data("cbor")
    last = tf.record_spans(data, "cbor")[-1][0]   # the outcome record
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(data[:last] + b"\xc7" + data[last:])
    ran = _rr_replay(rec.wasm, bad)
    assert ran.status == 122, ran.err
    assert "Traceback" not in ran.err
    assert ran.err.splitlines()[-1].startswith("rr: ") and "cannot start a record" in ran.err
    assert ran.stdout == rec.stdout   # the guest ran to its end before the corruption was met


def _report(tally: tf.Tally) -> str:
    lines = [f"seed {SEED} (RR_FUZZ_SEED): {tally.mutants} mutants, classes {tally.classes}"]
    return "\n".join(lines + tally.failures[:40])


def test_mutants_replayed_in_process(corpus: tuple[Path, list[tf.Recording]], tmp_path: Path) -> None:
    """500 mutants of the non-HTTP recordings, every one read by rr.trace and replayed by
    rr.session.replay in one worker process (a signal that kills it is a failure too)."""
    path, _ = corpus
    tally = tf.run_inprocess(path, SEED, 0, 500, tmp_path, tmp_path / "failures", every=1)
    assert tally.failed() == 0, _report(tally)
    kinds = {kind for kind, _ in tally.by_kind}
    assert kinds == set(tf.ALL_KINDS), f"kinds never made: {set(tf.ALL_KINDS) - kinds}"
    # the harness tells the classes apart: each of these is reached by some mutant. ("as-edited"
    # is rare now: the trace records digests of the guest's output, so an edit that changes what
    # the guest prints is a 121 at the end of the replay.)
    for cls in ("identical", "rejected-121", "rejected-122"):
        assert tally.classes.get(cls), _report(tally)


def test_http_and_other_mutants_replayed_by_the_cli(corpus: tuple[Path, list[tf.Recording]], tmp_path: Path) -> None:
    """`python -m rr replay` of mutants, two at a time: 12 of the HTTP recording (the replay
    proxy serves the mutated flows) and 6 of the others."""
    _, recs = corpus
    http = [r for r in recs if r.http]
    tally = tf.run_cli(http, SEED, 10_000, 12, tmp_path, 2, tmp_path / "failures")
    tally.merge(tf.run_cli([r for r in recs if not r.http], SEED, 20_000, 6, tmp_path, 2, tmp_path / "failures"))
    assert tally.failed() == 0, _report(tally)
    assert tally.classes.get("rejected-122") and tally.mutants == 18, _report(tally)


def test_a_lone_surrogate_in_a_jsonl_trace_is_one_line_122(corpus: tuple[Path, list[tf.Recording]],
                                                           tmp_path: Path) -> None:
    """Found by the fuzzer (seed 3 mutant 2801): a call name "\\ud800" in a JSONL trace killed
    `rr replay` with SIGSEGV (the divergence message quoting it could not be encoded inside the
    host callback) and made `rr inspect` and `rr convert` internal errors (70): JSON text is
    Unicode, a lone surrogate escape is not, and CBOR cannot hold it either."""
    import subprocess
    rec = next(r for r in corpus[1] if r.name == "random")
    lines = rec.data("jsonl").split(b"\n")
    first = next(i for i, ln in enumerate(lines) if ln.startswith(b'{"call": "'))
    lines[first] = b'{"call": "\\ud800' + lines[first][len(b'{"call": "'):]
    bad = tmp_path / "surrogate.jsonl"
    bad.write_bytes(b"\n".join(lines))
    runs = [_rr_replay(rec.wasm, bad)]
    for args in (["inspect", str(bad)], ["inspect", "--json", str(bad)], ["convert", str(bad), str(tmp_path / "c.cbor")]):
        done = subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, cwd=guests.REPO,
                              env=guests._clean_env(None), timeout=60)
        runs.append(guests.Ran(done.returncode, done.stdout, done.stderr))
    for ran in runs:
        assert ran.status == 122, (ran.status, ran.err)
        assert ran.err.count("\n") == 1 and ran.err.startswith("rr: ") and "surrogate" in ran.err, ran.err
