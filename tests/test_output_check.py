"""Output checks: a replay whose guest writes something else than the recording is a divergence
(121, naming the stream and where), a replay into a closed stdout is not.

Real `python -m rr` subprocesses on the committed C guests; the digest arithmetic in-process.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import guests
from rr.errors import EXIT_DIVERGED
import rr.output as rr_output
from rr.output import DIGEST_BYTES, LEAF, Outputs, StreamDigest, stream_difference

RANDOM = guests.C_BIN / "random.wasm"
ARGS_ENV = guests.C_BIN / "args_env.wasm"
BIGOUT = guests.C_BIN / "bigout.wasm"


def rr(*args: str) -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, timeout=120, cwd=guests.REPO,
                          env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def edit_outcome(trace: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Hand-edit the outcome line of a JSON Lines trace (the format honours hand edits)."""
    lines = trace.read_text().splitlines()
    outcome = json.loads(lines[-1])
    edit(outcome["output"]["stdout"])
    trace.write_text("\n".join([*lines[:-1], json.dumps(outcome)]) + "\n")


def one_divergence_line(ran: guests.Ran) -> str:
    assert ran.status == EXIT_DIVERGED, (ran.status, ran.err)
    lines = [line for line in ran.err.splitlines() if line.startswith("rr: ")]
    assert len(lines) == 1, ran.err
    return ran.err[ran.err.index("rr: "):]


def test_the_trace_records_digests_and_optionally_the_bytes(tmp_path: Path) -> None:
    digest, data = tmp_path / "d.jsonl", tmp_path / "b.jsonl"
    rec = rr("record", str(RANDOM), "-t", str(digest))
    assert rec.status == 0
    out = json.loads(digest.read_text().splitlines()[-1])["output"]
    assert out["stdout"]["size"] == len(rec.stdout) and out["stdout"]["sha256"] == hashlib.sha256(rec.stdout).hexdigest()
    assert out["stderr"]["size"] == 0 and "data" not in out["stdout"]
    rec = rr("record", str(RANDOM), "-t", str(data), "--record-output")
    out = json.loads(data.read_text().splitlines()[-1])["output"]
    assert out["stdout"]["data"] == {"$utf8": rec.out}
    shown = rr("inspect", str(data), "--no-events").out
    assert f"output     stdout {len(rec.stdout)} bytes sha256 {out['stdout']['sha256'][:16]}... (bytes recorded), " \
           f"stderr 0 bytes (bytes recorded)" in shown
    assert rr("replay", str(RANDOM), str(data)).status == 0


