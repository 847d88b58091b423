"""wasi:filesystem/types and wasi:filesystem/preopens, served from the sandbox's grants.

Semantics follow wasmtime (crates/wasi/src/filesystem.rs), so a guest sees the same
error codes under `rr run` as under `wasmtime run --dir`:
  - a read-only grant (`--dir`) refuses every mutation with not-permitted;
  - directory-only methods on a file: not-directory; file-only methods on a directory:
    bad-descriptor (read-via-stream: is-directory);
  - escapes (absolute paths, "..", symlinks out of the preopen): not-permitted.
Those checks depend only on the guest's own calls and what it was given, so they run
outside the tap and replay identically. Everything that reads or changes the disk is
inside a tap's live(): call "wasi:filesystem/types.<function>", args naming the
descriptor by its guest path plus the guest's arguments (written bytes included).
"""

from __future__ import annotations

import os
import stat as stat_module
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ...abi import WasiError
from ..context import HostContext
from ..io import IoError
from ..wit import Interface
from .descriptors import (
    Descriptor, DirectoryEntryStream, FileReadStream, FileWriteStream, HostFd, StreamErrors,
    descriptor_type, list_directory, metadata_hash_value, stat_record, stat_value,
)
from . import recorded
from .errors import ESCAPE, READ_ONLY_GRANT, fs_error
from .sandbox_paths import ITSELF, STRIP, Target, beneath

types_if = Interface("wasi:filesystem/types")
preopens_if = Interface("wasi:filesystem/preopens")

T = TypeVar("T")
TYPES = "wasi:filesystem/types."


def _errors(host: HostContext) -> StreamErrors:
    return host.service("filesystem.stream-errors", StreamErrors)


def _tap(host: HostContext, fn: str, args: list[Any], live: Callable[[], T],
         check: Callable[[list[Any], Any], None] | None = None) -> T:
    """host.tap with OSError from live() turned into the matching error-code; `check`:
    what a recorded result must satisfy on replay (recorded.py)."""
    def guarded() -> T:
        try:
            return live()
        except OSError as e:
            raise fs_error(e) from None
    return host.tap(TYPES + fn, args, guarded, check)


def _flags(flags: frozenset[str]) -> list[str]:
    return sorted(flags)


# --------------------------------------------------------------------------- checks


def _dir(d: Descriptor) -> Descriptor:
    if not d.is_dir:
        raise WasiError("not-directory")
    return d


def _file(d: Descriptor) -> Descriptor:
    if d.is_dir:
        raise WasiError("bad-descriptor")
    return d


def _mutable(*ds: Descriptor) -> None:
    if not all(d.grant_writable for d in ds):
        raise WasiError(READ_ONLY_GRANT)


def _two_dirs_mutable(a: Descriptor, b: Descriptor) -> None:
    """rename-at / link-at: both directories, both writable grants (wasmtime's checks)."""
    _dir(a)
    _dir(b)
    _mutable(a, b)


# --------------------------------------------------------------------------- preopens


