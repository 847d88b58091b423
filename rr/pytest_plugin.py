"""rr's pytest plugin (entry point `pytest11`, name `rr`): record once, replay in CI.

- The `rr_component` fixture runs a component under the record mode in force and returns its
  `rr.Result` (exit_status, stdout, stderr, trace, ...): with a trace it replays, without one it
  records (or fails, in mode `none`, saying how to record it).
- `--rr-record-mode` takes pytest-recording's modes: none (default: replay only), once (record
  what is missing), all (record again), rewrite (all, then delete the traces no test used).
  `@pytest.mark.rr(trace_dir=..., record_mode=...)` sets a test's (module's, class's) defaults;
  the command line wins over the marker.
- `pytest --rr-traces DIR` collects every trace under DIR as a test that replays it against its
  component (the .wasm next to it or under `--rr-components DIR` whose sha256 the trace names).

Relative paths given to the fixture (component, trace, trace_dir) are relative to the directory
of the test's file, so a suite runs the same from any working directory and on xdist workers.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

MODES = ("none", "once", "all", "rewrite")
TRACE_SUFFIXES = (".cbor", ".json", ".jsonl", ".cbor.gz", ".json.gz", ".jsonl.gz")
_USED = pytest.StashKey[set[str]]()
_DESELECTED = pytest.StashKey[list[int]]()
_REMOVED = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rr", "rr: record and replay WebAssembly components")
    group.addoption("--rr-record-mode", choices=MODES, default=None,
                    help="none (default): replay only, a missing trace fails; once: record missing traces; "
                         "all: record every trace again; rewrite: as all, then delete traces no test used")
    group.addoption("--rr-traces", metavar="DIR", default=None,
                    help="collect every trace under DIR as a test replaying it against its component")
    group.addoption("--rr-components", metavar="DIR", default=None,
                    help="where --rr-traces looks for components (by sha256) besides next to each trace")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rr(trace_dir=None, record_mode=None): defaults for the rr_component "
                                       "fixture: the traces' directory and the record mode")
    config.stash[_USED] = set()
    config.stash[_DESELECTED] = [0]
    config.stash[_REMOVED] = []
    traces = config.getoption("rr_traces")
    if traces:
        where = Path(traces)
        if not where.is_dir():
            raise pytest.UsageError(f"--rr-traces {traces}: not a directory")
        # Only the corpus, unless test paths were named too.
        where_s = str(where.resolve())
        if config.args_source != pytest.Config.ArgsSource.ARGS:
            config.args[:] = [where_s]
        elif not any(_covers(Path(a), where) for a in config.args):
            config.args.append(where_s)


def _covers(arg: Path, where: Path) -> bool:
    try:
        return where.resolve().is_relative_to(arg.resolve())
    except OSError:
        return False


# --------------------------------------------------------------------------- the fixture


def _mode(request: pytest.FixtureRequest, marker_kwargs: Mapping[str, Any]) -> str:
    mode = request.config.getoption("rr_record_mode") or marker_kwargs.get("record_mode") or "none"
    if mode not in MODES:
        raise pytest.UsageError(f"@pytest.mark.rr(record_mode={mode!r}): choose one of {', '.join(MODES)}")
    return mode


@pytest.fixture
def rr_component(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`rr_component(component, args=(), *, trace=None, stdin=None, dirs=None, dirs_rw=None, env=None,
    allow_http=(), allow_net=(), s_options=(), timeout=None, max_memory=None, record_mode=None,
    **record_options)` -> rr.Result (the sandbox options are rr.run's).

    Replays `trace` if it exists (mode none/once), else records it (once/all/rewrite). A replay
    that diverges, a trace recorded with other arguments or another build of the component,
    or a missing trace in mode none fails the test, saying what to do. `record_options` go to
    rr.record unchanged (used only when recording), e.g. `redaction=rr.Redaction(...)`."""
    marker = request.node.get_closest_marker("rr")
    marker_kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    base = request.path.parent
    trace_dir = base / marker_kwargs["trace_dir"] if marker_kwargs.get("trace_dir") else None
    used = request.config.stash[_USED]
    count = [0]

    def call(component: str | os.PathLike[str], args: Sequence[str] = (), *,
             trace: str | os.PathLike[str] | None = None, stdin: bytes | None = None,
             dirs: Any = None, dirs_rw: Any = None, env: Mapping[str, str] | None = None,
             allow_http: Sequence[str] = (), allow_net: Sequence[str] = (), s_options: Sequence[str] = (),
             timeout: float | None = None, max_memory: int | None = None,
             record_mode: str | None = None, **record_options: Any) -> Any:
        from .errors import RRError

        grants = {"env": env, "allow_http": allow_http, "allow_net": allow_net, "s_options": s_options}
        try:
            return _run(component, args, trace, stdin, dirs, dirs_rw, grants, timeout, max_memory,
                        record_mode, record_options)
        except RRError as e:   # a missing component, a grant of no directory, ...: the test's mistake
            pytest.fail(f"rr: {e}", pytrace=False)

    def _run(component: Any, args: Sequence[str], trace: Any, stdin: bytes | None, dirs: Any, dirs_rw: Any,
             grants: dict[str, Any], timeout: float | None, max_memory: int | None, record_mode: str | None,
             record_options: dict[str, Any]) -> Any:
        from . import api

        mode = record_mode or _mode(request, marker_kwargs)
        if mode not in MODES:
            raise pytest.UsageError(f"rr_component(record_mode={mode!r}): choose one of {', '.join(MODES)}")
        count[0] += 1
        path = _trace_path(trace, trace_dir, base, request, count[0])
        used.add(str(path.resolve()))
        wasm = base / component
        shown = _shown(path)
        exists = path.exists()
        if mode == "none" and not exists:
            pytest.fail(f"rr: {shown}: no such trace (record mode none replays only); record it with "
                        f"`pytest --rr-record-mode=once {request.node.nodeid}`", pytrace=False)
        if exists and mode in ("none", "once"):
            _check_invocation(path, shown, api.load(wasm), args, grants, dirs, dirs_rw, timeout, max_memory)
            result = api.replay(wasm, path)
            if result.outcome in ("diverged", "bad-trace"):
                pytest.fail(f"rr: replay of {shown} failed (status {result.exit_status}): {result.message}\n"
                            f"rr: if the change is intended, record it again with --rr-record-mode=all",
                            pytrace=False)
            return result
        path.parent.mkdir(parents=True, exist_ok=True)
        return api.record(wasm, path, args, stdin=stdin, dirs=_based(dirs, base), dirs_rw=_based(dirs_rw, base),
                          timeout=timeout, max_memory=max_memory, overwrite=True, **grants, **record_options)

    return call


