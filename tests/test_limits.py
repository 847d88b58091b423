"""--max-memory and --timeout are part of the run: checked when given, stored in the trace
header, and applied again by replay (the same refused memory.grow, the same stop at the same
point, the same status and output), which takes no limit flags of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import guests
from rr.trace import Outcome, TraceWriter, read_trace
from rr.trace.errors import TraceError

pytestmark = pytest.mark.timeout(180)


def rr(*args: str, stdin: bytes = b"") -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], input=stdin, capture_output=True,
                          timeout=60, cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def one_rr_line(ran: guests.Ran) -> str:
    assert "Traceback" not in ran.err and "Fatal Python error" not in ran.err, ran.err
    lines = [ln for ln in ran.err.splitlines() if ln.startswith("rr: ")]
    assert len(lines) == 1, ran.err
    return lines[0]


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize("command", ["run", "record"])
@pytest.mark.parametrize("flag, value", [
    ("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "abc"), ("--timeout", "nan"), ("--timeout", "inf"),
    ("--max-memory", "0"), ("--max-memory", "-5"), ("--max-memory", "12Q"), ("--max-memory", "0K"),
])
def test_a_bad_limit_is_a_one_line_usage_error(command: str, flag: str, value: str, tmp_path: Path) -> None:
    trace = tmp_path / "t.cbor"
    extra = ["-t", str(trace)] if command == "record" else []
    ran = rr(command, *extra, f"{flag}={value}", str(guests.c_guest("random")))
    assert ran.status == 125, ran.err
    line = one_rr_line(ran)
    assert flag in line and repr(value) in line
    assert ran.out == "" and not trace.exists()


@pytest.mark.parametrize("flag, value", [("--timeout", "5"), ("--max-memory", "1M")])
def test_replay_takes_no_limit_flag(flag: str, value: str, tmp_path: Path) -> None:
    trace = tmp_path / "t.cbor"
    assert rr("record", "-t", str(trace), str(guests.c_guest("random"))).status == 0
    ran = rr("replay", str(guests.c_guest("random")), str(trace), flag, value)
    assert ran.status == 125
    assert "limits recorded in the trace" in one_rr_line(ran) and ran.out == ""


# ------------------------------------------------------------------ --max-memory


def test_memory_limit_is_recorded_and_applied_on_replay(wat_dir: Path, tmp_path: Path) -> None:
    """grow.wasm prints how far memory.grow got: the limit's 16 pages, not wasm32's 65536."""
    grow = wat_dir / "grow.wasm"
    trace = tmp_path / "grow.cbor"
    recorded = rr("record", "-t", str(trace), "--max-memory", "1M", str(grow))
    assert (recorded.status, recorded.out) == (134, "refused at 16 pages\n"), recorded.err
    assert "--max-memory 1048576" in one_rr_line(recorded)
    assert read_trace(trace).header.limits == {"max_memory": 1 << 20}

    unlimited = rr("run", str(grow))
    assert unlimited.out == "refused at 65536 pages\n"   # what a replay without the limit would print

    for path in ([], ["--no-fast-path"]):
        replayed = rr("replay", *path, str(grow), str(trace))
        assert (replayed.status, replayed.stdout, one_rr_line(replayed)) == \
            (recorded.status, recorded.stdout, one_rr_line(recorded).split("; recorded")[0])


def test_memory_too_small_to_start_replays_as_123(tmp_path: Path) -> None:
    trace = tmp_path / "small.cbor"
    recorded = rr("record", "-t", str(trace), "--max-memory", "64K", str(guests.c_guest("args_env")))
    assert recorded.status == 123 and recorded.out == ""
    assert "--max-memory" in one_rr_line(recorded)
    outcome = read_trace(trace).outcome
    assert outcome is not None and outcome.kind == "memory"
    replayed = rr("replay", str(guests.c_guest("args_env")), str(trace))
    assert (replayed.status, replayed.out) == (123, "")
    assert "--max-memory" in one_rr_line(replayed)


# ------------------------------------------------------------------ --timeout


def test_timeout_is_replayed_at_the_same_tick_without_a_clock(wat_dir: Path, tmp_path: Path) -> None:
    """ticker prints a line every 20 ms until stopped: the replay prints exactly as many
    lines and ends 124, on the fast path and on the plain one."""
    ticker = wat_dir / "ticker.wasm"
    trace = tmp_path / "ticker.cbor"
    recorded = rr("record", "-t", str(trace), "--timeout", "1", str(ticker))
    assert recorded.status == 124, recorded.err
    assert "--timeout 1s" in one_rr_line(recorded)
    lines = recorded.out.splitlines()
    assert lines and lines == [f"tick {i}" for i in range(1, len(lines) + 1)]

    t = read_trace(trace)
    assert t.header.limits == {"timeout": 1.0}
    assert t.outcome is not None and t.outcome.kind == "timeout" and t.outcome.event == len(t.events)

    for path in ([], ["--no-fast-path"]):
        replayed = rr("replay", *path, str(ticker), str(trace))
        assert (replayed.status, replayed.stdout) == (124, recorded.stdout), replayed.err
        assert "same point" in one_rr_line(replayed)

    shown = rr("inspect", str(trace), "--no-events")
    assert "limits     --timeout 1s" in shown.out
    assert f"timeout (--timeout) after {len(t.events)} guest events" in shown.out
    lines = [json.loads(line) for line in rr("inspect", str(trace), "--json", "--no-events").out.splitlines()]
    assert lines[0]["header"]["limits"] == {"timeout": 1.0}
    assert lines[-1]["outcome"]["kind"] == "timeout" and lines[-1]["outcome"]["calls"] >= 1


def test_timeout_stops_a_guest_that_never_calls_the_host_again(wat_dir: Path, tmp_path: Path) -> None:
    spin = wat_dir / "spin.wasm"
    trace = tmp_path / "spin.cbor"
    recorded = rr("record", "-t", str(trace), "--timeout", "0.5", str(spin))
    assert (recorded.status, recorded.out) == (124, "spinning\n"), recorded.err
    replayed = rr("replay", str(spin), str(trace))
    assert (replayed.status, replayed.out) == (124, "spinning\n"), replayed.err


def test_a_replay_that_does_not_reach_the_recorded_stop_diverges(wat_dir: Path, tmp_path: Path) -> None:
    """The stop is checked like the rest of the outcome: the guest must end exactly there."""
    ticker = wat_dir / "ticker.wasm"
    trace = tmp_path / "ticker.cbor"
    assert rr("record", "-t", str(trace), "--timeout", "0.5", str(ticker)).status == 124
    t = read_trace(trace)
    assert t.outcome is not None and t.outcome.kind == "timeout"
    edited = tmp_path / "edited.cbor"
    with TraceWriter(edited) as w:
        w.write_header(t.header)
        for event in t.events:
            w.write_event(event)
        w.write_outcome(Outcome.stop("timeout", t.outcome.event + 1, t.outcome.calls + 3))
    replayed = rr("replay", str(ticker), str(edited))
    assert replayed.status == 121
    assert "replay diverged" in one_rr_line(replayed)


# ------------------------------------------------------------------ the trace model


@pytest.mark.parametrize("suffix", [".cbor", ".jsonl"])
@pytest.mark.parametrize("outcome", [Outcome.memory("does not fit"), Outcome.stop("timeout", 3, 7),
                                     Outcome.stop("interrupted", 0, 0), Outcome.stop("terminated", 12, 40)])
def test_stop_outcomes_read_back(outcome: Outcome, suffix: str, tmp_path: Path) -> None:
    t = read_trace(_one_trace(tmp_path / f"t{suffix}", outcome))
    assert t.outcome == outcome and t.complete


def test_outcome_fields_are_checked() -> None:
    with pytest.raises(ValueError):
        Outcome("timeout", event=3)               # no calls
    with pytest.raises(ValueError):
        Outcome("memory", message="x", event=1)   # a field memory does not carry
    with pytest.raises(ValueError):
        Outcome("timeout", status=124, event=1, calls=2)


def test_header_limits_are_checked(tmp_path: Path) -> None:
    t = read_trace(_one_trace(tmp_path / "ok.cbor", Outcome.exit(0)))
    import dataclasses
    for bad in ({"max_memory": 0}, {"timeout": -1.0}, {"timeout": 5}, {"cpu": 1}):
        with pytest.raises((ValueError, TraceError)):
            with TraceWriter(tmp_path / f"bad{len(list(tmp_path.iterdir()))}.cbor") as w:
                w.write_header(dataclasses.replace(t.header, limits=bad))


def _one_trace(path: Path, outcome: Outcome) -> Path:
    from rr.trace import ComponentInfo, Event, Header
    header = Header(rr_version="0", wasmtime_version="0", component=ComponentInfo("0" * 64, 1, "x.wasm"),
                    argv=["x.wasm"], env=[], dirs=[], start_time=1.0, limits={"timeout": 2.5, "max_memory": 65536})
    with TraceWriter(path) as w:
        w.write_header(header)
        w.write_event(Event("wasi:random/random.get-random-u64", [], 7))
        w.write_outcome(outcome)
    assert read_trace(path).header.limits == {"timeout": 2.5, "max_memory": 65536}
    return path