def test_edited_recorded_bytes_give_the_exact_offset_and_both_sides(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    rec = rr("record", str(RANDOM), "-t", str(trace), "--record-output")
    at = rec.out.index("random2 ") + len("random2 ")
    edited = rec.out[:at] + "X" + rec.out[at + 1:]
    edit_outcome(trace, lambda s: s.update(data={"$utf8": edited}, sha256=hashlib.sha256(edited.encode()).hexdigest()))
    message = one_divergence_line(rr("replay", str(RANDOM), str(trace)))
    assert message.startswith(f"rr: replay diverged: the guest's stdout differs from the recording at byte {at} "
                              f"(recorded {len(rec.stdout)} bytes, replayed {len(rec.stdout)})")
    assert f"recorded: ...{rec.out[at - 32:at]!r} | 'X" in message
    assert f"replayed: ...{rec.out[at - 32:at]!r} | {rec.out[at:at + 32]!r}" in message


def test_edited_digest_names_the_stream_and_the_chunk(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    rr("record", str(RANDOM), "-t", str(trace))
    edit_outcome(trace, lambda s: s.update(sha256="0" * 64, digests={"$bytes": "AAAAAA=="}))
    message = one_divergence_line(rr("replay", str(RANDOM), str(trace)))
    assert "the guest's stdout differs from the recording within bytes 0-80 (recorded 81 bytes, replayed 81;" in message
    assert "--record-output" in message and "replayed bytes 0-: 'random " in message


def test_a_guest_that_prints_a_redacted_value_is_caught(tmp_path: Path) -> None:
    """Every input of the replay matches the trace, but the guest got the marker where the
    recording had the secret, and prints it: the output check is what notices."""
    trace = tmp_path / "t.cbor"
    rec = rr("record", str(ARGS_ENV), "-t", str(trace), "--env", "TOKEN=s3cret", "--redact-env", "TOKEN")
    assert rec.status == 0 and b"env TOKEN=s3cret\n" in rec.stdout
    ran = rr("replay", str(ARGS_ENV), str(trace))
    assert b"env TOKEN=[REDACTED]\n" in ran.stdout
    message = one_divergence_line(ran)
    assert "the guest's stdout differs from the recording within bytes 0-" in message
    assert "env TOKEN=[REDACTED]" in message


def test_replay_into_a_closed_stdout_is_not_a_divergence(tmp_path: Path) -> None:
    """`rr replay ... | head -c 100`: the guest's writes succeed, as while recording (bigout
    fails with `write: Broken pipe` when they do not)."""
    trace = tmp_path / "t.cbor"
    rec = subprocess.run([sys.executable, "-m", "rr", "record", str(BIGOUT), "-t", str(trace), "--", "2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, cwd=guests.REPO,
                         env=guests._clean_env(None))
    assert rec.returncode == 0, rec.stderr
    proc = subprocess.Popen([sys.executable, "-m", "rr", "replay", str(BIGOUT), str(trace)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=guests.REPO, env=guests._clean_env(None))
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert head == bytes(i % 251 for i in range(100)) and err == b""


def test_an_old_trace_without_output_replays(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    rr("record", str(RANDOM), "-t", str(trace))
    lines = trace.read_text().splitlines()
    outcome = json.loads(lines[-1])
    del outcome["output"]
    trace.write_text("\n".join([*lines[:-1], json.dumps(outcome)]) + "\n")
    assert rr("replay", str(RANDOM), str(trace)).status == 0
    assert "output " not in rr("inspect", str(trace), "--no-events").out
    assert rr("replay", str(RANDOM), str(guests.REPO / "tests" / "data" / "v1" / "random.cbor")).status == 0


# ------------------------------------------------------------------- the digests themselves

def test_digests_do_not_depend_on_how_the_writes_were_cut() -> None:
    data = bytes(i * 7 % 256 for i in range(40_000))
    whole, pieces = StreamDigest(), StreamDigest()
    whole.update(data)
    for start in range(0, len(data), 333):
        pieces.update(data[start:start + 333])
    assert whole.summary() == pieces.summary()
    s = whole.summary()
    assert s["size"] == 40_000 and s["chunk"] == LEAF and len(s["digests"]) == DIGEST_BYTES * 10
    assert s["digests"][:DIGEST_BYTES] == zlib.crc32(data[:LEAF]).to_bytes(DIGEST_BYTES, "big")
    assert s["sha256"] == hashlib.sha256(data).hexdigest()


def test_long_outputs_keep_at_most_max_chunks_digests_and_still_locate_a_difference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rr_output, "MAX_CHUNKS", 16)   # as 4096 would, on 64 MiB
    n = 48 * LEAF + 5                                   # 49 leaves -> chunks of 4 leaves
    data = bytearray(bytes(i % 251 for i in range(n)))
    recorded = StreamDigest()
    recorded.update(bytes(data))
    summary = recorded.summary()
    assert summary["chunk"] == 4 * LEAF and len(summary["digests"]) == DIGEST_BYTES * 13
    data[30 * LEAF + 7] ^= 1
    replayed = Outputs(None, None, keep=LEAF).stdout.digest   # keeps only the first chunk's bytes
    replayed.update(bytes(data))
    message = stream_difference("stdout", summary, replayed)
    start = 28 * LEAF   # the chunk of leaves 28..31
    assert message is not None and f"within bytes {start}-{start + 4 * LEAF - 1} " in message
    assert stream_difference("stdout", summary, recorded) is None


def test_a_replay_that_wrote_more_is_located_exactly() -> None:
    recorded, replayed = StreamDigest(), StreamDigest(keep=1 << 20)
    recorded.update(b"line 1\nline 2\n")
    replayed.update(b"line 1\nline 2\nline 3\n")
    message = stream_difference("stderr", recorded.summary(), replayed)
    assert message is not None and message.startswith("the guest's stderr differs from the recording at byte 14: "
                                                      "the replay wrote more")
    assert "'line 1\\nline 2\\n' | 'line 3\\n'" in message


def test_a_recording_whose_stdout_failed_replays_the_failure(tmp_path: Path) -> None:
    """`rr record ... | head -c1`: the guest saw its write fail (bigout then exits 1). The trace
    says at which write; the replay fails that write whether or not its own stdout is open."""
    trace = tmp_path / "t.cbor"
    rec = subprocess.Popen([sys.executable, "-m", "rr", "record", str(BIGOUT), "-t", str(trace), "--", "4"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=guests.REPO, env=guests._clean_env(None))
    assert rec.stdout is not None and rec.stderr is not None
    rec.stdout.read(1)
    rec.stdout.close()
    rec_err = rec.stderr.read()
    assert rec.wait(timeout=120) == 1 and rec_err.startswith(b"write: "), rec_err
    failed = [line for line in rr("inspect", str(trace)).out.splitlines() if "rr:output.write-failed" in line]
    assert len(failed) == 1 and "('stdout', " in failed[0]
    replayed = rr("replay", str(BIGOUT), str(trace))   # stdout read to the end this time
    assert (replayed.status, replayed.err) == (1, rec_err.decode().split("rr: ")[0])
    assert 0 < len(replayed.stdout) < 4 << 20


def test_the_python_api_takes_the_same_options(tmp_path: Path) -> None:
    """rr.record(..., redaction=, record_output=) in-process, as the pytest fixture passes them."""
    import rr as rr_api
    from rr.redact import Redaction
    from rr.trace import read_trace

    rec = rr_api.record(RANDOM, tmp_path / "r.cbor", record_output=True)
    assert rec.exit_status == 0
    assert read_trace(tmp_path / "r.cbor").outcome.output["stdout"]["data"] == rec.stdout
    assert rr_api.replay(RANDOM, tmp_path / "r.cbor").exit_status == 0

    rec = rr_api.record(ARGS_ENV, tmp_path / "e.cbor", env={"TOKEN": "s3cret"}, redaction=Redaction(env=("TOKEN",)))
    assert rec.exit_status == 0 and b"TOKEN=s3cret" in rec.stdout
    assert b"s3cret" not in (tmp_path / "e.cbor").read_bytes()
    replayed = rr_api.replay(ARGS_ENV, tmp_path / "e.cbor")
    assert replayed.diverged and replayed.exit_status == EXIT_DIVERGED
    assert "the guest's stdout differs from the recording" in (replayed.message or "")
