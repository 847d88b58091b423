"""The fast byte path (rr/fastpath/ + rr/host/fast_streams.py) changes nothing a guest can see.

Every guest in the suite runs under `rr run` with the fast path (the default) and with
RR_FAST_PATH=0: stdout, stderr and exit status must be byte-identical. Guests whose
output is nondeterministic (clocks, random) are compared through record/replay instead:
a trace recorded on one path replays on the other with the same output. Large streams
(128 MiB each way) must pass without a trap, and every byte value must survive a read.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

import guests
from guests import Ran, rr_run
from httpservers import TestServer
from rr import runner
from rr.fastpath.adapter import FAST_INTERFACE
from rr.host.context import Sandbox
from rr.host.wit import INTERFACES

PLAIN = {"RR_FAST_PATH": "0"}
FAST = {"RR_FAST_PATH": "1"}
ALL_BYTES = bytes(range(256)) * 1024


def _pattern(n: int) -> bytes:
    """bigout's output: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@dataclass
class Case:
    id: str
    guest: str                       # "c/<name>" or "wat/<name>"
    args: tuple[str, ...] = ()
    stdin: bytes = b""
    fs_tree: bool = False            # a fresh writable preopen at /data, given as argv[1]
    http: str | None = None          # a path on the loopback test server, given as argv[1]


CASES = [
    Case("c-args_env", "c/args_env", ("one", "two words")),
    Case("c-echo_stdin", "c/echo_stdin", stdin=b"line\n\xe9\xff\x00" * 1000),
    Case("c-exit_code-3", "c/exit_code", ("3",)),
    Case("c-trap", "c/trap"),
    Case("c-bigout", "c/bigout", ("2",)),
    Case("c-bigin", "c/bigin", stdin=_pattern(3 << 20)),
    Case("c-fs_ops", "c/fs_ops", fs_tree=True),
    Case("c-fs_escape", "c/fs_escape", fs_tree=True),
    Case("c-fs_ops_py", "c/fs_ops_py", fs_tree=True),
    Case("c-http_get", "c/http_get", http="/bytes?n=300000"),
    Case("c-http_post", "c/http_post", stdin=ALL_BYTES, http="/echo"),
    Case("c-http_concurrent", "c/http_concurrent", http="/plain"),
    Case("wat-hello", "wat/hello"),
    Case("wat-args_env", "wat/args_env", ("x", "y z")),
    Case("wat-echo", "wat/echo", stdin=ALL_BYTES),
    Case("wat-exit", "wat/exit"),
    Case("wat-exit_code", "wat/exit_code"),
    Case("wat-trap", "wat/trap"),
    Case("wat-poll_many", "wat/poll_many"),
    Case("wat-stderr_and_out", "wat/stderr_and_out"),
]
# Clocks and random differ from run to run: compared through a recording instead.
RECORDED = [Case("c-clock", "c/clock", ("0",)), Case("c-random", "c/random"),
            Case("wat-clock", "wat/clock"), Case("wat-random", "wat/random"),
            Case("c-echo_stdin", "c/echo_stdin", stdin=ALL_BYTES)]


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with TestServer() as s:
        yield s


def _component(guest: str, wat_dir: Path) -> Path:
    kind, name = guest.split("/")
    path = guests.c_guest(name) if kind == "c" else wat_dir / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{guest} is not built")
    return path


def _run(case: Case, wat_dir: Path, tmp: Path, env: dict[str, str], server: TestServer | None) -> Ran:
    flags: list[str] = []
    args = list(case.args)
    if case.fs_tree:
        tree = tmp / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        (tree / "g").mkdir(parents=True)
        (tree / "g" / "in.txt").write_bytes(b"hello from the host\n")
        flags += ["--dir-rw", f"{tree / 'g'}::/data"]
        args.insert(0, "/data")
    if case.http is not None:
        assert server is not None
        args.insert(0, server.url(case.http))
        flags += ["--allow-http", "127.0.0.1"]
    return rr_run(_component(case.guest, wat_dir), *args, flags=flags, stdin=case.stdin, env=env)


def _without_date(out: bytes) -> bytes:
    return b"\n".join(line for line in out.split(b"\n") if not line.startswith(b"header date: "))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_output_on_both_paths(case: Case, wat_dir: Path, tmp_path: Path, server: TestServer) -> None:
    fast = _run(case, wat_dir, tmp_path, FAST, server)
    plain = _run(case, wat_dir, tmp_path, PLAIN, server)
    assert (fast.status, fast.stderr) == (plain.status, plain.stderr)
    assert _without_date(fast.stdout) == _without_date(plain.stdout)
    assert fast.stdout or fast.stderr, "the guest printed nothing: the comparison would prove nothing"


@pytest.mark.parametrize("case", CASES + RECORDED, ids=[c.id for c in CASES + RECORDED])
def test_every_guest_is_wrapped(case: Case, wat_dir: Path) -> None:
    if case.guest == "c/fs_ops_py":
        pytest.skip("compiling its 18 MB composition is covered by test_same_output_on_both_paths")
    program = runner.load(_component(case.guest, wat_dir), fast_path=True)
    assert program.fast_path, program.fast_path_note
    assert FAST_INTERFACE in program.imports
    assert not runner.unsupported_imports(program) or case.guest.startswith("c/http")


