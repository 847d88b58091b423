"""Descriptors, file streams and directory listings as the guest holds them.

A Descriptor is identified by its guest path (that is its name in the trace); its host
fd exists only while live: during replay, or when the host directory could not be
opened, `fd` is None and nothing here touches the host, because every use of the fd
happens inside a tap's `live()`.
"""

from __future__ import annotations

import os
import posixpath
import stat as st
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

from ...abi import WasiError
from ..io import InputStream, OutputStream, StreamClosed, StreamFailed
from .errors import error_code

if TYPE_CHECKING:
    from ..context import HostContext


class HostFd:
    """An OS fd shared by a descriptor and the streams made from it.

    A stream may outlive the guest's handle to its descriptor (wasmtime keeps the file
    open through an Arc too): the fd is closed when the last user releases it.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self._users = 1

    def acquire(self) -> "HostFd":
        self._users += 1
        return self

    def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            os.close(self.fd)


@dataclass
class Descriptor:
    guest_path: str           # "/data/sub/a.txt": the descriptor's identity in the trace
    dtype: str                # descriptor-type, fixed when it was opened
    grant_writable: bool      # the preopen it came from is --dir-rw
    modes: frozenset[str]     # subset of {"read", "write"}: how it was opened
    host: HostFd | None = None

    @property
    def is_dir(self) -> bool:
        return self.dtype == "directory"

    def fd(self) -> int:
        """The host fd, for use inside live() only."""
        if self.host is None:
            raise WasiError("bad-descriptor")
        return self.host.fd

    def child_path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.guest_path, path))

    def close(self) -> None:
        if self.host is not None:
            self.host.release()
            self.host = None

    def __del__(self) -> None:  # the run ended with the handle still in the table
        self.close()


def descriptor_type(mode: int) -> str:
    if st.S_ISDIR(mode):
        return "directory"
    if st.S_ISREG(mode):
        return "regular-file"
    if st.S_ISLNK(mode):
        return "symbolic-link"
    if st.S_ISBLK(mode):
        return "block-device"
    if st.S_ISCHR(mode):
        return "character-device"
    if st.S_ISFIFO(mode):
        return "fifo"
    if st.S_ISSOCK(mode):
        return "socket"
    return "unknown"


def _datetime(ns: int) -> list[int]:
    return [ns // 1_000_000_000, ns % 1_000_000_000]


def stat_value(s: os.stat_result) -> list[Any]:
    """descriptor-stat as a trace value: [type, link-count, size, atime, mtime, ctime]."""
    return [descriptor_type(s.st_mode), s.st_nlink, s.st_size,
            _datetime(s.st_atime_ns), _datetime(s.st_mtime_ns), _datetime(s.st_ctime_ns)]


def stat_record(value: list[Any]) -> tuple[Any, ...]:
    """A recorded stat value -> the descriptor-stat record the guest gets."""
    dtype, nlink, size, *times = value
    return (dtype, nlink, size, *(tuple(t) if t is not None else None for t in times))


def metadata_hash_value(s: os.stat_result) -> list[int]:
    """Same object <=> same hash: a 128-bit digest of (device, inode), as wasmtime hashes."""
    digest = blake2b(f"{s.st_dev}:{s.st_ino}".encode(), digest_size=16).digest()
    return [int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")]


class StreamErrors:
    """What filesystem-error-code needs: the error-code behind a file stream's io error.

    wasi:io/error.error only carries a message (rr/host/io.py builds it from
    StreamFailed), so file streams make the message unique to the failure and remember
    its code here; filesystem-error-code looks it up (through the tap, so a replay
    answers from the trace).
    """

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def failure(self, label: str, code: str, detail: str) -> StreamFailed:
        message = f"{label}: {code} ({detail})"
        self.codes[message] = code
        return StreamFailed(message)


class FileReadStream(InputStream):
    """read-via-stream: pread from `offset` on. File contents are input: recorded."""

    recorded = True

    def __init__(self, desc: Descriptor, offset: int, errors: StreamErrors):
        self.label = f"file:{desc.guest_path}"
        self._host = desc.host.acquire() if desc.host else None
        self._pos = offset
        self._errors = errors

    def available(self) -> bool:
        return True  # a regular file never makes a reader wait

    def take(self, n: int) -> bytes:
        if self._host is None:
            raise StreamClosed()
        try:
            data = os.pread(self._host.fd, n, self._pos)
        except OSError as e:
            raise self._errors.failure(self.label, error_code(e), e.strerror or str(e)) from None
        if not data and n > 0:
            raise StreamClosed()
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._host is not None:
            self._host.release()
            self._host = None


class FileWriteStream(OutputStream):
    """write-via-stream (offset) / append-via-stream (offset None).

    Each write is an event (call wasi:io/streams.write, args [label, offset, bytes]),
    so a replay checks that the guest writes the same bytes at the same place, and
    the disk is touched only in live().
    """

    def __init__(self, host: "HostContext", desc: Descriptor, offset: int | None, errors: StreamErrors):
        self.label = f"file:{desc.guest_path}"
        self._ctx = host
        self._host = desc.host.acquire() if desc.host else None
        self._pos = offset
        self._errors = errors

    def write_bytes(self, data: bytes) -> None:
        if not data:
            return
        pos = self._pos

        def live() -> None:
            if self._host is None:
                raise WasiError("bad-descriptor")
            try:
                _write_all(self._host.fd, data, pos)
            except OSError as e:
                raise WasiError(error_code(e)) from None

        try:
            self._ctx.tap("wasi:io/streams.write", [self.label, pos, data], live)
        except WasiError as e:
            raise self._errors.failure(self.label, str(e.payload), "write failed") from None
        if self._pos is not None:
            self._pos += len(data)

    def close(self) -> None:
        if self._host is not None:
            self._host.release()
            self._host = None


def _write_all(fd: int, data: bytes, pos: int | None) -> None:
    view = memoryview(data)
    while view:
        if pos is None:
            # pwritev2(RWF_APPEND): appends without changing the fd's mode or offset.
            n = os.pwritev(fd, [view], 0, os.RWF_APPEND)
        else:
            n = os.pwrite(fd, view, pos)
            pos += n
        view = view[n:]


class DirectoryEntryStream:
    """A listing read whole by read-directory (and recorded as one result).

    Each item is [type, name] or an error-code string for an entry that could not be
    read (a name that is not UTF-8), which read-directory-entry raises in its turn.
    """

    def __init__(self, entries: list[Any]):
        self._entries = list(reversed(entries))

    def next(self) -> tuple[str, str] | None:
        if not self._entries:
            return None
        item = self._entries.pop()
        if isinstance(item, str):
            raise WasiError(item)
        return (item[0], item[1])


def list_directory(dir_fd: int) -> list[Any]:
    """The entries of the directory `dir_fd` (without . and ..), in the OS's order."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    out: list[Any] = []
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    entry.name.encode("utf-8")
                except UnicodeEncodeError:
                    out.append("illegal-byte-sequence")
                    continue
                if entry.is_symlink():
                    dtype = "symbolic-link"
                elif entry.is_dir(follow_symlinks=False):
                    dtype = "directory"
                elif entry.is_file(follow_symlinks=False):
                    dtype = "regular-file"
                else:
                    try:
                        dtype = descriptor_type(entry.stat(follow_symlinks=False).st_mode)
                    except OSError:
                        dtype = "unknown"
                out.append([dtype, entry.name])
    finally:
        os.close(fd)
    return out