def _trace_path(trace: str | os.PathLike[str] | None, trace_dir: Path | None, base: Path,
                request: pytest.FixtureRequest, n: int) -> Path:
    if trace is not None:
        return (trace_dir or base) / trace
    # One trace per call: test_x.cbor, then test_x-2.cbor, ...
    name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-") + (f"-{n}" if n > 1 else "") + ".cbor"
    return (trace_dir or base / "traces" / request.path.stem) / name


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _based(dirs: Any, base: Path) -> Any:
    """Host directories of a grant, relative to the test's directory."""
    if dirs is None:
        return None
    if isinstance(dirs, Mapping):
        return {base / host: guest for host, guest in dirs.items()}
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    # Seen by the guest where it was named, whatever the host directory resolves to.
    return {base / host: os.fspath(host) for host in dirs}


def _check_invocation(path: Path, shown: str, program: Any, args: Sequence[str], grants: dict[str, Any],
                      dirs: Any, dirs_rw: Any, timeout: float | None, max_memory: int | None) -> None:
    """A replay runs what the trace recorded: a test asking for other arguments, environment,
    grants or limits would pass on a stale recording, so that fails instead. What the test asks
    for is the header a recording would write now (session.make_header, under the rules the
    trace was redacted with); the host side of directories is not compared (nor looked at)."""
    from . import api, redact, runner, session
    from .trace import TraceError, open_trace

    try:
        with open_trace(path) as reader:
            header = reader.header
        rules = redact.recorded_rules(header)
    except (TraceError, OSError, redact.BadRedaction) as e:
        pytest.fail(f"rr: {shown}: {e}", pytrace=False)
    sandbox = api.make_sandbox(program, args, **grants)
    want = session.make_header(program, sandbox, runner.Limits(max_memory, timeout), rules)

    def shape(h: Any, dirs: list[list[str]]) -> dict[str, Any]:
        return {"arguments": list(h.argv[1:]), "environment": [list(kv) for kv in h.env],
                "directories": sorted(dirs), "allow_http": h.extra.get(session.HTTP_ALLOW, []),
                "sockets": h.extra.get(session.SOCKETS), "limits": dict(h.limits)}

    asked = shape(want, [[g, "ro"] for g in _guest_dirs(dirs)] + [[g, "rw"] for g in _guest_dirs(dirs_rw)])
    recorded = shape(header, [[d["guest"], "rw" if d.get("mode") == "rw" else "ro"] for d in header.dirs])
    for what, value in asked.items():
        if value != recorded[what]:
            pytest.fail(f"rr: {shown} was recorded with other {what} ({recorded[what]!r}, the test asks for "
                        f"{value!r}): record it again with --rr-record-mode=all", pytrace=False)


