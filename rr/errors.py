"""rr's own failures and the exit statuses that tell them apart from the guest's.

`rr run`/`record`/`replay` exit with the guest's own status when the guest exits.
rr's statuses sit in a band guests rarely use (documented in README):
"""

from __future__ import annotations

EXIT_TRAP = 134          # the guest trapped (same status the wasmtime CLI gives)
EXIT_DIVERGED = 121      # replay: the guest asked for something the trace does not hold
EXIT_BAD_TRACE = 122     # not a trace, corrupt, newer format, or for another component
EXIT_LIMIT = 123         # --max-memory exceeded
EXIT_TIMEOUT = 124       # --timeout exceeded (as coreutils `timeout`)
EXIT_USAGE = 125         # bad arguments, missing or invalid component file
EXIT_UNSUPPORTED = 126   # the component needs something rr does not provide
EXIT_INTERNAL = 70       # a bug in rr (EX_SOFTWARE)


class RRError(Exception):
    """An error rr reports as one line `rr: <message>` and exits with `status`."""

    status = EXIT_USAGE

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(RRError):
    status = EXIT_USAGE


class ComponentError(RRError):
    """The file is missing, is not a component, or is not a wasi:cli command."""

    status = EXIT_USAGE


class UnsupportedError(RRError):
    status = EXIT_UNSUPPORTED
