"""rr's own failures and the exit statuses that tell them apart from the guest's.

`rr run`/`record`/`replay` exit with the guest's own status when the guest exits.
rr's own statuses sit in a band guests rarely use. `EXIT_STATUSES` below is the one
table: `--help`, README and every error take their numbers from here.
"""

from __future__ import annotations

EXIT_DIFFER = 1          # rr diff: the traces differ (as diff(1) and cmp(1))
EXIT_INTERNAL = 70       # a bug in rr (EX_SOFTWARE)
EXIT_OUTPUT = 74         # rr could not write its own output (disk full, read-only, ...) (EX_IOERR)
EXIT_DIVERGED = 121      # replay: the guest asked for (or wrote) something the trace does not hold
EXIT_BAD_TRACE = 122     # not a trace, corrupt, incomplete, newer format, or for another component
EXIT_LIMIT = 123         # --max-memory exceeded
EXIT_TIMEOUT = 124       # --timeout exceeded (as coreutils `timeout`)
EXIT_USAGE = 125         # bad arguments, missing or invalid component file, output exists
EXIT_UNSUPPORTED = 126   # the component needs something rr does not provide
EXIT_INTERRUPTED = 130   # Ctrl-C (SIGINT), as a shell reports it
EXIT_PIPE = 141          # rr's own stdout was closed by its reader (`| head`), as a shell reports SIGPIPE
EXIT_TRAP = 134          # the guest trapped (same status the wasmtime CLI gives)
EXIT_TERMINATED = 143    # SIGTERM, as a shell reports it

# (status, meaning): rendered into `rr --help` and README's table.
EXIT_STATUSES: list[tuple[str, str]] = [
    ("guest's own", "the guest exited (wasi:cli/exit); 0 when `run` returns ok, 1 for err"),
    (str(EXIT_DIFFER), "`rr diff`: the traces differ (0: they are equal)"),
    (str(EXIT_INTERNAL), "a bug in rr"),
    (str(EXIT_OUTPUT), "rr could not write its output (disk full, read-only); what was written is kept"),
    (str(EXIT_DIVERGED), "replay diverged from the trace (what the guest asked for, sent or wrote); "
                         "rr verify: a replay did"),
    (str(EXIT_BAD_TRACE), "not a trace, corrupt, incomplete, newer format, or recorded with another component"),
    (str(EXIT_LIMIT), "the guest's memory does not fit --max-memory (a replay applies the recorded limit)"),
    (str(EXIT_TIMEOUT), "--timeout exceeded, or the replay of a recording that was (stopped at the same point)"),
    (str(EXIT_USAGE), "usage error: bad arguments, missing or invalid component, output exists"),
    (str(EXIT_UNSUPPORTED), "the component needs something rr does not provide"),
    (str(EXIT_INTERRUPTED), "interrupted (Ctrl-C, SIGINT), or the replay of a recording that was"),
    (str(EXIT_TRAP), "the guest trapped (as the wasmtime CLI)"),
    (str(EXIT_PIPE), "the reader of rr's own output closed it early (`rr inspect` into `head`)"),
    (str(EXIT_TERMINATED), "terminated (SIGTERM), or the replay of a recording that was"),
]


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


class OutputError(RRError):
    """rr could not write a file of its own (a trace, a HAR): disk full, read-only, ..."""

    status = EXIT_OUTPUT
