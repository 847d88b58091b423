"""README.md is true: its exit-status table is EXIT_STATUSES and every command in it runs.

Every fenced block in README.md is one test, in a fresh copy of the repository (so
`tests/guests/bin/...` and `tests/compose/site` resolve), with this venv's `rr` first on PATH:

- A block that cannot run in a test is marked by the line before it:
  `<!-- not run: why -->`. Any other block must be ```sh; a new block is picked up
  automatically, and an unmarked block that is not ```sh fails test_every_block_runs_or_says_why.
- A block with `$ ` lines is a session: each `$ ` command's output (stdout and stderr, as a
  terminal shows them) is what follows it up to the next `$ `; a command followed by no output
  is not compared. Values that differ between runs are matched by shape: hex strings of 16 or
  more digits (random bytes, hashes; the same README value must stand for the same actual value
  throughout the block) and ISO timestamps.
- In other blocks every line is a command; `#` lines are comments.
- Every command must exit 0, or N when it ends with `# exits N`.
- `CMD &` starts CMD in the background (a `python3 -m http.server PORT` or an
  `rr serve ... --addr 127.0.0.1:PORT` is waited for until it accepts connections, and PORT is
  replaced by a free one throughout the block); `kill %1`
  stops the oldest one still running; the block's end stops the rest.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import guests
from rr.errors import EXIT_STATUSES

README = guests.REPO / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")
EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")
HEX = re.compile(r"[0-9a-f]{16,}")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?"
COMMAND_TIMEOUT = 120    # seconds for one command (a command that waits for Ctrl-C fails here)
INSTALL_TIMEOUT = 600    # the set-up block creates a venv and installs into it


@dataclass
class Block:
    line: int                # 1-based line of the opening fence
    lang: str
    body: list[str]
    not_run: str | None      # the reason, when marked


@dataclass
class Step:
    command: str
    expected: list[str] | None = None   # None: output not compared
    status: int = 0


@dataclass
class Background:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        before = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        marked = NOT_RUN.match(before)
        blocks.append(Block(start + 1, m.group(1), body, marked.group(1) if marked else None))
        i += 1
    return blocks


def _logical_lines(body: list[str]) -> list[str]:
    """Lines with `\\` continuations joined."""
    out: list[str] = []
    pending = ""
    for ln in body:
        if ln.endswith("\\"):
            pending += ln[:-1] + " "
            continue
        out.append(pending + ln)
        pending = ""
    if pending:
        out.append(pending)
    return out


def steps(block: Block) -> list[Step]:
    lines = _logical_lines(block.body)
    result: list[Step] = []
    if any(ln.startswith("$ ") for ln in lines):
        for ln in lines:
            if ln.startswith("$ "):
                result.append(Step(ln[2:]))
            else:
                assert result, f"README.md:{block.line}: output before the first `$ ` command"
                if result[-1].expected is None:
                    result[-1].expected = []
                result[-1].expected.append(ln)
        for step in result:
            while step.expected and not step.expected[-1].strip():
                step.expected.pop()
            if not step.expected:
                step.expected = None
    else:
        result = [Step(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    for step in result:
        m = EXITS.search(step.command)
        if m:
            step.status = int(m.group(1))
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _localize_ports(block: Block) -> Block:
    """A demo server's fixed port, replaced throughout the block by a free one."""
    body = list(block.body)
    for port in {m.group(1) or m.group(2) for ln in body for m in [re.search(_LISTENS, ln)] if m}:
        free = str(_free_port())
        body = [re.sub(rf"\b{port}\b", free, ln) for ln in body]
    return Block(block.line, block.lang, body, block.not_run)


# A background server the block talks to: its port, and for http.server the --bind address.
_LISTENS = r"http\.server (\d+)|rr serve .*--addr 127\.0\.0\.1:(\d+)"


