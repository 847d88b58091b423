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
    """A decoded record has the wrong shape; the reader adds the location and raises TraceError."""
