"""Writing an output file whole or not at all (HAR, flow files).

The content goes to a temporary file beside the target, which takes the target's name only
once it is complete: a failed or interrupted export leaves no partial file, and `overwrite`
never destroys the old file before the new one is finished. Without `overwrite` the final
step is a hard link, which fails if the name was taken meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import EXIT_OUTPUT, EXIT_USAGE, RRError

# A missing or wrong directory is a mistake in the arguments; anything else (read-only,
# disk full, permissions) is rr failing to write its output.
_USAGE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


class OutputError(RRError):
    """The output file cannot be written."""

    status = EXIT_OUTPUT


class OutputExistsError(OutputError, FileExistsError):
    """The output file exists and overwrite was not asked for."""

    status = EXIT_USAGE

    def __init__(self, path: Path):
        super().__init__(f"{path}: refusing to overwrite an existing file (use --force to replace it)")


def write_atomically(out: Path, write: Callable[[IO[bytes]], None], overwrite: bool = False) -> None:
    """Call `write(f)` on a temporary file, then move it to `out`."""
    if not overwrite and os.path.lexists(out):
        raise OutputExistsError(out)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.rr-tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise _output_error(out, "cannot create", e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise _output_error(out, "cannot write", e) from None
        _publish(tmp, out, overwrite)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    if overwrite:
        try:
            os.replace(tmp, out)
        except OSError as e:
            raise _output_error(out, "cannot replace", e) from None
        return
    try:
        os.link(tmp, out)   # atomic, and fails if `out` appeared meanwhile
    except FileExistsError:
        raise OutputExistsError(out) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise _output_error(out, "cannot create", e) from None
        # A filesystem without hard links: a rename, checked just before.
        if os.path.lexists(out):
            raise OutputExistsError(out) from None
        os.rename(tmp, out)


def _output_error(out: Path, what: str, e: OSError) -> OutputError:
    error = OutputError(f"{out}: {what}: {e.strerror or e}")
    if e.errno in _USAGE_ERRNOS:
        error.status = EXIT_USAGE
    return error