@pytest.mark.parametrize("record_env,replay_env", [(FAST, PLAIN), (PLAIN, FAST)], ids=["fast-to-plain", "plain-to-fast"])
@pytest.mark.parametrize("case", RECORDED, ids=[c.id for c in RECORDED])
def test_trace_replays_on_the_other_path(case: Case, record_env: dict[str, str], replay_env: dict[str, str],
                                         wat_dir: Path, tmp_path: Path) -> None:
    component = str(_component(case.guest, wat_dir))
    trace = tmp_path / "t.cbor"

    def rr(*args: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "rr", *args], input=stdin, capture_output=True,
                              timeout=guests.RUN_TIMEOUT, cwd=guests.REPO, env={**os.environ, **env})

    recorded = rr("record", component, "-t", str(trace), "--", *case.args, env=record_env, stdin=case.stdin)
    assert recorded.returncode == 0, recorded.stderr
    replayed = rr("replay", component, str(trace), env=replay_env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout and recorded.stdout
    if case.stdin:
        assert replayed.stdout == case.stdin  # echo: the replayed stdin is the recorded one


def test_128_mib_out_and_in_without_a_trap() -> None:
    mib = 128
    out = rr_run(guests.c_guest("bigout"), str(mib), env=FAST, timeout=300)
    assert out.status == 0, out.err
    assert len(out.stdout) == mib << 20
    assert hashlib.sha256(out.stdout).digest() == hashlib.sha256(_pattern(mib << 20)).digest()
    # bigin prints the length and FNV-1a of what it read; the plain path (~40 MB/s) is the oracle
    fast = rr_run(guests.c_guest("bigin"), stdin=out.stdout, env=FAST, timeout=300)
    plain = rr_run(guests.c_guest("bigin"), stdin=out.stdout, env=PLAIN, timeout=300)
    assert fast.status == 0, fast.err
    assert fast.out.split()[:2] == ["bytes", str(mib << 20)], fast.out
    assert fast.stdout == plain.stdout


def test_every_byte_value_survives_a_read(wat_dir: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: several reads, every byte value in each
    for component in (guests.c_guest("echo_stdin"), _component("wat/echo", wat_dir)):
        ran = rr_run(component, stdin=data, env=FAST)
        assert ran.status == 0, ran.err
        assert ran.stdout == data


@pytest.mark.parametrize("n", range(8))
def test_short_reads_of_every_length_mod_3(n: int) -> None:
    # reads travel as base64: no padding, "=" and "==" must each decode to the exact bytes
    data = bytes([0xFF, 0x00, 0x80, 0x7F, 0x3D, 0x41, 0xC3, 0xA9])[:n]
    ran = rr_run(guests.c_guest("echo_stdin"), stdin=data, env=FAST)
    assert ran.status == 0 and ran.stdout == data


def test_the_native_base64_of_reads_is_binascii_s() -> None:
    # rr/_native.c's encoder of read bytes (when built and RR_NATIVE is not 0) against CPython's
    from rr.host import fast_streams
    from rr.nativelib import built

    lib = built()
    if lib is None:
        pytest.skip("the native extension is not built")
    rng = random.Random(11)
    for n in [*range(20), 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20]:
        data = bytes(rng.getrandbits(8) for _ in range(n)) if n < 5000 else rng.randbytes(n)
        assert lib.base64_ascii(data) == fast_streams._base64_python(data)
        assert lib.base64_ascii(memoryview(data)) == fast_streams._base64_python(data)


@pytest.mark.parametrize("reply", ["\u0100AAA", "abc"], ids=["above-0xff", "not-base64"])
def test_a_read_the_adapter_cannot_decode_traps(reply: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A UTF-16 string (a code point above 0xFF) or a length that is not base64 never
    # reaches the guest as bytes: the adapter traps.
    monkeypatch.setitem(INTERFACES[FAST_INTERFACE].funcs, "blocking-read", lambda host, s, n: reply)
    program = runner.load(guests.c_guest("echo_stdin"), fast_path=True)
    out = io.BytesIO()
    outcome = runner.run(program, Sandbox(argv=["echo_stdin"], stdin=io.BytesIO(b"x"), stdout=out))
    assert outcome.kind == "trap" and out.getvalue() == b""


def test_a_guest_without_streams_runs_on_the_plain_path(tmp_path: Path) -> None:
    wat = """(component
      (import "wasi:cli/exit@0.2.0" (instance $exit
        (type $r (result))
        (export "exit" (func (param "status" $r)))))
      (core module $m (func (export "run") (result i32) (i32.const 0)))
      (core instance $i (instantiate $m))
      (func $run (result (result)) (canon lift (core func $i "run")))
      (instance $run-i (export "run" (func $run)))
      (export "wasi:cli/run@0.2.0" (instance $run-i)))"""
    path = tmp_path / "no_streams.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat))
    program = runner.load(path, fast_path=True)
    assert not program.fast_path and "does not import wasi:io/streams" in program.fast_path_note
    assert runner.run(program, Sandbox(argv=["no_streams"])).status == 0


def test_plain_path_when_asked() -> None:
    program = runner.load(guests.c_guest("echo_stdin"), fast_path=False)
    assert not program.fast_path and FAST_INTERFACE not in program.imports