def _guest_dirs(dirs: Any) -> list[str]:
    if dirs is None:
        return []
    if isinstance(dirs, Mapping):
        return [str(guest) for guest in dirs.values()]
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    return [os.fspath(d) for d in dirs]


# --------------------------------------------------------------------------- rewrite


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_DESELECTED][0] += len(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    used = config.stash[_USED]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:   # an xdist worker: the controller decides
        workeroutput["rr_used"] = sorted(used)
        workeroutput["rr_deselected"] = config.stash[_DESELECTED][0]
        return
    if (config.getoption("rr_record_mode") != "rewrite" or session.shouldfail or session.shouldstop
            or config.stash[_DESELECTED][0] or exitstatus not in (0, 1) or config.getoption("rr_traces")):
        return  # only a whole, uninterrupted session knows which traces no test uses
    removed = config.stash[_REMOVED]
    for directory in sorted({str(Path(p).parent) for p in used}):
        for trace in _traces_in(Path(directory), recursive=False):
            if str(trace.resolve()) not in used:
                trace.unlink()
                removed.append(_shown(trace))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker's traces and deselections count as the controller's own."""
    output = getattr(node, "workeroutput", None) or {}
    config = node.config
    config.stash[_USED].update(output.get("rr_used", ()))
    config.stash[_DESELECTED][0] += output.get("rr_deselected", 0)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    removed = config.stash.get(_REMOVED, [])
    if removed:
        terminalreporter.write_line(f"rr: --rr-record-mode=rewrite removed {len(removed)} traces no test used: "
                                    + ", ".join(removed))


def _traces_in(directory: Path, recursive: bool) -> Iterator[Path]:
    found = directory.rglob("*") if recursive else directory.glob("*")
    for path in sorted(found):
        if path.is_file() and path.name.endswith(TRACE_SUFFIXES):
            yield path


# --------------------------------------------------------------------------- traces as tests


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    traces = parent.config.getoption("rr_traces")
    if (traces and file_path.name.endswith(TRACE_SUFFIXES)
            and file_path.resolve().is_relative_to(Path(traces).resolve())):
        return TraceFile.from_parent(parent, path=file_path)
    return None


class TraceFile(pytest.File):
    """One trace: one test (the file's line in pytest's output is the trace's)."""

    def collect(self) -> Iterable[pytest.Item]:
        yield TraceItem.from_parent(self, name="replay")


class TraceFailed(Exception):
    pass


class TraceItem(pytest.Item):
    """Replays its trace against its component; passes when the replay matches the recording."""

    def runtest(self) -> None:
        from . import api

        component = _components(self.config).find(self.path)
        result = api.replay(component, self.path)
        if result.outcome in ("diverged", "bad-trace"):
            raise TraceFailed(f"{_shown(self.path)}: {result.message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TraceFailed):
            return f"rr: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"rr replay {_shown(self.path)}"


class _Components:
    """Components by sha256: the one next to the trace under the name it recorded, else any
    .wasm beside it or under --rr-components (each file hashed once per process)."""

    def __init__(self, extra: str | None) -> None:
        self._extra = Path(extra) if extra else None
        self._hashes: dict[Path, str] = {}
        self._lock = threading.Lock()

    def _sha(self, path: Path) -> str:
        with self._lock:
            sha = self._hashes.get(path)
        if sha is None:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            with self._lock:
                self._hashes[path] = sha
        return sha

    def find(self, trace: Path) -> Path:
        from .trace import TraceError, open_trace

        try:
            with open_trace(trace) as reader:
                wanted = reader.header.component
        except (TraceError, OSError) as e:
            raise TraceFailed(f"{_shown(trace)}: {e}") from None
        candidates = [trace.parent / wanted.name, *sorted(trace.parent.glob("*.wasm"))]
        if self._extra is not None:
            candidates += sorted(self._extra.rglob("*.wasm"))
        for path in candidates:
            if path.is_file() and self._sha(path.resolve()) == wanted.sha256:
                return path
        where = f"next to it or under --rr-components {self._extra}" if self._extra else \
            "next to it (--rr-components DIR names another place)"
        raise TraceFailed(f"{_shown(trace)}: no component with sha256 {wanted.sha256} ({wanted.name}) {where}")


_COMPONENTS = pytest.StashKey[_Components]()


def _components(config: pytest.Config) -> _Components:
    if _COMPONENTS not in config.stash:
        config.stash[_COMPONENTS] = _Components(config.getoption("rr_components"))
    return config.stash[_COMPONENTS]
