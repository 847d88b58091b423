"""`rr verify`: record once, replay N times, exit 0 when every replay matched and 121 when one
did not. Real `python -m rr` subprocesses, a real loopback HTTP server for the HTTP guest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import guests
from httpservers import PLAIN_BODY, TestServer
from rr.errors import EXIT_DIVERGED, EXIT_USAGE

pytestmark = pytest.mark.timeout(300)


def rr(*args: str, tmp: Path) -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, timeout=120, cwd=tmp,
                          env=guests._clean_env({"TMPDIR": str(tmp)}))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def rr_lines(ran: guests.Ran) -> list[str]:
    return [line for line in ran.err.splitlines() if line.startswith("rr: ")]


def test_a_deterministic_guest_verifies_and_leaves_no_trace(tmp_path: Path) -> None:
    ran = rr("verify", str(guests.C_BIN / "random.wasm"), "--replays", "3", tmp=tmp_path)
    assert ran.status == 0, ran.err
    assert ran.out.count("random ") == 1 and ran.out.count("random2 ") == 1   # the recording's output only
    assert rr_lines(ran) == ["rr: verify: recorded 3 events (exit status 0)",
                             "rr: verify: every replay matched the recording"]
    assert list(tmp_path.iterdir()) == []


def test_an_http_guest_verifies_against_a_live_server(tmp_path: Path) -> None:
    with TestServer() as server:
        ran = rr("verify", str(guests.C_BIN / "http_get.wasm"), "-t", "h.cbor", "--allow-http",
                 f"127.0.0.1:{server.port}", "--", server.url("/plain"), tmp=tmp_path)
        assert ran.status == 0, ran.err
        assert server.connections == 1   # the replays answer from the trace
    assert PLAIN_BODY in ran.stdout and (tmp_path / "h.cbor").is_file()
    assert rr_lines(ran)[-1] == "rr: verify: every replay matched the recording"
    assert "1 HTTP exchanges to h.cbor" in rr_lines(ran)[0]


def test_a_replay_that_differs_is_named_with_why_and_the_trace_is_kept(tmp_path: Path) -> None:
    """args_env prints its environment; a redacted variable reaches the replays as the marker."""
    ran = rr("verify", str(guests.C_BIN / "args_env.wasm"), "--env", "TOKEN=s3cret", "--redact-env", "TOKEN",
             tmp=tmp_path)
    assert ran.status == EXIT_DIVERGED
    lines = rr_lines(ran)
    assert lines[1].startswith("rr: verify: replays 1, 2 of 2 differ from the recording: replay diverged: "
                               "the guest's stdout differs from the recording within bytes 0-")
    assert lines[-1].startswith("rr: verify: 0 of 2 replays matched the recording (the trace: ")
    kept = Path(lines[-1].split("(the trace: ")[1].rstrip(")"))
    assert kept.is_file() and kept.parent.parent == tmp_path


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "t.cbor").write_bytes(b"precious")
    random = str(guests.C_BIN / "random.wasm")
    ran = rr("verify", random, "-t", "t.cbor", tmp=tmp_path)
    assert ran.status == EXIT_USAGE and "refusing to overwrite" in ran.err
    assert (tmp_path / "t.cbor").read_bytes() == b"precious"
    ran = rr("verify", random, "--replays", "0", tmp=tmp_path)
    assert ran.status == EXIT_USAGE and ran.err.count("\n") == 1
