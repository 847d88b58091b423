"""`rr run` behaves like the reference `wasmtime run` (wasmtime 49 CLI) on every guest.

Each guest runs under both, as subprocesses with equivalent flags and the same stdin;
stdout must match after replacing the values that legitimately differ between two runs
(clock readings, random numbers: each checked for shape before it is replaced), and so
must the exit status and, where the guest writes it itself, stderr.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import guests
from guests import Ran, rr_run, wasmtime_run

Normalise = Callable[[str], str]


def _sub_checked(pattern: str, replacement: str, check: Callable[[re.Match[str]], bool]) -> Normalise:
    """Replace every match of `pattern` after asserting `check` on it (so a broken value fails)."""
    rx = re.compile(pattern, re.MULTILINE)

    def normalise(text: str) -> str:
        for m in rx.finditer(text):
            assert check(m), f"implausible value: {m.group(0)!r}"
        return rx.sub(replacement, text)

    return normalise


def _recent_wall(seconds: str) -> bool:
    return abs(int(seconds) - time.time()) < 600


def _chain(*steps: Normalise) -> Normalise:
    def normalise(text: str) -> str:
        for step in steps:
            text = step(text)
        return text
    return normalise


def _same(text: str) -> str:
    return text


# C clock: "wall <s>.<9 digits>", "slept_ns <n>"; resolution and slept_ok compared as is.
C_CLOCK = _chain(
    _sub_checked(r"^wall (\d+)\.\d{9}$", "wall S.NS", lambda m: _recent_wall(m.group(1))),
    _sub_checked(r"^slept_ns (\d+)$", "slept_ns N", lambda m: int(m.group(1)) >= 5_000_000),
)
# WAT clock: "wall <s> <ns>", "mono <ns>", "mono2 <ns>".
WAT_CLOCK = _chain(
    _sub_checked(r"^wall (\d+) (\d+)$", "wall S NS",
                 lambda m: _recent_wall(m.group(1)) and int(m.group(2)) < 10**9),
    _sub_checked(r"^mono2? \d+$", "mono N", lambda m: True),
)
C_RANDOM = _sub_checked(r"^(random2?) [0-9a-f]{32}$", r"\1 HEX", lambda m: True)
WAT_RANDOM = _chain(
    _sub_checked(r"^(bytes) [0-9a-f]{32}$", r"\1 HEX", lambda m: True),
    _sub_checked(r"^(insecure_bytes) [0-9a-f]{16}$", r"\1 HEX", lambda m: True),
    _sub_checked(r"^(u64|insecure_u64) \d+$", r"\1 N", lambda m: int(m.group(0).split()[1]) < 2**64),
    _sub_checked(r"^seed \d+ \d+$", "seed A B", lambda m: True),
)


def _pattern(n: int) -> bytes:
    """bigout's output: byte i is i % 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


@dataclass
class Case:
    guest: str                        # "c/<name>" or "wat/<name>"
    args: tuple[str, ...] = ()
    stdin: bytes = b""
    normalise: Normalise = _same
    compare_stderr: bool = True       # False where stderr is the runtime's own trap report
    rr_flags: tuple[str, ...] = ()
    wasmtime_flags: tuple[str, ...] = ()
    expect_status: int = 0
    id: str = field(default="")

    def __post_init__(self) -> None:
        self.id = self.id or self.guest.replace("/", "-")


ENV_FLAGS = ("--env", "GREETING=hello world", "--env", "EMPTY=", "--env", "UNICODE=h\u00e9")
STDIN_TEXT = "line one\nline two\n\u00e9\u00e8 non-ascii\n".encode() * 50
STDIN_BINARY = _pattern(300_000)

C_CASES = [
    Case("c/clock", ("5",), normalise=C_CLOCK),
    Case("c/random", normalise=C_RANDOM),
    Case("c/args_env", ("one", "two words", "--flag-for-guest"), rr_flags=ENV_FLAGS, wasmtime_flags=ENV_FLAGS),
    Case("c/args_env", id="c-args_env-no-args"),
    Case("c/echo_stdin", stdin=STDIN_TEXT),
    Case("c/echo_stdin", id="c-echo_stdin-empty"),
    Case("c/exit_code", ("0",)),
    Case("c/exit_code", ("3",), expect_status=1, id="c-exit_code-3"),
    Case("c/trap", compare_stderr=False, expect_status=134),
    Case("c/bigout", ("1",)),
    Case("c/bigin", stdin=STDIN_BINARY),
    Case("c/bigin", id="c-bigin-empty"),
]

WAT_CASES = {
    "hello": [Case("wat/hello")],
    "clock": [Case("wat/clock", normalise=WAT_CLOCK)],
    "random": [Case("wat/random", normalise=WAT_RANDOM)],
    "args_env": [Case("wat/args_env", ("x", "y z"), rr_flags=ENV_FLAGS, wasmtime_flags=ENV_FLAGS)],
    "echo": [Case("wat/echo", stdin=STDIN_TEXT), Case("wat/echo", stdin=STDIN_BINARY, id="wat-echo-binary")],
    "exit": [Case("wat/exit", expect_status=1)],
    "exit_code": [Case("wat/exit_code", expect_status=3, wasmtime_flags=("-S", "cli-exit-with-code"))],
    "trap": [Case("wat/trap", compare_stderr=False, expect_status=134)],
    "poll_many": [Case("wat/poll_many")],
    "stderr_and_out": [Case("wat/stderr_and_out")],
    # Refused before running by both, with each tool's own status: test_run_signature.py.
    "bad_run_param": [],
    "bad_run_string": [],
    "grow": [Case("wat/grow", compare_stderr=False, expect_status=134)],
    # They never end by themselves: a stop and its replay are test_limits.py's and test_signals.py's.
    "spin": [],
    "ticker": [],
    # Both refuse the socket without a grant with access-denied (1); with -S tcp both create it.
    "sockets": [Case("wat/sockets"), Case("wat/sockets", wasmtime_flags=("-S", "tcp"), rr_flags=("-S", "tcp"),
                                          id="wat-sockets-tcp")],
}


