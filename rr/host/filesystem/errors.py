"""OSError -> wasi:filesystem `error-code`, the way wasmtime maps them on Linux.

Every host failure becomes `WasiError(<error-code enum case>)`: a Python exception
escaping a host function would trap the guest and be reported as a bug in rr.
"""

from __future__ import annotations

import errno

from ...abi import WasiError

_BY_ERRNO: dict[int, str] = {
    errno.EACCES: "access",
    errno.EAGAIN: "would-block",
    errno.EALREADY: "already",
    errno.EBADF: "bad-descriptor",
    errno.EBUSY: "busy",
    errno.EDEADLK: "deadlock",
    errno.EDQUOT: "quota",
    errno.EEXIST: "exist",
    errno.EFBIG: "file-too-large",
    errno.EILSEQ: "illegal-byte-sequence",
    errno.EINPROGRESS: "in-progress",
    errno.EINTR: "interrupted",
    errno.EINVAL: "invalid",
    errno.EIO: "io",
    errno.EISDIR: "is-directory",
    errno.ELOOP: "loop",
    errno.EMLINK: "too-many-links",
    errno.EMSGSIZE: "message-size",
    errno.ENAMETOOLONG: "name-too-long",
    errno.ENODEV: "no-device",
    errno.ENOENT: "no-entry",
    errno.ENOLCK: "no-lock",
    errno.ENOMEM: "insufficient-memory",
    errno.ENOSPC: "insufficient-space",
    errno.ENOTDIR: "not-directory",
    errno.ENOTEMPTY: "not-empty",
    errno.ENOTRECOVERABLE: "not-recoverable",
    errno.ENOTSUP: "unsupported",       # == EOPNOTSUPP on Linux
    errno.ENOTTY: "no-tty",
    errno.ENXIO: "no-such-device",
    errno.EOVERFLOW: "overflow",
    errno.EPERM: "not-permitted",
    errno.EPIPE: "pipe",
    errno.EROFS: "read-only",
    errno.ESPIPE: "invalid-seek",
    errno.ETXTBSY: "text-file-busy",
    errno.EXDEV: "cross-device",
}


def error_code(exc: OSError) -> str:
    """The error-code case for an OSError; `io` for anything without a WASI name."""
    return _BY_ERRNO.get(exc.errno or 0, "io")


def fs_error(exc: OSError) -> WasiError:
    return WasiError(error_code(exc))


# Refusals of the sandbox itself. wasi-filesystem's path-resolution rules and wasmtime
# (cap-std) both answer `not-permitted` for paths that start with "/" or that reach
# outside the base directory through ".." or a symlink.
ESCAPE = "not-permitted"
# A read-only grant (`--dir`) refuses every mutation with `not-permitted`, as wasmtime
# does for a preopen without write permission (FsPerms::ReadOnly).
READ_ONLY_GRANT = "not-permitted"
