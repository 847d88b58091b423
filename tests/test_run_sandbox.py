"""`rr run` grants nothing by default, enforces its limits, and rejects bad inputs with
one line on stderr and a documented status (README / `rr run --help`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import wasmtime

import guests
from guests import Ran, rr_run

# A command whose `run` never returns and never calls the host: only epoch
# interruption can stop it.
SPIN_WAT = """
(component
  (core module $M (func (export "run") (result i32) (loop $forever (br $forever)) unreachable))
  (core instance $m (instantiate $M))
  (func $run (result (result)) (canon lift (core func $m "run")))
  (instance $i (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $i)))
"""
# A command that grows its 1-page memory by 64 pages (4 MiB) at run time and traps
# (`unreachable`) if memory.grow is refused, otherwise returns ok.
GROW_WAT = """
(component
  (core module $M
    (memory 1)
    (func (export "run") (result i32)
      (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
      (i32.const 0)))
  (core instance $m (instantiate $M))
  (func $run (result (result)) (canon lift (core func $m "run")))
  (instance $i (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $i)))
"""


def _wat_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(text))
    return path


def _one_rr_line(ran: Ran) -> str:
    """rr's own failures are exactly one line `rr: ...` on stderr, never a traceback."""
    assert "Traceback" not in ran.err
    lines = ran.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rr: "), ran.err
    return lines[0]


# ------------------------------------------------------------------ nothing granted by default


def test_host_environment_does_not_leak() -> None:
    ran = rr_run(guests.c_guest("args_env"), env={"RR_TEST_SECRET": "s3cret"})
    assert ran.status == 0
    assert "s3cret" not in ran.out and "RR_TEST_SECRET" not in ran.out
    assert "env " not in ran.out  # no variable at all: PATH and HOME stay outside too


def test_inherit_env_passes_the_environment_and_env_overrides() -> None:
    ran = rr_run(guests.c_guest("args_env"), flags=("--inherit-env", "--env", "RR_OVERRIDE=flag"),
                 env={"RR_TEST_SECRET": "s3cret", "RR_OVERRIDE": "environment"})
    assert ran.status == 0
    lines = ran.out.splitlines()
    assert "env RR_TEST_SECRET=s3cret" in lines
    assert "env RR_OVERRIDE=flag" in lines and "env RR_OVERRIDE=environment" not in lines


def test_no_preopens_without_dir(tmp_path: Path) -> None:
    """Without --dir the guest reaches no file, not even in rr's working directory."""
    (tmp_path / "in.txt").write_text("line one\nline two\n")
    for path in ("/data", ".", str(tmp_path)):
        ran = rr_run(guests.c_guest("fs_ops"), path)
        assert ran.status == 1
        assert "read in.txt: ENOTCAPABLE" in ran.out and ran.out.endswith("failures 9\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


# ------------------------------------------------------------------ limits


def test_timeout_stops_a_sleeping_guest() -> None:
    start = time.monotonic()
    ran = rr_run(guests.c_guest("clock"), "60000", flags=("--timeout", "1"), timeout=20)
    elapsed = time.monotonic() - start
    assert ran.status == 124
    assert "--timeout" in _one_rr_line(ran)
    assert elapsed < 10


def test_timeout_stops_a_spinning_guest(tmp_path: Path) -> None:
    """A guest that loops without calling the host must be interrupted too (epochs)."""
    spin = _wat_file(tmp_path, "spin", SPIN_WAT)
    try:
        ran = rr_run(spin, flags=("--timeout", "1"), timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("rr run --timeout 1 did not stop a spinning guest within 8 s")
    assert ran.status == 124
    assert "--timeout" in _one_rr_line(ran)


def test_max_memory_below_the_initial_memory(tmp_path: Path) -> None:
    """The guest's declared memory does not fit: status 123, before it runs."""
    ran = rr_run(guests.c_guest("args_env"), flags=("--max-memory", "64K"))
    assert ran.status == 123 and ran.out == ""
    assert "--max-memory" in _one_rr_line(ran)


def test_max_memory_refused_grow_traps(tmp_path: Path) -> None:
    """A refused memory.grow returns -1 to the guest (as in wasmtime); this guest then traps."""
    grow = _wat_file(tmp_path, "grow", GROW_WAT)
    assert rr_run(grow, flags=("--max-memory", "8M")).status == 0
    ran = rr_run(grow, flags=("--max-memory", "1M"))
    assert ran.status == 134
    assert "unreachable" in _one_rr_line(ran)


def test_max_memory_every_size_gives_a_clear_outcome() -> None:
    """From too small to enough, in 64 KiB steps: each run either succeeds or fails with
    one line and status 123 (limit) or 134 (the guest trapped on a refused grow) —
    never a multi-line error or 'cannot instantiate' (126)."""
    stdin = b"hello\n"
    for pages in range(1, 17):
        ran = rr_run(guests.c_guest("echo_stdin"), flags=("--max-memory", f"{pages * 64}K"), stdin=stdin)
        if ran.status == 0:
            assert ran.stdout == stdin
            return
        assert ran.status in (123, 134), f"{pages * 64}K: status {ran.status}: {ran.err}"
        _one_rr_line(ran)
    pytest.fail("echo_stdin never ran within --max-memory 1M")


# ------------------------------------------------------------------ wrong inputs


def test_missing_file() -> None:
    ran = rr_run(Path("/nonexistent/guest.wasm"))
    assert ran.status == 125
    assert "no such file" in _one_rr_line(ran)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    ran = rr_run(tmp_path)
    assert ran.status == 125
    _one_rr_line(ran)


def test_core_module_is_not_a_component(tmp_path: Path) -> None:
    core = tmp_path / "core.wasm"
    core.write_bytes(wasmtime.wat2wasm('(module (func (export "_start")))'))
    ran = rr_run(core)
    assert ran.status == 125
    assert "core wasm module" in _one_rr_line(ran)


def test_text_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not WebAssembly\n")
    ran = rr_run(text)
    assert ran.status == 125
    assert "not a WebAssembly file" in _one_rr_line(ran)


def test_corrupt_component(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x0d\x00\x01\x00" + b"garbage")
    ran = rr_run(bad)
    assert ran.status == 125
    assert "invalid component" in _one_rr_line(ran)


def test_component_that_is_not_a_command(tmp_path: Path) -> None:
    """A valid component with no wasi:cli/run export (here: no exports at all)."""
    library = _wat_file(tmp_path, "library", "(component)")
    ran = rr_run(library)
    assert ran.status == 125
    assert "wasi:cli/run" in _one_rr_line(ran)


def test_bad_flag_values() -> None:
    component = guests.c_guest("args_env")
    for flags in (("--env", "NOEQUALS"), ("--dir", "/nonexistent-dir-for-rr")):
        ran = rr_run(component, flags=flags)
        assert ran.status == 125, flags
        _one_rr_line(ran)