def _discovered_wat_cases() -> list[Case]:
    """Cases for the .wat files present now; one with no expectations for any new guest."""
    return [case for name in guests.wat_names() for case in WAT_CASES.get(name, [Case(f"wat/{name}")])]


def _component(case: Case, wat_dir: Path) -> Path:
    kind, name = case.guest.split("/")
    if kind == "c":
        return guests.c_guest(name)
    wasm = wat_dir / f"{name}.wasm"
    if not wasm.exists():
        pytest.skip(f"{name}.wat does not compile yet: {(wat_dir / f'{name}.error').read_text()[:200]}")
    return wasm


def _both(case: Case, wat_dir: Path) -> tuple[Ran, Ran]:
    component = _component(case, wat_dir)
    ours = rr_run(component, *case.args, flags=case.rr_flags, stdin=case.stdin)
    theirs = wasmtime_run(component, *case.args, flags=case.wasmtime_flags, stdin=case.stdin)
    return ours, theirs


ALL_CASES = C_CASES + _discovered_wat_cases()


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_same_as_wasmtime(case: Case, wat_dir: Path, wasmtime_bin: Path) -> None:
    ours, theirs = _both(case, wat_dir)
    assert theirs.status == case.expect_status, f"reference changed: {theirs.err}"
    assert ours.status == theirs.status, ours.err
    if case.normalise is _same and len(theirs.stdout) > 4096:
        assert hashlib.sha256(ours.stdout).hexdigest() == hashlib.sha256(theirs.stdout).hexdigest()
        assert len(ours.stdout) == len(theirs.stdout)
    else:
        assert case.normalise(ours.out) == case.normalise(theirs.out)
    if case.compare_stderr:
        assert ours.err == theirs.err


def test_random_values_differ_between_calls(wat_dir: Path) -> None:
    """The normaliser hides random values: check they are not constant."""
    out = rr_run(guests.c_guest("random")).out.split()
    assert out[0] == "random" and out[2] == "random2" and out[1] != out[3]


def test_argv0_is_the_component_file_name(wat_dir: Path, wasmtime_bin: Path) -> None:
    component = guests.c_guest("args_env")
    for ran in (rr_run(component, "a"), wasmtime_run(component, "a")):
        assert "argv[0] args_env.wasm\nargv[1] a\n" in ran.out


def test_bigout_bytes_are_the_documented_pattern() -> None:
    ran = rr_run(guests.c_guest("bigout"), "1")
    assert ran.status == 0 and ran.stdout == _pattern(1 << 20)


def test_bigin_hash_of_stdin() -> None:
    ran = rr_run(guests.c_guest("bigin"), stdin=b"")
    assert ran.out == "bytes 0 fnv1a64 cbf29ce484222325\n"


def test_trap_reported_by_both(wat_dir: Path, wasmtime_bin: Path) -> None:
    """Stderr differs in form (wasmtime prints a backtrace, rr one line); both name the cause."""
    ours, theirs = _both(Case("c/trap"), wat_dir)
    cause = "wasm `unreachable` instruction executed"
    assert cause in theirs.err
    assert ours.err.count("\n") == 1 and ours.err.startswith("rr: ") and cause in ours.err
    assert ours.out == theirs.out == "about to trap\n"


def test_fs_ops_with_a_writable_dir(tmp_path: Path, wasmtime_bin: Path) -> None:
    """--dir-rw HOST::/data (rr) is wasmtime's --dir HOST::/data (read-write there)."""
    results = []
    for runner, flag in ((rr_run, "--dir-rw"), (wasmtime_run, "--dir")):
        host = tmp_path / runner.__name__
        host.mkdir()
        (host / "in.txt").write_text("line one\nline two\n")
        ran = runner(guests.c_guest("fs_ops"), "/data", flags=(flag, f"{host}::/data"))
        results.append((ran.status, ran.out))
    assert results[0] == results[1]
    assert results[1][1].endswith("failures 0\n")


def test_no_preopen_means_no_filesystem(wasmtime_bin: Path) -> None:
    ours = rr_run(guests.c_guest("fs_ops"), "/data")
    theirs = wasmtime_run(guests.c_guest("fs_ops"), "/data")
    assert (ours.status, ours.out) == (theirs.status, theirs.out)
    assert "failures 9" in ours.out


def test_sockets_are_refused_with_an_error_value(wat_dir: Path) -> None:
    """Without a grant a socket request gets wasmtime's `access-denied`, not a trap."""
    ran = guests.rr_run(wat_dir / "sockets.wasm")
    assert (ran.status, ran.out) == (0, "tcp err 01\n"), ran.err