def _wait_until_listening(command: str, proc: subprocess.Popen[bytes]) -> None:
    m = re.search(r"http\.server (\d+)(?:.*--bind (\S+))?", command)
    served = re.search(r"rr serve .*--addr 127\.0\.0\.1:(\d+)", command)
    if not m and not served:
        return
    addr = (m.group(2) or "127.0.0.1", int(m.group(1))) if m else ("127.0.0.1", int(served.group(1)))
    for _ in range(2400):  # bounded: 120 s (rr serve compiles its component first)
        assert proc.poll() is None, f"{command!r} exited with {proc.returncode}"
        try:
            socket.create_connection(addr, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{command!r} never listened on {addr}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    # `sh -c` dies of the signal at once, while what it started (rr serve writing its trace's
    # end) may still be stopping: wait until every process holding the pipe's write end is gone.
    alive = proc.alive_fd  # type: ignore[attr-defined]
    try:
        ready, _, _ = select.select([alive], [], [], 30)
        assert ready and os.read(alive, 1) == b"", f"{proc.args!r} still runs 30 s after SIGTERM"
    finally:
        os.close(alive)


def _matches(expected: list[str], actual: list[str], bound: dict[str, str]) -> bool:
    """Line by line; hex values bind consistently (README value -> actual value) in `bound`."""
    if len(expected) != len(actual):
        return False
    trial = dict(bound)
    for exp, act in zip(expected, actual):
        parts = re.split(rf"({HEX.pattern}|{TIMESTAMP})", exp.rstrip())
        pattern = "".join(
            (f"([0-9a-f]{{{len(p)}}})" if HEX.fullmatch(p) else TIMESTAMP if re.fullmatch(TIMESTAMP, p)
             else re.escape(p)) for p in parts if p)
        m = re.fullmatch(pattern, act.rstrip())
        if not m:
            return False
        hexes = [p for p in parts if HEX.fullmatch(p)]
        for readme_value, actual_value in zip(hexes, m.groups()):
            if trial.setdefault(readme_value, actual_value) != actual_value:
                return False
    if len(set(trial.values())) != len(trial):  # two README values for one actual value
        return False
    bound.update(trial)
    return True


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repository as a user has it after cloning: no venv, caches or build leftovers."""
    dest = tmp_path / "rr"
    shutil.copytree(guests.REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache-rr", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"))
    return dest


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    return env


BLOCKS = readme_blocks(README.read_text())


def test_readme_has_blocks_to_run() -> None:
    assert sum(1 for b in BLOCKS if b.not_run is None) >= 4


def test_every_block_runs_or_says_why() -> None:
    for block in BLOCKS:
        if block.not_run is None:
            assert block.lang == "sh", (f"README.md:{block.line}: a ```{block.lang} block: make it ```sh "
                                        "or put `<!-- not run: why -->` on the line before it")
        else:
            assert block.not_run, f"README.md:{block.line}: `not run:` needs a reason"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "sh"], ids=lambda b: f"line{b.line}")
def test_readme_block(block: Block, repo_copy: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line}: not run: {block.not_run}")
    block = _localize_ports(block)
    background: list[subprocess.Popen[bytes]] = []
    bound: dict[str, str] = {}
    env = _env()
    try:
        for step in steps(block):
            where = f"README.md:{block.line}: `{step.command}`"
            command = step.command.strip()
            if command == "kill %1":
                assert background, f"{where}: nothing runs in the background"
                _stop(background.pop(0))
                continue
            if command.endswith("&") and not command.endswith("&&"):
                alive, held = os.pipe()   # nobody writes: EOF once all its holders exited
                proc = subprocess.Popen(["sh", "-c", command[:-1]], cwd=repo_copy, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, pass_fds=(held,))
                os.close(held)
                proc.alive_fd = alive  # type: ignore[attr-defined]
                background.append(proc)
                _wait_until_listening(command, proc)
                continue
            try:
                done = subprocess.run(["sh", "-c", command], cwd=repo_copy, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      timeout=INSTALL_TIMEOUT if "pip install" in command else COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired as e:
                raise AssertionError(f"{where} did not finish in {e.timeout} s: "
                                     f"{(e.stdout or b'').decode('utf-8', 'replace')}") from None
            output = done.stdout.decode("utf-8", "replace")
            assert done.returncode == step.status, f"{where} exited {done.returncode}:\n{output}"
            if step.expected is not None:
                assert _matches(step.expected, output.splitlines(), bound), (
                    f"{where} printed:\n{output}\nREADME shows:\n" + "\n".join(step.expected))
    finally:
        for proc in background:
            _stop(proc)


def _readme_exit_table() -> list[tuple[str, str]]:
    text = README.read_text()
    section = text[text.index("### Exit statuses"):]
    section = section[:section.find("\n#", 1)]   # up to the next heading: later sections have tables too
    rows = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert rows[:2] == ["| status | meaning |", "| --- | --- |"]
    table = []
    for row in rows[2:]:
        status, meaning = (cell.strip() for cell in row.strip("|").split(" | "))
        table.append((status, meaning))
    return table


def test_readme_exit_statuses_are_the_table() -> None:
    # README may put flags in code font; otherwise the rows are EXIT_STATUSES, in order.
    readme = [(s, m.replace("`", "")) for s, m in _readme_exit_table()]
    assert readme == [(s, m.replace("`", "")) for s, m in EXIT_STATUSES]


def test_the_matcher_can_fail() -> None:
    bound: dict[str, str] = {}
    a, b = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    assert _matches([f"random {a}"], [f"random {b}"], bound)
    assert not _matches([f"again {a}"], [f"again {a}"], bound)      # a was bound to b
    assert not _matches(["recorded 2 events"], ["recorded 3 events"], {})
    assert not _matches(["x", "y"], ["x"], {})
    assert _matches(["at 2026-12-01T09:05:33+00:00"], ["at 2027-01-02T10:00:00+00:00"], {})
