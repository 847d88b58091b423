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
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType
from typing import Any

# More texts than the proxy's imports ever make (~330): a file that grew past this (a caller
# making dataclasses of its own while the cache is in effect) starts again from what is new.
MAX_ENTRIES = 4096
_HEADER = b"rr-dataclass-code\n" + importlib.util.MAGIC_NUMBER
_lock = threading.Lock()
_users = 0
_known: dict[str, CodeType] = {}
_new: dict[str, CodeType] = {}


def cache_file() -> Path:
    from .cache import cache_dir
    return cache_dir() / "pyc" / f"dataclass-code.{sys.implementation.cache_tag}.bin"


def _cached_exec(source: Any, globals: Any = None, locals: Any = None, /, **kw: Any) -> Any:
    """The `exec` the dataclasses module sees while the cache is in effect."""
    if globals is None:   # as exec: the caller's namespaces
        caller = sys._getframe(1)
        globals = caller.f_globals
        if locals is None:
            locals = caller.f_locals
    if type(source) is not str or kw:
        return builtins.exec(source, globals, locals, **kw)
    code = _known.get(source) or _new.get(source)
    if code is None:
        # dont_inherit: compiled as dataclasses' own exec(text) compiles it (no __future__ flags)
        code = _new[source] = compile(source, "<string>", "exec", dont_inherit=True)
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
    part = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as f:
            f.write(_HEADER + marshal.dumps(table))
        os.replace(part, path)
    except OSError:
        try:
            part.unlink(missing_ok=True)
        except OSError:
            pass


@contextmanager
def cached() -> Iterator[None]:
    """Dataclasses made inside take their methods' code from the cache file (nesting is fine,
    from any thread). On leaving the outermost, code compiled meanwhile is added to the file."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            _known.update(_load(cache_file()))
            vars(dataclasses)["exec"] = _cached_exec
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                vars(dataclasses).pop("exec", None)
                if _new:
                    table = {**_known, **_new} if len(_known) + len(_new) <= MAX_ENTRIES else dict(_new)
                    _new.clear()
                    _save(cache_file(), table)
                _known.clear()
