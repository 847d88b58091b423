"""Compiled dataclass methods, kept between processes.

Importing mitmproxy and anyio for the proxy makes ~100 dataclasses, and `dataclasses` writes
the source of each one's __init__, __repr__, __eq__, ... and compiles it with `exec(text)`:
~15-20% of the proxy's whole start. While `cached()` is in effect, the `exec` that the
dataclasses module calls takes the code object compiled from the very same text out of a
file in rr's cache directory (compiling on a miss, as exec would). exec(text) is exactly
exec(compile(text, "<string>", "exec")), so a class made this way is the class dataclasses
would make. The file is keyed by the interpreter's bytecode magic number; a missing, corrupt
or foreign file is ignored (and replaced), never an error, and it is written whole or not at
all (a process reading it never sees half of it).
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import marshal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType
from typing import Any

# More texts than a scope's imports ever make (the proxy's ~330): a file that grew past this (a
# caller making dataclasses of its own while the cache is in effect) starts again from what is new.
MAX_ENTRIES = 4096
_HEADER = b"rr-dataclass-code\n" + importlib.util.MAGIC_NUMBER
_lock = threading.Lock()


class _Scope:
    """One `cached(name)` in effect: the code its file held and the code compiled meanwhile."""

    def __init__(self, name: str) -> None:
        self.path = cache_file(name)
        self.known = _load(self.path)
        self.new: dict[str, CodeType] = {}


_scopes: list[_Scope] = []   # in effect, innermost last
_NONE = object()
_before: list[Any] = [_NONE]   # a global `exec` the dataclasses module had before the outermost scope


def cache_file(name: str = "proxy") -> Path:
    from .cache import bytecode_file
    return bytecode_file(f"dataclass-code-{name}", ".bin")


def _cached_exec(source: Any, globals: Any = None, locals: Any = None, /, **kw: Any) -> Any:
    """The `exec` the dataclasses module sees while the cache is in effect."""
    if globals is None:   # as exec: the caller's namespaces
        caller = sys._getframe(1)
        globals = caller.f_globals
        if locals is None:
            locals = caller.f_locals
    if type(source) is not str or kw:
        return builtins.exec(source, globals, locals, **kw)
    scopes = _scopes[::-1]
    for scope in scopes:
        code = scope.known.get(source) or scope.new.get(source)
        if code is not None:
            break
    else:
        # dont_inherit: compiled as dataclasses' own exec(text) compiles it (no __future__ flags)
        code = compile(source, "<string>", "exec", dont_inherit=True)
        if scopes:
            scopes[0].new[source] = code
    return builtins.exec(code, globals, locals)


def _load(path: Path) -> dict[str, CodeType]:
    try:
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(_HEADER):
            return {}
        table = marshal.loads(data[len(_HEADER):])
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if type(table) is not dict:
        return {}
    return {k: v for k, v in table.items() if type(k) is str and type(v) is CodeType}


def _save(path: Path, table: dict[str, CodeType]) -> None:
    from .cache import store
    store(path, _HEADER + marshal.dumps(table))


@contextmanager
def cached(name: str = "proxy") -> Iterator[None]:
    """Dataclasses made inside take their methods' code from the cache file `name` (or from a
    scope it is nested in: rr's start-up holds rr's own, the proxy's start mitmproxy's and
    anyio's). Any thread's dataclasses count; on leaving, code compiled meanwhile is added
    to the file."""
    scope = _Scope(name)
    with _lock:
        if not _scopes:
            _before[0] = vars(dataclasses).get("exec", _NONE)
        _scopes.append(scope)
        vars(dataclasses)["exec"] = _cached_exec
    try:
        yield
    finally:
        with _lock:
            _scopes.remove(scope)
            if not _scopes:
                if _before[0] is _NONE:
                    vars(dataclasses).pop("exec", None)
                else:   # someone else's before ours
                    vars(dataclasses)["exec"] = _before[0]
        if scope.new:
            table = {**scope.known, **scope.new} if len(scope.known) + len(scope.new) <= MAX_ENTRIES else scope.new
            _save(scope.path, table)