def _open_root(path: str) -> HostFd | None:
    try:
        return HostFd(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError:
        return None  # every later use answers bad-descriptor


@preopens_if.func("get-directories")
def get_directories(host: HostContext) -> list[tuple[Descriptor, str]]:
    """The grants, recorded: a replay rebuilds the guest's view from the trace alone."""
    opened: list[HostFd | None] = []

    def live() -> list[list[Any]]:
        opened[:] = [_open_root(p.host) for p in host.sandbox.preopens]
        return [[p.guest, p.writable] for p in host.sandbox.preopens]

    grants = host.tap("wasi:filesystem/preopens.get-directories", [], live, recorded.preopens)
    out = []
    for i, (guest, writable) in enumerate(grants):
        modes = frozenset({"read", "write"} if writable else {"read"})
        root = Descriptor(guest, "directory", bool(writable), modes, opened[i] if opened else None)
        out.append((root, guest))
    return out


# --------------------------------------------------------------------------- streams


@types_if.method("descriptor", "read-via-stream")
def read_via_stream(host: HostContext, d: Descriptor, offset: int) -> FileReadStream:
    if d.is_dir:
        raise WasiError("is-directory")
    if "read" not in d.modes:
        raise WasiError("bad-descriptor")
    return FileReadStream(d, offset, _errors(host))


@types_if.method("descriptor", "write-via-stream")
def write_via_stream(host: HostContext, d: Descriptor, offset: int) -> FileWriteStream:
    _file(d)
    _mutable(d)
    if "write" not in d.modes:
        raise WasiError("bad-descriptor")
    return FileWriteStream(host, d, offset, _errors(host))


@types_if.method("descriptor", "append-via-stream")
def append_via_stream(host: HostContext, d: Descriptor) -> FileWriteStream:
    _file(d)
    _mutable(d)
    if "write" not in d.modes:
        raise WasiError("bad-descriptor")
    return FileWriteStream(host, d, None, _errors(host))


@types_if.func("filesystem-error-code")
def filesystem_error_code(host: HostContext, err: IoError) -> str | None:
    message = getattr(err, "message", "")
    return host.tap(TYPES + "filesystem-error-code", [message],
                    lambda: _errors(host).codes.get(message))


# --------------------------------------------------------------------------- descriptor: data


_ADVICE = {"normal": "POSIX_FADV_NORMAL", "sequential": "POSIX_FADV_SEQUENTIAL",
           "random": "POSIX_FADV_RANDOM", "will-need": "POSIX_FADV_WILLNEED",
           "dont-need": "POSIX_FADV_DONTNEED", "no-reuse": "POSIX_FADV_NOREUSE"}


@types_if.method("descriptor", "advise")
def advise(host: HostContext, d: Descriptor, offset: int, length: int, advice: str) -> None:
    _file(d)
    _tap(host, "advise", [d.guest_path, offset, length, advice],
         lambda: os.posix_fadvise(d.fd(), offset, length, getattr(os, _ADVICE[advice])))


@types_if.method("descriptor", "sync-data")
def sync_data(host: HostContext, d: Descriptor) -> None:
    _tap(host, "sync-data", [d.guest_path], lambda: os.fdatasync(d.fd()))


@types_if.method("descriptor", "sync")
def sync(host: HostContext, d: Descriptor) -> None:
    _tap(host, "sync", [d.guest_path], lambda: os.fsync(d.fd()))


@types_if.method("descriptor", "get-flags")
def get_flags(host: HostContext, d: Descriptor) -> frozenset[str]:
    if d.is_dir:
        return frozenset({"read"} | ({"mutate-directory"} if "write" in d.modes else set()))
    return d.modes


@types_if.method("descriptor", "get-type")
def get_type(host: HostContext, d: Descriptor) -> str:
    return d.dtype


@types_if.method("descriptor", "set-size")
def set_size(host: HostContext, d: Descriptor, size: int) -> None:
    _file(d)
    _mutable(d)
    _tap(host, "set-size", [d.guest_path, size], lambda: os.ftruncate(d.fd(), size))


@types_if.method("descriptor", "read")
def read(host: HostContext, d: Descriptor, length: int, offset: int) -> tuple[bytes, bool]:
    _file(d)
    length = min(length, 1 << 20)  # far below wasmtime's per-call hostcall budget

    def live() -> list[Any]:
        data = os.pread(d.fd(), length, offset)
        return [data, not data and length > 0]

    data, eof = _tap(host, "read", [d.guest_path, length, offset], live, recorded.read)
    return (data, eof)


@types_if.method("descriptor", "write")
def write(host: HostContext, d: Descriptor, buffer: bytes, offset: int) -> int:
    _file(d)
    _mutable(d)
    return _tap(host, "write", [d.guest_path, offset, buffer],
                lambda: os.pwrite(d.fd(), buffer, offset), recorded.written)


@types_if.method("descriptor", "stat")
def stat(host: HostContext, d: Descriptor) -> tuple[Any, ...]:
    return stat_record(_tap(host, "stat", [d.guest_path], lambda: stat_value(os.fstat(d.fd())),
                            recorded.stat))


@types_if.method("descriptor", "metadata-hash")
def metadata_hash(host: HostContext, d: Descriptor) -> tuple[int, int]:
    lo, hi = _tap(host, "metadata-hash", [d.guest_path],
                  lambda: metadata_hash_value(os.fstat(d.fd())), recorded.hash_pair)
    return (lo, hi)


@types_if.method("descriptor", "is-same-object")
def is_same_object(host: HostContext, d: Descriptor, other: Descriptor) -> bool:
    def live() -> bool:
        if d.host is None or other.host is None:
            return False
        a, b = os.fstat(d.host.fd), os.fstat(other.host.fd)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    try:
        return _tap(host, "is-same-object", [d.guest_path, other.guest_path], live)
    except WasiError:
        return False  # no error case in the WIT: an fstat failure means "not provably same"


# --------------------------------------------------------------------------- times


def _timespec(spec: Any, current_ns: int) -> int:
    tag, payload = (spec, None) if isinstance(spec, str) else spec
    if tag == "no-change":
        return current_ns
    if tag == "now":
        return time.time_ns()
    seconds, nanos = payload
    return seconds * 1_000_000_000 + nanos


def _timestamp_arg(spec: Any) -> Any:
    """new-timestamp as a trace value: "no-change" | "now" | [seconds, nanoseconds]."""
    tag, payload = (spec, None) if isinstance(spec, str) else spec
    return tag if payload is None else [payload[0], payload[1]]


def _set_times(current: os.stat_result, atim: Any, mtim: Any) -> tuple[int, int]:
    # os.utime has no UTIME_OMIT: "no-change" re-applies the value just read.
    return (_timespec(atim, current.st_atime_ns), _timespec(mtim, current.st_mtime_ns))


@types_if.method("descriptor", "set-times")
def set_times(host: HostContext, d: Descriptor, atim: Any, mtim: Any) -> None:
    _mutable(d)

    def live() -> None:
        fd = d.fd()
        os.utime(fd, ns=_set_times(os.fstat(fd), atim, mtim))

    _tap(host, "set-times", [d.guest_path, _timestamp_arg(atim), _timestamp_arg(mtim)], live)


@types_if.method("descriptor", "set-times-at")
def set_times_at(host: HostContext, d: Descriptor, path_flags: frozenset[str], path: str,
                 atim: Any, mtim: Any) -> None:
    _dir(d)
    _mutable(d)
    follow = "symlink-follow" in path_flags

    def live() -> None:
        with beneath(d.fd(), path, follow) as t:
            _require_dir_at(t)
            current = os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False)
            os.utime(t.name, ns=_set_times(current, atim, mtim), dir_fd=t.dir_fd,
                     follow_symlinks=False)

    _tap(host, "set-times-at", [d.guest_path, _flags(path_flags), path,
                                _timestamp_arg(atim), _timestamp_arg(mtim)], live)


