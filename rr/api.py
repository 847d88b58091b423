"""rr from Python: run, record and replay a component and get its result back.

    import rr
    result = rr.record("app.wasm", "t.cbor", args=["50"], stdin=b"hi")
    assert rr.replay("app.wasm", "t.cbor").stdout == result.stdout

Each call is one run with its own sandbox, limits, HTTP proxy and trace; any number of them may
run one after another or at once from threads in one process. These are the functions the
CLI's commands are made of (runner.run, session.record, session.replay): the sandbox is checked
by the same rules as `rr run`'s flags, and a call returns what the command would exit with.

Mistakes that stop a run before the guest starts (a missing component, a grant of a directory
that does not exist, a trace that exists already) raise `rr.RRError` (its `status` is the exit
status the CLI would give). Everything that ran returns a `Result`; a replay that diverged or
found the trace bad returns one too, with status 121 or 122 and the report in `message`.
"""

from __future__ import annotations

import atexit
import io
import os
import threading
import types
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import EXIT_BAD_TRACE, ComponentError, RRError

PathLike = str | os.PathLike[str]


@dataclass
class Result:
    """What one run, recording or replay ended with."""

    exit_status: int                # what `rr run/record/replay` would exit with
    stdout: bytes | None            # the guest's stdout (None when it went to a given file)
    stderr: bytes | None
    trace: Path | None              # the trace written or replayed (None for run)
    outcome: str                    # "exit", "trap", "memory", "timeout", "interrupted", "terminated",
    #                                 "diverged", "bad-trace", "stopped" (replay --until)
    message: str | None = None      # how it ended when not by an exit: the trap, the divergence report, ...
    events: int = 0                 # events recorded / consumed

    @property
    def diverged(self) -> bool:
        return self.outcome == "diverged"


def run(component: PathLike, args: Sequence[str] = (), *, stdin: bytes | BinaryIO | None = None,
        env: Mapping[str, str] | None = None, dirs: Mapping[PathLike, str] | Iterable[PathLike] | None = None,
        dirs_rw: Mapping[PathLike, str] | Iterable[PathLike] | None = None, allow_http: Sequence[str] = (),
        max_memory: int | None = None, timeout: float | None = None,
        stdout: BinaryIO | None = None, stderr: BinaryIO | None = None,
        fast_path: bool | None = None, use_cache: bool = True) -> Result:
    """Run `component` in the sandbox, as `rr run`: nothing is recorded.

    `dirs` / `dirs_rw` grant host directories read-only / read-write, as {host: guest path} or
    a list of host paths (seen at the same path); `env` is the guest's whole environment;
    `allow_http` takes `--allow-http` patterns. stdout/stderr are captured unless files are given."""
    from . import runner

    program = load(component, fast_path=fast_path, use_cache=use_cache)
    out, err = _Output(stdout), _Output(stderr)
    sandbox = make_sandbox(program, args, stdin=stdin, env=env, dirs=dirs, dirs_rw=dirs_rw,
                           allow_http=allow_http, stdout=out.sink, stderr=err.sink)
    outcome = runner.run(program, sandbox, limits=runner.Limits(max_memory, timeout))
    _reraise_interrupt(outcome)
    return Result(int(outcome.status), out.value(), err.value(), None, outcome.kind, outcome.message)


def record(component: PathLike, trace: PathLike, args: Sequence[str] = (), *,
           stdin: bytes | BinaryIO | None = None, env: Mapping[str, str] | None = None,
           dirs: Mapping[PathLike, str] | Iterable[PathLike] | None = None,
           dirs_rw: Mapping[PathLike, str] | Iterable[PathLike] | None = None, allow_http: Sequence[str] = (),
           max_memory: int | None = None, timeout: float | None = None, overwrite: bool = False,
           fmt: str | None = None, ca_cert: PathLike | None = None,
           stdout: BinaryIO | None = None, stderr: BinaryIO | None = None,
           fast_path: bool | None = None, use_cache: bool = True, **record_options: Any) -> Result:
    """Run `component` live and write its trace to `trace`, as `rr record` (`overwrite` is
    `--force`, `fmt` "cbor" or "jsonl", by default from the extension). Options other than these
    are passed on to `session.record` unchanged."""
    from . import runner, session

    program = load(component, fast_path=fast_path, use_cache=use_cache)
    if os.path.exists(trace) and os.path.samefile(trace, program.path):
        raise RRError(f"{trace}: that is the component itself (overwrite would replace it)")
    out, err = _Output(stdout), _Output(stderr)
    sandbox = make_sandbox(program, args, stdin=stdin, env=env, dirs=dirs, dirs_rw=dirs_rw,
                           allow_http=allow_http, stdout=out.sink, stderr=err.sink)
    http = session.HttpOptions(extra_ca=Path(ca_cert) if ca_cert is not None else None)
    rec = session.record(program, sandbox, trace, {"json": "jsonl"}.get(fmt or "", fmt),
                         runner.Limits(max_memory, timeout), overwrite=overwrite, http=http, **record_options)
    _reraise_interrupt(rec.outcome)
    return Result(int(rec.outcome.status), out.value(), err.value(), Path(rec.path), rec.outcome.kind,
                  rec.outcome.message, rec.events)


