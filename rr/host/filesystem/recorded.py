"""What a recorded wasi:filesystem result must look like before a replay uses it.

Each check is `check(args, result)` for the tap (rr/tap.py): it sees the trace value of
a successful call with the guest's arguments and raises BadValue when the value breaks
the call's WIT contract or cannot be the shape interface.py turns into the WIT value.
The WIT types themselves are checked again on the way out (Replayer.guard); the checks
here cover what the types cannot say (a read no longer than asked) and values that are
kept for later calls instead of being handed over at once (a descriptor's type, the
entries of a listing).
"""

from __future__ import annotations

from typing import Any

from ...typecheck import BadValue, show
from .errors import _BY_ERRNO  # names every error-code case

# wasi:filesystem/types descriptor-type and error-code (WASI 0.2): the cases a kept value may hold.
DESCRIPTOR_TYPES = frozenset({"unknown", "block-device", "character-device", "directory", "fifo",
                              "symbolic-link", "regular-file", "socket"})
ERROR_CODES = frozenset(_BY_ERRNO.values()) | {"io"}


def _fail(why: str, expected: str) -> BadValue:
    return BadValue(why, expected)


def preopens(args: list[Any], result: Any) -> None:
    """get-directories: [[guest path, writable], ...]."""
    if type(result) is not list:
        raise _fail(f"{show(result)} is not a list", "list of [guest path, writable]")
    for i, grant in enumerate(result):
        if (type(grant) is not list or len(grant) != 2 or type(grant[0]) is not str or not grant[0]
                or type(grant[1]) is not bool):
            raise _fail(f"item {i}: {show(grant)} is not [guest path, writable]", "list of [guest path, writable]")


def read(args: list[Any], result: Any) -> None:
    """read(length, offset): [data, end-of-stream], data at most `length` bytes."""
    if (type(result) is not list or len(result) != 2 or type(result[0]) is not bytes
            or type(result[1]) is not bool):
        raise _fail(f"{show(result)} is not [bytes, bool]", "tuple<list<u8>, bool>")
    length = args[1]
    if len(result[0]) > length:
        raise _fail(f"{len(result[0])} bytes, the guest asked for at most {length}", "tuple<list<u8>, bool>")


def written(args: list[Any], result: Any) -> None:
    """write(buffer, offset): a count no larger than the buffer."""
    if type(result) is not int or not 0 <= result <= len(args[2]):
        raise _fail(f"{show(result)} is not a count of at most {len(args[2])} bytes written", "filesize")


def stat(args: list[Any], result: Any) -> None:
    """stat / stat-at: [type, link-count, size, atime, mtime, ctime], times None or datetimes."""
    if type(result) is not list or len(result) != 6:
        raise _fail(f"{show(result)} is not [type, link-count, size, atime, mtime, ctime]", "descriptor-stat")
    for name, time in zip(("data-access", "data-modification", "status-change"), result[3:]):
        if time is None:
            continue
        if type(time) is not list or len(time) != 2:
            raise _fail(f"{name}-timestamp {show(time)} is not [seconds, nanoseconds]", "descriptor-stat")
        if type(time[1]) is int and not 0 <= time[1] < 1_000_000_000:
            raise _fail(f"{name}-timestamp nanoseconds {time[1]} is not below 1000000000", "descriptor-stat")


def hash_pair(args: list[Any], result: Any) -> None:
    """metadata-hash(-at): [lower, upper]."""
    if type(result) is not list or len(result) != 2:
        raise _fail(f"{show(result)} is not [lower, upper]", "metadata-hash-value")


def descriptor_type(args: list[Any], result: Any) -> None:
    """open-at: the opened descriptor's type, which get-type and stat serve later."""
    if type(result) is not str or result not in DESCRIPTOR_TYPES:
        raise _fail(f"{show(result)} is not a case of descriptor-type", "descriptor-type")


def listing(args: list[Any], result: Any) -> None:
    """read-directory: entries [type, name] or error-code strings, served one by one later."""
    if type(result) is not list:
        raise _fail(f"{show(result)} is not a list of entries", "directory listing")
    for i, entry in enumerate(result):
        if type(entry) is str:
            if entry not in ERROR_CODES:
                raise _fail(f"entry {i}: {show(entry)} is not a case of error-code", "directory listing")
            continue
        if type(entry) is not list or len(entry) != 2:
            raise _fail(f"entry {i}: {show(entry)} is not [type, name]", "directory listing")
        dtype, name = entry
        if type(dtype) is not str or dtype not in DESCRIPTOR_TYPES:
            raise _fail(f"entry {i}: {show(dtype)} is not a case of descriptor-type", "directory listing")
        if type(name) is not str or name in ("", ".", "..") or "/" in name:
            raise _fail(f"entry {i}: {show(name)} is not a file name", "directory listing")