# --------------------------------------------------------------------------- directories


@types_if.method("descriptor", "read-directory")
def read_directory(host: HostContext, d: Descriptor) -> DirectoryEntryStream:
    _dir(d)
    return DirectoryEntryStream(_tap(host, "read-directory", [d.guest_path],
                                     lambda: list_directory(d.fd()), recorded.listing))


@types_if.method("directory-entry-stream", "read-directory-entry")
def read_directory_entry(host: HostContext, s: DirectoryEntryStream) -> tuple[str, str] | None:
    return s.next()


def _require_dir_at(t: Target) -> None:
    """A path ending in "/" must name a directory."""
    if t.must_be_dir:
        if not stat_module.S_ISDIR(os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False).st_mode):
            raise WasiError("not-directory")


@types_if.method("descriptor", "create-directory-at")
def create_directory_at(host: HostContext, d: Descriptor, path: str) -> None:
    _dir(d)
    _mutable(d)

    def live() -> None:
        with beneath(d.fd(), path, False, STRIP) as t:
            os.mkdir(t.name, 0o777, dir_fd=t.dir_fd)

    _tap(host, "create-directory-at", [d.guest_path, path], live)


@types_if.method("descriptor", "remove-directory-at")
def remove_directory_at(host: HostContext, d: Descriptor, path: str) -> None:
    _dir(d)
    _mutable(d)

    def live() -> None:
        with beneath(d.fd(), path, False, ITSELF) as t:
            os.rmdir(t.name, dir_fd=t.dir_fd)

    _tap(host, "remove-directory-at", [d.guest_path, path], live)


