"""Errors raised while reading or writing traces.

`TraceError` messages are one line that says what went wrong and where
(file name, byte offset or line number, event index) so the CLI can print them as is.
"""

from __future__ import annotations


class TraceError(Exception):
    """The file is not a trace, is corrupt, or has a format version this rr cannot read."""


class TraceExistsError(TraceError, FileExistsError):
    """A writer was asked to create a trace where a file already exists."""


class RecordError(ValueError):
    """A record is undecodable or has the wrong shape. Codecs set `pos` (byte offset or line
    number); the reader turns it into a TraceError that names the file and the event."""

    def __init__(self, what: str, pos: int | None = None):
        super().__init__(what)
        self.pos = pos