def replay(component: PathLike, trace: PathLike, *, until: int | None = None,
           stdout: BinaryIO | None = None, stderr: BinaryIO | None = None,
           fast_path: bool | None = None, use_cache: bool = True) -> Result:
    """Run `component` from `trace` alone, as `rr replay`: same stdout, stderr and status as the
    recording, or status 121 (`outcome` "diverged") / 122 ("bad-trace") with the report in `message`."""
    from . import session
    from .trace import TraceError

    program = load(component, fast_path=fast_path, use_cache=use_cache)
    out, err = _Output(stdout), _Output(stderr)
    path = Path(trace)

    def failed(kind: str, e: RRError) -> Result:
        return Result(e.status, out.value(), err.value(), path, kind, str(e))

    try:
        try:
            replayed = session.replay(program, os.fspath(trace), out.sink, err.sink, until=until)
        except TraceError as e:   # first: TraceNotFoundError is an OSError too
            raise session.BadTrace(str(e)) from None
        except FileNotFoundError as e:
            if e.filename is None or os.fspath(e.filename) != os.fspath(trace):
                raise
            raise session.BadTrace(f"{trace}: no such file") from None
    except session.Diverged as e:
        return failed("diverged", e)
    except session.BadTrace as e:
        return failed("bad-trace", e)
    outcome = replayed.outcome
    if replayed.incomplete:
        # The guest got all it asked for, but the recording never finished (killed): the
        # replay may not be the run that was recorded.
        return Result(EXIT_BAD_TRACE, out.value(), err.value(), path, "bad-trace",
                      f"trace is incomplete ({replayed.incomplete})", replayed.events)
    if replayed.stopped_at is not None:
        return Result(0, out.value(), err.value(), path, "stopped",
                      f"replay stopped before event {replayed.stopped_at} (until)", replayed.events)
    _reraise_interrupt(outcome)
    return Result(int(outcome.status), out.value(), err.value(), path, outcome.kind, outcome.message,
                  replayed.events)


# --------------------------------------------------------------------------- the pieces


_programs: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_programs_lock = threading.Lock()
PROGRAMS_KEPT = 16   # compiled components kept in memory, the most recently used
# Let go of them before the interpreter tears wasmtime's modules down (their finalizers need them).
atexit.register(_programs.clear)


def load(component: PathLike, *, fast_path: bool | None = None, use_cache: bool = True) -> Any:
    """The compiled component (runner.Program), kept in memory while its file is unchanged, so
    that a suite running one component many times compiles or reads the cache once."""
    from . import runner

    path = Path(component)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ComponentError(f"{path}: no such file") from None
    except OSError as e:
        raise ComponentError(f"{path}: cannot read: {e.strerror}") from None
    fast = runner.fast_path_default() if fast_path is None else fast_path
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino, fast, use_cache)
    with _programs_lock:
        program = _programs.get(key)
        if program is not None:
            _programs.move_to_end(key)
            return program
    program = runner.load(path, use_cache=use_cache, fast_path=fast)
    with _programs_lock:
        _programs[key] = program
        while len(_programs) > PROGRAMS_KEPT:
            _programs.popitem(last=False)
    return program


def make_sandbox(program: Any, args: Sequence[str] = (), *, stdin: bytes | BinaryIO | None = None,
                 env: Mapping[str, str] | None = None,
                 dirs: Mapping[PathLike, str] | Iterable[PathLike] | None = None,
                 dirs_rw: Mapping[PathLike, str] | Iterable[PathLike] | None = None,
                 allow_http: Sequence[str] = (), stdout: BinaryIO | None = None,
                 stderr: BinaryIO | None = None) -> Any:
    """The Sandbox `rr run` would build from the equivalent flags (same checks, same errors)."""
    from .sandbox_args import sandbox_from_args

    if isinstance(args, (str, bytes)):
        raise TypeError("args is a list of strings, not one string")
    flags = types.SimpleNamespace(
        env=[f"{k}={v}" for k, v in (env or {}).items()], inherit_env=False,
        dir=_dir_specs(dirs), dir_rw=_dir_specs(dirs_rw), allow_http=list(allow_http), wasmtime_s=[], allow_net=[])
    sandbox = sandbox_from_args(flags, program.path.name, [str(a) for a in args])  # type: ignore[arg-type]
    sandbox.stdin = io.BytesIO(stdin) if isinstance(stdin, (bytes, bytearray)) else stdin
    sandbox.stdout, sandbox.stderr = stdout, stderr
    return sandbox


def _dir_specs(dirs: Mapping[PathLike, str] | Iterable[PathLike] | None) -> list[str]:
    if dirs is None:
        return []
    if isinstance(dirs, Mapping):
        return [f"{os.fspath(host)}::{guest}" for host, guest in dirs.items()]
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    return [os.fspath(host) for host in dirs]


class _Output:
    """A guest stream: the file given, or captured bytes."""

    def __init__(self, given: BinaryIO | None) -> None:
        self._buffer = io.BytesIO() if given is None else None
        self.sink: BinaryIO = given if given is not None else self._buffer  # type: ignore[assignment]

    def value(self) -> bytes | None:
        return None if self._buffer is None else self._buffer.getvalue()


def _reraise_interrupt(outcome: Any) -> None:
    """Ctrl-C while a guest runs stops the guest (the trace records it) and then goes on to the
    caller as KeyboardInterrupt, as it would in any other Python call."""
    import signal

    from . import signals

    installed = signal.getsignal(signal.SIGINT) is signals._on_signal  # rr's CLI: the status is the answer
    if outcome.kind == "interrupted" and not outcome.replayed_stop and not installed:
        raise KeyboardInterrupt