@types_if.method("descriptor", "unlink-file-at")
def unlink_file_at(host: HostContext, d: Descriptor, path: str) -> None:
    _dir(d)
    _mutable(d)

    def live() -> None:
        with beneath(d.fd(), path, False, ITSELF) as t:
            os.unlink(t.name, dir_fd=t.dir_fd)

    _tap(host, "unlink-file-at", [d.guest_path, path], live)


@types_if.method("descriptor", "stat-at")
def stat_at(host: HostContext, d: Descriptor, path_flags: frozenset[str], path: str) -> tuple[Any, ...]:
    _dir(d)

    def live() -> list[Any]:
        with beneath(d.fd(), path, "symlink-follow" in path_flags) as t:
            _require_dir_at(t)
            return stat_value(os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False))

    return stat_record(_tap(host, "stat-at", [d.guest_path, _flags(path_flags), path], live, recorded.stat))


@types_if.method("descriptor", "metadata-hash-at")
def metadata_hash_at(host: HostContext, d: Descriptor, path_flags: frozenset[str],
                     path: str) -> tuple[int, int]:
    _dir(d)

    def live() -> list[int]:
        with beneath(d.fd(), path, "symlink-follow" in path_flags) as t:
            _require_dir_at(t)
            return metadata_hash_value(os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False))

    lo, hi = _tap(host, "metadata-hash-at", [d.guest_path, _flags(path_flags), path], live, recorded.hash_pair)
    return (lo, hi)


@types_if.method("descriptor", "readlink-at")
def readlink_at(host: HostContext, d: Descriptor, path: str) -> str:
    _dir(d)

    def live() -> str:
        with beneath(d.fd(), path, False, ITSELF) as t:
            target = os.readlink(t.name, dir_fd=t.dir_fd)
        if target.startswith("/"):
            raise WasiError(ESCAPE)  # as cap-std: an absolute target is outside by definition
        try:
            target.encode("utf-8")
        except UnicodeEncodeError:
            raise WasiError("illegal-byte-sequence") from None
        return target

    return _tap(host, "readlink-at", [d.guest_path, path], live)


@types_if.method("descriptor", "symlink-at")
def symlink_at(host: HostContext, d: Descriptor, old_path: str, new_path: str) -> None:
    _dir(d)
    _mutable(d)
    if old_path.startswith("/"):
        raise WasiError(ESCAPE)  # cap-std refuses links that could only lead outside

    def live() -> None:
        with beneath(d.fd(), new_path, False, ITSELF) as t:
            os.symlink(old_path, t.name, dir_fd=t.dir_fd)

    _tap(host, "symlink-at", [d.guest_path, old_path, new_path], live)


