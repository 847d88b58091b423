"""Errors raised while reading or writing traces.

Messages are one line that says what went wrong and where (file name, byte offset or line
number, record index, event count) so the CLI can print them as is.

Reading fails only with TraceError (and its subclasses); writing only with TraceOutputError.
"""

from __future__ import annotations


class TraceError(Exception):
    """The file is not a trace, is corrupt, unreadable, or has a format version this rr cannot read."""


class TraceNotFoundError(TraceError, FileNotFoundError):
    """There is no file at the trace's path."""


class TraceOutputError(Exception):
    """A trace could not be written. `events` events were written before it happened; `kept`
    is the path that holds them (None if nothing was kept)."""

    def __init__(self, message: str, events: int = 0, kept: str | None = None):
        super().__init__(message)
        self.events = events
        self.kept = kept


class TraceExistsError(TraceOutputError, FileExistsError):
    """A writer was asked to create a trace where a file already exists."""


class TraceNameError(TraceOutputError, ValueError):
    """The trace's name or the requested format does not say which encoding to write."""


class RecordError(ValueError):
    """A record is undecodable or has the wrong shape. Codecs set `pos` (byte offset or line
    number); the reader turns it into a TraceError that names the file and the record."""

    def __init__(self, what: str, pos: int | None = None):
        super().__init__(what)
        self.pos = pos
