"""Resolving a guest path beneath a directory fd, one component at a time.

The kernel is never given a path with a "/" in it: every intermediate directory is
opened relative to the previous one with O_NOFOLLOW, symlinks are read and expanded
here, ".." pops back to the directory we came from (never above the base), and the
final operation gets a single name relative to the fd of its parent, with symlink
following off. So a ".." too many, an absolute path, or a symlink that resolves
outside the base is refused with `not-permitted`, and a symlink swapped in by another
process between our check and the operation is not followed either (that use fails
with ELOOP/ENOTDIR instead). This is openat2(RESOLVE_BENEATH) done in userspace.

A path ending in "/" must name a directory. What that means for the final name differs
per operation, and rr answers as wasmtime does (cap-std's rules; checked line by line by
tests/guests/c/fs_slashes.c), each operation picking one of:
  FOLLOW  stat, open, set-times, metadata-hash: a final symlink is followed and the caller
          requires a directory there (Target.must_be_dir);
  ITSELF  link (both paths), symlink, unlink, rmdir, readlink: the directory itself is
          opened and the operation acts on "." in it, so the kernel answers no-entry,
          not-directory, exist (link, symlink), is-directory (unlink), invalid (rmdir);
  STRIP   rename (both paths), mkdir: the slashes are dropped and the final name is not
          followed; must_be_dir says they were there (then rename needs a directory source).
The one place rr keeps to Linux instead: stat-at of "link/" without symlink-follow
stats what the link leads to (not-directory for a file), as lstat("link/") does; cap-std
stats the link itself when the path is that one name, and follows it otherwise.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ...abi import WasiError
from .errors import ESCAPE, fs_error

MAX_SYMLINKS = 40  # as Linux's own limit on symlink expansions in one lookup

_DIR_STEP = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

FOLLOW, ITSELF, STRIP = "follow", "itself", "strip"  # what a trailing "/" means (see above)


@dataclass(frozen=True)
class Target:
    """Where a path landed: one name (no "/") in the directory `dir_fd`.

    name is "." when the path denotes the directory itself ("", ".", "a/..").
    must_be_dir: the path ended with "/", so the final object has to be a directory.
    """

    dir_fd: int
    name: str
    must_be_dir: bool


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _readlink(name: str, dir_fd: int) -> str | None:
    """The symlink's target, or None if `name` is not a symlink (or does not exist)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


@contextmanager
def beneath(base_fd: int, path: str, follow_final: bool, dir_suffix: str = FOLLOW) -> Iterator[Target]:
    """Resolve `path` beneath `base_fd`; the fds opened on the way live until exit.

    dir_suffix: FOLLOW, ITSELF or STRIP, what a trailing "/" means for this operation.
    Raises WasiError (not-permitted for escapes, loop, no-entry, not-directory, ...).
    """
    if path.startswith("/"):
        raise WasiError(ESCAPE)
    if "\0" in path:
        raise WasiError("invalid")
    must_be_dir = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    if dir_suffix == STRIP and path.endswith("/"):
        path = path.rstrip("/")
    else:
        # A trailing "/" makes the kernel follow a final symlink; we follow it ourselves.
        follow_final = follow_final or must_be_dir
    pending = deque(_components(path))
    stack: list[int] = []  # fds we opened; the current directory is stack[-1] or base_fd
    expansions = 0

    def final(here: int, name: str) -> Target:
        if dir_suffix == ITSELF and must_be_dir:
            # Opened without following: a symlink swapped in since we looked fails (ELOOP).
            stack.append(os.open(name, _DIR_STEP, dir_fd=here))
            return Target(stack[-1], ".", True)
        return Target(here, name, must_be_dir)

    try:
        while pending:
            name = pending.popleft()
            here = stack[-1] if stack else base_fd
            if name == "..":
                if not stack:
                    raise WasiError(ESCAPE)
                os.close(stack.pop())
                continue
            last = not pending
            if last and not follow_final:
                yield final(here, name)
                return
            link = None
            if last:
                link = _readlink(name, here)
            else:
                try:
                    stack.append(os.open(name, _DIR_STEP, dir_fd=here))
                    continue
                except OSError as e:
                    if e.errno != errno.ENOTDIR:
                        raise
                    link = _readlink(name, here)
                    if link is None:
                        raise
            if link is None:  # the final name, not a symlink: the caller acts on it
                yield final(here, name)
                return
            expansions += 1
            if expansions > MAX_SYMLINKS:
                raise WasiError("loop")
            if link.startswith("/"):
                raise WasiError(ESCAPE)
            if link.endswith("/") and last:
                must_be_dir = True
            pending.extendleft(reversed(_components(link)))
        yield Target(stack[-1] if stack else base_fd, ".", must_be_dir)
    except OSError as e:
        raise fs_error(e) from None
    finally:
        for fd in stack:
            os.close(fd)