@types_if.method("descriptor", "link-at")
def link_at(host: HostContext, d: Descriptor, old_path_flags: frozenset[str], old_path: str,
            new_dir: Descriptor, new_path: str) -> None:
    _two_dirs_mutable(d, new_dir)
    if "symlink-follow" in old_path_flags:
        raise WasiError("invalid")

    def live() -> None:
        with beneath(d.fd(), old_path, False, ITSELF) as old, \
                beneath(new_dir.fd(), new_path, False, ITSELF) as new:
            os.link(old.name, new.name, src_dir_fd=old.dir_fd, dst_dir_fd=new.dir_fd,
                    follow_symlinks=False)

    _tap(host, "link-at", [d.guest_path, _flags(old_path_flags), old_path,
                           new_dir.guest_path, new_path], live)


@types_if.method("descriptor", "rename-at")
def rename_at(host: HostContext, d: Descriptor, old_path: str, new_dir: Descriptor, new_path: str) -> None:
    _two_dirs_mutable(d, new_dir)

    def live() -> None:
        with beneath(d.fd(), old_path, False, STRIP) as old, \
                beneath(new_dir.fd(), new_path, False, STRIP) as new:
            if new.must_be_dir:  # "rename f g/": only a directory may take a name ending in "/"
                _require_dir_at(Target(old.dir_fd, old.name, True))
            _require_dir_at(old)
            os.rename(old.name, new.name, src_dir_fd=old.dir_fd, dst_dir_fd=new.dir_fd)

    _tap(host, "rename-at", [d.guest_path, old_path, new_dir.guest_path, new_path], live)


# --------------------------------------------------------------------------- open-at

_SYNC_FLAGS = {"file-integrity-sync", "data-integrity-sync", "requested-write-sync"}


def _open_modes(open_flags: frozenset[str], flags: frozenset[str]) -> frozenset[str]:
    """wasmtime's OpenMode: create/truncate/write imply write; no write implies read."""
    modes = set()
    if open_flags & {"create", "truncate"} or "write" in flags:
        modes.add("write")
    if "read" in flags or "write" not in flags:
        modes.add("read")
    return frozenset(modes)


def _os_flags(modes: frozenset[str], open_flags: frozenset[str], must_be_dir: bool) -> int:
    access = {frozenset({"read"}): os.O_RDONLY, frozenset({"write"}): os.O_WRONLY}.get(modes, os.O_RDWR)
    flags = access | os.O_NOFOLLOW | os.O_CLOEXEC
    if "create" in open_flags:
        flags |= os.O_CREAT | (os.O_EXCL if "exclusive" in open_flags else 0)
    if "truncate" in open_flags:
        flags |= os.O_TRUNC
    if "directory" in open_flags or must_be_dir:
        flags |= os.O_DIRECTORY
    return flags


@types_if.method("descriptor", "open-at")
def open_at(host: HostContext, d: Descriptor, path_flags: frozenset[str], path: str,
            open_flags: frozenset[str], flags: frozenset[str]) -> Descriptor:
    _dir(d)
    if flags & _SYNC_FLAGS:
        raise WasiError("unsupported")
    if "directory" in open_flags and open_flags & {"create", "exclusive", "truncate"}:
        raise WasiError("invalid")
    modes = _open_modes(open_flags, flags)
    if "write" in modes:
        _mutable(d)
    opened: list[HostFd] = []

    def live() -> str:
        with beneath(d.fd(), path, "symlink-follow" in path_flags) as t:
            if t.must_be_dir and "create" in open_flags:
                raise WasiError("is-directory")  # as Linux: O_CREAT on a path ending in "/"
            fd = os.open(t.name, _os_flags(modes, open_flags, t.must_be_dir), 0o666, dir_fd=t.dir_fd)
        opened.append(HostFd(fd))
        return descriptor_type(os.fstat(fd).st_mode)

    try:
        dtype = _tap(host, "open-at", [d.guest_path, _flags(path_flags), path,
                                       _flags(open_flags), _flags(flags)], live, recorded.descriptor_type)
    except WasiError:
        for h in opened:
            h.release()
        raise
    return Descriptor(d.child_path(path), dtype, d.grant_writable, modes, opened[0] if opened else None)
